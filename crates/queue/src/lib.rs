//! The delivery queue of the Ironpost mail server.
//!
//! This crate will hold the durable queue of accepted messages, the retry
//! schedule, the routing and MX plan for remote recipients and the bounce
//! logic, driving the client session of `ironpost-smtp-proto`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
