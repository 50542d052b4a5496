//! Sans-IO IMAP for servers.
//!
//! This crate holds the IMAP4rev1 command parser, the response encoder
//! and the server session of Ironpost. Like every Ironpost protocol crate it
//! owns no socket, task or clock and depends on no async runtime and no other
//! Ironpost crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod encode;
mod parse;
pub mod types;

pub use command::{Command, CommandBody, ParseError, Validity};
pub mod framing;
pub mod limits;
pub use limits::Limits;
pub mod response;
pub use response::{Code, Continue, Data, FetchItem, Response, Status, StatusKind};
