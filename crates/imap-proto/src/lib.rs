//! Sans-IO IMAP for servers.
//!
//! This crate holds the IMAP engine of Ironpost: the [`Command`] parser
//! (RFC 3501 and IDLE, UIDPLUS, MOVE, NAMESPACE, QUOTA, SORT, LITERAL+,
//! ENABLE, ID, UNSELECT, SASL-IR, BINARY fetch items), the [`Response`]
//! encoder, the [`framing::Fragmenter`] that splits input into lines and
//! literals under [`Limits`], and the [`ServerSession`]. Like every Ironpost
//! protocol crate it owns no socket, task or clock and depends on no async
//! runtime and no other Ironpost crate.
//!
//! Every policy point (the connection, the login, each mailbox and message
//! command, an APPEND before its message arrives, IDLE) is an [`Event`]
//! carrying a request the host answers exactly once; pipelined commands wait
//! meanwhile. APPEND messages stream out as [`Event::AppendChunk`]s. Output
//! is the same however the input was split.
//!
//! See [`ServerSession`] for a complete run loop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Appends formatted text to an output buffer (a `Vec<u8>`) without the
/// `String` that `format!` would make first. Writing into a `Vec` cannot
/// fail.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}

pub mod command;
pub mod encode;
pub mod framing;
pub mod limits;
mod parse;
pub mod response;
pub mod session;
pub mod types;

pub use command::{Command, CommandBody, ParseError, Validity};
pub use limits::Limits;
pub use parse::MAX_SEARCH_DEPTH;
pub use response::{Code, Continue, Data, FetchItem, Response, Status, StatusKind};
pub use session::{
    AppendEndRequest, AppendRequest, ConnectRequest, Event, IdleDoneRequest, IdleRequest,
    LoginRequest, Mechanism, Misuse, Request, ServerConfig, ServerSession, State,
};
