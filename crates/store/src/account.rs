//! Accounts and logins (SPEC D-2).

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::domain::{check_new_address, drop_mailboxes, find_domain, get_domain};
use crate::error::{AuthError, DbResult, Error, Result};
use crate::mailbox::insert_mailbox;
use crate::password::{self, Password};
use crate::types::{AccountId, Address, AdminLevel, DomainId, SpecialUse, Timestamp, now};

/// The folders every new account gets.
pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// An account (never shows the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// Row id.
    pub id: AccountId,
    /// Its domain.
    pub domain_id: DomainId,
    /// `local@domain`.
    pub address: String,
    /// Disabled accounts receive nothing and cannot log in.
    pub enabled: bool,
    /// Administrative rights.
    pub admin_level: AdminLevel,
    /// Quota in bytes; 0 is unlimited.
    pub quota_bytes: u64,
    /// Bytes used by its messages (exact: kept by triggers on the message rows).
    pub used_bytes: u64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Last successful login.
    pub last_logon: Option<Timestamp>,
    /// When it was created.
    pub created: Timestamp,
}

/// A new account for [`Store::add_account`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewAccount {
    /// `local@domain`; the domain must exist.
    pub address: String,
    /// Clear text or an importable hash.
    pub password: Password,
    /// Quota in bytes; 0 is unlimited (or the domain's maximum account size).
    pub quota_bytes: u64,
    /// Administrative rights.
    pub admin_level: AdminLevel,
    /// Enabled on creation (default true).
    pub enabled: bool,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
}

impl NewAccount {
    /// An enabled user account with no quota and no names.
    pub fn new(address: &str, password: Password) -> Self {
        NewAccount {
            address: address.to_string(),
            password,
            quota_bytes: 0,
            admin_level: AdminLevel::User,
            enabled: true,
            first_name: String::new(),
            last_name: String::new(),
        }
    }
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Administrative rights.
    pub admin_level: Option<AdminLevel>,
    /// Quota in bytes (0: unlimited).
    pub quota_bytes: Option<u64>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
}

/// The columns [`row_to_account`] reads, as a literal for `concat!`.
macro_rules! account_columns {
    () => {
        "a.id, a.domain_id, a.display_local || '@' || d.name, a.enabled,
    a.admin_level, a.quota_bytes, a.used_bytes, a.first_name, a.last_name, a.last_logon,
    a.created, a.password_hash"
    };
}

fn row_to_account(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Account, i64, String)> {
    Ok((
        Account {
            id: AccountId(r.get(0)?),
            domain_id: DomainId(r.get(1)?),
            address: r.get(2)?,
            enabled: r.get(3)?,
            admin_level: AdminLevel::User,
            quota_bytes: r.get::<_, i64>(5)?.max(0) as u64,
            used_bytes: r.get::<_, i64>(6)?.max(0) as u64,
            first_name: r.get(7)?,
            last_name: r.get(8)?,
            last_logon: r.get(9)?,
            created: r.get(10)?,
        },
        r.get(4)?,
        r.get(11)?,
    ))
}

fn finish(row: (Account, i64, String)) -> Result<(Account, String)> {
    let (mut a, level, hash) = row;
    a.admin_level = AdminLevel::from_db(level)?;
    Ok((a, hash))
}

/// The account at `address` (following domain aliases) with its password hash.
pub(crate) fn find_account(
    conn: &Connection,
    address: &Address,
) -> Result<Option<(Account, String)>> {
    let Some(domain) = find_domain(conn, address.domain())? else {
        return Ok(None);
    };
    let sql = concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a JOIN domains d ON d.id = a.domain_id
         WHERE a.domain_id = ?1 AND a.local_part = ?2"
    );
    conn.prepare_cached(sql)
        .db()?
        .query_row(params![domain.id.0, address.local_key()], row_to_account)
        .optional()
        .db()?
        .map(finish)
        .transpose()
}

pub(crate) fn get_account(conn: &Connection, address: &str) -> Result<Account> {
    let addr = Address::parse(address)?;
    find_account(conn, &addr)?
        .map(|(a, _)| a)
        .ok_or_else(|| Error::AccountNotFound(addr.to_string()))
}

pub(crate) fn account_by_id(conn: &Connection, id: AccountId) -> Result<Account> {
    let sql = concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a JOIN domains d ON d.id = a.domain_id
         WHERE a.id = ?1"
    );
    conn.prepare_cached(sql)
        .db()?
        .query_row([id.0], row_to_account)
        .optional()
        .db()?
        .map(finish)
        .transpose()?
        .map(|(a, _)| a)
        .ok_or_else(|| Error::AccountNotFound(id.to_string()))
}

impl Store {
    /// Creates an account with its default folders (INBOX, Sent, Drafts,
    /// Trash, Junk, Archive, the last five with their special-use attributes).
    pub fn add_account(&self, new: NewAccount) -> Result<Account> {
        let address = Address::parse(&new.address)?;
        let hash = password::to_stored(self.password_params(), &new.password)?;
        self.write(move |ctx| {
            let domain = get_domain(ctx.conn, address.domain())?;
            check_new_address(
                ctx.conn,
                &domain,
                &address,
                "account",
                "accounts",
                domain.limits.max_accounts,
            )?;
            let quota = quota_within(&domain, new.quota_bytes)?;
            ctx.conn
                .execute(
                    "INSERT INTO accounts(domain_id, local_part, display_local, password_hash,
                     quota_bytes, admin_level, enabled, first_name, last_name, created)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        domain.id.0,
                        address.local_key(),
                        address.local(),
                        hash,
                        quota as i64,
                        new.admin_level.to_db(),
                        new.enabled,
                        new.first_name,
                        new.last_name,
                        now()
                    ],
                )
                .db()?;
            let id = AccountId(ctx.conn.last_insert_rowid());
            for (name, special) in DEFAULT_MAILBOXES {
                insert_mailbox(ctx.conn, id, name, special)?;
            }
            account_by_id(ctx.conn, id)
        })
    }

    /// The account at `address` (domain aliases followed).
    pub fn account(&self, address: &str) -> Result<Account> {
        self.read(|c| get_account(c, address))
    }

    /// The account with row id `id`.
    pub fn account_by_id(&self, id: AccountId) -> Result<Account> {
        self.read(|c| account_by_id(c, id))
    }

    /// The accounts of one domain, or of all when `domain` is `None`, by address.
    pub fn accounts(&self, domain: Option<&str>) -> Result<Vec<Account>> {
        self.read(|c| {
            let domain_id = domain
                .map(|d| get_domain(c, d).map(|d| d.id.0))
                .transpose()?;
            let sql = concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts a JOIN domains d ON d.id = a.domain_id
                 WHERE ?1 IS NULL OR a.domain_id = ?1 ORDER BY d.name, a.local_part"
            );
            let mut stmt = c.prepare(sql).db()?;
            let rows = stmt.query_map([domain_id], row_to_account).db()?;
            rows.map(|r| r.db().and_then(finish).map(|(a, _)| a))
                .collect()
        })
    }

    /// Changes an account's settings.
    pub fn update_account(&self, address: &str, update: AccountUpdate) -> Result<Account> {
        let address = address.to_string();
        self.write(move |ctx| {
            let a = get_account(ctx.conn, &address)?;
            let c = ctx.conn;
            if let Some(enabled) = update.enabled {
                c.execute(
                    "UPDATE accounts SET enabled = ?2 WHERE id = ?1",
                    params![a.id.0, enabled],
                )
                .db()?;
            }
            if let Some(level) = update.admin_level {
                c.execute(
                    "UPDATE accounts SET admin_level = ?2 WHERE id = ?1",
                    params![a.id.0, level.to_db()],
                )
                .db()?;
            }
            if let Some(quota) = update.quota_bytes {
                let domain = get_domain(c, a.address.rsplit('@').next().unwrap_or(""))?;
                let quota = quota_within(&domain, quota)?;
                c.execute(
                    "UPDATE accounts SET quota_bytes = ?2 WHERE id = ?1",
                    params![a.id.0, quota as i64],
                )
                .db()?;
            }
            if let Some(first) = update.first_name {
                c.execute(
                    "UPDATE accounts SET first_name = ?2 WHERE id = ?1",
                    params![a.id.0, first],
                )
                .db()?;
            }
            if let Some(last) = update.last_name {
                c.execute(
                    "UPDATE accounts SET last_name = ?2 WHERE id = ?1",
                    params![a.id.0, last],
                )
                .db()?;
            }
            account_by_id(c, a.id)
        })
    }

    /// Enables or disables an account.
    pub fn set_account_enabled(&self, address: &str, enabled: bool) -> Result<Account> {
        self.update_account(
            address,
            AccountUpdate {
                enabled: Some(enabled),
                ..AccountUpdate::default()
            },
        )
    }

    /// Sets an account's quota in bytes (0: unlimited).
    pub fn set_quota(&self, address: &str, quota_bytes: u64) -> Result<Account> {
        self.update_account(
            address,
            AccountUpdate {
                quota_bytes: Some(quota_bytes),
                ..AccountUpdate::default()
            },
        )
    }

    /// Replaces an account's password (clear text is hashed with argon2id).
    pub fn set_password(&self, address: &str, password: Password) -> Result<()> {
        let hash = password::to_stored(self.password_params(), &password)?;
        let address = address.to_string();
        self.write(move |ctx| {
            let a = get_account(ctx.conn, &address)?;
            ctx.conn
                .execute(
                    "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
                    params![a.id.0, hash],
                )
                .db()?;
            Ok(())
        })
    }

    /// Removes an account with all its mailboxes and messages.
    pub fn remove_account(&self, address: &str) -> Result<()> {
        let address = address.to_string();
        self.write(move |ctx| {
            let a = get_account(ctx.conn, &address)?;
            drop_mailboxes(ctx, "account_id = ?1", a.id.0)?;
            ctx.conn
                .execute("DELETE FROM accounts WHERE id = ?1", [a.id.0])
                .db()?;
            Ok(())
        })
    }

    /// Checks a login. On success records the logon time and, when the stored
    /// hash is an imported (SHA-256, MD5) or non-argon2id one, replaces it by
    /// argon2id. An unknown address costs the same hashing time as a wrong
    /// password, and neither is told apart from the other.
    pub fn authenticate(&self, address: &str, password: &str) -> Result<Account, AuthError> {
        let Ok(addr) = Address::parse(address) else {
            password::verify(self.dummy_hash(), password);
            return Err(AuthError::InvalidCredentials);
        };
        let found = self.read(|c| {
            let account = find_account(c, &addr)?;
            let domain_enabled = find_domain(c, addr.domain())?.is_some_and(|d| d.enabled);
            Ok(account.map(|a| (a, domain_enabled)))
        })?;
        let Some(((account, stored), domain_enabled)) = found else {
            password::verify(self.dummy_hash(), password);
            return Err(AuthError::InvalidCredentials);
        };
        let verified = password::verify(&stored, password);
        if !verified.ok {
            return Err(AuthError::InvalidCredentials);
        }
        if !account.enabled || !domain_enabled {
            return Err(AuthError::Disabled(account.address));
        }
        let upgraded = if verified.upgrade {
            Some(password::hash(self.password_params(), password)?)
        } else {
            None
        };
        let id = account.id;
        let account = self.write(move |ctx| {
            let now = now();
            ctx.conn
                .execute(
                    "UPDATE accounts SET last_logon = ?2 WHERE id = ?1",
                    params![id.0, now],
                )
                .db()?;
            if let Some(new_hash) = upgraded {
                // Only if nobody changed the password meanwhile.
                ctx.conn
                    .execute(
                        "UPDATE accounts SET password_hash = ?2 WHERE id = ?1 AND password_hash = ?3",
                        params![id.0, new_hash, stored],
                    )
                    .db()?;
            }
            account_by_id(ctx.conn, id)
        })?;
        Ok(account)
    }

    /// The stored password hash's scheme, for diagnostics: `"argon2id"` or `"legacy"`.
    pub fn password_scheme(&self, address: &str) -> Result<&'static str> {
        let addr = Address::parse(address)?;
        let (_, hash) = self
            .read(|c| find_account(c, &addr))?
            .ok_or_else(|| Error::AccountNotFound(addr.to_string()))?;
        Ok(if hash.starts_with("$argon2id$") {
            "argon2id"
        } else {
            "legacy"
        })
    }
}

/// A quota allowed by the domain: 0 becomes the domain's maximum account size.
fn quota_within(domain: &crate::Domain, quota: u64) -> Result<u64> {
    match domain.limits.max_account_size {
        Some(max) if quota == 0 => Ok(max),
        Some(max) if quota > max => Err(Error::DomainLimit {
            domain: domain.name.clone(),
            what: "account size",
            limit: max,
        }),
        _ => Ok(quota),
    }
}
