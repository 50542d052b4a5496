//! The POP3 maildrop lock (migration 0005): one POP3 session per account at
//! a time (RFC 1939 section 8), kept in the store so that an admin command
//! in another process can release it.

use rusqlite::params;

use crate::Store;
use crate::error::{DbResult, Result};
use crate::types::{AccountId, now};

impl Store {
    /// Takes the POP3 lock of `account` for `holder` (a session id);
    /// returns false when another holder has it.
    pub fn lock_maildrop(&self, account: AccountId, holder: &str) -> Result<bool> {
        let holder = holder.to_string();
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO pop3_locks(account_id, holder, since) VALUES (?1, ?2, ?3)
                     ON CONFLICT(account_id) DO NOTHING",
                )
                .db()?
                .execute(params![account.0, holder, now()])
                .db()?;
            Ok(n > 0)
        })
    }

    /// Releases the POP3 lock of `account`: only if `holder` has it, or
    /// whoever has it when `holder` is `None` (`ironpost account
    /// unlock-pop3`). Returns whether a lock was released.
    pub fn unlock_maildrop(&self, account: AccountId, holder: Option<&str>) -> Result<bool> {
        let holder = holder.map(str::to_string);
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "DELETE FROM pop3_locks WHERE account_id = ?1 AND (?2 IS NULL OR holder = ?2)",
                )
                .db()?
                .execute(params![account.0, holder])
                .db()?;
            Ok(n > 0)
        })
    }

    /// Who holds the POP3 lock of `account`, and since when.
    pub fn maildrop_lock(&self, account: AccountId) -> Result<Option<(String, i64)>> {
        use rusqlite::OptionalExtension;
        self.read(|c| {
            c.prepare_cached("SELECT holder, since FROM pop3_locks WHERE account_id = ?1")
                .db()?
                .query_row([account.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .db()
        })
    }

    /// Releases every POP3 lock: a server calls it when it starts, since
    /// the sessions of a previous run are gone. Returns how many there were.
    pub fn clear_maildrop_locks(&self) -> Result<usize> {
        self.write(|ctx| ctx.conn.execute("DELETE FROM pop3_locks", []).db())
    }
}
