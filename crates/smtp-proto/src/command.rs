//! SMTP commands: the parser (RFC 5321 section 4.1 with the parameters of
//! RFC 1870, 3030, 3461, 4954, 6152 and 6531) and its inverse, the encoder.
//!
//! [`Command::parse`] takes one command line without its line ending;
//! [`Command::encode`] writes the canonical line with CRLF. For every line
//! the parser accepts, `parse(encode(parse(line))) == parse(line)`.

use crate::reply::{Reply, ReplyId};
use crate::types::{
    Address, BodyType, ForwardPath, MailParams, Mechanism, Notify, OriginalRecipient, OtherParam,
    RcptParams, Ret, ReversePath, is_address_literal, is_atext, is_domain, is_domain_or_literal,
    is_dot_string, is_ldh, xtext_decode, xtext_encode,
};

/// One SMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `HELO domain`.
    Helo(String),
    /// `EHLO domain`.
    Ehlo(String),
    /// `MAIL FROM:<path> params`.
    Mail {
        /// The sender.
        from: ReversePath,
        /// The ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> params`.
    Rcpt {
        /// The recipient.
        to: ForwardPath,
        /// The ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030); `size` octets follow the line.
    Bdat {
        /// The number of octets that follow.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop(Option<String>),
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(String),
    /// `EXPN string`.
    Expn(String),
    /// `HELP [string]`.
    Help(Option<String>),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism.
        mechanism: Mechanism,
        /// The initial response, still base64-encoded (`=` for an empty one).
        initial: Option<String>,
    },
}

/// Why a command line was refused; [`ParseError::reply`] is the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The verb is unknown or not implemented (TURN): `502`.
    #[error("command not implemented")]
    NotImplemented,
    /// The arguments do not follow the grammar of the command: `501`.
    #[error("syntax error in arguments: {0}")]
    Syntax(&'static str),
    /// The HELO/EHLO argument is not a domain or address literal: `501`.
    #[error("invalid domain name")]
    BadDomain,
    /// The sender address cannot be parsed: `501`.
    #[error("bad sender address syntax")]
    BadSender,
    /// The recipient address cannot be parsed: `501`.
    #[error("bad recipient address syntax")]
    BadRecipient,
}

impl ParseError {
    /// The catalogue entry of the reply to send.
    pub fn reply_id(&self) -> ReplyId {
        match self {
            ParseError::NotImplemented => ReplyId::NotImplemented,
            ParseError::Syntax(_) => ReplyId::SyntaxError,
            ParseError::BadDomain => ReplyId::BadHelo,
            ParseError::BadSender => ReplyId::BadSenderSyntax,
            ParseError::BadRecipient => ReplyId::BadRecipientSyntax,
        }
    }

    /// The reply to send, with the catalogue's default text.
    pub fn reply(&self) -> Reply {
        Reply::from_id(self.reply_id())
    }
}

type Result<T> = std::result::Result<T, ParseError>;

impl Command {
    /// Parses one command line, without its CRLF.
    pub fn parse(line: &[u8]) -> Result<Command> {
        let [a, b, c, d, ..] = *line else {
            return Err(ParseError::NotImplemented);
        };
        // Verbs are letters, so setting bit 5 of each byte folds case
        // exactly: no other byte becomes a lower-case letter.
        let word = [a | 0x20, b | 0x20, c | 0x20, d | 0x20];
        let args = match line.get(4) {
            None => &b""[..],
            Some(b' ') => &line[5..],
            Some(_) => {
                let (verb, args) = match line.iter().position(|&b| b == b' ') {
                    Some(i) => (&line[..i], &line[i + 1..]),
                    None => (line, &b""[..]),
                };
                return if verb.eq_ignore_ascii_case(b"STARTTLS") {
                    no_args(args, Command::StartTls, "STARTTLS takes no arguments")
                } else {
                    Err(ParseError::NotImplemented)
                };
            }
        };
        match &word {
            b"mail" => parse_mail(args),
            b"rcpt" => parse_rcpt(args),
            b"ehlo" => parse_domain_arg(args).map(Command::Ehlo),
            b"helo" => parse_domain_arg(args).map(Command::Helo),
            b"data" => no_args(args, Command::Data, "DATA takes no arguments"),
            b"bdat" => parse_bdat(args),
            b"rset" => no_args(args, Command::Rset, "RSET takes no arguments"),
            b"quit" => no_args(args, Command::Quit, "QUIT takes no arguments"),
            b"noop" => optional_string(args).map(Command::Noop),
            b"help" => optional_string(args).map(Command::Help),
            b"vrfy" => required_string(args, "Syntax: VRFY string").map(Command::Vrfy),
            b"expn" => required_string(args, "Syntax: EXPN string").map(Command::Expn),
            b"auth" => parse_auth(args),
            _ => Err(ParseError::NotImplemented),
        }
    }

    /// Appends the canonical command line, CRLF included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Helo(d) => line(out, &["HELO ", d]),
            Command::Ehlo(d) => line(out, &["EHLO ", d]),
            Command::Mail { from, params } => {
                out.extend_from_slice(b"MAIL FROM:");
                from.encode(out);
                encode_mail_params(params, out);
                out.extend_from_slice(b"\r\n");
            }
            Command::Rcpt { to, params } => {
                out.extend_from_slice(b"RCPT TO:");
                to.encode(out);
                encode_rcpt_params(params, out);
                out.extend_from_slice(b"\r\n");
            }
            Command::Data => line(out, &["DATA"]),
            Command::Bdat { size, last } => {
                let size = size.to_string();
                line(out, &["BDAT ", &size, if *last { " LAST" } else { "" }]);
            }
            Command::Rset => line(out, &["RSET"]),
            Command::Noop(None) => line(out, &["NOOP"]),
            Command::Noop(Some(s)) => line(out, &["NOOP ", s]),
            Command::Quit => line(out, &["QUIT"]),
            Command::Vrfy(s) => line(out, &["VRFY ", s]),
            Command::Expn(s) => line(out, &["EXPN ", s]),
            Command::Help(None) => line(out, &["HELP"]),
            Command::Help(Some(s)) => line(out, &["HELP ", s]),
            Command::StartTls => line(out, &["STARTTLS"]),
            Command::Auth {
                mechanism,
                initial: None,
            } => line(out, &["AUTH ", mechanism.as_str()]),
            Command::Auth {
                mechanism,
                initial: Some(ir),
            } => line(out, &["AUTH ", mechanism.as_str(), " ", ir]),
        }
    }
}

fn line(out: &mut Vec<u8>, parts: &[&str]) {
    for part in parts {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn no_args(args: &[u8], command: Command, hint: &'static str) -> Result<Command> {
    if trim(args).is_empty() {
        Ok(command)
    } else {
        Err(ParseError::Syntax(hint))
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

fn text(s: &[u8]) -> Result<&str> {
    let s = std::str::from_utf8(s).map_err(|_| ParseError::Syntax("invalid UTF-8"))?;
    if s.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(ParseError::Syntax("control characters in arguments"));
    }
    Ok(s)
}

fn optional_string(args: &[u8]) -> Result<Option<String>> {
    let args = trim(args);
    if args.is_empty() {
        Ok(None)
    } else {
        Ok(Some(text(args)?.to_owned()))
    }
}

fn required_string(args: &[u8], hint: &'static str) -> Result<String> {
    optional_string(args)?.ok_or(ParseError::Syntax(hint))
}

/// `ehlo = "EHLO" SP ( Domain / address-literal ) CRLF` (and `helo`).
fn parse_domain_arg(args: &[u8]) -> Result<String> {
    let arg = trim(args);
    // Some clients add a comment after the name; only the first word counts.
    let arg = match memchr::memchr(b' ', arg) {
        Some(i) => &arg[..i],
        None => arg,
    };
    if arg.is_empty() {
        return Err(ParseError::Syntax("Syntax: EHLO hostname"));
    }
    if std::str::from_utf8(arg).is_err() || !is_domain_or_literal(arg) {
        return Err(ParseError::BadDomain);
    }
    Ok(String::from_utf8_lossy(arg).into_owned())
}

/// `bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF` (RFC 3030).
fn parse_bdat(args: &[u8]) -> Result<Command> {
    const HINT: &str = "Syntax: BDAT size [LAST]";
    let mut words = trim(args).split(|&b| b == b' ').filter(|w| !w.is_empty());
    let size = words.next().ok_or(ParseError::Syntax(HINT))?;
    if size.is_empty() || size.len() > 19 || !size.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Syntax(HINT));
    }
    let size = std::str::from_utf8(size)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::Syntax(HINT))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return Err(ParseError::Syntax(HINT)),
    };
    if words.next().is_some() {
        return Err(ParseError::Syntax(HINT));
    }
    Ok(Command::Bdat { size, last })
}

/// `AUTH mechanism [SP initial-response]` (RFC 4954 section 4).
fn parse_auth(args: &[u8]) -> Result<Command> {
    const HINT: &str = "Syntax: AUTH mechanism [initial-response]";
    let mut words = trim(args).split(|&b| b == b' ').filter(|w| !w.is_empty());
    let mech = words.next().ok_or(ParseError::Syntax(HINT))?;
    // sasl-mech = 1*20mech-char
    if mech.len() > 20
        || !mech
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ParseError::Syntax(HINT));
    }
    let mechanism = Mechanism::from_name(std::str::from_utf8(mech).unwrap_or_default());
    let initial = match words.next() {
        None => None,
        Some(ir) if ir == b"=" || is_base64(ir) => Some(String::from_utf8_lossy(ir).into_owned()),
        Some(_) => return Err(ParseError::Syntax(HINT)),
    };
    if words.next().is_some() {
        return Err(ParseError::Syntax(HINT));
    }
    Ok(Command::Auth { mechanism, initial })
}

/// `1*DIGIT` that fits a `u64`.
fn parse_number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

pub(crate) fn is_base64(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// `mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF`.
fn parse_mail(args: &[u8]) -> Result<Command> {
    const HINT: &str = "Syntax: MAIL FROM:<address> [parameters]";
    let rest = strip_keyword(args, b"FROM:").ok_or(ParseError::Syntax(HINT))?;
    let (from, rest) = match simple_path(rest) {
        Some((address, rest)) => (ReversePath::Mailbox(address), rest),
        None => {
            let (path, rest) = split_path(utf8_args(rest)?).ok_or(ParseError::Syntax(HINT))?;
            let from = if path.is_empty() {
                ReversePath::Null
            } else {
                ReversePath::Mailbox(parse_path_mailbox(path).ok_or(ParseError::BadSender)?)
            };
            (from, rest.as_bytes())
        }
    };
    let params = parse_mail_params(rest)?;
    Ok(Command::Mail { from, params })
}

/// `rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
/// Forward-path ) [SP Rcpt-parameters] CRLF`.
fn parse_rcpt(args: &[u8]) -> Result<Command> {
    const HINT: &str = "Syntax: RCPT TO:<address> [parameters]";
    let rest = strip_keyword(args, b"TO:").ok_or(ParseError::Syntax(HINT))?;
    let (to, rest) = match simple_path(rest) {
        Some((address, rest)) => (ForwardPath::Mailbox(address), rest),
        None => {
            let (path, rest) = split_path(utf8_args(rest)?).ok_or(ParseError::Syntax(HINT))?;
            let to = if path.eq_ignore_ascii_case("postmaster") {
                ForwardPath::Postmaster
            } else if path.is_empty() {
                return Err(ParseError::BadRecipient);
            } else {
                ForwardPath::Mailbox(parse_path_mailbox(path).ok_or(ParseError::BadRecipient)?)
            };
            (to, rest.as_bytes())
        }
    };
    let params = parse_rcpt_params(rest)?;
    Ok(Command::Rcpt { to, params })
}

/// The common path `<Dot-string@Domain>` in one pass, with the same rules as
/// [`parse_mailbox`]. `None` when the path is anything else (quoted local
/// part, source route, address literal, `<>`, `<Postmaster>`, an error):
/// the full parser then decides.
fn simple_path(b: &[u8]) -> Option<(Address, &[u8])> {
    if b.first() != Some(&b'<') {
        return None;
    }
    // One pass over the local part, then one over the domain, with the
    // rules of `is_dot_string` and `is_domain`.
    // Atoms are checked at their ends: none may be empty.
    let mut i = 1;
    let mut atom_start = i;
    loop {
        let c = *b.get(i)?;
        if is_atext(c) {
            i += 1;
            continue;
        }
        if i == atom_start {
            return None;
        }
        match c {
            b'.' => atom_start = i + 1,
            b'@' => break,
            _ => return None,
        }
        i += 1;
    }
    let at = i;
    if at - 1 > 256 {
        return None;
    }
    i += 1;
    // Labels are checked at their ends: 1 to 63 characters, no hyphen first
    // or last.
    let mut label_start = i;
    loop {
        let c = *b.get(i)?;
        if is_ldh(c) {
            i += 1;
            continue;
        }
        let label = &b[label_start..i];
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return None;
        }
        match c {
            b'.' => label_start = i + 1,
            b'>' => break,
            _ => return None,
        }
        i += 1;
    }
    if i - at - 1 > 255 {
        return None;
    }
    // `local@domain` lies whole in the input: one UTF-8 check, one copy.
    let full = std::str::from_utf8(&b[1..i]).ok()?;
    Some((Address::from_checked_full(full, at - 1), &b[i + 1..]))
}

/// The arguments of MAIL and RCPT as text: UTF-8 is checked once, here
/// (RFC 6531 allows it in addresses and parameter values).
fn utf8_args(args: &[u8]) -> Result<&str> {
    std::str::from_utf8(args).map_err(|_| ParseError::Syntax("invalid UTF-8"))
}

/// Strips `FROM:` / `TO:` case-insensitively, and the spaces some clients
/// put after the colon.
fn strip_keyword<'a>(args: &'a [u8], keyword: &[u8]) -> Option<&'a [u8]> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let mut rest = &args[keyword.len()..];
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    Some(rest)
}

/// Splits `<path> params` into the inside of the angle brackets and the rest.
/// A `>` inside a quoted local part does not end the path.
fn split_path(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    let bytes = inner.as_bytes();
    // Paths are short: a plain scan beats a vectorised search here.
    let close = bytes.iter().position(|&b| b == b'>')?;
    if !bytes[..close].contains(&b'"') {
        return Some((&inner[..close], &inner[close + 1..]));
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == b'>' && !quoted {
            return Some((&inner[..i], &inner[i + 1..]));
        }
    }
    None
}

/// `Path = "<" [ A-d-l ":" ] Mailbox ">"`: the source route, if any, is
/// ignored (RFC 5321 section 4.1.2, "SHOULD accept and ignore").
fn parse_path_mailbox(path: &str) -> Option<Address> {
    let mailbox = match path.strip_prefix('@') {
        Some(_) => {
            let (adl, mailbox) = path.split_once(':')?;
            let ok = adl.split(',').all(|hop| {
                hop.strip_prefix('@')
                    .is_some_and(|d| is_domain(d.as_bytes()))
            });
            if !ok {
                return None;
            }
            mailbox
        }
        None => path,
    };
    parse_mailbox(mailbox)
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`, the whole of
/// `s`. `Local-part = Dot-string / Quoted-string`.
pub(crate) fn parse_mailbox(s: &str) -> Option<Address> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'"') {
        // Quoted-string = DQUOTE *QcontentSMTP DQUOTE
        let mut local = String::new();
        let mut chars = s[1..].char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i + 2,
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    if !(' '..='~').contains(&escaped) {
                        return None;
                    }
                    local.push(escaped);
                }
                c if (' '..='~').contains(&c) || !c.is_ascii() => local.push(c),
                _ => return None,
            }
        };
        if local.is_empty() || local.len() > 256 {
            return None;
        }
        let domain = s[end..].strip_prefix('@')?;
        return checked_domain(domain).map(|d| Address::from_checked(&local, d));
    }
    // A Dot-string has no `@`, while a general address literal may: the
    // first `@` ends the local part.
    let at = bytes.iter().position(|&b| b == b'@')?;
    let local = &s[..at];
    if local.len() > 256 || !is_dot_string(local.as_bytes()) {
        return None;
    }
    checked_domain(&s[at + 1..]).map(|d| Address::from_checked(local, d))
}

/// `Domain / address-literal`.
fn checked_domain(domain: &str) -> Option<&str> {
    let bytes = domain.as_bytes();
    (is_domain(bytes) || is_address_literal(bytes)).then_some(domain)
}

/// `esmtp-param = esmtp-keyword ["=" esmtp-value]`, space separated:
/// calls `each` with every keyword and value, checking their syntax.
fn for_each_param<'a>(
    rest: &'a [u8],
    mut each: impl FnMut(&'a [u8], Option<&'a [u8]>) -> Result<()>,
) -> Result<()> {
    for word in rest.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.iter().position(|&b| b == b'=') {
            Some(i) => (&word[..i], Some(&word[i + 1..])),
            None => (word, None),
        };
        // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        let keyword_ok = keyword.first().is_some_and(u8::is_ascii_alphanumeric)
            && keyword
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-');
        // esmtp-value = 1*(%d33-60 / %d62-126 / UTF8-non-ascii)
        let value_ok = value.is_none_or(|v| {
            !v.is_empty()
                && v.iter().all(|&b| b > 32 && b != 127 && b != b'=')
                && (v.is_ascii() || std::str::from_utf8(v).is_ok())
        });
        if !keyword_ok || !value_ok {
            return Err(ParseError::Syntax("malformed parameter"));
        }
        each(keyword, value)?;
    }
    Ok(())
}

fn utf8(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(ParseError::Syntax("duplicate parameter"));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_mail_params(rest: &[u8]) -> Result<MailParams> {
    let mut p = MailParams::default();
    for_each_param(rest, |keyword, value| {
        match (keyword_id(keyword), value) {
            (b"SIZE", Some(v)) => {
                let size = parse_number(v).ok_or(ParseError::Syntax("SIZE needs a number"))?;
                set_once(&mut p.size, size)?;
            }
            (b"BODY", Some(v)) => {
                let body = if v.eq_ignore_ascii_case(b"7BIT") {
                    BodyType::SevenBit
                } else if v.eq_ignore_ascii_case(b"8BITMIME") {
                    BodyType::EightBitMime
                } else if v.eq_ignore_ascii_case(b"BINARYMIME") {
                    BodyType::BinaryMime
                } else {
                    return Err(ParseError::Syntax(
                        "BODY must be 7BIT, 8BITMIME or BINARYMIME",
                    ));
                };
                set_once(&mut p.body, body)?;
            }
            (b"SMTPUTF8", None) => {
                if p.smtputf8 {
                    return Err(ParseError::Syntax("duplicate parameter"));
                }
                p.smtputf8 = true;
            }
            (b"RET", Some(v)) => {
                let ret = if v.eq_ignore_ascii_case(b"FULL") {
                    Ret::Full
                } else if v.eq_ignore_ascii_case(b"HDRS") {
                    Ret::Headers
                } else {
                    return Err(ParseError::Syntax("RET must be FULL or HDRS"));
                };
                set_once(&mut p.ret, ret)?;
            }
            (b"ENVID", Some(v)) => {
                let envid = xtext_decode(v)
                    .filter(|e| e.len() <= 100)
                    .ok_or(ParseError::Syntax("ENVID must be xtext"))?;
                set_once(&mut p.envid, envid)?;
            }
            (b"AUTH", Some(v)) => {
                let auth = if v == b"<>" {
                    "<>".to_owned()
                } else {
                    xtext_decode(v).ok_or(ParseError::Syntax("AUTH must be xtext"))?
                };
                set_once(&mut p.auth, auth)?;
            }
            (b"SIZE" | b"BODY" | b"RET" | b"ENVID" | b"AUTH", None) | (b"SMTPUTF8", Some(_)) => {
                return Err(ParseError::Syntax("malformed parameter"));
            }
            _ => p.other.push(OtherParam {
                keyword: utf8(keyword),
                value: value.map(utf8),
            }),
        }
        Ok(())
    })?;
    Ok(p)
}

/// The known ESMTP keywords, matched without allocating.
fn keyword_id(keyword: &[u8]) -> &'static [u8] {
    let candidates: &[&'static [u8]] = match keyword.len() {
        3 => &[b"RET"],
        4 => &[b"SIZE", b"BODY", b"AUTH"],
        5 => &[b"ENVID", b"ORCPT"],
        6 => &[b"NOTIFY"],
        8 => &[b"SMTPUTF8"],
        _ => &[],
    };
    candidates
        .iter()
        .find(|k| k.eq_ignore_ascii_case(keyword))
        .copied()
        .unwrap_or(b"")
}

fn parse_rcpt_params(rest: &[u8]) -> Result<RcptParams> {
    let mut p = RcptParams::default();
    for_each_param(rest, |keyword, value| {
        match (keyword_id(keyword), value) {
            (b"NOTIFY", Some(v)) => {
                let notify = parse_notify(v).ok_or(ParseError::Syntax(
                    "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
                ))?;
                set_once(&mut p.notify, notify)?;
            }
            (b"ORCPT", Some(v)) => {
                let orcpt = parse_orcpt(v).ok_or(ParseError::Syntax("ORCPT must be type;xtext"))?;
                set_once(&mut p.orcpt, orcpt)?;
            }
            (b"NOTIFY" | b"ORCPT", None) => return Err(ParseError::Syntax("malformed parameter")),
            _ => p.other.push(OtherParam {
                keyword: utf8(keyword),
                value: value.map(utf8),
            }),
        }
        Ok(())
    })?;
    Ok(p)
}

/// `notify-esmtp-value = "NEVER" / 1#notify-list-element`.
fn parse_notify(v: &[u8]) -> Option<Notify> {
    if v.eq_ignore_ascii_case(b"NEVER") {
        return Some(Notify::NEVER);
    }
    let mut n = Notify::default();
    for item in v.split(|&b| b == b',') {
        let flag = if item.eq_ignore_ascii_case(b"SUCCESS") {
            &mut n.success
        } else if item.eq_ignore_ascii_case(b"FAILURE") {
            &mut n.failure
        } else if item.eq_ignore_ascii_case(b"DELAY") {
            &mut n.delay
        } else {
            return None;
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    Some(n)
}

/// `orcpt-value = addr-type ";" xtext`.
fn parse_orcpt(v: &[u8]) -> Option<OriginalRecipient> {
    let semi = memchr::memchr(b';', v)?;
    let addr_type = &v[..semi];
    if addr_type.is_empty() || !addr_type.iter().all(|&b| is_atext(b) && b < 0x80) {
        return None;
    }
    let address = xtext_decode(&v[semi + 1..]).filter(|a| !a.is_empty())?;
    Some(OriginalRecipient {
        addr_type: utf8(addr_type),
        address,
    })
}

fn encode_mail_params(p: &MailParams, out: &mut Vec<u8>) {
    if let Some(size) = p.size {
        out.extend_from_slice(format!(" SIZE={size}").as_bytes());
    }
    if let Some(body) = p.body {
        out.extend_from_slice(b" BODY=");
        out.extend_from_slice(body.as_str().as_bytes());
    }
    if p.smtputf8 {
        out.extend_from_slice(b" SMTPUTF8");
    }
    if let Some(ret) = p.ret {
        out.extend_from_slice(match ret {
            Ret::Full => b" RET=FULL",
            Ret::Headers => b" RET=HDRS",
        });
    }
    if let Some(envid) = &p.envid {
        out.extend_from_slice(b" ENVID=");
        xtext_encode(envid, out);
    }
    if let Some(auth) = &p.auth {
        out.extend_from_slice(b" AUTH=");
        if auth == "<>" {
            out.extend_from_slice(b"<>");
        } else {
            xtext_encode(auth, out);
        }
    }
    encode_other(&p.other, out);
}

fn encode_rcpt_params(p: &RcptParams, out: &mut Vec<u8>) {
    if let Some(n) = p.notify {
        out.extend_from_slice(b" NOTIFY=");
        if n.is_never() {
            out.extend_from_slice(b"NEVER");
        } else {
            let items: Vec<&str> = [
                (n.success, "SUCCESS"),
                (n.failure, "FAILURE"),
                (n.delay, "DELAY"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect();
            out.extend_from_slice(items.join(",").as_bytes());
        }
    }
    if let Some(o) = &p.orcpt {
        out.extend_from_slice(b" ORCPT=");
        out.extend_from_slice(o.addr_type.as_bytes());
        out.push(b';');
        xtext_encode(&o.address, out);
    }
    encode_other(&p.other, out);
}

fn encode_other(other: &[OtherParam], out: &mut Vec<u8>) {
    for param in other {
        out.push(b' ');
        out.extend_from_slice(param.keyword.as_bytes());
        if let Some(v) = &param.value {
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn roundtrip(line: &str) -> Command {
        let cmd = Command::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        let mut out = Vec::new();
        cmd.encode(&mut out);
        assert!(out.ends_with(b"\r\n"));
        let again = Command::parse(&out[..out.len() - 2]).unwrap();
        assert_eq!(cmd, again, "{line} -> {}", String::from_utf8_lossy(&out));
        cmd
    }

    #[test]
    fn known_answers() {
        let table: &[(&str, Command)] = &[
            (
                "HELO relay.example.org",
                Command::Helo("relay.example.org".into()),
            ),
            ("ehlo [192.0.2.1]", Command::Ehlo("[192.0.2.1]".into())),
            (
                "EHLO client.example comment",
                Command::Ehlo("client.example".into()),
            ),
            (
                "MAIL FROM:<>",
                Command::Mail {
                    from: ReversePath::Null,
                    params: MailParams::default(),
                },
            ),
            (
                "mail from: <a@b.example>",
                Command::Mail {
                    from: ReversePath::Mailbox(addr("a@b.example")),
                    params: MailParams::default(),
                },
            ),
            (
                "MAIL FROM:<@hop1,@hop2:user@example.com> SIZE=1000 BODY=8BITMIME",
                Command::Mail {
                    from: ReversePath::Mailbox(addr("user@example.com")),
                    params: MailParams {
                        size: Some(1000),
                        body: Some(BodyType::EightBitMime),
                        ..MailParams::default()
                    },
                },
            ),
            (
                "RCPT TO:<Postmaster>",
                Command::Rcpt {
                    to: ForwardPath::Postmaster,
                    params: RcptParams::default(),
                },
            ),
            (
                "RCPT TO:<\"john doe\"@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;john+2Bx@example.com",
                Command::Rcpt {
                    to: ForwardPath::Mailbox(Address::new("john doe", "example.com").unwrap()),
                    params: RcptParams {
                        notify: Some(Notify {
                            success: true,
                            failure: true,
                            delay: false,
                        }),
                        orcpt: Some(OriginalRecipient {
                            addr_type: "rfc822".into(),
                            address: "john+x@example.com".into(),
                        }),
                        other: vec![],
                    },
                },
            ),
            ("DATA", Command::Data),
            (
                "BDAT 1000",
                Command::Bdat {
                    size: 1000,
                    last: false,
                },
            ),
            (
                "bdat 0 last",
                Command::Bdat {
                    size: 0,
                    last: true,
                },
            ),
            ("RSET", Command::Rset),
            ("NOOP", Command::Noop(None)),
            (
                "NOOP hello there",
                Command::Noop(Some("hello there".into())),
            ),
            ("QUIT", Command::Quit),
            ("VRFY postmaster", Command::Vrfy("postmaster".into())),
            ("EXPN staff", Command::Expn("staff".into())),
            ("HELP", Command::Help(None)),
            ("HELP MAIL", Command::Help(Some("MAIL".into()))),
            ("STARTTLS", Command::StartTls),
            (
                "AUTH PLAIN AHVzZXIAcGFzcw==",
                Command::Auth {
                    mechanism: Mechanism::Plain,
                    initial: Some("AHVzZXIAcGFzcw==".into()),
                },
            ),
            (
                "auth login",
                Command::Auth {
                    mechanism: Mechanism::Login,
                    initial: None,
                },
            ),
        ];
        for (line, expected) in table {
            assert_eq!(&roundtrip(line), expected, "{line}");
        }
    }

    /// Found by fuzzing: an `@` inside a general address literal made the
    /// encoding of a quoted-local-part address unparsable.
    #[test]
    fn an_at_sign_inside_an_address_literal() {
        let cmd = roundtrip("RCPT TO:<\"a\"@[IOM:IPv6:<~@a,@b:x@Pv5:::1]> ");
        let Command::Rcpt { to, .. } = cmd else {
            panic!()
        };
        let address = to.address().unwrap();
        assert_eq!(address.local_part(), "a");
        assert_eq!(address.domain(), "[IOM:IPv6:<~@a,@b:x@Pv5:::1]");
        assert_eq!(Address::parse("a@[x:y@z]").unwrap().domain(), "[x:y@z]");
    }

    #[test]
    fn dsn_and_utf8_parameters() {
        let cmd = roundtrip(
            "MAIL FROM:<ü@bücher.example> SMTPUTF8 RET=HDRS ENVID=QQ+2B123 AUTH=<> X-FOO=bar XBARE",
        );
        let Command::Mail { from, params } = cmd else {
            panic!()
        };
        assert_eq!(from.address().unwrap().as_str(), "ü@bücher.example");
        assert!(params.smtputf8);
        assert_eq!(params.ret, Some(Ret::Headers));
        assert_eq!(params.envid.as_deref(), Some("QQ+123"));
        assert_eq!(params.auth.as_deref(), Some("<>"));
        assert_eq!(params.other.len(), 2);
        roundtrip("MAIL FROM:<a@b.example> AUTH=user+2Bx@b.example BODY=BINARYMIME");
        roundtrip("RCPT TO:<a@b.example> NOTIFY=NEVER");
        roundtrip("RCPT TO:<a@[IPv6:2001:db8::1]> NOTIFY=DELAY");
    }

    #[test]
    fn errors() {
        let table: &[(&str, ParseError)] = &[
            ("TURN", ParseError::NotImplemented),
            ("XYZZY", ParseError::NotImplemented),
            ("M@IL FROM:<a@b.c>", ParseError::NotImplemented),
            ("MAILX FROM:<a@b.c>", ParseError::NotImplemented),
            ("STARTTLSX", ParseError::NotImplemented),
            ("", ParseError::NotImplemented),
            ("HELO", ParseError::Syntax("Syntax: EHLO hostname")),
            ("EHLO bad..name", ParseError::BadDomain),
            (
                "MAIL TO:<a@b.c>",
                ParseError::Syntax("Syntax: MAIL FROM:<address> [parameters]"),
            ),
            (
                "MAIL FROM:a@b.c",
                ParseError::Syntax("Syntax: MAIL FROM:<address> [parameters]"),
            ),
            (
                "MAIL FROM:<a@b.c",
                ParseError::Syntax("Syntax: MAIL FROM:<address> [parameters]"),
            ),
            ("MAIL FROM:<a b@c.d>", ParseError::BadSender),
            ("MAIL FROM:<a@>", ParseError::BadSender),
            ("MAIL FROM:<@c.d>", ParseError::BadSender),
            ("RCPT TO:<>", ParseError::BadRecipient),
            ("RCPT TO:<a..b@c.d>", ParseError::BadRecipient),
            (
                "MAIL FROM:<a@b.c> SIZE=abc",
                ParseError::Syntax("SIZE needs a number"),
            ),
            (
                "MAIL FROM:<a@b.c> SIZE=1 SIZE=2",
                ParseError::Syntax("duplicate parameter"),
            ),
            (
                "MAIL FROM:<a@b.c> BODY=9BIT",
                ParseError::Syntax("BODY must be 7BIT, 8BITMIME or BINARYMIME"),
            ),
            ("DATA now", ParseError::Syntax("DATA takes no arguments")),
            ("BDAT", ParseError::Syntax("Syntax: BDAT size [LAST]")),
            ("BDAT -1", ParseError::Syntax("Syntax: BDAT size [LAST]")),
            (
                "BDAT 99999999999999999999",
                ParseError::Syntax("Syntax: BDAT size [LAST]"),
            ),
            (
                "BDAT 10 FIRST",
                ParseError::Syntax("Syntax: BDAT size [LAST]"),
            ),
            ("VRFY", ParseError::Syntax("Syntax: VRFY string")),
            (
                "AUTH",
                ParseError::Syntax("Syntax: AUTH mechanism [initial-response]"),
            ),
            (
                "AUTH PLAIN not*base64",
                ParseError::Syntax("Syntax: AUTH mechanism [initial-response]"),
            ),
        ];
        for (line, expected) in table {
            assert_eq!(
                &Command::parse(line.as_bytes()).unwrap_err(),
                expected,
                "{line}"
            );
        }
    }

    proptest::proptest! {
        /// The one-pass path parser accepts only what the full parser
        /// accepts, with the same result.
        #[test]
        fn simple_path_agrees_with_the_full_parser(
            path in "<[a-zA-Z0-9.@_ü+\\-\\[\\]\"]{0,24}>( [A-Z]{1,4})?"
        ) {
            if let Some((address, rest)) = simple_path(path.as_bytes()) {
                let (inner, tail) = split_path(&path).expect("a path");
                proptest::prop_assert_eq!(parse_path_mailbox(inner), Some(address));
                proptest::prop_assert_eq!(tail.as_bytes(), rest);
            }
        }
    }

    #[test]
    fn error_replies_follow_the_catalogue() {
        assert_eq!(ParseError::NotImplemented.reply().code(), 502);
        assert_eq!(ParseError::Syntax("x").reply().code(), 501);
        assert_eq!(ParseError::BadDomain.reply().code(), 501);
        assert_eq!(ParseError::BadSender.reply().code(), 501);
    }
}
