//! The message model of the Ironpost mail server.
//!
//! This crate will hold what the server needs to know about a message, built
//! on `mail-parser` and `mail-builder`: IMAP ENVELOPE and BODYSTRUCTURE,
//! section extraction, edits that keep every other byte intact, and generated
//! messages such as delivery status notifications and auto-replies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
