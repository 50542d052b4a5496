//! `ironpost queue …`: the messages accepted and not yet delivered to every
//! recipient (SPEC ).

use clap::Subcommand;
use ironpost_store::{QueueEntry, QueueId, RecipientState, Store};
use serde::Serialize;

use super::{AdminError, Output, Record, date};

/// The `queue` verbs.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the queued messages, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one queued message with each recipient's state and last result.
    Show {
        /// The queue id (from `queue list`).
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a queued message: no further delivery, no bounce.
    Remove {
        /// The queue id (from `queue list`).
        id: i64,
    },
}

impl QueueCommand {
    /// Whether the output is wanted as JSON.
    pub fn json(&self) -> bool {
        matches!(
            self,
            QueueCommand::List { json: true } | QueueCommand::Show { json: true, .. }
        )
    }
}

/// A queued message as `queue list` shows it.
#[derive(Debug, Serialize)]
pub struct QueueRow {
    /// The queue id.
    pub id: i64,
    /// When it was accepted (RFC 3339).
    pub queued: String,
    /// The envelope sender (`<>` for bounces).
    pub sender: String,
    /// The recipients still to deliver.
    pub pending: Vec<String>,
    /// Its size in octets.
    pub size: u64,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (RFC 3339).
    pub next_attempt: String,
}

impl Record for QueueRow {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "queued",
        "sender",
        "pending",
        "size",
        "attempts",
        "next_attempt",
    ];
}

fn sender(entry: &QueueEntry) -> String {
    if entry.sender.is_empty() {
        "<>".to_owned()
    } else {
        entry.sender.clone()
    }
}

impl From<&QueueEntry> for QueueRow {
    fn from(e: &QueueEntry) -> Self {
        QueueRow {
            id: e.id.0,
            queued: date(e.created),
            sender: sender(e),
            pending: e.pending().map(|r| r.address.clone()).collect(),
            size: e.size,
            attempts: e.attempts,
            next_attempt: date(e.next_attempt),
        }
    }
}

/// One recipient in `queue show`.
#[derive(Debug, Serialize)]
pub struct RecipientView {
    /// The envelope recipient.
    pub address: String,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    /// The last result, if any.
    pub last_result: String,
}

/// A queued message as `queue show` shows it.
#[derive(Debug, Serialize)]
pub struct QueueDetail {
    /// The queue id.
    pub id: i64,
    /// When it was accepted (RFC 3339).
    pub queued: String,
    /// The envelope sender (`<>` for bounces).
    pub sender: String,
    /// The MAIL parameters.
    pub mail_params: String,
    /// Its size in octets.
    pub size: u64,
    /// The client's address.
    pub client: String,
    /// The client's HELO/EHLO name.
    pub helo: String,
    /// The authenticated user.
    pub auth_user: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (RFC 3339).
    pub next_attempt: String,
    /// The body's content address in the blob store.
    pub body: String,
    /// Every recipient with its state.
    pub recipients: Vec<RecipientView>,
}

impl Record for QueueDetail {
    const COLUMNS: &'static [&'static str] = &["id", "sender", "size"];
}

impl From<&QueueEntry> for QueueDetail {
    fn from(e: &QueueEntry) -> Self {
        QueueDetail {
            id: e.id.0,
            queued: date(e.created),
            sender: sender(e),
            mail_params: e.mail_params.clone(),
            size: e.size,
            client: e.client.clone(),
            helo: e.helo.clone(),
            auth_user: e.auth_user.clone(),
            attempts: e.attempts,
            next_attempt: date(e.next_attempt),
            body: e.blob.to_hex(),
            recipients: e
                .recipients
                .iter()
                .map(|r| RecipientView {
                    address: r.address.clone(),
                    state: match r.state {
                        RecipientState::Pending => "pending",
                        RecipientState::Delivered => "delivered",
                        RecipientState::Failed => "failed",
                    },
                    last_result: r.last_reply.clone(),
                })
                .collect(),
        }
    }
}

/// Runs a `queue` verb.
pub fn run(store: &Store, command: QueueCommand) -> Result<Output, AdminError> {
    Ok(match command {
        QueueCommand::List { .. } => {
            let rows: Vec<QueueRow> = store.queue_entries()?.iter().map(Into::into).collect();
            Output::many(&rows)
        }
        QueueCommand::Show { id, .. } => {
            Output::one(&QueueDetail::from(&store.queue_entry(QueueId(id))?))
        }
        QueueCommand::Remove { id } => {
            store.remove_queue_entry(QueueId(id))?;
            Output::Done(format!("removed queue entry #{id}"))
        }
    })
}
