//! IMAP ENVELOPE (RFC 3501 section 7.4.2) of a message or of a
//! message/rfc822 part.
//!
//! Values are the raw header bytes, as IMAP requires (clients decode RFC 2047
//! themselves): the date, message id and in-reply-to unfolded, the subject and
//! display names cleaned of surplus white space, addresses split into
//! (name, route, mailbox, host). Broken addresses are kept with the
//! placeholders mainstream servers use (`MISSING_MAILBOX`, `MISSING_DOMAIN`,
//! `SYNTAX_ERROR`), so that clients see the same thing from every server.

use crate::header::HeaderField;
use crate::imap_string::{write_nstring_nolf, write_string_for_humans};
use crate::lex::{Lexer, Step};

/// One address of an ENVELOPE address list. A group is written as a start
/// marker (`mailbox` = group name, `host` = `None`) and an end marker (every
/// field `None`), as RFC 3501 says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// The display name (raw, encoded words left as they are).
    pub name: Option<Vec<u8>>,
    /// The source route (`@a,@b`), obsolete but still seen.
    pub route: Option<Vec<u8>>,
    /// The local part, or the group name of a group start marker.
    pub mailbox: Option<Vec<u8>>,
    /// The domain; `None` only in group markers.
    pub host: Option<Vec<u8>>,
}

impl Address {
    /// Whether this is a group start or end marker.
    pub fn is_group_marker(&self) -> bool {
        self.host.is_none()
    }
}

/// The ENVELOPE of a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `Date:` (raw, folding kept).
    pub date: Option<Vec<u8>>,
    /// `Subject:` (raw, folding kept).
    pub subject: Option<Vec<u8>>,
    /// `From:`.
    pub from: Option<Vec<Address>>,
    /// `Sender:`, or `From:` when absent.
    pub sender: Option<Vec<Address>>,
    /// `Reply-To:`, or `From:` when absent.
    pub reply_to: Option<Vec<Address>>,
    /// `To:`.
    pub to: Option<Vec<Address>>,
    /// `Cc:`.
    pub cc: Option<Vec<Address>>,
    /// `Bcc:`.
    pub bcc: Option<Vec<Address>>,
    /// `In-Reply-To:` (raw).
    pub in_reply_to: Option<Vec<u8>>,
    /// `Message-ID:` (raw).
    pub message_id: Option<Vec<u8>>,
}

impl Envelope {
    /// The envelope of the header `fields` of `raw`. Later `Date`, `Subject`,
    /// `In-Reply-To` and `Message-ID` fields replace earlier ones; addresses
    /// of repeated address fields are concatenated.
    pub fn from_fields(raw: &[u8], fields: &[HeaderField]) -> Envelope {
        let mut env = Envelope::default();
        let mut sender = None;
        let mut reply_to = None;
        for field in fields {
            let name = field.name(raw);
            let value = || field.value(raw).into_owned();
            let list = match name.to_ascii_lowercase().as_slice() {
                b"date" => {
                    env.date = Some(value());
                    continue;
                }
                b"subject" => {
                    env.subject = Some(value());
                    continue;
                }
                b"in-reply-to" => {
                    env.in_reply_to = Some(value());
                    continue;
                }
                b"message-id" => {
                    env.message_id = Some(value());
                    continue;
                }
                b"from" => &mut env.from,
                b"sender" => &mut sender,
                b"reply-to" => &mut reply_to,
                b"to" => &mut env.to,
                b"cc" => &mut env.cc,
                b"bcc" => &mut env.bcc,
                _ => continue,
            };
            let parsed = parse_address_list(&field.value(raw));
            if !parsed.is_empty() {
                list.get_or_insert_with(Vec::new).extend(parsed);
            }
        }
        env.sender = sender.or_else(|| env.from.clone());
        env.reply_to = reply_to.or_else(|| env.from.clone());
        env
    }

    /// Appends the IMAP form, without the surrounding parentheses' caller:
    /// `("date" "subject" (from) (sender) ... "message-id")`.
    pub fn write_imap(&self, out: &mut Vec<u8>) {
        out.push(b'(');
        write_nstring_nolf(out, self.date.as_deref());
        out.push(b' ');
        match &self.subject {
            None => out.extend_from_slice(b"NIL"),
            Some(s) => write_string_for_humans(out, s),
        }
        for list in [
            &self.from,
            &self.sender,
            &self.reply_to,
            &self.to,
            &self.cc,
            &self.bcc,
        ] {
            out.push(b' ');
            write_address_list(out, list.as_deref());
        }
        out.push(b' ');
        write_nstring_nolf(out, self.in_reply_to.as_deref());
        out.push(b' ');
        write_nstring_nolf(out, self.message_id.as_deref());
        out.push(b')');
    }

    /// The IMAP form as a byte string.
    pub fn to_imap_string(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_imap(&mut out);
        out
    }
}

fn write_address_list(out: &mut Vec<u8>, list: Option<&[Address]>) {
    let Some(list) = list else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    for addr in list {
        out.push(b'(');
        match &addr.name {
            None => out.extend_from_slice(b"NIL"),
            Some(name) => write_string_for_humans(out, name),
        }
        out.push(b' ');
        write_nstring_nolf(out, addr.route.as_deref());
        out.push(b' ');
        write_nstring_nolf(out, addr.mailbox.as_deref());
        out.push(b' ');
        write_nstring_nolf(out, addr.host.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";
const SYNTAX_ERROR: &[u8] = b"SYNTAX_ERROR";
const INVALID_ROUTE: &[u8] = b"INVALID_ROUTE";

/// Parser state for one address list (RFC 5322 section 3.4, obsolete forms
/// included).
struct AddressParser<'a> {
    lex: Lexer<'a>,
    out: Vec<Address>,
    addr: Address,
    invalid: bool,
}

/// Parses an address list (`address *("," address)`); what cannot be read is
/// kept with placeholders, and parsing stops at the first unreadable point.
pub fn parse_address_list(value: &[u8]) -> Vec<Address> {
    let mut p = AddressParser {
        lex: Lexer::with_comments(value),
        out: Vec::new(),
        addr: Address::default(),
        invalid: false,
    };
    if p.lex.skip_lwsp() != Step::More {
        return p.out;
    }
    // Each address consumes input or stops the list, so this ends; the bound
    // is a second guard against a loop on hostile input.
    for _ in 0..=value.len() {
        let step = p.address();
        if step == Step::End {
            break;
        }
        if p.lex.at_end() || p.lex.peek() != b',' {
            break;
        }
        p.lex.bump();
        match p.lex.skip_lwsp() {
            Step::More => {}
            Step::Broken => {
                p.add_fixed();
                break;
            }
            Step::End => break,
        }
    }
    p.out
}

impl AddressParser<'_> {
    fn push(&mut self) {
        self.out.push(std::mem::take(&mut self.addr));
        self.invalid = false;
    }

    fn add_fixed(&mut self) {
        if self.addr.mailbox.is_none() {
            self.addr.mailbox = Some(MISSING_MAILBOX.to_vec());
        }
        if self.addr.host.as_ref().is_none_or(|h| h.is_empty()) {
            self.addr.host = Some(MISSING_DOMAIN.to_vec());
        }
        self.push();
    }

    fn address(&mut self) -> Step {
        let start = self.lex.position();
        let step = self.group();
        if step != Step::Broken {
            return step;
        }
        self.lex.set_position(start);
        self.addr = Address::default();
        self.mailbox()
    }

    fn group(&mut self) -> Step {
        let mut name = Vec::new();
        if self.lex.parse_phrase(&mut name) != Step::More || self.lex.peek() != b':' {
            return Step::Broken;
        }
        self.lex.bump();
        let mut step = self.lex.skip_lwsp();
        self.addr.mailbox = Some(name);
        self.push();
        if step == Step::More && self.lex.peek() != b';' {
            loop {
                self.addr = Address::default();
                let _ = self.mailbox();
                if self.lex.at_end() || self.lex.peek() != b',' {
                    break;
                }
                self.lex.bump();
                if self.lex.skip_lwsp() != Step::More {
                    step = Step::Broken;
                    break;
                }
            }
        }
        if step != Step::Broken {
            if self.lex.at_end() || self.lex.peek() != b';' {
                step = Step::Broken;
            } else {
                self.lex.bump();
                step = self.lex.skip_lwsp();
            }
        }
        self.addr = Address::default();
        self.push();
        if step == Step::End {
            Step::End
        } else {
            Step::More
        }
    }

    fn mailbox(&mut self) -> Step {
        let start = self.lex.position();
        let mut step = self.name_addr();
        if step == Step::Broken {
            self.lex.set_position(start);
            self.addr = Address::default();
            self.invalid = false;
            step = self.addr_spec();
            if self.invalid
                && self.addr.name.is_none()
                && self.addr.mailbox.is_some()
                && self.addr.host.is_none()
            {
                self.addr.name = self.addr.mailbox.take();
            }
        }
        self.add_fixed();
        step
    }

    fn name_addr(&mut self) -> Step {
        let mut name = Vec::new();
        if self.lex.parse_phrase(&mut name) != Step::More || self.lex.peek() != b'<' {
            return Step::Broken;
        }
        self.addr.name = (!name.is_empty()).then_some(name);
        if self.angle_addr() == Step::Broken {
            self.addr.host = Some(SYNTAX_ERROR.to_vec());
            self.invalid = true;
        }
        if self.lex.at_end() {
            Step::End
        } else {
            Step::More
        }
    }

    fn angle_addr(&mut self) -> Step {
        self.lex.bump();
        if self.lex.skip_lwsp() != Step::More {
            return Step::Broken;
        }
        if self.lex.peek() == b'@' {
            if self.domain_list() == Step::More && self.lex.peek() == b':' {
                self.lex.bump();
            } else {
                self.addr.route = Some(INVALID_ROUTE.to_vec());
                if self.lex.at_end() {
                    return Step::Broken;
                }
            }
            if self.lex.skip_lwsp() != Step::More {
                return Step::Broken;
            }
        }
        if self.lex.peek() != b'>' {
            if self.local_part() != Step::More {
                return Step::Broken;
            }
            if self.lex.peek() == b'@' && self.domain() != Step::More {
                return Step::Broken;
            }
        }
        if self.lex.peek() != b'>' {
            return Step::Broken;
        }
        self.lex.bump();
        self.lex.skip_lwsp()
    }

    fn domain_list(&mut self) -> Step {
        let mut route = Vec::new();
        loop {
            if self.lex.at_end() {
                return Step::End;
            }
            if self.lex.peek() != b'@' {
                break;
            }
            if !route.is_empty() {
                route.push(b',');
            }
            route.push(b'@');
            let step = self.lex.parse_domain(&mut route);
            if step != Step::More {
                return step;
            }
            while self.lex.skip_lwsp() == Step::More && self.lex.peek() == b',' {
                self.lex.bump();
            }
        }
        self.addr.route = Some(route);
        Step::More
    }

    fn local_part(&mut self) -> Step {
        let mut out = Vec::new();
        let step = if self.lex.peek() == b'"' {
            self.lex.parse_quoted_string(&mut out)
        } else {
            self.lex.parse_dot_atom(&mut out)
        };
        if step == Step::Broken {
            return Step::Broken;
        }
        self.addr.mailbox = Some(out);
        step
    }

    fn domain(&mut self) -> Step {
        let mut out = Vec::new();
        let step = self.lex.parse_domain(&mut out);
        if step == Step::Broken {
            return Step::Broken;
        }
        self.addr.host = Some(out);
        step
    }

    fn addr_spec(&mut self) -> Step {
        if let Some(c) = self.lex.last_comment.as_mut() {
            c.clear();
        }
        let quoted = self.lex.peek() == b'"';
        let mut step = self.local_part();
        if step != Step::More {
            self.invalid = true;
        }
        let mut domain_step = None;
        if step != Step::End && !self.lex.at_end() && self.lex.peek() == b'@' {
            let s = self.domain();
            domain_step = Some(s);
            if s != Step::More {
                step = s;
            }
        }
        let comment = self.lex.last_comment.clone().unwrap_or_default();
        if !comment.is_empty() {
            self.addr.name = Some(comment);
        } else if domain_step.is_none() {
            // `user` alone is a mailbox; `user more words` is a display name.
            let mut text = self.addr.mailbox.clone().unwrap_or_default();
            text.push(b' ');
            let before = text.len();
            let _ = self.lex.parse_phrase(&mut text);
            if text.len() != before {
                self.addr.mailbox = None;
                self.addr.name = Some(text);
            } else if !quoted {
                self.addr.host = Some(Vec::new());
            }
            self.invalid = true;
            step = Step::Broken;
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(list: &[Address]) -> String {
        let mut out = Vec::new();
        write_address_list(&mut out, Some(list));
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn common_forms() {
        assert_eq!(
            render(&parse_address_list(
                b"\"Last, First\" <a@b.c>, x@y.z (Comment Name)"
            )),
            "((\"Last, First\" NIL \"a\" \"b.c\")(\"Comment Name\" NIL \"x\" \"y.z\"))"
        );
        assert_eq!(
            render(&parse_address_list(b"<@r.example:u@h.example>")),
            "((NIL \"@r.example\" \"u\" \"h.example\"))"
        );
    }

    #[test]
    fn groups_have_markers() {
        assert_eq!(
            render(&parse_address_list(b"undisclosed-recipients:;")),
            "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"
        );
    }

    #[test]
    fn broken_addresses_get_placeholders() {
        assert_eq!(
            render(&parse_address_list(b"broken <a@b.c")),
            "((\"broken\" NIL \"a\" \"SYNTAX_ERROR\"))"
        );
        assert_eq!(
            render(&parse_address_list(b"no-domain")),
            "((NIL NIL \"no-domain\" \"MISSING_DOMAIN\"))"
        );
        assert!(parse_address_list(b"(only a comment)").is_empty());
    }
}
