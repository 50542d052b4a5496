//! Status lines: `+OK` / `-ERR` with the extended response codes of RFC
//! 2449 section 8 and RFC 3206. [`Response`] is what the client reads;
//! [`Refusal`] is the negative answer a server host gives to a decision.

use std::borrow::Cow;
use std::fmt;

/// An extended response code, the bracketed word after `-ERR` (RFC 2449
/// section 8): `resp-code = "[" resp-level *("/" resp-level) "]"`. Kept in
/// upper case, so parsed codes compare equal to the constants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResponseCode(Cow<'static, str>);

impl ResponseCode {
    /// `IN-USE` (RFC 2449): the maildrop is locked by another session.
    pub const IN_USE: ResponseCode = ResponseCode(Cow::Borrowed("IN-USE"));
    /// `LOGIN-DELAY` (RFC 2449): the user logs in too often.
    pub const LOGIN_DELAY: ResponseCode = ResponseCode(Cow::Borrowed("LOGIN-DELAY"));
    /// `SYS/TEMP` (RFC 3206): a temporary system problem; try later.
    pub const SYS_TEMP: ResponseCode = ResponseCode(Cow::Borrowed("SYS/TEMP"));
    /// `SYS/PERM` (RFC 3206): a permanent system problem; tell the user.
    pub const SYS_PERM: ResponseCode = ResponseCode(Cow::Borrowed("SYS/PERM"));
    /// `AUTH` (RFC 3206): the credentials, or the way they were sent, are
    /// refused.
    pub const AUTH: ResponseCode = ResponseCode(Cow::Borrowed("AUTH"));

    /// Checks a code (without brackets): levels of `rchar = %x21-2E /
    /// %x30-5C / %x5E-7E` separated by `/`, at most 64 octets.
    pub fn new(code: &str) -> Option<ResponseCode> {
        let rchar = |b: u8| (0x21..=0x7e).contains(&b) && b != b'/' && b != b']';
        let valid = code.len() <= 64
            && code
                .split('/')
                .all(|level| !level.is_empty() && level.bytes().all(rchar));
        valid.then(|| ResponseCode(Cow::Owned(code.to_ascii_uppercase())))
    }

    /// The code without brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replaces characters that cannot appear in a status line (CR, LF, NUL,
/// other controls) with spaces.
pub(crate) fn clean_text(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Writes `+OK text` or `-ERR [CODE] text` with its CRLF.
fn encode_status(ok: bool, code: Option<&ResponseCode>, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(if ok { b"+OK" } else { b"-ERR" });
    if let Some(code) = code {
        out.extend_from_slice(b" [");
        out.extend_from_slice(code.as_str().as_bytes());
        out.push(b']');
    }
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// A negative answer the server host gives to a decision: `-ERR`, an
/// optional response code and a text.
///
/// ```
/// use ironpost_pop3_proto::{Refusal, ResponseCode};
///
/// let locked = Refusal::new("Maildrop is locked by another session").with_code(ResponseCode::IN_USE);
/// assert_eq!(locked.to_string(), "-ERR [IN-USE] Maildrop is locked by another session");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    code: Option<ResponseCode>,
    text: String,
}

impl Refusal {
    /// `-ERR text`; control characters in `text` become spaces.
    pub fn new(text: impl AsRef<str>) -> Refusal {
        Refusal {
            code: None,
            text: clean_text(text.as_ref()).into_owned(),
        }
    }

    /// The same refusal with a response code.
    pub fn with_code(mut self, code: ResponseCode) -> Refusal {
        self.code = Some(code);
        self
    }

    /// The response code.
    pub fn code(&self) -> Option<&ResponseCode> {
        self.code.as_ref()
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        encode_status(false, self.code.as_ref(), &self.text, out);
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = Vec::new();
        self.encode(&mut line);
        f.write_str(String::from_utf8_lossy(&line).trim_end())
    }
}

/// Why a line from the server could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The line starts with neither `+OK` nor `-ERR`.
    #[error("a status line must start with +OK or -ERR")]
    NotAStatus,
    /// A line longer than [`ClientLimits::response_line`](crate::ClientLimits::response_line).
    #[error("the server sent a line longer than the limit")]
    LineTooLong,
    /// A STAT, LIST or UIDL answer that is not `number SP value`.
    #[error("malformed STAT, LIST or UIDL answer")]
    BadListing,
    /// A `+ ` continuation where none is expected, or none where one is.
    #[error("unexpected continuation request")]
    UnexpectedContinuation,
}

/// A status line as the client reads it: `+OK` or `-ERR`, an optional
/// response code and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    ok: bool,
    code: Option<ResponseCode>,
    text: String,
}

impl Response {
    /// A positive response.
    pub fn ok(text: impl AsRef<str>) -> Response {
        Response {
            ok: true,
            code: None,
            text: clean_text(text.as_ref()).into_owned(),
        }
    }

    /// A negative response.
    pub fn err(code: Option<ResponseCode>, text: impl AsRef<str>) -> Response {
        Response {
            ok: false,
            code,
            text: clean_text(text.as_ref()).into_owned(),
        }
    }

    /// Parses a status line without its line end: `"+OK" [SP text]` or
    /// `"-ERR" [SP text]` (RFC 1939 section 3, upper case required there,
    /// any case accepted here), the text optionally starting with a
    /// response code in brackets (RFC 2449 section 8). Invalid UTF-8 in
    /// the text is replaced.
    pub fn parse(line: &[u8]) -> Result<Response, ResponseError> {
        let (ok, rest) = if starts_with_ignore_case(line, b"+OK") {
            (true, &line[3..])
        } else if starts_with_ignore_case(line, b"-ERR") {
            (false, &line[4..])
        } else {
            return Err(ResponseError::NotAStatus);
        };
        let text = match rest {
            [] => &[][..],
            [b' ', text @ ..] => text,
            _ => return Err(ResponseError::NotAStatus),
        };
        let (code, text) = split_code(text);
        let text = String::from_utf8_lossy(text);
        Ok(Response {
            ok,
            code,
            text: clean_text(&text).into_owned(),
        })
    }

    /// `+OK` (true) or `-ERR` (false).
    pub fn is_ok(&self) -> bool {
        self.ok
    }

    /// The response code, if the server gave one.
    pub fn code(&self) -> Option<&ResponseCode> {
        self.code.as_ref()
    }

    /// The text after the status and the code.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Writes the line with its CRLF.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_status(self.ok, self.code.as_ref(), &self.text, out);
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = Vec::new();
        self.encode(&mut line);
        f.write_str(String::from_utf8_lossy(&line).trim_end())
    }
}

impl From<Refusal> for Response {
    fn from(refusal: Refusal) -> Response {
        Response {
            ok: false,
            code: refusal.code,
            text: refusal.text,
        }
    }
}

pub(crate) fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `"[" resp-code "]" [SP]` at the start of the text, if there is a valid one.
fn split_code(text: &[u8]) -> (Option<ResponseCode>, &[u8]) {
    let Some(inner) = text.strip_prefix(b"[") else {
        return (None, text);
    };
    let Some(end) = memchr::memchr(b']', inner) else {
        return (None, text);
    };
    let code = std::str::from_utf8(&inner[..end])
        .ok()
        .and_then(ResponseCode::new);
    match code {
        Some(code) => {
            let rest = &inner[end + 1..];
            (Some(code), rest.strip_prefix(b" ").unwrap_or(rest))
        }
        None => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let r = Response::parse(b"+OK 2 320").unwrap();
        assert!(r.is_ok() && r.code().is_none() && r.text() == "2 320");
        let r = Response::parse(b"+OK").unwrap();
        assert!(r.is_ok() && r.text().is_empty());
        let r = Response::parse(b"-ERR [IN-USE] Do you have another POP session running?").unwrap();
        assert!(!r.is_ok());
        assert_eq!(r.code(), Some(&ResponseCode::IN_USE));
        assert_eq!(r.text(), "Do you have another POP session running?");
        let r = Response::parse(b"-err [sys/temp]").unwrap();
        assert_eq!(r.code(), Some(&ResponseCode::SYS_TEMP));
        assert_eq!(r.text(), "");
        let r = Response::parse(b"-ERR [not a code] text").unwrap();
        assert_eq!(r.code(), None);
        assert_eq!(r.text(), "[not a code] text");
        assert_eq!(Response::parse(b"+OKAY"), Err(ResponseError::NotAStatus));
        assert_eq!(Response::parse(b"+ "), Err(ResponseError::NotAStatus));
        assert_eq!(Response::parse(b""), Err(ResponseError::NotAStatus));
        let r = Response::parse(b"+OK caf\xc3\xa9 \x00").unwrap();
        assert_eq!(r.text(), "café  ");
    }

    #[test]
    fn encodes_and_parses_back() {
        for line in [
            "+OK",
            "+OK 2 messages (320 octets)",
            "-ERR [AUTH] Authentication failed",
            "-ERR [SYS/TEMP] Try again later",
            "-ERR",
        ] {
            let r = Response::parse(line.as_bytes()).unwrap();
            let mut out = Vec::new();
            r.encode(&mut out);
            assert_eq!(out, format!("{line}\r\n").into_bytes());
            assert_eq!(r.to_string(), line);
        }
    }

    #[test]
    fn refusals_cannot_break_the_line() {
        let r = Refusal::new("bad\r\n.\r\n+OK").with_code(ResponseCode::SYS_PERM);
        assert_eq!(r.to_string(), "-ERR [SYS/PERM] bad  .  +OK");
        assert_eq!(Response::from(r).code(), Some(&ResponseCode::SYS_PERM));
    }

    #[test]
    fn response_codes_follow_rfc_2449() {
        assert_eq!(ResponseCode::new("in-use"), Some(ResponseCode::IN_USE));
        assert_eq!(ResponseCode::new("SYS/TEMP"), Some(ResponseCode::SYS_TEMP));
        assert!(ResponseCode::new("X-VENDOR/SOMETHING-1").is_some());
        for bad in ["", "A//B", "A/", "A B", "A]", "\u{7f}", &"A".repeat(65)] {
            assert_eq!(ResponseCode::new(bad), None, "{bad:?}");
        }
    }
}
