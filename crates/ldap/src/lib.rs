//! The LDAP address book of the Ironpost mail server.
//!
//! This crate will hold an LDAPv3 server engine on `ldap3_proto` that
//! publishes accounts, aliases and lists as `inetOrgPerson` entries. It owns
//! no socket and depends on no async runtime and no other Ironpost crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
