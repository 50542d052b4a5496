//! Mailboxes: each account's folder tree, special-use attributes,
//! subscriptions, UIDVALIDITY / UIDNEXT / HIGHESTMODSEQ (SPEC D-4, I-3, I-4).
//!
//! Names are stored as the client sees them, with the store's delimiter
//! (fixed at creation, see [`crate::StoreConfig::delimiter`]). `INBOX` is
//! case-insensitive and always spelled `INBOX`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::commit::WriteCtx;
use crate::error::{DbResult, Error, Result};
use crate::feed::Change;
use crate::store::Snapshot;
use crate::types::{AccountId, MailboxId, SpecialUse, now};

/// A mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mailbox {
    /// Row id (stable across renames).
    pub id: MailboxId,
    /// The owner.
    pub account: AccountId,
    /// Full name with the delimiter.
    pub name: String,
    /// Special-use attribute.
    pub special_use: Option<SpecialUse>,
    /// Whether the owner subscribed to it.
    pub subscribed: bool,
    /// UIDVALIDITY: unique among all mailboxes the store ever had.
    pub uidvalidity: u32,
    /// The UID the next message will get.
    pub uidnext: u32,
    /// The modseq of the latest change.
    pub highest_modseq: u64,
}

/// A mailbox with its counts (IMAP `STATUS`, POP3 `STAT`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxStatus {
    /// The mailbox.
    pub mailbox: Mailbox,
    /// Messages.
    pub messages: u64,
    /// Messages without `\Seen`.
    pub unseen: u64,
    /// Messages with `\Deleted`.
    pub deleted: u64,
    /// Sum of the message sizes.
    pub size: u64,
}

/// The columns [`row_to_mailbox`] reads, as a literal for `concat!`.
macro_rules! mailbox_columns {
    () => {
        "id, account_id, name, special_use, subscribed, uidvalidity, uidnext, highest_modseq"
    };
}

fn row_to_mailbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    let special: Option<String> = r.get(3)?;
    Ok(Mailbox {
        id: MailboxId(r.get(0)?),
        account: AccountId(r.get(1)?),
        name: r.get(2)?,
        special_use: special.as_deref().and_then(SpecialUse::parse),
        subscribed: r.get(4)?,
        uidvalidity: r.get::<_, i64>(5)? as u32,
        uidnext: r.get::<_, i64>(6)? as u32,
        highest_modseq: r.get::<_, i64>(7)? as u64,
    })
}

pub(crate) fn load_mailbox(conn: &Connection, id: MailboxId) -> Result<Mailbox> {
    conn.prepare_cached(concat!(
        "SELECT ",
        mailbox_columns!(),
        " FROM mailboxes WHERE id = ?1"
    ))
    .db()?
    .query_row([id.0], row_to_mailbox)
    .optional()
    .db()?
    .ok_or(Error::NoSuchMailbox(id))
}

fn find_mailbox(conn: &Connection, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        mailbox_columns!(),
        " FROM mailboxes WHERE account_id = ?1 AND name = ?2"
    ))
    .db()?
    .query_row(params![account.0, name], row_to_mailbox)
    .optional()
    .db()
}

/// Creates one mailbox row with a fresh UIDVALIDITY.
pub(crate) fn insert_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special: Option<SpecialUse>,
) -> Result<MailboxId> {
    // UIDVALIDITY: the clock in seconds, but always above every value handed out.
    let next: i64 = conn
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_uidvalidity'",
            [],
            |r| r.get(0),
        )
        .db()?;
    let uidvalidity = next.max(now()).clamp(1, i64::from(u32::MAX));
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'next_uidvalidity'",
        [(uidvalidity + 1).to_string()],
    )
    .db()?;
    conn.execute(
        "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity, created)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            account.0,
            name,
            special.map(SpecialUse::as_str),
            uidvalidity,
            now()
        ],
    )
    .db()?;
    Ok(MailboxId(conn.last_insert_rowid()))
}

/// Checks a name and canonicalises `INBOX`; drops one trailing delimiter.
pub(crate) fn normalize_name(name: &str, delim: char) -> Result<String> {
    let bad = |reason| Error::InvalidMailboxName {
        name: name.to_string(),
        reason,
    };
    let trimmed = name.strip_suffix(delim).unwrap_or(name);
    if trimmed.is_empty() {
        return Err(bad("empty name"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    if trimmed.len() > 1000 {
        return Err(bad("longer than 1000 bytes"));
    }
    let mut parts: Vec<&str> = trimmed.split(delim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty hierarchy level"));
    }
    if parts[0].eq_ignore_ascii_case("INBOX") {
        parts[0] = "INBOX";
    }
    Ok(parts.join(&delim.to_string()))
}

/// The names of `name`'s ancestors, outermost first.
fn ancestors(name: &str, delim: char) -> Vec<String> {
    name.match_indices(delim)
        .map(|(i, _)| name[..i].to_string())
        .collect()
}

fn has_children(conn: &Connection, account: AccountId, name: &str, delim: char) -> Result<bool> {
    let prefix = format!("{name}{delim}");
    conn.prepare_cached(
        "SELECT 1 FROM mailboxes WHERE account_id = ?1 AND substr(name, 1, length(?2)) = ?2",
    )
    .db()?
    .exists(params![account.0, prefix])
    .db()
}

impl Store {
    /// The mailboxes of an account, by name.
    pub fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(concat!(
                    "SELECT ",
                    mailbox_columns!(),
                    " FROM mailboxes WHERE account_id = ?1 ORDER BY name"
                ))
                .db()?;
            let rows = stmt.query_map([account.0], row_to_mailbox).db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
    }

    /// The mailbox `name` of an account.
    pub fn mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox> {
        let name = normalize_name(name, self.delimiter())?;
        self.read(|c| find_mailbox(c, account, &name)?.ok_or(Error::MailboxNotFound(name)))
    }

    /// The mailbox with row id `id`.
    pub fn mailbox_by_id(&self, id: MailboxId) -> Result<Mailbox> {
        self.read(|c| load_mailbox(c, id))
    }

    /// A mailbox with its message counts.
    pub fn mailbox_status(&self, id: MailboxId) -> Result<MailboxStatus> {
        self.read(|c| {
            let tx = Snapshot::begin(c)?;
            let mailbox = load_mailbox(&tx, id)?;
            let (messages, unseen, deleted, size): (i64, i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT count(*), coalesce(sum(flags & 1 = 0), 0),
                     coalesce(sum(flags & 8 != 0), 0), coalesce(sum(size), 0)
                     FROM messages WHERE mailbox_id = ?1",
                )
                .db()?
                .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .db()?;
            Ok(MailboxStatus {
                mailbox,
                messages: messages as u64,
                unseen: unseen as u64,
                deleted: deleted as u64,
                size: size as u64,
            })
        })
    }

    /// Creates a mailbox, and any missing parents.
    pub fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let delim = self.delimiter();
        let name = normalize_name(name, delim)?;
        self.write(move |ctx| {
            crate::account::account_by_id(ctx.conn, account)?;
            if find_mailbox(ctx.conn, account, &name)?.is_some() {
                return Err(Error::MailboxExists(name));
            }
            for parent in ancestors(&name, delim) {
                if find_mailbox(ctx.conn, account, &parent)?.is_none() {
                    insert_mailbox(ctx.conn, account, &parent, None)?;
                }
            }
            let id = insert_mailbox(ctx.conn, account, &name, special_use)?;
            load_mailbox(ctx.conn, id)
        })
    }

    /// Renames a mailbox and its children. Renaming INBOX moves its messages
    /// into a new mailbox of the new name and leaves INBOX empty (RFC 3501).
    pub fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<Mailbox> {
        let delim = self.delimiter();
        let from = normalize_name(from, delim)?;
        let to = normalize_name(to, delim)?;
        let blobs = self.blobs().clone();
        self.write(move |ctx| {
            let src = find_mailbox(ctx.conn, account, &from)?
                .ok_or_else(|| Error::MailboxNotFound(from.clone()))?;
            if find_mailbox(ctx.conn, account, &to)?.is_some() {
                return Err(Error::MailboxExists(to));
            }
            if to == "INBOX" || to.starts_with(&format!("{from}{delim}")) {
                return Err(Error::InvalidMailboxName {
                    name: to,
                    reason: "cannot rename to INBOX or below itself",
                });
            }
            for parent in ancestors(&to, delim) {
                if find_mailbox(ctx.conn, account, &parent)?.is_none() {
                    insert_mailbox(ctx.conn, account, &parent, None)?;
                }
            }
            if from == "INBOX" {
                let id = insert_mailbox(ctx.conn, account, &to, None)?;
                let uids = crate::message::all_uids(ctx.conn, src.id)?;
                crate::message::transfer(ctx, &blobs, src.id, &uids, id, true)?;
                return load_mailbox(ctx.conn, id);
            }
            let prefix = format!("{from}{delim}");
            let children: Vec<(i64, String)> = {
                let mut stmt = ctx
                    .conn
                    .prepare(
                        "SELECT id, name FROM mailboxes
                         WHERE account_id = ?1 AND substr(name, 1, length(?2)) = ?2",
                    )
                    .db()?;
                let rows = stmt
                    .query_map(params![account.0, prefix], |r| Ok((r.get(0)?, r.get(1)?)))
                    .db()?;
                rows.collect::<rusqlite::Result<_>>().db()?
            };
            let renames = std::iter::once((src.id.0, from.clone())).chain(children);
            for (id, old) in renames {
                let new = format!("{to}{}", &old[from.len()..]);
                ctx.conn
                    .execute(
                        "UPDATE mailboxes SET name = ?2 WHERE id = ?1",
                        params![id, new],
                    )
                    .db()?;
                ctx.publish(MailboxId(id), Change::Renamed { name: new });
            }
            load_mailbox(ctx.conn, src.id)
        })
    }

    /// Deletes a mailbox and its messages. INBOX and mailboxes with children
    /// cannot be deleted.
    pub fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let delim = self.delimiter();
        let name = normalize_name(name, delim)?;
        self.write(move |ctx| {
            if name == "INBOX" {
                return Err(Error::MailboxNotDeletable {
                    name,
                    reason: "INBOX cannot be deleted",
                });
            }
            let mb = find_mailbox(ctx.conn, account, &name)?
                .ok_or_else(|| Error::MailboxNotFound(name.clone()))?;
            if has_children(ctx.conn, account, &name, delim)? {
                return Err(Error::MailboxNotDeletable {
                    name,
                    reason: "it has child mailboxes",
                });
            }
            delete_mailbox_rows(ctx, mb.id)
        })
    }

    /// Subscribes to (or unsubscribes from) a mailbox.
    pub fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = normalize_name(name, self.delimiter())?;
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute(
                    "UPDATE mailboxes SET subscribed = ?3 WHERE account_id = ?1 AND name = ?2",
                    params![account.0, name, subscribed],
                )
                .db()?;
            if n == 0 {
                return Err(Error::MailboxNotFound(name));
            }
            Ok(())
        })
    }

    /// Sets or clears a mailbox's special-use attribute.
    pub fn set_special_use(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<()> {
        let name = normalize_name(name, self.delimiter())?;
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute(
                    "UPDATE mailboxes SET special_use = ?3 WHERE account_id = ?1 AND name = ?2",
                    params![account.0, name, special_use.map(SpecialUse::as_str)],
                )
                .db()?;
            if n == 0 {
                return Err(Error::MailboxNotFound(name));
            }
            Ok(())
        })
    }
}

pub(crate) fn delete_mailbox_rows(ctx: &mut WriteCtx<'_>, id: MailboxId) -> Result<()> {
    ctx.conn
        .execute("DELETE FROM messages WHERE mailbox_id = ?1", [id.0])
        .db()?;
    ctx.conn
        .execute("DELETE FROM mailboxes WHERE id = ?1", [id.0])
        .db()?;
    ctx.publish(id, Change::Deleted);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_name("inbox", '/').unwrap(), "INBOX");
        assert_eq!(normalize_name("Inbox/Sub/", '/').unwrap(), "INBOX/Sub");
        assert_eq!(normalize_name("a.b", '/').unwrap(), "a.b");
        assert!(normalize_name("a//b", '/').is_err());
        assert!(normalize_name("/", '/').is_err());
        assert_eq!(ancestors("a/b/c", '/'), ["a", "a/b"]);
    }
}
