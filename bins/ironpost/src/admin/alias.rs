//! `ironpost alias …`: addresses that forward to one target, local or remote
//! (SPEC D-3). An alias never shadows an account or a list.

use clap::Subcommand;
use ironpost_store::{Alias, Store};
use serde::Serialize;

use super::{AdminError, Output, Record};

/// The `alias` verbs.
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Add an alias: mail to ADDRESS goes to TARGET.
    Add {
        /// The alias address; its domain must exist.
        address: String,
        /// Where mail goes: a local or a remote address.
        target: String,
    },
    /// List the aliases, of every domain or of one.
    List {
        /// Only this domain's aliases.
        #[arg(long)]
        domain: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one alias.
    Show {
        /// The alias address.
        address: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Point an alias at a new target.
    Set {
        /// The alias address.
        address: String,
        /// The new target.
        target: String,
    },
    /// Let the alias accept mail.
    Enable {
        /// The alias address.
        address: String,
    },
    /// Refuse mail to the alias.
    Disable {
        /// The alias address.
        address: String,
    },
    /// Remove an alias.
    Remove {
        /// The alias address.
        address: String,
    },
}

impl AliasCommand {
    /// Whether the output is wanted as JSON.
    pub fn json(&self) -> bool {
        matches!(
            self,
            AliasCommand::List { json: true, .. } | AliasCommand::Show { json: true, .. }
        )
    }
}

/// An alias as the CLI shows it.
#[derive(Debug, Serialize)]
pub struct AliasView {
    /// The alias address.
    pub address: String,
    /// Where it forwards to.
    pub target: String,
    /// Whether it accepts mail.
    pub enabled: bool,
}

impl From<Alias> for AliasView {
    fn from(a: Alias) -> Self {
        AliasView {
            address: a.address,
            target: a.target,
            enabled: a.enabled,
        }
    }
}

impl Record for AliasView {
    const COLUMNS: &'static [&'static str] = &["address", "target", "enabled"];
}

/// Runs an `alias` verb.
pub fn run(store: &Store, command: AliasCommand) -> Result<Output, AdminError> {
    Ok(match command {
        AliasCommand::Add { address, target } => {
            let a = store.add_alias(&address, &target)?;
            Output::Done(format!("added alias {} -> {}", a.address, a.target))
        }
        AliasCommand::List { domain, .. } => {
            let aliases: Vec<AliasView> = store
                .aliases(domain.as_deref())?
                .into_iter()
                .map(Into::into)
                .collect();
            Output::many(&aliases)
        }
        AliasCommand::Show { address, .. } => Output::one(&AliasView::from(store.alias(&address)?)),
        AliasCommand::Set { address, target } => {
            let a = store.set_alias_target(&address, &target)?;
            Output::Done(format!("alias {} -> {}", a.address, a.target))
        }
        AliasCommand::Enable { address } => {
            let a = store.set_alias_enabled(&address, true)?;
            Output::Done(format!("enabled alias {}", a.address))
        }
        AliasCommand::Disable { address } => {
            let a = store.set_alias_enabled(&address, false)?;
            Output::Done(format!("disabled alias {}", a.address))
        }
        AliasCommand::Remove { address } => {
            let a = store.alias(&address)?;
            store.remove_alias(&a.address)?;
            Output::Done(format!("removed alias {}", a.address))
        }
    })
}
