//! `ironpost list …`: distribution lists and their members (SPEC D-3).

use clap::{Subcommand, ValueEnum};
use ironpost_store::{Address, List, ListMode, ListUpdate, Store};
use serde::Serialize;

use super::{AdminError, Output, Record};

/// Who may post to a list, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Anybody.
    Public,
    /// Only the list's members.
    MembersOnly,
    /// Only the address given with --announcer.
    Announcement,
}

/// The `list` verbs.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Add a distribution list.
    Add {
        /// The list address; its domain must exist.
        address: String,
        /// Who may post.
        #[arg(long, value_enum, default_value = "public")]
        mode: Mode,
        /// The one address that may post to an announcement list.
        #[arg(long, value_name = "ADDRESS")]
        announcer: Option<String>,
        /// Posting needs an authenticated (SMTP AUTH) sender.
        #[arg(long)]
        require_auth: bool,
    },
    /// List the distribution lists, of every domain or of one.
    List {
        /// Only this domain's lists.
        #[arg(long)]
        domain: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one list with its members.
    Show {
        /// The list address.
        address: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change who may post, or the SMTP-auth requirement.
    Set {
        /// The list address.
        address: String,
        /// Who may post.
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// The one address that may post to an announcement list.
        #[arg(long, value_name = "ADDRESS", requires = "mode")]
        announcer: Option<String>,
        /// Whether posting needs an authenticated sender.
        #[arg(long, value_name = "BOOL")]
        require_auth: Option<bool>,
    },
    /// Let the list accept mail.
    Enable {
        /// The list address.
        address: String,
    },
    /// Refuse mail to the list.
    Disable {
        /// The list address.
        address: String,
    },
    /// Remove a list.
    Remove {
        /// The list address.
        address: String,
    },
    /// A list's members.
    #[command(subcommand)]
    Members(MembersCommand),
}

/// The `list members` verbs.
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List the members.
    List {
        /// The list address.
        address: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add members (local or remote addresses); adding one twice is harmless.
    Add {
        /// The list address.
        address: String,
        /// The members to add.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove members.
    Remove {
        /// The list address.
        address: String,
        /// The members to remove.
        #[arg(required = true)]
        members: Vec<String>,
    },
}

impl ListCommand {
    /// Whether the output is wanted as JSON.
    pub fn json(&self) -> bool {
        matches!(
            self,
            ListCommand::List { json: true, .. }
                | ListCommand::Show { json: true, .. }
                | ListCommand::Members(MembersCommand::List { json: true, .. })
        )
    }
}

/// A list as the CLI shows it.
#[derive(Debug, Serialize)]
pub struct ListView {
    /// The list address.
    pub address: String,
    /// `public`, `members-only` or `announcement`.
    pub mode: &'static str,
    /// The one poster of an announcement list.
    pub announcer: Option<String>,
    /// Whether posting needs SMTP AUTH.
    pub require_auth: bool,
    /// Whether it accepts mail.
    pub enabled: bool,
    /// Member addresses.
    pub members: Vec<String>,
}

impl From<List> for ListView {
    fn from(l: List) -> Self {
        let (mode, announcer) = match l.mode {
            ListMode::Public => ("public", None),
            ListMode::MembersOnly => ("members-only", None),
            ListMode::Announcement(a) => ("announcement", Some(a)),
        };
        ListView {
            address: l.address,
            mode,
            announcer,
            require_auth: l.require_auth,
            enabled: l.enabled,
            members: l.members,
        }
    }
}

impl Record for ListView {
    const COLUMNS: &'static [&'static str] = &["address", "mode", "require_auth", "enabled"];
}

/// One member, as `list members list` shows it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    /// The member's address.
    pub address: String,
}

impl Record for MemberView {
    const COLUMNS: &'static [&'static str] = &["address"];
}

fn mode(mode: Mode, announcer: Option<String>) -> Result<ListMode, AdminError> {
    match (mode, announcer) {
        (Mode::Announcement, Some(a)) => Ok(ListMode::Announcement(a)),
        (Mode::Announcement, None) => Err(AdminError::Usage(
            "an announcement list needs --announcer ADDRESS".into(),
        )),
        (_, Some(_)) => Err(AdminError::Usage(
            "--announcer is only for --mode announcement".into(),
        )),
        (Mode::Public, None) => Ok(ListMode::Public),
        (Mode::MembersOnly, None) => Ok(ListMode::MembersOnly),
    }
}

/// Checks every address before anything changes, so that one bad member
/// among several leaves the list as it was.
fn check_all(members: &[String]) -> Result<(), AdminError> {
    for m in members {
        Address::parse(m)?;
    }
    Ok(())
}

/// Runs a `list` verb.
pub fn run(store: &Store, command: ListCommand) -> Result<Output, AdminError> {
    Ok(match command {
        ListCommand::Add {
            address,
            mode: m,
            announcer,
            require_auth,
        } => {
            let l = store.add_list(&address, mode(m, announcer)?, require_auth)?;
            Output::Done(format!("added list {}", l.address))
        }
        ListCommand::List { domain, .. } => {
            let lists: Vec<ListView> = store
                .lists(domain.as_deref())?
                .into_iter()
                .map(Into::into)
                .collect();
            Output::many(&lists)
        }
        ListCommand::Show { address, .. } => Output::one(&ListView::from(store.list(&address)?)),
        ListCommand::Set {
            address,
            mode: m,
            announcer,
            require_auth,
        } => {
            if m.is_none() && require_auth.is_none() {
                return Err(AdminError::Usage(
                    "nothing to change: give --mode or --require-auth".into(),
                ));
            }
            let update = ListUpdate {
                mode: m.map(|m| mode(m, announcer)).transpose()?,
                require_auth,
                ..ListUpdate::default()
            };
            let l = store.update_list(&address, update)?;
            Output::Done(format!("changed list {}", l.address))
        }
        ListCommand::Enable { address } => {
            let l = store.update_list(
                &address,
                ListUpdate {
                    enabled: Some(true),
                    ..ListUpdate::default()
                },
            )?;
            Output::Done(format!("enabled list {}", l.address))
        }
        ListCommand::Disable { address } => {
            let l = store.update_list(
                &address,
                ListUpdate {
                    enabled: Some(false),
                    ..ListUpdate::default()
                },
            )?;
            Output::Done(format!("disabled list {}", l.address))
        }
        ListCommand::Remove { address } => {
            let l = store.list(&address)?;
            store.remove_list(&l.address)?;
            Output::Done(format!("removed list {}", l.address))
        }
        ListCommand::Members(MembersCommand::List { address, .. }) => {
            let members: Vec<MemberView> = store
                .list(&address)?
                .members
                .into_iter()
                .map(|address| MemberView { address })
                .collect();
            Output::many(&members)
        }
        ListCommand::Members(MembersCommand::Add { address, members }) => {
            check_all(&members)?;
            let l = store.list(&address)?;
            for m in &members {
                store.add_list_member(&l.address, m)?;
            }
            Output::Done(format!(
                "list {}: {} member(s)",
                l.address,
                store.list(&l.address)?.members.len()
            ))
        }
        ListCommand::Members(MembersCommand::Remove { address, members }) => {
            check_all(&members)?;
            let l = store.list(&address)?;
            for m in &members {
                let key = Address::parse(m)?.key();
                if !l.members.contains(&key) {
                    return Err(AdminError::Refused(format!(
                        "{m} is not a member of list {}",
                        l.address
                    )));
                }
            }
            for m in &members {
                store.remove_list_member(&l.address, m)?;
            }
            Output::Done(format!(
                "list {}: {} member(s)",
                l.address,
                store.list(&l.address)?.members.len()
            ))
        }
    })
}
