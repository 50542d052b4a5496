//! SEARCH (RFC 3501 section 6.4.4) and SORT (RFC 5256), one message at a
//! time, so that the driver can stream a mailbox without keeping its bytes.
//!
//! String keys are case-insensitive substring matches on decoded text: header
//! values unfolded with their RFC 2047 encoded words decoded, BODY on the
//! text parts with transfer encoding and charset undone (the mime crate's
//! [`Message::body_texts`]), TEXT on those and the header fields of every
//! part, as Dovecot searches. The search strings themselves are UTF-8 (the
//! only charsets [`charset_supported`] accepts, US-ASCII being a subset).

use std::cell::OnceCell;
use std::cmp::Ordering;

use ironpost_imap_proto::types::{AString, Atom, Date, SearchKey, SortCriterion, SortKey};
use ironpost_mime::decode::{decode_text, parse_date, plain_value};
use ironpost_mime::header::{HeaderField, parse_block};
use ironpost_mime::{Address, Envelope, Message, PartKind};
use ironpost_store::Flag;

use super::convert::internal_date;
use super::{Meta, Need};

// ---- SEARCH ----

/// How much of each message these keys read: the index alone for flags,
/// sizes, internal dates, UIDs and sequence numbers; the top-level header
/// for the header keys (FROM, TO, CC, BCC, SUBJECT, HEADER, SENT*); the
/// whole message for BODY and TEXT.
pub(crate) fn need(keys: &[SearchKey]) -> Need {
    keys.iter().map(key_need).max().unwrap_or(Need::Index)
}

fn key_need(key: &SearchKey) -> Need {
    match key {
        SearchKey::All
        | SearchKey::Answered
        | SearchKey::Deleted
        | SearchKey::Draft
        | SearchKey::Flagged
        | SearchKey::Keyword(_)
        | SearchKey::New
        | SearchKey::Old
        | SearchKey::Recent
        | SearchKey::Seen
        | SearchKey::Unanswered
        | SearchKey::Undeleted
        | SearchKey::Undraft
        | SearchKey::Unflagged
        | SearchKey::Unkeyword(_)
        | SearchKey::Unseen
        | SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::Uid(_)
        | SearchKey::SequenceSet(_) => Need::Index,
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Subject(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => Need::Header,
        SearchKey::Not(key) => key_need(key),
        SearchKey::Or(a, b) => key_need(a).max(key_need(b)),
        SearchKey::And(keys) => need(keys),
        // Body, Text, and any key added to the parser later: everything.
        _ => Need::Whole,
    }
}

/// Whether SEARCH / SORT can take strings in `charset`: none given,
/// US-ASCII or UTF-8 (case-insensitive).
pub(crate) fn charset_supported(charset: Option<&Atom>) -> bool {
    charset.is_none_or(|c| c.eq_ignore_case("US-ASCII") || c.eq_ignore_case("UTF-8"))
}

/// What `*` stands for in the sets of a search: the mailbox's last message
/// sequence number and last UID.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// The number of messages in the session's view.
    pub(crate) last_seq: u32,
    /// The highest UID in the view.
    pub(crate) last_uid: u32,
}

/// Whether the message satisfies every key. `raw` holds its bytes as far as
/// [`need`] said (`None` for [`Need::Index`]).
pub(crate) fn matches(keys: &[SearchKey], meta: &Meta, raw: Option<&[u8]>, bounds: Bounds) -> bool {
    let message = Searched::new(meta, raw, bounds);
    keys.iter().all(|key| message.matches(key))
}

/// One message under search; what the keys read of it is decoded once.
struct Searched<'a> {
    meta: &'a Meta,
    bounds: Bounds,
    raw: &'a [u8],
    message: OnceCell<Message<'a>>,
    /// The top-level header fields: what the header keys read, without
    /// scanning the MIME structure.
    headers: OnceCell<Vec<HeaderField>>,
    /// Every header field of every part, attached messages included, as
    /// `name: decoded value` in lower case.
    all_fields: OnceCell<Vec<String>>,
    /// The decoded text parts, in lower case.
    bodies: OnceCell<Vec<String>>,
}

impl<'a> Searched<'a> {
    fn new(meta: &'a Meta, raw: Option<&'a [u8]>, bounds: Bounds) -> Self {
        Searched {
            meta,
            bounds,
            // Without bytes (a key whose need was misjudged) the message reads
            // as empty: no header key matches, BODY and TEXT "" still do.
            raw: raw.unwrap_or_default(),
            message: OnceCell::new(),
            headers: OnceCell::new(),
            all_fields: OnceCell::new(),
            bodies: OnceCell::new(),
        }
    }

    fn message(&self) -> &Message<'a> {
        self.message.get_or_init(|| Message::parse(self.raw))
    }

    fn headers(&self) -> &[HeaderField] {
        self.headers.get_or_init(|| parse_block(self.raw, 0).0)
    }

    fn all_fields(&self) -> &[String] {
        self.all_fields.get_or_init(|| {
            let raw = self.raw;
            let mut out = Vec::new();
            // A walk with its own stack: no recursion however deep the tree.
            let mut stack = vec![self.message().root()];
            while let Some(part) = stack.pop() {
                for field in &part.fields {
                    let name = String::from_utf8_lossy(field.name(raw));
                    let value = decode_text(&field.value(raw));
                    out.push(format!("{name}: {value}").to_lowercase());
                }
                match &part.kind {
                    PartKind::Multipart(children) => stack.extend(children.iter().rev()),
                    PartKind::Message(inner) => stack.push(inner),
                    PartKind::Leaf => {}
                }
            }
            out
        })
    }

    fn bodies(&self) -> &[String] {
        self.bodies.get_or_init(|| {
            self.message()
                .body_texts()
                .into_iter()
                .map(|text| text.to_lowercase())
                .collect()
        })
    }

    fn has_flag(&self, flag: &Flag) -> bool {
        self.meta.flags.contains(flag)
    }

    fn has_keyword(&self, keyword: &Atom) -> bool {
        self.meta
            .flags
            .iter()
            .any(|f| matches!(f, Flag::Keyword(k) if keyword.eq_ignore_case(k)))
    }

    /// Whether a field named `name` contains `needle` (any such field; an
    /// empty needle matches any message that has the field).
    fn field_contains(&self, name: &[u8], needle: &AString) -> bool {
        let needle = folded(needle);
        let raw = self.raw;
        self.headers()
            .iter()
            .filter(|field| field.name(raw).eq_ignore_ascii_case(name))
            .any(|field| {
                let value = field.value(raw);
                match plain_value(&value) {
                    // Most values: ASCII with nothing to decode, which
                    // lower-cases byte by byte, so no decoded copy is made.
                    Some(plain) if needle.is_ascii() => {
                        contains_ignore_ascii_case(plain, needle.as_bytes())
                    }
                    _ => needle.is_empty() || decode_text(&value).to_lowercase().contains(&needle),
                }
            })
    }

    fn body_contains(&self, needle: &AString) -> bool {
        let needle = folded(needle);
        needle.is_empty() || self.bodies().iter().any(|text| text.contains(&needle))
    }

    /// TEXT: the header fields of every part (the message's, those of its
    /// MIME parts and of attached messages) and the text parts.
    fn text_contains(&self, needle: &AString) -> bool {
        let needle = folded(needle);
        needle.is_empty()
            || self
                .all_fields()
                .iter()
                .any(|field| field.contains(&needle))
            || self.bodies().iter().any(|text| text.contains(&needle))
    }

    /// The internal date's day in UTC.
    fn internal_day(&self) -> Date {
        internal_date(self.meta.internal_date).date()
    }

    /// The day of the `Date:` field as written in its own zone (RFC 3501:
    /// "disregarding time and timezone"). A message without a readable
    /// `Date:` is taken to have been sent on its internal date, so that SENT*
    /// still places it somewhere rather than matching nothing.
    fn sent_day(&self) -> Date {
        let raw = self.raw;
        self.headers()
            .iter()
            .find(|field| field.is(raw, "Date"))
            .and_then(|field| parse_date(&field.value(raw)))
            .and_then(|d| Date::new(d.year, d.month, d.day).ok())
            .unwrap_or_else(|| self.internal_day())
    }

    fn matches(&self, key: &SearchKey) -> bool {
        let meta = self.meta;
        match key {
            SearchKey::All => true,
            SearchKey::Answered => self.has_flag(&Flag::Answered),
            SearchKey::Deleted => self.has_flag(&Flag::Deleted),
            SearchKey::Draft => self.has_flag(&Flag::Draft),
            SearchKey::Flagged => self.has_flag(&Flag::Flagged),
            SearchKey::Seen => self.has_flag(&Flag::Seen),
            SearchKey::Unanswered => !self.has_flag(&Flag::Answered),
            SearchKey::Undeleted => !self.has_flag(&Flag::Deleted),
            SearchKey::Undraft => !self.has_flag(&Flag::Draft),
            SearchKey::Unflagged => !self.has_flag(&Flag::Flagged),
            SearchKey::Unseen => !self.has_flag(&Flag::Seen),
            SearchKey::Keyword(k) => self.has_keyword(k),
            SearchKey::Unkeyword(k) => !self.has_keyword(k),
            SearchKey::Recent => meta.recent,
            SearchKey::New => meta.recent && !self.has_flag(&Flag::Seen),
            SearchKey::Old => !meta.recent,
            SearchKey::Larger(n) => meta.size > u64::from(*n),
            SearchKey::Smaller(n) => meta.size < u64::from(*n),
            SearchKey::Before(d) => self.internal_day() < *d,
            SearchKey::On(d) => self.internal_day() == *d,
            SearchKey::Since(d) => self.internal_day() >= *d,
            SearchKey::SentBefore(d) => self.sent_day() < *d,
            SearchKey::SentOn(d) => self.sent_day() == *d,
            SearchKey::SentSince(d) => self.sent_day() >= *d,
            SearchKey::Uid(set) => set.contains(meta.uid, self.bounds.last_uid),
            SearchKey::SequenceSet(set) => set.contains(meta.seq, self.bounds.last_seq),
            SearchKey::From(s) => self.field_contains(b"From", s),
            SearchKey::To(s) => self.field_contains(b"To", s),
            SearchKey::Cc(s) => self.field_contains(b"Cc", s),
            SearchKey::Bcc(s) => self.field_contains(b"Bcc", s),
            SearchKey::Subject(s) => self.field_contains(b"Subject", s),
            SearchKey::Header(name, s) => self.field_contains(name.as_bytes(), s),
            SearchKey::Body(s) => self.body_contains(s),
            SearchKey::Text(s) => self.text_contains(s),
            SearchKey::Not(key) => !self.matches(key),
            SearchKey::Or(a, b) => self.matches(a) || self.matches(b),
            SearchKey::And(keys) => keys.iter().all(|k| self.matches(k)),
            _ => {
                tracing::warn!(?key, "SEARCH key this server does not evaluate");
                false
            }
        }
    }
}

/// A search string in lower case (its bytes read as UTF-8).
/// Whether `haystack` contains `needle` (lower case ASCII) in any case.
fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn folded(s: &AString) -> String {
    String::from_utf8_lossy(s.as_bytes()).to_lowercase()
}

// ---- SORT ----

/// How much of each message these sort criteria read: the index for
/// ARRIVAL and SIZE, the top-level header for the others.
pub(crate) fn sort_need(criteria: &[SortCriterion]) -> Need {
    criteria
        .iter()
        .map(|c| match c.key {
            SortKey::Arrival | SortKey::Size => Need::Index,
            SortKey::Cc | SortKey::Date | SortKey::From | SortKey::Subject | SortKey::To => {
                Need::Header
            }
            _ => Need::Whole,
        })
        .max()
        .unwrap_or(Need::Index)
}

/// What one message sorts by: one value per criterion, in the criteria's
/// order, computed while the message's bytes are at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortValues(Vec<SortValue>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    /// Seconds since the epoch, or octets.
    Number(i64),
    /// Text under the `i;ascii-casemap` collation (RFC 4790): ASCII letters
    /// in upper case, compared octet by octet.
    Text(Vec<u8>),
}

/// The values `criteria` sort this message by. `raw` holds its bytes as far
/// as [`sort_need`] said.
pub(crate) fn sort_values(
    criteria: &[SortCriterion],
    meta: &Meta,
    raw: Option<&[u8]>,
) -> SortValues {
    let raw = raw.unwrap_or_default();
    let message = OnceCell::new();
    let message = || message.get_or_init(|| Message::parse(raw));
    let envelope: OnceCell<Envelope> = OnceCell::new();
    let envelope = || envelope.get_or_init(|| message().envelope());
    let values = criteria
        .iter()
        .map(|c| match c.key {
            SortKey::Arrival => SortValue::Number(meta.internal_date),
            SortKey::Size => SortValue::Number(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            // RFC 5256 section 2.2: the sent date, in UTC; the internal date
            // when there is no readable Date: field.
            SortKey::Date => SortValue::Number(
                message()
                    .header_raw("Date")
                    .and_then(|value| parse_date(&value))
                    .map_or(meta.internal_date, |d| d.unix_timestamp()),
            ),
            SortKey::From => SortValue::Text(first_mailbox(envelope().from.as_deref())),
            SortKey::To => SortValue::Text(first_mailbox(envelope().to.as_deref())),
            SortKey::Cc => SortValue::Text(first_mailbox(envelope().cc.as_deref())),
            SortKey::Subject => {
                let subject = message()
                    .header_raw("Subject")
                    .map(|value| decode_text(&value))
                    .unwrap_or_default();
                SortValue::Text(base_subject(&subject).to_ascii_uppercase())
            }
            _ => SortValue::Number(0),
        })
        .collect();
    SortValues(values)
}

/// Sorts `(sequence number, UID, values)` by the criteria the values were
/// computed for; messages that compare equal keep sequence number order
/// (RFC 5256 section 3), also under REVERSE.
pub(crate) fn sort(criteria: &[SortCriterion], messages: &mut [(u32, u32, SortValues)]) {
    messages.sort_by(|(a_seq, _, a), (b_seq, _, b)| {
        compare(criteria, a, b).then_with(|| a_seq.cmp(b_seq))
    });
}

fn compare(criteria: &[SortCriterion], a: &SortValues, b: &SortValues) -> Ordering {
    for (criterion, (a, b)) in criteria.iter().zip(a.0.iter().zip(&b.0)) {
        let order = a.cmp(b);
        let order = if criterion.reverse {
            order.reverse()
        } else {
            order
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// RFC 5256 address sort key: the mailbox (local part) of the first address,
/// under `i;ascii-casemap`; the empty string when there is none.
fn first_mailbox(list: Option<&[Address]>) -> Vec<u8> {
    list.and_then(|list| list.first())
        .and_then(|address| address.mailbox.as_deref())
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// The base subject of RFC 5256 section 2.1, from a subject whose encoded
/// words are already decoded: white space runs made one space, then
/// `(fwd)` trailers, `Re:` / `Fw:` / `Fwd:` leaders (with `[blob]`s before
/// them), leading `[blob]`s that do not make up the whole subject, and
/// `[fwd: ...]` wrappers removed until nothing changes.
fn base_subject(subject: &str) -> Vec<u8> {
    // (1) Tabs and line breaks to spaces, runs of spaces to one.
    let mut s: Vec<u8> = Vec::with_capacity(subject.len());
    for &b in subject.as_bytes() {
        let b = if matches!(b, b'\t' | b'\r' | b'\n') {
            b' '
        } else {
            b
        };
        if !(b == b' ' && s.last() == Some(&b' ')) {
            s.push(b);
        }
    }
    let mut s: &[u8] = &s;
    loop {
        // (2) Trailing "(fwd)" and white space.
        loop {
            if let Some(rest) = s.strip_suffix(b" ") {
                s = rest;
            } else if s.len() >= 5 && s[s.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                s = &s[..s.len() - 5];
            } else {
                break;
            }
        }
        // (3) and (4), until neither removes anything.
        loop {
            let before = s.len();
            while let Some(rest) = strip_leader(s) {
                s = rest;
            }
            if let Some(rest) = strip_blob(s)
                && !rest.is_empty()
            {
                s = rest;
            }
            if s.len() == before {
                break;
            }
        }
        // (5) "[fwd:" subject "]": unwrap and start again at (2).
        if s.len() >= 6 && s[..5].eq_ignore_ascii_case(b"[fwd:") && s.ends_with(b"]") {
            s = &s[5..s.len() - 1];
            continue;
        }
        return s.to_vec();
    }
}

/// `subj-leader` at the start: one space, or `*subj-blob subj-refwd`
/// (`subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`).
fn strip_leader(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b" ") {
        return Some(rest);
    }
    let mut rest = s;
    while let Some(after) = strip_blob(rest) {
        rest = after;
    }
    let lower = |n: usize| rest.get(..n).map(<[u8]>::to_ascii_lowercase);
    rest = if lower(3).as_deref() == Some(b"fwd") {
        &rest[3..]
    } else if matches!(lower(2).as_deref(), Some(b"re" | b"fw")) {
        &rest[2..]
    } else {
        return None;
    };
    rest = trim_wsp(rest);
    if let Some(after) = strip_blob(rest) {
        rest = after;
    }
    rest.strip_prefix(b":")
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start (BLOBCHAR is anything
/// but `[` and `]`).
fn strip_blob(s: &[u8]) -> Option<&[u8]> {
    let inner = s.strip_prefix(b"[")?;
    let close = inner.iter().position(|&b| b == b'[' || b == b']')?;
    (inner[close] == b']').then(|| trim_wsp(&inner[close + 1..]))
}

fn trim_wsp(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use ironpost_imap_proto::{Command, CommandBody};
    use ironpost_store::Flags;

    use crate::server::imap::view::MessageFlags;

    use super::*;

    /// 2024-03-01 23:30:00 UTC.
    const MARCH_1_LATE: i64 = 1_709_335_800;

    const MSG: &[u8] = b"Date: Fri, 1 Mar 2024 20:00:00 -0800\r\n\
From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <Joerg@Example.COM>\r\n\
To: Alice <alice@example.org>,\r\n bob@example.net\r\n\
Cc: carol@example.org\r\n\
Subject: Re: [list] =?UTF-8?B?R3LDvMOfZQ==?= aus\r\n K\xc3\xb6ln\r\n\
X-Empty:\r\n\
X-Spam-Flag: YES\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=E9 au lait, line one=\r\n continued\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Description: quarterly figures\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
c2VjcmV0IGJpbmFyeQ==\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: attached\r\n\
Message-ID: <inner@example.net>\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+TmVzdGVkIEhUTUw8L3A+\r\n\
--b--\r\n";

    fn meta() -> Meta {
        Meta {
            seq: 3,
            uid: 30,
            flags: MessageFlags::new(
                &[Flag::Answered, Flag::Keyword("$Forwarded".into())]
                    .into_iter()
                    .collect::<Flags>(),
            ),
            recent: true,
            internal_date: MARCH_1_LATE,
            size: MSG.len() as u64,
        }
    }

    const BOUNDS: Bounds = Bounds {
        last_seq: 5,
        last_uid: 50,
    };

    /// The keys of `SEARCH <criteria>`, parsed as a client sends them.
    fn keys(criteria: &str) -> Vec<SearchKey> {
        let line = format!("a SEARCH {criteria}\r\n");
        match Command::parse(line.as_bytes())
            .expect("a SEARCH command")
            .body
        {
            CommandBody::Search { criteria, .. } => criteria,
            other => panic!("not a SEARCH: {other:?}"),
        }
    }

    /// Whether MSG (with `meta`) matches `criteria`, its bytes read as far
    /// as `need` says.
    fn hit_with(meta: &Meta, raw: &[u8], criteria: &str) -> bool {
        let keys = keys(criteria);
        let raw = match need(&keys) {
            Need::Index => None,
            Need::Header => {
                let end = raw
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(raw.len(), |i| i + 4);
                Some(&raw[..end])
            }
            Need::Whole => Some(raw),
        };
        matches(&keys, meta, raw, BOUNDS)
    }

    fn hit(criteria: &str) -> bool {
        hit_with(&meta(), MSG, criteria)
    }

    fn check(table: &[(&str, bool)]) {
        for (criteria, expected) in table {
            assert_eq!(hit(criteria), *expected, "SEARCH {criteria}");
        }
    }

    #[test]
    fn flag_keys() {
        check(&[
            ("ALL", true),
            ("ANSWERED", true),
            ("UNANSWERED", false),
            ("DELETED", false),
            ("UNDELETED", true),
            ("DRAFT", false),
            ("UNDRAFT", true),
            ("FLAGGED", false),
            ("UNFLAGGED", true),
            ("SEEN", false),
            ("UNSEEN", true),
            ("KEYWORD $Forwarded", true),
            ("KEYWORD $forwarded", true),
            ("KEYWORD $Junk", false),
            ("UNKEYWORD $Junk", true),
            ("UNKEYWORD $FORWARDED", false),
            ("RECENT", true),
            ("NEW", true),
            ("OLD", false),
        ]);
        let mut seen = meta();
        let mut flags = seen.flags.to_flags();
        flags.insert(Flag::Seen);
        seen.flags = MessageFlags::new(&flags);
        assert!(!hit_with(&seen, MSG, "NEW"));
        seen.recent = false;
        assert!(hit_with(&seen, MSG, "OLD"));
        assert!(!hit_with(&seen, MSG, "RECENT"));
    }

    #[test]
    fn size_and_number_keys() {
        let size = MSG.len();
        check(&[
            (&format!("LARGER {}", size - 1), true),
            (&format!("LARGER {size}"), false),
            (&format!("SMALLER {}", size + 1), true),
            (&format!("SMALLER {size}"), false),
            ("3", true),
            ("1,2,4:5", false),
            ("*", false),
            ("2:*", true),
            ("UID 30", true),
            ("UID 31:*", false),
            ("UID *", false),
            ("UID 1:29,31", false),
        ]);
        let mut last = meta();
        (last.seq, last.uid) = (5, 50);
        assert!(hit_with(&last, MSG, "*"));
        assert!(hit_with(&last, MSG, "UID *"));
        assert!(hit_with(&last, MSG, "UID 60:*"));
    }

    #[test]
    fn internal_date_keys_use_the_utc_day() {
        check(&[
            ("BEFORE 1-Mar-2024", false),
            ("BEFORE 2-Mar-2024", true),
            ("ON 1-Mar-2024", true),
            ("ON 2-Mar-2024", false),
            ("SINCE 1-Mar-2024", true),
            ("SINCE 2-Mar-2024", false),
        ]);
    }

    #[test]
    fn sent_date_keys_use_the_day_as_written() {
        // 20:00 -0800 on 1 March is 2 March in UTC; the keys disregard the
        // time and the zone.
        check(&[
            ("SENTON 1-Mar-2024", true),
            ("SENTON 2-Mar-2024", false),
            ("SENTBEFORE 1-Mar-2024", false),
            ("SENTBEFORE 2-Mar-2024", true),
            ("SENTSINCE 1-Mar-2024", true),
            ("SENTSINCE 2-Mar-2024", false),
        ]);
        // Without a readable Date: the internal date stands in.
        let mut m = meta();
        m.internal_date = 1_000_000_000; // 9 Sep 2001
        for raw in [
            &b"Date: garbage\r\nSubject: x\r\n\r\n"[..],
            b"Subject: x\r\n\r\n",
        ] {
            assert!(hit_with(&m, raw, "SENTON 9-Sep-2001"));
            assert!(hit_with(&m, raw, "SENTBEFORE 10-Sep-2001"));
            assert!(!hit_with(&m, raw, "SENTSINCE 10-Sep-2001"));
        }
    }

    #[test]
    fn header_keys_match_decoded_text_ignoring_case() {
        check(&[
            ("FROM joerg@example.com", true),
            ("FROM \"JÖRG MÜLLER\"", true),
            ("FROM M=FCller", false),
            ("FROM alice", false),
            ("TO ALICE", true),
            // Folded values are unfolded.
            ("TO \"example.org>, bob\"", true),
            ("CC carol", true),
            ("BCC carol", false),
            ("SUBJECT \"grüße aus köln\"", true),
            ("SUBJECT \"[LIST]\"", true),
            ("SUBJECT R3LDvMOfZQ", false),
            ("HEADER x-spam-flag yes", true),
            ("HEADER X-SPAM-FLAG no", false),
            ("HEADER Message-ID inner", false),
        ]);
    }

    /// Plain ASCII values are matched without decoding; what they match is
    /// what the decoded, lower-cased value would.
    #[test]
    fn plain_values_match_in_any_case() {
        let raw = b"Subject:  Know the Plan \r\nX-Tab:\tA\tb\r\n\r\n";
        for (criteria, expected) in [
            ("SUBJECT \"know THE plan\"", true),
            ("SUBJECT \"w the p\"", true),
            ("SUBJECT \"plan  \"", false),
            ("SUBJECT \"the plans\"", false),
            // KELVIN SIGN lower-cases to an ASCII k.
            ("SUBJECT \"\u{212A}now\"", true),
            ("SUBJECT \"kn\u{f6}w\"", false),
            ("HEADER X-Tab \"a\tB\"", true),
        ] {
            assert_eq!(hit_with(&meta(), raw, criteria), expected, "{criteria}");
        }
    }

    #[test]
    fn empty_strings_match_messages_with_the_field() {
        check(&[
            ("FROM \"\"", true),
            ("CC \"\"", true),
            ("BCC \"\"", false),
            ("HEADER X-Empty \"\"", true),
            ("HEADER X-Absent \"\"", false),
            ("BODY \"\"", true),
            ("TEXT \"\"", true),
        ]);
        assert!(hit_with(&meta(), b"", "BODY \"\""));
        assert!(!hit_with(&meta(), b"", "SUBJECT \"\""));
    }

    #[test]
    fn body_and_text() {
        check(&[
            // Quoted-printable in ISO-8859-1, soft line break joined.
            ("BODY \"café au lait\"", true),
            ("BODY \"CAFÉ\"", true),
            ("BODY \"line one continued\"", true),
            ("BODY Caf=E9", false),
            // The text part of the attached message, base64 in UTF-8.
            ("BODY \"nested html\"", true),
            // Not text: the attachment and every header.
            ("BODY \"secret binary\"", false),
            ("BODY c2VjcmV0", false),
            ("BODY joerg", false),
            ("BODY \"quarterly\"", false),
            // TEXT adds the headers of every part, decoded.
            ("TEXT joerg", true),
            ("TEXT \"grüße\"", true),
            ("TEXT \"quarterly figures\"", true),
            ("TEXT \"inner@example.net\"", true),
            ("TEXT \"subject: attached\"", true),
            ("TEXT \"café\"", true),
            ("TEXT \"secret binary\"", false),
        ]);
    }

    #[test]
    fn not_or_and_nesting() {
        check(&[
            ("NOT SEEN", true),
            ("NOT NOT SEEN", false),
            ("OR SEEN ANSWERED", true),
            ("OR SEEN DELETED", false),
            ("OR (SEEN FLAGGED) (ANSWERED FROM joerg)", true),
            ("OR (SEEN FLAGGED) (ANSWERED FROM alice)", false),
            ("NOT OR DELETED NOT TO bob", true),
            (
                "(ANSWERED (UNSEEN (KEYWORD $Forwarded NOT BODY \"secret\")))",
                true,
            ),
            ("ANSWERED UNSEEN SEEN", false),
            ("OR OR DELETED DRAFT OR FLAGGED NOT BODY \"café\"", false),
            ("OR OR DELETED DRAFT OR FLAGGED NOT BODY tea", true),
        ]);
    }

    #[test]
    fn need_follows_the_keys() {
        for (criteria, expected) in [
            (
                "ALL SEEN UNKEYWORD x LARGER 5 BEFORE 1-Jan-2020 UID 1:* 1:*",
                Need::Index,
            ),
            ("NEW OLD RECENT", Need::Index),
            ("FROM a", Need::Header),
            ("SUBJECT a", Need::Header),
            ("HEADER X-A b", Need::Header),
            ("SENTON 1-Jan-2020", Need::Header),
            ("NOT CC x", Need::Header),
            ("BODY x", Need::Whole),
            ("OR SEEN TEXT x", Need::Whole),
            ("SEEN (FROM a (NOT BODY b))", Need::Whole),
        ] {
            assert_eq!(need(&keys(criteria)), expected, "{criteria}");
        }
        assert_eq!(need(&[]), Need::Index);
    }

    #[test]
    fn charsets() {
        let atom = |s: &str| Atom::new(s).unwrap();
        assert!(charset_supported(None));
        assert!(charset_supported(Some(&atom("UTF-8"))));
        assert!(charset_supported(Some(&atom("utf-8"))));
        assert!(charset_supported(Some(&atom("us-ascii"))));
        assert!(!charset_supported(Some(&atom("ISO-8859-1"))));
        assert!(!charset_supported(Some(&atom("UTF8"))));
        // UTF-8 search strings compare with text decoded from other charsets.
        let line = "a SEARCH CHARSET UTF-8 BODY \"caf\u{e9}\"\r\n";
        let CommandBody::Search {
            charset, criteria, ..
        } = Command::parse(line.as_bytes()).unwrap().body
        else {
            panic!("not a SEARCH");
        };
        assert!(charset_supported(charset.as_ref()));
        assert!(matches(&criteria, &meta(), Some(MSG), BOUNDS));
    }

    #[test]
    fn garbage_never_panics() {
        let all = keys(
            "OR FROM a TO b CC c BCC d SUBJECT e HEADER f g BODY h TEXT i \
             SENTON 1-Jan-2020 SENTBEFORE 1-Jan-2020 NOT SENTSINCE 1-Jan-2020",
        );
        let criteria = sort_criteria("REVERSE ARRIVAL CC DATE FROM SIZE SUBJECT TO");
        for raw in [
            MSG,
            b"\0\r\n\r\n\0",
            b"Date: 99 Foo 99999 99:99:99 +9999\r\n",
            b"",
        ] {
            for end in 0..=raw.len() {
                let raw = &raw[..end];
                let _ = matches(&all, &meta(), Some(raw), BOUNDS);
                let _ = sort_values(&criteria, &meta(), Some(raw));
            }
        }
    }

    // ---- SORT ----

    fn sort_criteria(criteria: &str) -> Vec<SortCriterion> {
        let line = format!("a SORT ({criteria}) UTF-8 ALL\r\n");
        match Command::parse(line.as_bytes())
            .expect("a SORT command")
            .body
        {
            CommandBody::Sort { criteria, .. } => criteria,
            other => panic!("not a SORT: {other:?}"),
        }
    }

    /// Sequence numbers of `messages` (header, internal date, size) sorted by
    /// `criteria`.
    fn sorted(criteria: &str, messages: &[(&str, i64, u64)]) -> Vec<u32> {
        let criteria = sort_criteria(criteria);
        let need = sort_need(&criteria);
        let mut values: Vec<(u32, u32, SortValues)> = messages
            .iter()
            .zip(1..)
            .map(|((header, date, size), seq)| {
                let meta = Meta {
                    seq,
                    uid: seq * 10,
                    flags: MessageFlags::default(),
                    recent: false,
                    internal_date: *date,
                    size: *size,
                };
                let raw = (need != Need::Index).then_some(header.as_bytes());
                (seq, seq * 10, sort_values(&criteria, &meta, raw))
            })
            .collect();
        sort(&criteria, &mut values);
        values.into_iter().map(|(seq, _, _)| seq).collect()
    }

    #[test]
    fn sort_by_arrival_size_and_reverse_with_ties_in_sequence_order() {
        let m = [("", 300, 10), ("", 100, 30), ("", 200, 10), ("", 100, 20)];
        assert_eq!(sorted("ARRIVAL", &m), [2, 4, 3, 1]);
        assert_eq!(sorted("REVERSE ARRIVAL", &m), [1, 3, 2, 4]);
        assert_eq!(sorted("SIZE", &m), [1, 3, 4, 2]);
        assert_eq!(sorted("REVERSE SIZE", &m), [2, 4, 1, 3]);
        assert_eq!(sorted("SIZE REVERSE ARRIVAL", &m), [1, 3, 4, 2]);
        assert_eq!(sorted("REVERSE SIZE ARRIVAL", &m), [2, 4, 3, 1]);
        assert_eq!(
            sort_need(&sort_criteria("ARRIVAL REVERSE SIZE")),
            Need::Index
        );
    }

    #[test]
    fn sort_by_sent_date_in_utc_else_internal_date() {
        let m = [
            ("Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n", 0, 1),
            // 09:00 -0200 is 11:00 UTC.
            ("Date: Mon, 1 Jan 2024 09:00:00 -0200\r\n\r\n", 0, 1),
            // 10:30 +0100 is 09:30 UTC.
            ("Date: Mon, 1 Jan 2024 10:30:00 +0100\r\n\r\n", 0, 1),
            // No readable date: 2024-01-01 10:00:00 UTC, its internal date,
            // ties with the first.
            ("Date: soon\r\n\r\n", 1_704_103_200, 1),
        ];
        assert_eq!(sorted("DATE", &m), [3, 1, 4, 2]);
        assert_eq!(sorted("REVERSE DATE", &m), [2, 1, 4, 3]);
        assert_eq!(sort_need(&sort_criteria("DATE")), Need::Header);
    }

    #[test]
    fn sort_by_first_address_mailbox() {
        let m = [
            ("From: Zed <b_z@example.com>\r\nTo: x@y\r\n\r\n", 0, 1),
            (
                "From: \"Aaron\" <BOB@example.com>, a@example.com\r\n\r\n",
                0,
                1,
            ),
            ("Cc: someone@example.com\r\n\r\n", 0, 1),
            ("From: group: c@example.com;\r\n\r\n", 0, 1),
            (
                "From: b@example.com\r\nCc: Alpha <zz@example.com>\r\n\r\n",
                0,
                1,
            ),
        ];
        // i;ascii-casemap upper-cases letters, so "_" (0x5F) sorts after them;
        // a missing From sorts as the empty string.
        assert_eq!(sorted("FROM", &m), [3, 5, 2, 1, 4]);
        assert_eq!(sorted("REVERSE FROM", &m), [4, 1, 2, 5, 3]);
        assert_eq!(sorted("CC", &m), [1, 2, 4, 3, 5]);
        assert_eq!(sorted("TO", &m), [2, 3, 4, 5, 1]);
    }

    #[test]
    fn sort_by_base_subject() {
        let m = [
            ("Subject: Re: [list] Beta\r\n\r\n", 0, 1),
            ("Subject: alpha (fwd)\r\n\r\n", 0, 1),
            ("Subject: =?UTF-8?Q?Fwd=3A_beta?=\r\n\r\n", 0, 1),
            ("Subject: [fwd: Alpha]\r\n\r\n", 0, 1),
            ("\r\n", 0, 1),
        ];
        assert_eq!(sorted("SUBJECT", &m), [5, 2, 4, 1, 3]);
        assert_eq!(sorted("REVERSE SUBJECT", &m), [1, 3, 2, 4, 5]);
    }

    #[test]
    fn base_subjects() {
        for (subject, base) in [
            ("", ""),
            ("plain", "plain"),
            ("Re: plain", "plain"),
            ("RE:plain", "plain"),
            ("re : plain", "plain"),
            ("Re: Re: RE: plain", "plain"),
            ("Fwd: Fw: fwd: plain", "plain"),
            ("Re[2]: plain", "plain"),
            ("Re [2] : plain", "plain"),
            ("[list] Re: plain", "plain"),
            ("[a][b] [c] Re: plain", "plain"),
            ("[list] plain", "plain"),
            ("[list]", "[list]"),
            ("[a] [b]", "[b]"),
            ("Re: [list]", "[list]"),
            ("plain (fwd)", "plain"),
            ("plain (FWD) (fwd)  ", "plain"),
            ("[fwd: plain]", "plain"),
            ("[Fwd: Re: [list] plain (fwd)]", "plain"),
            ("Re: [fwd: plain]", "plain"),
            ("\t Re:\tplain \t text ", "plain text"),
            ("Re plain", "Re plain"),
            ("Response: plain", "Response: plain"),
            ("[unclosed Re: plain", "[unclosed Re: plain"),
            ("Grüße: Re: x", "Grüße: Re: x"),
            ("Re: Grüße", "Grüße"),
        ] {
            assert_eq!(
                String::from_utf8(base_subject(subject)).unwrap(),
                base,
                "{subject:?}"
            );
        }
    }
}
