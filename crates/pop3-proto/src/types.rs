//! Validated values: secrets, unique ids and the maildrop listing.

use std::fmt;

/// A secret (a password, a SASL response) whose `Debug` output never shows
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A user name and password for the client session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (the SASL authentication identity).
    pub username: String,
    /// The password.
    pub password: Secret,
}

impl Credentials {
    /// A user name and its password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: Secret::new(password),
        }
    }
}

/// The error of [`UniqueId::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a unique-id is 1 to 70 characters from 0x21 to 0x7E")]
pub struct InvalidUniqueId;

/// A message's unique-id, as UIDL shows it: `unique-id = 1*70(%x21-7E)`
/// (RFC 1939 section 7). It must stay the same for the message across
/// sessions and never name another message of the maildrop.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UniqueId(String);

impl UniqueId {
    /// Checks and wraps a unique-id.
    pub fn new(id: impl Into<String>) -> Result<UniqueId, InvalidUniqueId> {
        let id = id.into();
        let valid = (1..=70).contains(&id.len()) && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if valid {
            Ok(UniqueId(id))
        } else {
            Err(InvalidUniqueId)
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UniqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message of a maildrop: its size and unique-id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildropEntry {
    /// The size in octets as the message is sent, CRLF line ends counted
    /// as two octets, byte-stuffing not counted (RFC 1939 section 11).
    pub size: u64,
    /// The unique-id.
    pub uid: UniqueId,
}

/// The messages of a maildrop as the host found them at login, in the order
/// of their message numbers (the first is number 1). The server session
/// serves STAT, LIST, UIDL, DELE and RSET from it on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maildrop {
    messages: Vec<MaildropEntry>,
}

impl Maildrop {
    /// An empty maildrop.
    pub fn new() -> Self {
        Maildrop::default()
    }

    /// Adds the next message and returns its message number. A maildrop
    /// holds at most `u32::MAX` messages; beyond that, `None` and nothing
    /// is added.
    pub fn push(&mut self, size: u64, uid: UniqueId) -> Option<u32> {
        let number = u32::try_from(self.messages.len() + 1).ok()?;
        self.messages.push(MaildropEntry { size, uid });
        Some(number)
    }

    /// The number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the maildrop has no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Message `number` (from 1).
    pub fn get(&self, number: u32) -> Option<&MaildropEntry> {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        self.messages.get(index)
    }

    /// The messages with their numbers.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &MaildropEntry)> {
        (1..).zip(self.messages.iter())
    }
}

impl FromIterator<(u64, UniqueId)> for Maildrop {
    /// Builds a maildrop, keeping at most `u32::MAX` messages.
    fn from_iter<I: IntoIterator<Item = (u64, UniqueId)>>(iter: I) -> Self {
        let mut maildrop = Maildrop::new();
        for (size, uid) in iter {
            if maildrop.push(size, uid).is_none() {
                break;
            }
        }
        maildrop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = Credentials::new("alice", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(format!("{:?}", c.password), "***");
    }

    #[test]
    fn unique_ids_follow_rfc_1939() {
        assert!(UniqueId::new("whqtswO00WBw418f9t5JxYwZ").is_ok());
        assert!(UniqueId::new("~!").is_ok());
        assert_eq!(UniqueId::new(""), Err(InvalidUniqueId));
        assert_eq!(UniqueId::new("a b"), Err(InvalidUniqueId));
        assert_eq!(UniqueId::new("é"), Err(InvalidUniqueId));
        assert!(UniqueId::new("x".repeat(70)).is_ok());
        assert_eq!(UniqueId::new("x".repeat(71)), Err(InvalidUniqueId));
    }

    #[test]
    fn message_numbers_start_at_one() {
        let uid = |s: &str| UniqueId::new(s).unwrap();
        let drop: Maildrop = [(120, uid("a")), (200, uid("b"))].into_iter().collect();
        assert_eq!(drop.len(), 2);
        assert_eq!(drop.get(0), None);
        assert_eq!(drop.get(1).map(|e| e.size), Some(120));
        assert_eq!(drop.get(2).map(|e| e.uid.as_str()), Some("b"));
        assert_eq!(drop.get(3), None);
        assert_eq!(drop.iter().map(|(n, _)| n).collect::<Vec<_>>(), [1, 2]);
    }
}
