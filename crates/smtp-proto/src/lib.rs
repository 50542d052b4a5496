//! Sans-IO SMTP for servers and clients.
//!
//! This crate holds the SMTP engine of Ironpost: the server session that
//! receives mail (RFC 5321 with its ESMTP extensions) and the client session
//! that hands mail to another server. It owns no socket, task or clock: the
//! host feeds bytes and time in, and drains bytes, events and timeouts out.
//! It depends on no async runtime and no other Ironpost crate, so it can be
//! embedded on its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
