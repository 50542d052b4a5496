//! Anti-spam and anti-virus checks for the Ironpost mail server.
//!
//! This crate will hold the scoring engine and its tests (DNS blacklists,
//! SPF, DKIM, HELO and MX checks, greylisting) and the client protocols of
//! SpamAssassin's `spamd` and ClamAV's `clamd`. Network lookups go through
//! traits that the host implements, so the crate needs no async runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
