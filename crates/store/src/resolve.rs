//! Recipient resolution: one address in, the final set of local mailboxes and
//! remote addresses out (SPEC D-3, Q-2).
//!
//! Rules, in order, for an address in a local domain (domain aliases are
//! followed first):
//! 1. the domain must be enabled;
//! 2. an account, alias or list with that local part (case-insensitive);
//! 3. else, with plus addressing on, the part before the separator
//!    (`user+tag` → `user`, the tag kept as [`LocalTarget::detail`]);
//! 4. else the domain's catch-all address (not itself caught again);
//! 5. else unknown user.
//!
//! An alias resolves its target; a list checks who may post and resolves each
//! member. Every object is expanded at most once per call, so the work is
//! bounded by the size of the alias graph whatever its shape. An alias chain
//! that comes back to itself, or any chain deeper than
//! [`crate::StoreConfig::max_forward_depth`], is "too many recursive
//! forwards". A list reached again (nested lists that contain each other) is
//! skipped: its members are already in. A list member that cannot receive
//! (unknown, disabled...) is skipped and reported in
//! [`Resolution::skipped`]; the other members still get the message.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::domain::{Domain, find_domain};
use crate::error::{DbResult, ResolveError};
use crate::list::list_by_id;
use crate::store::Snapshot;
use crate::types::{AccountId, Address, ListMode, MailboxId};

/// Who is sending: what list posting rules look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// The envelope sender (`MAIL FROM`), empty for `<>`.
    pub address: String,
    /// Whether the session authenticated (SMTP AUTH).
    pub authenticated: bool,
}

impl Sender {
    /// An unauthenticated sender.
    pub fn new(address: &str) -> Self {
        Sender {
            address: address.to_string(),
            authenticated: false,
        }
    }

    /// An authenticated sender.
    pub fn authenticated(address: &str) -> Self {
        Sender {
            address: address.to_string(),
            authenticated: true,
        }
    }
}

/// A local recipient: an account's INBOX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    /// The account.
    pub account: AccountId,
    /// Its INBOX.
    pub mailbox: MailboxId,
    /// The account's address (for `Delivered-To`).
    pub address: String,
    /// The plus-addressing tag, when the address carried one.
    pub detail: Option<String>,
}

/// Where a message to one address goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Local accounts, each once, in the order found.
    pub local: Vec<LocalTarget>,
    /// Addresses in other domains, each once, in the order found.
    pub remote: Vec<String>,
    /// List members that could not receive, with the reason.
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Alias(i64),
    List(i64),
    CatchAll(i64),
}

enum Found {
    Account {
        id: i64,
        enabled: bool,
        address: String,
    },
    Alias {
        id: i64,
        enabled: bool,
        target: String,
    },
    List {
        id: i64,
    },
}

struct Resolver<'c> {
    conn: &'c Connection,
    sender: &'c Sender,
    max_depth: u32,
    path: Vec<Node>,
    expanded: HashSet<Node>,
    seen_local: HashSet<i64>,
    seen_remote: HashSet<String>,
    out: Resolution,
}

impl Store {
    /// Resolves one recipient address. Errors are the address's own; see the
    /// module documentation for list members.
    pub fn resolve(&self, address: &str, sender: &Sender) -> Result<Resolution, ResolveError> {
        let max_depth = self.config().max_forward_depth;
        self.read(|conn| {
            // One snapshot for the whole walk.
            let tx = Snapshot::begin(conn)?;
            let mut r = Resolver {
                conn: &tx,
                sender,
                max_depth,
                path: Vec::new(),
                expanded: HashSet::new(),
                seen_local: HashSet::new(),
                seen_remote: HashSet::new(),
                out: Resolution::default(),
            };
            Ok(r.address(address, 0, false).map(|()| r.out))
        })?
    }
}

impl Resolver<'_> {
    fn address(&mut self, text: &str, depth: u32, caught: bool) -> Result<(), ResolveError> {
        if depth > self.max_depth {
            return Err(ResolveError::TooManyForwards(text.to_string()));
        }
        let Ok(addr) = Address::parse(text) else {
            return Err(ResolveError::UnknownUser(text.to_string()));
        };
        let Some(domain) = find_domain(self.conn, addr.domain())? else {
            if self.seen_remote.insert(addr.key()) {
                self.out.remote.push(addr.to_string());
            }
            return Ok(());
        };
        if !domain.enabled {
            return Err(ResolveError::DomainDisabled(domain.name));
        }
        let local = addr.local_key();
        let mut detail = None;
        let mut found = self.lookup(&domain, &local)?;
        if found.is_none()
            && let Some(sep) = domain.plus_separator
            && let Some((base, tag)) = local.split_once(sep)
        {
            found = self.lookup(&domain, base)?;
            detail = Some(tag.to_string());
        }
        match found {
            None => match &domain.catch_all {
                Some(catch_all) if !caught => {
                    let target = catch_all.clone();
                    self.expand(Node::CatchAll(domain.id.0), text, |r| {
                        r.address(&target, depth + 1, true)
                    })
                }
                _ => Err(ResolveError::UnknownUser(addr.to_string())),
            },
            Some(Found::Account {
                id,
                enabled,
                address,
            }) => {
                if !enabled {
                    return Err(ResolveError::AccountDisabled(address));
                }
                if self.seen_local.insert(id) {
                    let inbox: i64 = self
                        .conn
                        .prepare_cached(
                            "SELECT id FROM mailboxes WHERE account_id = ?1 AND name = 'INBOX'",
                        )
                        .db()?
                        .query_row([id], |r| r.get(0))
                        .db()?;
                    self.out.local.push(LocalTarget {
                        account: AccountId(id),
                        mailbox: MailboxId(inbox),
                        address,
                        detail,
                    });
                }
                Ok(())
            }
            Some(Found::Alias {
                id,
                enabled,
                target,
            }) => {
                if !enabled {
                    return Err(ResolveError::AliasDisabled(addr.to_string()));
                }
                if self.path.contains(&Node::Alias(id)) {
                    return Err(ResolveError::TooManyForwards(addr.to_string()));
                }
                self.expand(Node::Alias(id), text, |r| {
                    r.address(&target, depth + 1, false)
                })
            }
            Some(Found::List { id }) => {
                let list = list_by_id(self.conn, crate::ListId(id))?;
                if !list.enabled {
                    return Err(ResolveError::ListDisabled(list.address));
                }
                self.check_posting(&list)?;
                self.expand(Node::List(id), text, |r| {
                    for member in &list.members {
                        match r.address(member, depth + 1, false) {
                            Ok(()) => {}
                            Err(
                                e @ (ResolveError::TooManyForwards(_) | ResolveError::Store(_)),
                            ) => {
                                return Err(e);
                            }
                            Err(e) => r.out.skipped.push((member.clone(), e.to_string())),
                        }
                    }
                    Ok(())
                })
            }
        }
    }

    /// Runs `f` for `node` unless it was expanded already or is being expanded.
    fn expand(
        &mut self,
        node: Node,
        _text: &str,
        f: impl FnOnce(&mut Self) -> Result<(), ResolveError>,
    ) -> Result<(), ResolveError> {
        if self.path.contains(&node) || !self.expanded.insert(node.clone()) {
            return Ok(());
        }
        self.path.push(node);
        let result = f(self);
        self.path.pop();
        result
    }

    fn check_posting(&self, list: &crate::List) -> Result<(), ResolveError> {
        if list.require_auth && !self.sender.authenticated {
            return Err(ResolveError::ListRequiresAuth(list.address.clone()));
        }
        let sender = Address::parse(&self.sender.address)
            .map(|a| a.key())
            .unwrap_or_default();
        let allowed = match &list.mode {
            ListMode::Public => true,
            ListMode::MembersOnly => list.members.contains(&sender),
            ListMode::Announcement(a) => !sender.is_empty() && a.eq_ignore_ascii_case(&sender),
        };
        if allowed {
            Ok(())
        } else {
            Err(ResolveError::SenderNotAllowed {
                list: list.address.clone(),
                sender: self.sender.address.clone(),
            })
        }
    }

    fn lookup(&self, domain: &Domain, local: &str) -> Result<Option<Found>, ResolveError> {
        let c = self.conn;
        let id = domain.id.0;
        if let Some((aid, enabled, display)) = c
            .prepare_cached(
                "SELECT id, enabled, display_local FROM accounts
                 WHERE domain_id = ?1 AND local_part = ?2",
            )
            .db()?
            .query_row(params![id, local], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?))
            })
            .optional()
            .db()?
        {
            return Ok(Some(Found::Account {
                id: aid,
                enabled,
                address: format!("{display}@{}", domain.name),
            }));
        }
        if let Some((aid, enabled, target)) = c
            .prepare_cached(
                "SELECT id, enabled, target FROM aliases WHERE domain_id = ?1 AND local_part = ?2",
            )
            .db()?
            .query_row(params![id, local], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .db()?
        {
            return Ok(Some(Found::Alias {
                id: aid,
                enabled,
                target,
            }));
        }
        let list: Option<i64> = c
            .prepare_cached("SELECT id FROM lists WHERE domain_id = ?1 AND local_part = ?2")
            .db()?
            .query_row(params![id, local], |r| r.get(0))
            .optional()
            .db()?;
        Ok(list.map(|id| Found::List { id }))
    }
}
