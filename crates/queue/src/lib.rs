//! The delivery queue of the Ironpost mail server.
//!
//! Accepted messages wait in the store's queue (see `ironpost_store::Store::enqueue`)
//! until every recipient has a final result. This crate holds what runs on
//! that queue. Today that is local delivery ([`deliver_due`]): recipients
//! are resolved through accounts, domain aliases, aliases, lists and
//! catch-alls, delivered exactly once into their INBOX (each copy headed by
//! a `Delivered-To:` field naming its account), and failures are
//! bounced with an RFC 3464 delivery status notification. Remote recipients
//! stay queued for outbound delivery.
//!
//! Everything is synchronous: the server calls it from a blocking thread.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod local;

pub use local::{DeliveryError, PassReport, deliver_due, deliver_entries};
