//! Blob references held outside messages, garbage collection, the integrity
//! check and online backup.

use std::path::Path;

use rusqlite::params;

use crate::Store;
use crate::blob::BlobId;
use crate::error::{DbResult, Error, Result};
use crate::store::Snapshot;
use crate::types::{AccountId, MailboxId};

/// What [`Store::collect_garbage`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Unreferenced bodies removed.
    pub blobs_removed: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Body files without any index row, removed.
    pub orphans_removed: u64,
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Message rows checked.
    pub messages: u64,
    /// Messages whose body file is missing.
    pub missing: Vec<(MailboxId, u32, BlobId)>,
    /// Messages whose body file has the wrong size (not the message's size
    /// less its header prefix).
    pub wrong_size: Vec<(MailboxId, u32, BlobId)>,
    /// Accounts whose recorded usage differs from the sum of their message
    /// sizes: (account, recorded, actual).
    pub quota_mismatches: Vec<(AccountId, u64, u64)>,
    /// Bodies referenced by more messages than their reference count says.
    pub undercounted_blobs: Vec<BlobId>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.wrong_size.is_empty()
            && self.quota_mismatches.is_empty()
            && self.undercounted_blobs.is_empty()
    }
}

impl Store {
    /// Takes a reference on a body for something other than a message (a
    /// queue entry): the body stays until [`Store::release_blob`].
    pub fn hold_blob(&self, id: BlobId) -> Result<()> {
        let size = self.blobs().size(&id)?;
        let blobs = self.blobs().clone();
        self.write(move |ctx| {
            if !blobs.path(&id).is_file() {
                return Err(Error::BlobMissing(id));
            }
            ctx.conn
                .execute(
                    "INSERT INTO blobs(hash, size, refs) VALUES (?1, ?2, 1)
                     ON CONFLICT(hash) DO UPDATE SET refs = refs + 1",
                    params![&id.0[..], size as i64],
                )
                .db()?;
            Ok(())
        })
    }

    /// Gives back a reference taken with [`Store::hold_blob`].
    pub fn release_blob(&self, id: BlobId) -> Result<()> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute(
                    "UPDATE blobs SET refs = refs - 1 WHERE hash = ?1 AND refs > 0",
                    [&id.0[..]],
                )
                .db()?;
            if n == 0 {
                return Err(Error::BlobMissing(id));
            }
            Ok(())
        })
    }

    /// The reference count of a body (messages + holds); 0 when unknown.
    pub fn blob_refs(&self, id: &BlobId) -> Result<u64> {
        self.read(|c| {
            let refs: Option<i64> = c
                .query_row("SELECT refs FROM blobs WHERE hash = ?1", [&id.0[..]], |r| {
                    r.get(0)
                })
                .ok();
            Ok(refs.unwrap_or(0).max(0) as u64)
        })
    }

    /// Removes bodies nothing references and that are older than the grace
    /// period ([`crate::StoreConfig::blob_grace`]), and body files that no row
    /// knows (left by a crash between the rename and the commit). Runs on the
    /// committer thread, so no delivery can take a reference meanwhile.
    pub fn collect_garbage(&self) -> Result<GcReport> {
        let grace = self.config().blob_grace;
        let blobs = self.blobs().clone();
        let files = blobs.list()?;
        self.write(move |ctx| {
            let mut report = GcReport::default();
            let unreferenced: Vec<(Vec<u8>, i64)> = {
                let mut stmt = ctx
                    .conn
                    .prepare("SELECT hash, size FROM blobs WHERE refs <= 0")
                    .db()?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?;
                rows.collect::<rusqlite::Result<_>>().db()?
            };
            for (hash, size) in unreferenced {
                let id = BlobId::from_slice(&hash)?;
                if blobs.is_young(&id, grace) {
                    continue;
                }
                ctx.conn
                    .execute("DELETE FROM blobs WHERE hash = ?1 AND refs <= 0", [&hash])
                    .db()?;
                blobs.remove(&id)?;
                report.blobs_removed += 1;
                report.bytes_freed += size.max(0) as u64;
            }
            for (id, mtime) in files {
                let old = mtime.elapsed().is_ok_and(|age| age >= grace);
                if !old {
                    continue;
                }
                let known = ctx
                    .conn
                    .prepare_cached("SELECT 1 FROM blobs WHERE hash = ?1")
                    .db()?
                    .exists([&id.0[..]])
                    .db()?;
                if !known && !blobs.is_young(&id, grace) && blobs.remove(&id)? {
                    report.orphans_removed += 1;
                }
            }
            Ok(report)
        })
    }

    /// Checks that every message's body (its file, or its row for a small
    /// body) exists with the right size (the message's size less its header
    /// prefix), that quota usage equals the
    /// sum of message sizes, and that blob reference counts cover the
    /// messages. Reads only.
    pub fn check(&self) -> Result<CheckReport> {
        let blobs = self.blobs().clone();
        self.read(|c| {
            let tx = Snapshot::begin(c)?;
            let mut report = CheckReport::default();
            {
                let mut stmt = tx
                    .prepare(
                        "SELECT m.mailbox_id, m.uid, m.blob, m.size - length(m.prefix),
                                length(d.data)
                         FROM messages m LEFT JOIN blob_data d ON d.hash = m.blob",
                    )
                    .db()?;
                let mut rows = stmt.query([]).db()?;
                while let Some(r) = rows.next().db()? {
                    let mailbox = MailboxId(r.get(0).db()?);
                    let uid = r.get::<_, i64>(1).db()? as u32;
                    let id = BlobId::from_slice(&r.get::<_, Vec<u8>>(2).db()?)?;
                    let body_size = r.get::<_, i64>(3).db()?;
                    let inline = r.get::<_, Option<i64>>(4).db()?;
                    report.messages += 1;
                    // A small body kept in the database, or a file.
                    let size = match inline {
                        Some(len) => Ok(len as u64),
                        None => blobs.size(&id),
                    };
                    match size {
                        Ok(s) if i64::try_from(s) == Ok(body_size) => {}
                        Ok(_) => report.wrong_size.push((mailbox, uid, id)),
                        Err(Error::BlobMissing(_)) => report.missing.push((mailbox, uid, id)),
                        Err(e) => return Err(e),
                    }
                }
            }
            {
                let mut stmt = tx
                    .prepare(
                        "SELECT a.id, a.used_bytes, (SELECT coalesce(sum(m.size), 0) FROM messages m
                         JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id)
                         FROM accounts a",
                    )
                    .db()?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            AccountId(r.get(0)?),
                            r.get::<_, i64>(1)? as u64,
                            r.get::<_, i64>(2)? as u64,
                        ))
                    })
                    .db()?;
                for row in rows {
                    let (id, recorded, actual) = row.db()?;
                    if recorded != actual {
                        report.quota_mismatches.push((id, recorded, actual));
                    }
                }
            }
            {
                let mut stmt = tx
                    .prepare(
                        "SELECT m.blob FROM messages m LEFT JOIN blobs b ON b.hash = m.blob
                         GROUP BY m.blob HAVING count(*) > coalesce(max(b.refs), 0)",
                    )
                    .db()?;
                let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).db()?;
                for row in rows {
                    report
                        .undercounted_blobs
                        .push(BlobId::from_slice(&row.db()?)?);
                }
            }
            Ok(report)
        })
    }

    /// Writes a consistent copy of the database to `dest` while the store
    /// keeps serving (`VACUUM INTO`). Bodies are immutable files: copy
    /// `blobs/` after this returns and the copy is complete.
    pub fn backup_database(&self, dest: &Path) -> Result<()> {
        let dest_str = dest
            .to_str()
            .ok_or_else(|| Error::io(dest, std::io::Error::other("path is not UTF-8")))?
            .to_string();
        self.read(|c| c.execute("VACUUM INTO ?1", [dest_str]).map(|_| ()).db())
    }
}
