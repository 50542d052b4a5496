//! Decoded values for people and filters (not for the IMAP wire, which
//! carries raw bytes): RFC 2047 encoded words in header text, RFC 2231
//! parameter values, charsets and transfer encodings. The decoding itself is
//! mail-parser's.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{HeaderValue, MessageParser};

/// `bytes` in `charset` as UTF-8; an unknown or empty charset reads the bytes
/// as UTF-8 (invalid sequences become U+FFFD).
pub fn charset_to_utf8(charset: &[u8], bytes: &[u8]) -> String {
    match charset_decoder(charset) {
        Some(decode) if !charset.is_empty() => decode(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decodes an unstructured header value (Subject, Comments, display text):
/// unfolds it and decodes RFC 2047 encoded words; 8-bit bytes are read as
/// UTF-8.
pub fn decode_text(raw_value: &[u8]) -> String {
    let mut block = Vec::with_capacity(raw_value.len() + 16);
    block.extend_from_slice(b"Subject: ");
    block.extend_from_slice(raw_value);
    block.extend_from_slice(b"\r\n\r\n");
    let parsed = MessageParser::default().parse_headers(&block);
    match parsed
        .as_ref()
        .and_then(|m| m.headers().first())
        .map(|h| h.value())
    {
        Some(HeaderValue::Text(text)) => text.to_string(),
        Some(HeaderValue::TextList(list)) => list.join(" "),
        _ => String::new(),
    }
}

/// A parameter value for people: an RFC 2231 extended value (`name*` keys,
/// `charset'lang'%xx`) is percent-decoded and converted from its charset,
/// any other value has its RFC 2047 encoded words decoded.
pub fn decode_parameter(key: &[u8], value: &[u8]) -> String {
    if key.ends_with(b"*") {
        crate::lex::decode_rfc2231_value(value)
    } else {
        decode_text(value)
    }
}

/// Transfer encodings of a body part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferEncoding {
    /// 7bit, 8bit, binary or anything unknown: the bytes as they are.
    Identity,
    /// base64.
    Base64,
    /// quoted-printable.
    QuotedPrintable,
}

impl TransferEncoding {
    /// The encoding named by a Content-Transfer-Encoding value.
    pub fn from_name(name: &[u8]) -> TransferEncoding {
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"base64") {
            TransferEncoding::Base64
        } else if name.eq_ignore_ascii_case(b"quoted-printable") {
            TransferEncoding::QuotedPrintable
        } else {
            TransferEncoding::Identity
        }
    }

    /// Decodes `body`; content that does not decode is returned unchanged
    /// (what a mail client shows for a broken part).
    pub fn decode(self, body: &[u8]) -> Vec<u8> {
        let decoded = match self {
            TransferEncoding::Identity => None,
            TransferEncoding::Base64 => base64_decode(body),
            TransferEncoding::QuotedPrintable => quoted_printable_decode(body),
        };
        decoded.unwrap_or_else(|| body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words() {
        assert_eq!(
            decode_text(b"=?UTF-8?Q?J=C3=B6rg?= and =?ISO-8859-1?B?SvZyZw==?="),
            "J\u{f6}rg and J\u{f6}rg"
        );
        assert_eq!(decode_text(b"plain\r\n folded"), "plain folded");
    }

    #[test]
    fn parameters() {
        assert_eq!(
            decode_parameter(b"filename*", b"utf-8''na%C3%AFve.txt"),
            "na\u{ef}ve.txt"
        );
        assert_eq!(
            decode_parameter(b"name", b"=?utf-8?b?w6QucG5n?="),
            "\u{e4}.png"
        );
    }

    #[test]
    fn transfer_encodings() {
        assert_eq!(
            TransferEncoding::from_name(b" BASE64").decode(b"aGVsbG8="),
            b"hello"
        );
        assert_eq!(
            TransferEncoding::QuotedPrintable.decode(b"caf=C3=A9"),
            "caf\u{e9}".as_bytes()
        );
        assert_eq!(TransferEncoding::Base64.decode(b"!!!"), b"!!!");
    }
}
