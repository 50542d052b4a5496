//! Every bound the sessions enforce, in one place (SPEC S-5), and the
//! timeouts of RFC 5321 section 4.5.3.2.

use std::time::Duration;

/// Bounds of the server session. Each limit is checked on the bytes that have
/// arrived so far, so the outcome never depends on how the input was split.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest command line, CRLF included. Default 4096: RFC 5321 sets 512
    /// as the minimum; MAIL with SIZE, BODY, ENVID, AUTH and an SMTPUTF8
    /// address needs more. Longer lines get `500` once they end.
    pub command_line: usize,
    /// Longest AUTH line (the command with its initial response, or a
    /// continuation line). Default 16384: OAuth-style tokens are several KiB,
    /// far beyond a command line.
    pub auth_line: usize,
    /// Bytes of a line with no end after which the session answers `421` and
    /// closes instead of waiting for the line end. Default 65536.
    pub unterminated_line: usize,
    /// Recipients accepted in one transaction; more get `452`. Default 1000
    /// (RFC 5321 requires at least 100).
    pub recipients: usize,
    /// Largest message in octets (after dot-unstuffing); bigger ones get
    /// `552`. Default 20 MiB (SPEC S-2). Advertised in the EHLO SIZE line.
    pub message_size: u64,
    /// Bad commands (unknown, bad syntax, bad sequence, too long) before
    /// the session answers `421` and closes. Default 20.
    pub bad_commands: usize,
    /// RCPT decisions that may be outstanding at once; pipelined commands
    /// wait beyond that. Default 16.
    pub pending_decisions: usize,
    /// Idle time allowed while waiting for a command. Default 5 minutes
    /// (RFC 5321 section 4.5.3.2.7, "server timeout").
    pub command_timeout: Duration,
    /// Idle time allowed while receiving DATA or BDAT bytes. Default 5
    /// minutes (the same server timeout applies between TCP reads).
    pub data_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            command_line: 4096,
            auth_line: 16384,
            unterminated_line: 65536,
            recipients: 1000,
            message_size: 20 * 1024 * 1024,
            bad_commands: 20,
            pending_decisions: 16,
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// How long the client session waits for each reply (RFC 5321 section
/// 4.5.3.2) and the bounds of what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientLimits {
    /// The `220` greeting: 5 minutes (4.5.3.2.1).
    pub greeting: Duration,
    /// Replies to EHLO, HELO, STARTTLS, AUTH, RSET, QUIT: 5 minutes.
    pub command: Duration,
    /// The reply to MAIL: 5 minutes (4.5.3.2.2).
    pub mail: Duration,
    /// The reply to each RCPT: 5 minutes (4.5.3.2.3).
    pub rcpt: Duration,
    /// The `354` after DATA: 2 minutes (4.5.3.2.4).
    pub data_initiation: Duration,
    /// Idle time while the body is being sent: 3 minutes (4.5.3.2.5).
    pub data_block: Duration,
    /// The reply after the end of the body: 10 minutes (4.5.3.2.6).
    pub data_termination: Duration,
    /// Limits of the reply parser.
    pub reply: crate::reply::ReplyLimits,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            greeting: Duration::from_secs(5 * 60),
            command: Duration::from_secs(5 * 60),
            mail: Duration::from_secs(5 * 60),
            rcpt: Duration::from_secs(5 * 60),
            data_initiation: Duration::from_secs(2 * 60),
            data_block: Duration::from_secs(3 * 60),
            data_termination: Duration::from_secs(10 * 60),
            reply: crate::reply::ReplyLimits::default(),
        }
    }
}
