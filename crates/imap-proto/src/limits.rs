//! Every bound the IMAP session enforces, in one place (SPEC I-1, L-2), and
//! its timeouts.

use std::time::Duration;

/// Bounds of the server session. Each is checked on the bytes that have
/// arrived, never on how they were split, so the outcome is the same for any
/// split of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest line of a command, CRLF included (each line between
    /// literals counts alone). Default 8192: RFC 7162 section 4 asks clients
    /// to keep lines under 8192 octets, and a long UID set fits. Longer
    /// lines are dropped as they arrive and the command gets `BAD`.
    pub line: usize,
    /// Longest SASL response line during AUTHENTICATE. Default 16384: OAuth
    /// tokens are several KiB, beyond a command line.
    pub auth_line: usize,
    /// Octets of a line with no LF after which the session sends `* BYE`
    /// and closes instead of waiting for the line to end. Default 65536.
    pub unterminated_line: usize,
    /// Largest literal collected into a command (a password, a mailbox name,
    /// a search string); APPEND messages are streamed and bounded by
    /// `message_size` instead. Default 65536.
    pub literal: u64,
    /// Literals in one command. Default 32: a SEARCH with that many
    /// 8-bit strings is already unusual.
    pub literals: usize,
    /// Octets of one command, its lines and collected literals together.
    /// Default 262144 (four maximal literals and their lines).
    pub command: usize,
    /// Largest message APPEND accepts; bigger ones get `NO [TOOBIG]` before
    /// the message is sent. Default 32 MiB: what SMTP accepts (20 MiB)
    /// with room for the base64 growth of drafts saved by clients.
    pub message_size: u64,
    /// `BAD` answers before the session says `* BYE` and closes. Default
    /// 20, like the SMTP session.
    pub bad_commands: usize,
    /// Octets of output queued before [`crate::ServerSession::wants_input`]
    /// turns false, so a client that does not read stops being read.
    /// Default 1 MiB.
    pub output: usize,
    /// Idle time allowed before login. Default 60 seconds: a client that
    /// has not logged in by then is not going to, and each waiting
    /// connection holds a slot.
    pub login_timeout: Duration,
    /// Idle time allowed after login, IDLE included. Default 30 minutes, the
    /// minimum autologout timer of RFC 3501 section 5.4 (clients restart
    /// IDLE every 29 minutes, RFC 2177).
    pub autologout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            line: 8192,
            auth_line: 16384,
            unterminated_line: 65536,
            literal: 65536,
            literals: 32,
            command: 262_144,
            message_size: 32 * 1024 * 1024,
            bad_commands: 20,
            output: 1024 * 1024,
            login_timeout: Duration::from_secs(60),
            autologout: Duration::from_secs(30 * 60),
        }
    }
}
