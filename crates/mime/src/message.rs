//! [`Message`]: a raw message and its MIME tree, and what IMAP asks of it.

use std::borrow::Cow;

use crate::bodystructure::{BodyStructure, virtual_size};
use crate::decode;
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
    fn decoded_headers() {
        let msg = Message::parse(b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\n");
        assert_eq!(
            msg.header_text("subject").as_deref(),
            Some("Gr\u{fc}\u{df}e")
        );
        assert_eq!(msg.header_text("from"), None);
    }
}
