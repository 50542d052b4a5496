//! The Ironpost server binary as a library.
//!
//! `main.rs` only hands the command line to [`cli::run`]; everything the
//! `ironpost` command does lives here: the configuration file ([`config`]),
//! the `serve` command ([`serve`]) and the running server ([`server`]) and the admin subcommands ([`admin`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod serve;
pub mod server;
