//! SMTP replies: the value, the catalogue of standard replies, the encoder
//! and the parser (RFC 5321 section 4.2, enhanced status codes of RFC 2034
//! and RFC 3463).

use std::borrow::Cow;
use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject, 0 to 999.
    pub subject: u16,
    /// The detail, 0 to 999.
    pub detail: u16,
}

impl EnhancedStatus {
    /// Builds `class.subject.detail`.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }

    /// `status-code = class "." subject "." detail` at the start of `text`,
    /// followed by a space or the end; returns the code and the rest.
    fn parse_prefix(text: &str) -> Option<(EnhancedStatus, &str)> {
        let end = text.find(' ').unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let number = |s: &str, max_len: usize| -> Option<u16> {
            if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // No leading zeros except "0" itself (RFC 3463: 1*3digit, printed without padding).
            if s.len() > 1 && s.starts_with('0') {
                return None;
            }
            s.parse().ok()
        };
        let class = number(class, 1)?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        let status = EnhancedStatus::new(class as u8, number(subject, 3)?, number(detail, 3)?);
        let rest = text[end..].strip_prefix(' ').unwrap_or(&text[end..]);
        Some((status, rest))
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// An SMTP reply: a three-digit code, an optional enhanced status code and
/// one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    code: u16,
    status: Option<EnhancedStatus>,
    lines: Vec<Cow<'static, str>>,
}

/// The error of [`Reply::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a reply code is three digits from 200 to 599, and its text has no CR, LF or NUL")]
pub struct InvalidReply;

impl Reply {
    /// Builds a reply; `text` may hold several lines separated by `\n`.
    pub fn new(
        code: u16,
        status: Option<EnhancedStatus>,
        text: impl Into<Cow<'static, str>>,
    ) -> Result<Reply, InvalidReply> {
        if !(200..=599).contains(&code) {
            return Err(InvalidReply);
        }
        let reply = Reply {
            code,
            status,
            lines: Vec::new(),
        };
        reply.try_with_text(text)
    }

    /// The same reply with its text replaced (for translations, L-3).
    /// Characters that cannot appear in a reply (CR, NUL, other control
    /// characters) are replaced by spaces.
    pub fn with_text(self, text: impl Into<Cow<'static, str>>) -> Reply {
        let text: Cow<'static, str> = text.into();
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
            .collect();
        self.try_with_text(clean)
            .unwrap_or_else(|_| unreachable_reply())
    }

    fn try_with_text(mut self, text: impl Into<Cow<'static, str>>) -> Result<Reply, InvalidReply> {
        let text = text.into();
        if text.contains(['\r', '\0']) {
            return Err(InvalidReply);
        }
        self.lines = if text.contains('\n') {
            text.split('\n').map(|l| Cow::Owned(l.to_owned())).collect()
        } else {
            vec![text]
        };
        Ok(self)
    }

    /// A reply with several lines (each line must be free of CR and LF).
    pub fn multiline(
        code: u16,
        status: Option<EnhancedStatus>,
        lines: impl IntoIterator<Item = String>,
    ) -> Result<Reply, InvalidReply> {
        let lines: Vec<Cow<'static, str>> = lines.into_iter().map(Cow::Owned).collect();
        if !(200..=599).contains(&code)
            || lines.is_empty()
            || lines.iter().any(|l| l.contains(['\r', '\n', '\0']))
        {
            return Err(InvalidReply);
        }
        Ok(Reply {
            code,
            status,
            lines,
        })
    }

    /// The standard reply `id` of the catalogue, with its default text.
    pub fn from_id(id: ReplyId) -> Reply {
        let (code, status, text) = id.parts();
        Reply {
            code,
            status,
            lines: vec![Cow::Borrowed(text)],
        }
    }

    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, if any.
    pub fn status(&self) -> Option<EnhancedStatus> {
        self.status
    }

    /// The text lines, without codes.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.as_ref())
    }

    /// The text lines joined by `\n`.
    pub fn text(&self) -> String {
        self.lines().collect::<Vec<_>>().join("\n")
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not try again.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the reply in wire form: every line carries the code, `-` on
    /// all lines but the last, and the enhanced status code when there is one.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let code = self.code.to_string();
        let status = self.status.map(|s| s.to_string());
        let last = self.lines.len() - 1;
        for (i, text) in self.lines.iter().enumerate() {
            out.extend_from_slice(code.as_bytes());
            let has_text = status.is_some() || !text.is_empty();
            if i != last {
                out.push(b'-');
            } else if has_text {
                out.push(b' ');
            }
            if let Some(status) = &status {
                out.extend_from_slice(status.as_bytes());
                if !text.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Parses one complete reply (all its lines, CRLF-terminated) from the
    /// start of `input`, returning the reply and the number of bytes used,
    /// or `Ok(None)` when more input is needed.
    pub fn parse(input: &[u8], limits: &ReplyLimits) -> Result<Option<(Reply, usize)>, ReplyError> {
        let mut reader = ReplyReader::new(limits.clone());
        let mut pos = 0;
        loop {
            let Some(nl) = memchr::memchr(b'\n', &input[pos..]) else {
                if input.len() - pos > limits.line {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            let line = &input[pos..pos + nl + 1];
            pos += nl + 1;
            if let Some(reply) = reader.push_line(line)? {
                return Ok(Some((reply, pos)));
            }
        }
    }
}

fn unreachable_reply() -> Reply {
    // with_text removes every character try_with_text refuses.
    Reply::from_id(ReplyId::LocalError)
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.encode(&mut out);
        f.write_str(String::from_utf8_lossy(&out).trim_end())
    }
}

/// Limits of the reply parser.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplyLimits {
    /// Longest reply line, CRLF included. Default 4096: RFC 5321 allows 512,
    /// EHLO replies and human-readable texts of real servers are longer.
    pub line: usize,
    /// Most lines in one reply. Default 256: an EHLO reply with every
    /// extension is far shorter.
    pub lines: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            line: 4096,
            lines: 256,
        }
    }
}

/// Why a server's reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line does not start with a three-digit code and `-`, SP or CRLF.
    #[error("malformed reply line")]
    Malformed,
    /// The lines of a multi-line reply carry different codes.
    #[error("inconsistent codes in a multi-line reply")]
    InconsistentCode,
    /// A line is longer than [`ReplyLimits::line`].
    #[error("reply line too long")]
    LineTooLong,
    /// More lines than [`ReplyLimits::lines`].
    #[error("too many lines in one reply")]
    TooManyLines,
}

/// Assembles a reply from its lines, one at a time.
#[derive(Debug, Clone)]
pub(crate) struct ReplyReader {
    limits: ReplyLimits,
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyReader {
    pub(crate) fn new(limits: ReplyLimits) -> Self {
        ReplyReader {
            limits,
            code: None,
            lines: Vec::new(),
        }
    }

    /// `Reply-line = *( Reply-code "-" [ textstring ] CRLF )
    ///  Reply-code [ SP textstring ] CRLF`. `line` ends with LF (CRLF or a
    /// bare LF are both accepted from servers). Returns the reply once its
    /// last line has come.
    pub(crate) fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        if line.len() > self.limits.line {
            return Err(ReplyError::LineTooLong);
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() < 3
            || !line[..3].iter().all(u8::is_ascii_digit)
            || !(b'2'..=b'5').contains(&line[0])
        {
            return Err(ReplyError::Malformed);
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if self.code.is_some_and(|c| c != code) {
            return Err(ReplyError::InconsistentCode);
        }
        self.code = Some(code);
        let (more, text) = match line.get(3) {
            None => (false, &b""[..]),
            Some(b' ') => (false, &line[4..]),
            Some(b'-') => (true, &line[4..]),
            Some(_) => return Err(ReplyError::Malformed),
        };
        if self.lines.len() >= self.limits.lines {
            return Err(ReplyError::TooManyLines);
        }
        // An invalid octet becomes one `?` (not U+FFFD, three octets), so
        // the reply encodes to lines no longer than it came in.
        let mut clean = String::with_capacity(text.len());
        for chunk in text.utf8_chunks() {
            clean.extend(
                chunk
                    .valid()
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c }),
            );
            clean.extend(std::iter::repeat_n('?', chunk.invalid().len()));
        }
        let text = clean;
        self.lines.push(text);
        if more {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        Ok(Some(split_status(code, lines)))
    }
}

/// Takes the enhanced status code off the lines when every line carries
/// the same one and its class matches the reply code.
fn split_status(code: u16, mut lines: Vec<String>) -> Reply {
    let first = EnhancedStatus::parse_prefix(&lines[0]).map(|(s, _)| s);
    let status = first.filter(|s| {
        u16::from(s.class) == code / 100
            && lines
                .iter()
                .all(|l| EnhancedStatus::parse_prefix(l).is_some_and(|(t, _)| t == *s))
    });
    if status.is_some() {
        for line in &mut lines {
            let rest = EnhancedStatus::parse_prefix(line).map(|(_, r)| r.to_owned());
            if let Some(rest) = rest {
                *line = rest;
            }
        }
    }
    Reply {
        code,
        status,
        lines: lines.into_iter().map(Cow::Owned).collect(),
    }
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $id:ident = $code:literal, $status:expr, $text:literal; )*) => {
        /// The standard replies of the catalogue. Each has a code, an
        /// enhanced status code and a default text that a host may replace
        /// (see [`ReplyTexts`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ReplyId {
            $( $(#[$doc])* $id, )*
        }

        impl ReplyId {
            /// Every entry of the catalogue.
            pub const ALL: &'static [ReplyId] = &[$(ReplyId::$id,)*];

            /// Code, enhanced status code and default text.
            pub fn parts(self) -> (u16, Option<EnhancedStatus>, &'static str) {
                match self {
                    $( ReplyId::$id => ($code, $status, $text), )*
                }
            }
        }
    };
}

const fn st(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    Some(EnhancedStatus::new(class, subject, detail))
}

catalogue! {
    /// `214` answer to HELP.
    Help = 214, st(2, 0, 0), "See RFC 5321 and the server's documentation";
    /// `220` answer to STARTTLS.
    ReadyToStartTls = 220, st(2, 0, 0), "Ready to start TLS";
    /// `221` answer to QUIT.
    Bye = 221, st(2, 0, 0), "Bye";
    /// `235` successful AUTH.
    AuthSucceeded = 235, st(2, 7, 0), "Authentication successful";
    /// `250` generic success (NOOP, RSET).
    Ok = 250, st(2, 0, 0), "OK";
    /// `250` accepted MAIL FROM.
    SenderOk = 250, st(2, 1, 0), "Sender OK";
    /// `250` accepted RCPT TO.
    RecipientOk = 250, st(2, 1, 5), "Recipient OK";
    /// `250` message stored.
    MessageAccepted = 250, st(2, 0, 0), "Message accepted for delivery";
    /// `250` a BDAT chunk that is not the last was received.
    ChunkReceived = 250, st(2, 0, 0), "Chunk received";
    /// `252` VRFY is disabled.
    CannotVrfy = 252, st(2, 5, 0), "Cannot VRFY user, but will accept message and attempt delivery";
    /// `354` go ahead after DATA.
    StartData = 354, None, "Start mail input; end with <CRLF>.<CRLF>";
    /// `334` continuation of AUTH (text is the base64 challenge).
    AuthContinue = 334, None, "";
    /// `421` the service is going away.
    ServiceClosing = 421, st(4, 3, 2), "Service not available, closing transmission channel";
    /// `421` the client was idle too long.
    Timeout = 421, st(4, 4, 2), "Timeout exceeded, closing connection";
    /// `421` too many bad commands.
    TooManyErrors = 421, st(4, 7, 0), "Too many errors, closing connection";
    /// `421` an oversized chunk of input with no line end.
    UnterminatedLine = 421, st(4, 7, 0), "Line too long and not terminated, closing connection";
    /// `451` something went wrong on this side.
    LocalError = 451, st(4, 3, 0), "Requested action aborted: local error in processing";
    /// `452` too many recipients in one transaction.
    TooManyRecipients = 452, st(4, 5, 3), "Too many recipients";
    /// `500` a command line longer than the limit.
    LineTooLong = 500, st(5, 5, 2), "Line too long";
    /// `501` bad arguments.
    SyntaxError = 501, st(5, 5, 4), "Syntax error in parameters or arguments";
    /// `501` invalid HELO/EHLO domain.
    BadHelo = 501, st(5, 5, 4), "Invalid domain name";
    /// `501` a sender address that cannot be parsed.
    BadSenderSyntax = 501, st(5, 1, 7), "Bad sender address syntax";
    /// `501` a recipient address that cannot be parsed.
    BadRecipientSyntax = 501, st(5, 1, 3), "Bad recipient address syntax";
    /// `501` the client cancelled AUTH with `*`.
    AuthCancelled = 501, st(5, 0, 0), "Authentication cancelled";
    /// `501` an AUTH response that is not valid base64 or SASL.
    AuthMalformed = 501, st(5, 5, 2), "Cannot decode authentication response";
    /// `502` unknown or unimplemented command (TURN, unknown verbs).
    NotImplemented = 502, st(5, 5, 1), "Command not implemented";
    /// `502` EXPN is disabled.
    ExpnDisabled = 502, st(5, 5, 1), "EXPN not available";
    /// `502` STARTTLS is not offered.
    TlsNotAvailable = 502, st(5, 5, 1), "STARTTLS not available";
    /// `503` generic bad sequence.
    BadSequence = 503, st(5, 5, 1), "Bad sequence of commands";
    /// `503` a command that needs HELO/EHLO first.
    HeloFirst = 503, st(5, 5, 1), "Bad sequence of commands: send HELO/EHLO first";
    /// `503` RCPT or DATA before MAIL.
    NeedMail = 503, st(5, 5, 1), "Bad sequence of commands: need MAIL first";
    /// `503` DATA before RCPT.
    NeedRcpt = 503, st(5, 5, 1), "Bad sequence of commands: need RCPT first";
    /// `503` a second MAIL in one transaction.
    NestedMail = 503, st(5, 5, 1), "Bad sequence of commands: sender already given";
    /// `503` AUTH after a successful AUTH.
    AlreadyAuthenticated = 503, st(5, 5, 1), "Bad sequence of commands: already authenticated";
    /// `503` AUTH during a transaction.
    AuthInTransaction = 503, st(5, 5, 1), "Bad sequence of commands: AUTH not allowed during a transaction";
    /// `503` STARTTLS on a session that already has TLS.
    TlsActive = 503, st(5, 5, 1), "Bad sequence of commands: TLS already active";
    /// `503` the connection was refused; only QUIT is allowed.
    NoService = 503, st(5, 5, 1), "Bad sequence of commands: no SMTP service here, send QUIT";
    /// `503` DATA with BODY=BINARYMIME, or DATA and BDAT mixed.
    DataNotAllowed = 503, st(5, 5, 1), "Bad sequence of commands: use BDAT for this message";
    /// `504` an AUTH mechanism that is not offered.
    MechanismNotSupported = 504, st(5, 5, 4), "Unrecognized authentication type";
    /// `504` a parameter value this server does not implement.
    ParamNotImplemented = 504, st(5, 5, 4), "Command parameter not implemented";
    /// `530` authentication is required first.
    AuthRequired = 530, st(5, 7, 0), "Authentication required";
    /// `535` wrong credentials.
    AuthFailed = 535, st(5, 7, 8), "Authentication credentials invalid";
    /// `538` AUTH before TLS.
    EncryptionRequired = 538, st(5, 7, 11), "Encryption required for requested authentication mechanism";
    /// `550` the mailbox does not exist.
    MailboxUnavailable = 550, st(5, 1, 1), "Mailbox unavailable";
    /// `550` relaying refused.
    RelayDenied = 550, st(5, 7, 1), "Delivery is not allowed to this address";
    /// `550` an authenticated account was disabled since it logged in (S-6).
    CredentialsRevoked = 550, st(5, 7, 1), "Credentials are no longer valid";
    /// `550` alias/list resolution looped.
    TooManyForwards = 550, st(5, 4, 6), "Too many recursive forwards";
    /// `550` the empty sender `<>` is refused.
    NullSenderRefused = 550, st(5, 7, 1), "Empty sender address not accepted";
    /// `552` the message is bigger than the limit.
    MessageTooBig = 552, st(5, 3, 4), "Message size exceeds fixed maximum message size";
    /// `553` a non-ASCII address without SMTPUTF8.
    Utf8Required = 553, st(5, 6, 7), "Non-ASCII address requires SMTPUTF8";
    /// `554` generic transaction failure.
    TransactionFailed = 554, st(5, 0, 0), "Transaction failed";
    /// `554` the connection is refused at greeting time.
    ConnectionRefused = 554, st(5, 7, 1), "No SMTP service here";
    /// `554` DATA when no recipient was accepted.
    NoValidRecipients = 554, st(5, 5, 1), "No valid recipients";
    /// `554` bare CR or LF in DATA when they are refused (S-3).
    BareLineEnding = 554, st(5, 6, 0), "Message contains bare CR or LF line endings";
    /// `555` an unknown MAIL/RCPT parameter.
    ParamNotRecognized = 555, st(5, 5, 4), "Parameter not recognized or not implemented";
}

/// Replacement texts for catalogue replies the session sends on its own
/// (the translation table of L-3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyTexts {
    texts: Vec<(ReplyId, Cow<'static, str>)>,
}

impl ReplyTexts {
    /// Replaces the text of `id`.
    pub fn set(&mut self, id: ReplyId, text: impl Into<Cow<'static, str>>) -> &mut Self {
        let text = text.into();
        match self.texts.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = text,
            None => self.texts.push((id, text)),
        }
        self
    }

    /// The reply `id` with its replacement text, if one was set.
    pub fn reply(&self, id: ReplyId) -> Reply {
        let reply = Reply::from_id(id);
        match self.texts.iter().find(|(i, _)| *i == id) {
            Some((_, text)) => reply.with_text(text.clone()),
            None => reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply) -> String {
        let mut out = Vec::new();
        r.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_single_and_multi_line() {
        assert_eq!(enc(&Reply::from_id(ReplyId::Ok)), "250 2.0.0 OK\r\n");
        assert_eq!(
            enc(&Reply::from_id(ReplyId::StartData)),
            "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
        );
        let r = Reply::new(250, None, "mx.example\nPIPELINING\nSIZE 1000").unwrap();
        assert_eq!(
            enc(&r),
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
        );
        let r = Reply::new(550, st(5, 1, 1), "no\nsuch user").unwrap();
        assert_eq!(enc(&r), "550-5.1.1 no\r\n550 5.1.1 such user\r\n");
        assert_eq!(enc(&Reply::new(334, None, "").unwrap()), "334\r\n");
    }

    #[test]
    fn catalogue_codes_match_their_status_class() {
        for &id in ReplyId::ALL {
            let (code, status, _) = id.parts();
            if let Some(s) = status {
                assert_eq!(u16::from(s.class), code / 100, "{id:?}");
            }
        }
        let codes: Vec<u16> = ReplyId::ALL.iter().map(|id| id.parts().0).collect();
        for required in [421, 451, 500, 501, 502, 503, 504, 530, 535, 550, 552, 554] {
            assert!(
                codes.contains(&required),
                "{required} missing from the catalogue"
            );
        }
    }

    #[test]
    fn parses_what_it_encodes() {
        for &id in ReplyId::ALL {
            let reply = Reply::from_id(id);
            let wire = enc(&reply);
            let (parsed, used) = Reply::parse(wire.as_bytes(), &ReplyLimits::default())
                .unwrap()
                .unwrap();
            assert_eq!(used, wire.len());
            assert_eq!(parsed, reply, "{wire}");
        }
    }

    /// A fuzz finding: invalid UTF-8 read as U+FFFD made a line near the
    /// limit encode three times longer, past the limit.
    #[test]
    fn invalid_octets_do_not_lengthen_a_line() {
        let limits = ReplyLimits::default();
        let mut line = b"250 ".to_vec();
        line.resize(limits.line - 2, 0xff);
        line.extend_from_slice(b"\r\n");
        let (reply, used) = Reply::parse(&line, &limits).unwrap().unwrap();
        assert_eq!(used, line.len());
        let mut wire = Vec::new();
        reply.encode(&mut wire);
        assert_eq!(wire.len(), line.len());
        assert_eq!(Reply::parse(&wire, &limits).unwrap().unwrap().0, reply);
    }

    #[test]
    fn parser_known_answers() {
        let limits = ReplyLimits::default();
        let (r, n) = Reply::parse(b"250-a\r\n250-b\r\n250 c\r\nextra", &limits)
            .unwrap()
            .unwrap();
        assert_eq!(n, 21);
        assert_eq!(r.lines().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(r.status(), None);
        let (r, _) = Reply::parse(b"451 4.7.1 Try later\r\n", &limits)
            .unwrap()
            .unwrap();
        assert_eq!(r.status(), st(4, 7, 1));
        assert_eq!(r.text(), "Try later");
        // A status whose class disagrees with the code is text.
        let (r, _) = Reply::parse(b"250 5.0.0 odd\r\n", &limits)
            .unwrap()
            .unwrap();
        assert_eq!(r.status(), None);
        assert_eq!(r.text(), "5.0.0 odd");
        let (r, _) = Reply::parse(b"220\n", &limits).unwrap().unwrap();
        assert_eq!(r.code(), 220);
        assert_eq!(Reply::parse(b"250-a\r\n", &limits), Ok(None));
        assert_eq!(
            Reply::parse(b"250-a\r\n251 b\r\n", &limits),
            Err(ReplyError::InconsistentCode)
        );
        assert_eq!(
            Reply::parse(b"25 a\r\n", &limits),
            Err(ReplyError::Malformed)
        );
        assert_eq!(
            Reply::parse(b"250xa\r\n", &limits),
            Err(ReplyError::Malformed)
        );
        assert_eq!(
            Reply::parse(b"650 a\r\n", &limits),
            Err(ReplyError::Malformed)
        );
        let long = vec![b'2'; 5000];
        assert_eq!(Reply::parse(&long, &limits), Err(ReplyError::LineTooLong));
    }

    #[test]
    fn texts_can_be_replaced() {
        let mut texts = ReplyTexts::default();
        texts.set(ReplyId::Bye, "Au revoir");
        assert_eq!(enc(&texts.reply(ReplyId::Bye)), "221 2.0.0 Au revoir\r\n");
        assert_eq!(enc(&texts.reply(ReplyId::Ok)), "250 2.0.0 OK\r\n");
        let r = Reply::from_id(ReplyId::Ok).with_text("a\rb");
        assert_eq!(enc(&r), "250 2.0.0 a b\r\n");
    }

    #[test]
    fn invalid_replies_are_refused() {
        assert_eq!(Reply::new(199, None, "x"), Err(InvalidReply));
        assert_eq!(Reply::new(600, None, "x"), Err(InvalidReply));
        assert_eq!(Reply::new(250, None, "a\rb"), Err(InvalidReply));
    }
}
