//! The versioned schema. `PRAGMA user_version` holds the version; opening a
//! store applies every migration above it, each in its own transaction.
//!
//! To add tables (the policy objects of SPEC D-5, say): write
//! `migrations/NNNN_what.sql` and append one [`Migration`] to [`MIGRATIONS`].
//! Never edit a migration that has shipped.

use std::time::Duration;

use rusqlite::Connection;

use crate::error::{DbResult, Error, Result};

/// One schema step.
pub(crate) struct Migration {
    /// The version the database has after this step (1, 2, 3... without gaps).
    pub(crate) version: u32,
    /// The SQL, run as one batch inside a transaction.
    pub(crate) sql: &'static str,
}

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/0002_queue.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/0003_message_prefix.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("migrations/0004_queue_ids_and_local_pass.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("migrations/0005_pop3_locks.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("migrations/0006_inline_bodies.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("migrations/0007_blob_data.sql"),
    },
];

/// The schema version this build creates.
pub const SCHEMA_VERSION: u32 = 7;

/// How long a connection waits for another's lock (another process's
/// writer, a checkpoint) before it gives up with "database is locked".
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection settings: every connection, the writer's, the
/// checkpointer's and the pool's. `synchronous = FULL` makes every commit
/// `fsync` the log before it returns, and makes a checkpoint `fsync` the
/// database file before the frames it copied may be overwritten (see
/// `checkpoint.rs`).
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)
}

/// Statements the write connection keeps prepared. rusqlite's default (16)
/// is fewer than the store's write paths use, and a statement pushed out
/// is parsed again at its next use on the committer thread.
const WRITER_STATEMENT_CACHE: usize = 128;

/// The write connection's own settings, on top of [`configure`]: no
/// automatic checkpoint (the checkpointer thread copies the log, see
/// `checkpoint.rs`), a log file cut back to its usual size when a long read
/// made it grow, and room for every write statement in the statement cache.
pub(crate) fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = {};",
        crate::checkpoint::wal_size_limit(page_size)
    ))?;
    conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
    Ok(())
}

/// Puts the database in WAL mode and applies the missing migrations.
/// Returns the version the database is at afterwards.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Database(format!(
            "cannot switch to WAL mode (journal_mode is {mode})"
        )));
    }
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    let mut current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .db()?;
    if current > known {
        return Err(Error::SchemaTooNew {
            found: current,
            known,
        });
    }
    for migration in MIGRATIONS {
        if migration.version <= current {
            continue;
        }
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .db()?;
        // Another process may have migrated meanwhile.
        let now: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).db()?;
        if now >= migration.version {
            current = now;
            continue;
        }
        tx.execute_batch(migration.sql).db()?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", migration.version))
            .db()?;
        tx.commit().db()?;
        current = migration.version;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_and_the_last_is_current() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, SCHEMA_VERSION);
    }

    #[test]
    fn messages_of_version_2_get_an_empty_prefix_and_keep_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        configure(&conn).unwrap();
        for m in &MIGRATIONS[..2] {
            conn.execute_batch(m.sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO domains(id, name, created) VALUES (1, 'example.com', 0);
             INSERT INTO accounts(id, domain_id, local_part, display_local, password_hash, created)
                 VALUES (1, 1, 'a', 'a', '', 0);
             INSERT INTO mailboxes(id, account_id, name, uidvalidity, created)
                 VALUES (1, 1, 'INBOX', 1, 0);
             INSERT INTO blobs(hash, size) VALUES (x'00', 42);
             INSERT INTO messages(mailbox_id, uid, modseq, internal_date, size, blob)
                 VALUES (1, 1, 1, 0, 42, x'00');",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        let (prefix, size, used): (Vec<u8>, i64, i64) = conn
            .query_row(
                "SELECT m.prefix, m.size, a.used_bytes FROM messages m, accounts a",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((prefix, size, used), (Vec::new(), 42, 42));
    }

    #[test]
    fn inline_bodies_of_version_6_move_to_blob_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        configure(&conn).unwrap();
        for m in &MIGRATIONS[..6] {
            conn.execute_batch(m.sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 6;
             INSERT INTO blobs(hash, size, refs, data) VALUES (x'01', 5, 1, x'6869212121');
             INSERT INTO blobs(hash, size, refs) VALUES (x'02', 42, 1);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        type Row = (Vec<u8>, i64, i64, Option<Vec<u8>>);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT b.hash, b.size, b.refs, d.data FROM blobs b
                 LEFT JOIN blob_data d ON d.hash = b.hash ORDER BY b.hash",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (vec![1], 5, 1, Some(b"hi!!!".to_vec())),
                (vec![2], 42, 1, None)
            ]
        );
        assert!(
            conn.prepare("SELECT data FROM blobs").is_err(),
            "the column is gone"
        );
        // A body goes with its row.
        conn.execute("DELETE FROM blobs WHERE hash = x'01'", [])
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM blob_data", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_newer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        configure(&conn).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        conn.execute_batch("PRAGMA user_version = 999").unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(Error::SchemaTooNew { found: 999, .. })
        ));
    }
}
