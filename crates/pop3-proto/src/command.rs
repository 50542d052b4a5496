//! POP3 commands: the parser the server uses and the encoder the client
//! uses, each the inverse of the other.
//!
//! RFC 1939 section 3: a command is a case-insensitive keyword of three or
//! four characters, possibly followed by arguments, each after a single
//! space, and ends with CRLF. RFC 2449 section 4 lets the whole line grow
//! to 255 octets. The parser takes one line without its line end and is
//! lenient in one way only: trailing spaces after the last argument are
//! ignored (except in PASS, whose argument may end with spaces).

use crate::types::Secret;

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `USER name` (RFC 1939 section 7).
    User(String),
    /// `PASS string`: everything after the space, spaces included.
    Pass(Secret),
    /// `AUTH mechanism [initial-response]` (RFC 5034 section 4).
    Auth {
        /// The SASL mechanism name, in upper case.
        mechanism: String,
        /// The initial response as sent, in base64 (`=` for an empty one).
        initial: Option<Secret>,
    },
    /// `CAPA` (RFC 2449 section 5).
    Capa,
    /// `STLS` (RFC 2595 section 4).
    Stls,
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<u32>),
    /// `RETR msg`.
    Retr(u32),
    /// `DELE msg`.
    Dele(u32),
    /// `NOOP`.
    Noop,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
    /// `TOP msg n`.
    Top {
        /// The message number.
        message: u32,
        /// How many lines of the body to send after the header.
        lines: u32,
    },
    /// `UIDL [msg]`.
    Uidl(Option<u32>),
}

/// Why a command line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The keyword is not a command this crate knows (APOP among them).
    #[error("unknown command")]
    Unknown,
    /// The keyword is known; its arguments are missing, extra or malformed.
    #[error("invalid arguments")]
    Syntax,
}

impl Command {
    /// Parses one command line without its CRLF.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let (keyword, rest) = match memchr::memchr(b' ', line) {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if !(3..=4).contains(&keyword.len()) {
            return Err(ParseError::Unknown);
        }
        let mut upper = [0u8; 4];
        upper[..keyword.len()].copy_from_slice(keyword);
        upper.make_ascii_uppercase();
        let keyword = &upper[..keyword.len()];
        if keyword == b"PASS" {
            // The only argument may hold spaces, trailing ones included.
            return pass(rest);
        }
        let args: Vec<&[u8]> = match rest.map(trim_end) {
            None | Some([]) => Vec::new(),
            Some(rest) => rest.split(|&b| b == b' ').collect(),
        };
        let command = match (keyword, &args[..]) {
            (b"USER", _) => user(rest)?,
            (b"AUTH", [mechanism]) => Command::Auth {
                mechanism: mechanism_name(mechanism)?,
                initial: None,
            },
            (b"AUTH", [mechanism, initial]) => Command::Auth {
                mechanism: mechanism_name(mechanism)?,
                initial: Some(Secret::new(base64_text(initial)?)),
            },
            (b"CAPA", []) => Command::Capa,
            (b"STLS", []) => Command::Stls,
            (b"STAT", []) => Command::Stat,
            (b"LIST", []) => Command::List(None),
            (b"LIST", [msg]) => Command::List(Some(number(msg)?)),
            (b"RETR", [msg]) => Command::Retr(number(msg)?),
            (b"DELE", [msg]) => Command::Dele(number(msg)?),
            (b"NOOP", []) => Command::Noop,
            (b"RSET", []) => Command::Rset,
            (b"QUIT", []) => Command::Quit,
            (b"TOP", [msg, n]) => Command::Top {
                message: number(msg)?,
                lines: number(n)?,
            },
            (b"UIDL", []) => Command::Uidl(None),
            (b"UIDL", [msg]) => Command::Uidl(Some(number(msg)?)),
            (
                b"AUTH" | b"CAPA" | b"STLS" | b"STAT" | b"LIST" | b"RETR" | b"DELE" | b"NOOP"
                | b"RSET" | b"QUIT" | b"TOP" | b"UIDL",
                _,
            ) => return Err(ParseError::Syntax),
            _ => return Err(ParseError::Unknown),
        };
        Ok(command)
    }

    /// Writes the command with its CRLF. Arguments are written as they
    /// are; a CR, LF or NUL in one (a caller's mistake) is written as a
    /// space, so that one command stays one line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let arg = |out: &mut Vec<u8>, text: &str| {
            out.push(b' ');
            out.extend(text.bytes().map(|b| {
                if matches!(b, b'\r' | b'\n' | 0) {
                    b' '
                } else {
                    b
                }
            }));
        };
        match self {
            Command::User(name) => {
                out.extend_from_slice(b"USER");
                arg(out, name);
            }
            Command::Pass(password) => {
                out.extend_from_slice(b"PASS");
                arg(out, password.expose());
            }
            Command::Auth { mechanism, initial } => {
                out.extend_from_slice(b"AUTH");
                arg(out, mechanism);
                if let Some(initial) = initial {
                    arg(out, initial.expose());
                }
            }
            Command::Capa => out.extend_from_slice(b"CAPA"),
            Command::Stls => out.extend_from_slice(b"STLS"),
            Command::Stat => out.extend_from_slice(b"STAT"),
            Command::List(msg) => {
                out.extend_from_slice(b"LIST");
                if let Some(msg) = msg {
                    arg(out, &msg.to_string());
                }
            }
            Command::Retr(msg) => {
                out.extend_from_slice(b"RETR");
                arg(out, &msg.to_string());
            }
            Command::Dele(msg) => {
                out.extend_from_slice(b"DELE");
                arg(out, &msg.to_string());
            }
            Command::Noop => out.extend_from_slice(b"NOOP"),
            Command::Rset => out.extend_from_slice(b"RSET"),
            Command::Quit => out.extend_from_slice(b"QUIT"),
            Command::Top { message, lines } => {
                out.extend_from_slice(b"TOP");
                arg(out, &message.to_string());
                arg(out, &lines.to_string());
            }
            Command::Uidl(msg) => {
                out.extend_from_slice(b"UIDL");
                if let Some(msg) = msg {
                    arg(out, &msg.to_string());
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Whether the response to this command is multi-line when positive
    /// (RFC 1939 section 3, RFC 2449 section 5).
    pub fn is_multiline(&self) -> bool {
        matches!(
            self,
            Command::Capa
                | Command::List(None)
                | Command::Uidl(None)
                | Command::Retr(_)
                | Command::Top { .. }
        )
    }
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Text without control characters, as UTF-8.
fn text(bytes: &[u8]) -> Result<String, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::Syntax)?;
    if text.chars().any(char::is_control) {
        return Err(ParseError::Syntax);
    }
    Ok(text.to_owned())
}

/// `USER name`: the rest of the line, trailing spaces removed, not empty.
fn user(rest: Option<&[u8]>) -> Result<Command, ParseError> {
    let name = trim_end(rest.ok_or(ParseError::Syntax)?);
    if name.is_empty() {
        return Err(ParseError::Syntax);
    }
    Ok(Command::User(text(name)?))
}

/// `PASS string`: everything after the first space.
fn pass(rest: Option<&[u8]>) -> Result<Command, ParseError> {
    let password = rest.ok_or(ParseError::Syntax)?;
    Ok(Command::Pass(Secret::new(text(password)?)))
}

/// A SASL mechanism name: 1 to 20 of upper-case letters, digits, `-` and
/// `_` (RFC 4422 section 3.1), accepted in any case.
fn mechanism_name(name: &[u8]) -> Result<String, ParseError> {
    let valid = (1..=20).contains(&name.len())
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !valid {
        return Err(ParseError::Syntax);
    }
    Ok(String::from_utf8_lossy(name).to_ascii_uppercase())
}

/// An initial response: base64 characters, or `=` alone.
fn base64_text(bytes: &[u8]) -> Result<String, ParseError> {
    let valid = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !valid {
        return Err(ParseError::Syntax);
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// `msg` or `n`: `1*DIGIT`. Values beyond `u32::MAX` saturate: no maildrop
/// has such a message and no message so many lines, so the answer is the
/// same.
fn number(digits: &[u8]) -> Result<u32, ParseError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Syntax);
    }
    Ok(digits.iter().fold(0u32, |n, d| {
        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Command, ParseError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn known_commands() {
        let cases: &[(&str, Command)] = &[
            ("USER mrose", Command::User("mrose".into())),
            (
                "user mrose@example.org  ",
                Command::User("mrose@example.org".into()),
            ),
            ("USER a b", Command::User("a b".into())),
            ("PASS secret", Command::Pass(Secret::new("secret"))),
            (
                "PASS with spaces ",
                Command::Pass(Secret::new("with spaces ")),
            ),
            ("PASS ", Command::Pass(Secret::new(""))),
            ("STAT", Command::Stat),
            ("stat ", Command::Stat),
            ("LIST", Command::List(None)),
            ("LIST 2", Command::List(Some(2))),
            ("RETR 1", Command::Retr(1)),
            ("DELE 0", Command::Dele(0)),
            ("NOOP", Command::Noop),
            ("RSET", Command::Rset),
            ("QUIT", Command::Quit),
            (
                "TOP 1 10",
                Command::Top {
                    message: 1,
                    lines: 10,
                },
            ),
            (
                "TOP 1 99999999999",
                Command::Top {
                    message: 1,
                    lines: u32::MAX,
                },
            ),
            ("UIDL", Command::Uidl(None)),
            ("UIDL 7", Command::Uidl(Some(7))),
            ("CAPA", Command::Capa),
            ("STLS", Command::Stls),
            (
                "AUTH plain",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: None,
                },
            ),
            (
                "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some(Secret::new("dGVzdAB0ZXN0AHRlc3Q=")),
                },
            ),
            (
                "AUTH PLAIN =",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some(Secret::new("=")),
                },
            ),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line).as_ref(), Ok(command), "{line}");
        }
    }

    #[test]
    fn refused_lines() {
        for line in [
            "",
            "X",
            "XYZZY",
            "APOP mrose c4c9334bac560ecc979e58001b3e22fb",
            "RETRX 1",
        ] {
            assert_eq!(parse(line), Err(ParseError::Unknown), "{line}");
        }
        for line in [
            "USER",
            "USER ",
            "USER a\tb",
            "PASS",
            "PASS a\0b",
            "STAT 1",
            "LIST a",
            "LIST 1 2",
            "LIST -1",
            "LIST +1",
            "RETR",
            "RETR 1 2",
            "DELE x",
            "TOP 1",
            "TOP 1 -1",
            "TOP a 1",
            "UIDL 1 2",
            "AUTH",
            "AUTH P@AIN",
            "AUTH PLAIN a b",
            "AUTH PLAIN ab!c",
            "QUIT now",
            "LIST  1",
            "CAPA x",
        ] {
            assert_eq!(parse(line), Err(ParseError::Syntax), "{line}");
        }
        assert_eq!(Command::parse(b"USER \xff"), Err(ParseError::Syntax));
    }

    #[test]
    fn encode_is_the_inverse_of_parse() {
        for line in [
            "USER mrose",
            "PASS a b ",
            "AUTH PLAIN",
            "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=",
            "CAPA",
            "STLS",
            "STAT",
            "LIST",
            "LIST 3",
            "RETR 1",
            "DELE 2",
            "NOOP",
            "RSET",
            "QUIT",
            "TOP 1 0",
            "UIDL",
            "UIDL 4",
        ] {
            let command = parse(line).unwrap();
            let mut out = Vec::new();
            command.encode(&mut out);
            assert_eq!(out, format!("{line}\r\n").into_bytes());
        }
        let mut out = Vec::new();
        Command::User("a\r\nDELE 1".into()).encode(&mut out);
        assert_eq!(out, b"USER a  DELE 1\r\n");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = parse("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=").unwrap();
        assert!(!format!("{c:?}").contains("dGVz"));
        assert!(!format!("{:?}", parse("PASS hunter2").unwrap()).contains("hunter2"));
    }
}
