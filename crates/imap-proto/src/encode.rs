//! Writers of the wire forms: strings as atom, quoted string or literal
//! (whichever the octets allow, literals for 8-bit, CR/LF and long strings),
//! `NIL`, sequence sets, flags, dates, and whole commands. Each is the
//! inverse of its parser (`Command::parse`, `Response::parse`).

use crate::command::{Command, CommandBody};
use crate::types::{
    self, AString, Date, DateTime, FetchAttribute, FetchItems, FetchMacro, Flag, Partial,
    PermanentFlag, SearchKey, Section, SectionText, SeqNumber, SeqRange, SequenceSet,
    SortCriterion, SortKey, StoreAction, StoreMode,
};

/// Strings longer than this travel as literals even when they could be
/// quoted, so that one line never grows without bound.
pub const QUOTED_MAX: usize = 256;

/// Writes `bytes` as a `string`: quoted when every octet is a 7-bit
/// `TEXT-CHAR` and it is short, else a literal.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= QUOTED_MAX && bytes.iter().all(|&b| types::is_text_char(b)) {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, bytes);
    }
}

/// Writes a literal: `{n}` CRLF and the octets.
pub fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'{');
    number(out, bytes.len() as u64);
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(bytes);
}

/// Writes `n` in decimal, as `write!` would, without its formatting
/// machinery: every FETCH, EXISTS and literal carries numbers.
pub fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes an `astring`: an atom when the octets allow, else a string.
pub fn astring(out: &mut Vec<u8>, s: &AString) {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= QUOTED_MAX && b.iter().all(|&c| types::is_astring_char(c)) {
        out.extend_from_slice(b);
    } else {
        string(out, b);
    }
}

/// Writes an `nstring`: `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(b) => string(out, b),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Writes a `list-mailbox`: list characters bare, else a string.
fn list_mailbox(out: &mut Vec<u8>, b: &[u8]) {
    if !b.is_empty() && b.len() <= QUOTED_MAX && b.iter().all(|&c| types::is_list_char(c)) {
        out.extend_from_slice(b);
    } else {
        string(out, b);
    }
}

fn seq_number(out: &mut Vec<u8>, n: SeqNumber) {
    match n {
        SeqNumber::Value(v) => out.extend_from_slice(v.to_string().as_bytes()),
        SeqNumber::Largest => out.push(b'*'),
    }
}

/// Writes a `sequence-set`.
pub fn sequence_set(out: &mut Vec<u8>, set: &SequenceSet) {
    for (i, r) in set.ranges().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match *r {
            SeqRange::Single(a) => seq_number(out, a),
            SeqRange::Range(a, b) => {
                seq_number(out, a);
                out.push(b':');
                seq_number(out, b);
            }
        }
    }
}

/// Writes a `flag`.
pub fn flag(out: &mut Vec<u8>, f: &Flag) {
    let (backslash, name) = f.wire_parts();
    out.extend_from_slice(backslash.as_bytes());
    out.extend_from_slice(name.as_bytes());
}

/// Writes flags separated by SP, in parentheses.
pub fn flag_list(out: &mut Vec<u8>, flags: &[Flag]) {
    out.push(b'(');
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        flag(out, f);
    }
    out.push(b')');
}

/// Writes a `flag-perm`.
pub fn flag_perm(out: &mut Vec<u8>, f: &PermanentFlag) {
    match f {
        PermanentFlag::Flag(f) => flag(out, f),
        PermanentFlag::AnyKeyword => out.extend_from_slice(b"\\*"),
    }
}

/// Writes a `date` (`d-Mon-yyyy`).
pub fn date(out: &mut Vec<u8>, d: &Date) {
    put!(out, "{}-{}-{:04}", d.day(), d.month_name(), d.year());
}

/// Writes a `date-time` (`"dd-Mon-yyyy hh:mm:ss +zzzz"`).
pub fn date_time(out: &mut Vec<u8>, dt: &DateTime) {
    let d = dt.date();
    let (h, m, s) = dt.time();
    let zone = dt.zone();
    let sign = if zone < 0 { '-' } else { '+' };
    let z = zone.unsigned_abs();
    out.extend_from_slice(
        format!(
            "\"{:2}-{}-{:04} {h:02}:{m:02}:{s:02} {sign}{:02}{:02}\"",
            d.day(),
            d.month_name(),
            d.year(),
            z / 60,
            z % 60
        )
        .as_bytes(),
    );
}

fn search_key(out: &mut Vec<u8>, key: &SearchKey) {
    use SearchKey as K;
    let word = |out: &mut Vec<u8>, w: &str| out.extend_from_slice(w.as_bytes());
    match key {
        K::All => word(out, "ALL"),
        K::Answered => word(out, "ANSWERED"),
        K::Bcc(s) => {
            word(out, "BCC ");
            astring(out, s);
        }
        K::Before(d) => {
            word(out, "BEFORE ");
            date(out, d);
        }
        K::Body(s) => {
            word(out, "BODY ");
            astring(out, s);
        }
        K::Cc(s) => {
            word(out, "CC ");
            astring(out, s);
        }
        K::Deleted => word(out, "DELETED"),
        K::Draft => word(out, "DRAFT"),
        K::Flagged => word(out, "FLAGGED"),
        K::From(s) => {
            word(out, "FROM ");
            astring(out, s);
        }
        K::Header(f, v) => {
            word(out, "HEADER ");
            astring(out, f);
            out.push(b' ');
            astring(out, v);
        }
        K::Keyword(a) => {
            word(out, "KEYWORD ");
            word(out, a.as_str());
        }
        K::Larger(n) => word(out, &format!("LARGER {n}")),
        K::New => word(out, "NEW"),
        K::Not(k) => {
            word(out, "NOT ");
            search_key(out, k);
        }
        K::Old => word(out, "OLD"),
        K::On(d) => {
            word(out, "ON ");
            date(out, d);
        }
        K::Or(a, b) => {
            word(out, "OR ");
            search_key(out, a);
            out.push(b' ');
            search_key(out, b);
        }
        K::Recent => word(out, "RECENT"),
        K::Seen => word(out, "SEEN"),
        K::SentBefore(d) => {
            word(out, "SENTBEFORE ");
            date(out, d);
        }
        K::SentOn(d) => {
            word(out, "SENTON ");
            date(out, d);
        }
        K::SentSince(d) => {
            word(out, "SENTSINCE ");
            date(out, d);
        }
        K::Since(d) => {
            word(out, "SINCE ");
            date(out, d);
        }
        K::Smaller(n) => word(out, &format!("SMALLER {n}")),
        K::Subject(s) => {
            word(out, "SUBJECT ");
            astring(out, s);
        }
        K::Text(s) => {
            word(out, "TEXT ");
            astring(out, s);
        }
        K::To(s) => {
            word(out, "TO ");
            astring(out, s);
        }
        K::Uid(set) => {
            word(out, "UID ");
            sequence_set(out, set);
        }
        K::Unanswered => word(out, "UNANSWERED"),
        K::Undeleted => word(out, "UNDELETED"),
        K::Undraft => word(out, "UNDRAFT"),
        K::Unflagged => word(out, "UNFLAGGED"),
        K::Unkeyword(a) => {
            word(out, "UNKEYWORD ");
            word(out, a.as_str());
        }
        K::Unseen => word(out, "UNSEEN"),
        K::SequenceSet(set) => sequence_set(out, set),
        K::And(keys) => {
            out.push(b'(');
            search_keys(out, keys, "");
            out.push(b')');
        }
    }
}

/// Writes keys separated by SP, each preceded by `lead` too.
fn search_keys(out: &mut Vec<u8>, keys: &[SearchKey], lead: &str) {
    for (i, k) in keys.iter().enumerate() {
        if i > 0 || !lead.is_empty() {
            out.push(b' ');
        }
        search_key(out, k);
    }
}

fn sort_criterion(out: &mut Vec<u8>, c: &SortCriterion) {
    if c.reverse {
        out.extend_from_slice(b"REVERSE ");
    }
    out.extend_from_slice(match c.key {
        SortKey::Arrival => b"ARRIVAL".as_slice(),
        SortKey::Cc => b"CC",
        SortKey::Date => b"DATE",
        SortKey::From => b"FROM",
        SortKey::Size => b"SIZE",
        SortKey::Subject => b"SUBJECT",
        SortKey::To => b"TO",
    });
}

fn part(out: &mut Vec<u8>, part: &[std::num::NonZeroU32]) {
    for (i, p) in part.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(p.to_string().as_bytes());
    }
}

/// Writes a `section`: `[...]`.
pub fn section(out: &mut Vec<u8>, s: &Section) {
    out.push(b'[');
    part(out, s.part());
    if let Some(text) = s.text() {
        if !s.part().is_empty() {
            out.push(b'.');
        }
        let names = |out: &mut Vec<u8>, names: &[AString]| {
            out.extend_from_slice(b" (");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                astring(out, n);
            }
            out.push(b')');
        };
        match text {
            SectionText::Header => out.extend_from_slice(b"HEADER"),
            SectionText::HeaderFields(n) => {
                out.extend_from_slice(b"HEADER.FIELDS");
                names(out, n);
            }
            SectionText::HeaderFieldsNot(n) => {
                out.extend_from_slice(b"HEADER.FIELDS.NOT");
                names(out, n);
            }
            SectionText::Text => out.extend_from_slice(b"TEXT"),
            SectionText::Mime => out.extend_from_slice(b"MIME"),
        }
    }
    out.push(b']');
}

/// Writes a `section-binary`: `[part]`.
pub fn section_binary(out: &mut Vec<u8>, p: &[std::num::NonZeroU32]) {
    out.push(b'[');
    part(out, p);
    out.push(b']');
}

fn partial(out: &mut Vec<u8>, p: &Option<Partial>) {
    if let Some(p) = p {
        put!(out, "<{}.{}>", p.origin, p.length);
    }
}

/// Writes a `fetch-att`.
pub fn fetch_att(out: &mut Vec<u8>, a: &FetchAttribute) {
    use FetchAttribute as F;
    match a {
        F::Envelope => out.extend_from_slice(b"ENVELOPE"),
        F::Flags => out.extend_from_slice(b"FLAGS"),
        F::InternalDate => out.extend_from_slice(b"INTERNALDATE"),
        F::Rfc822 => out.extend_from_slice(b"RFC822"),
        F::Rfc822Header => out.extend_from_slice(b"RFC822.HEADER"),
        F::Rfc822Size => out.extend_from_slice(b"RFC822.SIZE"),
        F::Rfc822Text => out.extend_from_slice(b"RFC822.TEXT"),
        F::Body => out.extend_from_slice(b"BODY"),
        F::BodyStructure => out.extend_from_slice(b"BODYSTRUCTURE"),
        F::Uid => out.extend_from_slice(b"UID"),
        F::BodySection {
            peek,
            section: s,
            partial: p,
        } => {
            out.extend_from_slice(if *peek { b"BODY.PEEK" } else { b"BODY" });
            section(out, s);
            partial(out, p);
        }
        F::Binary {
            peek,
            part: n,
            partial: p,
        } => {
            out.extend_from_slice(if *peek {
                b"BINARY.PEEK".as_slice()
            } else {
                b"BINARY"
            });
            section_binary(out, n);
            partial(out, p);
        }
        F::BinarySize { part: n } => {
            out.extend_from_slice(b"BINARY.SIZE");
            section_binary(out, n);
        }
    }
}

fn fetch_items(out: &mut Vec<u8>, items: &FetchItems) {
    match items {
        FetchItems::Macro(FetchMacro::All) => out.extend_from_slice(b"ALL"),
        FetchItems::Macro(FetchMacro::Fast) => out.extend_from_slice(b"FAST"),
        FetchItems::Macro(FetchMacro::Full) => out.extend_from_slice(b"FULL"),
        FetchItems::Attributes { attributes, single } => {
            let bare = *single && attributes.len() == 1;
            if !bare {
                out.push(b'(');
            }
            for (i, a) in attributes.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                fetch_att(out, a);
            }
            if !bare {
                out.push(b')');
            }
        }
    }
}

fn store_action(out: &mut Vec<u8>, a: &StoreAction) {
    out.extend_from_slice(match a.mode {
        StoreMode::Replace => b"FLAGS".as_slice(),
        StoreMode::Add => b"+FLAGS",
        StoreMode::Remove => b"-FLAGS",
    });
    if a.silent {
        out.extend_from_slice(b".SILENT");
    }
    out.push(b' ');
    if a.list || a.flags.is_empty() {
        flag_list(out, &a.flags);
    } else {
        for (i, f) in a.flags.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            flag(out, f);
        }
    }
}

/// Writes a whole command, CRLF included.
pub(crate) fn command(c: &Command, out: &mut Vec<u8>) {
    use CommandBody as C;
    out.extend_from_slice(c.tag.as_str().as_bytes());
    out.push(b' ');
    let name = |out: &mut Vec<u8>, n: &str| out.extend_from_slice(n.as_bytes());
    let mbx = |out: &mut Vec<u8>, m: &types::Mailbox| {
        out.push(b' ');
        astring(out, m.as_astring());
    };
    name(out, c.body.name());
    match &c.body {
        C::Capability
        | C::Noop
        | C::Logout
        | C::StartTls
        | C::Namespace
        | C::Idle
        | C::Check
        | C::Close
        | C::Unselect
        | C::Expunge => {}
        C::Id(params) => {
            out.push(b' ');
            match params {
                None => out.extend_from_slice(b"NIL"),
                Some(params) => {
                    out.push(b'(');
                    for (i, (k, v)) in params.iter().enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        string(out, k.as_bytes());
                        out.push(b' ');
                        nstring(out, v.as_ref().map(AString::as_bytes));
                    }
                    out.push(b')');
                }
            }
        }
        C::Authenticate { mechanism, initial } => {
            out.push(b' ');
            out.extend_from_slice(mechanism.as_str().as_bytes());
            if let Some(ir) = initial {
                out.push(b' ');
                out.extend_from_slice(ir.expose());
            }
        }
        C::Login { username, password } => {
            out.push(b' ');
            astring(out, username);
            out.push(b' ');
            astring(out, password.expose_string());
        }
        C::Enable(caps) => {
            for cap in caps {
                out.push(b' ');
                out.extend_from_slice(cap.as_str().as_bytes());
            }
        }
        C::Select { mailbox }
        | C::Examine { mailbox }
        | C::Create { mailbox }
        | C::Delete { mailbox }
        | C::Subscribe { mailbox }
        | C::Unsubscribe { mailbox }
        | C::GetQuotaRoot { mailbox } => mbx(out, mailbox),
        C::Rename { from, to } => {
            mbx(out, from);
            mbx(out, to);
        }
        C::List { reference, pattern } | C::Lsub { reference, pattern } => {
            mbx(out, reference);
            out.push(b' ');
            list_mailbox(out, pattern.as_bytes());
        }
        C::Status { mailbox, items } => {
            mbx(out, mailbox);
            out.extend_from_slice(b" (");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(item.as_str().as_bytes());
            }
            out.push(b')');
        }
        C::Append {
            mailbox,
            flags,
            date,
            message,
        } => {
            mbx(out, mailbox);
            if !flags.is_empty() {
                out.push(b' ');
                flag_list(out, flags);
            }
            if let Some(d) = date {
                out.push(b' ');
                date_time(out, d);
            }
            out.push(b' ');
            literal(out, message);
        }
        C::GetQuota { root } => {
            out.push(b' ');
            astring(out, root);
        }
        C::SetQuota { root, limits } => {
            out.push(b' ');
            astring(out, root);
            out.extend_from_slice(b" (");
            for (i, (res, limit)) in limits.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                put!(out, "{res} {limit}");
            }
            out.push(b')');
        }
        C::UidExpunge(set) => {
            out.push(b' ');
            sequence_set(out, set);
        }
        C::Search {
            charset, criteria, ..
        } => {
            if let Some(cs) = charset {
                put!(out, " CHARSET {cs}");
            }
            search_keys(out, criteria, " ");
        }
        C::Sort {
            criteria,
            charset,
            search,
            ..
        } => {
            out.extend_from_slice(b" (");
            for (i, c) in criteria.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                sort_criterion(out, c);
            }
            put!(out, ") {charset}");
            search_keys(out, search, " ");
        }
        C::Fetch { set, items, .. } => {
            out.push(b' ');
            sequence_set(out, set);
            out.push(b' ');
            fetch_items(out, items);
        }
        C::Store { set, action, .. } => {
            out.push(b' ');
            sequence_set(out, set);
            out.push(b' ');
            store_action(out, action);
        }
        C::Copy { set, mailbox, .. } | C::Move { set, mailbox, .. } => {
            out.push(b' ');
            sequence_set(out, set);
            mbx(out, mailbox);
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        astring(&mut out, &AString::new(bytes.to_vec()).unwrap());
        out
    }

    proptest::proptest! {
        #[test]
        fn numbers_are_written_as_write_would(n: u64) {
            let mut out = b"x".to_vec();
            number(&mut out, n);
            proptest::prop_assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn number_edges() {
        for n in [0, 9, 10, 99, 100, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn strings_take_the_smallest_form_that_fits() {
        assert_eq!(s(b"INBOX"), b"INBOX");
        assert_eq!(s(b""), b"\"\"");
        assert_eq!(s(b"a b"), b"\"a b\"");
        assert_eq!(s(b"a\"b\\"), b"\"a\\\"b\\\\\"");
        assert_eq!(s("ü".as_bytes()), b"{2}\r\n\xc3\xbc");
        assert_eq!(s(b"a\r\nb"), b"{4}\r\na\r\nb");
        assert_eq!(s(&[b'x'; 300])[..6], *b"{300}\r");
        let mut out = Vec::new();
        nstring(&mut out, Some(b"NIL"));
        nstring(&mut out, None);
        assert_eq!(out, b"\"NIL\"NIL");
    }

    #[test]
    fn dates_are_fixed_width() {
        let d = Date::new(1996, 7, 7).unwrap();
        let mut out = Vec::new();
        date_time(&mut out, &DateTime::new(d, 2, 4, 5, -7 * 60).unwrap());
        assert_eq!(out, b"\" 7-Jul-1996 02:04:05 -0700\"");
        out.clear();
        date(&mut out, &d);
        assert_eq!(out, b"7-Jul-1996");
    }
}
