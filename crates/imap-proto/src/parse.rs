//! nom parsers of the client's side of the grammar (RFC 3501 section 9 and
//! the extensions' ABNF). Each function names the rule it implements. They
//! read complete input: a command's lines with its literals inline, as
//! [`crate::framing::Fragmenter`] collects them.

use std::num::NonZeroU32;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take, take_while, take_while_m_n, take_while1};
use nom::combinator::{all_consuming, map, map_opt, opt, recognize, value, verify};
use nom::multi::{separated_list0, separated_list1};
use nom::sequence::{delimited, preceded, separated_pair, terminated};
use nom::{IResult, Parser};

use crate::command::{Command, CommandBody, ParseError};
use crate::types::{
    self, AString, Atom, Date, DateTime, FetchAttribute, FetchItems, FetchMacro, Flag, ListPattern,
    Mailbox, Partial, PermanentFlag, SearchKey, Secret, Section, SectionText, SeqNumber, SeqRange,
    SequenceSet, SortCriterion, SortKey, StatusItem, StoreAction, StoreMode, Tag,
};

pub(crate) type R<'a, T> = IResult<&'a [u8], T>;

/// Deepest nesting of SEARCH keys (`NOT`, `OR`, parentheses). Each level is
/// a stack frame of the recursive parser; 32 is far beyond what clients send.
pub const MAX_SEARCH_DEPTH: usize = 32;

// ---- lexical rules ----

/// `SP`.
pub(crate) fn sp(i: &[u8]) -> R<'_, ()> {
    value((), tag(&b" "[..])).parse(i)
}

/// `CRLF`; a bare LF is accepted as well.
pub(crate) fn crlf(i: &[u8]) -> R<'_, ()> {
    value((), (opt(tag(&b"\r"[..])), tag(&b"\n"[..]))).parse(i)
}

/// `number`: an unsigned 32-bit integer.
pub(crate) fn number(i: &[u8]) -> R<'_, u32> {
    map_opt(
        take_while_m_n(1, 10, |b: u8| b.is_ascii_digit()),
        |d: &[u8]| std::str::from_utf8(d).ok()?.parse().ok(),
    )
    .parse(i)
}

/// `number64` (RFC 9051): an unsigned 63-bit integer.
pub(crate) fn number64(i: &[u8]) -> R<'_, u64> {
    map_opt(
        take_while_m_n(1, 19, |b: u8| b.is_ascii_digit()),
        |d: &[u8]| {
            let n: u64 = std::str::from_utf8(d).ok()?.parse().ok()?;
            (n <= i64::MAX as u64).then_some(n)
        },
    )
    .parse(i)
}

/// `nz-number`: a non-zero `number`.
pub(crate) fn nz_number(i: &[u8]) -> R<'_, NonZeroU32> {
    map_opt(number, NonZeroU32::new).parse(i)
}

/// `atom`.
pub(crate) fn atom(i: &[u8]) -> R<'_, Atom> {
    map_opt(take_while1(types::is_atom_char), |a: &[u8]| {
        Atom::new(std::str::from_utf8(a).ok()?).ok()
    })
    .parse(i)
}

/// `tag`.
pub(crate) fn imap_tag(i: &[u8]) -> R<'_, Tag> {
    map_opt(take_while1(types::is_tag_char), |t: &[u8]| {
        Tag::new(std::str::from_utf8(t).ok()?).ok()
    })
    .parse(i)
}

/// `quoted`: `DQUOTE *QUOTED-CHAR DQUOTE`. Octets above 127 are accepted
/// (clients send UTF-8 in quoted strings); NUL, CR and LF are not.
pub(crate) fn quoted(i: &[u8]) -> R<'_, Vec<u8>> {
    let (mut rest, _) = tag(&b"\""[..]).parse(i)?;
    let mut out = Vec::new();
    loop {
        match rest.first() {
            Some(b'"') => return Ok((&rest[1..], out)),
            Some(b'\\') => match rest.get(1) {
                Some(&c @ (b'"' | b'\\')) => {
                    out.push(c);
                    rest = &rest[2..];
                }
                _ => return fail(rest),
            },
            Some(&c) if c != 0 && c != b'\r' && c != b'\n' => {
                out.push(c);
                rest = &rest[1..];
            }
            _ => return fail(rest),
        }
    }
}

fn fail<T>(i: &[u8]) -> R<'_, T> {
    Err(nom::Err::Error(nom::error::Error::new(
        i,
        nom::error::ErrorKind::Verify,
    )))
}

/// The announcement of a `literal`: `"{" number ["+"] "}" CRLF`; returns
/// the length and whether it is synchronising.
pub(crate) fn literal_announcement(i: &[u8]) -> R<'_, (u32, bool)> {
    map(
        (
            tag(&b"{"[..]),
            number,
            opt(tag(&b"+"[..])),
            tag(&b"}"[..]),
            crlf,
        ),
        |(_, n, plus, _, _)| (n, plus.is_none()),
    )
    .parse(i)
}

/// `literal`: the announcement and `*CHAR8` (no NUL).
pub(crate) fn literal(i: &[u8]) -> R<'_, &[u8]> {
    let (i, (n, _)) = literal_announcement(i)?;
    verify(take(n as usize), |b: &[u8]| !b.contains(&0)).parse(i)
}

/// `string`: `quoted / literal`.
pub(crate) fn string(i: &[u8]) -> R<'_, AString> {
    map_opt(alt((quoted, map(literal, <[u8]>::to_vec))), |b| {
        AString::new(b).ok()
    })
    .parse(i)
}

/// `astring`: `1*ASTRING-CHAR / string`.
pub(crate) fn astring(i: &[u8]) -> R<'_, AString> {
    alt((
        map_opt(take_while1(types::is_astring_char), |b: &[u8]| {
            AString::new(b).ok()
        }),
        string,
    ))
    .parse(i)
}

/// `nil`.
pub(crate) fn nil(i: &[u8]) -> R<'_, ()> {
    value((), tag_no_case(&b"NIL"[..])).parse(i)
}

/// `nstring`: `string / nil`.
pub(crate) fn nstring(i: &[u8]) -> R<'_, Option<AString>> {
    alt((map(string, Some), value(None, nil))).parse(i)
}

/// `mailbox`: `"INBOX" / astring` (INBOX in any case).
pub(crate) fn mailbox(i: &[u8]) -> R<'_, Mailbox> {
    map(astring, Mailbox::new).parse(i)
}

/// `list-mailbox`: `1*list-char / string`.
pub(crate) fn list_mailbox(i: &[u8]) -> R<'_, ListPattern> {
    alt((
        map_opt(take_while1(types::is_list_char), |b: &[u8]| {
            AString::new(b).ok().map(ListPattern::new)
        }),
        map(string, ListPattern::new),
    ))
    .parse(i)
}

// ---- sequence sets ----

/// `seq-number`: `nz-number / "*"`.
pub(crate) fn seq_number(i: &[u8]) -> R<'_, SeqNumber> {
    alt((
        map(nz_number, SeqNumber::Value),
        value(SeqNumber::Largest, tag(&b"*"[..])),
    ))
    .parse(i)
}

/// `sequence-set`: `(seq-number / seq-range) ["," sequence-set]`.
pub(crate) fn sequence_set(i: &[u8]) -> R<'_, SequenceSet> {
    let element = alt((
        map(
            separated_pair(seq_number, tag(&b":"[..]), seq_number),
            |(a, b)| SeqRange::Range(a, b),
        ),
        map(seq_number, SeqRange::Single),
    ));
    map_opt(separated_list1(tag(&b","[..]), element), |r| {
        SequenceSet::new(r).ok()
    })
    .parse(i)
}

// ---- flags ----

/// `flag` (and `flag-fetch`'s `\Recent`): a backslashed name or a keyword.
pub(crate) fn flag(i: &[u8]) -> R<'_, Flag> {
    alt((
        map(preceded(tag(&b"\\"[..]), atom), Flag::backslashed),
        map(atom, Flag::Keyword),
    ))
    .parse(i)
}

/// `flag-list`: `"(" [flag *(SP flag)] ")"`.
pub(crate) fn flag_list(i: &[u8]) -> R<'_, Vec<Flag>> {
    delimited(tag(&b"("[..]), separated_list0(sp, flag), tag(&b")"[..])).parse(i)
}

/// `flag-perm`: `flag / "\*"`.
pub(crate) fn flag_perm(i: &[u8]) -> R<'_, PermanentFlag> {
    alt((
        value(PermanentFlag::AnyKeyword, tag(&b"\\*"[..])),
        map(flag, PermanentFlag::Flag),
    ))
    .parse(i)
}

// ---- dates ----

/// `date-month`.
fn date_month(i: &[u8]) -> R<'_, u8> {
    map_opt(take(3usize), Date::month_from_name).parse(i)
}

fn digits(n: usize) -> impl Fn(&[u8]) -> R<'_, u16> {
    move |i| {
        map_opt(
            take_while_m_n(n, n, |b: u8| b.is_ascii_digit()),
            |d: &[u8]| std::str::from_utf8(d).ok()?.parse().ok(),
        )
        .parse(i)
    }
}

/// `date-text`: `date-day "-" date-month "-" date-year`.
fn date_text(i: &[u8]) -> R<'_, Date> {
    let day = map_opt(
        take_while_m_n(1, 2, |b: u8| b.is_ascii_digit()),
        |d: &[u8]| std::str::from_utf8(d).ok()?.parse::<u8>().ok(),
    );
    map_opt(
        (day, tag(&b"-"[..]), date_month, tag(&b"-"[..]), digits(4)),
        |(d, _, m, _, y)| Date::new(y, m, d).ok(),
    )
    .parse(i)
}

/// `date`: `date-text / DQUOTE date-text DQUOTE`.
pub(crate) fn date(i: &[u8]) -> R<'_, Date> {
    alt((
        date_text,
        delimited(tag(&b"\""[..]), date_text, tag(&b"\""[..])),
    ))
    .parse(i)
}

/// `date-time`: `DQUOTE date-day-fixed "-" date-month "-" date-year SP
/// time SP zone DQUOTE`.
pub(crate) fn date_time(i: &[u8]) -> R<'_, DateTime> {
    let day_fixed = alt((preceded(sp, digits(1)), digits(2)));
    let time = (
        digits(2),
        tag(&b":"[..]),
        digits(2),
        tag(&b":"[..]),
        digits(2),
    );
    let zone = (alt((tag(&b"+"[..]), tag(&b"-"[..]))), digits(2), digits(2));
    map_opt(
        delimited(
            tag(&b"\""[..]),
            (
                day_fixed,
                tag(&b"-"[..]),
                date_month,
                tag(&b"-"[..]),
                digits(4),
                sp,
                time,
                sp,
                zone,
            ),
            tag(&b"\""[..]),
        ),
        |(d, _, m, _, y, _, (hh, _, mm, _, ss), _, (sign, zh, zm))| {
            if zm >= 60 {
                return None;
            }
            let minutes = (zh * 60 + zm) as i16;
            let zone = if sign == b"-" { -minutes } else { minutes };
            let date = Date::new(y, m, d as u8).ok()?;
            DateTime::new(date, hh as u8, mm as u8, ss as u8, zone).ok()
        },
    )
    .parse(i)
}

// ---- SEARCH and SORT ----

/// `search-key`, nested at most [`MAX_SEARCH_DEPTH`] deep.
pub(crate) fn search_key(i: &[u8], depth: usize) -> R<'_, SearchKey> {
    if depth > MAX_SEARCH_DEPTH {
        return fail(i);
    }
    if i.first() == Some(&b'(') {
        let inner = |i| search_key(i, depth + 1);
        return map(
            delimited(tag(&b"("[..]), separated_list1(sp, inner), tag(&b")"[..])),
            SearchKey::And,
        )
        .parse(i);
    }
    if i.first().is_some_and(|b| b.is_ascii_digit() || *b == b'*') {
        return map(sequence_set, SearchKey::SequenceSet).parse(i);
    }
    let (rest, name) = take_while1(|b: u8| b.is_ascii_alphanumeric()).parse(i)?;
    let name = name.to_ascii_uppercase();
    let arg = |i| preceded(sp, astring).parse(i);
    let with_date = |i, f: fn(Date) -> SearchKey| map(preceded(sp, date), f).parse(i);
    let key = |i| search_key(i, depth + 1);
    match name.as_slice() {
        b"ALL" => Ok((rest, SearchKey::All)),
        b"ANSWERED" => Ok((rest, SearchKey::Answered)),
        b"BCC" => map(arg, SearchKey::Bcc).parse(rest),
        b"BEFORE" => with_date(rest, SearchKey::Before),
        b"BODY" => map(arg, SearchKey::Body).parse(rest),
        b"CC" => map(arg, SearchKey::Cc).parse(rest),
        b"DELETED" => Ok((rest, SearchKey::Deleted)),
        b"DRAFT" => Ok((rest, SearchKey::Draft)),
        b"FLAGGED" => Ok((rest, SearchKey::Flagged)),
        b"FROM" => map(arg, SearchKey::From).parse(rest),
        b"HEADER" => map((arg, arg), |(f, v)| SearchKey::Header(f, v)).parse(rest),
        b"KEYWORD" => map(preceded(sp, atom), SearchKey::Keyword).parse(rest),
        b"LARGER" => map(preceded(sp, number), SearchKey::Larger).parse(rest),
        b"NEW" => Ok((rest, SearchKey::New)),
        b"NOT" => map(preceded(sp, key), |k| SearchKey::Not(Box::new(k))).parse(rest),
        b"OLD" => Ok((rest, SearchKey::Old)),
        b"ON" => with_date(rest, SearchKey::On),
        b"OR" => map((preceded(sp, key), preceded(sp, key)), |(a, b)| {
            SearchKey::Or(Box::new(a), Box::new(b))
        })
        .parse(rest),
        b"RECENT" => Ok((rest, SearchKey::Recent)),
        b"SEEN" => Ok((rest, SearchKey::Seen)),
        b"SENTBEFORE" => with_date(rest, SearchKey::SentBefore),
        b"SENTON" => with_date(rest, SearchKey::SentOn),
        b"SENTSINCE" => with_date(rest, SearchKey::SentSince),
        b"SINCE" => with_date(rest, SearchKey::Since),
        b"SMALLER" => map(preceded(sp, number), SearchKey::Smaller).parse(rest),
        b"SUBJECT" => map(arg, SearchKey::Subject).parse(rest),
        b"TEXT" => map(arg, SearchKey::Text).parse(rest),
        b"TO" => map(arg, SearchKey::To).parse(rest),
        b"UID" => map(preceded(sp, sequence_set), SearchKey::Uid).parse(rest),
        b"UNANSWERED" => Ok((rest, SearchKey::Unanswered)),
        b"UNDELETED" => Ok((rest, SearchKey::Undeleted)),
        b"UNDRAFT" => Ok((rest, SearchKey::Undraft)),
        b"UNFLAGGED" => Ok((rest, SearchKey::Unflagged)),
        b"UNKEYWORD" => map(preceded(sp, atom), SearchKey::Unkeyword).parse(rest),
        b"UNSEEN" => Ok((rest, SearchKey::Unseen)),
        _ => fail(i),
    }
}

/// `charset`: `atom / quoted` (only atom-shaped names are accepted).
fn charset(i: &[u8]) -> R<'_, Atom> {
    alt((
        atom,
        map_opt(quoted, |q| Atom::new(String::from_utf8(q).ok()?).ok()),
    ))
    .parse(i)
}

/// `search`: `"SEARCH" [SP "CHARSET" SP charset] 1*(SP search-key)`
/// (after the name).
fn search_args(i: &[u8], uid: bool) -> R<'_, CommandBody> {
    let (i, charset) = opt(preceded((sp, tag_no_case(&b"CHARSET"[..]), sp), charset)).parse(i)?;
    let (i, criteria) = search_keys(i)?;
    Ok((
        i,
        CommandBody::Search {
            charset,
            criteria,
            uid,
        },
    ))
}

/// `1*(SP search-key)`.
fn search_keys(i: &[u8]) -> R<'_, Vec<SearchKey>> {
    nom::multi::many1(preceded(sp, |i| search_key(i, 0))).parse(i)
}

/// `sort-key` (RFC 5256).
fn sort_key(i: &[u8]) -> R<'_, SortKey> {
    alt((
        value(SortKey::Arrival, tag_no_case(&b"ARRIVAL"[..])),
        value(SortKey::Cc, tag_no_case(&b"CC"[..])),
        value(SortKey::Date, tag_no_case(&b"DATE"[..])),
        value(SortKey::From, tag_no_case(&b"FROM"[..])),
        value(SortKey::Size, tag_no_case(&b"SIZE"[..])),
        value(SortKey::Subject, tag_no_case(&b"SUBJECT"[..])),
        value(SortKey::To, tag_no_case(&b"TO"[..])),
    ))
    .parse(i)
}

/// `sort-criterion`: `["REVERSE" SP] sort-key`.
fn sort_criterion(i: &[u8]) -> R<'_, SortCriterion> {
    map(
        (opt(terminated(tag_no_case(&b"REVERSE"[..]), sp)), sort_key),
        |(r, key)| SortCriterion {
            reverse: r.is_some(),
            key,
        },
    )
    .parse(i)
}

/// `sort`: `"SORT" SP sort-criteria SP search-criteria` (after the name).
fn sort_args(i: &[u8], uid: bool) -> R<'_, CommandBody> {
    let (i, criteria) = preceded(
        sp,
        delimited(
            tag(&b"("[..]),
            separated_list1(sp, sort_criterion),
            tag(&b")"[..]),
        ),
    )
    .parse(i)?;
    let (i, charset) = preceded(sp, charset).parse(i)?;
    let (i, search) = search_keys(i)?;
    Ok((
        i,
        CommandBody::Sort {
            criteria,
            charset,
            search,
            uid,
        },
    ))
}

// ---- FETCH ----

/// `section-part`: `nz-number *("." nz-number)`.
fn section_part(i: &[u8]) -> R<'_, Vec<NonZeroU32>> {
    separated_list1(tag(&b"."[..]), nz_number).parse(i)
}

/// `header-list`: `"(" header-fld-name *(SP header-fld-name) ")"`.
fn header_list(i: &[u8]) -> R<'_, Vec<AString>> {
    delimited(tag(&b"("[..]), separated_list1(sp, astring), tag(&b")"[..])).parse(i)
}

/// `section-msgtext`: `"HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list /
/// "TEXT"`.
fn section_msgtext(i: &[u8]) -> R<'_, SectionText> {
    alt((
        map(
            preceded((tag_no_case(&b"HEADER.FIELDS.NOT"[..]), sp), header_list),
            SectionText::HeaderFieldsNot,
        ),
        map(
            preceded((tag_no_case(&b"HEADER.FIELDS"[..]), sp), header_list),
            SectionText::HeaderFields,
        ),
        value(SectionText::Header, tag_no_case(&b"HEADER"[..])),
        value(SectionText::Text, tag_no_case(&b"TEXT"[..])),
    ))
    .parse(i)
}

/// `section`: `"[" [section-spec] "]"`.
pub(crate) fn section(i: &[u8]) -> R<'_, Section> {
    let text = alt((
        section_msgtext,
        value(SectionText::Mime, tag_no_case(&b"MIME"[..])),
    ));
    let spec = alt((
        map(
            (section_part, opt(preceded(tag(&b"."[..]), text))),
            |(p, t)| (p, t),
        ),
        map(section_msgtext, |t| (Vec::new(), Some(t))),
    ));
    map_opt(delimited(tag(&b"["[..]), opt(spec), tag(&b"]"[..])), |s| {
        let (part, text) = s.unwrap_or_default();
        Section::new(part, text).ok()
    })
    .parse(i)
}

/// `section-binary`: `"[" [section-part] "]"`.
pub(crate) fn section_binary(i: &[u8]) -> R<'_, Vec<NonZeroU32>> {
    map(
        delimited(tag(&b"["[..]), opt(section_part), tag(&b"]"[..])),
        Option::unwrap_or_default,
    )
    .parse(i)
}

/// `partial`: `"<" number "." nz-number ">"`.
fn partial(i: &[u8]) -> R<'_, Partial> {
    map(
        delimited(
            tag(&b"<"[..]),
            separated_pair(number, tag(&b"."[..]), nz_number),
            tag(&b">"[..]),
        ),
        |(origin, length)| Partial { origin, length },
    )
    .parse(i)
}

/// `fetch-att`.
pub(crate) fn fetch_att(i: &[u8]) -> R<'_, FetchAttribute> {
    use FetchAttribute as F;
    alt((
        value(F::Envelope, tag_no_case(&b"ENVELOPE"[..])),
        value(F::Flags, tag_no_case(&b"FLAGS"[..])),
        value(F::InternalDate, tag_no_case(&b"INTERNALDATE"[..])),
        value(F::Rfc822Header, tag_no_case(&b"RFC822.HEADER"[..])),
        value(F::Rfc822Size, tag_no_case(&b"RFC822.SIZE"[..])),
        value(F::Rfc822Text, tag_no_case(&b"RFC822.TEXT"[..])),
        value(F::Rfc822, tag_no_case(&b"RFC822"[..])),
        value(F::BodyStructure, tag_no_case(&b"BODYSTRUCTURE"[..])),
        map(
            (tag_no_case(&b"BODY.PEEK"[..]), section, opt(partial)),
            |(_, section, partial)| F::BodySection {
                peek: true,
                section,
                partial,
            },
        ),
        map(
            (tag_no_case(&b"BODY"[..]), section, opt(partial)),
            |(_, section, partial)| F::BodySection {
                peek: false,
                section,
                partial,
            },
        ),
        value(F::Body, tag_no_case(&b"BODY"[..])),
        value(F::Uid, tag_no_case(&b"UID"[..])),
        map(
            (
                tag_no_case(&b"BINARY.PEEK"[..]),
                section_binary,
                opt(partial),
            ),
            |(_, part, partial)| F::Binary {
                peek: true,
                part,
                partial,
            },
        ),
        map(
            preceded(tag_no_case(&b"BINARY.SIZE"[..]), section_binary),
            |part| F::BinarySize { part },
        ),
        map(
            (tag_no_case(&b"BINARY"[..]), section_binary, opt(partial)),
            |(_, part, partial)| F::Binary {
                peek: false,
                part,
                partial,
            },
        ),
    ))
    .parse(i)
}

/// `fetch`'s items: `"ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att
/// *(SP fetch-att) ")"`.
fn fetch_items(i: &[u8]) -> R<'_, FetchItems> {
    alt((
        map(
            delimited(
                tag(&b"("[..]),
                separated_list1(sp, fetch_att),
                tag(&b")"[..]),
            ),
            |attributes| FetchItems::Attributes {
                attributes,
                single: false,
            },
        ),
        map(fetch_att, |a| FetchItems::Attributes {
            attributes: vec![a],
            single: true,
        }),
        value(FetchItems::Macro(FetchMacro::All), tag_no_case(&b"ALL"[..])),
        value(
            FetchItems::Macro(FetchMacro::Full),
            tag_no_case(&b"FULL"[..]),
        ),
        value(
            FetchItems::Macro(FetchMacro::Fast),
            tag_no_case(&b"FAST"[..]),
        ),
    ))
    .parse(i)
}

// ---- STORE, STATUS ----

/// `store-att-flags`: `(["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list /
/// (flag *(SP flag)))`.
fn store_att_flags(i: &[u8]) -> R<'_, StoreAction> {
    let mode = alt((
        value(StoreMode::Add, tag(&b"+"[..])),
        value(StoreMode::Remove, tag(&b"-"[..])),
    ));
    map(
        (
            opt(mode),
            tag_no_case(&b"FLAGS"[..]),
            opt(tag_no_case(&b".SILENT"[..])),
            sp,
            alt((
                map(flag_list, |f| (f, true)),
                map(separated_list1(sp, flag), |f| (f, false)),
            )),
        ),
        |(mode, _, silent, _, (flags, list))| StoreAction {
            mode: mode.unwrap_or(StoreMode::Replace),
            silent: silent.is_some(),
            flags,
            list,
        },
    )
    .parse(i)
}

/// `status-att`.
pub(crate) fn status_att(i: &[u8]) -> R<'_, StatusItem> {
    alt((
        value(StatusItem::Messages, tag_no_case(&b"MESSAGES"[..])),
        value(StatusItem::Recent, tag_no_case(&b"RECENT"[..])),
        value(StatusItem::UidNext, tag_no_case(&b"UIDNEXT"[..])),
        value(StatusItem::UidValidity, tag_no_case(&b"UIDVALIDITY"[..])),
        value(StatusItem::Unseen, tag_no_case(&b"UNSEEN"[..])),
    ))
    .parse(i)
}

// ---- commands ----

/// `id-params-list` (RFC 2971): `"(" [string SP nstring *(SP string SP
/// nstring)] ")" / nil`, at most 30 pairs.
pub(crate) fn id_params(i: &[u8]) -> R<'_, crate::types::IdParams> {
    alt((
        map(
            verify(
                delimited(
                    tag(&b"("[..]),
                    separated_list0(sp, separated_pair(string, sp, nstring)),
                    tag(&b")"[..]),
                ),
                |v: &Vec<_>| v.len() <= 30,
            ),
            Some,
        ),
        value(None, nil),
    ))
    .parse(i)
}

/// `base64` of an `AUTHENTICATE` initial response (RFC 4959): `base64 / "="`.
fn initial_response(i: &[u8]) -> R<'_, Secret> {
    map_opt(
        alt((
            recognize((
                take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
                take_while(|b| b == b'='),
            )),
            tag(&b"="[..]),
        )),
        |b: &[u8]| AString::new(b).ok().map(Secret::new),
    )
    .parse(i)
}

/// `append` up to its literal: `"APPEND" SP mailbox [SP flag-list] [SP
/// date-time] SP` (after the name).
fn append_head(i: &[u8]) -> R<'_, (Mailbox, Vec<Flag>, Option<DateTime>)> {
    map(
        (
            preceded(sp, mailbox),
            opt(preceded(sp, flag_list)),
            opt(preceded(sp, date_time)),
            sp,
        ),
        |(m, f, d, _)| (m, f.unwrap_or_default(), d),
    )
    .parse(i)
}

/// The arguments of the command `name` (upper case), up to the final CRLF.
fn arguments<'a>(name: &[u8], i: &'a [u8]) -> Option<R<'a, CommandBody>> {
    use CommandBody as C;
    let mbx = |i| preceded(sp, mailbox).parse(i);
    let set = |i| preceded(sp, sequence_set).parse(i);
    Some(match name {
        b"CAPABILITY" => Ok((i, C::Capability)),
        b"NOOP" => Ok((i, C::Noop)),
        b"LOGOUT" => Ok((i, C::Logout)),
        b"ID" => map(preceded(sp, id_params), C::Id).parse(i),
        b"STARTTLS" => Ok((i, C::StartTls)),
        b"AUTHENTICATE" => map(
            (preceded(sp, atom), opt(preceded(sp, initial_response))),
            |(mechanism, initial)| C::Authenticate { mechanism, initial },
        )
        .parse(i),
        b"LOGIN" => map(
            (preceded(sp, astring), preceded(sp, astring)),
            |(username, password)| C::Login {
                username,
                password: Secret::new(password),
            },
        )
        .parse(i),
        b"ENABLE" => map(nom::multi::many1(preceded(sp, atom)), C::Enable).parse(i),
        b"SELECT" => map(mbx, |mailbox| C::Select { mailbox }).parse(i),
        b"EXAMINE" => map(mbx, |mailbox| C::Examine { mailbox }).parse(i),
        b"CREATE" => map(mbx, |mailbox| C::Create { mailbox }).parse(i),
        b"DELETE" => map(mbx, |mailbox| C::Delete { mailbox }).parse(i),
        b"RENAME" => map((mbx, mbx), |(from, to)| C::Rename { from, to }).parse(i),
        b"SUBSCRIBE" => map(mbx, |mailbox| C::Subscribe { mailbox }).parse(i),
        b"UNSUBSCRIBE" => map(mbx, |mailbox| C::Unsubscribe { mailbox }).parse(i),
        b"LIST" => map((mbx, preceded(sp, list_mailbox)), |(reference, pattern)| {
            C::List { reference, pattern }
        })
        .parse(i),
        b"LSUB" => map((mbx, preceded(sp, list_mailbox)), |(reference, pattern)| {
            C::Lsub { reference, pattern }
        })
        .parse(i),
        b"STATUS" => map(
            (
                mbx,
                preceded(
                    sp,
                    delimited(
                        tag(&b"("[..]),
                        separated_list1(sp, status_att),
                        tag(&b")"[..]),
                    ),
                ),
            ),
            |(mailbox, items)| C::Status { mailbox, items },
        )
        .parse(i),
        b"APPEND" => map((append_head, literal), |((mailbox, flags, date), m)| {
            C::Append {
                mailbox,
                flags,
                date,
                message: m.to_vec(),
            }
        })
        .parse(i),
        b"NAMESPACE" => Ok((i, C::Namespace)),
        b"GETQUOTA" => map(preceded(sp, astring), |root| C::GetQuota { root }).parse(i),
        b"GETQUOTAROOT" => map(mbx, |mailbox| C::GetQuotaRoot { mailbox }).parse(i),
        b"SETQUOTA" => map(
            (
                preceded(sp, astring),
                preceded(
                    sp,
                    delimited(
                        tag(&b"("[..]),
                        separated_list0(sp, separated_pair(atom, sp, number64)),
                        tag(&b")"[..]),
                    ),
                ),
            ),
            |(root, limits)| C::SetQuota { root, limits },
        )
        .parse(i),
        b"IDLE" => Ok((i, C::Idle)),
        b"CHECK" => Ok((i, C::Check)),
        b"CLOSE" => Ok((i, C::Close)),
        b"UNSELECT" => Ok((i, C::Unselect)),
        b"EXPUNGE" => Ok((i, C::Expunge)),
        b"SEARCH" => search_args(i, false),
        b"SORT" => sort_args(i, false),
        b"FETCH" => uid_args(b"FETCH", i, false)?,
        b"STORE" => uid_args(b"STORE", i, false)?,
        b"COPY" => uid_args(b"COPY", i, false)?,
        b"MOVE" => uid_args(b"MOVE", i, false)?,
        b"UID" => {
            let (rest, sub) =
                match preceded(sp, take_while1(|b: u8| b.is_ascii_alphabetic())).parse(i) {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
            let sub = sub.to_ascii_uppercase();
            match sub.as_slice() {
                b"EXPUNGE" => map(set, C::UidExpunge).parse(rest),
                b"SEARCH" => search_args(rest, true),
                b"SORT" => sort_args(rest, true),
                b"FETCH" | b"STORE" | b"COPY" | b"MOVE" => uid_args(&sub, rest, true)?,
                _ => fail(i),
            }
        }
        _ => return None,
    })
}

/// `fetch`, `store`, `copy` and `move` after their name, with or without
/// `UID` in front.
fn uid_args<'a>(name: &[u8], i: &'a [u8], uid: bool) -> Option<R<'a, CommandBody>> {
    use CommandBody as C;
    let set = |i| preceded(sp, sequence_set).parse(i);
    Some(match name {
        b"FETCH" => map((set, preceded(sp, fetch_items)), |(set, items)| C::Fetch {
            set,
            items,
            uid,
        })
        .parse(i),
        b"STORE" => map((set, preceded(sp, store_att_flags)), |(set, action)| {
            C::Store { set, action, uid }
        })
        .parse(i),
        b"COPY" => map((set, preceded(sp, mailbox)), |(set, mailbox)| C::Copy {
            set,
            mailbox,
            uid,
        })
        .parse(i),
        b"MOVE" => map((set, preceded(sp, mailbox)), |(set, mailbox)| C::Move {
            set,
            mailbox,
            uid,
        })
        .parse(i),
        _ => return None,
    })
}

/// The command name: letters only.
fn command_name(i: &[u8]) -> R<'_, &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphabetic()).parse(i)
}

/// `command`: `tag SP (command-any / command-auth / command-nonauth /
/// command-select) CRLF`, the whole input.
pub(crate) fn command(input: &[u8]) -> Result<Command, ParseError> {
    let Ok((rest, tag)) = terminated(imap_tag, sp).parse(input) else {
        return Err(ParseError::NoTag);
    };
    let Ok((rest, name)) = command_name(rest) else {
        return Err(ParseError::UnknownCommand { tag });
    };
    let upper = name.to_ascii_uppercase();
    let Some(parsed) = arguments(&upper, rest) else {
        return Err(ParseError::UnknownCommand { tag });
    };
    let known = known_name(&upper);
    match parsed.and_then(|(rest, body)| all_consuming(crlf).parse(rest).map(|_| body)) {
        Ok(body) => Ok(Command { tag, body }),
        Err(_) => Err(ParseError::InvalidArguments { tag, name: known }),
    }
}

/// The static name of a known command (for error texts).
fn known_name(upper: &[u8]) -> &'static str {
    const NAMES: &[&str] = &[
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "ID",
        "STARTTLS",
        "AUTHENTICATE",
        "LOGIN",
        "ENABLE",
        "SELECT",
        "EXAMINE",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST",
        "LSUB",
        "STATUS",
        "APPEND",
        "NAMESPACE",
        "GETQUOTA",
        "GETQUOTAROOT",
        "SETQUOTA",
        "IDLE",
        "CHECK",
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "SEARCH",
        "SORT",
        "FETCH",
        "STORE",
        "COPY",
        "MOVE",
        "UID",
    ];
    NAMES
        .iter()
        .find(|n| n.as_bytes() == upper)
        .copied()
        .unwrap_or("command")
}

/// The start of an APPEND whose message literal is announced at the end of
/// `input`: `tag SP "APPEND" SP mailbox [SP flag-list] [SP date-time] SP
/// literal-announcement`, nothing after.
pub(crate) fn append_start(input: &[u8]) -> Option<AppendStart> {
    let (rest, (tag, _, _)) = (imap_tag, sp, tag_no_case(&b"APPEND"[..]))
        .parse(input)
        .ok()?;
    let (_, ((mailbox, flags, date), _)) = all_consuming((append_head, literal_announcement))
        .parse(rest)
        .ok()?;
    Some(AppendStart {
        tag,
        mailbox,
        flags,
        date,
    })
}

/// What [`append_start`] found.
#[derive(Debug)]
pub(crate) struct AppendStart {
    pub(crate) tag: Tag,
    pub(crate) mailbox: Mailbox,
    pub(crate) flags: Vec<Flag>,
    pub(crate) date: Option<DateTime>,
}

/// The tag at the start of a command, followed by SP, if it has one (for
/// the `BAD` of a command that broke a limit).
pub(crate) fn leading_tag(input: &[u8]) -> Option<Tag> {
    terminated(imap_tag, sp).parse(input).ok().map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> CommandBody {
        Command::parse(s.as_bytes())
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .body
    }

    #[test]
    fn strings_in_every_form() {
        assert_eq!(astring(b"foo ").unwrap().1.as_bytes(), b"foo");
        assert_eq!(astring(b"\"a\\\"b\" ").unwrap().1.as_bytes(), b"a\"b");
        assert_eq!(astring(b"{3}\r\na b").unwrap().1.as_bytes(), b"a b");
        assert_eq!(astring(b"{3+}\r\nxyz").unwrap().1.as_bytes(), b"xyz");
        assert!(astring(b"{4}\r\nxyz").is_err());
        assert!(quoted(b"\"a\rb\"").is_err());
        assert_eq!(nstring(b"nil").unwrap().1, None);
    }

    #[test]
    fn rfc3501_examples() {
        // Examples from RFC 3501 section 6.
        assert!(matches!(
            parse("a001 LOGIN SMITH SESAME\r\n"),
            CommandBody::Login { .. }
        ));
        assert_eq!(
            parse("A142 SELECT INBOX\r\n"),
            CommandBody::Select {
                mailbox: Mailbox::inbox()
            }
        );
        assert!(matches!(
            parse("A202 LIST ~/Mail/ %\r\n"),
            CommandBody::List { .. }
        ));
        assert!(matches!(
            parse("A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n"),
            CommandBody::Status { .. }
        ));
        let append =
            parse("A003 APPEND saved-messages (\\Seen) {23}\r\nFrom: Fred\r\n\r\nHello!!\r\n\r\n");
        let CommandBody::Append { message, flags, .. } = append else {
            panic!()
        };
        assert_eq!(message, b"From: Fred\r\n\r\nHello!!\r\n");
        assert_eq!(flags, vec![Flag::Seen]);
        assert!(matches!(
            parse("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"),
            CommandBody::Search { criteria, .. } if criteria.len() == 3
        ));
        assert!(matches!(
            parse("A283 SEARCH TEXT \"string not in mailbox\"\r\n"),
            CommandBody::Search { .. }
        ));
        assert!(matches!(
            parse("A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n"),
            CommandBody::Search {
                charset: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n"),
            CommandBody::Fetch { .. }
        ));
        assert!(matches!(
            parse("A003 STORE 2:4 +FLAGS (\\Deleted)\r\n"),
            CommandBody::Store { .. }
        ));
        assert!(matches!(
            parse("A003 COPY 2:4 MEETING\r\n"),
            CommandBody::Copy { uid: false, .. }
        ));
        assert!(matches!(
            parse("A999 UID FETCH 4827313:4828442 FLAGS\r\n"),
            CommandBody::Fetch { uid: true, .. }
        ));
        assert!(matches!(
            parse("a UID EXPUNGE 3000:3002\r\n"),
            CommandBody::UidExpunge(_)
        ));
        assert!(matches!(
            parse("a SORT (REVERSE DATE) UTF-8 ALL\r\n"),
            CommandBody::Sort { .. }
        ));
        assert!(matches!(
            parse("a ID (\"name\" \"x\" \"version\" NIL)\r\n"),
            CommandBody::Id(Some(v)) if v.len() == 2
        ));
        assert!(matches!(
            parse("a SETQUOTA \"\" (STORAGE 512)\r\n"),
            CommandBody::SetQuota { .. }
        ));
        assert!(matches!(
            parse("a AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0\r\n"),
            CommandBody::Authenticate {
                initial: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn fetch_sections_and_partials() {
        let CommandBody::Fetch { items, .. } =
            parse("a FETCH 1 (BODY.PEEK[1.2.MIME]<0.100> BINARY[2] BINARY.SIZE[] BODY[])\r\n")
        else {
            panic!()
        };
        let attrs = items.attributes();
        assert_eq!(attrs.len(), 4);
        let FetchAttribute::BodySection {
            peek: true,
            section,
            partial: Some(p),
        } = &attrs[0]
        else {
            panic!("{attrs:?}")
        };
        assert_eq!(section.part().len(), 2);
        assert_eq!(section.text(), Some(&SectionText::Mime));
        assert_eq!(p.origin, 0);
        assert!(Command::parse(b"a FETCH 1 BODY[MIME]\r\n").is_err());
    }

    #[test]
    fn errors_name_what_failed() {
        assert_eq!(Command::parse(b"+ NOOP\r\n"), Err(ParseError::NoTag));
        assert!(matches!(
            Command::parse(b"a FOO\r\n"),
            Err(ParseError::UnknownCommand { .. })
        ));
        assert!(matches!(
            Command::parse(b"a SELECT\r\n"),
            Err(ParseError::InvalidArguments { name: "SELECT", .. })
        ));
        assert!(Command::parse(b"a NOOP extra\r\n").is_err());
        assert!(Command::parse(b"a NOOP").is_err());
    }

    #[test]
    fn search_depth_is_bounded() {
        let deep = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(MAX_SEARCH_DEPTH + 2));
        assert!(Command::parse(deep.as_bytes()).is_err());
        let ok = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(MAX_SEARCH_DEPTH - 1));
        assert!(Command::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn append_start_reads_up_to_the_literal() {
        let s = append_start(
            b"A1 APPEND {5}\r\nDraft (\\Draft) \"17-Jul-1996 02:44:25 -0700\" {310+}\r\n",
        )
        .unwrap();
        assert_eq!(s.mailbox.as_bytes(), b"Draft");
        assert!(s.date.is_some());
        assert!(append_start(b"A1 APPEND x {3}\r\nabc\r\n").is_none());
    }
}
