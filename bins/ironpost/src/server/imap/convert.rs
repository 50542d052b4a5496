//! Values between the store's model and IMAP's: flags, dates, mailbox
//! attributes.

use ironpost_imap_proto::response::MailboxAttribute;
use ironpost_imap_proto::types::{Atom, DateTime, Flag as ImapFlag};
use ironpost_store::{Flag, Flags, SpecialUse};

/// The flags of a message as IMAP writes them, `\Recent` added for the one
/// session that has the message as recent.
pub(crate) fn imap_flags<'a>(
    flags: impl IntoIterator<Item = &'a Flag>,
    recent: bool,
) -> Vec<ImapFlag> {
    let flags = flags.into_iter();
    let mut out = Vec::with_capacity(flags.size_hint().0 + usize::from(recent));
    for flag in flags {
        out.push(match flag {
            Flag::Seen => ImapFlag::Seen,
            Flag::Answered => ImapFlag::Answered,
            Flag::Flagged => ImapFlag::Flagged,
            Flag::Deleted => ImapFlag::Deleted,
            Flag::Draft => ImapFlag::Draft,
            // Keywords were atoms when they came in; one that is not (an
            // admin import, say) cannot be written and is left out.
            Flag::Keyword(k) => match Atom::new(k.as_str()) {
                Ok(atom) => ImapFlag::Keyword(atom),
                Err(_) => continue,
            },
        });
    }
    if recent {
        out.push(ImapFlag::Recent);
    }
    out
}

/// The flags a client asked for, as the store keeps them: `\Recent` is the
/// server's to set and is dropped, and so are unknown `\Extension` flags
/// (RFC 3501: the server ignores flags it does not support).
pub(crate) fn store_flags(flags: &[ImapFlag]) -> Flags {
    flags
        .iter()
        .filter_map(|flag| {
            Some(match flag {
                ImapFlag::Seen => Flag::Seen,
                ImapFlag::Answered => Flag::Answered,
                ImapFlag::Flagged => Flag::Flagged,
                ImapFlag::Deleted => Flag::Deleted,
                ImapFlag::Draft => Flag::Draft,
                ImapFlag::Keyword(atom) => Flag::Keyword(atom.as_str().to_string()),
                _ => return None,
            })
        })
        .collect()
}

/// The last second of year 9999, IMAP's last date.
const LAST_DATE: i64 = 253_402_300_799;

/// A message's internal date (seconds since the epoch) as IMAP writes it,
/// in UTC. A date outside IMAP's years (1970 to 9999 here) reads as the
/// epoch.
pub(crate) fn internal_date(timestamp: i64) -> DateTime {
    let timestamp = if (0..=LAST_DATE).contains(&timestamp) {
        timestamp
    } else {
        0
    };
    DateTime::from_unix_timestamp(timestamp).expect("1970 to 9999 are IMAP dates")
}

/// The special-use attribute of a mailbox for LIST.
pub(crate) fn special_use(special: SpecialUse) -> MailboxAttribute {
    match special {
        SpecialUse::All => MailboxAttribute::All,
        SpecialUse::Archive => MailboxAttribute::Archive,
        SpecialUse::Drafts => MailboxAttribute::Drafts,
        SpecialUse::Flagged => MailboxAttribute::Flagged,
        SpecialUse::Junk => MailboxAttribute::Junk,
        SpecialUse::Sent => MailboxAttribute::Sent,
        SpecialUse::Trash => MailboxAttribute::Trash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip() {
        let flags: Flags = [
            Flag::Seen,
            Flag::Deleted,
            Flag::Keyword("$Forwarded".into()),
        ]
        .into_iter()
        .collect();
        let imap = imap_flags(&flags, true);
        assert!(imap.contains(&ImapFlag::Recent));
        assert_eq!(store_flags(&imap), flags);
    }

    #[test]
    fn dates() {
        assert_eq!(internal_date(0).unix_timestamp(), 0);
        assert_eq!(internal_date(1_700_000_000).unix_timestamp(), 1_700_000_000);
        assert_eq!(internal_date(i64::MAX).unix_timestamp(), 0);
    }
}
