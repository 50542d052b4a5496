//! `ironpost account …`: accounts, their passwords and quotas (SPEC D-2).
//! Passwords are read from standard input (recommended) or an option, and
//! never printed.

use std::io::BufRead;

use clap::{Args, Subcommand, ValueEnum};
use ironpost_store::{Account, AccountUpdate, AdminLevel, NewAccount, Password, Store};
use serde::Serialize;

use super::{AdminError, Output, PasswordSource, Record, date};

/// Bytes in the quota unit, MB (1 MB = 1 048 576 bytes, as mail clients count).
pub const MB: u64 = 1024 * 1024;
/// The largest quota accepted, in MB (16 TiB).
pub const MAX_QUOTA_MB: u64 = 16 * 1024 * 1024;

/// How a command takes a password.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input (recommended).
    #[arg(long)]
    pub password_stdin: bool,
    /// The password itself (visible to other local users in the process list).
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
}

impl PasswordArgs {
    fn read(self, input: &mut dyn BufRead) -> Result<String, AdminError> {
        PasswordSource::from_options(self.password_stdin, self.password)?.read(input)
    }
}

/// Administrative rights, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// An ordinary user.
    User,
    /// Administers its own domain.
    Domain,
    /// Administers the whole server.
    Server,
}

impl From<Level> for AdminLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::User => AdminLevel::User,
            Level::Domain => AdminLevel::Domain,
            Level::Server => AdminLevel::Server,
        }
    }
}

fn level_name(level: AdminLevel) -> &'static str {
    match level {
        AdminLevel::User => "user",
        AdminLevel::Domain => "domain",
        AdminLevel::Server => "server",
    }
}

fn quota_mb() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=MAX_QUOTA_MB)
}

/// The `account` verbs.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account with its default folders.
    ///
    /// Give the password on standard input, so that it never shows in the
    /// process list or the shell history:
    /// `printf '%s\n' "$PW" | ironpost account add a@example.com --password-stdin`.
    Add {
        /// The address; its domain must exist.
        address: String,
        /// How the password is given.
        #[command(flatten)]
        password: PasswordArgs,
        /// Quota in MB; 0 is unlimited (or the domain's largest account size).
        #[arg(long, value_name = "MB", value_parser = quota_mb())]
        quota: Option<u64>,
        /// First name.
        #[arg(long, value_name = "NAME")]
        first_name: Option<String>,
        /// Last name.
        #[arg(long, value_name = "NAME")]
        last_name: Option<String>,
        /// Administrative rights.
        #[arg(long, value_enum, default_value = "user")]
        admin_level: Level,
        /// Create the account disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List the accounts, of every domain or of one.
    List {
        /// Only this domain's accounts.
        #[arg(long)]
        domain: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show {
        /// The address.
        address: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an account's password.
    Passwd {
        /// The address.
        address: String,
        /// How the new password is given.
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Remove an account with all its folders and mail.
    Remove {
        /// The address.
        address: String,
    },
    /// Let the account receive mail and log in.
    Enable {
        /// The address.
        address: String,
    },
    /// Refuse mail for the account and its logins.
    Disable {
        /// The address.
        address: String,
    },
    /// Change an account's names or administrative rights.
    Set {
        /// The address.
        address: String,
        /// First name.
        #[arg(long, value_name = "NAME")]
        first_name: Option<String>,
        /// Last name.
        #[arg(long, value_name = "NAME")]
        last_name: Option<String>,
        /// Administrative rights.
        #[arg(long, value_enum)]
        admin_level: Option<Level>,
    },
    /// Release the account's POP3 lock, held by a session that is stuck
    /// (a running server keeps one POP3 session per account).
    #[command(name = "unlock-pop3")]
    UnlockPop3 {
        /// The address.
        address: String,
    },
    /// Set an account's quota.
    Quota {
        /// The address.
        address: String,
        /// Quota in MB; 0 is unlimited.
        #[arg(value_name = "MB", value_parser = quota_mb())]
        megabytes: u64,
    },
}

impl AccountCommand {
    /// Whether the output is wanted as JSON.
    pub fn json(&self) -> bool {
        matches!(
            self,
            AccountCommand::List { json: true, .. } | AccountCommand::Show { json: true, .. }
        )
    }
}

/// An account as the CLI shows it (never with its password).
#[derive(Debug, Serialize)]
pub struct AccountView {
    /// `local@domain`.
    pub address: String,
    /// Whether it receives mail and may log in.
    pub enabled: bool,
    /// `user`, `domain` or `server`.
    pub admin_level: &'static str,
    /// Quota in MB, rounded up; 0 is unlimited.
    pub quota_mb: u64,
    /// Quota in bytes; 0 is unlimited.
    pub quota_bytes: u64,
    /// Bytes used by its messages.
    pub used_bytes: u64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Last successful login (RFC 3339).
    pub last_logon: Option<String>,
    /// Creation time (RFC 3339).
    pub created: String,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        AccountView {
            address: a.address,
            enabled: a.enabled,
            admin_level: level_name(a.admin_level),
            quota_mb: a.quota_bytes.div_ceil(MB),
            quota_bytes: a.quota_bytes,
            used_bytes: a.used_bytes,
            first_name: a.first_name,
            last_name: a.last_name,
            last_logon: a.last_logon.map(date),
            created: date(a.created),
        }
    }
}

impl Record for AccountView {
    const COLUMNS: &'static [&'static str] = &[
        "address",
        "enabled",
        "quota_mb",
        "used_bytes",
        "first_name",
        "last_name",
    ];
}

fn describe_quota(a: &Account) -> String {
    match a.quota_bytes {
        0 => "no quota".to_string(),
        q => format!("quota {} MB", q.div_ceil(MB)),
    }
}

/// Runs an `account` verb; a password given with `--password-stdin` is read from `input`.
pub fn run(
    store: &Store,
    command: AccountCommand,
    input: &mut dyn BufRead,
) -> Result<Output, AdminError> {
    Ok(match command {
        AccountCommand::Add {
            address,
            password,
            quota,
            first_name,
            last_name,
            admin_level,
            disabled,
        } => {
            let password = password.read(input)?;
            let mut new = NewAccount::new(&address, Password::Plain(password));
            new.quota_bytes = quota.unwrap_or(0) * MB;
            new.first_name = first_name.unwrap_or_default();
            new.last_name = last_name.unwrap_or_default();
            new.admin_level = admin_level.into();
            new.enabled = !disabled;
            let a = store.add_account(new)?;
            Output::Done(format!(
                "added account {} ({})",
                a.address,
                describe_quota(&a)
            ))
        }
        AccountCommand::List { domain, .. } => {
            let accounts: Vec<AccountView> = store
                .accounts(domain.as_deref())?
                .into_iter()
                .map(Into::into)
                .collect();
            Output::many(&accounts)
        }
        AccountCommand::Show { address, .. } => {
            Output::one(&AccountView::from(store.account(&address)?))
        }
        AccountCommand::Passwd { address, password } => {
            // Refuse an unknown account before reading anything.
            let a = store.account(&address)?;
            let password = password.read(input)?;
            store.set_password(&a.address, Password::Plain(password))?;
            Output::Done(format!("changed the password of {}", a.address))
        }
        AccountCommand::Remove { address } => {
            let a = store.account(&address)?;
            store.remove_account(&a.address)?;
            Output::Done(format!("removed account {} and its mail", a.address))
        }
        AccountCommand::UnlockPop3 { address } => {
            let a = store.account(&address)?;
            if store.unlock_maildrop(a.id, None)? {
                Output::Done(format!("released the POP3 lock of {}", a.address))
            } else {
                Output::Done(format!("{} had no POP3 lock", a.address))
            }
        }
        AccountCommand::Enable { address } => {
            let a = store.set_account_enabled(&address, true)?;
            Output::Done(format!("enabled account {}", a.address))
        }
        AccountCommand::Disable { address } => {
            let a = store.set_account_enabled(&address, false)?;
            Output::Done(format!("disabled account {}", a.address))
        }
        AccountCommand::Set {
            address,
            first_name,
            last_name,
            admin_level,
        } => {
            if first_name.is_none() && last_name.is_none() && admin_level.is_none() {
                return Err(AdminError::Usage(
                    "nothing to change: give --first-name, --last-name or --admin-level".into(),
                ));
            }
            let update = AccountUpdate {
                first_name,
                last_name,
                admin_level: admin_level.map(Into::into),
                ..AccountUpdate::default()
            };
            let a = store.update_account(&address, update)?;
            Output::Done(format!("changed account {}", a.address))
        }
        AccountCommand::Quota { address, megabytes } => {
            let update = AccountUpdate {
                quota_bytes: Some(megabytes * MB),
                ..AccountUpdate::default()
            };
            let a = store.update_account(&address, update)?;
            Output::Done(format!("account {}: {}", a.address, describe_quota(&a)))
        }
    })
}
