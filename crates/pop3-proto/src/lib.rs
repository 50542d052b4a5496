//! Sans-IO POP3 for servers and clients.
//!
//! This crate holds the POP3 engine of Ironpost: the [`ServerSession`] that
//! serves a maildrop (RFC 1939 with CAPA of RFC 2449, STLS of RFC 2595, AUTH
//! PLAIN of RFC 5034 and the response codes of RFC 2449 and RFC 3206) and
//! the [`ClientSession`] that fetches mail from another server. It owns no
//! socket, task or clock: the host feeds bytes and time in, and drains
//! bytes, events and timeouts out. It depends on no async runtime and no
//! other Ironpost crate.
//!
//! The server asks its host four things, each an [`Event`] carrying a
//! request answered exactly once: whether to greet the connection, whether
//! credentials are good (the host then locks the maildrop and hands over its
//! [`Maildrop`] listing), the content of each message retrieved (streamed
//! in chunks, which the session byte-stuffs and, for TOP, cuts), and, at
//! QUIT, committing the deletions. STAT, LIST, UIDL, DELE and RSET are
//! served from the listing by the session alone; a connection that drops
//! deletes nothing. Every buffer is bounded by [`Limits`]; output is the
//! same however the input was split.
//!
//! Our client against our server, in memory:
//!
//! ```
//! use std::time::Instant;
//! use ironpost_pop3_proto::*;
//!
//! let now = Instant::now();
//! let stored: [&[u8]; 2] = [b"Subject: one\r\n\r\n.\r\n", b"Subject: two\n\nbare LF\n"];
//! let mut server_config = ServerConfig::new("pop.example.org");
//! server_config.login_requires_tls = false;
//! let mut server = ServerSession::new(server_config, now);
//! let mut client_config = ClientConfig::new(Credentials::new("alice", "secret"));
//! client_config.login_requires_tls = false;
//! let mut client = ClientSession::new(client_config, now);
//!
//! let mut fetched = vec![Vec::new(); 2];
//! let mut current = 0;
//! let mut deleted = Vec::new();
//! loop {
//!     while let Some(event) = server.poll_event() {
//!         match event {
//!             Event::Connect(req) => server.accept_connection(req).unwrap(),
//!             Event::Login(req) if req.password.expose() == "secret" => {
//!                 let maildrop = stored
//!                     .iter()
//!                     .enumerate()
//!                     .map(|(i, m)| (m.len() as u64, UniqueId::new(format!("uid{i}")).unwrap()))
//!                     .collect();
//!                 server.accept_login(req, maildrop).unwrap();
//!             }
//!             Event::Login(req) => {
//!                 let refusal = Refusal::new("Bad credentials").with_code(ResponseCode::AUTH);
//!                 server.reject_login(req, refusal).unwrap();
//!             }
//!             Event::Retrieve(req) => {
//!                 let message = stored[req.message as usize - 1];
//!                 let _ = server.send_message_chunk(&req, message).unwrap();
//!                 server.finish_message(req).unwrap();
//!             }
//!             Event::Update(req) => {
//!                 deleted = req.deleted.clone();
//!                 server.accept_update(req).unwrap();
//!             }
//!             _ => {}
//!         }
//!     }
//!     while let Some(event) = client.poll_event() {
//!         match event {
//!             ClientEvent::Ready => {
//!                 for n in 1..=2 {
//!                     client.retr(now, n).unwrap();
//!                     client.dele(now, n).unwrap();
//!                 }
//!                 client.quit(now).unwrap();
//!             }
//!             ClientEvent::MessageChunk(bytes) => fetched[current].extend_from_slice(&bytes),
//!             ClientEvent::Done { command: Command::Retr(_), .. } => current += 1,
//!             _ => {}
//!         }
//!     }
//!     let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//!     client.poll_transmit(&mut to_server);
//!     server.poll_transmit(&mut to_client);
//!     if to_server.is_empty() && to_client.is_empty() {
//!         break;
//!     }
//!     server.handle_input(now, &to_server);
//!     client.handle_input(now, &to_client);
//! }
//! // Line ends come out as CRLF; the dot line survives the round trip.
//! assert_eq!(fetched[0], b"Subject: one\r\n\r\n.\r\n");
//! assert_eq!(fetched[1], b"Subject: two\r\n\r\nbare LF\r\n");
//! assert_eq!(deleted, [1, 2]);
//! assert!(server.is_closed() && client.is_closed());
//! ```
//!
//! See [`ServerSession`] and [`ClientSession`] for the drain order and
//! single-sided run loops.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod command;
mod dot;
pub mod limits;
pub mod response;
pub mod server;
pub mod types;

pub use client::{
    Capabilities, ClientConfig, ClientError, ClientEvent, ClientMisuse, ClientSession, TlsMode,
};
pub use command::{Command, ParseError};
pub use limits::{ClientLimits, Limits};
pub use response::{Refusal, Response, ResponseCode, ResponseError};
pub use server::{
    ConnectRequest, Event, LoginMethod, LoginRequest, MessageProgress, Misuse, RetrieveRequest,
    ServerConfig, ServerSession, State, UpdateRequest,
};
pub use types::{Credentials, InvalidUniqueId, Maildrop, MaildropEntry, Secret, UniqueId};
