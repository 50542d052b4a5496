//! The Ironpost server binary as a library.
//!
//! `main.rs` only parses the command line; everything the `ironpost` command
//! does lives here: the `serve` command with its tokio drivers (one per
//! protocol), TLS, configuration, policy, and the admin subcommands.
#![forbid(unsafe_code)]

pub mod cli;
