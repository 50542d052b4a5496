//! The message model of the Ironpost mail server, built on `mail-parser` and
//! `mail-builder`.
//!
//! - [`Message`]: a raw message and its MIME tree; IMAP [`Envelope`],
//!   extended [`BodyStructure`], `RFC822.SIZE` and body sections
//!   ([`Section`], [`Partial`]) with their exact IMAP wire renderings
//!   (`to_imap_string` / `write_imap`). Answers match what mainstream IMAP
//!   servers send for the same bytes, broken mail included (a golden test
//!   compares with Dovecot byte for byte).
//! - [`decode`]: header text with RFC 2047 encoded words, RFC 2231
//!   parameters, charsets and transfer encodings, for filters and people.
//! - [`edit`]: changes that leave every byte outside the edit as it was:
//!   prepend trace headers, set / replace / remove a header, prefix the
//!   subject, append signatures, replace an attachment with a notice.
//! - [`generate`]: delivery status notifications (RFC 3464), auto-replies,
//!   quota and virus notices.
//!
//! Nothing here does I/O: bytes in, bytes or values out. Messages are
//! expected as stored, with CRLF line ends ([`normalize_crlf`] turns LF-only
//! input into that form); sizes count a bare LF as two octets either way.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bodystructure;
pub mod decode;
pub mod edit;
pub mod envelope;
pub mod error;
pub mod generate;
pub mod header;
pub mod imap_string;
mod lex;
mod message;
pub mod section;
pub mod structure;

use std::borrow::Cow;

pub use bodystructure::{Body, BodyStructure, Disposition, Extension, SinglePart};
pub use envelope::{Address, Envelope};
pub use error::MimeError;
pub use message::Message;
pub use section::{Partial, Section, SectionText};
pub use structure::{Limits, Part, PartKind};

/// Turns every bare LF into CRLF (existing CRLF pairs are kept), the form in
/// which Ironpost stores messages and IMAP sends them.
pub fn normalize_crlf(raw: &[u8]) -> Cow<'_, [u8]> {
    let bare = raw
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
    if !bare {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 16);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::normalize_crlf;

    #[test]
    fn normalizes_line_ends() {
        assert_eq!(&*normalize_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert!(matches!(
            normalize_crlf(b"a\r\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
