//! The crate's error type.

/// What can go wrong when asking the message model for something.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MimeError {
    /// A section specification or partial range that is not valid IMAP.
    #[error("invalid section specification: {0}")]
    BadSection(String),
    /// The section names a part the message does not have.
    #[error("no part {0} in this message")]
    NoSuchPart(String),
    /// `HEADER`, `TEXT` or `HEADER.FIELDS` of a numbered part that is not a
    /// message/rfc822 part.
    #[error("part {0} is not a message/rfc822 part")]
    NotAMessage(String),
    /// A header name that would break the message (empty, with a colon,
    /// white space or control characters).
    #[error("invalid header name {0:?}")]
    BadHeaderName(String),
    /// A header value with a bare line break that is not folding.
    #[error("invalid header value for {0}: line breaks must be followed by white space")]
    BadHeaderValue(String),
    /// The edit needs a part the message does not have (an attachment to
    /// remove, a text part to sign).
    #[error("nothing to edit: {0}")]
    NothingToEdit(String),
    /// Building a generated message failed.
    #[error("cannot build the message: {0}")]
    Build(String),
}
