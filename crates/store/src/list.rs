//! Distribution lists: members, posting mode, SMTP-auth requirement (SPEC D-3).

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::domain::{check_new_address, get_domain};
use crate::error::{DbResult, Error, Result};
use crate::types::{Address, ListId, ListMode};

/// A distribution list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct List {
    /// Row id.
    pub id: ListId,
    /// The list address.
    pub address: String,
    /// Who may post.
    pub mode: ListMode,
    /// Whether posting needs an authenticated (SMTP AUTH) sender.
    pub require_auth: bool,
    /// Disabled lists refuse mail.
    pub enabled: bool,
    /// Member addresses (lower case), sorted.
    pub members: Vec<String>,
}

/// Changes to a list; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ListUpdate {
    /// Posting mode.
    pub mode: Option<ListMode>,
    /// SMTP-auth requirement.
    pub require_auth: Option<bool>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

const LIST_SELECT: &str = "SELECT l.id, l.local_part || '@' || d.name, l.mode, l.announcer,
    l.require_auth, l.enabled FROM lists l JOIN domains d ON d.id = l.domain_id";

fn mode_to_db(mode: &ListMode) -> (i64, Option<String>) {
    match mode {
        ListMode::Public => (0, None),
        ListMode::MembersOnly => (1, None),
        ListMode::Announcement(a) => (2, Some(a.to_lowercase())),
    }
}

fn row_to_list(r: &rusqlite::Row<'_>) -> rusqlite::Result<List> {
    let mode: i64 = r.get(2)?;
    let announcer: Option<String> = r.get(3)?;
    Ok(List {
        id: ListId(r.get(0)?),
        address: r.get(1)?,
        mode: match (mode, announcer) {
            (2, Some(a)) => ListMode::Announcement(a),
            (1, _) => ListMode::MembersOnly,
            _ => ListMode::Public,
        },
        require_auth: r.get(4)?,
        enabled: r.get(5)?,
        members: Vec::new(),
    })
}

pub(crate) fn list_members(conn: &Connection, id: ListId) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT address FROM list_members WHERE list_id = ?1 ORDER BY address")
        .db()?;
    let rows = stmt.query_map([id.0], |r| r.get(0)).db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

pub(crate) fn list_by_id(conn: &Connection, id: ListId) -> Result<List> {
    let mut list = conn
        .prepare_cached(&format!("{LIST_SELECT} WHERE l.id = ?1"))
        .db()?
        .query_row([id.0], row_to_list)
        .optional()
        .db()?
        .ok_or_else(|| Error::ListNotFound(id.to_string()))?;
    list.members = list_members(conn, id)?;
    Ok(list)
}

fn get_list(conn: &Connection, address: &str) -> Result<List> {
    let addr = Address::parse(address)?;
    let domain = get_domain(conn, addr.domain())?;
    let id: i64 = conn
        .query_row(
            "SELECT id FROM lists WHERE domain_id = ?1 AND local_part = ?2",
            params![domain.id.0, addr.local_key()],
            |r| r.get(0),
        )
        .optional()
        .db()?
        .ok_or_else(|| Error::ListNotFound(addr.to_string()))?;
    list_by_id(conn, ListId(id))
}

fn validate_mode(mode: &ListMode) -> Result<()> {
    if let ListMode::Announcement(a) = mode {
        Address::parse(a)?;
    }
    Ok(())
}

impl Store {
    /// Adds a distribution list.
    pub fn add_list(&self, address: &str, mode: ListMode, require_auth: bool) -> Result<List> {
        let address = Address::parse(address)?;
        validate_mode(&mode)?;
        self.write(move |ctx| {
            let domain = get_domain(ctx.conn, address.domain())?;
            check_new_address(
                ctx.conn,
                &domain,
                &address,
                "list",
                "lists",
                domain.limits.max_lists,
            )?;
            let (mode, announcer) = mode_to_db(&mode);
            ctx.conn
                .execute(
                    "INSERT INTO lists(domain_id, local_part, mode, announcer, require_auth)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        domain.id.0,
                        address.local_key(),
                        mode,
                        announcer,
                        require_auth
                    ],
                )
                .db()?;
            list_by_id(ctx.conn, ListId(ctx.conn.last_insert_rowid()))
        })
    }

    /// The list at `address`, with its members.
    pub fn list(&self, address: &str) -> Result<List> {
        self.read(|c| get_list(c, address))
    }

    /// The lists of one domain, or of all, by address.
    pub fn lists(&self, domain: Option<&str>) -> Result<Vec<List>> {
        self.read(|c| {
            let domain_id = domain.map(|d| get_domain(c, d).map(|d| d.id.0)).transpose()?;
            let mut stmt = c
                .prepare(&format!(
                    "{LIST_SELECT} WHERE ?1 IS NULL OR l.domain_id = ?1 ORDER BY d.name, l.local_part"
                ))
                .db()?;
            let rows = stmt.query_map([domain_id], row_to_list).db()?;
            let mut lists = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
            for l in &mut lists {
                l.members = list_members(c, l.id)?;
            }
            Ok(lists)
        })
    }

    /// Changes a list's settings.
    pub fn update_list(&self, address: &str, update: ListUpdate) -> Result<List> {
        if let Some(mode) = &update.mode {
            validate_mode(mode)?;
        }
        let address = address.to_string();
        self.write(move |ctx| {
            let l = get_list(ctx.conn, &address)?;
            if let Some(mode) = update.mode {
                let (mode, announcer) = mode_to_db(&mode);
                ctx.conn
                    .execute(
                        "UPDATE lists SET mode = ?2, announcer = ?3 WHERE id = ?1",
                        params![l.id.0, mode, announcer],
                    )
                    .db()?;
            }
            if let Some(auth) = update.require_auth {
                ctx.conn
                    .execute(
                        "UPDATE lists SET require_auth = ?2 WHERE id = ?1",
                        params![l.id.0, auth],
                    )
                    .db()?;
            }
            if let Some(enabled) = update.enabled {
                ctx.conn
                    .execute(
                        "UPDATE lists SET enabled = ?2 WHERE id = ?1",
                        params![l.id.0, enabled],
                    )
                    .db()?;
            }
            list_by_id(ctx.conn, l.id)
        })
    }

    /// Removes a list.
    pub fn remove_list(&self, address: &str) -> Result<()> {
        let address = address.to_string();
        self.write(move |ctx| {
            let l = get_list(ctx.conn, &address)?;
            ctx.conn
                .execute("DELETE FROM lists WHERE id = ?1", [l.id.0])
                .db()?;
            Ok(())
        })
    }

    /// Adds a member (any address, local or remote). Adding twice is harmless.
    pub fn add_list_member(&self, list: &str, member: &str) -> Result<List> {
        let list = list.to_string();
        let member = Address::parse(member)?.key();
        self.write(move |ctx| {
            let l = get_list(ctx.conn, &list)?;
            ctx.conn
                .execute(
                    "INSERT OR IGNORE INTO list_members(list_id, address) VALUES (?1, ?2)",
                    params![l.id.0, member],
                )
                .db()?;
            list_by_id(ctx.conn, l.id)
        })
    }

    /// Removes a member.
    pub fn remove_list_member(&self, list: &str, member: &str) -> Result<List> {
        let list = list.to_string();
        let member = Address::parse(member)?.key();
        self.write(move |ctx| {
            let l = get_list(ctx.conn, &list)?;
            let n = ctx
                .conn
                .execute(
                    "DELETE FROM list_members WHERE list_id = ?1 AND address = ?2",
                    params![l.id.0, member],
                )
                .db()?;
            if n == 0 {
                return Err(Error::InvalidAddress {
                    address: member,
                    reason: "not a member of the list",
                });
            }
            list_by_id(ctx.conn, l.id)
        })
    }
}
