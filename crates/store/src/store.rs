//! [`Store`]: opening, configuration, and the read/write plumbing every
//! concern module (`domain`, `account`, `mailbox`...) builds its calls on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension};

use crate::blob::BlobStore;
use crate::commit::{Committer, Durability, Undo, WriteCtx};
use crate::error::{DbResult, Error, Result};
use crate::feed::{Change, Feed, FeedHandle, Subscription};
use crate::header_cache::HeaderCache;
use crate::password::{self, PasswordParams};
use crate::schema;
use crate::stats::{Counters, Stats};
use crate::types::MailboxId;

/// How to open a store. Build with [`StoreConfig::new`] and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The data directory: `store.db` and `blobs/` live here.
    pub dir: PathBuf,
    /// The mailbox hierarchy delimiter (`/` or `.`), fixed when the store is
    /// created; a store opened later keeps the one it was created with.
    pub delimiter: char,
    /// Read connections in the pool (default 8).
    pub pool_size: u32,
    /// Deepest chain of aliases and lists that recipient resolution follows
    /// before answering "too many recursive forwards" (default 10).
    pub max_forward_depth: u32,
    /// How old an unreferenced body must be before garbage collection removes
    /// it (default 24 hours): time for a spooled body to be referenced.
    pub blob_grace: Duration,
    /// Largest message body that [`Store::append`], [`Store::append_from`]
    /// and [`Store::deliver_bytes`] keep in the database (`blob_data`)
    /// rather than in a file of its own (default 64 KiB; 0 keeps every
    /// non-empty body in a file). Such a body is written by the same
    /// transaction as its message row and is durable with that one commit:
    /// no file, no `syncfs`, no rename. The price is that its bytes pass
    /// through the one committer thread and are written twice (into the WAL,
    /// then by the checkpoint into the database). Measured (BENCHMARKS.md,
    /// `## store`): inline is faster for one writer at every size; with 32
    /// concurrent writers it is faster up to 32 KiB, even with files at
    /// 64 KiB and about half their rate at 100 KiB. 64 KiB is also the bound
    /// up to which the SMTP server queues bodies inline, so an appended and a
    /// delivered message are kept alike. [`Store::append_from`] holds up to
    /// this many bytes (plus one) in memory before it decides.
    pub inline_body_max: usize,
    /// Cost of new argon2id hashes.
    pub password: PasswordParams,
    /// Bytes of message headers kept in memory for header-only reads
    /// ([`Store::read_messages_in`]: IMAP SEARCH and SORT on header fields),
    /// shared by every reader (default 32 MiB; 0 keeps none).
    pub header_cache_bytes: usize,
    /// Longest a flag change waits for its `fsync` (default 100 ms). A
    /// flag change ([`Store::store_flags`]) is answered once committed:
    /// every reader sees it and a crash of the process keeps it. Its `fsync`
    /// of the WAL comes with the next write that needs one or, at the
    /// latest, this long after, so a crash of the machine loses at most
    /// this much of flag changes (never a message: appends, deliveries,
    /// copies, moves and expunges `fsync` before they are answered). Zero
    /// `fsync`s every flag change before it is answered.
    pub flag_sync_delay: Duration,
}

impl StoreConfig {
    /// Defaults for a store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            delimiter: '/',
            pool_size: 8,
            max_forward_depth: 10,
            blob_grace: Duration::from_secs(24 * 3600),
            inline_body_max: 64 * 1024,
            password: PasswordParams::default(),
            header_cache_bytes: 32 * 1024 * 1024,
            flag_sync_delay: Duration::from_millis(100),
        }
    }
}

type Pool = r2d2::Pool<SqliteConnectionManager>;

#[derive(Debug)]
struct Inner {
    // Field order matters: the committer (and its thread) stops first.
    committer: Committer,
    pool: Pool,
    blobs: BlobStore,
    feed: Arc<Feed>,
    counters: Arc<Counters>,
    config: StoreConfig,
    delimiter: char,
    /// An argon2id hash checked when the address is unknown, so that a login
    /// takes as long for a missing account as for a wrong password. Computed
    /// at the first such login, so that opening a store (which every admin
    /// command does) costs no hashing.
    dummy_hash: OnceLock<String>,
    /// Headers of bodies, for header-only reads.
    pub(crate) headers: HeaderCache,
}

/// The mail store: SQLite index + blob files, with a group-committing writer
/// thread and a change feed. Clone it freely; all clones share one store.
/// Every call blocks (the async binary calls it from blocking threads).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (creating when needed) the store in `config.dir`: applies the
    /// schema migrations, switches to WAL, starts the committer thread.
    pub fn open(config: StoreConfig) -> Result<Store> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let db_path = dir.join("store.db");
        let mut conn = Connection::open(&db_path).db()?;
        schema::configure(&conn).db()?;
        schema::migrate(&mut conn)?;
        schema::configure_writer(&conn).db()?;
        let delimiter = init_meta(&conn, config.delimiter)?;
        let checkpoint_conn = Connection::open(&db_path).db()?;
        schema::configure(&checkpoint_conn).db()?;

        let counters = Arc::new(Counters::default());
        let blobs = BlobStore::open(dir.join("blobs"), counters.clone(), config.blob_grace)?;
        let feed = Arc::new(Feed::default());
        let manager = SqliteConnectionManager::file(&db_path).with_init(|c| schema::configure(c));
        // A connection to a local database file does not go stale, so it is
        // not tested each time it is taken from the pool.
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .test_on_check_out(false)
            .build(manager)
            .db()?;
        let committer = Committer::start(
            conn,
            checkpoint_conn,
            feed.clone(),
            counters.clone(),
            config.flag_sync_delay,
        )?;
        // Refuse bad argon2 parameters now rather than at the first login.
        password::hasher(config.password)?;
        let dummy_hash = OnceLock::new();
        let headers = HeaderCache::new(config.header_cache_bytes);
        Ok(Store {
            inner: Arc::new(Inner {
                committer,
                pool,
                blobs,
                feed,
                counters,
                config,
                delimiter,
                dummy_hash,
                headers,
            }),
        })
    }

    /// [`Store::open`] with the default configuration.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open(StoreConfig::new(dir.as_ref()))
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The mailbox hierarchy delimiter.
    pub fn delimiter(&self) -> char {
        self.inner.delimiter
    }

    /// The header cache.
    pub(crate) fn headers(&self) -> &HeaderCache {
        &self.inner.headers
    }

    /// The body files: the spool API for the SMTP acceptance path.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<u32> {
        self.read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)).db())
    }

    /// Follows a mailbox's changes through a channel.
    pub fn subscribe(&self, mailbox: MailboxId) -> Subscription {
        Subscription::new(&self.inner.feed, mailbox)
    }

    /// Follows a mailbox's changes through a callback that runs on the
    /// committer thread and must not block; it returns false to unsubscribe.
    /// Dropping the handle unsubscribes too.
    pub fn subscribe_with(
        &self,
        mailbox: MailboxId,
        f: impl Fn(&Change) -> bool + Send + Sync + 'static,
    ) -> FeedHandle {
        self.inner.feed.register(mailbox, Box::new(f))
    }

    /// Runs `f` on a pooled read connection (each statement a consistent
    /// snapshot; [`Snapshot`] makes one for several).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let conn = self.inner.pool.get().db()?;
        f(&conn)
    }

    /// Runs `f` in the committer's next batch; returns once it is durable.
    /// If `f` fails, its writes are rolled back.
    pub(crate) fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        self.inner
            .committer
            .write(Undo::Savepoint, Durability::AtCommit, f)
    }

    /// [`Store::write`] without waiting: `reply` gets the result on the
    /// committer thread (see [`Committer::submit`]).
    pub(crate) fn submit<R, F>(&self, f: F, reply: Box<dyn FnOnce(Result<R>) + Send>) -> Result<()>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        self.inner
            .committer
            .submit(Undo::Savepoint, Durability::AtCommit, f, reply)
    }

    /// [`Store::write`] for a change that may wait for its `fsync` (see
    /// [`Durability::Deferred`]): returns once it is committed.
    pub(crate) fn write_deferred<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        self.inner
            .committer
            .write(Undo::Savepoint, Durability::Deferred, f)
    }

    /// [`Store::write_deferred`] without waiting, as [`Store::submit`].
    pub(crate) fn submit_deferred<R, F>(
        &self,
        f: F,
        reply: Box<dyn FnOnce(Result<R>) + Send>,
    ) -> Result<()>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        self.inner
            .committer
            .submit(Undo::Savepoint, Durability::Deferred, f, reply)
    }

    /// [`Store::write`] for a job that leaves nothing harmful behind when it
    /// fails, and so runs without a savepoint (see [`Undo::NotNeeded`]): the
    /// caller says why.
    pub(crate) fn write_without_savepoint<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        self.inner
            .committer
            .write(Undo::NotNeeded, Durability::AtCommit, f)
    }

    pub(crate) fn password_params(&self) -> PasswordParams {
        self.inner.config.password
    }

    pub(crate) fn dummy_hash(&self) -> &str {
        self.inner.dummy_hash.get_or_init(|| {
            // The parameters were checked by `open`, so hashing cannot fail;
            // an empty hash would only make the check fail faster.
            password::hash(self.inner.config.password, "ironpost-dummy").unwrap_or_default()
        })
    }
}

/// Reads (or, on a new database, records) the delimiter and the UIDVALIDITY counter.
fn init_meta(conn: &Connection, wanted: char) -> Result<char> {
    let get = |key: &str| -> Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .db()
    };
    let delimiter = match get("delimiter")? {
        Some(d) => d
            .chars()
            .next()
            .ok_or_else(|| Error::Corrupt("empty delimiter".into()))?,
        None => {
            if wanted.is_alphanumeric() || wanted.is_whitespace() {
                return Err(Error::InvalidMailboxName {
                    name: wanted.to_string(),
                    reason: "the delimiter must be a punctuation character",
                });
            }
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('delimiter', ?1)",
                [wanted.to_string()],
            )
            .db()?;
            wanted
        }
    };
    if get("next_uidvalidity")?.is_none() {
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('next_uidvalidity', ?1)",
            [crate::types::now().max(1).to_string()],
        )
        .db()?;
    }
    Ok(delimiter)
}

/// A read transaction on a connection: every statement run through it sees
/// the same snapshot of the database. Begun and ended with cached
/// statements (rusqlite's `Transaction` parses `BEGIN` and `ROLLBACK` anew
/// each time, a tenth of a one-message read). Ended when dropped, on every
/// path out, a failure or a panic included: a pooled connection left
/// holding a snapshot would keep every checkpoint from copying past it.
pub(crate) struct Snapshot<'c> {
    conn: &'c Connection,
}

impl<'c> Snapshot<'c> {
    pub(crate) fn begin(conn: &'c Connection) -> Result<Snapshot<'c>> {
        conn.prepare_cached("BEGIN").db()?.execute([]).db()?;
        Ok(Snapshot { conn })
    }
}

impl std::ops::Deref for Snapshot<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            let ended = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
            // Should that fail, the parsed form can still end it.
            if ended.is_err() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }
}
