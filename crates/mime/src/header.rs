//! Header fields of one header block, as byte ranges of the raw message.
//!
//! A field runs from its name to the end of its last continuation line. The
//! rules follow what IMAP servers do with real mail: the name is everything
//! before the first `:` of the first line with trailing blanks removed, a line
//! without `:` is a field whose name is the whole line and whose value is
//! empty, the value starts after the blanks following the colon, and a block
//! ends at an empty line or at the end of the data.

use std::borrow::Cow;
use std::ops::Range;

/// One header field of a message or body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// The whole field: name, colon, value and its final line break.
    pub raw: Range<usize>,
    /// The field name (trailing blanks before the colon removed).
    pub name: Range<usize>,
    /// The value: from the first non-blank byte after the colon to the end of
    /// the last continuation line, line breaks of folding included, final line
    /// break excluded. Empty for a line without a colon.
    pub value: Range<usize>,
}

impl HeaderField {
    /// The name bytes in `raw_message`.
    pub fn name<'a>(&self, raw_message: &'a [u8]) -> &'a [u8] {
        raw_message.get(self.name.clone()).unwrap_or_default()
    }

    /// Whether the name is `name`, ignoring ASCII case.
    pub fn is(&self, raw_message: &[u8], name: &str) -> bool {
        self.name(raw_message).eq_ignore_ascii_case(name.as_bytes())
    }

    /// The raw value bytes (folding kept), with NUL bytes replaced by U+FFFD
    /// as IMAP servers do before they put header text on the wire.
    pub fn value<'a>(&self, raw_message: &'a [u8]) -> Cow<'a, [u8]> {
        let value = raw_message.get(self.value.clone()).unwrap_or_default();
        if value.contains(&0) {
            let mut out = Vec::with_capacity(value.len() + 8);
            for &b in value {
                if b == 0 {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                } else {
                    out.push(b);
                }
            }
            Cow::Owned(out)
        } else {
            Cow::Borrowed(value)
        }
    }
}

/// What [`next_field`] found at a line start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// A header field.
    Field(HeaderField),
    /// The empty line that ends the header; the body starts at `body`.
    End {
        /// The offset just past the empty line.
        body: usize,
    },
    /// The data ended.
    Eof,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The end of the line starting at `pos`: (content end, next line start).
fn line_end(data: &[u8], pos: usize) -> (usize, usize) {
    match data[pos..].iter().position(|&b| b == b'\n') {
        Some(i) => {
            let lf = pos + i;
            let end = if lf > pos && data[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            (end, lf + 1)
        }
        None => (data.len(), data.len()),
    }
}

/// Parses the field (with continuation lines) that starts at `pos`.
pub(crate) fn next_field(data: &[u8], pos: usize) -> Line {
    if pos >= data.len() {
        return Line::Eof;
    }
    let (first_end, mut next) = line_end(data, pos);
    if first_end == pos && next > pos && data[next - 1] == b'\n' {
        return Line::End { body: next };
    }
    let mut last_end = first_end;
    while next < data.len() && is_blank(data[next]) {
        let (end, after) = line_end(data, next);
        last_end = end;
        next = after;
    }
    let (name, value) = match data[pos..first_end].iter().position(|&b| b == b':') {
        Some(i) => {
            let colon = pos + i;
            let mut name_end = colon;
            while name_end > pos && is_blank(data[name_end - 1]) {
                name_end -= 1;
            }
            let mut start = colon + 1;
            while start < first_end && is_blank(data[start]) {
                start += 1;
            }
            if start == first_end && first_end > colon + 1 {
                // only blanks on the first line: skip just one of them
                start = colon + 2;
            }
            (pos..name_end, start..last_end)
        }
        None => (pos..first_end, first_end..first_end),
    };
    Line::Field(HeaderField {
        raw: pos..next,
        name,
        value,
    })
}

/// Every field of the header block starting at `start`, and where the body
/// starts (past the empty line, or the end of the data).
pub fn parse_block(data: &[u8], start: usize) -> (Vec<HeaderField>, usize) {
    let mut fields = Vec::new();
    let mut pos = start;
    loop {
        match next_field(data, pos) {
            Line::Field(field) => {
                pos = field.raw.end;
                fields.push(field);
            }
            Line::End { body } => return (fields, body),
            Line::Eof => return (fields, data.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fields_and_body() {
        let data = b"From : a@b\r\nSubject:   hi\r\n there\r\nX-No-Colon\r\n\r\nbody";
        let (fields, body) = parse_block(data, 0);
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[0].name(data), b"From");
        assert_eq!(&*fields[1].value(data), b"hi\r\n there");
        assert_eq!(fields[2].name(data), b"X-No-Colon");
        assert!(fields[2].value.is_empty());
        assert_eq!(&data[body..], b"body");
    }

    #[test]
    fn header_without_end_line() {
        let data = b"Subject: x";
        let (fields, body) = parse_block(data, 0);
        assert_eq!(fields.len(), 1);
        assert_eq!(body, data.len());
        assert_eq!(&*fields[0].value(data), b"x");
    }

    #[test]
    fn blank_only_value_keeps_all_but_one_blank() {
        let data = b"Subject:   \n x\n\n";
        let (fields, _) = parse_block(data, 0);
        assert_eq!(&*fields[0].value(data), b"  \n x");
    }

    #[test]
    fn nul_becomes_replacement_character() {
        let data = b"Subject: a\0b\n\n";
        let (fields, _) = parse_block(data, 0);
        assert_eq!(&*fields[0].value(data), "a\u{fffd}b".as_bytes());
    }
}
