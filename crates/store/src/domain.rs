//! Domains and domain-name aliases (SPEC D-1).

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::error::{DbResult, Error, Result};
use crate::types::{Address, DomainId, Timestamp, normalize_domain, now};

/// Size and count limits of a domain; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainLimits {
    /// Sum of the accounts' used bytes.
    pub max_total_size: Option<u64>,
    /// One message's size.
    pub max_message_size: Option<u64>,
    /// One account's quota (a new account without a quota gets this one).
    pub max_account_size: Option<u64>,
    /// Number of accounts.
    pub max_accounts: Option<u64>,
    /// Number of aliases.
    pub max_aliases: Option<u64>,
    /// Number of distribution lists.
    pub max_lists: Option<u64>,
}

/// A local domain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Domain {
    /// Row id.
    pub id: DomainId,
    /// Lower-case name.
    pub name: String,
    /// Disabled domains receive nothing and log nobody in.
    pub enabled: bool,
    /// Other names that mean this domain.
    pub aliases: Vec<String>,
    /// Where mail to unknown local parts goes.
    pub catch_all: Option<String>,
    /// The plus-addressing separator (`+` makes `user+tag@` reach `user@`).
    pub plus_separator: Option<char>,
    /// Whether greylisting applies to the domain's recipients.
    pub greylisting: bool,
    /// Limits.
    pub limits: DomainLimits,
    /// When it was created.
    pub created: Timestamp,
}

/// Changes to a domain; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DomainUpdate {
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Set (`Some(Some(..))`) or clear (`Some(None)`) the catch-all address.
    pub catch_all: Option<Option<String>>,
    /// Set or clear the plus-addressing separator.
    pub plus_separator: Option<Option<char>>,
    /// Greylisting switch.
    pub greylisting: Option<bool>,
    /// Replace the limits.
    pub limits: Option<DomainLimits>,
}

/// The columns [`row_to_domain`] reads, as a literal for `concat!`.
macro_rules! domain_columns {
    () => {
        "id, name, enabled, catch_all, plus_separator, greylisting,
    max_total_size, max_message_size, max_account_size, max_accounts, max_aliases, max_lists,
    created"
    };
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.map(|v| v.max(0) as u64)
}

fn opt_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| v.min(i64::MAX as u64) as i64)
}

fn row_to_domain(r: &rusqlite::Row<'_>) -> rusqlite::Result<Domain> {
    let sep: Option<String> = r.get(4)?;
    Ok(Domain {
        id: DomainId(r.get(0)?),
        name: r.get(1)?,
        enabled: r.get(2)?,
        aliases: Vec::new(),
        catch_all: r.get(3)?,
        plus_separator: sep.and_then(|s| s.chars().next()),
        greylisting: r.get(5)?,
        limits: DomainLimits {
            max_total_size: opt_u64(r.get(6)?),
            max_message_size: opt_u64(r.get(7)?),
            max_account_size: opt_u64(r.get(8)?),
            max_accounts: opt_u64(r.get(9)?),
            max_aliases: opt_u64(r.get(10)?),
            max_lists: opt_u64(r.get(11)?),
        },
        created: r.get(12)?,
    })
}

/// The domain named `name` or having `name` as a domain alias.
pub(crate) fn find_domain(conn: &Connection, name: &str) -> Result<Option<Domain>> {
    let sql = concat!(
        "SELECT ",
        domain_columns!(),
        " FROM domains WHERE name = ?1
         OR id = (SELECT domain_id FROM domain_aliases WHERE name = ?1)"
    );
    let domain = conn
        .prepare_cached(sql)
        .db()?
        .query_row([name], row_to_domain)
        .optional()
        .db()?;
    match domain {
        Some(mut d) => {
            d.aliases = domain_aliases(conn, d.id)?;
            Ok(Some(d))
        }
        None => Ok(None),
    }
}

/// [`find_domain`], or [`Error::DomainNotFound`].
pub(crate) fn get_domain(conn: &Connection, name: &str) -> Result<Domain> {
    let name = normalize_domain(name)?;
    find_domain(conn, &name)?.ok_or(Error::DomainNotFound(name))
}

fn domain_aliases(conn: &Connection, id: DomainId) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM domain_aliases WHERE domain_id = ?1 ORDER BY name")
        .db()?;
    let rows = stmt.query_map([id.0], |r| r.get(0)).db()?;
    rows.collect::<rusqlite::Result<Vec<String>>>().db()
}

/// What owns `local` in the domain: `"account"`, `"alias"`, `"list"` or nothing.
pub(crate) fn address_owner(
    conn: &Connection,
    domain: DomainId,
    local: &str,
) -> Result<Option<&'static str>> {
    for (table, kind) in [
        ("accounts", "account"),
        ("aliases", "alias"),
        ("lists", "list"),
    ] {
        let found = conn
            .prepare_cached(&format!(
                "SELECT 1 FROM {table} WHERE domain_id = ?1 AND local_part = ?2"
            ))
            .db()?
            .exists(params![domain.0, local])
            .db()?;
        if found {
            return Ok(Some(kind));
        }
    }
    Ok(None)
}

/// Refuses a new `wanted` object at `address` when something already has it
/// or the domain's count limit (`limit`, counted in `table`) is reached.
pub(crate) fn check_new_address(
    conn: &Connection,
    domain: &Domain,
    address: &Address,
    wanted: &'static str,
    table: &'static str,
    limit: Option<u64>,
) -> Result<()> {
    if let Some(existing) = address_owner(conn, domain.id, &address.local_key())? {
        return Err(Error::AddressInUse {
            address: address.to_string(),
            wanted,
            existing,
        });
    }
    if let Some(limit) = limit {
        let count: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE domain_id = ?1"),
                [domain.id.0],
                |r| r.get(0),
            )
            .db()?;
        if count as u64 >= limit {
            return Err(Error::DomainLimit {
                domain: domain.name.clone(),
                what: table,
                limit,
            });
        }
    }
    Ok(())
}

/// Deletes the message rows of every mailbox matching `where_sql` (a
/// condition on `mailboxes`, one `?1` parameter) so that blob references and
/// quota follow, and announces the mailboxes' end on the feed.
pub(crate) fn drop_mailboxes(
    ctx: &mut crate::commit::WriteCtx<'_>,
    where_sql: &str,
    param: i64,
) -> Result<()> {
    let ids: Vec<i64> = {
        let mut stmt = ctx
            .conn
            .prepare(&format!("SELECT id FROM mailboxes WHERE {where_sql}"))
            .db()?;
        let rows = stmt.query_map([param], |r| r.get(0)).db()?;
        rows.collect::<rusqlite::Result<_>>().db()?
    };
    for id in ids {
        crate::mailbox::delete_mailbox_rows(ctx, crate::MailboxId(id))?;
    }
    Ok(())
}

impl Store {
    /// Adds a domain. The name must contain a dot.
    pub fn add_domain(&self, name: &str) -> Result<Domain> {
        let name = normalize_domain(name)?;
        self.write(move |ctx| {
            if find_domain(ctx.conn, &name)?.is_some() {
                return Err(Error::DomainExists(name));
            }
            ctx.conn
                .execute(
                    "INSERT INTO domains(name, created) VALUES (?1, ?2)",
                    params![name, now()],
                )
                .db()?;
            get_domain(ctx.conn, &name)
        })
    }

    /// The domain named `name` (or having it as a domain alias).
    pub fn domain(&self, name: &str) -> Result<Domain> {
        self.read(|c| get_domain(c, name))
    }

    /// Every domain, by name.
    pub fn domains(&self) -> Result<Vec<Domain>> {
        self.read(|c| {
            let mut stmt = c
                .prepare(concat!(
                    "SELECT ",
                    domain_columns!(),
                    " FROM domains ORDER BY name"
                ))
                .db()?;
            let rows = stmt.query_map([], row_to_domain).db()?;
            let mut out = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
            for d in &mut out {
                d.aliases = domain_aliases(c, d.id)?;
            }
            Ok(out)
        })
    }

    /// Changes a domain's settings.
    pub fn update_domain(&self, name: &str, update: DomainUpdate) -> Result<Domain> {
        let name = name.to_string();
        if let Some(Some(catch_all)) = &update.catch_all {
            Address::parse(catch_all)?;
        }
        self.write(move |ctx| {
            let d = get_domain(ctx.conn, &name)?;
            let c = ctx.conn;
            if let Some(enabled) = update.enabled {
                c.execute(
                    "UPDATE domains SET enabled = ?2 WHERE id = ?1",
                    params![d.id.0, enabled],
                )
                .db()?;
            }
            if let Some(catch_all) = update.catch_all {
                let catch_all = catch_all
                    .map(|a| Address::parse(&a).map(|a| a.to_string()))
                    .transpose()?;
                c.execute(
                    "UPDATE domains SET catch_all = ?2 WHERE id = ?1",
                    params![d.id.0, catch_all],
                )
                .db()?;
            }
            if let Some(sep) = update.plus_separator {
                c.execute(
                    "UPDATE domains SET plus_separator = ?2 WHERE id = ?1",
                    params![d.id.0, sep.map(String::from)],
                )
                .db()?;
            }
            if let Some(g) = update.greylisting {
                c.execute(
                    "UPDATE domains SET greylisting = ?2 WHERE id = ?1",
                    params![d.id.0, g],
                )
                .db()?;
            }
            if let Some(l) = update.limits {
                c.execute(
                    "UPDATE domains SET max_total_size = ?2, max_message_size = ?3,
                     max_account_size = ?4, max_accounts = ?5, max_aliases = ?6, max_lists = ?7
                     WHERE id = ?1",
                    params![
                        d.id.0,
                        opt_i64(l.max_total_size),
                        opt_i64(l.max_message_size),
                        opt_i64(l.max_account_size),
                        opt_i64(l.max_accounts),
                        opt_i64(l.max_aliases),
                        opt_i64(l.max_lists)
                    ],
                )
                .db()?;
            }
            get_domain(c, &d.name)
        })
    }

    /// Enables or disables a domain.
    pub fn set_domain_enabled(&self, name: &str, enabled: bool) -> Result<Domain> {
        self.update_domain(
            name,
            DomainUpdate {
                enabled: Some(enabled),
                ..DomainUpdate::default()
            },
        )
    }

    /// Removes a domain with all its accounts (and their mail), aliases and lists.
    pub fn remove_domain(&self, name: &str) -> Result<()> {
        let name = normalize_domain(name)?;
        self.write(move |ctx| {
            let d = ctx
                .conn
                .query_row("SELECT id FROM domains WHERE name = ?1", [&name], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
                .db()?
                .ok_or_else(|| Error::DomainNotFound(name.clone()))?;
            drop_mailboxes(
                ctx,
                "account_id IN (SELECT id FROM accounts WHERE domain_id = ?1)",
                d,
            )?;
            ctx.conn
                .execute("DELETE FROM domains WHERE id = ?1", [d])
                .db()?;
            Ok(())
        })
    }

    /// Makes `alias` another name of `domain`.
    pub fn add_domain_alias(&self, domain: &str, alias: &str) -> Result<Domain> {
        let domain = domain.to_string();
        let alias = normalize_domain(alias)?;
        self.write(move |ctx| {
            let d = get_domain(ctx.conn, &domain)?;
            if find_domain(ctx.conn, &alias)?.is_some() {
                return Err(Error::DomainExists(alias));
            }
            ctx.conn
                .execute(
                    "INSERT INTO domain_aliases(name, domain_id) VALUES (?1, ?2)",
                    params![alias, d.id.0],
                )
                .db()?;
            get_domain(ctx.conn, &d.name)
        })
    }

    /// Removes a domain alias.
    pub fn remove_domain_alias(&self, alias: &str) -> Result<()> {
        let alias = normalize_domain(alias)?;
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute("DELETE FROM domain_aliases WHERE name = ?1", [&alias])
                .db()?;
            if n == 0 {
                return Err(Error::DomainNotFound(alias));
            }
            Ok(())
        })
    }
}
