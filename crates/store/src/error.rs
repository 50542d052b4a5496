//! The store's error types: [`Error`] for every call, [`ResolveError`] for
//! recipient resolution and [`AuthError`] for logins. No database type leaks
//! through them, so that a second backend can return the same values.

use std::io;
use std::path::PathBuf;

use crate::blob::BlobId;
use crate::types::{MailboxId, QueueId, QueueRecipientId};

/// What a store call can fail with. The `Display` text is meant for an
/// administrator: the CLI prints it as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A domain name without a dot, with bad characters, or too long.
    #[error("invalid domain name {name:?}: {reason}")]
    InvalidDomain {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An address that is not `local@domain` or has bad characters.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No domain (nor domain alias) of that name.
    #[error("domain {0} does not exist")]
    DomainNotFound(String),
    /// The domain name, or a domain alias of that name, exists already.
    #[error("domain {0} already exists")]
    DomainExists(String),
    /// No account with that address.
    #[error("account {0} does not exist")]
    AccountNotFound(String),
    /// No alias with that address.
    #[error("alias {0} does not exist")]
    AliasNotFound(String),
    /// No distribution list with that address.
    #[error("list {0} does not exist")]
    ListNotFound(String),
    /// No group of that name.
    #[error("group {0} does not exist")]
    GroupNotFound(String),
    /// A name (of a group, say) that is empty or has bad characters.
    #[error("invalid {what} name {name:?}")]
    InvalidName {
        /// What was being named.
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// The group exists already.
    #[error("group {0} already exists")]
    GroupExists(String),
    /// The address is already taken by an object of another (or the same) kind:
    /// an alias would shadow an account, an account would take a list's address...
    #[error("{}", address_in_use(address, wanted, existing))]
    AddressInUse {
        /// The address.
        address: String,
        /// What was being created: `"account"`, `"alias"` or `"list"`.
        wanted: &'static str,
        /// What has the address: `"account"`, `"alias"` or `"list"`.
        existing: &'static str,
    },
    /// A domain limit (number of accounts, aliases, lists; account size) refuses the change.
    #[error("domain {domain}: {what} limit of {limit} reached")]
    DomainLimit {
        /// The domain.
        domain: String,
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A password hash that is neither argon2 nor one of the importable formats.
    #[error("unsupported password hash format")]
    UnsupportedHash,
    /// A mailbox name that cannot be used (empty, bad hierarchy, reserved...).
    #[error("invalid mailbox name {name:?}: {reason}")]
    InvalidMailboxName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No mailbox of that name in the account.
    #[error("mailbox {0} does not exist")]
    MailboxNotFound(String),
    /// No queue entry of that id (delivered or removed meanwhile).
    #[error("queue entry {0} does not exist")]
    QueueEntryNotFound(QueueId),
    /// The recipient does not belong to the queue entry.
    #[error("queue entry {entry} has no recipient {recipient}")]
    QueueRecipientNotFound {
        /// The queue entry.
        entry: QueueId,
        /// The recipient row.
        recipient: QueueRecipientId,
    },
    /// No mailbox of that id (deleted meanwhile).
    #[error("mailbox {0} does not exist")]
    NoSuchMailbox(MailboxId),
    /// The mailbox name is taken.
    #[error("mailbox {0} already exists")]
    MailboxExists(String),
    /// A mailbox that has children cannot be deleted; INBOX cannot be deleted.
    #[error("mailbox {name} cannot be deleted: {reason}")]
    MailboxNotDeletable {
        /// The mailbox.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// No message with that UID in the mailbox.
    #[error("mailbox {mailbox}: no message with UID {uid}")]
    MessageNotFound {
        /// The mailbox.
        mailbox: MailboxId,
        /// The UID.
        uid: u32,
    },
    /// The account's quota does not leave room for the message.
    #[error("quota exceeded for {account}: {used} of {quota} bytes used, {needed} more needed")]
    QuotaExceeded {
        /// The account's address.
        account: String,
        /// Bytes in use.
        used: u64,
        /// The quota in bytes.
        quota: u64,
        /// Bytes the operation needs.
        needed: u64,
    },
    /// The message is larger than the domain allows.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The message size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A header prefix for a delivery (see [`crate::LocalDelivery`]) that is
    /// not whole header field lines.
    #[error("invalid header prefix: {reason}")]
    InvalidPrefix {
        /// Why it was refused.
        reason: &'static str,
    },
    /// The mailbox used up its 32-bit UID space; it needs a new UIDVALIDITY.
    #[error("mailbox {0} has no UIDs left")]
    UidsExhausted(MailboxId),
    /// A message's body file is gone. Only that message is affected.
    #[error("blob {0} is missing")]
    BlobMissing(BlobId),
    /// A message's body file does not match its size or content hash.
    #[error("blob {0} is corrupt")]
    BlobCorrupt(BlobId),
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// The database was written by a newer Ironpost.
    #[error("the database has schema version {found}, newer than the {known} this program knows")]
    SchemaTooNew {
        /// The version in the file.
        found: u32,
        /// The latest version this build knows.
        known: u32,
    },
    /// A value read from the database is not what the schema allows.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store is shutting down (its writer thread has stopped).
    #[error("the store is closed")]
    Closed,
}

/// The text of [`Error::AddressInUse`]: "already exists" for the same kind.
fn address_in_use(address: &str, wanted: &str, existing: &str) -> String {
    if wanted == existing {
        format!("{existing} {address} already exists")
    } else {
        format!("{wanted} would shadow {existing} {address}")
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The result type of store calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps database errors into [`Error::Database`] without a `From` impl, so
/// that no database type appears in the public API.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| Error::Database(e.to_string()))
    }
}

impl<T> DbResult<T> for std::result::Result<T, r2d2::Error> {
    fn db(self) -> Result<T> {
        self.map_err(|e| Error::Database(format!("connection pool: {e}")))
    }
}

/// Why an address does not resolve to deliverable targets. Each case maps to
/// a distinct SMTP reply ([`ResolveError::smtp_reply`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The address is in a local domain but names no account, alias or list,
    /// and the domain has no catch-all.
    #[error("unknown user {0}")]
    UnknownUser(String),
    /// The account exists but is disabled.
    #[error("account {0} is disabled")]
    AccountDisabled(String),
    /// The alias exists but is disabled.
    #[error("alias {0} is disabled")]
    AliasDisabled(String),
    /// The address's domain is local but disabled.
    #[error("domain {0} is disabled")]
    DomainDisabled(String),
    /// The distribution list exists but is disabled.
    #[error("list {0} is disabled")]
    ListDisabled(String),
    /// The list's mode does not let this sender post.
    #[error("{sender} is not allowed to post to list {list}")]
    SenderNotAllowed {
        /// The list.
        list: String,
        /// The envelope sender (empty for `<>`).
        sender: String,
    },
    /// The list requires an authenticated (SMTP AUTH) sender.
    #[error("list {0} requires an authenticated sender")]
    ListRequiresAuth(String),
    /// Forwarding went deeper than the limit, or an alias chain loops.
    #[error("too many recursive forwards at {0}")]
    TooManyForwards(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl ResolveError {
    /// The SMTP reply this error calls for at `RCPT TO`: code, enhanced status
    /// code (RFC 3463) and text.
    pub fn smtp_reply(&self) -> (u16, &'static str, &'static str) {
        match self {
            ResolveError::UnknownUser(_) => (550, "5.1.1", "unknown user"),
            ResolveError::AccountDisabled(_) => (550, "5.2.1", "account disabled"),
            ResolveError::AliasDisabled(_) => (550, "5.2.1", "alias disabled"),
            ResolveError::DomainDisabled(_) => (550, "5.1.2", "domain disabled"),
            ResolveError::ListDisabled(_) => (550, "5.2.1", "list disabled"),
            ResolveError::SenderNotAllowed { .. } => {
                (550, "5.7.1", "sender not allowed to post to this list")
            }
            ResolveError::ListRequiresAuth(_) => (530, "5.7.0", "authentication required"),
            ResolveError::TooManyForwards(_) => (550, "5.4.6", "too many recursive forwards"),
            ResolveError::Store(_) => (451, "4.3.0", "temporary local error"),
        }
    }
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown address or wrong password (deliberately not told apart).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password is right but the account (or its domain) is disabled.
    #[error("account {0} is disabled")]
    Disabled(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}
