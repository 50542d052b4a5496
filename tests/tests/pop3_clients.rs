//! The POP3 service against two real clients:
//!
//! - fetchmail downloads 200 messages over STLS keeping them (by TOP), finds
//!   nothing new on a second run (its UIDL list), then downloads them again
//!   over POP3S deleting them (RETR, DELE, QUIT), after which the INBOX is
//!   empty; a wrong password is an authentication failure. Every message its
//!   MDA got is the stored one, byte for byte, once the `Received:` field
//!   fetchmail adds is taken out and the line ends are LF (fetchmail hands
//!   messages to an MDA with LF line ends).
//! - curl lists, retrieves (a message of 600 KB with dot-stuffed lines
//!   among them), sends UIDL and TOP as custom commands, works over STLS
//!   with `--ssl-reqd`, deletes, and fails a wrong password with its
//!   "login denied" exit code.
//!
//! Test mail comes in over SMTP from 127.0.0.1, all of it in one session
//! (pipelined `BDAT ... LAST` transactions).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ironpost_e2e::Env;
use ironpost_e2e::mail::{
    self, assert_curl_login_denied, assert_same, deliver_pipelined, exit_code_and_text, header_len,
    lf, mailbox, open_store, start_with_account,
};
use ironpost_e2e::server::{Ports, Server};
use ironpost_store::pop3_uidl;

const ADDRESS: &str = "bob@example.com";
const PASSWORD: &str = "pop secret 7";

/// A server with the account and nothing delivered yet.
fn setup() -> (Env, Ports, Server) {
    start_with_account("", ADDRESS, PASSWORD)
}

/// Delivers `messages` to the account, pipelined (see
/// [`deliver_pipelined`]). Returns the stored messages in UID order: each
/// is what was sent with the server's `Delivered-To:` and `Received:` in
/// front.
fn deliver(env: &Env, ports: &Ports, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    deliver_pipelined(env, ports.smtp, ADDRESS, messages)
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
}

/// The INBOX's messages in UID order: the UID and the stored bytes.
fn inbox(env: &Env) -> Vec<(u32, Vec<u8>)> {
    mailbox(env, ADDRESS, "INBOX")
        .into_iter()
        .map(|(m, bytes)| (m.uid, bytes))
        .collect()
}

// ---------------------------------------------------------------- fetchmail

/// Message `i` of the fetchmail test: sizes from a few hundred bytes to
/// about 20 KB, UTF-8 text, and the lines that dot-stuffing is about (a lone
/// dot, two dots, a dot before text) and a `From ` line.
fn fetchmail_message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {i} <sender{i}@remote.example>\r\n\
         To: {ADDRESS}\r\n\
         Subject: fetchmail message {i}\r\n\
         Message-ID: <fetchmail-{i}@remote.example>\r\n\
         Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Grüße, message {i} ✉\r\n\
         .\r\n\
         ..\r\n\
         .a line that starts with a dot\r\n\
         From the start of a line\r\n\
         trailing blanks   \r\n"
    );
    let filler = (i * 97) % 20_000;
    let line = "abcdefghijklmnopqrstuvwxyz0123456789 ".repeat(2);
    let mut written = 0;
    let mut n = 0;
    while written < filler {
        let text = if n % 9 == 4 {
            format!(".{n} {line}\r\n")
        } else {
            format!("{n} {line}\r\n")
        };
        written += text.len();
        m.push_str(&text);
        n += 1;
    }
    m.push_str("the end\r\n");
    m.into_bytes()
}

/// A directory for fetchmail's files: its rc files, its UID list and pid
/// file (`FETCHMAILHOME`), and the MDA that writes each message it gets to
/// a numbered file of the directory given as its argument.
struct Fetchmail {
    home: tempfile::TempDir,
}

impl Fetchmail {
    fn new() -> Fetchmail {
        let home = tempfile::tempdir().expect("a temporary directory");
        let mda = home.path().join("deliver");
        fs::write(
            &mda,
            "#!/bin/sh\nset -e\nn=$(ls \"$1\" | wc -l)\nexec cat > \"$1/$(printf %04d \"$n\")\"\n",
        )
        .expect("the MDA written");
        fs::set_permissions(&mda, fs::Permissions::from_mode(0o755)).expect("the MDA mode");
        Fetchmail { home }
    }

    /// Runs fetchmail once (`--nodetach`, verbose) with a run control file
    /// (mode 0600, as fetchmail demands, since it holds the password) that
    /// polls 127.0.0.1:`port` with `options`, the messages going to the
    /// directory `out`, which is created. Returns the exit code and the
    /// output.
    fn run(&self, name: &str, port: u16, password: &str, options: &str) -> (i32, String, PathBuf) {
        let home = self.home.path();
        let out = home.join(format!("out-{name}"));
        fs::create_dir(&out).expect("the output directory");
        let rc = home.join(format!("{name}.rc"));
        fs::write(
            &rc,
            format!(
                "set no syslog\nset no bouncemail\n\
                 poll 127.0.0.1 service {port} protocol pop3 uidl timeout 60\n\
                 \tuser \"{ADDRESS}\" there with password \"{password}\"\n\
                 \tno sslcertck {options}\n\
                 \tmda \"'{}' '{}'\"\n",
                home.join("deliver").display(),
                out.display()
            ),
        )
        .expect("the rc file written");
        fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).expect("the rc file mode");
        let output = Command::new("fetchmail")
            .args(["--nodetach", "-v", "--norewrite", "--fetchmailrc"])
            .arg(&rc)
            .arg("--pidfile")
            .arg(home.join("fetchmail.pid"))
            .env("FETCHMAILHOME", home)
            .env("HOME", home)
            .output()
            .expect("fetchmail runs (a required tool: `cargo xtask test` checks for it)");
        let (code, text) = exit_code_and_text("fetchmail", &output);
        (code, text, out)
    }
}

/// The files the MDA wrote to `dir`, in the order it got them.
fn delivered(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .expect("the output directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| fs::read(p).expect("a delivered message"))
        .collect()
}

/// `message` without the one `Received:` field fetchmail put in its
/// header (the field names `fetchmail-`): exactly one must be there.
#[track_caller]
fn without_fetchmail_received(message: &[u8]) -> Vec<u8> {
    let header_end = message
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a header and a body");
    // The header's fields: each a line and its continuation lines.
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for (i, _) in message[..=header_end]
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
    {
        let next = i + 1;
        if !matches!(message.get(next), Some(b' ' | b'\t')) {
            fields.push(&message[start..next]);
            start = next;
        }
    }
    let ours: Vec<usize> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.starts_with(b"Received: ") && f.windows(10).any(|w| w == b"fetchmail-"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "not one Received: of fetchmail's in:\n{}",
        String::from_utf8_lossy(&message[..header_end])
    );
    let mut rest: Vec<u8> = Vec::with_capacity(message.len());
    for (i, field) in fields.iter().enumerate() {
        if i != ours[0] {
            rest.extend_from_slice(field);
        }
    }
    rest.extend_from_slice(&message[start..]);
    rest
}

#[track_caller]
fn assert_fetched(run: &str, dir: &Path, stored: &[Vec<u8>]) {
    let got = delivered(dir);
    assert_eq!(got.len(), stored.len(), "{run}: messages the MDA got");
    for (i, (got, want)) in got.iter().zip(stored).enumerate() {
        assert_same(
            &format!("{run}: message {}", i + 1),
            &without_fetchmail_received(got),
            &lf(want),
        );
    }
}

#[test]
fn fetchmail_keeps_then_deletes_200_messages() {
    const COUNT: usize = 200;
    let (env, ports, server) = setup();
    let sent: Vec<Vec<u8>> = (0..COUNT).map(fetchmail_message).collect();
    let stored = deliver(&env, &ports, &sent);
    let fetchmail = Fetchmail::new();

    // 1. STLS, keep: everything arrives and everything stays. fetchmail
    //    reads kept messages with `TOP n 99999999`.
    let (code, log, out) = fetchmail.run("keep", ports.pop3, PASSWORD, "sslproto 'tls1.2+' keep");
    assert_eq!(code, 0, "fetchmail keep run:\n{log}");
    assert!(
        log.contains("POP3> STLS") && log.contains("POP3< +OK Begin TLS"),
        "no STLS:\n{log}"
    );
    assert!(log.contains("POP3> PASS *"), "{log}");
    assert!(
        log.contains(&format!("{COUNT} messages for {ADDRESS}")),
        "{log}"
    );
    assert!(
        !log.contains("POP3> DELE"),
        "a kept message deleted:\n{log}"
    );
    assert_fetched("keep run", &out, &stored);
    assert_eq!(inbox(&env).len(), COUNT, "the INBOX after the keep run");

    // 2. Again with keep: fetchmail's UID list says it has them all.
    let (code, log, out) = fetchmail.run("again", ports.pop3, PASSWORD, "sslproto 'tls1.2+' keep");
    assert_eq!(
        code, 1,
        "fetchmail found new mail on the second run:\n{log}"
    );
    assert!(log.contains(&format!("({COUNT} seen)")), "{log}");
    assert!(delivered(&out).is_empty(), "the second run delivered mail");
    let ids = fs::read_to_string(fetchmail.home.path().join(".fetchids")).expect(".fetchids");
    let mailbox_uidl: Vec<String> = {
        let store = open_store(&env);
        let account = store.account(ADDRESS).unwrap();
        let inbox = store.mailbox(account.id, "INBOX").unwrap();
        store
            .messages(inbox.id)
            .unwrap()
            .iter()
            .map(|m| pop3_uidl(&inbox, m.uid))
            .collect()
    };
    // One line per message: "user@host UIDL".
    let prefix = format!("{ADDRESS}@127.0.0.1 ");
    let mut recorded: Vec<&str> = ids
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    recorded.sort();
    let mut want: Vec<&str> = mailbox_uidl.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(recorded, want, "fetchmail's UID list:\n{ids}");

    // 3. POP3S, fetch all, no keep: everything arrives again, each message
    //    is deleted, and QUIT commits it.
    let (code, log, out) = fetchmail.run("delete", ports.pop3s, PASSWORD, "ssl fetchall nokeep");
    assert_eq!(code, 0, "fetchmail delete run:\n{log}");
    assert!(!log.contains("POP3> STLS"), "STLS on POP3S:\n{log}");
    assert_eq!(log.matches("POP3> RETR ").count(), COUNT, "{log}");
    assert_eq!(log.matches("POP3> DELE ").count(), COUNT, "{log}");
    assert!(log.contains("POP3> QUIT"), "{log}");
    assert_fetched("delete run", &out, &stored);
    assert!(inbox(&env).is_empty(), "the INBOX after the delete run");

    // 4. A wrong password: fetchmail's exit code for an authentication
    //    failure, and the password is not in the server's log.
    let (code, log, out) = fetchmail.run("wrong", ports.pop3s, "not the password", "ssl");
    assert_eq!(code, 3, "fetchmail with a wrong password:\n{log}");
    assert!(delivered(&out).is_empty());
    let server_log = server.log();
    assert!(!server_log.contains(PASSWORD), "{server_log}");
    assert!(!server_log.contains("not the password"), "{server_log}");
}

// --------------------------------------------------------------------- curl

/// Runs curl as the account with `args` and returns its output.
fn curl(args: &[&str]) -> Output {
    mail::curl(&format!("{ADDRESS}:{PASSWORD}"), args)
}

/// Asserts that curl (as the account) succeeded and returns its standard
/// output.
#[track_caller]
fn curl_ok(args: &[&str]) -> Vec<u8> {
    mail::curl_ok(&format!("{ADDRESS}:{PASSWORD}"), args)
}

/// The curl test's messages: a short one full of dot lines, one of about
/// 600 KB (more than one of the server's 256 KiB read chunks) with a dot
/// starting every seventh line and lone dots, and an 8-bit one.
fn curl_messages() -> Vec<Vec<u8>> {
    let short = b"Subject: dots\r\n\r\n.\r\n..\r\n...\r\n.x\r\nx.\r\n\r\n.\r\nend\r\n".to_vec();
    let mut big = b"Subject: big\r\nFrom: a@remote.example\r\n\r\n".to_vec();
    let mut n = 0;
    while big.len() < 600_000 {
        let line = match n % 7 {
            0 => format!(".{n:06} .....................................................\r\n"),
            3 if n % 5 == 0 => ".\r\n".to_string(),
            _ => format!("{n:06} the quick brown fox jumps over the lazy dog......\r\n"),
        };
        big.extend_from_slice(line.as_bytes());
        n += 1;
    }
    let eight_bit =
        "Subject: =?utf-8?q?8bit?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nÀ bientôt, 日本語\r\n"
            .as_bytes()
            .to_vec();
    vec![short, big, eight_bit]
}

#[test]
fn curl_lists_retrieves_and_sends_custom_commands() {
    let (env, ports, server) = setup();
    let stored = deliver(&env, &ports, &curl_messages());
    let pop3s = format!("pop3s://127.0.0.1:{}/", ports.pop3s);

    // LIST: one "n size" line per message, the sizes what RETR sends.
    let want_list: String = stored
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{} {}\r\n", i + 1, m.len()))
        .collect();
    let list = curl_ok(&["-k", &pop3s]);
    assert_same("LIST over POP3S", &list, want_list.as_bytes());

    // RETR: every message byte-exact (curl undoes the dot-stuffing).
    for (i, message) in stored.iter().enumerate() {
        let url = format!("{pop3s}{}", i + 1);
        assert_same(&format!("RETR {}", i + 1), &curl_ok(&["-k", &url]), message);
    }

    // STLS on the plain port, required by --ssl-reqd.
    let pop3 = format!("pop3://127.0.0.1:{}/", ports.pop3);
    let out = curl(&["-k", "--ssl-reqd", "-v", &pop3]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl over STLS: {stderr}");
    assert!(stderr.contains("> STLS"), "{stderr}");
    assert_same("LIST over STLS", &out.stdout, want_list.as_bytes());
    let url = format!("{pop3}2");
    assert_same(
        "RETR 2 over STLS",
        &curl_ok(&["-k", "--ssl-reqd", &url]),
        &stored[1],
    );

    // Custom commands: UIDL gives UIDVALIDITY.UID, TOP 1 0 the header and
    // the blank line after it.
    let uidl = curl_ok(&["-k", &pop3s, "-X", "UIDL"]);
    let want_uidl: String = {
        let store = open_store(&env);
        let account = store.account(ADDRESS).unwrap();
        let inbox = store.mailbox(account.id, "INBOX").unwrap();
        store
            .messages(inbox.id)
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{} {}\r\n", i + 1, pop3_uidl(&inbox, m.uid)))
            .collect()
    };
    assert_same("UIDL", &uidl, want_uidl.as_bytes());
    let top = curl_ok(&["-k", &pop3s, "-X", "TOP 1 0"]);
    let header_end = header_len(&stored[0]);
    assert_same("TOP 1 0", &top, &stored[0][..header_end]);
    let top = curl_ok(&["-k", &pop3s, "-X", "TOP 1 2"]);
    assert_same(
        "TOP 1 2",
        &top,
        &stored[0][..header_end + b".\r\n..\r\n".len()],
    );

    // DELE as a custom command without a transfer: committed at curl's QUIT.
    curl_ok(&["-k", &pop3s, "-X", "DELE 3", "-I"]);
    let left: Vec<Vec<u8>> = inbox(&env).into_iter().map(|(_, m)| m).collect();
    assert_eq!(left.len(), 2, "the INBOX after DELE 3");
    for (i, (got, want)) in left.iter().zip(&stored).enumerate() {
        assert_same(&format!("message {} after DELE 3", i + 1), got, want);
    }

    // A wrong password: curl's "login denied".
    assert_curl_login_denied(&server, ADDRESS, PASSWORD, &pop3s);
}
