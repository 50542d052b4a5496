//! Messages: append and delivery, flags, expunge, copy and move, reading
//! bodies (SPEC D-4).
//!
//! A message row is (mailbox, UID) → modseq, flags, internal date, size, the
//! body's blob id and a header prefix. The prefix holds the header fields of
//! this delivery alone (`Delivered-To:`): the blob is shared by every mailbox
//! the message went to, so what differs per mailbox cannot be in it. Reading a
//! message yields the prefix, then the blob ([`MessageReader`]), and the size
//! counts both. Every change takes the mailbox's next modseq. UIDs come
//! from the mailbox's UIDNEXT, which only grows (also across expunges and
//! restarts, because it is a column, not `max(uid) + 1`). Quota usage and blob
//! reference counts are kept by triggers on the message rows, so they are
//! exact whatever happens; quota is checked before a row is added.
//!
//! A new body up to [`crate::StoreConfig::inline_body_max`] is kept in its
//! `blob_data` row, inserted by the same write job as the message rows, so it is
//! durable with their commit; a larger one is a file made durable before the
//! job is queued. Either way the blob is content-addressed: bytes stored
//! already, inline or as a file, are referenced, not stored again.

use std::io::{Cursor, Read};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::blob::{BlobId, BlobStore};
use crate::commit::WriteCtx;
use crate::error::{DbResult, Error, Result};
use crate::feed::Change;
use crate::mailbox::{Mailbox, load_mailbox};
use crate::reader::{Body, MessageReader};
use crate::store::Snapshot;
use crate::types::{
    FlagOp, Flags, MailboxId, SystemFlags, Timestamp, flags_from_db, flags_to_db, keywords_from_db,
    now,
};

/// A message's index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its UID.
    pub uid: u32,
    /// The modseq of its last change.
    pub modseq: u64,
    /// Its flags.
    pub flags: Flags,
    /// Its internal date.
    pub internal_date: Timestamp,
    /// Its size in octets as read: the header prefix plus the body file.
    /// This is the IMAP `RFC822.SIZE` and what the quota counts.
    pub size: u64,
    /// The length of its header prefix: header lines stored with this message
    /// row alone (`Delivered-To:`) and read in front of the body file, which
    /// starts at this offset. 0 for a message appended as it is.
    pub prefix_len: u64,
    /// Its body file, shared with every other message of the same content.
    pub blob: BlobId,
}

/// What a mailbox listing keeps of each message (an IMAP session's selected
/// mailbox): its index entry without the whereabouts of its bytes, and its
/// flags as bits and keywords, so that reading a mailbox allocates nothing
/// per message that has no keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Indexed {
    /// Its UID.
    pub uid: u32,
    /// The modseq of its last change.
    pub modseq: u64,
    /// Its system flags.
    pub system: SystemFlags,
    /// Its keywords (empty for most messages).
    pub keywords: Flags,
    /// Its internal date.
    pub internal_date: Timestamp,
    /// Its size in octets, as [`Message::size`].
    pub size: u64,
}

impl Indexed {
    /// A listing entry (for a host's own tests; the store reads them).
    pub fn new(
        uid: u32,
        modseq: u64,
        flags: &Flags,
        internal_date: Timestamp,
        size: u64,
    ) -> Indexed {
        let (system, keywords) = SystemFlags::split(flags);
        Indexed {
            uid,
            modseq,
            system,
            keywords,
            internal_date,
            size,
        }
    }

    /// Its flags as one set.
    pub fn flags(&self) -> Flags {
        let mut flags: Flags = self.system.iter().cloned().collect();
        flags.extend(self.keywords.iter().cloned());
        flags
    }
}

/// Where a new message went (IMAP `APPENDUID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its UIDVALIDITY.
    pub uidvalidity: u32,
    /// The new message's UID.
    pub uid: u32,
    /// Its modseq.
    pub modseq: u64,
}

/// The outcome of a copy or move (IMAP `COPYUID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The destination's UIDVALIDITY.
    pub uidvalidity: u32,
    /// (source UID, new destination UID) for each message copied, in UID order.
    pub uids: Vec<(u32, u32)>,
}

/// One message after a [`Store::store_flags`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    /// Its UID.
    pub uid: u32,
    /// Its modseq now.
    pub modseq: u64,
    /// Its flags now.
    pub flags: Flags,
    /// Whether this call changed them.
    pub changed: bool,
}

/// The outcome of a [`Store::store_flags`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagsResult {
    /// The messages matched (changed or not).
    pub updated: Vec<FlagUpdate>,
    /// UIDs left alone because they changed after `unchanged_since`
    /// (CONDSTORE `MODIFIED`).
    pub conflicts: Vec<u32>,
}

/// The columns [`row_to_message`] reads, as a literal for `concat!`.
macro_rules! message_columns {
    () => {
        "mailbox_id, uid, modseq, flags, keywords, internal_date, size, blob, length(prefix)"
    };
}

/// A message row as [`message_columns`] lists it, with its blob hash
/// checked apart (by [`finish`]), so that a bad hash is reported as
/// corruption. Text and hash are read in place, not copied out.
fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Message, Result<BlobId>)> {
    let bits: i64 = r.get(3)?;
    let keywords = match r.get_ref(4)? {
        ValueRef::Text(text) => std::str::from_utf8(text).map_err(rusqlite::Error::Utf8Error)?,
        _ => "",
    };
    let blob = match r.get_ref(7)? {
        ValueRef::Blob(hash) => BlobId::from_slice(hash),
        _ => BlobId::from_slice(&[]),
    };
    Ok((
        Message {
            mailbox: MailboxId(r.get(0)?),
            uid: r.get::<_, i64>(1)? as u32,
            modseq: r.get::<_, i64>(2)? as u64,
            flags: flags_from_db(bits, keywords),
            internal_date: r.get(5)?,
            size: r.get::<_, i64>(6)? as u64,
            prefix_len: r.get::<_, i64>(8)? as u64,
            blob: BlobId([0; 32]),
        },
        blob,
    ))
}

fn finish(row: (Message, Result<BlobId>)) -> Result<Message> {
    let (mut m, blob) = row;
    m.blob = blob?;
    Ok(m)
}

fn get_message(conn: &Connection, mailbox: MailboxId, uid: u32) -> Result<Option<Message>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE mailbox_id = ?1 AND uid = ?2"
    ))
    .db()?
    .query_row(params![mailbox.0, uid], row_to_message)
    .optional()
    .db()?
    .map(finish)
    .transpose()
}

/// A message's header prefix.
fn get_prefix(conn: &Connection, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>> {
    conn.prepare_cached("SELECT prefix FROM messages WHERE mailbox_id = ?1 AND uid = ?2")
        .db()?
        .query_row(params![mailbox.0, uid], |r| r.get(0))
        .optional()
        .db()?
        .ok_or(Error::MessageNotFound { mailbox, uid })
}

/// Refuses a header prefix that is not whole header field lines: it must be
/// empty or end with CRLF, have no bare CR or LF, no empty line (that would
/// end the header), and not start with folding white space.
pub(crate) fn check_prefix(prefix: &[u8]) -> Result<()> {
    let bad = |reason| Err(Error::InvalidPrefix { reason });
    if prefix.is_empty() {
        return Ok(());
    }
    if !prefix.ends_with(b"\r\n") {
        return bad("it does not end with CRLF");
    }
    if matches!(prefix[0], b' ' | b'\t') {
        return bad("it starts with folding white space");
    }
    for (i, &b) in prefix.iter().enumerate() {
        let bare_cr = b == b'\r' && prefix.get(i + 1) != Some(&b'\n');
        let bare_lf = b == b'\n' && (i == 0 || prefix[i - 1] != b'\r');
        if bare_cr || bare_lf {
            return bad("it has a bare CR or LF");
        }
        if b == b'\n' && (i < 2 || prefix[i - 2] == b'\n') {
            return bad("it has an empty line");
        }
    }
    Ok(())
}

pub(crate) fn all_uids(conn: &Connection, mailbox: MailboxId) -> Result<Vec<u32>> {
    let mut stmt = conn
        .prepare_cached("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")
        .db()?;
    let rows = stmt
        .query_map([mailbox.0], |r| r.get::<_, i64>(0).map(|u| u as u32))
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// Takes the mailbox's next modseq.
fn bump_modseq(conn: &Connection, mailbox: MailboxId) -> Result<u64> {
    conn.prepare_cached(
        "UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1
         RETURNING highest_modseq",
    )
    .db()?
    .query_row([mailbox.0], |r| r.get::<_, i64>(0))
    .optional()
    .db()?
    .map(|m| m as u64)
    .ok_or(Error::NoSuchMailbox(mailbox))
}

/// The owner's quota and the domain's limits for a message into `mailbox`.
pub(crate) struct Limits {
    account: i64,
    quota: u64,
    used: u64,
    domain: i64,
    max_message: Option<u64>,
    max_total: Option<u64>,
}

/// Reads [`Limits`] for `mailbox`. The account's address, which only a
/// refusal names, is read by [`check_room`] when it refuses, so that the
/// write path builds no string per message.
pub(crate) fn limits(conn: &Connection, mailbox: MailboxId) -> Result<Limits> {
    conn.prepare_cached(
        "SELECT a.id, a.quota_bytes, a.used_bytes, d.id, d.max_message_size, d.max_total_size
         FROM mailboxes m JOIN accounts a ON a.id = m.account_id JOIN domains d ON d.id = a.domain_id
         WHERE m.id = ?1",
    )
    .db()?
    .query_row([mailbox.0], |r| {
        Ok(Limits {
            account: r.get(0)?,
            quota: r.get::<_, i64>(1)? as u64,
            used: r.get::<_, i64>(2)? as u64,
            domain: r.get(3)?,
            max_message: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            max_total: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        })
    })
    .optional()
    .db()?
    .ok_or(Error::NoSuchMailbox(mailbox))
}

/// Refuses `needed` more bytes (in messages of at most `largest` bytes) when
/// the quota or the domain's limits do not allow them.
pub(crate) fn check_room(conn: &Connection, l: &Limits, needed: u64, largest: u64) -> Result<()> {
    if let Some(limit) = l.max_message
        && largest > limit
    {
        return Err(Error::MessageTooLarge {
            size: largest,
            limit,
        });
    }
    if l.quota > 0 && l.used + needed > l.quota {
        return Err(Error::QuotaExceeded {
            account: account_address(conn, l.account)?,
            used: l.used,
            quota: l.quota,
            needed,
        });
    }
    if let Some(limit) = l.max_total {
        let total: i64 = conn
            .prepare_cached(
                "SELECT coalesce(sum(used_bytes), 0) FROM accounts WHERE domain_id = ?1",
            )
            .db()?
            .query_row([l.domain], |r| r.get(0))
            .db()?;
        if total as u64 + needed > limit {
            return Err(Error::QuotaExceeded {
                account: account_address(conn, l.account)?,
                used: total as u64,
                quota: limit,
                needed,
            });
        }
    }
    Ok(())
}

/// The address of `account` as it was given (for an error).
fn account_address(conn: &Connection, account: i64) -> Result<String> {
    conn.prepare_cached(
        "SELECT a.display_local || '@' || d.name FROM accounts a
         JOIN domains d ON d.id = a.domain_id WHERE a.id = ?1",
    )
    .db()?
    .query_row([account], |r| r.get(0))
    .db()
}

/// Makes sure the blob row exists, and the file too (garbage collection runs
/// on the committer thread, so the file cannot vanish between this check and
/// the commit). A row that keeps the same bytes inline serves as it is.
pub(crate) fn ensure_blob(
    conn: &Connection,
    blobs: &BlobStore,
    id: &BlobId,
    size: u64,
) -> Result<()> {
    if !blobs.path(id).is_file() {
        return Err(Error::BlobMissing(*id));
    }
    conn.prepare_cached(
        "INSERT INTO blobs(hash, size, refs) VALUES (?1, ?2, 0) ON CONFLICT(hash) DO NOTHING",
    )
    .db()?
    .execute(params![&id.0[..], size as i64])
    .db()?;
    Ok(())
}

/// Whether the body `id` is kept inline (in `blob_data`): `None` when it has
/// no `blobs` row.
fn inline_row(conn: &Connection, id: &BlobId) -> Result<Option<bool>> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM blob_data WHERE hash = ?1) FROM blobs WHERE hash = ?1",
    )
    .db()?
    .query_row([&id.0[..]], |r| r.get(0))
    .optional()
    .db()
}

/// Whether a body is stored: in `blob_data`, or as a file.
pub(crate) fn body_exists(conn: &Connection, blobs: &BlobStore, id: &BlobId) -> Result<bool> {
    Ok(inline_row(conn, id)? == Some(true) || blobs.path(id).is_file())
}

/// Makes sure a body kept in the database has its blob row, `body` being
/// its bytes and `id` their hash (the caller computed it from them). When
/// the same content is stored already, inline or as a file, that row serves
/// and nothing is stored twice; a row whose file has gone missing takes the
/// bytes, which are at hand. Returns whether the bytes were stored.
///
/// New content is the usual case (an IMAP APPEND, a delivery), so the row
/// is inserted first and looked at only when it was there already: two
/// statements for new bytes rather than a lookup and two inserts.
pub(crate) fn ensure_inline_blob(
    conn: &Connection,
    blobs: &BlobStore,
    id: &BlobId,
    body: &[u8],
) -> Result<bool> {
    let added = conn
        .prepare_cached(
            "INSERT INTO blobs(hash, size, refs) VALUES (?1, ?2, 0) ON CONFLICT(hash) DO NOTHING",
        )
        .db()?
        .execute(params![&id.0[..], body.len() as i64])
        .db()?;
    if added == 0 && (inline_row(conn, id)? == Some(true) || blobs.path(id).is_file()) {
        // Stored already, inline or as a file.
        return Ok(false);
    }
    // New, or a row whose file has gone missing.
    insert_blob_data(conn, id, body)?;
    Ok(true)
}

fn insert_blob_data(conn: &Connection, id: &BlobId, body: &[u8]) -> Result<()> {
    conn.prepare_cached("INSERT INTO blob_data(hash, data) VALUES (?1, ?2)")
        .db()?
        .execute(params![&id.0[..], body])
        .db()?;
    Ok(())
}

/// A body on its way to the write job that references it.
enum NewBody {
    /// In its file, durable already ([`BlobStore::write_durable`]), of this size.
    File(BlobId, u64),
    /// Bytes to keep in the database (`blob_data`), written by the job's own
    /// transaction; the id is their hash.
    Inline(BlobId, Vec<u8>),
}

impl NewBody {
    /// Bytes in memory: inline up to `max`, else written to a file.
    fn from_bytes(blobs: &BlobStore, body: &[u8], max: usize) -> Result<NewBody> {
        if body.len() <= max {
            Ok(NewBody::Inline(BlobId::of(body), body.to_vec()))
        } else {
            let (id, size) = blobs.write_durable(body)?;
            Ok(NewBody::File(id, size))
        }
    }

    /// A stream: up to `max + 1` bytes are read into memory; a body that
    /// ends within `max` is kept inline, a longer one streams on into a file
    /// (the bytes read so far, then the rest).
    fn from_reader(blobs: &BlobStore, mut body: impl Read, max: usize) -> Result<NewBody> {
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        let mut head = Vec::with_capacity(max.min(16 * 1024));
        body.by_ref()
            .take(limit)
            .read_to_end(&mut head)
            .map_err(|e| Error::io("the message body being appended", e))?;
        if head.len() <= max {
            return Ok(NewBody::Inline(BlobId::of(&head), head));
        }
        let (id, size) = blobs.write_durable(Cursor::new(head).chain(body))?;
        Ok(NewBody::File(id, size))
    }
}

/// Adds one message row with the mailbox's next UID and modseq: `prefix`
/// in front of the body `blob` of `body_size` octets. The row's size (and
/// so the quota charged by the trigger) is both.
pub(crate) fn insert(
    ctx: &mut WriteCtx<'_>,
    mailbox: MailboxId,
    prefix: &[u8],
    blob: &BlobId,
    body_size: u64,
    flags: &Flags,
    date: Timestamp,
) -> Result<Appended> {
    let size = prefix.len() as u64 + body_size;
    let (uid, uidvalidity, modseq): (i64, i64, i64) = ctx
        .conn
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1
             WHERE id = ?1 RETURNING uidnext - 1, uidvalidity, highest_modseq",
        )
        .db()?
        .query_row([mailbox.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .db()?
        .ok_or(Error::NoSuchMailbox(mailbox))?;
    if uid >= i64::from(u32::MAX) {
        return Err(Error::UidsExhausted(mailbox));
    }
    let (bits, keywords) = flags_to_db(flags);
    ctx.conn
        .prepare_cached(
            "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internal_date, size, blob,
                                  prefix)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .db()?
        .execute(params![
            mailbox.0,
            uid,
            modseq,
            bits,
            keywords,
            date,
            size as i64,
            &blob.0[..],
            prefix
        ])
        .db()?;
    ctx.count_messages(1);
    let (uid, modseq) = (uid as u32, modseq as u64);
    ctx.publish(
        mailbox,
        Change::Appended {
            uid,
            modseq,
            flags: flags.clone(),
            size,
            internal_date: date,
        },
    );
    Ok(Appended {
        mailbox,
        uidvalidity: uidvalidity as u32,
        uid,
        modseq,
    })
}

/// Removes one message row, recording the expunge.
fn remove(ctx: &mut WriteCtx<'_>, mailbox: MailboxId, uid: u32) -> Result<()> {
    let modseq = bump_modseq(ctx.conn, mailbox)?;
    ctx.conn
        .prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2")
        .db()?
        .execute(params![mailbox.0, uid])
        .db()?;
    ctx.conn
        .prepare_cached(
            "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
        )
        .db()?
        .execute(params![mailbox.0, uid, modseq as i64])
        .db()?;
    ctx.publish(mailbox, Change::Expunged { uid, modseq });
    Ok(())
}

/// Copies (or moves) the messages `uids` of `src` to `dst`: new UIDs, same
/// header prefix and body, same flags and internal date.
pub(crate) fn transfer(
    ctx: &mut WriteCtx<'_>,
    blobs: &BlobStore,
    src: MailboxId,
    uids: &[u32],
    dst: MailboxId,
    remove_source: bool,
) -> Result<Copied> {
    load_mailbox(ctx.conn, src)?;
    let mut messages = Vec::new();
    for &uid in uids {
        if let Some(m) = get_message(ctx.conn, src, uid)? {
            messages.push(m);
        }
    }
    messages.sort_by_key(|m| m.uid);
    messages.dedup_by_key(|m| m.uid);
    let dst_limits = limits(ctx.conn, dst)?;
    let same_account = limits(ctx.conn, src)?.account == dst_limits.account;
    if !(remove_source && same_account) {
        let needed = messages.iter().map(|m| m.size).sum();
        let largest = messages.iter().map(|m| m.size).max().unwrap_or(0);
        check_room(ctx.conn, &dst_limits, needed, largest)?;
    }
    let mut out = Copied {
        uidvalidity: load_mailbox(ctx.conn, dst)?.uidvalidity,
        uids: Vec::with_capacity(messages.len()),
    };
    for m in &messages {
        if !body_exists(ctx.conn, blobs, &m.blob)? {
            return Err(Error::BlobMissing(m.blob));
        }
        let prefix = if m.prefix_len == 0 {
            Vec::new()
        } else {
            get_prefix(ctx.conn, src, m.uid)?
        };
        let body_size = m.size.saturating_sub(m.prefix_len);
        let new = insert(
            ctx,
            dst,
            &prefix,
            &m.blob,
            body_size,
            &m.flags,
            m.internal_date,
        )?;
        out.uids.push((m.uid, new.uid));
        if remove_source {
            remove(ctx, src, m.uid)?;
        }
    }
    Ok(out)
}

impl Store {
    /// Appends a message (IMAP `APPEND`). A body up to
    /// [`crate::StoreConfig::inline_body_max`] is kept in the database and
    /// written by the same transaction as the message row; a larger one is
    /// written to the blob store and made durable first. Returns once body and
    /// row are durable.
    pub fn append(
        &self,
        mailbox: MailboxId,
        body: &[u8],
        flags: Flags,
        internal_date: Option<Timestamp>,
    ) -> Result<Appended> {
        let body = NewBody::from_bytes(self.blobs(), body, self.config().inline_body_max)?;
        self.append_body(mailbox, body, flags, internal_date)
    }

    /// [`Store::append`] streaming the body from a reader. At most
    /// [`crate::StoreConfig::inline_body_max`] + 1 bytes are held in memory:
    /// a body that ends within the threshold is kept inline, a longer one
    /// streams on into a file.
    pub fn append_from(
        &self,
        mailbox: MailboxId,
        body: impl Read,
        flags: Flags,
        internal_date: Option<Timestamp>,
    ) -> Result<Appended> {
        let body = NewBody::from_reader(self.blobs(), body, self.config().inline_body_max)?;
        self.append_body(mailbox, body, flags, internal_date)
    }

    fn append_body(
        &self,
        mailbox: MailboxId,
        body: NewBody,
        flags: Flags,
        internal_date: Option<Timestamp>,
    ) -> Result<Appended> {
        let mut results = self.deliver_body(body, vec![mailbox], flags, internal_date)?;
        results.pop().unwrap_or(Err(Error::NoSuchMailbox(mailbox)))
    }

    /// Delivers one body, already in the blob store (see
    /// [`crate::BlobStore::write`]), to many mailboxes in one transaction: the
    /// body is stored once however many recipients. Each mailbox gets its own
    /// result (a full quota refuses only that one). Returns once durable.
    pub fn deliver(
        &self,
        blob: BlobId,
        mailboxes: &[MailboxId],
        flags: Flags,
        internal_date: Option<Timestamp>,
    ) -> Result<Vec<Result<Appended>>> {
        // `BlobStore::write` made the body durable, directory included.
        let size = self.blobs().size(&blob)?;
        let body = NewBody::File(blob, size);
        self.deliver_body(body, mailboxes.to_vec(), flags, internal_date)
    }

    /// [`Store::deliver`] of a body in memory: stores it once (inline up to
    /// [`crate::StoreConfig::inline_body_max`], else as a file), then delivers.
    pub fn deliver_bytes(
        &self,
        body: &[u8],
        mailboxes: &[MailboxId],
        flags: Flags,
        internal_date: Option<Timestamp>,
    ) -> Result<Vec<Result<Appended>>> {
        let body = NewBody::from_bytes(self.blobs(), body, self.config().inline_body_max)?;
        self.deliver_body(body, mailboxes.to_vec(), flags, internal_date)
    }

    fn deliver_body(
        &self,
        body: NewBody,
        mailboxes: Vec<MailboxId>,
        flags: Flags,
        internal_date: Option<Timestamp>,
    ) -> Result<Vec<Result<Appended>>> {
        let blobs = self.blobs().clone();
        let date = internal_date.unwrap_or_else(now);
        // No savepoint: this job fails only before its first message row
        // (storing the body) or when every mailbox refused it (removing the
        // body again); a refusal or an error of one mailbox is that
        // mailbox's result, not a failure. So a failed job has added no
        // message and may leave at most a body row nothing references, which
        // garbage collection removes and the next delivery of the same bytes
        // reuses.
        self.write_without_savepoint(move |ctx| {
            let (blob, size, stored_inline) = match &body {
                NewBody::File(id, size) => {
                    ensure_blob(ctx.conn, &blobs, id, *size)?;
                    (*id, *size, false)
                }
                NewBody::Inline(id, bytes) => {
                    let stored = ensure_inline_blob(ctx.conn, &blobs, id, bytes)?;
                    (*id, bytes.len() as u64, stored)
                }
            };
            let mut results = Vec::with_capacity(mailboxes.len());
            for mailbox in mailboxes {
                let one = limits(ctx.conn, mailbox)
                    .and_then(|l| check_room(ctx.conn, &l, size, size))
                    .and_then(|()| insert(ctx, mailbox, &[], &blob, size, &flags, date));
                results.push(one);
            }
            if stored_inline {
                if results.iter().any(Result::is_ok) {
                    ctx.count_inline_body();
                } else {
                    // Refused everywhere: keep no bytes nothing references.
                    ctx.conn
                        .prepare_cached("DELETE FROM blobs WHERE hash = ?1 AND refs <= 0")
                        .db()?
                        .execute([&blob.0[..]])
                        .db()?;
                }
            }
            Ok(results)
        })
    }

    /// A mailbox and its listing in UID order, read in one snapshot (so
    /// that its UIDNEXT and the listing agree): [`Store::messages`] without
    /// what it takes to read each message, at a fraction of the cost.
    pub fn index(&self, mailbox: MailboxId) -> Result<(Mailbox, Vec<Indexed>)> {
        self.read(|c| {
            let found = load_mailbox(c, mailbox)?;
            let mut stmt = c
                .prepare_cached(
                    "SELECT uid, modseq, flags, keywords, internal_date, size \
                     FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
                )
                .db()?;
            let rows = stmt
                .query_map([mailbox.0], |r| {
                    let keywords = match r.get_ref(3)? {
                        ValueRef::Text(text) => keywords_from_db(
                            std::str::from_utf8(text).map_err(rusqlite::Error::Utf8Error)?,
                        )
                        .collect(),
                        _ => Flags::new(),
                    };
                    Ok(Indexed {
                        uid: r.get::<_, i64>(0)? as u32,
                        modseq: r.get::<_, i64>(1)? as u64,
                        system: SystemFlags::from_db(r.get(2)?),
                        keywords,
                        internal_date: r.get(4)?,
                        size: r.get::<_, i64>(5)? as u64,
                    })
                })
                .db()?;
            Ok((found, rows.map(|r| r.db()).collect::<Result<_>>()?))
        })
    }

    /// The messages of a mailbox in UID order.
    pub fn messages(&self, mailbox: MailboxId) -> Result<Vec<Message>> {
        self.read(|c| {
            load_mailbox(c, mailbox)?;
            let mut stmt = c
                .prepare_cached(concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM messages WHERE mailbox_id = ?1 ORDER BY uid"
                ))
                .db()?;
            let rows = stmt.query_map([mailbox.0], row_to_message).db()?;
            rows.map(|r| r.db().and_then(finish)).collect()
        })
    }

    /// The messages of a mailbox whose UID falls in any of the inclusive
    /// ranges `uids`, in UID order, read in one snapshot (IMAP `UID FETCH`
    /// and friends after `SequenceSet::to_ranges`).
    ///
    /// The ranges are expected sorted and non-overlapping, as that call
    /// gives them; nothing else is assumed. A range whose start is above its
    /// end is read the other way round (IMAP's `5:3` is `3:5`), ranges may
    /// reach past UIDNEXT or up to `u32::MAX` (one query each, whatever its
    /// width), and ranges that are out of order or overlap still give each
    /// message once, in UID order, at the cost of a sort. A missing mailbox
    /// is [`Error::NoSuchMailbox`], as for [`Store::messages`].
    pub fn messages_in(&self, mailbox: MailboxId, uids: &[(u32, u32)]) -> Result<Vec<Message>> {
        self.read(|c| {
            let tx = Snapshot::begin(c)?;
            load_mailbox(&tx, mailbox)?;
            let mut stmt = tx
                .prepare_cached(concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM messages
                     WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid"
                ))
                .db()?;
            let mut out = Vec::new();
            for &(a, b) in uids {
                let (low, high) = (a.min(b), a.max(b));
                let rows = stmt
                    .query_map(params![mailbox.0, low, high], row_to_message)
                    .db()?;
                for row in rows {
                    out.push(finish(row.db()?)?);
                }
            }
            if !out.windows(2).all(|w| w[0].uid < w[1].uid) {
                out.sort_by_key(|m| m.uid);
                out.dedup_by_key(|m| m.uid);
            }
            Ok(out)
        })
    }

    /// Reads the messages whose UID falls in the ranges `uids` (as for
    /// [`Store::messages_in`]), in UID order, through one read connection
    /// and one statement: `f` gets each message's UID and its bytes (header
    /// prefix and body), or with `header_only` the bytes up to and including
    /// the empty line that ends its header (all of them when it has none).
    /// A body that cannot be read is an error for its message alone; `f`
    /// returning false stops the reading. This is the way to read many
    /// messages (IMAP SEARCH and SORT): one [`Store::open_message`] per
    /// message costs a pooled connection and a query each.
    pub fn read_messages_in(
        &self,
        mailbox: MailboxId,
        uids: &[(u32, u32)],
        header_only: bool,
        mut f: impl FnMut(u32, Result<Vec<u8>>) -> bool,
    ) -> Result<()> {
        // A header comes from the header cache when it can. Otherwise one
        // kept inline is read through an incremental blob handle, as far as
        // its empty line (SQLite reads a whole column otherwise, overflow
        // pages and all), and one in a file from its file; either is then
        // cached.
        let sql = if header_only {
            "SELECT m.uid, m.prefix, m.blob, m.size, NULL FROM messages m
             WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
        } else {
            "SELECT m.uid, m.prefix, m.blob, m.size, d.data FROM messages m
             LEFT JOIN blob_data d ON d.hash = m.blob
             WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
        };
        self.read(|c| {
            let tx = Snapshot::begin(c)?;
            load_mailbox(&tx, mailbox)?;
            let mut stmt = tx.prepare_cached(sql).db()?;
            let mut handle: Option<rusqlite::blob::Blob<'_>> = None;
            for &(a, b) in uids {
                let mut rows = stmt.query(params![mailbox.0, a.min(b), a.max(b)]).db()?;
                while let Some(row) = rows.next().db()? {
                    let uid = row.get::<_, i64>(0).db()? as u32;
                    let prefix: Vec<u8> = row.get(1).db()?;
                    let hash = row.get_ref(2).db()?.as_blob().unwrap_or_default();
                    let size = row.get::<_, i64>(3).db()? as u64;
                    let bytes = if header_only {
                        self.header(&tx, &mut handle, prefix, hash, size)
                    } else {
                        let inline: Option<Vec<u8>> = row.get(4).db()?;
                        self.message_bytes(prefix, hash, size, inline, false)
                    };
                    if !f(uid, bytes) {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })
    }

    /// The header of one message row for [`Store::read_messages_in`]:
    /// `prefix` and the header of its body, from the cache, else read and
    /// cached.
    fn header<'c>(
        &self,
        conn: &'c Connection,
        handle: &mut Option<rusqlite::blob::Blob<'c>>,
        mut prefix: Vec<u8>,
        hash: &[u8],
        size: u64,
    ) -> Result<Vec<u8>> {
        let blob = BlobId::from_slice(hash)?;
        if let Some(header) = self.headers().get(&blob) {
            prefix.extend_from_slice(&header);
            return Ok(prefix);
        }
        let prefix_len = prefix.len();
        let rowid: Option<i64> = conn
            .prepare_cached("SELECT rowid FROM blob_data WHERE hash = ?1")
            .db()?
            .query_row([hash], |r| r.get(0))
            .optional()
            .db()?;
        let header = match rowid {
            Some(rowid) => inline_header(conn, handle, rowid, prefix, hash, size)?,
            None => self.message_bytes(prefix, hash, size, None, true)?,
        };
        // The header of prefix and body together is the prefix (header
        // lines, never an empty one) and the header of the body.
        if let Some(body_header) = header.get(prefix_len..) {
            self.headers().insert(blob, body_header);
        }
        Ok(header)
    }

    /// A message's body and its length: the bytes kept in the database
    /// (`inline`), else the blob's file.
    fn body(&self, blob: &BlobId, inline: Option<Vec<u8>>) -> Result<(Body, u64)> {
        Ok(match inline {
            Some(bytes) => {
                let len = bytes.len() as u64;
                (Body::Inline(Cursor::new(bytes)), len)
            }
            None => {
                let file = self.blobs().open_file(blob)?;
                let len = file
                    .metadata()
                    .map_err(|e| Error::io(self.blobs().path(blob), e))?
                    .len();
                (Body::File(file), len)
            }
        })
    }

    /// The bytes of one message row for [`Store::read_messages_in`].
    fn message_bytes(
        &self,
        prefix: Vec<u8>,
        hash: &[u8],
        size: u64,
        inline: Option<Vec<u8>>,
        header_only: bool,
    ) -> Result<Vec<u8>> {
        let blob = BlobId::from_slice(hash)?;
        if let (false, Some(body)) = (header_only, &inline) {
            // Kept inline and read whole: the bytes are here already.
            if (prefix.len() + body.len()) as u64 != size {
                return Err(Error::BlobCorrupt(blob));
            }
            return Ok(if prefix.is_empty() {
                inline.unwrap_or_default()
            } else {
                [prefix.as_slice(), body].concat()
            });
        }
        let (body, body_size) = self.body(&blob, inline)?;
        if prefix.len() as u64 + body_size != size {
            return Err(Error::BlobCorrupt(blob));
        }
        let mut reader = MessageReader::new(prefix, body, body_size);
        let io = |e| Error::io(self.blobs().path(&blob), e);
        let mut out = Vec::with_capacity(if header_only { 4096 } else { size as usize });
        if !header_only {
            reader.read_to_end(&mut out).map_err(io)?;
            return Ok(out);
        }
        let mut chunk = [0u8; 4096];
        loop {
            let n = reader.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Ok(out);
            }
            let from = out.len().saturating_sub(3);
            out.extend_from_slice(&chunk[..n]);
            if let Some(end) = header_end(&out, from) {
                out.truncate(end);
                return Ok(out);
            }
        }
    }

    /// One message.
    pub fn message(&self, mailbox: MailboxId, uid: u32) -> Result<Message> {
        self.read(|c| get_message(c, mailbox, uid))?
            .ok_or(Error::MessageNotFound { mailbox, uid })
    }

    /// What changed since `modseq` (CONDSTORE/QRESYNC): the messages with a
    /// greater modseq, and the UIDs expunged after it.
    pub fn changes_since(
        &self,
        mailbox: MailboxId,
        modseq: u64,
    ) -> Result<(Vec<Message>, Vec<u32>)> {
        self.read(|c| {
            let tx = Snapshot::begin(c)?;
            load_mailbox(&tx, mailbox)?;
            let changed = {
                let mut stmt = tx
                    .prepare_cached(concat!("SELECT ", message_columns!(), " FROM messages WHERE mailbox_id = ?1 AND modseq > ?2
                         ORDER BY uid"))
                    .db()?;
                let rows = stmt
                    .query_map(params![mailbox.0, modseq as i64], row_to_message)
                    .db()?;
                rows.map(|r| r.db().and_then(finish))
                    .collect::<Result<Vec<_>>>()?
            };
            let expunged = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
                    )
                    .db()?;
                let rows = stmt
                    .query_map(params![mailbox.0, modseq as i64], |r| {
                        r.get::<_, i64>(0).map(|u| u as u32)
                    })
                    .db()?;
                rows.collect::<rusqlite::Result<Vec<_>>>().db()?
            };
            Ok((changed, expunged))
        })
    }

    /// Opens a message for reading: its header prefix, then its body file
    /// (this is the only way to a message's bytes; reading the blob alone
    /// would miss the prefix). A missing or truncated body file is reported
    /// for this message only ([`Error::BlobMissing`], [`Error::BlobCorrupt`]).
    pub fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader> {
        type Row = (Vec<u8>, Vec<u8>, i64, Option<Vec<u8>>);
        let (prefix, hash, size, inline): Row = self
            .read(|c| {
                c.prepare_cached(
                    "SELECT m.prefix, m.blob, m.size, d.data FROM messages m
                     LEFT JOIN blob_data d ON d.hash = m.blob
                     WHERE m.mailbox_id = ?1 AND m.uid = ?2",
                )
                .db()?
                .query_row(params![mailbox.0, uid], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .db()
            })?
            .ok_or(Error::MessageNotFound { mailbox, uid })?;
        let blob = BlobId::from_slice(&hash)?;
        let (body, body_size) = self.body(&blob, inline)?;
        if prefix.len() as u64 + body_size != size as u64 {
            return Err(Error::BlobCorrupt(blob));
        }
        Ok(MessageReader::new(prefix, body, body_size))
    }

    /// Reads a body whole, wherever it is kept (a file, or the database for
    /// a small body: queued with [`crate::NewQueueEntry::inline`], or
    /// appended within [`crate::StoreConfig::inline_body_max`]).
    pub fn read_body(&self, id: &BlobId) -> Result<Vec<u8>> {
        let inline: Option<Vec<u8>> = self.read(|c| {
            c.prepare_cached("SELECT data FROM blob_data WHERE hash = ?1")
                .db()?
                .query_row([&id.0[..]], |r| r.get(0))
                .optional()
                .db()
        })?;
        if let Some(bytes) = inline {
            return Ok(bytes);
        }
        let mut out = Vec::new();
        self.blobs()
            .open_file(id)?
            .read_to_end(&mut out)
            .map_err(|e| Error::io(self.blobs().path(id), e))?;
        Ok(out)
    }

    /// Reads a message whole: its header prefix and its body.
    pub fn read_message(&self, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>> {
        let mut reader = self.open_message(mailbox, uid)?;
        let mut out = Vec::with_capacity(usize::try_from(reader.size()).unwrap_or(0));
        reader
            .read_to_end(&mut out)
            .map_err(|e| Error::io(format!("message {mailbox} UID {uid}"), e))?;
        Ok(out)
    }

    /// Changes flags (IMAP `STORE`). Each message whose flags change gets a
    /// new modseq. With `unchanged_since` (CONDSTORE), messages modified after
    /// that modseq are left alone and listed in [`FlagsResult::conflicts`].
    /// UIDs that do not exist are ignored. Returns once the change is
    /// committed; it is durable against a crash of the machine within
    /// [`crate::StoreConfig::flag_sync_delay`].
    pub fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsResult> {
        self.write_deferred(flags_job(
            mailbox,
            uids.to_vec(),
            op,
            flags,
            unchanged_since,
        ))
    }

    /// [`Store::store_flags`] without waiting: `done` gets the result once
    /// the change is committed, on the store's committer thread, after the
    /// change went out on the feed. `done` must not block (send it on a
    /// channel). For an async host, this saves a blocking thread per call.
    /// Fails at once, without calling `done`, when the store is closed.
    pub fn store_flags_then(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
        done: impl FnOnce(Result<FlagsResult>) + Send + 'static,
    ) -> Result<()> {
        let job = flags_job(mailbox, uids.to_vec(), op, flags, unchanged_since);
        self.submit_deferred(job, Box::new(done))
    }

    /// Removes the messages flagged `\Deleted` (IMAP `EXPUNGE`), only those
    /// among `uids` when given (`UID EXPUNGE`). Returns the UIDs removed.
    pub fn expunge(&self, mailbox: MailboxId, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        self.write(expunge_job(mailbox, uids.map(<[u32]>::to_vec)))
    }

    /// [`Store::expunge`] without waiting, as [`Store::store_flags_then`].
    pub fn expunge_then(
        &self,
        mailbox: MailboxId,
        uids: Option<&[u32]>,
        done: impl FnOnce(Result<Vec<u32>>) + Send + 'static,
    ) -> Result<()> {
        let job = expunge_job(mailbox, uids.map(<[u32]>::to_vec));
        self.submit(job, Box::new(done))
    }

    /// Removes the given messages whatever their flags (POP3 `DELE` + `QUIT`).
    pub fn remove_messages(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<u32>> {
        let uids = uids.to_vec();
        self.write(move |ctx| {
            load_mailbox(ctx.conn, mailbox)?;
            let mut removed = Vec::new();
            for uid in uids {
                if get_message(ctx.conn, mailbox, uid)?.is_some() {
                    remove(ctx, mailbox, uid)?;
                    removed.push(uid);
                }
            }
            Ok(removed)
        })
    }

    /// Copies messages to another mailbox (IMAP `COPY`): new UIDs, same
    /// header prefix and body.
    pub fn copy_messages(&self, src: MailboxId, uids: &[u32], dst: MailboxId) -> Result<Copied> {
        let uids = uids.to_vec();
        let blobs = self.blobs().clone();
        self.write(move |ctx| transfer(ctx, &blobs, src, &uids, dst, false))
    }

    /// Moves messages to another mailbox (IMAP `MOVE`): new UIDs in `dst`,
    /// expunged from `src`, in one transaction.
    pub fn move_messages(&self, src: MailboxId, uids: &[u32], dst: MailboxId) -> Result<Copied> {
        let uids = uids.to_vec();
        let blobs = self.blobs().clone();
        self.write(move |ctx| transfer(ctx, &blobs, src, &uids, dst, true))
    }
}

/// The header of a message whose body is kept inline (`blob_data` row
/// `rowid`): `prefix`, then the body through the blob handle `handle`
/// (opened on first use, moved to each row after), a chunk at a time until
/// the empty line that ends the header, or the end of the body.
fn inline_header<'c>(
    conn: &'c Connection,
    handle: &mut Option<rusqlite::blob::Blob<'c>>,
    rowid: i64,
    mut out: Vec<u8>,
    hash: &[u8],
    size: u64,
) -> Result<Vec<u8>> {
    const CHUNK: usize = 2048;
    let blob_id = BlobId::from_slice(hash)?;
    let blob = match handle {
        Some(blob) => {
            blob.reopen(rowid).db()?;
            blob
        }
        None => handle.insert(
            conn.blob_open(rusqlite::MAIN_DB, "blob_data", "data", rowid, true)
                .db()?,
        ),
    };
    let body_size = blob.len();
    if (out.len() + body_size) as u64 != size {
        return Err(Error::BlobCorrupt(blob_id));
    }
    if let Some(end) = header_end(&out, 0) {
        out.truncate(end);
        return Ok(out);
    }
    let mut offset = 0;
    while offset < body_size {
        let n = CHUNK.min(body_size - offset);
        let from = out.len().saturating_sub(3);
        out.resize(out.len() + n, 0);
        let len = out.len();
        blob.read_at_exact(&mut out[len - n..], offset).db()?;
        offset += n;
        if let Some(end) = header_end(&out, from) {
            out.truncate(end);
            return Ok(out);
        }
    }
    Ok(out)
}

/// The write job of [`Store::expunge`].
fn expunge_job(
    mailbox: MailboxId,
    only: Option<Vec<u32>>,
) -> impl FnOnce(&mut WriteCtx<'_>) -> Result<Vec<u32>> + Send + 'static {
    move |ctx| {
        load_mailbox(ctx.conn, mailbox)?;
        let deleted: Vec<u32> = {
            let mut stmt = ctx
                .conn
                .prepare_cached(
                    "SELECT uid FROM messages WHERE mailbox_id = ?1 AND flags & 8 != 0 ORDER BY uid",
                )
                .db()?;
            let rows = stmt
                .query_map([mailbox.0], |r| r.get::<_, i64>(0).map(|u| u as u32))
                .db()?;
            rows.collect::<rusqlite::Result<_>>().db()?
        };
        let mut removed = Vec::new();
        for uid in deleted {
            if only.as_ref().is_some_and(|set| !set.contains(&uid)) {
                continue;
            }
            remove(ctx, mailbox, uid)?;
            removed.push(uid);
        }
        Ok(removed)
    }
}

/// The write job of [`Store::store_flags`].
fn flags_job(
    mailbox: MailboxId,
    uids: Vec<u32>,
    op: FlagOp,
    flags: Flags,
    unchanged_since: Option<u64>,
) -> impl FnOnce(&mut WriteCtx<'_>) -> Result<FlagsResult> + Send + 'static {
    move |ctx| {
        load_mailbox(ctx.conn, mailbox)?;
        let mut out = FlagsResult::default();
        for uid in uids {
            let Some(m) = get_message(ctx.conn, mailbox, uid)? else {
                continue;
            };
            if unchanged_since.is_some_and(|since| m.modseq > since) {
                out.conflicts.push(uid);
                continue;
            }
            let new: Flags = match op {
                FlagOp::Add => m.flags.union(&flags).cloned().collect(),
                FlagOp::Remove => m.flags.difference(&flags).cloned().collect(),
                FlagOp::Replace => flags.clone(),
            };
            if new == m.flags {
                out.updated.push(FlagUpdate {
                    uid,
                    modseq: m.modseq,
                    flags: new,
                    changed: false,
                });
                continue;
            }
            let modseq = bump_modseq(ctx.conn, mailbox)?;
            let (bits, keywords) = flags_to_db(&new);
            ctx.conn
                .prepare_cached(
                    "UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5
                     WHERE mailbox_id = ?1 AND uid = ?2",
                )
                .db()?
                .execute(params![mailbox.0, uid, bits, keywords, modseq as i64])
                .db()?;
            ctx.publish(
                mailbox,
                Change::FlagsChanged {
                    uid,
                    modseq,
                    flags: new.clone(),
                },
            );
            out.updated.push(FlagUpdate {
                uid,
                modseq,
                flags: new,
                changed: true,
            });
        }
        Ok(out)
    }
}

/// Where a header ends (after its empty line, CRLF or LF), searching from
/// `from`; a message that starts with its empty line has an empty header.
pub(crate) fn header_end(bytes: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        if bytes.starts_with(b"\r\n") {
            return Some(2);
        }
        if bytes.starts_with(b"\n") {
            return Some(1);
        }
    }
    let mut i = from;
    while let Some(nl) = bytes
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
    {
        let at = i + nl;
        match bytes.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if bytes.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => {}
        }
        i = at + 1;
    }
    None
}

/// The POP3 `UIDL` of a message: stable while the mailbox's UIDVALIDITY is.
pub fn pop3_uidl(mailbox: &Mailbox, uid: u32) -> String {
    format!("{}.{uid}", mailbox.uidvalidity)
}
