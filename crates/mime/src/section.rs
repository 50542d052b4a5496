//! IMAP body sections (RFC 3501 section 6.4.5): `BODY[1.2.HEADER]`,
//! `BODY[HEADER.FIELDS (FROM TO)]`, `BODY[3.MIME]`, `BODY[TEXT]<0.100>`...
//!
//! A section is parsed from its text between the brackets
//! ([`Section::parse`]) and a partial range from the text between `<` and
//! `>` ([`Partial::parse`]); [`crate::Message::section`] extracts the bytes.

use crate::error::MimeError;

/// What part of the addressed entity a section asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// The whole entity (`BODY[]`), or the body of a numbered part.
    Full,
    /// `HEADER`: the header block, empty line included.
    Header,
    /// `HEADER.FIELDS (...)`: only the named fields, then an empty line.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (...)`: all fields but the named ones.
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`: the body.
    Text,
    /// `MIME`: the MIME header of a numbered part.
    Mime,
}

/// A parsed section specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The part numbers (`1.2` is `[1, 2]`), empty for the message itself.
    pub part: Vec<u32>,
    /// What is asked of that part.
    pub text: SectionText,
}

/// A partial range `<start.count>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// First octet.
    pub start: u64,
    /// Number of octets.
    pub count: u64,
}

impl Partial {
    /// Parses `start.count`.
    pub fn parse(text: &str) -> Result<Partial, MimeError> {
        let bad = || MimeError::BadSection(format!("<{text}>"));
        let (start, count) = text.split_once('.').ok_or_else(bad)?;
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<u64>().map_err(|_| bad())
        };
        Ok(Partial {
            start: number(start)?,
            count: number(count)?,
        })
    }

    /// The bytes of `data` in this range (empty past the end).
    pub fn apply<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let start = usize::try_from(self.start)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let count = usize::try_from(self.count).unwrap_or(usize::MAX);
        let end = start.saturating_add(count).min(data.len());
        &data[start..end]
    }
}

impl Section {
    /// Parses the text between the brackets of `BODY[...]` (case does not
    /// matter; field names keep the case given).
    pub fn parse(spec: &str) -> Result<Section, MimeError> {
        let bad = || MimeError::BadSection(spec.to_string());
        let mut part = Vec::new();
        let mut rest = spec;
        while let Some(c) = rest.chars().next()
            && c.is_ascii_digit()
        {
            let end = rest.find('.').unwrap_or(rest.len());
            let number: u32 = rest[..end].parse().map_err(|_| bad())?;
            if number == 0 {
                return Err(bad());
            }
            part.push(number);
            rest = if end == rest.len() {
                ""
            } else {
                &rest[end + 1..]
            };
            if rest.is_empty() {
                if spec.ends_with('.') {
                    return Err(bad());
                }
                break;
            }
        }
        let upper = rest.to_ascii_uppercase();
        let text = if rest.is_empty() {
            SectionText::Full
        } else if upper == "HEADER" {
            SectionText::Header
        } else if upper == "TEXT" {
            SectionText::Text
        } else if upper == "MIME" {
            if part.is_empty() {
                return Err(bad());
            }
            SectionText::Mime
        } else if let Some(list) = upper.strip_prefix("HEADER.FIELDS.NOT") {
            SectionText::HeaderFieldsNot(
                field_list(&rest[rest.len() - list.len()..]).ok_or_else(bad)?,
            )
        } else if let Some(list) = upper.strip_prefix("HEADER.FIELDS") {
            SectionText::HeaderFields(field_list(&rest[rest.len() - list.len()..]).ok_or_else(bad)?)
        } else {
            return Err(bad());
        };
        Ok(Section { part, text })
    }

    /// The section text as IMAP writes it in a FETCH answer (`1.MIME`,
    /// `HEADER.FIELDS (FROM TO)`).
    pub fn to_imap_string(&self) -> String {
        let mut out: Vec<String> = self.part.iter().map(u32::to_string).collect();
        match &self.text {
            SectionText::Full => {}
            SectionText::Header => out.push("HEADER".into()),
            SectionText::Text => out.push("TEXT".into()),
            SectionText::Mime => out.push("MIME".into()),
            SectionText::HeaderFields(list) => {
                out.push(format!("HEADER.FIELDS ({})", list.join(" ")));
            }
            SectionText::HeaderFieldsNot(list) => {
                out.push(format!("HEADER.FIELDS.NOT ({})", list.join(" ")));
            }
        }
        out.join(".")
    }
}

/// ` (A B C)` into field names.
fn field_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim_start().strip_prefix('(')?.strip_suffix(')')?;
    let names: Vec<String> = inner.split_ascii_whitespace().map(str::to_string).collect();
    if names.is_empty()
        || names
            .iter()
            .any(|n| n.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f))
    {
        return None;
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections() {
        assert_eq!(
            Section::parse("1.2.MIME").unwrap(),
            Section {
                part: vec![1, 2],
                text: SectionText::Mime
            }
        );
        assert_eq!(Section::parse("").unwrap().text, SectionText::Full);
        assert_eq!(Section::parse("3").unwrap().part, vec![3]);
        assert_eq!(
            Section::parse("header.fields (From To)").unwrap().text,
            SectionText::HeaderFields(vec!["From".into(), "To".into()])
        );
        assert_eq!(
            Section::parse("2.HEADER.FIELDS.NOT (Received)").unwrap(),
            Section {
                part: vec![2],
                text: SectionText::HeaderFieldsNot(vec!["Received".into()])
            }
        );
        for bad in [
            "MIME",
            "0",
            "1.",
            "1..2",
            "HEADER.FIELDS ()",
            "BOGUS",
            "1.x",
        ] {
            assert!(Section::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_sections() {
        for text in ["1.2.MIME", "HEADER.FIELDS (FROM TO)", "3", "TEXT"] {
            assert_eq!(Section::parse(text).unwrap().to_imap_string(), text);
        }
    }

    #[test]
    fn partial_ranges() {
        let p = Partial::parse("2.3").unwrap();
        assert_eq!(p.apply(b"abcdef"), b"cde");
        assert_eq!(Partial::parse("10.3").unwrap().apply(b"abc"), b"");
        assert!(Partial::parse("1").is_err());
        assert!(Partial::parse("-1.2").is_err());
    }
}
