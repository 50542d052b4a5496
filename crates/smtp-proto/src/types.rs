//! Validated SMTP values: addresses, paths, parameters, credentials.
//!
//! Every type here is built by a parser (or a checked constructor) and cannot
//! hold a value the grammar of RFC 5321 / RFC 6531 would refuse.

use std::fmt;

/// An email address `local-part@domain` as used in SMTP paths (RFC 5321
/// `Mailbox`, RFC 6531 when it carries UTF-8).
///
/// The local part is kept in its unquoted form: `"john doe"@example.com`
/// has the local part `john doe`; [`Address::encode`] quotes it again.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    full: String,
    at: usize,
}

impl Address {
    /// Builds an address from a local part and a domain, checking both.
    pub fn new(local: &str, domain: &str) -> Result<Self, InvalidAddress> {
        if local.is_empty() || local.len() > 256 || local.contains(['\r', '\n', '\0']) {
            return Err(InvalidAddress);
        }
        if !is_domain_or_literal(domain.as_bytes()) {
            return Err(InvalidAddress);
        }
        let mut full = String::with_capacity(local.len() + 1 + domain.len());
        full.push_str(local);
        full.push('@');
        full.push_str(domain);
        Ok(Address {
            at: local.len(),
            full,
        })
    }

    /// Builds an address from parts the parser has already checked.
    pub(crate) fn from_checked(local: &str, domain: &str) -> Self {
        let mut full = String::with_capacity(local.len() + 1 + domain.len());
        full.push_str(local);
        full.push('@');
        full.push_str(domain);
        Address {
            at: local.len(),
            full,
        }
    }

    /// Builds an address from the checked text `local@domain` whose `@` is
    /// at `at`.
    pub(crate) fn from_checked_full(full: &str, at: usize) -> Self {
        debug_assert_eq!(full.as_bytes()[at], b'@');
        Address {
            full: full.to_owned(),
            at,
        }
    }

    /// Parses `local@domain` (the local part may be quoted).
    pub fn parse(text: &str) -> Result<Self, InvalidAddress> {
        crate::command::parse_mailbox(text).ok_or(InvalidAddress)
    }

    /// The local part, unquoted.
    pub fn local_part(&self) -> &str {
        &self.full[..self.at]
    }

    /// The domain (or address literal such as `[192.0.2.1]`).
    pub fn domain(&self) -> &str {
        &self.full[self.at + 1..]
    }

    /// The address as `local@domain` with the local part unquoted.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// Whether the address is pure ASCII (needs no SMTPUTF8).
    pub fn is_ascii(&self) -> bool {
        self.full.is_ascii()
    }

    /// Appends the wire form (local part quoted when it must be) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let local = self.local_part();
        if is_dot_string(local.as_bytes()) {
            out.extend_from_slice(local.as_bytes());
        } else {
            out.push(b'"');
            for &b in local.as_bytes() {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        }
        out.push(b'@');
        out.extend_from_slice(self.domain().as_bytes());
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.full)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wire = Vec::new();
        self.encode(&mut wire);
        f.write_str(&String::from_utf8_lossy(&wire))
    }
}

/// The error of [`Address::new`] and [`Address::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid email address")]
pub struct InvalidAddress;

/// The sender of a transaction: an address or the null path `<>` used by
/// bounces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`: no sender, used by delivery status notifications.
    Null,
    /// A sender address.
    Mailbox(Address),
}

impl ReversePath {
    /// The address, unless this is the null path.
    pub fn address(&self) -> Option<&Address> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(a) => Some(a),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'<');
        if let ReversePath::Mailbox(a) = self {
            a.encode(out);
        }
        out.push(b'>');
    }
}

/// A recipient: an address, or the special `<Postmaster>` with no domain
/// (RFC 5321 section 4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain: the postmaster of this server.
    Postmaster,
    /// A recipient address.
    Mailbox(Address),
}

impl ForwardPath {
    /// The address, unless this is the bare `<Postmaster>`.
    pub fn address(&self) -> Option<&Address> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(a) => Some(a),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'<');
        match self {
            ForwardPath::Postmaster => out.extend_from_slice(b"Postmaster"),
            ForwardPath::Mailbox(a) => a.encode(out),
        }
        out.push(b'>');
    }

    pub(crate) fn is_ascii(&self) -> bool {
        self.address().is_none_or(Address::is_ascii)
    }
}

/// The `BODY=` parameter of MAIL (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
    /// `BODY=BINARYMIME`: only with BDAT.
    BinaryMime,
}

impl BodyType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        }
    }
}

/// The `RET=` parameter of MAIL (RFC 3461): what a DSN returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the headers only.
    Headers,
}

/// The `NOTIFY=` parameter of RCPT (RFC 3461).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Notify {
    /// Notify on successful delivery.
    pub success: bool,
    /// Notify on failure.
    pub failure: bool,
    /// Notify on delay.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// Whether this is `NEVER`.
    pub fn is_never(self) -> bool {
        self == Notify::NEVER
    }
}

/// The `ORCPT=` parameter of RCPT (RFC 3461): the original recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginalRecipient {
    /// The address type, usually `rfc822`.
    pub addr_type: String,
    /// The address, xtext-decoded.
    pub address: String,
}

/// An ESMTP parameter this crate has no field for: kept so that encoding
/// what was parsed gives the same bytes, refused by the server session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherParam {
    /// The keyword, as sent.
    pub keyword: String,
    /// The value, if any.
    pub value: Option<String>,
}

/// The parameters of MAIL FROM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct MailParams {
    /// `SIZE=`: the size the client announces (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152, RFC 3030).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461), xtext-decoded.
    pub envid: Option<String>,
    /// `AUTH=` (RFC 4954), xtext-decoded; `Some("<>")` for the empty identity.
    pub auth: Option<String>,
    /// Parameters not listed above, in order.
    pub other: Vec<OtherParam>,
}

/// The parameters of RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct RcptParams {
    /// `NOTIFY=` (RFC 3461).
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461).
    pub orcpt: Option<OriginalRecipient>,
    /// Parameters not listed above, in order.
    pub other: Vec<OtherParam>,
}

/// A SASL mechanism of AUTH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN` (draft-murchison-sasl-login).
    Login,
    /// Any other mechanism name, upper-cased.
    Other(String),
}

impl Mechanism {
    /// The mechanism name as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::Other(name) => name,
        }
    }

    pub(crate) fn from_name(name: &str) -> Mechanism {
        if name.eq_ignore_ascii_case("PLAIN") {
            Mechanism::Plain
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Mechanism::Login
        } else {
            Mechanism::Other(name.to_ascii_uppercase())
        }
    }
}

/// A secret (a password) whose `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Credentials for AUTH (the client session sends them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (the SASL authentication identity).
    pub username: String,
    /// The password.
    pub password: Secret,
}

// ---- character classes (RFC 5321 section 4.1.2, RFC 6531 section 3.3) ----

/// Byte classes of the address grammar, one lookup per byte.
const ATEXT: u8 = 1;
const LDH: u8 = 2;

static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let special = matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        );
        // RFC 6531 allows UTF-8 in both; the caller checks UTF-8 validity.
        if alnum || special || c >= 0x80 {
            table[b] |= ATEXT;
        }
        if alnum || c == b'-' || c == b'_' || c >= 0x80 {
            table[b] |= LDH;
        }
        b += 1;
    }
    table
};

/// `atext` of RFC 5322, extended by RFC 6531 to every non-ASCII byte of
/// valid UTF-8 (the caller checks UTF-8 validity).
pub(crate) fn is_atext(b: u8) -> bool {
    CLASS[usize::from(b)] & ATEXT != 0
}

/// `Let-dig` and `Ldh-str` characters (with `_` and UTF-8, see [`is_domain`]).
pub(crate) fn is_ldh(b: u8) -> bool {
    CLASS[usize::from(b)] & LDH != 0
}

/// `Dot-string = Atom *("." Atom)`.
pub(crate) fn is_dot_string(s: &[u8]) -> bool {
    let mut previous_dot = true;
    for &b in s {
        if b == b'.' {
            if previous_dot {
                return false;
            }
            previous_dot = true;
        } else if is_atext(b) {
            previous_dot = false;
        } else {
            return false;
        }
    }
    !previous_dot
}

/// `Domain = sub-domain *("." sub-domain)`, with `sub-domain = Let-dig
/// [Ldh-str]`; U-labels (RFC 6531) and `_` (seen in the wild in host names)
/// are allowed.
pub(crate) fn is_domain(s: &[u8]) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let mut label = 0usize;
    let mut previous = b'.';
    for &b in s {
        if b == b'.' {
            if label == 0 || previous == b'-' {
                return false;
            }
            label = 0;
        } else if is_ldh(b) && !(label == 0 && b == b'-') && label < 63 {
            label += 1;
        } else {
            return false;
        }
        previous = b;
    }
    label > 0 && previous != b'-'
}

/// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
/// General-address-literal ) "]"`.
pub(crate) fn is_address_literal(s: &[u8]) -> bool {
    let Some(inner) = s.strip_prefix(b"[").and_then(|s| s.strip_suffix(b"]")) else {
        return false;
    };
    let Ok(inner) = std::str::from_utf8(inner) else {
        return false;
    };
    if inner.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    if let Some(v6) = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
    {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    // General-address-literal = Standardized-tag ":" 1*dcontent
    match inner.split_once(':') {
        Some((tag, content)) => {
            is_domain(tag.as_bytes())
                && !content.is_empty()
                && content
                    .bytes()
                    .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b))
        }
        None => false,
    }
}

pub(crate) fn is_domain_or_literal(s: &[u8]) -> bool {
    is_domain(s) || is_address_literal(s)
}

// ---- xtext (RFC 3461 section 4) ----

/// Decodes `xtext`: `+XX` hex escapes; every other char must be printable
/// ASCII other than `+` and `=`.
pub(crate) fn xtext_decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b @ 33..=126 if b != b'=' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes `s` as `xtext`.
pub(crate) fn xtext_encode(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("+{b:02X}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_parts() {
        let a = Address::new("john", "example.com").unwrap();
        assert_eq!(a.local_part(), "john");
        assert_eq!(a.domain(), "example.com");
        assert_eq!(a.to_string(), "john@example.com");
        let q = Address::new("john doe", "example.com").unwrap();
        assert_eq!(q.to_string(), "\"john doe\"@example.com");
        assert!(Address::new("", "example.com").is_err());
        assert!(Address::new("a", "exa mple.com").is_err());
        assert!(Address::new("a", "[192.0.2.1]").is_ok());
        assert!(Address::new("a", "[IPv6:2001:db8::1]").is_ok());
    }

    #[test]
    fn domains() {
        assert!(is_domain(b"mail.example.com"));
        assert!(is_domain(b"localhost"));
        assert!(is_domain("bücher.example".as_bytes()));
        assert!(!is_domain(b"-bad.example"));
        assert!(!is_domain(b"bad..example"));
        assert!(!is_domain(b""));
        assert!(is_address_literal(b"[10.0.0.1]"));
        assert!(!is_address_literal(b"[10.0.0.256]"));
        assert!(is_address_literal(b"[IPv6:::1]"));
    }

    #[test]
    fn xtext_roundtrip() {
        assert_eq!(xtext_decode(b"a+2Bb").as_deref(), Some("a+b"));
        assert_eq!(xtext_decode(b"a+2"), None);
        assert_eq!(xtext_decode(b"a=b"), None);
        let mut out = Vec::new();
        xtext_encode("a+b=c d", &mut out);
        assert_eq!(out, b"a+2Bb+3Dc+20d");
        assert_eq!(xtext_decode(&out).as_deref(), Some("a+b=c d"));
    }

    #[test]
    fn secret_is_masked() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        let c = Credentials {
            username: "u".into(),
            password: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
