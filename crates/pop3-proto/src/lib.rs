//! Sans-IO POP3 for servers and clients.
//!
//! This crate will hold the POP3 server session (RFC 1939, CAPA, STLS, AUTH
//! PLAIN) and the client session used to fetch mail from external accounts.
//! It owns no socket, task or clock and depends on no async runtime and no
//! other Ironpost crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
