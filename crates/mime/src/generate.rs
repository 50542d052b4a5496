//! Messages the server writes itself (SPEC M-3): delivery status
//! notifications (RFC 3464), auto-replies (RFC 3834), quota and virus
//! notices and alert mails, built with mail-builder.
//!
//! Nothing here reads a clock: the caller passes the date (seconds since the
//! Unix epoch) and the Message-ID, so the output is reproducible.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};

use crate::decode::decode_text;
use crate::error::MimeError;
use crate::message::Message;

/// A mailbox: optional display name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name.
    pub name: Option<String>,
    /// `local@domain`.
    pub address: String,
}

impl Mailbox {
    /// A mailbox with a display name.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Mailbox {
        Mailbox {
            name: Some(name.into()),
            address: address.into(),
        }
    }

    /// A bare address.
    pub fn address(address: impl Into<String>) -> Mailbox {
        Mailbox {
            name: None,
            address: address.into(),
        }
    }

    fn to_builder(&self) -> mail_builder::headers::address::Address<'static> {
        match &self.name {
            Some(name) => (name.clone(), self.address.clone()).into(),
            None => self.address.clone().into(),
        }
    }
}

/// What happened to one recipient (RFC 3464 section 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Delivery failed for good.
    Failed,
    /// Not delivered yet; still trying.
    Delayed,
    /// Delivered.
    Delivered,
    /// Relayed to a system that sends no DSN.
    Relayed,
    /// Delivered and forwarded to more recipients.
    Expanded,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }
}

/// One recipient of a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The address the server tried (`Final-Recipient`).
    pub final_recipient: String,
    /// The address as the sender gave it, if it differed (`Original-Recipient`).
    pub original_recipient: Option<String>,
    /// What happened.
    pub action: Action,
    /// Enhanced status code, e.g. `5.1.1` (`Status`).
    pub status: String,
    /// The remote server that answered (`Remote-MTA`).
    pub remote_mta: Option<String>,
    /// Its answer, e.g. `550 5.1.1 no such user` (`Diagnostic-Code: smtp; ...`).
    pub diagnostic: Option<String>,
    /// Last attempt (Unix seconds).
    pub last_attempt: Option<i64>,
    /// For delays: when the server gives up (Unix seconds).
    pub will_retry_until: Option<i64>,
}

/// A delivery status notification to build.
#[derive(Debug, Clone)]
pub struct Dsn<'a> {
    /// The reporting server's host name (`Reporting-MTA: dns; ...`).
    pub reporting_mta: String,
    /// The notification's sender, usually `MAILER-DAEMON@host`.
    pub from: Mailbox,
    /// The original message's envelope sender, who gets the notification.
    pub to: String,
    /// The original message as received.
    pub original: &'a [u8],
    /// The recipients the notification is about.
    pub recipients: Vec<RecipientStatus>,
    /// When the original arrived (Unix seconds).
    pub arrival_date: Option<i64>,
    /// The ENVID of the original transaction (RFC 3461).
    pub envelope_id: Option<String>,
    /// Date of the notification (Unix seconds).
    pub date: i64,
    /// Message-ID of the notification, without angle brackets.
    pub message_id: String,
}

fn date(ts: i64) -> String {
    Date::new(ts).to_rfc822()
}

fn build(builder: MessageBuilder<'_>) -> Result<Vec<u8>, MimeError> {
    builder
        .write_to_vec()
        .map_err(|e| MimeError::Build(e.to_string()))
}

/// A part whose bytes are written as they are, with the given type and a
/// 7bit or 8bit transfer encoding.
fn verbatim_part(content_type: &'static str, bytes: Vec<u8>) -> MimePart<'static> {
    let encoding = if bytes.is_ascii() { "7bit" } else { "8bit" };
    MimePart::new(
        ContentType::new(content_type),
        BodyPart::Binary(bytes.into()),
    )
    .transfer_encoding(encoding)
}

/// The header block of `original`, with CRLF line ends.
fn original_header(original: &[u8]) -> Vec<u8> {
    let stored = crate::normalize_crlf(original);
    let msg = Message::parse(&stored);
    let mut header = stored[msg.root().header.clone()].to_vec();
    while header.ends_with(b"\r\n\r\n") {
        header.truncate(header.len() - 2);
    }
    if !header.is_empty() && !header.ends_with(b"\r\n") {
        header.extend_from_slice(b"\r\n");
    }
    header
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Builds an RFC 3464 delivery status notification: a multipart/report with
/// a human-readable explanation, the machine-readable
/// message/delivery-status, and the original message's header as
/// text/rfc822-headers. Failures and delays (any mix of [`Action`]s) are
/// described in the text.
pub fn delivery_status_notification(dsn: &Dsn<'_>) -> Result<Vec<u8>, MimeError> {
    if dsn.recipients.is_empty() {
        return Err(MimeError::Build(
            "a DSN needs at least one recipient".into(),
        ));
    }
    let failed = dsn.recipients.iter().any(|r| r.action == Action::Failed);
    let delayed = dsn.recipients.iter().any(|r| r.action == Action::Delayed);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if delayed {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };

    let mut text = format!(
        "This is the mail system at host {}.\r\n\r\n",
        one_line(&dsn.reporting_mta)
    );
    if failed {
        text.push_str(
            "Your message could not be delivered to one or more recipients.\r\n\
             It is attached below with its original headers.\r\n\r\n",
        );
    } else if delayed {
        text.push_str(
            "Your message has not been delivered yet to the recipients below.\r\n\
             The mail system will keep trying; you do not need to send it again.\r\n\r\n",
        );
    } else {
        text.push_str("Your message was delivered to the recipients below.\r\n\r\n");
    }
    for r in &dsn.recipients {
        text.push_str(&format!(
            "<{}>: {}",
            one_line(&r.final_recipient),
            r.action.as_str()
        ));
        if let Some(diag) = &r.diagnostic {
            text.push_str(&format!(", {}", one_line(diag)));
        }
        if let Some(until) = r.will_retry_until {
            text.push_str(&format!(" (retrying until {})", date(until)));
        }
        text.push_str("\r\n");
    }

    let mut status = format!("Reporting-MTA: dns; {}\r\n", one_line(&dsn.reporting_mta));
    if let Some(envid) = &dsn.envelope_id {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    if let Some(arrival) = dsn.arrival_date {
        status.push_str(&format!("Arrival-Date: {}\r\n", date(arrival)));
    }
    for r in &dsn.recipients {
        status.push_str("\r\n");
        status.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            one_line(&r.final_recipient)
        ));
        if let Some(orig) = &r.original_recipient {
            status.push_str(&format!(
                "Original-Recipient: rfc822; {}\r\n",
                one_line(orig)
            ));
        }
        status.push_str(&format!("Action: {}\r\n", r.action.as_str()));
        status.push_str(&format!("Status: {}\r\n", one_line(&r.status)));
        if let Some(mta) = &r.remote_mta {
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(mta)));
        }
        if let Some(diag) = &r.diagnostic {
            status.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(diag)));
        }
        if let Some(last) = r.last_attempt {
            status.push_str(&format!("Last-Attempt-Date: {}\r\n", date(last)));
        }
        if let Some(until) = r.will_retry_until {
            status.push_str(&format!("Will-Retry-Until: {}\r\n", date(until)));
        }
    }

    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                text,
            ),
            verbatim_part("message/delivery-status", status.into_bytes()),
            verbatim_part("text/rfc822-headers", original_header(dsn.original)),
        ],
    );
    build(
        MessageBuilder::new()
            .from(dsn.from.to_builder())
            .to(dsn.to.clone())
            .subject(subject)
            .date(Date::new(dsn.date))
            .message_id(dsn.message_id.clone())
            .header("Auto-Submitted", Raw::new("auto-replied"))
            .body(report),
    )
}

/// Whether a message may get an automatic reply (RFC 3834 section 2):
/// not to another automatic message, a list, bulk mail, or a bounce.
pub fn may_auto_reply(original: &[u8], envelope_sender: &str) -> bool {
    let msg = Message::parse(original);
    let header = |name: &str| msg.header_text(name).map(|v| v.trim().to_ascii_lowercase());
    if envelope_sender.is_empty() || envelope_sender == "<>" {
        return false;
    }
    let local = envelope_sender
        .trim_matches(|c| c == '<' || c == '>')
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if matches!(
        local.as_str(),
        "mailer-daemon" | "postmaster" | "listserv" | "majordomo"
    ) || local.ends_with("-request")
        || local.starts_with("owner-")
    {
        return false;
    }
    if header("Auto-Submitted").is_some_and(|v| v != "no") {
        return false;
    }
    if header("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "list" | "junk")) {
        return false;
    }
    if [
        "List-Id",
        "List-Unsubscribe",
        "List-Post",
        "X-Auto-Response-Suppress",
    ]
    .iter()
    .any(|h| msg.header_raw(h).is_some())
    {
        return false;
    }
    true
}

/// An automatic reply to build.
#[derive(Debug, Clone)]
pub struct AutoReply<'a> {
    /// The account that replies.
    pub from: Mailbox,
    /// Who gets the reply (the original's sender).
    pub to: String,
    /// Subject template; `%SUBJECT%` is the original's decoded subject.
    pub subject: String,
    /// Body template; `%SUBJECT%` as above.
    pub body: String,
    /// The message replied to.
    pub original: &'a [u8],
    /// Date (Unix seconds).
    pub date: i64,
    /// Message-ID, without angle brackets.
    pub message_id: String,
}

/// Builds an auto-reply (RFC 3834): `%SUBJECT%` expanded, `In-Reply-To` and
/// `References` pointing at the original, `Auto-Submitted: auto-replied`.
pub fn auto_reply(reply: &AutoReply<'_>) -> Result<Vec<u8>, MimeError> {
    let msg = Message::parse(reply.original);
    let original_subject = msg.header_text("Subject").unwrap_or_default();
    let original_subject = one_line(original_subject.trim());
    let subject = one_line(&reply.subject.replace("%SUBJECT%", &original_subject));
    let body = reply.body.replace("%SUBJECT%", &original_subject);
    let mut builder = MessageBuilder::new()
        .from(reply.from.to_builder())
        .to(reply.to.clone())
        .subject(subject)
        .date(Date::new(reply.date))
        .message_id(reply.message_id.clone())
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header("X-Auto-Response-Suppress", Raw::new("All"))
        .text_body(body);
    if let Some(id) = msg.header_raw("Message-ID") {
        let id = String::from_utf8_lossy(&id)
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        if !id.is_empty() && !id.contains(['\r', '\n', ' ', '<', '>']) {
            builder = builder.in_reply_to(id.clone()).references(id);
        }
    }
    build(builder)
}

/// A plain notice from the server (quota, virus, alert).
#[derive(Debug, Clone)]
pub struct Notice {
    /// The server's sender address.
    pub from: Mailbox,
    /// The recipient.
    pub to: String,
    /// Date (Unix seconds).
    pub date: i64,
    /// Message-ID, without angle brackets.
    pub message_id: String,
}

fn notice_message(
    notice: &Notice,
    subject: &str,
    text: String,
    attached_header: Option<Vec<u8>>,
) -> Result<Vec<u8>, MimeError> {
    let builder = MessageBuilder::new()
        .from(notice.from.to_builder())
        .to(notice.to.clone())
        .subject(one_line(subject))
        .date(Date::new(notice.date))
        .message_id(notice.message_id.clone())
        .header("Auto-Submitted", Raw::new("auto-generated"));
    let builder = match attached_header {
        None => builder.text_body(text),
        Some(header) => builder.body(MimePart::new(
            ContentType::new("multipart/mixed"),
            vec![
                MimePart::new(
                    ContentType::new("text/plain").attribute("charset", "utf-8"),
                    text,
                ),
                verbatim_part("text/rfc822-headers", header),
            ],
        )),
    };
    build(builder)
}

/// A quota warning: how much of the mailbox is used.
pub fn quota_notice(
    notice: &Notice,
    used_bytes: u64,
    quota_bytes: u64,
) -> Result<Vec<u8>, MimeError> {
    let percent = used_bytes
        .saturating_mul(100)
        .checked_div(quota_bytes)
        .unwrap_or(100);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let text = format!(
        "Your mailbox {} is {percent}% full: {:.1} MiB used of {:.1} MiB.\r\n\
         When it is full, new messages are returned to their senders.\r\n\
         Please delete messages you no longer need.\r\n",
        notice.to,
        mib(used_bytes),
        mib(quota_bytes)
    );
    notice_message(
        notice,
        &format!("Your mailbox is {percent}% full"),
        text,
        None,
    )
}

/// A virus notice about `original`: what was found and what was done, with
/// the original message's header attached.
pub fn virus_notice(
    notice: &Notice,
    original: &[u8],
    virus: &str,
    action_taken: &str,
) -> Result<Vec<u8>, MimeError> {
    let msg = Message::parse(original);
    let subject = msg
        .header_raw("Subject")
        .map(|s| decode_text(&s))
        .unwrap_or_default();
    let text = format!(
        "A virus ({}) was found in a message to {}.\r\n\
         Subject: {}\r\n\
         Action taken: {}.\r\n\
         The header of the message is attached.\r\n",
        one_line(virus),
        notice.to,
        one_line(subject.trim()),
        one_line(action_taken)
    );
    notice_message(
        notice,
        &format!("Virus found: {}", one_line(virus)),
        text,
        Some(original_header(original)),
    )
}

/// An alert mail to an administrator (disk space, queue size ...).
pub fn alert(notice: &Notice, subject: &str, text: &str) -> Result<Vec<u8>, MimeError> {
    notice_message(notice, subject, text.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders, PartType};

    const ORIGINAL: &[u8] = b"From: Bob <bob@example.org>\r\nTo: nobody@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <orig.1@example.org>\r\n\r\nHello\r\n";

    fn recipient(action: Action) -> RecipientStatus {
        RecipientStatus {
            final_recipient: "nobody@example.com".into(),
            original_recipient: None,
            action,
            status: if action == Action::Failed {
                "5.1.1"
            } else {
                "4.4.1"
            }
            .into(),
            remote_mta: Some("mx.example.com".into()),
            diagnostic: Some("550 5.1.1 no such user".into()),
            last_attempt: Some(1_700_000_000),
            will_retry_until: (action == Action::Delayed).then_some(1_700_400_000),
        }
    }

    fn dsn(action: Action) -> Vec<u8> {
        delivery_status_notification(&Dsn {
            reporting_mta: "mail.example.com".into(),
            from: Mailbox::new("Mail Delivery System", "MAILER-DAEMON@mail.example.com"),
            to: "bob@example.org".into(),
            original: ORIGINAL,
            recipients: vec![recipient(action)],
            arrival_date: Some(1_699_990_000),
            envelope_id: Some("env-1".into()),
            date: 1_700_000_100,
            message_id: "dsn.1@mail.example.com".into(),
        })
        .unwrap()
    }

    #[test]
    fn failure_dsn_parses_back() {
        let raw = dsn(Action::Failed);
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
        let ct = msg.root_part().content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(msg.parts.len(), 4);
        let status = std::str::from_utf8(msg.parts[2].contents()).unwrap();
        assert!(
            status.contains("Reporting-MTA: dns; mail.example.com\r\n"),
            "{status}"
        );
        assert!(
            status.contains("Action: failed\r\nStatus: 5.1.1\r\n"),
            "{status}"
        );
        assert!(status.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
        let headers = std::str::from_utf8(msg.parts[3].contents()).unwrap();
        assert!(
            headers.contains("Message-ID: <orig.1@example.org>"),
            "{headers}"
        );
        assert!(!headers.contains("Hello"));
        // our own model reads it too
        let ours = Message::parse(&raw);
        assert_eq!(ours.root().children().len(), 3);
        assert_eq!(
            ours.header_text("Auto-Submitted").as_deref(),
            Some("auto-replied")
        );
    }

    #[test]
    fn delay_dsn() {
        let raw = dsn(Action::Delayed);
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("Delayed Mail (still being retried)"));
        let status = std::str::from_utf8(msg.parts[2].contents()).unwrap();
        assert!(status.contains("Action: delayed\r\n"));
        assert!(status.contains("Will-Retry-Until: "));
        let PartType::Text(text) = &msg.parts[1].body else {
            panic!("text part expected");
        };
        assert!(text.contains("will keep trying"));
    }

    #[test]
    fn auto_reply_expands_subject() {
        let raw = auto_reply(&AutoReply {
            from: Mailbox::address("nobody@example.com"),
            to: "bob@example.org".into(),
            subject: "Out of office: %SUBJECT%".into(),
            body: "I am away. Re: %SUBJECT%\r\n".into(),
            original: ORIGINAL,
            date: 1_700_000_000,
            message_id: "ar.1@example.com".into(),
        })
        .unwrap();
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("Out of office: Gr\u{fc}\u{df}e"));
        assert_eq!(msg.in_reply_to().as_text(), Some("orig.1@example.org"));
        assert!(msg.body_text(0).unwrap().contains("Re: Gr\u{fc}\u{df}e"));
        assert!(may_auto_reply(ORIGINAL, "bob@example.org"));
        assert!(!may_auto_reply(&raw, "nobody@example.com"));
        assert!(!may_auto_reply(ORIGINAL, ""));
        assert!(!may_auto_reply(ORIGINAL, "MAILER-DAEMON@example.org"));
        assert!(!may_auto_reply(b"List-Id: <x.example>\r\n\r\n", "a@b"));
    }

    #[test]
    fn notices_parse_back() {
        let n = Notice {
            from: Mailbox::address("postmaster@example.com"),
            to: "alice@example.com".into(),
            date: 1_700_000_000,
            message_id: "n.1@example.com".into(),
        };
        let q = quota_notice(&n, 90 * 1024 * 1024, 100 * 1024 * 1024).unwrap();
        let msg = MessageParser::default().parse(&q).unwrap();
        assert_eq!(msg.subject(), Some("Your mailbox is 90% full"));
        assert!(
            msg.body_text(0)
                .unwrap()
                .contains("90.0 MiB used of 100.0 MiB")
        );
        let v = virus_notice(
            &n,
            ORIGINAL,
            "Eicar-Test-Signature",
            "the message was deleted",
        )
        .unwrap();
        let msg = MessageParser::default().parse(&v).unwrap();
        assert_eq!(msg.subject(), Some("Virus found: Eicar-Test-Signature"));
        assert!(
            msg.body_text(0)
                .unwrap()
                .contains("Subject: Gr\u{fc}\u{df}e")
        );
        assert_eq!(msg.attachment_count(), 1);
        let a = alert(&n, "Disk space low", "Only 1 GiB left.").unwrap();
        let msg = MessageParser::default().parse(&a).unwrap();
        assert_eq!(msg.subject(), Some("Disk space low"));
    }
}
