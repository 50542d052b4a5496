//! Validated values of the IMAP grammar (RFC 3501 section 9 and the
//! extensions this crate speaks). A value of these types cannot be built
//! invalid: constructors check, and the parser only builds through them, so
//! the encoder never has to.
//!
//! Strings stay bytes: mailbox names are kept as sent (modified UTF-7 is the
//! host's business), and only `INBOX` is case-folded, as RFC 3501 section
//! 5.1 requires.

use std::fmt;
use std::num::NonZeroU32;

/// A value did not satisfy the grammar of its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {0}")]
pub struct InvalidValue(pub &'static str);

// ---- byte classes (RFC 3501 section 9) ----

/// `CHAR`: any 7-bit US-ASCII character except NUL.
pub(crate) fn is_char(b: u8) -> bool {
    (0x01..=0x7f).contains(&b)
}

/// `CTL`: controls and DEL.
pub(crate) fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// `ATOM-CHAR`: `CHAR` except `atom-specials`.
pub(crate) fn is_atom_char(b: u8) -> bool {
    is_char(b)
        && !is_ctl(b)
        && !matches!(
            b,
            b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']'
        )
}

/// `ASTRING-CHAR`: `ATOM-CHAR` or `resp-specials` (`]`).
pub(crate) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// The characters of `tag`: `ASTRING-CHAR` except `+`.
pub(crate) fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// `list-char`: `ATOM-CHAR`, `list-wildcards` or `resp-specials`.
pub(crate) fn is_list_char(b: u8) -> bool {
    is_atom_char(b) || matches!(b, b'%' | b'*' | b']')
}

/// `TEXT-CHAR`: `CHAR` except CR and LF.
pub(crate) fn is_text_char(b: u8) -> bool {
    is_char(b) && b != b'\r' && b != b'\n'
}

// ---- tags, atoms, strings ----

/// `tag`: the client's label of a command, echoed in the tagged response.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// A tag: one or more `ASTRING-CHAR` except `+`.
    pub fn new(tag: impl Into<String>) -> Result<Self, InvalidValue> {
        let tag = tag.into();
        if !tag.is_empty() && tag.bytes().all(is_tag_char) {
            Ok(Tag(tag))
        } else {
            Err(InvalidValue("tag"))
        }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `atom`: one or more `ATOM-CHAR`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom(String);

impl Atom {
    /// An atom: one or more `ATOM-CHAR`.
    pub fn new(atom: impl Into<String>) -> Result<Self, InvalidValue> {
        let atom = atom.into();
        if !atom.is_empty() && atom.bytes().all(is_atom_char) {
            Ok(Atom(atom))
        } else {
            Err(InvalidValue("atom"))
        }
    }

    /// The atom as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-insensitive comparison, the way IMAP compares keywords.
    pub fn eq_ignore_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Atom({})", self.0)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The content of an `astring`, `string` or `nstring`: any octets but NUL.
/// Which of atom, quoted string or literal it travels as is the encoder's
/// choice ([`crate::encode`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AString(Vec<u8>);

impl AString {
    /// A string of any octets but NUL (`CHAR8`).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, InvalidValue> {
        let bytes = bytes.into();
        if bytes.contains(&0) {
            Err(InvalidValue("string"))
        } else {
            Ok(AString(bytes))
        }
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The octets as UTF-8, if they are.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The octets, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for AString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl TryFrom<&str> for AString {
    type Error = InvalidValue;
    fn try_from(s: &str) -> Result<Self, InvalidValue> {
        AString::new(s.as_bytes())
    }
}

/// A password or SASL response. `Debug` prints `***`, so logs that print
/// commands never carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(AString);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: AString) -> Self {
        Secret(secret)
    }

    /// The secret octets.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret as a string, for the encoder.
    pub fn expose_string(&self) -> &AString {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `mailbox`: a mailbox name. `INBOX` in any case is `INBOX` (RFC 3501
/// section 5.1); every other name is kept as sent, modified UTF-7 included.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox(AString);

impl Mailbox {
    /// The mailbox named by these octets.
    pub fn new(name: AString) -> Self {
        if name.as_bytes().eq_ignore_ascii_case(b"INBOX") {
            Mailbox::inbox()
        } else {
            Mailbox(name)
        }
    }

    /// `INBOX`.
    pub fn inbox() -> Self {
        Mailbox(AString(b"INBOX".to_vec()))
    }

    /// Whether this is `INBOX`.
    pub fn is_inbox(&self) -> bool {
        self.0.as_bytes() == b"INBOX"
    }

    /// The name as octets (modified UTF-7 as the client sent it).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The name as a string value.
    pub fn as_astring(&self) -> &AString {
        &self.0
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({:?})", self.0)
    }
}

impl TryFrom<&str> for Mailbox {
    type Error = InvalidValue;
    fn try_from(s: &str) -> Result<Self, InvalidValue> {
        Ok(Mailbox::new(AString::try_from(s)?))
    }
}

/// `list-mailbox`: a LIST/LSUB pattern with `*` and `%` wildcards.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ListPattern(AString);

impl ListPattern {
    /// A pattern of any octets but NUL.
    pub fn new(pattern: AString) -> Self {
        ListPattern(pattern)
    }

    /// The pattern octets.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The pattern as a string value.
    pub fn as_astring(&self) -> &AString {
        &self.0
    }
}

impl fmt::Debug for ListPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListPattern({:?})", self.0)
    }
}

/// The field/value pairs of ID (RFC 2971), or `None` for `NIL`.
pub type IdParams = Option<Vec<(AString, Option<AString>)>>;

// ---- sequence sets ----

/// `seq-number`: a message sequence number or UID, or `*` (the largest in
/// use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqNumber {
    /// A number (`nz-number`).
    Value(NonZeroU32),
    /// `*`.
    Largest,
}

impl SeqNumber {
    /// The number this stands for when the largest in use is `largest`.
    pub fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqNumber::Value(n) => n.get(),
            SeqNumber::Largest => largest,
        }
    }
}

/// One element of a `sequence-set`: a number or a range (`seq-range`, in
/// either order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqRange {
    /// One number.
    Single(SeqNumber),
    /// `a:b`, kept in the order sent; `a:b` and `b:a` mean the same.
    Range(SeqNumber, SeqNumber),
}

/// `sequence-set`: a non-empty list of numbers and ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceSet(Vec<SeqRange>);

impl SequenceSet {
    /// A set of these elements; at least one.
    pub fn new(ranges: Vec<SeqRange>) -> Result<Self, InvalidValue> {
        if ranges.is_empty() {
            Err(InvalidValue("sequence-set"))
        } else {
            Ok(SequenceSet(ranges))
        }
    }

    /// The set of one number.
    pub fn single(n: NonZeroU32) -> Self {
        SequenceSet(vec![SeqRange::Single(SeqNumber::Value(n))])
    }

    /// The set `from:to`.
    pub fn range(from: NonZeroU32, to: NonZeroU32) -> Self {
        SequenceSet(vec![SeqRange::Range(
            SeqNumber::Value(from),
            SeqNumber::Value(to),
        )])
    }

    /// The elements as sent.
    pub fn ranges(&self) -> &[SeqRange] {
        &self.0
    }

    /// Whether `n` is in the set when the largest number in use is
    /// `largest` (which `*` stands for).
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|r| match *r {
            SeqRange::Single(a) => a.resolve(largest) == n,
            SeqRange::Range(a, b) => {
                let (a, b) = (a.resolve(largest), b.resolve(largest));
                (a.min(b)..=a.max(b)).contains(&n)
            }
        })
    }

    /// The set as sorted, merged inclusive ranges, `*` resolved to
    /// `largest`. Its size is bounded by the set as sent, not by the
    /// numbers, so `1:4294967295` costs one range.
    pub fn to_ranges(&self, largest: u32) -> Vec<(u32, u32)> {
        let mut ranges: Vec<(u32, u32)> = self
            .0
            .iter()
            .map(|r| match *r {
                SeqRange::Single(a) => {
                    let a = a.resolve(largest);
                    (a, a)
                }
                SeqRange::Range(a, b) => {
                    let (a, b) = (a.resolve(largest), b.resolve(largest));
                    (a.min(b), a.max(b))
                }
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }
}

// ---- flags ----

/// `flag`: a system flag, a keyword or a flag extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Flag {
    /// `\Answered`.
    Answered,
    /// `\Flagged`.
    Flagged,
    /// `\Deleted`.
    Deleted,
    /// `\Seen`.
    Seen,
    /// `\Draft`.
    Draft,
    /// `\Recent` (only in FETCH and FLAGS responses and in searches).
    Recent,
    /// A keyword (`flag-keyword`), such as `$Forwarded`.
    Keyword(Atom),
    /// Any other backslashed flag (`flag-extension`), without the
    /// backslash. Build it with [`Flag::backslashed`], which maps the system
    /// flags to their own variants.
    Extension(Atom),
}

impl Flag {
    /// The flag `\name` (name without the backslash), case-insensitive for
    /// the system flags.
    pub fn backslashed(name: Atom) -> Self {
        let s = name.as_str();
        if s.eq_ignore_ascii_case("Answered") {
            Flag::Answered
        } else if s.eq_ignore_ascii_case("Flagged") {
            Flag::Flagged
        } else if s.eq_ignore_ascii_case("Deleted") {
            Flag::Deleted
        } else if s.eq_ignore_ascii_case("Seen") {
            Flag::Seen
        } else if s.eq_ignore_ascii_case("Draft") {
            Flag::Draft
        } else if s.eq_ignore_ascii_case("Recent") {
            Flag::Recent
        } else {
            Flag::Extension(name)
        }
    }

    /// The flag as it is written on the wire.
    pub fn to_wire(&self) -> String {
        let (backslash, name) = self.wire_parts();
        [backslash, name].concat()
    }

    /// The flag as it is written on the wire, in two parts so that nothing
    /// is allocated: a backslash (an extension's) or nothing, and the rest.
    pub(crate) fn wire_parts(&self) -> (&'static str, &str) {
        match self {
            Flag::Answered => ("", "\\Answered"),
            Flag::Flagged => ("", "\\Flagged"),
            Flag::Deleted => ("", "\\Deleted"),
            Flag::Seen => ("", "\\Seen"),
            Flag::Draft => ("", "\\Draft"),
            Flag::Recent => ("", "\\Recent"),
            Flag::Keyword(atom) => ("", atom.as_str()),
            Flag::Extension(atom) => ("\\", atom.as_str()),
        }
    }
}

/// `flag-perm`: a flag in a PERMANENTFLAGS code, or `\*` (new keywords may
/// be created).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PermanentFlag {
    /// A flag that can be changed permanently.
    Flag(Flag),
    /// `\*`.
    AnyKeyword,
}

// ---- dates ----

/// `date`: a calendar day (SEARCH keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Date {
    /// A day that exists in the Gregorian calendar; years 1–9999.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, InvalidValue> {
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(InvalidValue("date")),
        };
        if (1..=9999).contains(&year) && (1..=days).contains(&day) {
            Ok(Date { year, month, day })
        } else {
            Err(InvalidValue("date"))
        }
    }

    /// The year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, 1–31.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// The month's three-letter name.
    pub(crate) fn month_name(&self) -> &'static str {
        MONTHS[usize::from(self.month - 1)]
    }

    /// The month number of a three-letter name, case-insensitive.
    pub(crate) fn month_from_name(name: &[u8]) -> Option<u8> {
        MONTHS
            .iter()
            .position(|m| m.as_bytes().eq_ignore_ascii_case(name))
            .map(|i| i as u8 + 1)
    }
}

/// `date-time`: INTERNALDATE values and the APPEND date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    date: Date,
    hour: u8,
    minute: u8,
    second: u8,
    /// Offset from UTC in minutes.
    zone: i16,
}

impl DateTime {
    /// A date-time; `zone` is the offset from UTC in minutes (at most
    /// ±99:59, the range of the `zone` syntax).
    pub fn new(
        date: Date,
        hour: u8,
        minute: u8,
        second: u8,
        zone: i16,
    ) -> Result<Self, InvalidValue> {
        if hour < 24 && minute < 60 && second < 61 && zone.abs() <= 99 * 60 + 59 {
            Ok(DateTime {
                date,
                hour,
                minute,
                second,
                zone,
            })
        } else {
            Err(InvalidValue("date-time"))
        }
    }

    /// The calendar day.
    pub fn date(&self) -> Date {
        self.date
    }

    /// Hour, minute and second.
    pub fn time(&self) -> (u8, u8, u8) {
        (self.hour, self.minute, self.second)
    }

    /// Offset from UTC in minutes.
    pub fn zone(&self) -> i16 {
        self.zone
    }

    /// Seconds since the Unix epoch.
    pub fn unix_timestamp(&self) -> i64 {
        let days = days_from_civil(
            i64::from(self.date.year),
            i64::from(self.date.month),
            i64::from(self.date.day),
        );
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.zone) * 60
    }

    /// The date-time of a Unix timestamp in UTC, for years 1–9999.
    pub fn from_unix_timestamp(secs: i64) -> Result<Self, InvalidValue> {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let year = u16::try_from(y).map_err(|_| InvalidValue("date-time"))?;
        let date = Date::new(year, m as u8, d as u8)?;
        DateTime::new(
            date,
            (rem / 3600) as u8,
            (rem % 3600 / 60) as u8,
            (rem % 60) as u8,
            0,
        )
    }
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

// ---- SEARCH and SORT ----

/// `search-key`: one criterion of SEARCH (RFC 3501 section 6.4.4), a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchKey {
    /// `ALL`.
    All,
    /// `ANSWERED`.
    Answered,
    /// `BCC string`.
    Bcc(AString),
    /// `BEFORE date` (internal date).
    Before(Date),
    /// `BODY string`.
    Body(AString),
    /// `CC string`.
    Cc(AString),
    /// `DELETED`.
    Deleted,
    /// `DRAFT`.
    Draft,
    /// `FLAGGED`.
    Flagged,
    /// `FROM string`.
    From(AString),
    /// `HEADER field-name string`.
    Header(AString, AString),
    /// `KEYWORD flag-keyword`.
    Keyword(Atom),
    /// `LARGER number`.
    Larger(u32),
    /// `NEW`.
    New,
    /// `NOT search-key`.
    Not(Box<SearchKey>),
    /// `OLD`.
    Old,
    /// `ON date`.
    On(Date),
    /// `OR search-key search-key`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `RECENT`.
    Recent,
    /// `SEEN`.
    Seen,
    /// `SENTBEFORE date`.
    SentBefore(Date),
    /// `SENTON date`.
    SentOn(Date),
    /// `SENTSINCE date`.
    SentSince(Date),
    /// `SINCE date`.
    Since(Date),
    /// `SMALLER number`.
    Smaller(u32),
    /// `SUBJECT string`.
    Subject(AString),
    /// `TEXT string`.
    Text(AString),
    /// `TO string`.
    To(AString),
    /// `UID sequence-set`.
    Uid(SequenceSet),
    /// `UNANSWERED`.
    Unanswered,
    /// `UNDELETED`.
    Undeleted,
    /// `UNDRAFT`.
    Undraft,
    /// `UNFLAGGED`.
    Unflagged,
    /// `UNKEYWORD flag-keyword`.
    Unkeyword(Atom),
    /// `UNSEEN`.
    Unseen,
    /// A bare `sequence-set` (message sequence numbers).
    SequenceSet(SequenceSet),
    /// `( search-key *(SP search-key) )`: all of them.
    And(Vec<SearchKey>),
}

/// `sort-key` of SORT (RFC 5256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SortKey {
    /// `ARRIVAL`: the internal date.
    Arrival,
    /// `CC`.
    Cc,
    /// `DATE`: the sent date.
    Date,
    /// `FROM`.
    From,
    /// `SIZE`.
    Size,
    /// `SUBJECT`: the base subject.
    Subject,
    /// `TO`.
    To,
}

/// `sort-criterion`: a key, maybe reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortCriterion {
    /// `REVERSE` was given.
    pub reverse: bool,
    /// The key.
    pub key: SortKey,
}

// ---- FETCH ----

/// `section-msgtext` / `section-text` of a `section`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SectionText {
    /// `HEADER`.
    Header,
    /// `HEADER.FIELDS (names)`.
    HeaderFields(Vec<AString>),
    /// `HEADER.FIELDS.NOT (names)`.
    HeaderFieldsNot(Vec<AString>),
    /// `TEXT`.
    Text,
    /// `MIME` (only after a part number).
    Mime,
}

/// `section`: what part of a message `BODY[...]` names. The empty section
/// `[]` is the whole message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Section {
    part: Vec<NonZeroU32>,
    text: Option<SectionText>,
}

impl Section {
    /// A section. `MIME` needs a part number, and the header-field lists
    /// need at least one name.
    pub fn new(part: Vec<NonZeroU32>, text: Option<SectionText>) -> Result<Self, InvalidValue> {
        let valid = match &text {
            Some(SectionText::Mime) => !part.is_empty(),
            Some(SectionText::HeaderFields(names) | SectionText::HeaderFieldsNot(names)) => {
                !names.is_empty()
            }
            _ => true,
        };
        if valid {
            Ok(Section { part, text })
        } else {
            Err(InvalidValue("section"))
        }
    }

    /// The part numbers (`section-part`), empty for the top level.
    pub fn part(&self) -> &[NonZeroU32] {
        &self.part
    }

    /// The text specifier.
    pub fn text(&self) -> Option<&SectionText> {
        self.text.as_ref()
    }
}

/// `<origin.length>` of a partial fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partial {
    /// First octet wanted.
    pub origin: u32,
    /// Octets wanted.
    pub length: NonZeroU32,
}

/// `fetch-att`: one data item of FETCH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FetchAttribute {
    /// `ENVELOPE`.
    Envelope,
    /// `FLAGS`.
    Flags,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822` (like `BODY[]`, sets `\Seen`).
    Rfc822,
    /// `RFC822.HEADER` (like `BODY.PEEK[HEADER]`).
    Rfc822Header,
    /// `RFC822.SIZE`.
    Rfc822Size,
    /// `RFC822.TEXT` (like `BODY[TEXT]`).
    Rfc822Text,
    /// `BODY`: the non-extensible BODYSTRUCTURE.
    Body,
    /// `BODYSTRUCTURE`.
    BodyStructure,
    /// `UID`.
    Uid,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`.
    BodySection {
        /// `BODY.PEEK`: do not set `\Seen`.
        peek: bool,
        /// The section.
        section: Section,
        /// `<origin.length>`.
        partial: Option<Partial>,
    },
    /// `BINARY[part]<partial>` or `BINARY.PEEK` (RFC 3516).
    Binary {
        /// `BINARY.PEEK`.
        peek: bool,
        /// The part numbers.
        part: Vec<NonZeroU32>,
        /// `<origin.length>`.
        partial: Option<Partial>,
    },
    /// `BINARY.SIZE[part]` (RFC 3516).
    BinarySize {
        /// The part numbers.
        part: Vec<NonZeroU32>,
    },
}

/// The macros of FETCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchMacro {
    /// `ALL`: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE.
    All,
    /// `FAST`: FLAGS INTERNALDATE RFC822.SIZE.
    Fast,
    /// `FULL`: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY.
    Full,
}

impl FetchMacro {
    /// The attributes the macro stands for.
    pub fn expand(self) -> Vec<FetchAttribute> {
        use FetchAttribute::*;
        match self {
            FetchMacro::All => vec![Flags, InternalDate, Rfc822Size, Envelope],
            FetchMacro::Fast => vec![Flags, InternalDate, Rfc822Size],
            FetchMacro::Full => vec![Flags, InternalDate, Rfc822Size, Envelope, Body],
        }
    }
}

/// What FETCH asks for: a macro or a list of attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItems {
    /// `ALL`, `FAST` or `FULL`.
    Macro(FetchMacro),
    /// One attribute, or a parenthesised list (`single` says which form was
    /// used; both mean the same).
    Attributes {
        /// The attributes, at least one.
        attributes: Vec<FetchAttribute>,
        /// Written without parentheses (only possible for one).
        single: bool,
    },
}

impl FetchItems {
    /// The attributes asked for, macros expanded.
    pub fn attributes(&self) -> Vec<FetchAttribute> {
        match self {
            FetchItems::Macro(m) => m.expand(),
            FetchItems::Attributes { attributes, .. } => attributes.clone(),
        }
    }
}

// ---- STORE, STATUS ----

/// How STORE changes the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreMode {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// `store-att-flags`: the change STORE asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAction {
    /// Replace, add or remove.
    pub mode: StoreMode,
    /// `.SILENT`: no untagged FETCH in answer.
    pub silent: bool,
    /// The flags.
    pub flags: Vec<Flag>,
    /// Written as a parenthesised list (both forms mean the same).
    pub list: bool,
}

/// `status-att`: an item of STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusItem {
    /// `MESSAGES`.
    Messages,
    /// `RECENT`.
    Recent,
    /// `UIDNEXT`.
    UidNext,
    /// `UIDVALIDITY`.
    UidValidity,
    /// `UNSEEN`.
    Unseen,
}

impl StatusItem {
    /// The item's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::Recent => "RECENT",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn tags_and_atoms_refuse_specials() {
        assert!(Tag::new("a001").is_ok());
        assert!(Tag::new("a+1").is_err());
        assert!(Tag::new("").is_err());
        assert!(Tag::new("a b").is_err());
        assert!(Atom::new("FOO]").is_err());
        assert!(Atom::new("$Forwarded").is_ok());
        assert!(AString::new(b"a\0b".to_vec()).is_err());
    }

    #[test]
    fn inbox_is_case_folded_and_nothing_else() {
        assert!(Mailbox::try_from("iNbOx").unwrap().is_inbox());
        assert_eq!(
            Mailbox::try_from("inbox/sub").unwrap().as_bytes(),
            b"inbox/sub"
        );
    }

    #[test]
    fn sequence_sets_resolve_star_and_merge() {
        let set = SequenceSet::new(vec![
            SeqRange::Range(SeqNumber::Largest, SeqNumber::Value(nz(5))),
            SeqRange::Single(SeqNumber::Value(nz(2))),
            SeqRange::Single(SeqNumber::Value(nz(3))),
        ])
        .unwrap();
        assert_eq!(set.to_ranges(9), vec![(2, 3), (5, 9)]);
        assert!(set.contains(7, 9));
        assert!(!set.contains(4, 9));
        assert!(SequenceSet::new(vec![]).is_err());
    }

    #[test]
    fn dates_are_checked() {
        assert!(Date::new(2024, 2, 29).is_ok());
        assert!(Date::new(2023, 2, 29).is_err());
        assert!(Date::new(2023, 13, 1).is_err());
        let d = Date::new(1996, 7, 17).unwrap();
        let dt = DateTime::new(d, 2, 44, 25, -7 * 60).unwrap();
        assert_eq!(dt.unix_timestamp(), 837_596_665);
        let back = DateTime::from_unix_timestamp(837_596_665).unwrap();
        assert_eq!(back.unix_timestamp(), 837_596_665);
        assert_eq!(back.time(), (9, 44, 25));
    }

    #[test]
    fn system_flags_never_become_extensions() {
        assert_eq!(Flag::backslashed(Atom::new("sEEN").unwrap()), Flag::Seen);
        assert_eq!(
            Flag::backslashed(Atom::new("Junk").unwrap()),
            Flag::Extension(Atom::new("Junk").unwrap())
        );
        assert!(Section::new(vec![], Some(SectionText::Mime)).is_err());
        assert!(Section::new(vec![nz(1)], Some(SectionText::Mime)).is_ok());
    }
}
