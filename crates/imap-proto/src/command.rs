//! Client commands: RFC 3501 and the extensions this crate speaks (IDLE,
//! UIDPLUS, MOVE, NAMESPACE, QUOTA, SORT, ENABLE, ID, UNSELECT, SASL-IR).
//! [`Command::parse`] reads one complete command (lines and literals as they
//! arrived, see [`crate::framing`]); [`Command::encode`] writes it back, and
//! `parse(encode(c)) == c` for every command.

use crate::types::{
    AString, Atom, DateTime, FetchItems, Flag, ListPattern, Mailbox, SearchKey, Secret,
    SequenceSet, SortCriterion, StatusItem, StoreAction, Tag,
};

/// A command: its tag and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The tag the tagged response must carry.
    pub tag: Tag,
    /// The command proper.
    pub body: CommandBody,
}

/// What a command asks, by the state it is valid in (RFC 3501 section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandBody {
    // -- any state --
    /// `CAPABILITY`.
    Capability,
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
    /// `ID` (RFC 2971): the client's field/value pairs, or `NIL`.
    Id(crate::types::IdParams),

    // -- not authenticated --
    /// `STARTTLS`.
    StartTls,
    /// `AUTHENTICATE mechanism [initial-response]` (RFC 3501, RFC 4959).
    Authenticate {
        /// The SASL mechanism name.
        mechanism: Atom,
        /// The base64 initial response as sent (`=` is the empty one).
        initial: Option<Secret>,
    },
    /// `LOGIN user password`.
    Login {
        /// The user name.
        username: AString,
        /// The password.
        password: Secret,
    },

    // -- authenticated --
    /// `ENABLE capability...` (RFC 5161).
    Enable(Vec<Atom>),
    /// `SELECT mailbox`.
    Select {
        /// The mailbox.
        mailbox: Mailbox,
    },
    /// `EXAMINE mailbox`.
    Examine {
        /// The mailbox.
        mailbox: Mailbox,
    },
    /// `CREATE mailbox`.
    Create {
        /// The mailbox.
        mailbox: Mailbox,
    },
    /// `DELETE mailbox`.
    Delete {
        /// The mailbox.
        mailbox: Mailbox,
    },
    /// `RENAME from to`.
    Rename {
        /// The existing name.
        from: Mailbox,
        /// The new name.
        to: Mailbox,
    },
    /// `SUBSCRIBE mailbox`.
    Subscribe {
        /// The mailbox.
        mailbox: Mailbox,
    },
    /// `UNSUBSCRIBE mailbox`.
    Unsubscribe {
        /// The mailbox.
        mailbox: Mailbox,
    },
    /// `LIST reference pattern`.
    List {
        /// The reference name.
        reference: Mailbox,
        /// The pattern.
        pattern: ListPattern,
    },
    /// `LSUB reference pattern`.
    Lsub {
        /// The reference name.
        reference: Mailbox,
        /// The pattern.
        pattern: ListPattern,
    },
    /// `STATUS mailbox (items)`.
    Status {
        /// The mailbox.
        mailbox: Mailbox,
        /// The items, at least one.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox [flags] [date-time] literal`. The session never
    /// builds this: it streams the message ([`crate::session`]); the parser
    /// reads it whole for embedders that want that.
    Append {
        /// The target mailbox.
        mailbox: Mailbox,
        /// The flags to set.
        flags: Vec<Flag>,
        /// The internal date to set.
        date: Option<DateTime>,
        /// The message.
        message: Vec<u8>,
    },
    /// `NAMESPACE` (RFC 2342).
    Namespace,
    /// `GETQUOTA root` (RFC 9208).
    GetQuota {
        /// The quota root.
        root: AString,
    },
    /// `GETQUOTAROOT mailbox` (RFC 9208).
    GetQuotaRoot {
        /// The mailbox.
        mailbox: Mailbox,
    },
    /// `SETQUOTA root (resource limit ...)` (RFC 9208).
    SetQuota {
        /// The quota root.
        root: AString,
        /// Resource names and limits.
        limits: Vec<(Atom, u64)>,
    },
    /// `IDLE` (RFC 2177).
    Idle,

    // -- selected --
    /// `CHECK`.
    Check,
    /// `CLOSE`.
    Close,
    /// `UNSELECT` (RFC 3691).
    Unselect,
    /// `EXPUNGE`.
    Expunge,
    /// `UID EXPUNGE set` (RFC 4315).
    UidExpunge(SequenceSet),
    /// `[UID] SEARCH [CHARSET charset] keys`.
    Search {
        /// The charset of the strings.
        charset: Option<Atom>,
        /// The keys, all of which must match; at least one.
        criteria: Vec<SearchKey>,
        /// `UID SEARCH`.
        uid: bool,
    },
    /// `[UID] SORT (criteria) charset keys` (RFC 5256).
    Sort {
        /// The sort order.
        criteria: Vec<SortCriterion>,
        /// The charset of the strings.
        charset: Atom,
        /// The search keys.
        search: Vec<SearchKey>,
        /// `UID SORT`.
        uid: bool,
    },
    /// `[UID] FETCH set items`.
    Fetch {
        /// The messages.
        set: SequenceSet,
        /// The data items.
        items: FetchItems,
        /// `UID FETCH`.
        uid: bool,
    },
    /// `[UID] STORE set action`.
    Store {
        /// The messages.
        set: SequenceSet,
        /// The flag change.
        action: StoreAction,
        /// `UID STORE`.
        uid: bool,
    },
    /// `[UID] COPY set mailbox`.
    Copy {
        /// The messages.
        set: SequenceSet,
        /// The target.
        mailbox: Mailbox,
        /// `UID COPY`.
        uid: bool,
    },
    /// `[UID] MOVE set mailbox` (RFC 6851).
    Move {
        /// The messages.
        set: SequenceSet,
        /// The target.
        mailbox: Mailbox,
        /// `UID MOVE`.
        uid: bool,
    },
}

/// The states a command is valid in (RFC 3501 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Validity {
    /// Any state.
    Any,
    /// Not authenticated only.
    NotAuthenticated,
    /// Authenticated or selected.
    Authenticated,
    /// Selected only.
    Selected,
}

impl CommandBody {
    /// The command's name, as in responses (`UID FETCH` for UID commands).
    pub fn name(&self) -> &'static str {
        use CommandBody::*;
        match self {
            Capability => "CAPABILITY",
            Noop => "NOOP",
            Logout => "LOGOUT",
            Id(_) => "ID",
            StartTls => "STARTTLS",
            Authenticate { .. } => "AUTHENTICATE",
            Login { .. } => "LOGIN",
            Enable(_) => "ENABLE",
            Select { .. } => "SELECT",
            Examine { .. } => "EXAMINE",
            Create { .. } => "CREATE",
            Delete { .. } => "DELETE",
            Rename { .. } => "RENAME",
            Subscribe { .. } => "SUBSCRIBE",
            Unsubscribe { .. } => "UNSUBSCRIBE",
            List { .. } => "LIST",
            Lsub { .. } => "LSUB",
            Status { .. } => "STATUS",
            Append { .. } => "APPEND",
            Namespace => "NAMESPACE",
            GetQuota { .. } => "GETQUOTA",
            GetQuotaRoot { .. } => "GETQUOTAROOT",
            SetQuota { .. } => "SETQUOTA",
            Idle => "IDLE",
            Check => "CHECK",
            Close => "CLOSE",
            Unselect => "UNSELECT",
            Expunge => "EXPUNGE",
            UidExpunge(_) => "UID EXPUNGE",
            Search { uid: false, .. } => "SEARCH",
            Search { uid: true, .. } => "UID SEARCH",
            Sort { uid: false, .. } => "SORT",
            Sort { uid: true, .. } => "UID SORT",
            Fetch { uid: false, .. } => "FETCH",
            Fetch { uid: true, .. } => "UID FETCH",
            Store { uid: false, .. } => "STORE",
            Store { uid: true, .. } => "UID STORE",
            Copy { uid: false, .. } => "COPY",
            Copy { uid: true, .. } => "UID COPY",
            Move { uid: false, .. } => "MOVE",
            Move { uid: true, .. } => "UID MOVE",
        }
    }

    /// The states the command is valid in.
    pub fn validity(&self) -> Validity {
        use CommandBody::*;
        match self {
            Capability | Noop | Logout | Id(_) => Validity::Any,
            StartTls | Authenticate { .. } | Login { .. } => Validity::NotAuthenticated,
            Enable(_)
            | Select { .. }
            | Examine { .. }
            | Create { .. }
            | Delete { .. }
            | Rename { .. }
            | Subscribe { .. }
            | Unsubscribe { .. }
            | List { .. }
            | Lsub { .. }
            | Status { .. }
            | Append { .. }
            | Namespace
            | GetQuota { .. }
            | GetQuotaRoot { .. }
            | SetQuota { .. }
            | Idle => Validity::Authenticated,
            Check
            | Close
            | Unselect
            | Expunge
            | UidExpunge(_)
            | Search { .. }
            | Sort { .. }
            | Fetch { .. }
            | Store { .. }
            | Copy { .. }
            | Move { .. } => Validity::Selected,
        }
    }
}

/// Why a command could not be parsed. The session answers `BAD` (tagged
/// when the tag could be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// No valid tag at the start of the line.
    #[error("missing or invalid tag")]
    NoTag,
    /// The command name is not one this crate knows.
    #[error("unknown command")]
    UnknownCommand {
        /// The tag.
        tag: Tag,
    },
    /// The command is known but its arguments do not fit its grammar.
    #[error("invalid arguments to {name}")]
    InvalidArguments {
        /// The tag.
        tag: Tag,
        /// The command's name.
        name: &'static str,
    },
}

impl ParseError {
    /// The tag, when it could be read.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            ParseError::NoTag => None,
            ParseError::UnknownCommand { tag } | ParseError::InvalidArguments { tag, .. } => {
                Some(tag)
            }
        }
    }
}

impl Command {
    /// Parses one complete command: its lines, each ending with CRLF (a
    /// bare LF is accepted too), and the literals they announce, inline.
    pub fn parse(input: &[u8]) -> Result<Command, ParseError> {
        crate::parse::command(input)
    }

    /// Writes the command as a client would send it (literals inline,
    /// announced as synchronising `{n}`), ending with CRLF.
    pub fn encode(&self, out: &mut Vec<u8>) {
        crate::encode::command(self, out);
    }
}
