//! `ironpost domain …`: local domains and their domain-name aliases (SPEC D-1).

use clap::{Subcommand, ValueEnum};
use ironpost_store::{Domain, DomainUpdate, Store};
use serde::Serialize;

use super::{AdminError, Output, Record, date};

/// The `domain` verbs.
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a local domain (the name must contain a dot).
    Add {
        /// The domain name, e.g. example.com.
        name: String,
    },
    /// List the domains.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one domain.
    Show {
        /// The domain (or one of its domain-name aliases).
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a domain. One that still has accounts, aliases or lists is
    /// removed only with --force, which removes them and all their mail too.
    Remove {
        /// The domain.
        name: String,
        /// Also remove its accounts (with their mail), aliases and lists.
        #[arg(long)]
        force: bool,
    },
    /// Let the domain receive mail and its accounts log in.
    Enable {
        /// The domain.
        name: String,
    },
    /// Refuse mail for the domain and logins of its accounts.
    Disable {
        /// The domain.
        name: String,
    },
    /// Change a domain's settings: catch-all, plus addressing, greylisting, limits.
    Set(DomainSettings),
    /// Domain-name aliases: other names meaning the same domain.
    #[command(subcommand)]
    Alias(DomainAliasCommand),
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// What `domain set` changes; an option not given is left as it is. A limit
/// of 0 is unlimited.
#[derive(Debug, clap::Args)]
pub struct DomainSettings {
    /// The domain.
    pub name: String,
    /// Where mail to unknown local parts goes.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_catch_all")]
    pub catch_all: Option<String>,
    /// Refuse mail to unknown local parts (no catch-all).
    #[arg(long)]
    pub no_catch_all: bool,
    /// Plus addressing: with `+`, user+tag@domain reaches user@domain.
    #[arg(long, value_name = "CHAR", conflicts_with = "no_plus_separator")]
    pub plus_separator: Option<char>,
    /// No plus addressing.
    #[arg(long)]
    pub no_plus_separator: bool,
    /// Greylisting for the domain's recipients.
    #[arg(long, value_enum)]
    pub greylisting: Option<Switch>,
    /// Most accounts.
    #[arg(long, value_name = "N")]
    pub max_accounts: Option<u64>,
    /// Most aliases.
    #[arg(long, value_name = "N")]
    pub max_aliases: Option<u64>,
    /// Most distribution lists.
    #[arg(long, value_name = "N")]
    pub max_lists: Option<u64>,
    /// Largest account quota, MB.
    #[arg(long, value_name = "MB", value_parser = mb())]
    pub max_account_size: Option<u64>,
    /// Largest message, MB.
    #[arg(long, value_name = "MB", value_parser = mb())]
    pub max_message_size: Option<u64>,
    /// Largest total size of the accounts, MB.
    #[arg(long, value_name = "MB", value_parser = mb())]
    pub max_total_size: Option<u64>,
}

fn mb() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=super::account::MAX_QUOTA_MB)
}

/// A limit from the command line: 0 is unlimited.
fn limit(value: u64, unit: u64) -> Option<u64> {
    (value != 0).then_some(value * unit)
}

/// The separators plus addressing may use.
const SEPARATORS: &str = "+-_.=#~";

impl DomainSettings {
    /// The store update, given the domain as it is now.
    fn update(self, current: &Domain) -> Result<DomainUpdate, AdminError> {
        use super::account::MB;
        if let Some(sep) = self.plus_separator
            && !SEPARATORS.contains(sep)
        {
            return Err(AdminError::Usage(format!(
                "--plus-separator {sep:?}: use one of {SEPARATORS}"
            )));
        }
        let mut update = DomainUpdate::default();
        if self.no_catch_all {
            update.catch_all = Some(None);
        } else if let Some(address) = self.catch_all {
            update.catch_all = Some(Some(address));
        }
        if self.no_plus_separator {
            update.plus_separator = Some(None);
        } else if let Some(sep) = self.plus_separator {
            update.plus_separator = Some(Some(sep));
        }
        update.greylisting = self.greylisting.map(|s| s == Switch::On);
        let mut limits = current.limits;
        let mut changed = false;
        for (value, unit, field) in [
            (self.max_accounts, 1, &mut limits.max_accounts),
            (self.max_aliases, 1, &mut limits.max_aliases),
            (self.max_lists, 1, &mut limits.max_lists),
            (self.max_account_size, MB, &mut limits.max_account_size),
            (self.max_message_size, MB, &mut limits.max_message_size),
            (self.max_total_size, MB, &mut limits.max_total_size),
        ] {
            if let Some(value) = value {
                *field = limit(value, unit);
                changed = true;
            }
        }
        if changed {
            update.limits = Some(limits);
        }
        if update.catch_all.is_none()
            && update.plus_separator.is_none()
            && update.greylisting.is_none()
            && update.limits.is_none()
        {
            return Err(AdminError::Usage(
                "nothing to change: give at least one setting (see domain set --help)".into(),
            ));
        }
        Ok(update)
    }
}

/// The `domain alias` verbs.
#[derive(Debug, Subcommand)]
pub enum DomainAliasCommand {
    /// Make ALIAS another name of DOMAIN (mail to user@ALIAS reaches user@DOMAIN).
    Add {
        /// The domain.
        domain: String,
        /// The other name.
        alias: String,
    },
    /// Remove a domain-name alias.
    Remove {
        /// The other name.
        alias: String,
    },
}

impl DomainCommand {
    /// Whether the output is wanted as JSON.
    pub fn json(&self) -> bool {
        matches!(
            self,
            DomainCommand::List { json: true } | DomainCommand::Show { json: true, .. }
        )
    }
}

/// A domain as the CLI shows it.
#[derive(Debug, Serialize)]
pub struct DomainView {
    /// Lower-case name.
    pub name: String,
    /// Whether it receives mail.
    pub enabled: bool,
    /// Domain-name aliases.
    pub aliases: Vec<String>,
    /// Catch-all address.
    pub catch_all: Option<String>,
    /// Plus-addressing separator.
    pub plus_separator: Option<String>,
    /// Greylisting switch.
    pub greylisting: bool,
    /// Largest total size of the accounts, bytes.
    pub max_total_size: Option<u64>,
    /// Largest message, bytes.
    pub max_message_size: Option<u64>,
    /// Largest account quota, bytes.
    pub max_account_size: Option<u64>,
    /// Most accounts.
    pub max_accounts: Option<u64>,
    /// Most aliases.
    pub max_aliases: Option<u64>,
    /// Most lists.
    pub max_lists: Option<u64>,
    /// Creation time (RFC 3339).
    pub created: String,
}

impl From<Domain> for DomainView {
    fn from(d: Domain) -> Self {
        DomainView {
            name: d.name,
            enabled: d.enabled,
            aliases: d.aliases,
            catch_all: d.catch_all,
            plus_separator: d.plus_separator.map(String::from),
            greylisting: d.greylisting,
            max_total_size: d.limits.max_total_size,
            max_message_size: d.limits.max_message_size,
            max_account_size: d.limits.max_account_size,
            max_accounts: d.limits.max_accounts,
            max_aliases: d.limits.max_aliases,
            max_lists: d.limits.max_lists,
            created: date(d.created),
        }
    }
}

impl Record for DomainView {
    const COLUMNS: &'static [&'static str] = &["name", "enabled", "aliases"];
}

/// Runs a `domain` verb.
pub fn run(store: &Store, command: DomainCommand) -> Result<Output, AdminError> {
    Ok(match command {
        DomainCommand::Add { name } => {
            let d = store.add_domain(&name)?;
            Output::Done(format!("added domain {}", d.name))
        }
        DomainCommand::List { .. } => {
            let domains: Vec<DomainView> = store.domains()?.into_iter().map(Into::into).collect();
            Output::many(&domains)
        }
        DomainCommand::Show { name, .. } => Output::one(&DomainView::from(store.domain(&name)?)),
        DomainCommand::Remove { name, force } => {
            let d = store.domain(&name)?;
            let accounts = store.accounts(Some(&d.name))?.len();
            let aliases = store.aliases(Some(&d.name))?.len();
            let lists = store.lists(Some(&d.name))?.len();
            if !force && accounts + aliases + lists > 0 {
                return Err(AdminError::Refused(format!(
                    "domain {} still has {accounts} account(s), {aliases} alias(es) and \
                     {lists} list(s); remove them first, or use --force to remove them with \
                     the domain",
                    d.name
                )));
            }
            store.remove_domain(&d.name)?;
            Output::Done(format!("removed domain {}", d.name))
        }
        DomainCommand::Enable { name } => {
            let d = store.set_domain_enabled(&name, true)?;
            Output::Done(format!("enabled domain {}", d.name))
        }
        DomainCommand::Disable { name } => {
            let d = store.set_domain_enabled(&name, false)?;
            Output::Done(format!("disabled domain {}", d.name))
        }
        DomainCommand::Set(settings) => {
            let current = store.domain(&settings.name)?;
            let update = settings.update(&current)?;
            let d = store.update_domain(&current.name, update)?;
            Output::Done(format!("changed domain {}", d.name))
        }
        DomainCommand::Alias(DomainAliasCommand::Add { domain, alias }) => {
            let d = store.add_domain_alias(&domain, &alias)?;
            Output::Done(format!(
                "{} is now another name of domain {}",
                alias.trim().trim_end_matches('.').to_lowercase(),
                d.name
            ))
        }
        DomainCommand::Alias(DomainAliasCommand::Remove { alias }) => {
            store.remove_domain_alias(&alias)?;
            Output::Done(format!(
                "removed domain alias {}",
                alias.trim().to_lowercase()
            ))
        }
    })
}
