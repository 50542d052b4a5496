//! `ironpost domain …`: local domains and their domain-name aliases (SPEC D-1).

use clap::Subcommand;
use ironpost_store::{Domain, Store};
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
    /// Domain-name aliases: other names meaning the same domain.
    #[command(subcommand)]
    Alias(DomainAliasCommand),
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
