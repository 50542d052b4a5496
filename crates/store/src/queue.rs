//! The delivery queue (SPEC Q-1): every accepted message and the state of
//! each of its recipients, durable before the SMTP `250` is sent.
//!
//! A queue entry holds a reference to its body in the blob store, so one body
//! serves the queue and every mailbox it is delivered to. Local delivery
//! marks a recipient delivered in the same transaction that adds the message
//! to its mailbox: after a crash at any moment a recipient is either
//! delivered and marked, or neither, and it is never delivered twice. Each
//! mailbox's copy can carry its own header prefix ([`LocalDelivery`]), so the
//! body stays one blob however many recipients get it.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::blob::{BlobId, BlobStore};
use crate::commit::WriteCtx;
use crate::error::{DbResult, Error, Result};
use crate::message::{
    Appended, check_prefix, check_room, ensure_blob, ensure_inline_blob, insert, limits,
};
use crate::types::{Flags, MailboxId, QueueId, QueueRecipientId, Timestamp, now};

/// A message to queue: its body (already durable in the blob store), its
/// envelope and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewQueueEntry {
    /// The body, written with [`crate::BlobStore::write`].
    pub blob: BlobId,
    /// The envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// The MAIL parameters as sent on (e.g. `BODY=8BITMIME RET=HDRS`).
    pub mail_params: String,
    /// The recipients.
    pub recipients: Vec<NewRecipient>,
    /// The client's address, for logs and `queue show`.
    pub client: String,
    /// The client's HELO/EHLO name.
    pub helo: String,
    /// The authenticated user, if any.
    pub auth_user: String,
    /// The body itself, to be kept in the database with the entry rather
    /// than in a file (see [`NewQueueEntry::inline`]); `None` when `blob`
    /// was written with [`crate::BlobStore::write`].
    pub body: Option<Vec<u8>>,
}

impl NewQueueEntry {
    /// An entry with no origin details.
    pub fn new(
        blob: BlobId,
        sender: impl Into<String>,
        recipients: impl IntoIterator<Item = NewRecipient>,
    ) -> Self {
        NewQueueEntry {
            blob,
            sender: sender.into(),
            mail_params: String::new(),
            recipients: recipients.into_iter().collect(),
            client: String::new(),
            helo: String::new(),
            auth_user: String::new(),
            body: None,
        }
    }

    /// An entry whose body is kept in the database, written in the same
    /// transaction as the entry: for small bodies, this saves the file
    /// creation, syncs and rename of [`crate::BlobStore::write`]. The body
    /// is durable when [`crate::Store::enqueue`] returns.
    pub fn inline(
        body: Vec<u8>,
        sender: impl Into<String>,
        recipients: impl IntoIterator<Item = NewRecipient>,
    ) -> Self {
        let mut entry = NewQueueEntry::new(BlobId::of(&body), sender, recipients);
        entry.body = Some(body);
        entry
    }
}

/// One recipient of a message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewRecipient {
    /// The envelope recipient.
    pub address: String,
    /// Its RCPT parameters as sent on (e.g. `NOTIFY=FAILURE`).
    pub params: String,
}

impl NewRecipient {
    /// A recipient without parameters.
    pub fn new(address: impl Into<String>) -> Self {
        NewRecipient {
            address: address.into(),
            params: String::new(),
        }
    }
}

/// One mailbox's copy of a queued message: the mailbox, and the header lines
/// put in front of the shared body for this copy alone (`Delivered-To:`).
/// The prefix is stored with the message row, read before the body by
/// [`Store::open_message`], and counted in the message's size and quota.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalDelivery {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Whole header field lines, each ending with CRLF; empty for none.
    pub prefix: Vec<u8>,
}

impl LocalDelivery {
    /// A copy into `mailbox` with `prefix` in front of the body.
    pub fn new(mailbox: MailboxId, prefix: impl Into<Vec<u8>>) -> Self {
        LocalDelivery {
            mailbox,
            prefix: prefix.into(),
        }
    }
}

/// Where a recipient of a queue entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    /// Not delivered yet.
    Pending,
    /// Delivered (locally, or accepted by the next server).
    Delivered,
    /// Failed for good; a bounce is due or was sent.
    Failed,
}

impl RecipientState {
    fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(RecipientState::Pending),
            "delivered" => Ok(RecipientState::Delivered),
            "failed" => Ok(RecipientState::Failed),
            other => Err(Error::Database(format!(
                "unknown queue recipient state {other:?}"
            ))),
        }
    }
}

/// A recipient of a queue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedRecipient {
    /// Its row id.
    pub id: QueueRecipientId,
    /// The envelope recipient.
    pub address: String,
    /// Its RCPT parameters.
    pub params: String,
    /// Where it stands.
    pub state: RecipientState,
    /// The last result (a reply or an error text); empty before the first try.
    pub last_reply: String,
}

/// A queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueEntry {
    /// Its id.
    pub id: QueueId,
    /// The body.
    pub blob: BlobId,
    /// The size of the body in octets.
    pub size: u64,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    /// The MAIL parameters.
    pub mail_params: String,
    /// The client's address.
    pub client: String,
    /// The client's HELO/EHLO name.
    pub helo: String,
    /// The authenticated user.
    pub auth_user: String,
    /// When it was queued (Unix seconds).
    pub created: Timestamp,
    /// When the next attempt is due (Unix seconds).
    pub next_attempt: Timestamp,
    /// Attempts made so far.
    pub attempts: u32,
    /// The recipients, in the order given.
    pub recipients: Vec<QueuedRecipient>,
}

impl QueueEntry {
    /// The recipients still to deliver.
    pub fn pending(&self) -> impl Iterator<Item = &QueuedRecipient> {
        self.recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
    }
}

const ENTRY_COLUMNS: &str = "id, blob, size, sender, mail_params, client, helo, auth_user, \
                             created, next_attempt, attempts";

/// The entries matching `filter` (a WHERE clause on `args`), oldest first,
/// at most `limit`.
/// What [`Store::settle_local_pass`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalPassEnd {
    /// The entry had nothing left to do and is gone.
    pub removed: bool,
    /// The notification queued, if one was given.
    pub notification: Option<QueueId>,
}

fn load_entries(
    conn: &Connection,
    filter: &str,
    args: &[i64],
    limit: Option<i64>,
) -> Result<Vec<QueueEntry>> {
    let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM queue {filter} ORDER BY id{limit}"
        ))
        .db()?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            let blob: Vec<u8> = r.get(1)?;
            Ok((
                blob,
                QueueEntry {
                    id: QueueId(r.get(0)?),
                    blob: BlobId([0; 32]),
                    size: r.get::<_, i64>(2)? as u64,
                    sender: r.get(3)?,
                    mail_params: r.get(4)?,
                    client: r.get(5)?,
                    helo: r.get(6)?,
                    auth_user: r.get(7)?,
                    created: r.get(8)?,
                    next_attempt: r.get(9)?,
                    attempts: r.get::<_, i64>(10)? as u32,
                    recipients: Vec::new(),
                },
            ))
        })
        .db()?;
    let mut entries = Vec::new();
    for row in rows {
        let (blob, mut entry) = row.db()?;
        entry.blob = BlobId(
            blob.try_into()
                .map_err(|_| Error::Database(format!("queue entry {}: bad blob id", entry.id)))?,
        );
        entry.recipients = load_recipients(conn, entry.id)?;
        entries.push(entry);
    }
    Ok(entries)
}

fn load_recipients(conn: &Connection, id: QueueId) -> Result<Vec<QueuedRecipient>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, address, params, state, last_reply FROM queue_recipients
             WHERE queue_id = ?1 ORDER BY id",
        )
        .db()?;
    let rows = stmt
        .query_map([id.0], |r| {
            Ok((
                QueueRecipientId(r.get(0)?),
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .db()?;
    rows.map(|row| {
        let (id, address, params, state, last_reply) = row.db()?;
        Ok(QueuedRecipient {
            id,
            address,
            params,
            state: RecipientState::parse(&state)?,
            last_reply,
        })
    })
    .collect()
}

fn entry_exists(conn: &Connection, id: QueueId) -> Result<()> {
    conn.prepare_cached("SELECT 1 FROM queue WHERE id = ?1")
        .db()?
        .query_row([id.0], |_| Ok(()))
        .optional()
        .db()?
        .ok_or(Error::QueueEntryNotFound(id))
}

fn set_state(
    conn: &Connection,
    entry: QueueId,
    recipient: QueueRecipientId,
    state: RecipientState,
    reply: &str,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE queue_recipients SET state = ?1, last_reply = ?2 WHERE id = ?3 AND queue_id = ?4",
        )
        .db()?
        .execute(params![state.as_str(), reply, recipient.0, entry.0])
        .db()?;
    if n == 0 {
        return Err(Error::QueueRecipientNotFound { entry, recipient });
    }
    Ok(())
}

/// Inserts a queue entry (its body durable and `size` bytes long, or
/// inline) and its recipients; returns its id.
fn insert_entry(
    ctx: &mut WriteCtx<'_>,
    blobs: &BlobStore,
    entry: &NewQueueEntry,
    size: u64,
) -> Result<QueueId> {
    let conn = ctx.conn;
    match &entry.body {
        Some(body) => {
            if ensure_inline_blob(conn, blobs, &entry.blob, body)? {
                ctx.count_inline_body();
            }
        }
        None => ensure_blob(conn, blobs, &entry.blob, size)?,
    }
    let created = now();
    let id: i64 = conn
        .prepare_cached(
            "UPDATE queue_ids SET last = max(last, (SELECT coalesce(max(id), 0) FROM queue)) + 1
             RETURNING last",
        )
        .db()?
        .query_row([], |r| r.get(0))
        .db()?;
    conn.prepare_cached(
        "INSERT INTO queue(id, blob, size, sender, mail_params, client, helo, auth_user,
                               created, next_attempt)
             VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )
    .db()?
    .execute(params![
        &entry.blob.0[..],
        size as i64,
        entry.sender,
        entry.mail_params,
        entry.client,
        entry.helo,
        entry.auth_user,
        created,
        id
    ])
    .db()?;
    let mut insert_rcpt = conn
        .prepare_cached(
            "INSERT INTO queue_recipients(queue_id, address, params) VALUES (?1, ?2, ?3)",
        )
        .db()?;
    for r in &entry.recipients {
        insert_rcpt.execute(params![id, r.address, r.params]).db()?;
    }
    Ok(QueueId(id))
}

/// The size of an entry's body; for an inline body, after checking that it
/// is the one the entry's blob id names (on the caller's thread, so the
/// committer does not spend its time hashing).
fn body_size(store: &Store, entry: &NewQueueEntry) -> Result<u64> {
    match &entry.body {
        Some(body) if BlobId::of(body) != entry.blob => Err(Error::Database(
            "an inline body does not match its blob id".into(),
        )),
        Some(body) => Ok(body.len() as u64),
        None => store.blobs().size(&entry.blob),
    }
}

impl Store {
    /// Queues an accepted message and returns its id once the entry is
    /// durable (the body must already be durable: [`crate::BlobStore::write`]).
    /// This is the commit the SMTP `250` waits for.
    pub fn enqueue(&self, entry: NewQueueEntry) -> Result<QueueId> {
        if entry.recipients.is_empty() {
            return Err(Error::Database("a queue entry needs a recipient".into()));
        }
        let size = body_size(self, &entry)?;
        let blobs = self.blobs().clone();
        self.write(move |ctx| insert_entry(ctx, &blobs, &entry, size))
    }

    /// Every queue entry, oldest first.
    pub fn queue_entries(&self) -> Result<Vec<QueueEntry>> {
        self.read(|c| load_entries(c, "", &[], None))
    }

    /// One queue entry.
    pub fn queue_entry(&self, id: QueueId) -> Result<QueueEntry> {
        self.read(|c| load_entries(c, "WHERE id = ?1", &[id.0], None))?
            .pop()
            .ok_or(Error::QueueEntryNotFound(id))
    }

    /// Entries whose next attempt is due at `at` and that still have a
    /// pending recipient, oldest first, at most `limit`.
    pub fn queue_due(&self, at: Timestamp, limit: usize) -> Result<Vec<QueueEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            load_entries(
                c,
                "WHERE next_attempt <= ?1 AND EXISTS (SELECT 1 FROM queue_recipients r
                     WHERE r.queue_id = queue.id AND r.state = 'pending')",
                &[at],
                Some(limit),
            )
        })
    }

    /// Entries due at `at` that the local delivery pass has not settled
    /// (see [`Store::settle_local_pass`]), oldest first, at most `limit`.
    /// This includes an entry whose pass was cut short by a crash after its
    /// deliveries: it may have no pending recipient left, and settling it
    /// removes it.
    pub fn queue_local_due(&self, at: Timestamp, limit: usize) -> Result<Vec<QueueEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            load_entries(
                c,
                "WHERE local_done = 0 AND next_attempt <= ?1",
                &[at],
                Some(limit),
            )
        })
    }

    /// Ends the local delivery pass over an entry, in one transaction:
    /// records the final `results` of its local recipients (failed, or
    /// delivered by expansion), queues the delivery status `notification`
    /// for its failures (its body already durable), then removes the entry
    /// if no recipient is pending, or else sets it aside for remote delivery
    /// ([`Store::queue_local_due`] no longer lists it). A crash before this
    /// commit leaves the entry to the next pass, which finds the delivered
    /// recipients done and settles the rest, so a failure is never left
    /// without its notification.
    pub fn settle_local_pass(
        &self,
        id: QueueId,
        results: Vec<(QueueRecipientId, RecipientState, String)>,
        notification: Option<NewQueueEntry>,
    ) -> Result<LocalPassEnd> {
        let size = match &notification {
            Some(n) if n.recipients.is_empty() => {
                return Err(Error::Database("a queue entry needs a recipient".into()));
            }
            Some(n) => body_size(self, n)?,
            None => 0,
        };
        let blobs = self.blobs().clone();
        self.write(move |ctx| {
            entry_exists(ctx.conn, id)?;
            for (recipient, state, reply) in &results {
                set_state(ctx.conn, id, *recipient, *state, reply)?;
            }
            let notification = match &notification {
                Some(n) => Some(insert_entry(ctx, &blobs, n, size)?),
                None => None,
            };
            let removed = ctx
                .conn
                .prepare_cached(
                    "DELETE FROM queue WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue_recipients
                         WHERE queue_id = ?1 AND state = 'pending')",
                )
                .db()?
                .execute([id.0])
                .db()?
                > 0;
            if !removed {
                ctx.conn
                    .prepare_cached("UPDATE queue SET local_done = 1 WHERE id = ?1")
                    .db()?
                    .execute([id.0])
                    .db()?;
            }
            Ok(LocalPassEnd {
                removed,
                notification,
            })
        })
    }

    /// Delivers a queued message to local mailboxes. Each recipient in
    /// `deliveries` comes with the mailboxes it resolved to (one for an
    /// account, several for a list), each with the header prefix of its copy
    /// (its size, prefix plus body, is what that mailbox's quota is checked
    /// and charged for; a prefix that is not whole header lines is refused
    /// with [`Error::InvalidPrefix`]); the messages are added and the recipient
    /// is marked delivered in the same transaction, so a crash can neither
    /// lose nor duplicate them. A recipient is marked delivered when at least
    /// one of its mailboxes took the message; when none did (a full quota, a
    /// mailbox gone) it stays pending. Each mailbox's result is returned in
    /// place, for the caller to bounce or retry. A recipient delivered
    /// already is not delivered again. Returns once durable.
    pub fn deliver_from_queue(
        &self,
        id: QueueId,
        deliveries: Vec<(QueueRecipientId, Vec<LocalDelivery>)>,
        flags: Flags,
        internal_date: Option<Timestamp>,
    ) -> Result<Vec<Result<Vec<Result<Appended>>>>> {
        let date = internal_date.unwrap_or_else(now);
        self.write(move |ctx| {
            let (blob, size): (Vec<u8>, i64) = ctx
                .conn
                .prepare_cached("SELECT blob, size FROM queue WHERE id = ?1")
                .db()?
                .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .db()?
                .ok_or(Error::QueueEntryNotFound(id))?;
            let blob = BlobId(
                blob.try_into()
                    .map_err(|_| Error::Database(format!("queue entry {id}: bad blob id")))?,
            );
            let size = size as u64;
            let mut results = Vec::with_capacity(deliveries.len());
            for (recipient, copies) in deliveries {
                let state: Option<String> = ctx
                    .conn
                    .prepare_cached(
                        "SELECT state FROM queue_recipients WHERE id = ?1 AND queue_id = ?2",
                    )
                    .db()?
                    .query_row(params![recipient.0, id.0], |r| r.get(0))
                    .optional()
                    .db()?;
                match state.as_deref() {
                    None => {
                        results.push(Err(Error::QueueRecipientNotFound {
                            entry: id,
                            recipient,
                        }));
                        continue;
                    }
                    Some("delivered") => {
                        results.push(Err(Error::Database(format!(
                            "queue entry {id}: recipient {recipient} was delivered already"
                        ))));
                        continue;
                    }
                    Some(_) => {}
                }
                let mut each = Vec::with_capacity(copies.len());
                for LocalDelivery { mailbox, prefix } in copies {
                    let total = prefix.len() as u64 + size;
                    each.push(
                        check_prefix(&prefix)
                            .and_then(|()| limits(ctx.conn, mailbox))
                            .and_then(|l| check_room(ctx.conn, &l, total, total))
                            .and_then(|()| {
                                insert(ctx, mailbox, &prefix, &blob, size, &flags, date)
                            }),
                    );
                }
                if each.iter().any(Result::is_ok) {
                    set_state(ctx.conn, id, recipient, RecipientState::Delivered, "")?;
                }
                results.push(Ok(each));
            }
            Ok(results)
        })
    }

    /// Adds recipients to a queue entry: the remote addresses a local one
    /// expanded to (an alias or list member in another domain), so that they
    /// wait for outbound delivery with the same body. An address the entry
    /// has already (in any case) is not added again, so a pass repeated
    /// after a crash adds nothing twice. Returns the ids of those added.
    pub fn add_queue_recipients(
        &self,
        id: QueueId,
        recipients: Vec<NewRecipient>,
    ) -> Result<Vec<QueueRecipientId>> {
        self.write(move |ctx| {
            entry_exists(ctx.conn, id)?;
            let mut insert_rcpt = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO queue_recipients(queue_id, address, params)
                     SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM queue_recipients
                         WHERE queue_id = ?1 AND lower(address) = lower(?2))
                     RETURNING id",
                )
                .db()?;
            let mut added = Vec::new();
            for r in &recipients {
                let id = insert_rcpt
                    .query_row(params![id.0, r.address, r.params], |row| row.get(0))
                    .optional()
                    .db()?;
                added.extend(id.map(QueueRecipientId));
            }
            Ok(added)
        })
    }

    /// Records final results (`Delivered` after a remote server's `250`,
    /// `Failed` with the reply that refused it) or keeps a recipient
    /// `Pending` with its last error. Returns once durable.
    pub fn set_recipient_results(
        &self,
        id: QueueId,
        results: Vec<(QueueRecipientId, RecipientState, String)>,
    ) -> Result<()> {
        self.write(move |ctx| {
            entry_exists(ctx.conn, id)?;
            for (recipient, state, reply) in &results {
                set_state(ctx.conn, id, *recipient, *state, reply)?;
            }
            Ok(())
        })
    }

    /// Counts an attempt and sets when the next one is due.
    pub fn defer_queue_entry(&self, id: QueueId, next_attempt: Timestamp) -> Result<()> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE queue SET attempts = attempts + 1, next_attempt = ?1 WHERE id = ?2",
                )
                .db()?
                .execute(params![next_attempt, id.0])
                .db()?;
            if n == 0 {
                return Err(Error::QueueEntryNotFound(id));
            }
            Ok(())
        })
    }

    /// Removes a queue entry whatever its recipients' state (`ironpost
    /// queue remove`); its body goes once nothing else references it.
    pub fn remove_queue_entry(&self, id: QueueId) -> Result<()> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("DELETE FROM queue WHERE id = ?1")
                .db()?
                .execute([id.0])
                .db()?;
            if n == 0 {
                return Err(Error::QueueEntryNotFound(id));
            }
            Ok(())
        })
    }

    /// Removes the entry if no recipient is pending; returns whether it did.
    pub fn finish_queue_entry(&self, id: QueueId) -> Result<bool> {
        self.write(move |ctx| {
            entry_exists(ctx.conn, id)?;
            let n = ctx
                .conn
                .prepare_cached(
                    "DELETE FROM queue WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue_recipients
                         WHERE queue_id = ?1 AND state = 'pending')",
                )
                .db()?
                .execute([id.0])
                .db()?;
            Ok(n > 0)
        })
    }
}
