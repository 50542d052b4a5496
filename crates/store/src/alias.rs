//! Aliases: one address forwarding to one target, local or remote (SPEC D-3).
//! An alias never shadows an account or a list.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::domain::{check_new_address, get_domain};
use crate::error::{DbResult, Error, Result};
use crate::types::{Address, AliasId};

/// An alias.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alias {
    /// Row id.
    pub id: AliasId,
    /// The alias address.
    pub address: String,
    /// Where it forwards to.
    pub target: String,
    /// Disabled aliases refuse mail.
    pub enabled: bool,
}

const ALIAS_SELECT: &str = "SELECT a.id, a.local_part || '@' || d.name, a.target, a.enabled
    FROM aliases a JOIN domains d ON d.id = a.domain_id";

fn row_to_alias(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alias> {
    Ok(Alias {
        id: AliasId(r.get(0)?),
        address: r.get(1)?,
        target: r.get(2)?,
        enabled: r.get(3)?,
    })
}

fn get_alias(conn: &Connection, address: &str) -> Result<Alias> {
    let addr = Address::parse(address)?;
    let domain = get_domain(conn, addr.domain())?;
    conn.prepare_cached(&format!(
        "{ALIAS_SELECT} WHERE a.domain_id = ?1 AND a.local_part = ?2"
    ))
    .db()?
    .query_row(params![domain.id.0, addr.local_key()], row_to_alias)
    .optional()
    .db()?
    .ok_or_else(|| Error::AliasNotFound(addr.to_string()))
}

impl Store {
    /// Adds an alias from `address` to `target`.
    pub fn add_alias(&self, address: &str, target: &str) -> Result<Alias> {
        let address = Address::parse(address)?;
        let target = Address::parse(target)?.to_string();
        self.write(move |ctx| {
            let domain = get_domain(ctx.conn, address.domain())?;
            check_new_address(
                ctx.conn,
                &domain,
                &address,
                "alias",
                "aliases",
                domain.limits.max_aliases,
            )?;
            ctx.conn
                .execute(
                    "INSERT INTO aliases(domain_id, local_part, target) VALUES (?1, ?2, ?3)",
                    params![domain.id.0, address.local_key(), target],
                )
                .db()?;
            get_alias(ctx.conn, &address.to_string())
        })
    }

    /// The alias at `address`.
    pub fn alias(&self, address: &str) -> Result<Alias> {
        self.read(|c| get_alias(c, address))
    }

    /// The aliases of one domain, or of all, by address.
    pub fn aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>> {
        self.read(|c| {
            let domain_id = domain.map(|d| get_domain(c, d).map(|d| d.id.0)).transpose()?;
            let mut stmt = c
                .prepare(&format!(
                    "{ALIAS_SELECT} WHERE ?1 IS NULL OR a.domain_id = ?1 ORDER BY d.name, a.local_part"
                ))
                .db()?;
            let rows = stmt.query_map([domain_id], row_to_alias).db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
    }

    /// Points an alias at a new target.
    pub fn set_alias_target(&self, address: &str, target: &str) -> Result<Alias> {
        let address = address.to_string();
        let target = Address::parse(target)?.to_string();
        self.write(move |ctx| {
            let a = get_alias(ctx.conn, &address)?;
            ctx.conn
                .execute(
                    "UPDATE aliases SET target = ?2 WHERE id = ?1",
                    params![a.id.0, target],
                )
                .db()?;
            get_alias(ctx.conn, &address)
        })
    }

    /// Enables or disables an alias.
    pub fn set_alias_enabled(&self, address: &str, enabled: bool) -> Result<Alias> {
        let address = address.to_string();
        self.write(move |ctx| {
            let a = get_alias(ctx.conn, &address)?;
            ctx.conn
                .execute(
                    "UPDATE aliases SET enabled = ?2 WHERE id = ?1",
                    params![a.id.0, enabled],
                )
                .db()?;
            get_alias(ctx.conn, &address)
        })
    }

    /// Removes an alias.
    pub fn remove_alias(&self, address: &str) -> Result<()> {
        let address = address.to_string();
        self.write(move |ctx| {
            let a = get_alias(ctx.conn, &address)?;
            ctx.conn
                .execute("DELETE FROM aliases WHERE id = ?1", [a.id.0])
                .db()?;
            Ok(())
        })
    }
}
