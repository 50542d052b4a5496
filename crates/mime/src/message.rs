//! [`Message`]: a raw message and its MIME tree, and what IMAP asks of it.

use std::borrow::Cow;

use crate::bodystructure::{BodyStructure, content_fields, virtual_size};
use crate::decode::{self, TransferEncoding};
use crate::envelope::Envelope;
use crate::error::MimeError;
use crate::header::HeaderField;
use crate::imap_string::write_literal;
use crate::section::{Partial, Section, SectionText};
use crate::structure::{Limits, Part, PartKind, scan};

/// A parsed message: the raw bytes as stored and the MIME tree over them.
///
/// Parsing never fails and never panics: broken mail gets the best-effort
/// structure mainstream IMAP servers give it.
///
/// ```
/// use ironpost_mime::Message;
///
/// let raw = b"From: Alice <alice@example.com>\r\nSubject: hi\r\n\r\nHello\r\n";
/// let msg = Message::parse(raw);
/// assert_eq!(
///     msg.body_structure().to_imap_string(),
///     b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1 NIL NIL NIL NIL)"
/// );
/// assert_eq!(msg.rfc822_size(), raw.len() as u64);
/// assert_eq!(msg.fetch_body("BODY[TEXT]<0.5>").unwrap(), b"BODY[TEXT]<0> {5}\r\nHello");
/// ```
#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    root: Part,
}

impl<'a> Message<'a> {
    /// Parses `raw` with the default [`Limits`].
    pub fn parse(raw: &'a [u8]) -> Message<'a> {
        Message::parse_with_limits(raw, Limits::default())
    }

    /// Parses `raw` with explicit [`Limits`].
    pub fn parse_with_limits(raw: &'a [u8], limits: Limits) -> Message<'a> {
        Message {
            raw,
            root: scan(raw, limits),
        }
    }

    /// The raw bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The root of the MIME tree (the whole message).
    pub fn root(&self) -> &Part {
        &self.root
    }

    /// The ENVELOPE.
    pub fn envelope(&self) -> Envelope {
        Envelope::from_fields(self.raw, &self.root.fields)
    }

    /// The extended BODYSTRUCTURE.
    pub fn body_structure(&self) -> BodyStructure {
        BodyStructure::of(self.raw, &self.root)
    }

    /// RFC822.SIZE: octets with CRLF line ends.
    pub fn rfc822_size(&self) -> u64 {
        virtual_size(self.raw)
    }

    /// The header fields of the message.
    pub fn headers(&self) -> &[HeaderField] {
        &self.root.fields
    }

    /// The raw value of the first header field named `name`.
    pub fn header_raw(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        self.root.field(self.raw, name).map(|f| f.value(self.raw))
    }

    /// The value of the first field named `name`, unfolded and with RFC 2047
    /// encoded words decoded.
    pub fn header_text(&self, name: &str) -> Option<String> {
        self.header_raw(name).map(|v| decode::decode_text(&v))
    }

    /// The part with IMAP part number `numbers` (`[2, 1]` is part `2.1`).
    /// Part `1` of a non-multipart message is its body.
    pub fn part(&self, numbers: &[u32]) -> Result<&Part, MimeError> {
        let missing = || {
            MimeError::NoSuchPart(
                numbers
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            )
        };
        let mut selected: Option<&Part> = None;
        for &n in numbers {
            let base = match selected {
                None => &self.root,
                Some(p) => match &p.kind {
                    PartKind::Message(inner) => inner,
                    PartKind::Multipart(_) => p,
                    PartKind::Leaf => return Err(missing()),
                },
            };
            let index = usize::try_from(n).map_err(|_| missing())?;
            selected = Some(if base.multipart {
                base.children()
                    .get(index.wrapping_sub(1))
                    .ok_or_else(missing)?
            } else if n == 1 {
                base
            } else {
                return Err(missing());
            });
        }
        selected.ok_or_else(missing)
    }

    /// The bytes of a section (before any partial range).
    pub fn section_bytes(&self, section: &Section) -> Result<Cow<'a, [u8]>, MimeError> {
        let raw = self.raw;
        let slice =
            |range: std::ops::Range<usize>| Cow::Borrowed(raw.get(range).unwrap_or_default());
        let part = if section.part.is_empty() {
            None
        } else {
            Some(self.part(&section.part)?)
        };
        match (&section.text, part) {
            (SectionText::Full, None) => return Ok(Cow::Borrowed(raw)),
            (SectionText::Full, Some(p)) => return Ok(slice(p.body.clone())),
            (SectionText::Mime, Some(p)) => return Ok(slice(p.header.clone())),
            (SectionText::Mime, None) => {
                return Err(MimeError::BadSection(section.to_imap_string()));
            }
            _ => {}
        }
        let msg = match part {
            None => &self.root,
            Some(p) => match &p.kind {
                PartKind::Message(inner) => inner,
                _ => return Err(MimeError::NotAMessage(section.to_imap_string())),
            },
        };
        Ok(match &section.text {
            SectionText::Header => slice(msg.header.clone()),
            SectionText::Text => slice(msg.body.clone()),
            SectionText::HeaderFields(names) => {
                let mut out = Vec::new();
                let mut ended = false;
                for field in &msg.fields {
                    if names.iter().any(|n| field.is(raw, n)) {
                        let bytes = raw.get(field.raw.clone()).unwrap_or_default();
                        out.extend_from_slice(bytes);
                        if !bytes.ends_with(b"\n") {
                            // the header ended without a line break: one
                            // CRLF ends both the field and the header
                            out.extend_from_slice(b"\r\n");
                            ended = true;
                        }
                    }
                }
                if !ended {
                    out.extend_from_slice(b"\r\n");
                }
                Cow::Owned(out)
            }
            SectionText::HeaderFieldsNot(names) => {
                let mut out = Vec::new();
                let mut end = msg.header.start;
                for field in &msg.fields {
                    if !names.iter().any(|n| field.is(raw, n)) {
                        out.extend_from_slice(raw.get(field.raw.clone()).unwrap_or_default());
                    }
                    end = field.raw.end;
                }
                out.extend_from_slice(raw.get(end..msg.header.end).unwrap_or_default());
                Cow::Owned(out)
            }
            SectionText::Full | SectionText::Mime => Cow::Borrowed(&[][..]),
        })
    }

    /// The bytes of a section with an optional partial range applied.
    pub fn section(
        &self,
        section: &Section,
        partial: Option<Partial>,
    ) -> Result<Vec<u8>, MimeError> {
        let bytes = self.section_bytes(section)?;
        Ok(match partial {
            Some(p) => p.apply(&bytes).to_vec(),
            None => bytes.into_owned(),
        })
    }

    /// The content of `BINARY[part]` (RFC 3516): the section with its
    /// Content-Transfer-Encoding undone.
    ///
    /// - A leaf part: its body decoded, by the encoding BODYSTRUCTURE names
    ///   (a part that is not a MIME entity and an unknown encoding are taken
    ///   as they are, and so is content that does not decode).
    /// - A multipart, a message/rfc822 part, or the whole message (the empty
    ///   part number): its bytes with every base64 or quoted-printable leaf
    ///   inside decoded and its Content-Transfer-Encoding field replaced by
    ///   `Content-Transfer-Encoding: binary` at the end of its header, as
    ///   Dovecot answers; a leaf whose content does not decode stays as it
    ///   is.
    pub fn binary(&self, numbers: &[u32]) -> Result<Cow<'a, [u8]>, MimeError> {
        let raw = self.raw;
        let (part, range) = if numbers.is_empty() {
            (&self.root, 0..raw.len())
        } else {
            let part = self.part(numbers)?;
            if matches!(part.kind, PartKind::Leaf) {
                let body = raw.get(part.body.clone()).unwrap_or_default();
                return Ok(match self.transfer_encoding(part) {
                    TransferEncoding::Identity => Cow::Borrowed(body),
                    encoding => Cow::Owned(encoding.decode(body)),
                });
            }
            (part, part.body.clone())
        };
        let mut leaves = Vec::new();
        // A walk with its own stack: no recursion however deep the tree.
        let mut stack = match (&part.kind, numbers.is_empty()) {
            (_, true) => vec![part],
            (PartKind::Multipart(children), false) => children.iter().rev().collect(),
            (PartKind::Message(inner), false) => vec![&**inner],
            (PartKind::Leaf, false) => Vec::new(),
        };
        while let Some(p) = stack.pop() {
            match &p.kind {
                PartKind::Multipart(children) => stack.extend(children.iter().rev()),
                PartKind::Message(inner) => stack.push(inner),
                PartKind::Leaf => {
                    let encoding = self.transfer_encoding(p);
                    let body = raw.get(p.body.clone()).unwrap_or_default();
                    if encoding != TransferEncoding::Identity
                        && let Some(decoded) = encoding.try_decode(body)
                    {
                        leaves.push((p, decoded));
                    }
                }
            }
        }
        if leaves.is_empty() {
            return Ok(Cow::Borrowed(raw.get(range).unwrap_or_default()));
        }
        let bytes = |r: std::ops::Range<usize>| raw.get(r).unwrap_or_default();
        let mut out = Vec::with_capacity(range.len());
        let mut at = range.start;
        for (leaf, decoded) in leaves {
            out.extend_from_slice(bytes(at..leaf.header.start));
            let mut end = leaf.header.start;
            for field in &leaf.fields {
                if !field.is(raw, "Content-Transfer-Encoding") {
                    out.extend_from_slice(bytes(field.raw.clone()));
                }
                end = field.raw.end;
            }
            if !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n");
            out.extend_from_slice(bytes(end..leaf.body.start));
            out.extend_from_slice(&decoded);
            at = leaf.body.end;
        }
        out.extend_from_slice(bytes(at..range.end));
        Ok(Cow::Owned(out))
    }

    /// The transfer encoding of a part: that of its Content-Transfer-Encoding
    /// field when the part is a MIME leaf, identity otherwise.
    fn transfer_encoding(&self, part: &Part) -> TransferEncoding {
        if !part.is_mime || !matches!(part.kind, PartKind::Leaf) {
            return TransferEncoding::Identity;
        }
        content_fields(self.raw, &part.fields)
            .encoding
            .map_or(TransferEncoding::Identity, |name| {
                TransferEncoding::from_name(&name)
            })
    }

    /// The text of every text part (`text/*`, or a leaf without a usable
    /// Content-Type), attached messages included, in the order of the
    /// message: transfer encoding undone and the charset converted to UTF-8.
    /// A missing or US-ASCII charset reads the bytes as UTF-8, which is what
    /// undeclared 8-bit text usually is. This is what IMAP SEARCH BODY looks
    /// in.
    pub fn body_texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        // A walk with its own stack: no recursion however deep the tree.
        let mut stack = vec![&self.root];
        while let Some(part) = stack.pop() {
            match &part.kind {
                PartKind::Multipart(children) => stack.extend(children.iter().rev()),
                PartKind::Message(inner) => stack.push(inner),
                PartKind::Leaf if part.is_text() && !part.overflow => {
                    let body = self.raw.get(part.body.clone()).unwrap_or_default();
                    let decoded = self.transfer_encoding(part).decode(body);
                    let charset = if part.is_mime {
                        content_fields(self.raw, &part.fields)
                            .params
                            .into_iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
                            .map(|(_, v)| v)
                    } else {
                        None
                    };
                    out.push(match charset {
                        Some(c) if !c.trim_ascii().eq_ignore_ascii_case(b"us-ascii") => {
                            decode::charset_to_utf8(c.trim_ascii(), &decoded)
                        }
                        _ => String::from_utf8_lossy(&decoded).into_owned(),
                    });
                }
                PartKind::Leaf => {}
            }
        }
        out
    }

    /// A FETCH answer item for `BODY[...]`, `BODY.PEEK[...]` or
    /// `BINARY`-less sections with an optional `<start.count>`: the item name
    /// as IMAP answers it and the content as a literal, e.g.
    /// `BODY[1.MIME] {27}\r\n...`.
    pub fn fetch_body(&self, item: &str) -> Result<Vec<u8>, MimeError> {
        let bad = || MimeError::BadSection(item.to_string());
        let upper = item.to_ascii_uppercase();
        let rest = if upper.starts_with("BODY.PEEK[") {
            &item[10..]
        } else if upper.starts_with("BODY[") {
            &item[5..]
        } else {
            return Err(bad());
        };
        let close = rest.rfind(']').ok_or_else(bad)?;
        let section = Section::parse(&rest[..close])?;
        let tail = &rest[close + 1..];
        let partial = if tail.is_empty() {
            None
        } else {
            let inner = tail
                .strip_prefix('<')
                .and_then(|t| t.strip_suffix('>'))
                .ok_or_else(bad)?;
            Some(Partial::parse(inner)?)
        };
        // A part the message does not have reads as empty, as servers answer
        // it; NUL (not allowed in an IMAP literal) is sent as 0x80.
        let mut content = match self.section(&section, partial) {
            Err(MimeError::NoSuchPart(_) | MimeError::NotAMessage(_)) => Vec::new(),
            other => other?,
        };
        for b in &mut content {
            if *b == 0 {
                *b = 0x80;
            }
        }
        let mut out = format!("BODY[{}]", section.to_imap_string()).into_bytes();
        if let Some(p) = partial {
            out.extend_from_slice(format!("<{}>", p.start).as_bytes());
        }
        out.push(b' ');
        write_literal(&mut out, &content);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &[u8] = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";

    #[test]
    fn part_numbers() {
        let msg = Message::parse(MIXED);
        assert_eq!(
            msg.section(&Section::parse("1").unwrap(), None).unwrap(),
            b"one"
        );
        assert_eq!(
            msg.section(&Section::parse("2.HEADER").unwrap(), None)
                .unwrap(),
            b"Subject: inner\r\n\r\n"
        );
        assert_eq!(
            msg.section(&Section::parse("2.1").unwrap(), None).unwrap(),
            b"inner body"
        );
        assert_eq!(
            msg.section(&Section::parse("2.MIME").unwrap(), None)
                .unwrap(),
            b"Content-Type: message/rfc822\r\n\r\n"
        );
        assert!(matches!(msg.part(&[3]), Err(MimeError::NoSuchPart(_))));
        assert!(matches!(msg.part(&[1, 1]), Err(MimeError::NoSuchPart(_))));
        assert!(matches!(
            msg.section(&Section::parse("1.TEXT").unwrap(), None),
            Err(MimeError::NotAMessage(_))
        ));
    }

    #[test]
    fn header_fields_sections() {
        let msg = Message::parse(MIXED);
        assert_eq!(
            msg.section(&Section::parse("HEADER.FIELDS (SUBJECT)").unwrap(), None)
                .unwrap(),
            b"Subject: x\r\n\r\n"
        );
        assert_eq!(
            msg.section(
                &Section::parse("HEADER.FIELDS.NOT (SUBJECT)").unwrap(),
                None
            )
            .unwrap(),
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        );
    }

    #[test]
    fn binary_undoes_the_transfer_encoding() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8A\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9=\r\n!\r\n--b\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n=41\r\n--b--\r\n";
        let msg = Message::parse(raw);
        assert_eq!(msg.binary(&[1]).unwrap(), &b"hello\0"[..]);
        assert_eq!(msg.binary(&[2]).unwrap(), "caf\u{e9}!".as_bytes());
        assert_eq!(msg.binary(&[3]).unwrap(), &b"=41"[..]);
        assert_eq!(
            msg.binary(&[]).unwrap(),
            &b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\nhello\0\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\ncaf\xc3\xa9!\r\n--b\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n=41\r\n--b--\r\n"[..]
        );
        assert!(matches!(msg.binary(&[4]), Err(MimeError::NoSuchPart(_))));
        // Not a MIME entity: the field does not count (BODYSTRUCTURE says 7bit).
        let plain = Message::parse(b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n");
        assert_eq!(plain.binary(&[1]).unwrap(), &b"aGVsbG8=\r\n"[..]);
        let single = Message::parse(
            b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n",
        );
        assert_eq!(single.binary(&[1]).unwrap(), &b"hello"[..]);
        assert_eq!(
            single.binary(&[]).unwrap(),
            &b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: binary\r\n\r\nhello"[..]
        );
    }

    #[test]
    fn binary_of_composite_parts_converts_the_leaves_inside() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Transfer-Encoding: base64\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\n\r\naGk=\r\n--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--c\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db\r\n--c--\r\n--b--\r\n";
        let msg = Message::parse(raw);
        // The message inside part 1: its header rewritten, its body decoded.
        assert_eq!(
            msg.binary(&[1]).unwrap(),
            &b"Subject: inner\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: binary\r\n\r\nhi"
                [..]
        );
        // Part 2.1 does not decode and stays as it is; 2.2 is converted.
        assert_eq!(
            msg.binary(&[2]).unwrap(),
            &b"--c\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--c\r\nContent-Transfer-Encoding: binary\r\n\r\na=b\r\n--c--\r\n"[..]
        );
        assert_eq!(msg.binary(&[2, 1]).unwrap(), &b"!!!"[..]);
        // Nothing to convert: the bytes themselves.
        let plain = Message::parse(
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
        );
        assert!(matches!(plain.binary(&[]).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn body_texts_are_decoded_text_parts() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nJ=F6rg\r\n--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+R3LDvMOfZTwvYj4=\r\n--b\r\n\r\nundeclared \xc3\xbc\r\n--b--\r\n";
        let msg = Message::parse(raw);
        assert_eq!(
            msg.body_texts(),
            vec![
                "J\u{f6}rg".to_string(),
                "<b>Gr\u{fc}\u{df}e</b>".to_string(),
                "undeclared \u{fc}".to_string(),
            ]
        );
        assert_eq!(
            Message::parse(b"Subject: x\r\n\r\nplain body\r\n").body_texts(),
            vec!["plain body\r\n".to_string()]
        );
    }

    #[test]
    fn decoded_headers() {
        let msg = Message::parse(b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\n");
        assert_eq!(
            msg.header_text("subject").as_deref(),
            Some("Gr\u{fc}\u{df}e")
        );
        assert_eq!(msg.header_text("from"), None);
    }
}
