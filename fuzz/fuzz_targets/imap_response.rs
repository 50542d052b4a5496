//! IMAP responses built from arbitrary bytes: the encoding is one response
//! (lines and the literals they announce, no bare CR or LF outside
//! literals) and parses back to the same response; arbitrary bytes never
//! make `Response::parse` panic.
//!
//! The values stay inside what the wire can carry, as the crate documents
//! it: body data has no NUL (sent as 0x80), lists the grammar requires to be
//! non-empty are, `Code::Other` names are not known codes and its text is
//! `1*<TEXT-CHAR except "]">`, base64 continuations use the base64
//! alphabet, and a text continuation that looks like base64 reads as base64.
#![no_main]

use std::num::NonZeroU32;

use ironpost_imap_proto::response::{
    Continue, Delimiter, MailboxAttribute, NamespaceDescription, QuotaResource, Rendered, Text,
};
use ironpost_imap_proto::types::{
    AString, Atom, Date, DateTime, Flag, Mailbox, PermanentFlag, Section, SectionText, SeqNumber,
    SeqRange, SequenceSet, StatusItem, Tag,
};
use ironpost_imap_proto::{Code, Data, FetchItem, Response, Status, StatusKind};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Up to `max` elements, at least `min`.
fn list<T>(
    u: &mut Unstructured<'_>,
    min: usize,
    max: usize,
    mut f: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(min..=max)?;
    (0..n).map(|_| f(u)).collect()
}

fn nz(u: &mut Unstructured<'_>) -> Result<NonZeroU32> {
    let n = if u.ratio(1, 2)? {
        u.int_in_range(1..=20)?
    } else {
        u.arbitrary()?
    };
    Ok(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

fn u63(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(u.arbitrary::<u64>()? & (i64::MAX as u64))
}

/// Short bytes, often printable.
fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    let raw = u.bytes(len.min(u.len()))?;
    Ok(if u.ratio(1, 2)? {
        raw.iter().map(|b| b' ' + b % 95).collect()
    } else {
        raw.to_vec()
    })
}

fn astring(u: &mut Unstructured<'_>) -> Result<AString> {
    let mut b = bytes(u, 40)?;
    b.retain(|&c| c != 0);
    Ok(AString::new(b).expect("no NUL"))
}

fn atom(u: &mut Unstructured<'_>) -> Result<Atom> {
    let b = bytes(u, 12)?;
    let s = String::from_utf8_lossy(&b);
    Ok(Atom::new(s.as_ref()).unwrap_or_else(|_| Atom::new("A").expect("an atom")))
}

fn text(u: &mut Unstructured<'_>) -> Result<Text> {
    let b = bytes(u, 40)?;
    let s = String::from_utf8_lossy(&b);
    Ok(Text::new(s.as_ref()).unwrap_or_else(|_| Text::lossy(&s)))
}

fn tag(u: &mut Unstructured<'_>) -> Result<Tag> {
    let b = bytes(u, 8)?;
    let s = String::from_utf8_lossy(&b);
    Ok(Tag::new(s.as_ref()).unwrap_or_else(|_| Tag::new("a1").expect("a tag")))
}

fn seq_set(u: &mut Unstructured<'_>) -> Result<SequenceSet> {
    let number = |u: &mut Unstructured<'_>| -> Result<SeqNumber> {
        Ok(if u.ratio(1, 5)? {
            SeqNumber::Largest
        } else {
            SeqNumber::Value(nz(u)?)
        })
    };
    let ranges = list(u, 1, 4, |u| {
        Ok(if u.arbitrary()? {
            SeqRange::Single(number(u)?)
        } else {
            SeqRange::Range(number(u)?, number(u)?)
        })
    })?;
    Ok(SequenceSet::new(ranges).expect("not empty"))
}

fn flag(u: &mut Unstructured<'_>) -> Result<Flag> {
    Ok(match u.int_in_range(0..=7)? {
        0 => Flag::Answered,
        1 => Flag::Flagged,
        2 => Flag::Deleted,
        3 => Flag::Seen,
        4 => Flag::Draft,
        5 => Flag::Recent,
        6 => Flag::Keyword(atom(u)?),
        _ => Flag::backslashed(atom(u)?),
    })
}

fn date_time(u: &mut Unstructured<'_>) -> Result<DateTime> {
    let date = Date::new(
        u.int_in_range(1..=9999)?,
        u.int_in_range(1..=12)?,
        u.int_in_range(1..=31)?,
    )
    .unwrap_or_else(|_| Date::new(2000, 2, 29).expect("a date"));
    let zone = u.int_in_range(-(99 * 60 + 59)..=99 * 60 + 59)?;
    let dt = DateTime::new(
        date,
        u.int_in_range(0..=23)?,
        u.int_in_range(0..=59)?,
        u.int_in_range(0..=60)?,
        zone,
    );
    Ok(dt.expect("in range"))
}

fn section(u: &mut Unstructured<'_>) -> Result<Section> {
    let part = list(u, 0, 3, nz)?;
    let text = match u.int_in_range(0..=5)? {
        0 => None,
        1 => Some(SectionText::Header),
        2 => Some(SectionText::Text),
        3 => Some(SectionText::Mime),
        4 => Some(SectionText::HeaderFields(list(u, 1, 3, astring)?)),
        _ => Some(SectionText::HeaderFieldsNot(list(u, 1, 3, astring)?)),
    };
    Ok(Section::new(part, text).unwrap_or_default())
}

/// Body data: no NUL, which goes out as 0x80.
fn body(u: &mut Unstructured<'_>) -> Result<Option<Vec<u8>>> {
    if u.ratio(1, 5)? {
        return Ok(None);
    }
    let mut b = bytes(u, 60)?;
    for c in &mut b {
        if *c == 0 {
            *c = 0x80;
        }
    }
    Ok(Some(b))
}

const RENDERED: &[&[u8]] = &[
    b"(NIL NIL)",
    b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") NIL NIL \"8BIT\" 12 1)",
    b"({4}\r\n(()) \"a\\\"b\")",
    b"({6}\r\nx{3}\r\n)",
    b"(((((a)))) ~{1}\r\n\xff)",
];

fn rendered(u: &mut Unstructured<'_>) -> Result<Rendered> {
    let b = if u.ratio(1, 2)? {
        u.choose(RENDERED)?.to_vec()
    } else {
        bytes(u, 60)?
    };
    Ok(Rendered::new(b).unwrap_or_else(|_| Rendered::new(&b"()"[..]).expect("a list")))
}

fn fetch_item(u: &mut Unstructured<'_>) -> Result<FetchItem> {
    let origin = |u: &mut Unstructured<'_>| -> Result<Option<u32>> {
        Ok(if u.arbitrary()? {
            Some(u.arbitrary()?)
        } else {
            None
        })
    };
    Ok(match u.int_in_range(0..=12)? {
        0 => FetchItem::Flags(list(u, 0, 4, flag)?),
        1 => FetchItem::InternalDate(date_time(u)?),
        2 => FetchItem::Rfc822Size(u.arbitrary()?),
        3 => FetchItem::Uid(nz(u)?),
        4 => FetchItem::Envelope(rendered(u)?),
        5 => FetchItem::BodyStructure(rendered(u)?),
        6 => FetchItem::Body(rendered(u)?),
        7 => FetchItem::BodySection {
            section: section(u)?,
            origin: origin(u)?,
            data: body(u)?.map(Into::into),
        },
        8 => FetchItem::Binary {
            part: list(u, 0, 3, nz)?,
            origin: origin(u)?,
            // Exact octets, NUL included (literal8).
            data: if u.arbitrary()? {
                Some(bytes(u, 40)?.into())
            } else {
                None
            },
        },
        9 => FetchItem::BinarySize {
            part: list(u, 0, 3, nz)?,
            size: u.arbitrary()?,
        },
        10 => FetchItem::Rfc822(body(u)?.map(Into::into)),
        11 => FetchItem::Rfc822Header(body(u)?.map(Into::into)),
        _ => FetchItem::Rfc822Text(body(u)?.map(Into::into)),
    })
}

fn code(u: &mut Unstructured<'_>) -> Result<Code> {
    const SIMPLE: &[Code] = &[
        Code::Alert,
        Code::Parse,
        Code::ReadOnly,
        Code::ReadWrite,
        Code::TryCreate,
        Code::UidNotSticky,
        Code::Closed,
        Code::TooBig,
        Code::Unavailable,
        Code::AuthenticationFailed,
        Code::AuthorizationFailed,
        Code::Expired,
        Code::PrivacyRequired,
        Code::ContactAdmin,
        Code::NoPerm,
        Code::InUse,
        Code::ExpungeIssued,
        Code::Corruption,
        Code::ServerBug,
        Code::ClientBug,
        Code::Cannot,
        Code::Limit,
        Code::OverQuota,
        Code::AlreadyExists,
        Code::NonExistent,
    ];
    Ok(match u.int_in_range(0..=9)? {
        0 => u.choose(SIMPLE)?.clone(),
        1 => Code::BadCharset(list(u, 0, 3, atom)?),
        2 => Code::Capability(list(u, 1, 4, atom)?),
        3 => Code::PermanentFlags(list(u, 0, 4, |u| {
            Ok(if u.ratio(1, 4)? {
                PermanentFlag::AnyKeyword
            } else {
                PermanentFlag::Flag(flag(u)?)
            })
        })?),
        4 => Code::UidNext(nz(u)?),
        5 => Code::UidValidity(nz(u)?),
        6 => Code::Unseen(nz(u)?),
        7 => Code::AppendUid {
            uid_validity: nz(u)?,
            uids: seq_set(u)?,
        },
        8 => Code::CopyUid {
            uid_validity: nz(u)?,
            source: seq_set(u)?,
            destination: seq_set(u)?,
        },
        _ => {
            // `X` first: no known code starts with it.
            let name = Atom::new(format!("X{}", atom(u)?)).expect("an atom");
            let text = String::from_utf8_lossy(&bytes(u, 20)?)
                .chars()
                .filter(|c| !matches!(c, ']' | '\r' | '\n' | '\0'))
                .collect::<String>();
            Code::Other(name, (!text.is_empty()).then_some(text))
        }
    })
}

fn status(u: &mut Unstructured<'_>) -> Result<Status> {
    let kind = *u.choose(&[
        StatusKind::Ok,
        StatusKind::No,
        StatusKind::Bad,
        StatusKind::PreAuth,
        StatusKind::Bye,
    ])?;
    let code = if u.arbitrary()? { Some(code(u)?) } else { None };
    Ok(Status {
        kind,
        code,
        text: text(u)?,
    })
}

fn delimiter(u: &mut Unstructured<'_>) -> Result<Option<Delimiter>> {
    Ok(if u.ratio(1, 4)? {
        None
    } else {
        Some(
            Delimiter::new(u.int_in_range(1..=127)?)
                .unwrap_or_else(|_| Delimiter::new(b'/').expect("a delimiter")),
        )
    })
}

fn namespaces(u: &mut Unstructured<'_>) -> Result<Option<Vec<NamespaceDescription>>> {
    if u.arbitrary()? {
        return Ok(None);
    }
    let list = list(u, 1, 3, |u| {
        Ok(NamespaceDescription {
            prefix: astring(u)?,
            delimiter: delimiter(u)?,
        })
    })?;
    Ok(Some(list))
}

fn data(u: &mut Unstructured<'_>) -> Result<Data> {
    let attributes = |u: &mut Unstructured<'_>| {
        list(u, 0, 4, |u| {
            const KNOWN: &[&str] = &["Noselect", "HasChildren", "Sent", "marked", "JUNK"];
            let name = if u.arbitrary()? {
                Atom::new(*u.choose(KNOWN)?).expect("an atom")
            } else {
                atom(u)?
            };
            Ok(MailboxAttribute::from_name(name))
        })
    };
    let status_item = |u: &mut Unstructured<'_>| -> Result<StatusItem> {
        Ok(*u.choose(&[
            StatusItem::Messages,
            StatusItem::Recent,
            StatusItem::UidNext,
            StatusItem::UidValidity,
            StatusItem::Unseen,
        ])?)
    };
    Ok(match u.int_in_range(0..=16)? {
        0 => Data::Capability(list(u, 1, 5, atom)?),
        1 => Data::List {
            attributes: attributes(u)?,
            delimiter: delimiter(u)?,
            mailbox: Mailbox::new(astring(u)?),
        },
        2 => Data::Lsub {
            attributes: attributes(u)?,
            delimiter: delimiter(u)?,
            mailbox: Mailbox::new(astring(u)?),
        },
        3 => Data::Status {
            mailbox: Mailbox::new(astring(u)?),
            items: list(u, 0, 5, |u| Ok((status_item(u)?, u63(u)?)))?,
        },
        4 => Data::Search(list(u, 0, 6, nz)?),
        5 => Data::Sort(list(u, 0, 6, nz)?),
        6 => Data::Flags(list(u, 0, 5, flag)?),
        7 => Data::Exists(u.arbitrary()?),
        8 => Data::Recent(u.arbitrary()?),
        9 => Data::Expunge(nz(u)?),
        10 => Data::Fetch {
            seq: nz(u)?,
            items: list(u, 1, 5, fetch_item)?,
        },
        11 => Data::Namespace {
            personal: namespaces(u)?,
            other: namespaces(u)?,
            shared: namespaces(u)?,
        },
        12 => Data::Quota {
            root: astring(u)?,
            resources: list(u, 0, 3, |u| {
                Ok(QuotaResource {
                    name: atom(u)?,
                    usage: u63(u)?,
                    limit: u63(u)?,
                })
            })?,
        },
        13 => Data::QuotaRoot {
            mailbox: Mailbox::new(astring(u)?),
            roots: list(u, 0, 3, astring)?,
        },
        14 => Data::Id(if u.arbitrary()? {
            None
        } else {
            Some(list(u, 0, 30, |u| {
                let value = if u.arbitrary()? {
                    Some(astring(u)?)
                } else {
                    None
                };
                Ok((astring(u)?, value))
            })?)
        }),
        _ => Data::Enabled(list(u, 0, 4, atom)?),
    })
}

fn is_base64(s: &str) -> bool {
    s.len().is_multiple_of(4)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// A response and what it parses back as.
fn response(u: &mut Unstructured<'_>) -> Result<(Response, Response)> {
    let r = match u.int_in_range(0..=4)? {
        0 => Response::Tagged(tag(u)?, status(u)?),
        1 => Response::Untagged(status(u)?),
        2 => Response::Data(data(u)?),
        3 => {
            let t = text(u)?;
            let r = Response::Continue(Continue::Text(t.clone()));
            if is_base64(t.as_str()) {
                let read = Response::Continue(Continue::Base64(t.as_str().to_owned()));
                return Ok((r, read));
            }
            r
        }
        _ => {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s: String = bytes(u, 40)?
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b % 64)]))
                .collect();
            while !s.len().is_multiple_of(4) {
                s.push('=');
            }
            Response::Continue(Continue::Base64(s))
        }
    };
    Ok((r.clone(), r))
}

/// The length of the literal `{n}` (or `~{n}`) a line ends with.
fn announced(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}\r\n")?;
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let open = line.len().checked_sub(digits + 1)?;
    if digits == 0 || line[open] != b'{' {
        return None;
    }
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// The encoding is one response: lines ending with CRLF, each but the last
/// announcing a literal that the next octets are. Only data carries
/// literals: a status or continuation is one line of text, which may end
/// with what looks like an announcement (`OK see {3}`).
fn one_response(response: &Response, wire: &[u8]) {
    let show = || wire.escape_ascii().to_string();
    assert!(wire.ends_with(b"\r\n"), "{}", show());
    if !matches!(response, Response::Data(_)) {
        let body = &wire[..wire.len() - 2];
        assert!(
            !body.contains(&b'\r') && !body.contains(&b'\n'),
            "{}",
            show()
        );
        return;
    }
    let mut at = 0;
    loop {
        let lf = wire[at..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("ends with a line end");
        let end = at + lf + 1;
        let line = &wire[at..end];
        assert!(
            line.ends_with(b"\r\n") && !line[..line.len() - 2].contains(&b'\r'),
            "a bare CR or LF: {}",
            show()
        );
        match announced(line) {
            Some(n) => at = end + n,
            None => {
                assert_eq!(end, wire.len(), "{}", show());
                return;
            }
        }
        assert!(at < wire.len(), "a literal cut short: {}", show());
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = Response::parse(data);
    let mut u = Unstructured::new(data);
    let Ok((response, expected)) = response(&mut u) else {
        return;
    };
    let mut wire = Vec::new();
    response.encode(&mut wire);
    one_response(&response, &wire);
    let parsed = Response::parse(&wire);
    assert_eq!(
        parsed.as_ref(),
        Some(&expected),
        "{:?}",
        wire.escape_ascii().to_string()
    );
    // What the parser read encodes the same.
    let mut again = Vec::new();
    parsed.expect("parsed").encode(&mut again);
    assert_eq!(again, wire);
});
