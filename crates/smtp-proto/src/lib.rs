//! Sans-IO SMTP for servers and clients.
//!
//! This crate holds the SMTP engine of Ironpost: the [`ServerSession`] that
//! receives mail (RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
//! CHUNKING/BINARYMIME, DSN, STARTTLS, AUTH PLAIN/LOGIN and enhanced status
//! codes) and the [`ClientSession`] that hands mail to another server. It
//! owns no socket, task or clock: the host feeds bytes and time in, and
//! drains bytes, events and timeouts out. It depends on no async runtime and
//! no other Ironpost crate, so it can be embedded on its own.
//!
//! Every policy point (the connection, HELO, AUTH, MAIL, each RCPT, the start
//! and the end of the message) is an [`Event`] carrying a request that the
//! host answers exactly once; pipelined input waits meanwhile. Message bodies
//! stream out as [`Event::DataChunk`]s. Every buffer is bounded by
//! [`Limits`]; output is the same however the input was split.
//!
//! See [`ServerSession`] and [`ClientSession`] for complete run loops.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod command;
mod data;
pub mod limits;
pub mod reply;
pub mod server;
pub mod types;

pub use client::{ClientConfig, ClientEvent, ClientSession, Envelope, TlsMode};
pub use command::{Command, ParseError};
pub use data::BareLineEndings;
pub use limits::{ClientLimits, Limits};
pub use reply::{EnhancedStatus, Reply, ReplyId, ReplyLimits, ReplyTexts};
pub use server::{
    AbortReason, AuthRequest, ConnectRequest, DataRequest, Event, Extensions, HeloRequest,
    MailRequest, MessageRequest, Misuse, RcptRequest, ServerConfig, ServerSession, VerifyRequest,
};
pub use types::{
    Address, BodyType, Credentials, ForwardPath, MailParams, Mechanism, Notify, OriginalRecipient,
    RcptParams, Ret, ReversePath, Secret,
};
