//! Server responses (RFC 3501 section 7 and the extensions' data), their
//! encoder, and a parser of what the encoder writes: `parse(encode(r)) ==
//! r` for every response, which is how the encoder's choices (atom, quoted
//! string, literal, `NIL`) are tested.

use std::num::NonZeroU32;

use bytes::Bytes;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take, take_while, take_while1};
use nom::combinator::{all_consuming, map, map_opt, opt, value};
use nom::multi::{separated_list0, separated_list1};
use nom::sequence::{delimited, preceded, separated_pair, terminated};

use crate::encode;
use crate::parse::{
    self, R, astring, atom, crlf, date_time, flag_perm, imap_tag, literal, mailbox, nil, nstring,
    number, number64, nz_number, sequence_set, sp, string,
};
use crate::types::{
    self, AString, Atom, DateTime, Flag, InvalidValue, Mailbox, PermanentFlag, Section,
    SequenceSet, StatusItem, Tag,
};

/// `text`: human-readable text, one or more `TEXT-CHAR` (UTF-8 allowed, no
/// CR or LF) and not starting with `[`, which would read as a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    /// Checks the text.
    pub fn new(text: impl Into<String>) -> Result<Self, InvalidValue> {
        let text = text.into();
        let valid = !text.is_empty()
            && !text.starts_with('[')
            && text.bytes().all(|b| b != 0 && b != b'\r' && b != b'\n');
        if valid {
            Ok(Text(text))
        } else {
            Err(InvalidValue("text"))
        }
    }

    /// The text with CR, LF and NUL replaced by spaces, a leading `[`
    /// escaped, and an empty text made a dot: any string becomes valid.
    pub fn lossy(text: &str) -> Self {
        let mut t: String = text
            .chars()
            .map(|c| {
                if matches!(c, '\r' | '\n' | '\0') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        if t.starts_with('[') {
            t.insert(0, ' ');
        }
        if t.is_empty() {
            t.push('.');
        }
        Text(t)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kind of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// `OK`.
    Ok,
    /// `NO`: the command failed.
    No,
    /// `BAD`: the command was not understood.
    Bad,
    /// `PREAUTH` (greeting only, untagged).
    PreAuth,
    /// `BYE` (untagged): the server closes the connection.
    Bye,
}

impl StatusKind {
    fn as_str(self) -> &'static str {
        match self {
            StatusKind::Ok => "OK",
            StatusKind::No => "NO",
            StatusKind::Bad => "BAD",
            StatusKind::PreAuth => "PREAUTH",
            StatusKind::Bye => "BYE",
        }
    }
}

macro_rules! simple_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// `resp-text-code`: the machine-readable part of a status response.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $variant,)*
            /// `BADCHARSET (charsets)`.
            BadCharset(Vec<Atom>),
            /// `CAPABILITY ...`.
            Capability(Vec<Atom>),
            /// `PERMANENTFLAGS (...)`.
            PermanentFlags(Vec<PermanentFlag>),
            /// `UIDNEXT n`.
            UidNext(NonZeroU32),
            /// `UIDVALIDITY n`.
            UidValidity(NonZeroU32),
            /// `UNSEEN n`: the first unseen message.
            Unseen(NonZeroU32),
            /// `APPENDUID uidvalidity uids` (RFC 4315).
            AppendUid {
                /// The target mailbox's UIDVALIDITY.
                uid_validity: NonZeroU32,
                /// The UIDs given to the appended messages.
                uids: SequenceSet,
            },
            /// `COPYUID uidvalidity source destination` (RFC 4315).
            CopyUid {
                /// The target mailbox's UIDVALIDITY.
                uid_validity: NonZeroU32,
                /// The source UIDs.
                source: SequenceSet,
                /// The new UIDs, in the same order.
                destination: SequenceSet,
            },
            /// Any other code: `atom [SP text]` (the text without `]`).
            Other(Atom, Option<String>),
        }

        fn simple_code_name(code: &Code) -> Option<&'static str> {
            match code {
                $(Code::$variant => Some($name),)*
                _ => None,
            }
        }

        fn simple_code(name: &str) -> Option<Code> {
            $(if name.eq_ignore_ascii_case($name) {
                return Some(Code::$variant);
            })*
            None
        }
    };
}

simple_codes! {
    /// `ALERT`: show the text to the user.
    Alert = "ALERT",
    /// `PARSE`: a message could not be parsed.
    Parse = "PARSE",
    /// `READ-ONLY`.
    ReadOnly = "READ-ONLY",
    /// `READ-WRITE`.
    ReadWrite = "READ-WRITE",
    /// `TRYCREATE`: the target mailbox does not exist and can be created.
    TryCreate = "TRYCREATE",
    /// `UIDNOTSTICKY` (RFC 4315).
    UidNotSticky = "UIDNOTSTICKY",
    /// `CLOSED`: the selected mailbox was closed (RFC 7162).
    Closed = "CLOSED",
    /// `TOOBIG` (RFC 4469): the message is too big.
    TooBig = "TOOBIG",
    /// `UNAVAILABLE` (RFC 5530).
    Unavailable = "UNAVAILABLE",
    /// `AUTHENTICATIONFAILED` (RFC 5530).
    AuthenticationFailed = "AUTHENTICATIONFAILED",
    /// `AUTHORIZATIONFAILED` (RFC 5530).
    AuthorizationFailed = "AUTHORIZATIONFAILED",
    /// `EXPIRED` (RFC 5530).
    Expired = "EXPIRED",
    /// `PRIVACYREQUIRED` (RFC 5530): needs TLS.
    PrivacyRequired = "PRIVACYREQUIRED",
    /// `CONTACTADMIN` (RFC 5530).
    ContactAdmin = "CONTACTADMIN",
    /// `NOPERM` (RFC 5530).
    NoPerm = "NOPERM",
    /// `INUSE` (RFC 5530).
    InUse = "INUSE",
    /// `EXPUNGEISSUED` (RFC 5530).
    ExpungeIssued = "EXPUNGEISSUED",
    /// `CORRUPTION` (RFC 5530).
    Corruption = "CORRUPTION",
    /// `SERVERBUG` (RFC 5530).
    ServerBug = "SERVERBUG",
    /// `CLIENTBUG` (RFC 5530).
    ClientBug = "CLIENTBUG",
    /// `CANNOT` (RFC 5530).
    Cannot = "CANNOT",
    /// `LIMIT` (RFC 5530).
    Limit = "LIMIT",
    /// `OVERQUOTA` (RFC 5530, RFC 9208).
    OverQuota = "OVERQUOTA",
    /// `ALREADYEXISTS` (RFC 5530).
    AlreadyExists = "ALREADYEXISTS",
    /// `NONEXISTENT` (RFC 5530).
    NonExistent = "NONEXISTENT",
}

/// A status response without its tag: kind, optional code, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// OK, NO, BAD, PREAUTH or BYE.
    pub kind: StatusKind,
    /// The response code.
    pub code: Option<Code>,
    /// The text.
    pub text: Text,
}

impl Status {
    /// A status with a text that is made valid ([`Text::lossy`]).
    pub fn new(kind: StatusKind, code: Option<Code>, text: &str) -> Self {
        Status {
            kind,
            code,
            text: Text::lossy(text),
        }
    }

    /// `OK text`.
    pub fn ok(text: &str) -> Self {
        Status::new(StatusKind::Ok, None, text)
    }

    /// `NO text`.
    pub fn no(text: &str) -> Self {
        Status::new(StatusKind::No, None, text)
    }

    /// `BAD text`.
    pub fn bad(text: &str) -> Self {
        Status::new(StatusKind::Bad, None, text)
    }

    /// The same status with a code.
    pub fn with_code(mut self, code: Code) -> Self {
        self.code = Some(code);
        self
    }
}

/// A `mbx-list-flags` attribute of LIST/LSUB (RFC 3501, RFC 3348
/// CHILDREN, RFC 6154 SPECIAL-USE, RFC 5258).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MailboxAttribute {
    /// `\Noinferiors`.
    NoInferiors,
    /// `\Noselect`.
    NoSelect,
    /// `\Marked`.
    Marked,
    /// `\Unmarked`.
    Unmarked,
    /// `\HasChildren`.
    HasChildren,
    /// `\HasNoChildren`.
    HasNoChildren,
    /// `\NonExistent`.
    NonExistent,
    /// `\Subscribed`.
    Subscribed,
    /// `\All` (special use).
    All,
    /// `\Archive`.
    Archive,
    /// `\Drafts`.
    Drafts,
    /// `\Flagged`.
    Flagged,
    /// `\Junk`.
    Junk,
    /// `\Sent`.
    Sent,
    /// `\Trash`.
    Trash,
    /// Any other `\name`, without the backslash; build it with
    /// [`MailboxAttribute::from_name`].
    Other(Atom),
}

const ATTRIBUTES: &[(&str, MailboxAttribute)] = &[
    ("Noinferiors", MailboxAttribute::NoInferiors),
    ("Noselect", MailboxAttribute::NoSelect),
    ("Marked", MailboxAttribute::Marked),
    ("Unmarked", MailboxAttribute::Unmarked),
    ("HasChildren", MailboxAttribute::HasChildren),
    ("HasNoChildren", MailboxAttribute::HasNoChildren),
    ("NonExistent", MailboxAttribute::NonExistent),
    ("Subscribed", MailboxAttribute::Subscribed),
    ("All", MailboxAttribute::All),
    ("Archive", MailboxAttribute::Archive),
    ("Drafts", MailboxAttribute::Drafts),
    ("Flagged", MailboxAttribute::Flagged),
    ("Junk", MailboxAttribute::Junk),
    ("Sent", MailboxAttribute::Sent),
    ("Trash", MailboxAttribute::Trash),
];

impl MailboxAttribute {
    /// The attribute `\name`, case-insensitive for the known ones.
    pub fn from_name(name: Atom) -> Self {
        ATTRIBUTES
            .iter()
            .find(|(n, _)| name.eq_ignore_case(n))
            .map(|(_, a)| a.clone())
            .unwrap_or(MailboxAttribute::Other(name))
    }

    fn name(&self) -> &str {
        match self {
            MailboxAttribute::Other(a) => a.as_str(),
            known => ATTRIBUTES
                .iter()
                .find(|(_, a)| a == known)
                .map(|(n, _)| *n)
                .unwrap_or("Noselect"),
        }
    }
}

/// One namespace of a NAMESPACE response: prefix and delimiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDescription {
    /// The prefix, such as `""` or `"Public/"`.
    pub prefix: AString,
    /// The hierarchy delimiter.
    pub delimiter: Option<Delimiter>,
}

/// A hierarchy delimiter: one 7-bit character other than CR, LF and NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiter(u8);

impl Delimiter {
    /// Checks the delimiter (`QUOTED-CHAR`).
    pub fn new(c: u8) -> Result<Self, InvalidValue> {
        if types::is_text_char(c) {
            Ok(Delimiter(c))
        } else {
            Err(InvalidValue("delimiter"))
        }
    }

    /// The character.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// One resource of a QUOTA response (RFC 9208).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaResource {
    /// `STORAGE` (KiB), `MESSAGE`, ...
    pub name: Atom,
    /// Current usage.
    pub usage: u64,
    /// The limit.
    pub limit: u64,
}

/// A value the host renders itself: one parenthesised list as it goes on
/// the wire (ENVELOPE, BODY, BODYSTRUCTURE from the mime crate). Checked to
/// be one balanced list of well-formed strings and literals, so it cannot
/// break the framing of the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered(Bytes);

impl Rendered {
    /// Checks the rendering.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, InvalidValue> {
        let bytes = bytes.into();
        let valid = all_consuming(paren_value).parse(&bytes).is_ok();
        if valid {
            Ok(Rendered(bytes))
        } else {
            Err(InvalidValue("rendered value"))
        }
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `msg-att`: one item of a FETCH response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchItem {
    /// `FLAGS (...)`.
    Flags(Vec<Flag>),
    /// `INTERNALDATE "..."`.
    InternalDate(DateTime),
    /// `RFC822.SIZE n`.
    Rfc822Size(u32),
    /// `UID n`.
    Uid(NonZeroU32),
    /// `ENVELOPE (...)`, rendered by the host.
    Envelope(Rendered),
    /// `BODYSTRUCTURE (...)`, rendered by the host.
    BodyStructure(Rendered),
    /// `BODY (...)`, rendered by the host.
    Body(Rendered),
    /// `BODY[section]<origin> nstring`. NUL octets in the data are sent as
    /// 0x80, which IMAP strings can carry (use BINARY for exact octets).
    BodySection {
        /// The section.
        section: Section,
        /// The origin of a partial fetch.
        origin: Option<u32>,
        /// The octets, or `NIL`.
        data: Option<Bytes>,
    },
    /// `BINARY[part]<origin> (nstring / literal8)` (RFC 3516).
    Binary {
        /// The part numbers.
        part: Vec<NonZeroU32>,
        /// The origin of a partial fetch.
        origin: Option<u32>,
        /// The decoded octets, or `NIL`.
        data: Option<Bytes>,
    },
    /// `BINARY.SIZE[part] n` (RFC 3516).
    BinarySize {
        /// The part numbers.
        part: Vec<NonZeroU32>,
        /// The decoded size.
        size: u32,
    },
    /// `RFC822 nstring`.
    Rfc822(Option<Bytes>),
    /// `RFC822.HEADER nstring`.
    Rfc822Header(Option<Bytes>),
    /// `RFC822.TEXT nstring`.
    Rfc822Text(Option<Bytes>),
}

/// Untagged data (`response-data` other than status responses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Data {
    /// `CAPABILITY ...`.
    Capability(Vec<Atom>),
    /// `LIST (attributes) delimiter mailbox`.
    List {
        /// Attributes.
        attributes: Vec<MailboxAttribute>,
        /// Hierarchy delimiter, `NIL` for none.
        delimiter: Option<Delimiter>,
        /// The name.
        mailbox: Mailbox,
    },
    /// `LSUB (attributes) delimiter mailbox`.
    Lsub {
        /// Attributes.
        attributes: Vec<MailboxAttribute>,
        /// Hierarchy delimiter.
        delimiter: Option<Delimiter>,
        /// The name.
        mailbox: Mailbox,
    },
    /// `STATUS mailbox (item value ...)`.
    Status {
        /// The mailbox.
        mailbox: Mailbox,
        /// Items and values.
        items: Vec<(StatusItem, u64)>,
    },
    /// `SEARCH n...`.
    Search(Vec<NonZeroU32>),
    /// `SORT n...` (RFC 5256).
    Sort(Vec<NonZeroU32>),
    /// `FLAGS (...)`.
    Flags(Vec<Flag>),
    /// `n EXISTS`.
    Exists(u32),
    /// `n RECENT`.
    Recent(u32),
    /// `n EXPUNGE`.
    Expunge(NonZeroU32),
    /// `n FETCH (...)`.
    Fetch {
        /// The message sequence number.
        seq: NonZeroU32,
        /// The items, at least one.
        items: Vec<FetchItem>,
    },
    /// `NAMESPACE personal other shared` (RFC 2342).
    Namespace {
        /// Personal namespaces, `NIL` for none.
        personal: Option<Vec<NamespaceDescription>>,
        /// Other users' namespaces.
        other: Option<Vec<NamespaceDescription>>,
        /// Shared namespaces.
        shared: Option<Vec<NamespaceDescription>>,
    },
    /// `QUOTA root (resource usage limit ...)` (RFC 9208).
    Quota {
        /// The quota root.
        root: AString,
        /// Resources.
        resources: Vec<QuotaResource>,
    },
    /// `QUOTAROOT mailbox root...` (RFC 9208).
    QuotaRoot {
        /// The mailbox.
        mailbox: Mailbox,
        /// Its quota roots.
        roots: Vec<AString>,
    },
    /// `ID (...)` or `ID NIL` (RFC 2971).
    Id(crate::types::IdParams),
    /// `ENABLED cap...` (RFC 5161).
    Enabled(Vec<Atom>),
}

/// `continue-req`: `+ text` or `+ base64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continue {
    /// Text for a literal or IDLE.
    Text(Text),
    /// A SASL challenge, base64 (may be empty).
    Base64(String),
}

/// A server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A tagged status: the end of a command.
    Tagged(Tag, Status),
    /// An untagged status (`* OK`, `* BYE`, `* PREAUTH`, ...).
    Untagged(Status),
    /// Untagged data.
    Data(Data),
    /// A continuation request.
    Continue(Continue),
}

// ---- encoder ----

fn atoms(out: &mut Vec<u8>, atoms: &[Atom]) {
    for a in atoms {
        out.push(b' ');
        out.extend_from_slice(a.as_str().as_bytes());
    }
}

fn numbers(out: &mut Vec<u8>, numbers: &[NonZeroU32]) {
    for n in numbers {
        out.push(b' ');
        encode::number(out, n.get().into());
    }
}

fn code(out: &mut Vec<u8>, c: &Code) {
    out.push(b'[');
    if let Some(name) = simple_code_name(c) {
        out.extend_from_slice(name.as_bytes());
    }
    match c {
        Code::BadCharset(charsets) => {
            out.extend_from_slice(b"BADCHARSET");
            if !charsets.is_empty() {
                out.extend_from_slice(b" (");
                for (i, cs) in charsets.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(cs.as_str().as_bytes());
                }
                out.push(b')');
            }
        }
        Code::Capability(caps) => {
            out.extend_from_slice(b"CAPABILITY");
            atoms(out, caps);
        }
        Code::PermanentFlags(flags) => {
            out.extend_from_slice(b"PERMANENTFLAGS (");
            for (i, f) in flags.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                encode::flag_perm(out, f);
            }
            out.push(b')');
        }
        Code::UidNext(n) => put!(out, "UIDNEXT {n}"),
        Code::UidValidity(n) => put!(out, "UIDVALIDITY {n}"),
        Code::Unseen(n) => put!(out, "UNSEEN {n}"),
        Code::AppendUid { uid_validity, uids } => {
            put!(out, "APPENDUID {uid_validity} ");
            encode::sequence_set(out, uids);
        }
        Code::CopyUid {
            uid_validity,
            source,
            destination,
        } => {
            put!(out, "COPYUID {uid_validity} ");
            encode::sequence_set(out, source);
            out.push(b' ');
            encode::sequence_set(out, destination);
        }
        Code::Other(name, text) => {
            out.extend_from_slice(name.as_str().as_bytes());
            if let Some(t) = text {
                // `]`, CR and LF would end the code or the line.
                out.push(b' ');
                out.extend(t.bytes().map(|b| match b {
                    b']' | b'\r' | b'\n' | 0 => b' ',
                    b => b,
                }));
            }
        }
        _ => {}
    }
    out.push(b']');
}

fn status(out: &mut Vec<u8>, s: &Status) {
    out.extend_from_slice(s.kind.as_str().as_bytes());
    out.push(b' ');
    if let Some(c) = &s.code {
        code(out, c);
        out.push(b' ');
    }
    out.extend_from_slice(s.text.as_str().as_bytes());
}

fn list(
    out: &mut Vec<u8>,
    name: &str,
    attrs: &[MailboxAttribute],
    d: Option<Delimiter>,
    m: &Mailbox,
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" (");
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.push(b'\\');
        out.extend_from_slice(a.name().as_bytes());
    }
    out.extend_from_slice(b") ");
    delimiter(out, d);
    out.push(b' ');
    encode::astring(out, m.as_astring());
}

fn delimiter(out: &mut Vec<u8>, d: Option<Delimiter>) {
    match d {
        Some(d) => encode::string(out, &[d.get()]),
        None => out.extend_from_slice(b"NIL"),
    }
}

fn namespaces(out: &mut Vec<u8>, ns: &Option<Vec<NamespaceDescription>>) {
    match ns {
        None => out.extend_from_slice(b"NIL"),
        Some(list) => {
            out.push(b'(');
            for n in list {
                out.push(b'(');
                encode::string(out, n.prefix.as_bytes());
                out.push(b' ');
                delimiter(out, n.delimiter);
                out.push(b')');
            }
            out.push(b')');
        }
    }
}

/// Body data: `NIL` or a string, NUL octets sent as 0x80.
fn body_data(out: &mut Vec<u8>, data: &Option<Bytes>) {
    match data {
        None => out.extend_from_slice(b"NIL"),
        Some(d) if d.contains(&0) => {
            let clean: Vec<u8> = d.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect();
            encode::string(out, &clean);
        }
        Some(d) => encode::string(out, d),
    }
}

fn fetch_item(out: &mut Vec<u8>, item: &FetchItem) {
    let origin = |out: &mut Vec<u8>, o: &Option<u32>| {
        if let Some(o) = o {
            put!(out, "<{o}>");
        }
    };
    match item {
        FetchItem::Flags(flags) => {
            out.extend_from_slice(b"FLAGS ");
            encode::flag_list(out, flags);
        }
        FetchItem::InternalDate(d) => {
            out.extend_from_slice(b"INTERNALDATE ");
            encode::date_time(out, d);
        }
        FetchItem::Rfc822Size(n) => {
            out.extend_from_slice(b"RFC822.SIZE ");
            encode::number(out, (*n).into());
        }
        FetchItem::Uid(n) => {
            out.extend_from_slice(b"UID ");
            encode::number(out, n.get().into());
        }
        FetchItem::Envelope(r) => {
            out.extend_from_slice(b"ENVELOPE ");
            out.extend_from_slice(r.as_bytes());
        }
        FetchItem::BodyStructure(r) => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            out.extend_from_slice(r.as_bytes());
        }
        FetchItem::Body(r) => {
            out.extend_from_slice(b"BODY ");
            out.extend_from_slice(r.as_bytes());
        }
        FetchItem::BodySection {
            section,
            origin: o,
            data,
        } => {
            out.extend_from_slice(b"BODY");
            encode::section(out, section);
            origin(out, o);
            out.push(b' ');
            body_data(out, data);
        }
        FetchItem::Binary {
            part,
            origin: o,
            data,
        } => {
            out.extend_from_slice(b"BINARY");
            encode::section_binary(out, part);
            origin(out, o);
            out.push(b' ');
            match data {
                Some(d) if d.contains(&0) => {
                    put!(out, "~{{{}}}\r\n", d.len());
                    out.extend_from_slice(d);
                }
                _ => body_data(out, data),
            }
        }
        FetchItem::BinarySize { part, size } => {
            out.extend_from_slice(b"BINARY.SIZE");
            encode::section_binary(out, part);
            put!(out, " {size}");
        }
        FetchItem::Rfc822(d) => {
            out.extend_from_slice(b"RFC822 ");
            body_data(out, d);
        }
        FetchItem::Rfc822Header(d) => {
            out.extend_from_slice(b"RFC822.HEADER ");
            body_data(out, d);
        }
        FetchItem::Rfc822Text(d) => {
            out.extend_from_slice(b"RFC822.TEXT ");
            body_data(out, d);
        }
    }
}

fn data(out: &mut Vec<u8>, d: &Data) {
    match d {
        Data::Capability(caps) => {
            out.extend_from_slice(b"CAPABILITY");
            atoms(out, caps);
        }
        Data::List {
            attributes,
            delimiter,
            mailbox,
        } => list(out, "LIST", attributes, *delimiter, mailbox),
        Data::Lsub {
            attributes,
            delimiter,
            mailbox,
        } => list(out, "LSUB", attributes, *delimiter, mailbox),
        Data::Status { mailbox, items } => {
            out.extend_from_slice(b"STATUS ");
            encode::astring(out, mailbox.as_astring());
            out.extend_from_slice(b" (");
            for (i, (item, n)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                put!(out, "{} {n}", item.as_str());
            }
            out.push(b')');
        }
        Data::Search(n) => {
            out.extend_from_slice(b"SEARCH");
            numbers(out, n);
        }
        Data::Sort(n) => {
            out.extend_from_slice(b"SORT");
            numbers(out, n);
        }
        Data::Flags(flags) => {
            out.extend_from_slice(b"FLAGS ");
            encode::flag_list(out, flags);
        }
        Data::Exists(n) => {
            encode::number(out, (*n).into());
            out.extend_from_slice(b" EXISTS");
        }
        Data::Recent(n) => {
            encode::number(out, (*n).into());
            out.extend_from_slice(b" RECENT");
        }
        Data::Expunge(n) => {
            encode::number(out, n.get().into());
            out.extend_from_slice(b" EXPUNGE");
        }
        Data::Fetch { seq, items } => {
            encode::number(out, seq.get().into());
            out.extend_from_slice(b" FETCH (");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                fetch_item(out, item);
            }
            out.push(b')');
        }
        Data::Namespace {
            personal,
            other,
            shared,
        } => {
            out.extend_from_slice(b"NAMESPACE ");
            namespaces(out, personal);
            out.push(b' ');
            namespaces(out, other);
            out.push(b' ');
            namespaces(out, shared);
        }
        Data::Quota { root, resources } => {
            out.extend_from_slice(b"QUOTA ");
            encode::astring(out, root);
            out.extend_from_slice(b" (");
            for (i, r) in resources.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                put!(out, "{} {} {}", r.name, r.usage, r.limit);
            }
            out.push(b')');
        }
        Data::QuotaRoot { mailbox, roots } => {
            out.extend_from_slice(b"QUOTAROOT ");
            encode::astring(out, mailbox.as_astring());
            for r in roots {
                out.push(b' ');
                encode::astring(out, r);
            }
        }
        Data::Id(params) => {
            out.extend_from_slice(b"ID ");
            match params {
                None => out.extend_from_slice(b"NIL"),
                Some(params) => {
                    out.push(b'(');
                    for (i, (k, v)) in params.iter().enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        encode::string(out, k.as_bytes());
                        out.push(b' ');
                        encode::nstring(out, v.as_ref().map(AString::as_bytes));
                    }
                    out.push(b')');
                }
            }
        }
        Data::Enabled(caps) => {
            out.extend_from_slice(b"ENABLED");
            atoms(out, caps);
        }
    }
}

impl Response {
    /// Writes the response, CRLF included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Response::Tagged(t, s) => {
                out.extend_from_slice(t.as_str().as_bytes());
                out.push(b' ');
                status(out, s);
            }
            Response::Untagged(s) => {
                out.extend_from_slice(b"* ");
                status(out, s);
            }
            Response::Data(d) => {
                out.extend_from_slice(b"* ");
                data(out, d);
            }
            Response::Continue(Continue::Text(t)) => {
                out.extend_from_slice(b"+ ");
                out.extend_from_slice(t.as_str().as_bytes());
            }
            Response::Continue(Continue::Base64(b)) => {
                out.extend_from_slice(b"+ ");
                out.extend_from_slice(b.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Parses one complete response as [`encode`](Self::encode) writes it
    /// (a client-side reader for tests; it accepts exactly that grammar).
    pub fn parse(input: &[u8]) -> Option<Response> {
        all_consuming(terminated(response, crlf))
            .parse(input)
            .ok()
            .map(|(_, r)| r)
    }
}

// ---- parser ----

/// How deep the lists of a [`Rendered`] value may nest. The mime crate stops
/// at 100 nested parts, and its BODYSTRUCTURE of a message that deep is a
/// list or two deeper (Dovecot's is too); the parser is a loop, so the cap
/// only bounds what a host may send.
const MAX_RENDERED_DEPTH: usize = 256;

/// A balanced parenthesised value: lists, strings, literals and atoms, at
/// most [`MAX_RENDERED_DEPTH`] lists deep.
pub(crate) fn paren_value(i: &[u8]) -> R<'_, &[u8]> {
    let start = i;
    let mut rest = i;
    let mut depth = 0usize;
    loop {
        match rest.first() {
            Some(b'(') => {
                depth += 1;
                if depth > MAX_RENDERED_DEPTH {
                    return Err(nom::Err::Error(nom::error::Error::new(
                        rest,
                        nom::error::ErrorKind::TooLarge,
                    )));
                }
                rest = &rest[1..];
            }
            Some(b')') if depth > 0 => {
                depth -= 1;
                rest = &rest[1..];
                if depth == 0 {
                    let used = start.len() - rest.len();
                    return Ok((rest, &start[..used]));
                }
            }
            Some(b'"') if depth > 0 => rest = parse::quoted(rest)?.0,
            Some(b'{') if depth > 0 => rest = literal(rest)?.0,
            Some(&b) if depth > 0 && b != b'\r' && b != b'\n' && b != 0 && b != b')' => {
                rest = &rest[1..];
            }
            _ => {
                return Err(nom::Err::Error(nom::error::Error::new(
                    rest,
                    nom::error::ErrorKind::Char,
                )));
            }
        }
    }
}

fn text(i: &[u8]) -> R<'_, Text> {
    map_opt(
        take_while1(|b: u8| b != b'\r' && b != b'\n'),
        |t: &[u8]| Text::new(std::str::from_utf8(t).ok()?).ok(),
    )
    .parse(i)
}

fn code_p(i: &[u8]) -> R<'_, Code> {
    let (rest, name) = take_while1(|b: u8| types::is_atom_char(b) && b != b']').parse(i)?;
    let upper = name.to_ascii_uppercase();
    let nzn = |i| preceded(sp, nz_number).parse(i);
    match upper.as_slice() {
        b"BADCHARSET" => map(
            opt(preceded(
                sp,
                delimited(tag(&b"("[..]), separated_list1(sp, atom), tag(&b")"[..])),
            )),
            |c| Code::BadCharset(c.unwrap_or_default()),
        )
        .parse(rest),
        b"CAPABILITY" => map(nom::multi::many1(preceded(sp, atom)), Code::Capability).parse(rest),
        b"PERMANENTFLAGS" => map(
            preceded(
                sp,
                delimited(
                    tag(&b"("[..]),
                    separated_list0(sp, flag_perm),
                    tag(&b")"[..]),
                ),
            ),
            Code::PermanentFlags,
        )
        .parse(rest),
        b"UIDNEXT" => map(nzn, Code::UidNext).parse(rest),
        b"UIDVALIDITY" => map(nzn, Code::UidValidity).parse(rest),
        b"UNSEEN" => map(nzn, Code::Unseen).parse(rest),
        b"APPENDUID" => map((nzn, preceded(sp, sequence_set)), |(uid_validity, uids)| {
            Code::AppendUid { uid_validity, uids }
        })
        .parse(rest),
        b"COPYUID" => map(
            (nzn, preceded(sp, sequence_set), preceded(sp, sequence_set)),
            |(uid_validity, source, destination)| Code::CopyUid {
                uid_validity,
                source,
                destination,
            },
        )
        .parse(rest),
        _ => {
            let name = std::str::from_utf8(name).unwrap_or_default();
            if let Some(c) = simple_code(name) {
                return Ok((rest, c));
            }
            let atom = Atom::new(name).map_err(|_| {
                nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify))
            })?;
            map(
                opt(preceded(
                    sp,
                    take_while1(|b: u8| b != b']' && b != b'\r' && b != b'\n'),
                )),
                move |t: Option<&[u8]>| {
                    Code::Other(
                        atom.clone(),
                        t.map(|t| String::from_utf8_lossy(t).into_owned()),
                    )
                },
            )
            .parse(rest)
        }
    }
}

fn status_p(i: &[u8]) -> R<'_, Status> {
    let kind = alt((
        value(StatusKind::Ok, tag_no_case(&b"OK"[..])),
        value(StatusKind::No, tag_no_case(&b"NO"[..])),
        value(StatusKind::Bad, tag_no_case(&b"BAD"[..])),
        value(StatusKind::PreAuth, tag_no_case(&b"PREAUTH"[..])),
        value(StatusKind::Bye, tag_no_case(&b"BYE"[..])),
    ));
    map(
        (
            kind,
            sp,
            opt(terminated(
                delimited(tag(&b"["[..]), code_p, tag(&b"]"[..])),
                sp,
            )),
            text,
        ),
        |(kind, _, code, text)| Status { kind, code, text },
    )
    .parse(i)
}

fn delimiter_p(i: &[u8]) -> R<'_, Option<Delimiter>> {
    alt((
        map_opt(parse::quoted, |q| match q.as_slice() {
            [c] => Delimiter::new(*c).ok().map(Some),
            _ => None,
        }),
        value(None, nil),
    ))
    .parse(i)
}

fn list_p(i: &[u8]) -> R<'_, (Vec<MailboxAttribute>, Option<Delimiter>, Mailbox)> {
    let attr = map(preceded(tag(&b"\\"[..]), atom), MailboxAttribute::from_name);
    (
        delimited(tag(&b"("[..]), separated_list0(sp, attr), tag(&b")"[..])),
        preceded(sp, delimiter_p),
        preceded(sp, mailbox),
    )
        .parse(i)
}

fn namespaces_p(i: &[u8]) -> R<'_, Option<Vec<NamespaceDescription>>> {
    let one = map(
        delimited(
            tag(&b"("[..]),
            separated_pair(string, sp, delimiter_p),
            tag(&b")"[..]),
        ),
        |(prefix, delimiter)| NamespaceDescription { prefix, delimiter },
    );
    alt((
        map(
            delimited(tag(&b"("[..]), nom::multi::many1(one), tag(&b")"[..])),
            Some,
        ),
        value(None, nil),
    ))
    .parse(i)
}

fn body_data_p(i: &[u8]) -> R<'_, Option<Bytes>> {
    map(nstring, |s| s.map(|s| Bytes::from(s.into_bytes()))).parse(i)
}

fn origin_p(i: &[u8]) -> R<'_, Option<u32>> {
    opt(delimited(tag(&b"<"[..]), number, tag(&b">"[..]))).parse(i)
}

fn literal8(i: &[u8]) -> R<'_, &[u8]> {
    let (i, n) = delimited(tag(&b"~{"[..]), number, (tag(&b"}"[..]), crlf)).parse(i)?;
    take(n as usize).parse(i)
}

fn fetch_item_p(i: &[u8]) -> R<'_, FetchItem> {
    let rendered = |i| map_opt(paren_value, |v: &[u8]| Rendered::new(v.to_vec()).ok()).parse(i);
    alt((
        map(
            preceded(tag_no_case(&b"FLAGS "[..]), parse::flag_list),
            FetchItem::Flags,
        ),
        map(
            preceded(tag_no_case(&b"INTERNALDATE "[..]), date_time),
            FetchItem::InternalDate,
        ),
        map(
            preceded(tag_no_case(&b"RFC822.SIZE "[..]), number),
            FetchItem::Rfc822Size,
        ),
        map(
            preceded(tag_no_case(&b"UID "[..]), nz_number),
            FetchItem::Uid,
        ),
        map(
            preceded(tag_no_case(&b"ENVELOPE "[..]), rendered),
            FetchItem::Envelope,
        ),
        map(
            preceded(tag_no_case(&b"BODYSTRUCTURE "[..]), rendered),
            FetchItem::BodyStructure,
        ),
        map(
            preceded(tag_no_case(&b"BODY "[..]), rendered),
            FetchItem::Body,
        ),
        map(
            (
                tag_no_case(&b"BODY"[..]),
                parse::section,
                origin_p,
                sp,
                body_data_p,
            ),
            |(_, section, origin, _, data)| FetchItem::BodySection {
                section,
                origin,
                data,
            },
        ),
        map(
            preceded(
                tag_no_case(&b"BINARY.SIZE"[..]),
                separated_pair(parse::section_binary, sp, number),
            ),
            |(part, size)| FetchItem::BinarySize { part, size },
        ),
        map(
            (
                tag_no_case(&b"BINARY"[..]),
                parse::section_binary,
                origin_p,
                sp,
                alt((
                    map(literal8, |b: &[u8]| Some(Bytes::from(b.to_vec()))),
                    body_data_p,
                )),
            ),
            |(_, part, origin, _, data)| FetchItem::Binary { part, origin, data },
        ),
        map(
            preceded(tag_no_case(&b"RFC822.HEADER "[..]), body_data_p),
            FetchItem::Rfc822Header,
        ),
        map(
            preceded(tag_no_case(&b"RFC822.TEXT "[..]), body_data_p),
            FetchItem::Rfc822Text,
        ),
        map(
            preceded(tag_no_case(&b"RFC822 "[..]), body_data_p),
            FetchItem::Rfc822,
        ),
    ))
    .parse(i)
}

fn data_p(i: &[u8]) -> R<'_, Data> {
    if i.first().is_some_and(u8::is_ascii_digit) {
        let (rest, n) = terminated(number, sp).parse(i)?;
        let (rest, word) = take_while1(|b: u8| b.is_ascii_alphabetic()).parse(rest)?;
        let nz = NonZeroU32::new(n);
        return match (word.to_ascii_uppercase().as_slice(), nz) {
            (b"EXISTS", _) => Ok((rest, Data::Exists(n))),
            (b"RECENT", _) => Ok((rest, Data::Recent(n))),
            (b"EXPUNGE", Some(n)) => Ok((rest, Data::Expunge(n))),
            (b"FETCH", Some(seq)) => map(
                preceded(
                    sp,
                    delimited(
                        tag(&b"("[..]),
                        separated_list1(sp, fetch_item_p),
                        tag(&b")"[..]),
                    ),
                ),
                move |items| Data::Fetch { seq, items },
            )
            .parse(rest),
            _ => Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Tag,
            ))),
        };
    }
    let (rest, word) = take_while1(|b: u8| b.is_ascii_alphabetic()).parse(i)?;
    let nums = |i| nom::multi::many0(preceded(sp, nz_number)).parse(i);
    match word.to_ascii_uppercase().as_slice() {
        b"CAPABILITY" => map(nom::multi::many1(preceded(sp, atom)), Data::Capability).parse(rest),
        b"LIST" => map(preceded(sp, list_p), |(attributes, delimiter, mailbox)| {
            Data::List {
                attributes,
                delimiter,
                mailbox,
            }
        })
        .parse(rest),
        b"LSUB" => map(preceded(sp, list_p), |(attributes, delimiter, mailbox)| {
            Data::Lsub {
                attributes,
                delimiter,
                mailbox,
            }
        })
        .parse(rest),
        b"STATUS" => map(
            (
                preceded(sp, mailbox),
                preceded(
                    sp,
                    delimited(
                        tag(&b"("[..]),
                        separated_list0(sp, separated_pair(parse::status_att, sp, number64)),
                        tag(&b")"[..]),
                    ),
                ),
            ),
            |(mailbox, items)| Data::Status { mailbox, items },
        )
        .parse(rest),
        b"SEARCH" => map(nums, Data::Search).parse(rest),
        b"SORT" => map(nums, Data::Sort).parse(rest),
        b"FLAGS" => map(preceded(sp, parse::flag_list), Data::Flags).parse(rest),
        b"NAMESPACE" => map(
            (
                preceded(sp, namespaces_p),
                preceded(sp, namespaces_p),
                preceded(sp, namespaces_p),
            ),
            |(personal, other, shared)| Data::Namespace {
                personal,
                other,
                shared,
            },
        )
        .parse(rest),
        b"QUOTA" => {
            let resource = map(
                (atom, sp, number64, sp, number64),
                |(name, _, usage, _, limit)| QuotaResource { name, usage, limit },
            );
            map(
                (
                    preceded(sp, astring),
                    preceded(
                        sp,
                        delimited(
                            tag(&b"("[..]),
                            separated_list0(sp, resource),
                            tag(&b")"[..]),
                        ),
                    ),
                ),
                |(root, resources)| Data::Quota { root, resources },
            )
            .parse(rest)
        }
        b"QUOTAROOT" => map(
            (
                preceded(sp, mailbox),
                nom::multi::many0(preceded(sp, astring)),
            ),
            |(mailbox, roots)| Data::QuotaRoot { mailbox, roots },
        )
        .parse(rest),
        b"ID" => map(preceded(sp, parse::id_params), Data::Id).parse(rest),
        b"ENABLED" => map(nom::multi::many0(preceded(sp, atom)), Data::Enabled).parse(rest),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Tag,
        ))),
    }
}

/// `continue-req` after `+ `: a base64 challenge is told from text by its
/// alphabet and length.
fn continue_p(i: &[u8]) -> R<'_, Continue> {
    let (rest, t) = take_while(|b: u8| b != b'\r' && b != b'\n').parse(i)?;
    let is_b64 = t
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        && t.len() % 4 == 0;
    if is_b64 {
        Ok((
            rest,
            Continue::Base64(String::from_utf8_lossy(t).into_owned()),
        ))
    } else {
        map(text, Continue::Text).parse(i)
    }
}

fn response(i: &[u8]) -> R<'_, Response> {
    alt((
        map(preceded(tag(&b"+ "[..]), continue_p), Response::Continue),
        map(preceded(tag(&b"* "[..]), status_p), Response::Untagged),
        map(preceded(tag(&b"* "[..]), data_p), Response::Data),
        map(separated_pair(imap_tag, sp, status_p), |(t, s)| {
            Response::Tagged(t, s)
        }),
    ))
    .parse(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn wire(r: &Response) -> String {
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(
            Response::parse(&out).as_ref(),
            Some(r),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3501_responses() {
        // Examples from RFC 3501 sections 6 and 7.
        let select_ok = Response::Tagged(
            Tag::new("A142").unwrap(),
            Status::ok("SELECT completed").with_code(Code::ReadWrite),
        );
        assert_eq!(
            wire(&select_ok),
            "A142 OK [READ-WRITE] SELECT completed\r\n"
        );
        let flags = Response::Data(Data::Flags(vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ]));
        assert_eq!(
            wire(&flags),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        );
        let perm = Response::Untagged(Status::ok("Limited").with_code(Code::PermanentFlags(vec![
            PermanentFlag::Flag(Flag::Deleted),
            PermanentFlag::Flag(Flag::Seen),
            PermanentFlag::AnyKeyword,
        ])));
        assert_eq!(
            wire(&perm),
            "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
        );
        let list = Response::Data(Data::List {
            attributes: vec![MailboxAttribute::NoSelect],
            delimiter: Some(Delimiter::new(b'/').unwrap()),
            mailbox: Mailbox::try_from("~/Mail/foo").unwrap(),
        });
        assert_eq!(wire(&list), "* LIST (\\Noselect) \"/\" ~/Mail/foo\r\n");
        let status = Response::Data(Data::Status {
            mailbox: Mailbox::try_from("blurdybloop").unwrap(),
            items: vec![(StatusItem::Messages, 231), (StatusItem::UidNext, 44292)],
        });
        assert_eq!(
            wire(&status),
            "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
        );
        let fetch = Response::Data(Data::Fetch {
            seq: nz(12),
            items: vec![
                FetchItem::Flags(vec![Flag::Seen]),
                FetchItem::InternalDate(
                    DateTime::new(
                        types::Date::new(1996, 7, 17).unwrap(),
                        2,
                        44,
                        25,
                        -7 * 60,
                    )
                    .unwrap(),
                ),
                FetchItem::Rfc822Size(4286),
                FetchItem::Envelope(
                    Rendered::new(&b"(\"Wed, 17 Jul 1996\" \"IMAP4rev1 WG mtg summary\" NIL NIL NIL NIL NIL NIL NIL \"<B27397-0100000@cac.washington.edu>\")"[..])
                        .unwrap(),
                ),
                FetchItem::BodySection {
                    section: Section::default(),
                    origin: None,
                    data: Some(Bytes::from_static(b"Hi\r\n")),
                },
            ],
        });
        assert!(wire(&fetch).starts_with(
            "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 ENVELOPE (\"Wed"
        ));
        let append = Response::Tagged(
            Tag::new("A003").unwrap(),
            Status::ok("APPEND completed").with_code(Code::AppendUid {
                uid_validity: nz(38505),
                uids: SequenceSet::single(nz(3955)),
            }),
        );
        assert_eq!(
            wire(&append),
            "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n"
        );
        let bye = Response::Untagged(Status::new(StatusKind::Bye, None, "logging out"));
        assert_eq!(wire(&bye), "* BYE logging out\r\n");
        assert_eq!(wire(&Response::Data(Data::Exists(172))), "* 172 EXISTS\r\n");
        assert_eq!(
            wire(&Response::Data(Data::Search(vec![nz(2), nz(84)]))),
            "* SEARCH 2 84\r\n"
        );
        assert_eq!(wire(&Response::Data(Data::Search(vec![]))), "* SEARCH\r\n");
        assert_eq!(
            wire(&Response::Continue(Continue::Base64(String::new()))),
            "+ \r\n"
        );
    }

    #[test]
    fn body_data_takes_literals_for_8bit_and_nul() {
        let fetch = Response::Data(Data::Fetch {
            seq: nz(1),
            items: vec![FetchItem::BodySection {
                section: Section::default(),
                origin: Some(0),
                data: Some(Bytes::from_static(b"a\0b")),
            }],
        });
        let mut out = Vec::new();
        fetch.encode(&mut out);
        assert_eq!(out, b"* 1 FETCH (BODY[]<0> {3}\r\na\x80b)\r\n");
        let binary = Response::Data(Data::Fetch {
            seq: nz(1),
            items: vec![FetchItem::Binary {
                part: vec![nz(1)],
                origin: None,
                data: Some(Bytes::from_static(b"a\0b")),
            }],
        });
        assert!(wire(&binary).contains("BINARY[1] ~{3}\r\na\0b)"));
    }

    #[test]
    fn rendered_values_must_be_one_balanced_list() {
        assert!(Rendered::new(&b"(\"a\" NIL)()"[..]).is_err());
        assert!(Rendered::new(&b"(\"a\" NIL (1 2) {2}\r\n)))"[..]).is_ok());
        assert!(Rendered::new(&b"(\"a\" NIL (1 2) {2}\r\n))"[..]).is_err());
        assert!(Rendered::new(&b"(\"a\"\r\n)"[..]).is_err());
        assert!(Rendered::new(&b"(a"[..]).is_err());
        assert!(Rendered::new(&b"NIL"[..]).is_err());
    }

    #[test]
    fn text_cannot_break_a_line() {
        assert!(Text::new("a\r\nb").is_err());
        assert!(Text::new("[ALERT] x").is_err());
        assert_eq!(Text::lossy("a\r\nb").as_str(), "a  b");
        assert_eq!(Text::lossy("").as_str(), ".");
    }
}
