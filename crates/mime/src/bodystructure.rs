//! IMAP BODYSTRUCTURE, extended form (RFC 3501 section 7.4.2): every field,
//! for every part, with the IMAP wire rendering; and the non-extensible form
//! that FETCH BODY answers with (the same without extension data).
//!
//! Strings keep the case and bytes of the message (`"TEXT" "HTML"` stays as
//! written); a text part without a charset gets `("charset" "us-ascii")`, a
//! part without Content-Type is `text/plain`, a missing transfer encoding is
//! `7bit`. Sizes are octets of the body with CRLF line ends (a bare LF counts
//! as two); line counts are given for text/* and message/rfc822 parts.

use crate::envelope::Envelope;
use crate::header::HeaderField;
use crate::imap_string::{write_nstring_nolf, write_string};
use crate::lex::{Lexer, Step};
use crate::structure::{Part, PartKind, parse_media_type};

/// A `Content-Disposition`: value and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// `inline`, `attachment`, ... as written.
    pub value: Vec<u8>,
    /// The parameters, RFC 2231 continuations merged.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The extension data every part carries in BODYSTRUCTURE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    /// `Content-Disposition`.
    pub disposition: Option<Disposition>,
    /// `Content-Language` tags.
    pub language: Option<Vec<Vec<u8>>>,
    /// `Content-Location` (raw).
    pub location: Option<Vec<u8>>,
}

/// What kind of body a [`BodyStructure`] describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A multipart: its parts and subtype.
    Multipart {
        /// The parts, in order (a multipart without parts shows one empty
        /// text/plain part, as servers do).
        parts: Vec<BodyStructure>,
        /// The subtype (`mixed`, `alternative`, ...).
        subtype: Vec<u8>,
        /// The Content-Type parameters.
        params: Vec<(Vec<u8>, Vec<u8>)>,
        /// Disposition, language and location.
        extension: Extension,
    },
    /// Any single part.
    Single(Box<SinglePart>),
}

/// A non-multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinglePart {
    /// The media type (`text`, `image`, ...).
    pub media_type: Vec<u8>,
    /// The subtype.
    pub subtype: Vec<u8>,
    /// The Content-Type parameters (a default charset added for text).
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    /// `Content-ID`.
    pub id: Option<Vec<u8>>,
    /// `Content-Description`.
    pub description: Option<Vec<u8>>,
    /// `Content-Transfer-Encoding` (`7bit` when absent or unreadable).
    pub encoding: Vec<u8>,
    /// Body size in octets (CRLF line ends).
    pub size: u64,
    /// Line count, for text/* and message/rfc822 parts.
    pub lines: Option<u64>,
    /// For message/rfc822: the envelope and structure of the message inside.
    pub message: Option<(Envelope, Box<BodyStructure>)>,
    /// `Content-MD5`.
    pub md5: Option<Vec<u8>>,
    /// Disposition, language and location.
    pub extension: Extension,
}

/// The BODYSTRUCTURE of a message or part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyStructure {
    /// The body.
    pub body: Body,
}

/// The Content-* data of one part's header.
#[derive(Default)]
pub(crate) struct ContentFields {
    media: Option<(Vec<u8>, Option<Vec<u8>>)>,
    pub(crate) params: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) encoding: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
    description: Option<Vec<u8>>,
    md5: Option<Vec<u8>>,
    disposition: Option<Disposition>,
    language: Option<Vec<Vec<u8>>>,
    location: Option<Vec<u8>>,
}

pub(crate) fn content_fields(raw: &[u8], fields: &[HeaderField]) -> ContentFields {
    let mut c = ContentFields::default();
    for field in fields {
        let name = field.name(raw);
        if name.len() < 8 || !name[..8].eq_ignore_ascii_case(b"Content-") {
            continue;
        }
        let value = field.value(raw);
        let rest = name[8..].to_ascii_lowercase();
        match rest.as_slice() {
            b"type" if c.media.is_none() => {
                let mut lexer = Lexer::new(&value);
                let mut media = Vec::new();
                let step = parse_media_type(&mut lexer, &mut media);
                let (ty, sub) = match media.iter().position(|&b| b == b'/') {
                    Some(i) => (media[..i].to_vec(), Some(media[i + 1..].to_vec())),
                    None => (media, None),
                };
                c.media = Some((ty, sub));
                if step != Step::Broken {
                    c.params = lexer.parse_parameters();
                }
            }
            b"transfer-encoding" if c.encoding.is_none() => {
                let mut lexer = Lexer::new(&value);
                let mut token = Vec::new();
                if lexer.skip_lwsp() != Step::Broken
                    && lexer.parse_mime_token(&mut token) != Step::Broken
                    && lexer.skip_lwsp() == Step::End
                    && !token.is_empty()
                {
                    c.encoding = Some(token);
                }
            }
            b"id" if c.id.is_none() => c.id = Some(value.into_owned()),
            b"md5" if c.md5.is_none() => c.md5 = Some(value.into_owned()),
            b"description" if c.description.is_none() => {
                c.description = Some(value.into_owned());
            }
            b"location" if c.location.is_none() => c.location = Some(value.into_owned()),
            b"language" if c.language.is_none() => {
                let mut lexer = Lexer::new(&value);
                let mut tags = Vec::new();
                lexer.skip_lwsp();
                loop {
                    let mut tag = Vec::new();
                    if lexer.parse_atom(&mut tag) == Step::Broken {
                        break;
                    }
                    tags.push(tag);
                    if lexer.at_end() || lexer.peek() != b',' {
                        break;
                    }
                    lexer.bump();
                    lexer.skip_lwsp();
                }
                if !tags.is_empty() {
                    c.language = Some(tags);
                }
            }
            b"disposition" if c.disposition.as_ref().is_none_or(|d| d.params.is_empty()) => {
                let mut lexer = Lexer::new(&value);
                let mut token = Vec::new();
                lexer.skip_lwsp();
                if lexer.parse_mime_token(&mut token) != Step::Broken {
                    let params = lexer.parse_parameters();
                    c.disposition = Some(Disposition {
                        value: token,
                        params,
                    });
                }
            }
            _ => {}
        }
    }
    c
}

/// A body size with CRLF line ends: octets plus one for every bare LF.
pub(crate) fn virtual_size(bytes: &[u8]) -> u64 {
    let mut bare = 0u64;
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            bare += 1;
        }
        prev = b;
    }
    bytes.len() as u64 + bare
}

pub(crate) fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn empty_text_part() -> BodyStructure {
    BodyStructure {
        body: Body::Single(Box::new(SinglePart {
            media_type: b"text".to_vec(),
            subtype: b"plain".to_vec(),
            params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
            id: None,
            description: None,
            encoding: b"7bit".to_vec(),
            size: 0,
            lines: Some(0),
            message: None,
            md5: None,
            extension: Extension::default(),
        })),
    }
}

impl BodyStructure {
    /// The structure of `part` of the message `raw`.
    pub fn of(raw: &[u8], part: &Part) -> BodyStructure {
        // Deep trees are bounded by `Limits::max_depth`, so recursion depth
        // is too.
        let c = if part.is_mime {
            content_fields(raw, &part.fields)
        } else {
            ContentFields::default()
        };
        let extension = Extension {
            disposition: c.disposition,
            language: c.language,
            location: c.location,
        };
        if part.multipart {
            let mut parts: Vec<BodyStructure> = part
                .children()
                .iter()
                .map(|child| BodyStructure::of(raw, child))
                .collect();
            if parts.is_empty() {
                parts.push(empty_text_part());
            }
            let subtype = c.media.and_then(|(_, s)| s).unwrap_or_default();
            return BodyStructure {
                body: Body::Multipart {
                    parts,
                    subtype,
                    params: c.params,
                    extension,
                },
            };
        }
        let body = raw.get(part.body.clone()).unwrap_or_default();
        let (media_type, subtype, text, message) = match &part.kind {
            PartKind::Message(inner) => (
                b"message".to_vec(),
                b"rfc822".to_vec(),
                false,
                Some((
                    Envelope::from_fields(raw, &inner.fields),
                    Box::new(BodyStructure::of(raw, inner)),
                )),
            ),
            _ => match c.media {
                None => (b"text".to_vec(), b"plain".to_vec(), true, None),
                Some((_, _)) if part.overflow => (
                    b"application".to_vec(),
                    b"octet-stream".to_vec(),
                    false,
                    None,
                ),
                Some((ty, sub)) => {
                    let text = ty.eq_ignore_ascii_case(b"text");
                    (ty, sub.unwrap_or_default(), text, None)
                }
            },
        };
        let mut params = c.params;
        if text
            && !params
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
        {
            params.push((b"charset".to_vec(), b"us-ascii".to_vec()));
        }
        let lines = (text || message.is_some()).then(|| count_lines(body));
        BodyStructure {
            body: Body::Single(Box::new(SinglePart {
                media_type,
                subtype,
                params,
                id: c.id,
                description: c.description,
                encoding: c.encoding.unwrap_or_else(|| b"7bit".to_vec()),
                size: virtual_size(body),
                lines,
                message,
                md5: c.md5,
                extension,
            })),
        }
    }

    /// Appends the extended BODYSTRUCTURE wire form.
    pub fn write_imap(&self, out: &mut Vec<u8>) {
        self.write(out, true);
    }

    /// The wire form as a byte string.
    pub fn to_imap_string(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_imap(&mut out);
        out
    }

    /// Appends the non-extensible form that FETCH `BODY` answers with
    /// (RFC 3501 `body` without `body-ext-1part` / `body-ext-mpart`, also in
    /// the structure of an attached message): the extended form without the
    /// multipart parameters, MD5, disposition, language and location.
    pub fn write_imap_non_extensible(&self, out: &mut Vec<u8>) {
        self.write(out, false);
    }

    /// The non-extensible wire form as a byte string.
    pub fn to_imap_string_non_extensible(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_imap_non_extensible(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>, extended: bool) {
        out.push(b'(');
        match &self.body {
            Body::Multipart {
                parts,
                subtype,
                params,
                extension,
            } => {
                for part in parts {
                    part.write(out, extended);
                }
                out.push(b' ');
                write_string(out, subtype);
                if extended {
                    out.push(b' ');
                    write_params(out, params);
                    write_extension(out, extension);
                }
            }
            Body::Single(p) => {
                write_string(out, &p.media_type);
                out.push(b' ');
                write_string(out, &p.subtype);
                out.push(b' ');
                write_params(out, &p.params);
                out.push(b' ');
                write_nstring_nolf(out, p.id.as_deref());
                out.push(b' ');
                write_nstring_nolf(out, p.description.as_deref());
                out.push(b' ');
                write_string(out, &p.encoding);
                out.extend_from_slice(format!(" {}", p.size).as_bytes());
                if let Some((envelope, body)) = &p.message {
                    out.push(b' ');
                    envelope.write_imap(out);
                    out.push(b' ');
                    body.write(out, extended);
                }
                if let Some(lines) = p.lines {
                    out.extend_from_slice(format!(" {lines}").as_bytes());
                }
                if extended {
                    out.push(b' ');
                    write_nstring_nolf(out, p.md5.as_deref());
                    write_extension(out, &p.extension);
                }
            }
        }
        out.push(b')');
    }
}

fn write_params(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_string(out, k);
        out.push(b' ');
        write_string(out, v);
    }
    out.push(b')');
}

fn write_extension(out: &mut Vec<u8>, ext: &Extension) {
    out.push(b' ');
    match &ext.disposition {
        None => out.extend_from_slice(b"NIL"),
        Some(d) => {
            out.push(b'(');
            write_string(out, &d.value);
            out.push(b' ');
            write_params(out, &d.params);
            out.push(b')');
        }
    }
    out.push(b' ');
    match &ext.language {
        None => out.extend_from_slice(b"NIL"),
        Some(tags) => {
            out.push(b'(');
            for (i, tag) in tags.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_string(out, tag);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    write_nstring_nolf(out, ext.location.as_deref());
}

#[cfg(test)]
mod tests {
    use crate::Message;

    #[test]
    fn non_extensible_form_drops_extension_data() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\nContent-Language: en\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\nContent-MD5: abc\r\n\r\nhi\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\nContent-Type: multipart/alternative; boundary=c\r\nMIME-Version: 1.0\r\n\r\n--c\r\nContent-Type: text/html\r\nContent-Location: x\r\n\r\n<p>\r\n--c--\r\n--b--\r\n";
        let bs = Message::parse(raw).body_structure();
        assert_eq!(
            String::from_utf8(bs.to_imap_string_non_extensible()).unwrap(),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 2 0)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 147 \
             (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             ((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"alternative\") 10) \
             \"mixed\")"
        );
        assert_eq!(
            String::from_utf8(bs.to_imap_string()).unwrap(),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 2 0 \"abc\" (\"inline\" NIL) NIL NIL)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 147 \
             (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             ((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL \"x\") \"alternative\" (\"boundary\" \"c\") NIL NIL NIL) 10 NIL NIL NIL NIL) \
             \"mixed\" (\"boundary\" \"b\") NIL (\"en\") NIL)"
        );
    }
}
