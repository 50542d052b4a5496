//! Every bound the sessions enforce, in one place, each default with its
//! reason.

use std::time::Duration;

/// Bounds of the server session. Each limit is decided on the length of a
/// line or on what the session itself produced, never on how much input has
/// arrived at once, so the outcome does not depend on how the input was
/// split.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest command line, CRLF included. Default 512: RFC 2449 section 4
    /// sets 255 octets; user names that are whole addresses and long
    /// passwords get twice that. Longer lines are thrown away as they
    /// arrive and answered `-ERR` when their LF comes.
    pub command_line: usize,
    /// Longest AUTH line: the command with its initial response, or the
    /// response after `+ `. Default 2048: a PLAIN response carries two names
    /// and a password in base64, far beyond 255 octets only when they are
    /// long, and well within 2 KiB even then.
    pub auth_line: usize,
    /// Bytes of one line after which the session answers `-ERR` and closes
    /// instead of waiting for the line end. Default 8192.
    pub unterminated_line: usize,
    /// Bad commands (unknown, bad arguments, wrong state, too long) before
    /// the session closes after answering the last one. Default 20.
    pub bad_commands: usize,
    /// Refused logins before the session closes after the last refusal.
    /// Default 3: enough for a mistyped password, few for a guesser (who
    /// has to reconnect, where the host's auto-ban sees it).
    pub login_failures: usize,
    /// Output not yet taken by `poll_transmit` at which the session stops:
    /// it runs no further command and takes no message chunk until the
    /// host has drained it. Default 256 KiB. A command's response is
    /// written whole, so the buffer holds at most this plus one listing (or
    /// twice one message chunk: stuffing doubles a line of dots at worst).
    pub output_buffer: usize,
    /// Inactivity before the session says `-ERR` and closes (without
    /// entering the UPDATE state). Default 10 minutes, the minimum of RFC
    /// 1939 section 3.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            command_line: 512,
            auth_line: 2048,
            unterminated_line: 8192,
            bad_commands: 20,
            login_failures: 3,
            output_buffer: 256 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// Bounds of the client session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientLimits {
    /// Longest status line or line of a listing (CAPA, LIST, UIDL), CRLF
    /// included. Default 1024: RFC 2449 section 4 bounds responses at 512
    /// octets; twice that for servers that exceed it. Message lines (RETR,
    /// TOP) have no limit: they are streamed, never held.
    pub response_line: usize,
    /// How long the session waits for the server while a response is due,
    /// counted from the last byte received or command sent. Default 5
    /// minutes.
    pub response_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            response_line: 1024,
            response_timeout: Duration::from_secs(5 * 60),
        }
    }
}
