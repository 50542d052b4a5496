//! The durable state of the Ironpost mail server: domains, accounts, aliases,
//! distribution lists, groups, mailboxes and messages, in SQLite (through
//! rusqlite and r2d2) with message bodies as immutable, content-addressed
//! blobs: files, or for small bodies rows of the database written with the
//! message that references them.
//!
//! The store is a synchronous library: every call blocks until its answer is
//! known (and, for a write, durable). The async server calls it from blocking
//! threads. Writes go through one group-committing thread; reads use a
//! connection pool and never wait for writes (WAL).
//!
//! ```
//! use ironpost_store::{Flags, NewAccount, Password, PasswordParams, Sender, Store, StoreConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut config = StoreConfig::new(dir.path());
//! config.password = PasswordParams::insecure_fast(); // tests only
//! let store = Store::open(config)?;
//!
//! store.add_domain("example.com")?;
//! let alice = store.add_account(NewAccount::new(
//!     "alice@example.com",
//!     Password::Plain("secret".into()),
//! ))?;
//! store.add_alias("postmaster@example.com", "alice@example.com")?;
//!
//! // SMTP: resolve the recipient, spool the body once, deliver by reference.
//! let route = store.resolve("postmaster@example.com", &Sender::new("bob@example.org"))?;
//! let body = store.blobs().write_bytes(b"Subject: hi\r\n\r\nhello\r\n")?;
//! let inboxes: Vec<_> = route.local.iter().map(|t| t.mailbox).collect();
//! let results = store.deliver(body, &inboxes, Flags::new(), None)?;
//! assert_eq!(results[0].as_ref().unwrap().uid, 1);
//!
//! // IMAP: the INBOX and its message.
//! let inbox = store.mailbox(alice.id, "INBOX")?;
//! assert_eq!(store.read_message(inbox.id, 1)?, b"Subject: hi\r\n\r\nhello\r\n");
//! assert!(store.authenticate("alice@example.com", "secret").is_ok());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod alias;
mod blob;
mod checkpoint;
mod commit;
mod domain;
mod error;
mod feed;
mod group;
mod header_cache;
mod list;
mod mailbox;
mod maintenance;
mod message;
mod password;
mod pop3;
mod queue;
mod reader;
mod resolve;
mod schema;
mod stats;
mod store;
mod types;

pub use account::{Account, AccountUpdate, DEFAULT_MAILBOXES, NewAccount};
pub use alias::Alias;
pub use blob::{BlobId, BlobStore, ParseBlobIdError};
pub use domain::{Domain, DomainLimits, DomainUpdate};
pub use error::{AuthError, Error, ResolveError, Result};
pub use feed::{Change, FeedHandle, Subscription};
pub use group::Group;
pub use list::{List, ListUpdate};
pub use mailbox::{Mailbox, MailboxStatus};
pub use maintenance::{CheckReport, GcReport};
pub use message::{Appended, Copied, FlagUpdate, FlagsResult, Indexed, Message, pop3_uidl};
pub use password::{Password, PasswordParams};
pub use queue::{
    LocalDelivery, LocalPassEnd, NewQueueEntry, NewRecipient, QueueEntry, QueuedRecipient,
    RecipientState,
};
pub use reader::MessageReader;
pub use resolve::{LocalTarget, Resolution, Sender};
pub use schema::SCHEMA_VERSION;
pub use stats::Stats;
pub use store::{Store, StoreConfig};
pub use types::{
    AccountId, Address, AdminLevel, AliasId, DomainId, Flag, FlagOp, Flags, GroupId, ListId,
    ListMode, MailboxId, QueueId, QueueRecipientId, SpecialUse, SystemFlags, Timestamp,
};
