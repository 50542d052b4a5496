//! Value types shared by the store's calls: ids, addresses, flags, modes.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{Error, Result};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "#{}", self.0)
            }
        }
    };
}

id_type!(
    /// A domain's row id.
    DomainId
);
id_type!(
    /// A queue entry's id: one accepted message until every recipient has
    /// a final result. Shown by `ironpost queue list`.
    QueueId
);
id_type!(
    /// One recipient of a queue entry.
    QueueRecipientId
);
id_type!(
    /// An account's row id.
    AccountId
);
id_type!(
    /// An alias's row id.
    AliasId
);
id_type!(
    /// A distribution list's row id.
    ListId
);
id_type!(
    /// A group's row id.
    GroupId
);
id_type!(
    /// A mailbox's row id: stable across renames, never reused while the
    /// store lives (SQLite `AUTOINCREMENT`).
    MailboxId
);

/// A validated, normalised `local@domain` address: the domain is lower case;
/// the local part keeps its case for display but compares case-insensitively
/// (see [`Address::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

/// Longest address accepted (RFC 5321 path limit).
const MAX_ADDRESS: usize = 254;
/// Longest domain name (RFC 1035).
const MAX_DOMAIN: usize = 253;

impl Address {
    /// Parses `local@domain`. The domain must be a valid domain name (with a dot).
    pub fn parse(text: &str) -> Result<Address> {
        let bad = |reason| Error::InvalidAddress {
            address: text.to_string(),
            reason,
        };
        let text = text.trim();
        let text = text
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(text);
        if text.len() > MAX_ADDRESS {
            return Err(bad("longer than 254 characters"));
        }
        let (local, domain) = text.rsplit_once('@').ok_or_else(|| bad("no @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the local part must have 1 to 64 characters"));
        }
        if local
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '@' | ','))
        {
            return Err(bad("the local part has a forbidden character"));
        }
        let domain = normalize_domain(domain).map_err(|_| bad("the domain is not valid"))?;
        Ok(Address {
            local: local.to_string(),
            domain,
        })
    }

    /// The local part as given.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The lower-case domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The lower-case local part: what lookups compare.
    pub fn local_key(&self) -> String {
        self.local.to_lowercase()
    }

    /// The whole address in lower case: what lookups and de-duplication compare.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local_key(), self.domain)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Checks and lower-cases a domain name: labels of letters, digits and
/// hyphens (or UTF-8), at least one dot, at most 253 characters.
pub(crate) fn normalize_domain(name: &str) -> Result<String> {
    let bad = |reason| Error::InvalidDomain {
        name: name.to_string(),
        reason,
    };
    let lower = name.trim().trim_end_matches('.').to_lowercase();
    if lower.is_empty() || lower.len() > MAX_DOMAIN {
        return Err(bad("must have 1 to 253 characters"));
    }
    if !lower.contains('.') {
        return Err(bad("must contain a dot"));
    }
    for label in lower.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("every label must have 1 to 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label cannot start or end with a hyphen"));
        }
        if !label
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "only letters, digits, hyphens and underscores are allowed",
            ));
        }
    }
    Ok(lower)
}

/// An account's administrative rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AdminLevel {
    /// An ordinary user.
    #[default]
    User,
    /// Administers its own domain.
    Domain,
    /// Administers the whole server.
    Server,
}

impl AdminLevel {
    pub(crate) fn to_db(self) -> i64 {
        match self {
            AdminLevel::User => 0,
            AdminLevel::Domain => 1,
            AdminLevel::Server => 2,
        }
    }

    pub(crate) fn from_db(v: i64) -> Result<Self> {
        Ok(match v {
            0 => AdminLevel::User,
            1 => AdminLevel::Domain,
            2 => AdminLevel::Server,
            other => return Err(Error::Corrupt(format!("admin level {other}"))),
        })
    }
}

/// Who may post to a distribution list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ListMode {
    /// Anybody.
    #[default]
    Public,
    /// Only the list's own members.
    MembersOnly,
    /// Only the one address given.
    Announcement(String),
}

/// The special-use attributes of RFC 6154.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecialUse {
    /// `\All`
    All,
    /// `\Archive`
    Archive,
    /// `\Drafts`
    Drafts,
    /// `\Flagged`
    Flagged,
    /// `\Junk`
    Junk,
    /// `\Sent`
    Sent,
    /// `\Trash`
    Trash,
}

impl SpecialUse {
    /// The IMAP attribute, e.g. `\Sent`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }

    /// Parses an attribute (case-insensitive, with or without the backslash).
    pub fn parse(text: &str) -> Option<SpecialUse> {
        let t = text.trim_start_matches('\\').to_ascii_lowercase();
        Some(match t.as_str() {
            "all" => SpecialUse::All,
            "archive" => SpecialUse::Archive,
            "drafts" => SpecialUse::Drafts,
            "flagged" => SpecialUse::Flagged,
            "junk" => SpecialUse::Junk,
            "sent" => SpecialUse::Sent,
            "trash" => SpecialUse::Trash,
            _ => return None,
        })
    }
}

/// A message flag: one of the five IMAP system flags or a keyword.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// `\Seen`
    Seen,
    /// `\Answered`
    Answered,
    /// `\Flagged`
    Flagged,
    /// `\Deleted`
    Deleted,
    /// `\Draft`
    Draft,
    /// A keyword such as `$Forwarded` or `$Junk`.
    Keyword(String),
}

impl Flag {
    fn bit(&self) -> Option<i64> {
        Some(match self {
            Flag::Seen => 1,
            Flag::Answered => 2,
            Flag::Flagged => 4,
            Flag::Deleted => 8,
            Flag::Draft => 16,
            Flag::Keyword(_) => return None,
        })
    }

    /// Parses `\Seen`-style system flags (case-insensitive) or a keyword.
    pub fn parse(text: &str) -> Flag {
        match text.to_ascii_lowercase().as_str() {
            "\\seen" => Flag::Seen,
            "\\answered" => Flag::Answered,
            "\\flagged" => Flag::Flagged,
            "\\deleted" => Flag::Deleted,
            "\\draft" => Flag::Draft,
            _ => Flag::Keyword(text.to_string()),
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Keyword(k) => k,
        })
    }
}

/// A set of flags, as stored with a message.
pub type Flags = BTreeSet<Flag>;

/// The system flags of a message as a set of bits: what most messages
/// carry, without an allocation. Iterates in the order of [`Flags`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SystemFlags(u8);

/// The system flags, in the order of their bits in [`SystemFlags`] (a
/// `static`, so that [`SystemFlags::iter`] can lend them).
static SYSTEM_FLAGS: [Flag; 5] = [
    Flag::Seen,
    Flag::Answered,
    Flag::Flagged,
    Flag::Deleted,
    Flag::Draft,
];

impl SystemFlags {
    /// The system flags among `flags`.
    pub fn of<'a>(flags: impl IntoIterator<Item = &'a Flag>) -> SystemFlags {
        SystemFlags(
            flags
                .into_iter()
                .filter_map(Flag::bit)
                .fold(0, |bits, bit| bits | bit as u8),
        )
    }

    /// A set of flags as its system flags and its keywords.
    pub fn split(flags: &Flags) -> (SystemFlags, Flags) {
        let keywords = flags
            .iter()
            .filter(|f| matches!(f, Flag::Keyword(_)))
            .cloned()
            .collect();
        (SystemFlags::of(flags), keywords)
    }

    /// Whether `flag` is one of these (never, for a keyword).
    pub fn contains(self, flag: &Flag) -> bool {
        flag.bit().is_some_and(|bit| i64::from(self.0) & bit != 0)
    }

    /// Whether there is none.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags, in the order of [`Flags`].
    pub fn iter(self) -> impl Iterator<Item = &'static Flag> {
        SYSTEM_FLAGS
            .iter()
            .filter(move |f| f.bit().is_some_and(|bit| i64::from(self.0) & bit != 0))
    }

    /// From the bits of the `flags` column; bits that name no flag are
    /// dropped.
    pub(crate) fn from_db(bits: i64) -> SystemFlags {
        SystemFlags((bits & 0x1f) as u8)
    }
}

/// Flags as stored: a bit mask of system flags and space-separated keywords.
pub(crate) fn flags_to_db(flags: &Flags) -> (i64, String) {
    let mut bits = 0;
    let mut keywords = Vec::new();
    for flag in flags {
        match flag.bit() {
            Some(b) => bits |= b,
            None => keywords.push(flag.to_string()),
        }
    }
    (bits, keywords.join(" "))
}

pub(crate) fn flags_from_db(bits: i64, keywords: &str) -> Flags {
    let mut flags: Flags = SystemFlags::from_db(bits).iter().cloned().collect();
    flags.extend(keywords_from_db(keywords));
    flags
}

/// The keywords of the `keywords` column.
pub(crate) fn keywords_from_db(keywords: &str) -> impl Iterator<Item = Flag> + '_ {
    keywords
        .split(' ')
        .filter(|k| !k.is_empty())
        .map(|k| Flag::Keyword(k.to_string()))
}

/// How [`crate::Store::store_flags`] changes the flags (IMAP `STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
    /// `FLAGS`: replace.
    Replace,
}

/// Seconds since the Unix epoch, the store's time unit.
pub type Timestamp = i64;

pub(crate) fn now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = Address::parse("<Alice@Example.COM>").unwrap();
        assert_eq!(a.to_string(), "Alice@example.com");
        assert_eq!(a.key(), "alice@example.com");
        assert!(Address::parse("alice").is_err());
        assert!(Address::parse("alice@localhost").is_err());
        assert!(Address::parse("a b@example.com").is_err());
        assert!(Address::parse("@example.com").is_err());
    }

    #[test]
    fn domains_need_a_dot() {
        assert!(normalize_domain("example").is_err());
        assert!(normalize_domain("-a.com").is_err());
        assert!(normalize_domain("a..com").is_err());
        assert_eq!(
            normalize_domain("Mail.Example.org.").unwrap(),
            "mail.example.org"
        );
    }

    #[test]
    fn flags_round_trip() {
        let flags: Flags = [Flag::Seen, Flag::Deleted, Flag::Keyword("$Junk".into())]
            .into_iter()
            .collect();
        let (bits, kw) = flags_to_db(&flags);
        assert_eq!(flags_from_db(bits, &kw), flags);
        assert_eq!(Flag::parse("\\SEEN"), Flag::Seen);
        assert_eq!(Flag::parse("$Label1"), Flag::Keyword("$Label1".into()));
    }
}
