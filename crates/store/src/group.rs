//! Groups of accounts, for IMAP ACLs (SPEC D-3).

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::account::get_account;
use crate::error::{DbResult, Error, Result};
use crate::types::GroupId;

/// A group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Group {
    /// Row id.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// The member accounts' addresses, sorted.
    pub members: Vec<String>,
}

fn get_group(conn: &Connection, name: &str) -> Result<Group> {
    let id: i64 = conn
        .query_row("SELECT id FROM groups WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .db()?
        .ok_or_else(|| Error::GroupNotFound(name.to_string()))?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT a.display_local || '@' || d.name FROM group_members g
             JOIN accounts a ON a.id = g.account_id JOIN domains d ON d.id = a.domain_id
             WHERE g.group_id = ?1 ORDER BY 1",
        )
        .db()?;
    let members = stmt
        .query_map([id], |r| r.get(0))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    Ok(Group {
        id: GroupId(id),
        name: name.to_string(),
        members,
    })
}

impl Store {
    /// Adds an empty group.
    pub fn add_group(&self, name: &str) -> Result<Group> {
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err(Error::InvalidName {
                what: "group",
                name,
            });
        }
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute("INSERT OR IGNORE INTO groups(name) VALUES (?1)", [&name])
                .db()?;
            if n == 0 {
                return Err(Error::GroupExists(name));
            }
            get_group(ctx.conn, &name)
        })
    }

    /// The group named `name`, with its members.
    pub fn group(&self, name: &str) -> Result<Group> {
        self.read(|c| get_group(c, name))
    }

    /// Every group, by name.
    pub fn groups(&self) -> Result<Vec<Group>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT name FROM groups ORDER BY name").db()?;
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?;
            names.iter().map(|n| get_group(c, n)).collect()
        })
    }

    /// The names of the groups `account` belongs to.
    pub fn groups_of(&self, account: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let a = get_account(c, account)?;
            let mut stmt = c
                .prepare(
                    "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id
                     WHERE m.account_id = ?1 ORDER BY g.name",
                )
                .db()?;
            let rows = stmt.query_map([a.id.0], |r| r.get(0)).db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
    }

    /// Removes a group.
    pub fn remove_group(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute("DELETE FROM groups WHERE name = ?1", [&name])
                .db()?;
            if n == 0 {
                return Err(Error::GroupNotFound(name));
            }
            Ok(())
        })
    }

    /// Adds an account to a group.
    pub fn add_group_member(&self, group: &str, account: &str) -> Result<Group> {
        let (group, account) = (group.to_string(), account.to_string());
        self.write(move |ctx| {
            let g = get_group(ctx.conn, &group)?;
            let a = get_account(ctx.conn, &account)?;
            ctx.conn
                .execute(
                    "INSERT OR IGNORE INTO group_members(group_id, account_id) VALUES (?1, ?2)",
                    params![g.id.0, a.id.0],
                )
                .db()?;
            get_group(ctx.conn, &group)
        })
    }

    /// Removes an account from a group.
    pub fn remove_group_member(&self, group: &str, account: &str) -> Result<Group> {
        let (group, account) = (group.to_string(), account.to_string());
        self.write(move |ctx| {
            let g = get_group(ctx.conn, &group)?;
            let a = get_account(ctx.conn, &account)?;
            ctx.conn
                .execute(
                    "DELETE FROM group_members WHERE group_id = ?1 AND account_id = ?2",
                    params![g.id.0, a.id.0],
                )
                .db()?;
            get_group(ctx.conn, &group)
        })
    }
}
