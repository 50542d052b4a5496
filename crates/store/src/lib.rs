//! The durable state of the Ironpost mail server.
//!
//! This crate will hold domains, accounts, aliases, distribution lists,
//! mailboxes and messages, and the run-time configuration objects, in SQLite
//! (through rusqlite and r2d2) with message bodies as immutable blob files.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
