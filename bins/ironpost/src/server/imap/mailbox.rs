//! The commands of the authenticated state: CREATE, DELETE, RENAME,
//! SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, NAMESPACE and the QUOTA
//! commands. Every account has one personal namespace, `""` with the
//! store's delimiter, and one quota root, `""` (its quota).

use ironpost_imap_proto::response::{
    Delimiter, MailboxAttribute, NamespaceDescription, QuotaResource,
};
use ironpost_imap_proto::types::{AString, Mailbox as ImapMailbox, StatusItem};
use ironpost_imap_proto::{Code, CommandBody, Data, Request, ServerSession, Status, StatusKind};
use ironpost_store::{Error, Mailbox};
use tracing::warn;

use super::convert::special_use;
use super::{Host, User, atom};
use crate::server::blocking;

/// Longest LIST pattern (reference and pattern together) matched.
const MAX_PATTERN: usize = 1024;

/// The mailbox name as the store keeps it: the octets as sent (modified
/// UTF-7 included), which must be UTF-8.
pub(crate) fn name(mailbox: &ImapMailbox) -> Option<String> {
    String::from_utf8(mailbox.as_bytes().to_vec()).ok()
}

/// The IMAP mailbox of a store name.
fn imap_name(name: &str) -> Option<ImapMailbox> {
    AString::new(name.as_bytes().to_vec())
        .ok()
        .map(ImapMailbox::new)
}

/// The `NO` for a store error, with the code that tells the client what
/// went wrong; unexpected errors are logged.
pub(crate) fn store_status(error: &Error) -> Status {
    let (code, text) = match error {
        Error::MailboxNotFound(_) | Error::NoSuchMailbox(_) => {
            (Code::NonExistent, "No such mailbox")
        }
        Error::MailboxExists(_) => (Code::AlreadyExists, "Mailbox already exists"),
        Error::InvalidMailboxName { .. } => (Code::Cannot, "Invalid mailbox name"),
        Error::MailboxNotDeletable { .. } => {
            return Status::new(StatusKind::No, Some(Code::Cannot), &error.to_string());
        }
        Error::QuotaExceeded { .. } => (Code::OverQuota, "Quota exceeded"),
        Error::MessageTooLarge { .. } => (Code::TooBig, "Message too large"),
        Error::BlobMissing(_) | Error::BlobCorrupt(_) => {
            warn!(error = %error, "IMAP: a message cannot be read");
            (Code::Corruption, "A message cannot be read")
        }
        _ => {
            warn!(error = %error, "IMAP: store error");
            return server_bug();
        }
    };
    Status::new(StatusKind::No, Some(code), text)
}

/// The `NO` of an internal failure.
pub(crate) fn server_bug() -> Status {
    Status::new(
        StatusKind::No,
        Some(Code::ServerBug),
        "Internal error, try again later",
    )
}

impl Host<'_> {
    /// Runs a command of the authenticated state; returns its tagged status.
    pub(super) async fn mailbox_command(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        user: &User,
    ) -> Status {
        let store = self.store();
        let delimiter = store.delimiter();
        let id = user.id;
        match &req.command {
            // The changes of the selected mailbox are told on the way out.
            CommandBody::Noop => Status::ok("NOOP completed"),
            CommandBody::Create { mailbox } => {
                let Some(name) = name(mailbox) else {
                    return invalid_name();
                };
                if name
                    .trim_end_matches(delimiter)
                    .eq_ignore_ascii_case("INBOX")
                {
                    return Status::new(
                        StatusKind::No,
                        Some(Code::AlreadyExists),
                        "INBOX always exists",
                    );
                }
                run(
                    move || store.create_mailbox(id, &name, None).map(|_| ()),
                    "CREATE",
                )
                .await
            }
            CommandBody::Delete { mailbox } => {
                let Some(name) = name(mailbox) else {
                    return invalid_name();
                };
                run(move || store.delete_mailbox(id, &name), "DELETE").await
            }
            CommandBody::Rename { from, to } => {
                let (Some(from), Some(to)) = (name(from), name(to)) else {
                    return invalid_name();
                };
                run(
                    move || store.rename_mailbox(id, &from, &to).map(|_| ()),
                    "RENAME",
                )
                .await
            }
            CommandBody::Subscribe { mailbox } | CommandBody::Unsubscribe { mailbox } => {
                let Some(name) = name(mailbox) else {
                    return invalid_name();
                };
                let on = matches!(req.command, CommandBody::Subscribe { .. });
                run(
                    move || store.set_subscribed(id, &name, on),
                    req.command.name(),
                )
                .await
            }
            CommandBody::List { reference, pattern } | CommandBody::Lsub { reference, pattern } => {
                let lsub = matches!(req.command, CommandBody::Lsub { .. });
                let pattern = [reference.as_bytes(), pattern.as_bytes()].concat();
                self.list(session, req, user, &pattern, lsub).await
            }
            CommandBody::Status { mailbox, items } => {
                let Some(name) = name(mailbox) else {
                    return invalid_name();
                };
                let status = match blocking(move || {
                    let mailbox = store.mailbox(id, &name)?;
                    store.mailbox_status(mailbox.id)
                })
                .await
                {
                    Some(Ok(status)) => status,
                    Some(Err(e)) => return store_status(&e),
                    None => return server_bug(),
                };
                let recent = match &self.view {
                    Some(view) if view.mailbox == status.mailbox.id => view.recent_count() as u64,
                    _ => 0,
                };
                let values = items
                    .iter()
                    .map(|&item| {
                        let value = match item {
                            StatusItem::Messages => status.messages,
                            StatusItem::Recent => recent,
                            StatusItem::UidNext => u64::from(status.mailbox.uidnext),
                            StatusItem::UidValidity => u64::from(status.mailbox.uidvalidity),
                            StatusItem::Unseen => status.unseen,
                            _ => 0,
                        };
                        (item, value)
                    })
                    .collect();
                let data = Data::Status {
                    mailbox: mailbox.clone(),
                    items: values,
                };
                let _ = session.respond(req, data);
                Status::ok("STATUS completed")
            }
            CommandBody::Namespace => {
                let personal = NamespaceDescription {
                    prefix: AString::default(),
                    delimiter: Delimiter::new(delimiter as u8).ok(),
                };
                let data = Data::Namespace {
                    personal: Some(vec![personal]),
                    other: None,
                    shared: None,
                };
                let _ = session.respond(req, data);
                Status::ok("NAMESPACE completed")
            }
            CommandBody::GetQuotaRoot { mailbox } => {
                let Some(name) = name(mailbox) else {
                    return invalid_name();
                };
                let account = match blocking(move || {
                    store.mailbox(id, &name)?;
                    store.account_by_id(id)
                })
                .await
                {
                    Some(Ok(account)) => account,
                    Some(Err(e)) => return store_status(&e),
                    None => return server_bug(),
                };
                let root = AString::default();
                let _ = session.respond(
                    req,
                    Data::QuotaRoot {
                        mailbox: mailbox.clone(),
                        roots: vec![root.clone()],
                    },
                );
                let _ = session.respond(req, quota(root, account.used_bytes, account.quota_bytes));
                Status::ok("GETQUOTAROOT completed")
            }
            CommandBody::GetQuota { root } => {
                if !root.as_bytes().is_empty() {
                    return Status::new(
                        StatusKind::No,
                        Some(Code::NonExistent),
                        "No such quota root",
                    );
                }
                let account = match blocking(move || store.account_by_id(id)).await {
                    Some(Ok(account)) => account,
                    Some(Err(e)) => return store_status(&e),
                    None => return server_bug(),
                };
                let _ = session.respond(
                    req,
                    quota(root.clone(), account.used_bytes, account.quota_bytes),
                );
                Status::ok("GETQUOTA completed")
            }
            CommandBody::SetQuota { .. } => Status::new(
                StatusKind::No,
                Some(Code::NoPerm),
                "Quotas are set by the administrator",
            ),
            _ => Status::bad("Command not valid now"),
        }
    }

    /// LIST and LSUB: every mailbox of the account whose name matches.
    async fn list(
        &mut self,
        session: &mut ServerSession,
        req: &Request,
        user: &User,
        pattern: &[u8],
        lsub: bool,
    ) -> Status {
        let store = self.store();
        let delimiter = store.delimiter() as u8;
        let done = if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        };
        let delim = Delimiter::new(delimiter).ok();
        if pattern.is_empty() && !lsub {
            // The hierarchy delimiter and root (RFC 3501 section 6.3.8).
            if let Some(root) = imap_name("") {
                let _ = session.respond(
                    req,
                    Data::List {
                        attributes: vec![MailboxAttribute::NoSelect],
                        delimiter: delim,
                        mailbox: root,
                    },
                );
            }
            return Status::ok(done);
        }
        if pattern.len() > MAX_PATTERN {
            return Status::bad("Pattern too long");
        }
        let pattern = inbox_case(pattern, delimiter);
        let id = user.id;
        let mailboxes = match blocking(move || store.mailboxes(id)).await {
            Some(Ok(list)) => list,
            Some(Err(e)) => return store_status(&e),
            None => return server_bug(),
        };
        for mailbox in &mailboxes {
            if lsub && !mailbox.subscribed {
                continue;
            }
            if !matches(&pattern, mailbox.name.as_bytes(), delimiter) {
                continue;
            }
            let Some(name) = imap_name(&mailbox.name) else {
                continue;
            };
            let attributes = attributes(mailbox, &mailboxes, delimiter as char, lsub);
            let data = if lsub {
                Data::Lsub {
                    attributes,
                    delimiter: delim,
                    mailbox: name,
                }
            } else {
                Data::List {
                    attributes,
                    delimiter: delim,
                    mailbox: name,
                }
            };
            let _ = session.respond(req, data);
        }
        Status::ok(done)
    }
}

/// Runs a store call that answers nothing but its success.
async fn run(work: impl FnOnce() -> Result<(), Error> + Send + 'static, command: &str) -> Status {
    match blocking(work).await {
        Some(Ok(())) => Status::ok(&format!("{command} completed")),
        Some(Err(e)) => store_status(&e),
        None => server_bug(),
    }
}

fn invalid_name() -> Status {
    Status::new(StatusKind::No, Some(Code::Cannot), "Invalid mailbox name")
}

/// A QUOTA response: STORAGE in KiB (RFC 9208), no resources when the
/// account has no quota.
fn quota(root: AString, used: u64, limit: u64) -> Data {
    let resources = match (limit > 0, atom("STORAGE")) {
        (true, Some(name)) => vec![QuotaResource {
            name,
            usage: used.div_ceil(1024),
            limit: limit / 1024,
        }],
        _ => Vec::new(),
    };
    Data::Quota { root, resources }
}

/// The LIST attributes of a mailbox: children and special use.
fn attributes(
    mailbox: &Mailbox,
    all: &[Mailbox],
    delimiter: char,
    lsub: bool,
) -> Vec<MailboxAttribute> {
    if lsub {
        return Vec::new();
    }
    let prefix = format!("{}{delimiter}", mailbox.name);
    let children = all.iter().any(|m| m.name.starts_with(&prefix));
    let mut attributes = vec![if children {
        MailboxAttribute::HasChildren
    } else {
        MailboxAttribute::HasNoChildren
    }];
    if let Some(special) = mailbox.special_use {
        attributes.push(special_use(special));
    }
    attributes
}

/// A pattern whose first level is INBOX in any case, spelled `INBOX`, as
/// the store spells it (INBOX is case-insensitive, other names are not).
fn inbox_case(pattern: &[u8], delimiter: u8) -> Vec<u8> {
    let mut pattern = pattern.to_vec();
    if pattern.len() >= 5
        && pattern[..5].eq_ignore_ascii_case(b"INBOX")
        && (pattern.len() == 5 || pattern[5] == delimiter)
    {
        pattern[..5].copy_from_slice(b"INBOX");
    }
    pattern
}

/// Whether `name` matches a LIST pattern: `*` matches anything, `%` anything
/// but the delimiter (RFC 3501 section 6.3.8). Dynamic programming over the
/// two strings, so no pattern costs more than their lengths' product.
pub(crate) fn matches(pattern: &[u8], name: &[u8], delimiter: u8) -> bool {
    // row[j]: pattern[..i] matches name[..j]
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                next[0] = row[0];
                for j in 1..=name.len() {
                    let extend = next[j - 1] && (p == b'*' || name[j - 1] != delimiter);
                    next[j] = row[j] || extend;
                }
            }
            _ => {
                for j in 1..=name.len() {
                    next[j] = row[j - 1] && name[j - 1] == p;
                }
            }
        }
        row = next;
    }
    row[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let m = |p: &str, n: &str| matches(p.as_bytes(), n.as_bytes(), b'/');
        assert!(m("*", "INBOX"));
        assert!(m("*", "a/b/c"));
        assert!(m("%", "Sent"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(!m("a/%", "a/b/c"));
        assert!(m("a/*", "a/b/c"));
        assert!(m("S%t", "Sent"));
        assert!(!m("S%t", "Sen/t"));
        assert!(m("INBOX", "INBOX"));
        assert!(!m("Sent", "sent"));
        assert!(m("%/%", "a/b"));
        assert!(!m("", "a"));
        // No blow-up on many wildcards.
        let long = "*%".repeat(500);
        assert!(m(&long, "a/b/c/d"));
    }

    #[test]
    fn inbox_in_any_case() {
        assert_eq!(inbox_case(b"inbox", b'/'), b"INBOX");
        assert_eq!(inbox_case(b"Inbox/Sub", b'/'), b"INBOX/Sub");
        assert_eq!(inbox_case(b"inboxes", b'/'), b"inboxes");
    }
}
