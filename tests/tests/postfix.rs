//! Postfix as a peer MTA: a private Postfix relays 100 messages to Ironpost's
//! SMTP listener, and each lands in the right mailboxes, byte-exact apart from
//! the trace fields the two servers put in front. The Maildir mode of the
//! harness (the peer of `cargo xtask bench smtp`) is checked the same way.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use ironpost_e2e::postfix::{HOSTNAME, Postfix, group_processes};
use ironpost_e2e::server::{Server, env_with_listeners};
use ironpost_e2e::{Env, json, ok};
use ironpost_store::Store;

const DOMAIN: &str = "example.test";
const ACCOUNTS: &[&str] = &["alice", "bob", "carol"];
/// An alias of carol's.
const ALIAS: &str = "sales";
const SENDER: &str = "sender@remote.test";

/// Message `i`: every header a relay would otherwise add except its own
/// `Received` (so `Date` and `Message-ID` are there), and bodies that test
/// what a careless relay breaks: lines that start with dots, a lone dot,
/// long lines, blank runs, trailing spaces, 8-bit text and sizes from a few
/// hundred bytes to about 60 KiB.
fn message(i: usize, to: &[String]) -> Vec<u8> {
    let mut m = format!(
        "From: Sender <{SENDER}>\r\n\
         To: {}\r\n\
         Subject: message {i}\r\n\
         Date: Sat, 22 Nov 2025 10:{:02}:{:02} +0000\r\n\
         Message-ID: <m{i}@remote.test>\r\n\
         X-Folded: first line\r\n\tcontinued {i}\r\n",
        to.join(", "),
        i / 60,
        i % 60
    );
    if i.is_multiple_of(5) {
        m.push_str(
            "MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n\
             Grüße aus Köln, ½ € — ✓\r\n",
        );
    } else {
        m.push_str("\r\nplain 7-bit text\r\n");
    }
    m.push_str(".leading dot\r\n.\r\n..\r\n...three\r\n\r\n\r\ntrailing spaces   \r\n");
    // Up to 997 characters: relays break lines over SMTP's 998.
    m.push_str(&format!("{}\r\n", "x".repeat(900 + i % 98)));
    for line in 0..(i % 7) * i * 2 {
        m.push_str(&format!(
            "line {line} of message {i}: the quick brown fox\r\n"
        ));
    }
    m.push_str(&format!("end of message {i}\r\n"));
    m.into_bytes()
}

/// Splits off the leading header fields named in `names` (each with its
/// continuation lines); returns them and the rest.
fn strip_leading<'a>(message: &'a [u8], names: &[&str]) -> (Vec<String>, &'a [u8]) {
    let mut fields = Vec::new();
    let mut rest = message;
    loop {
        let name_end = rest.iter().position(|&b| b == b':').unwrap_or(0);
        let name = String::from_utf8_lossy(&rest[..name_end]);
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            return (fields, rest);
        }
        // The field ends at the first CRLF not followed by white space.
        let mut end = 0;
        loop {
            let lf = end
                + rest[end..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .expect("header field ends with a line end");
            end = lf + 1;
            if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        fields.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = &rest[end..];
    }
}

/// Where `got` first differs from `want`, with some bytes of both around it.
fn difference(want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let around = |m: &[u8]| {
        let from = at.saturating_sub(60).min(m.len());
        let to = (at + 60).min(m.len());
        String::from_utf8_lossy(&m[from..to]).into_owned()
    };
    format!(
        "lengths {} and {}, first difference at byte {at}:\n--- sent\n{:?}\n--- stored\n{:?}",
        want.len(),
        got.len(),
        around(want),
        around(got)
    )
}

/// The `Message-ID` of a message, as `<...>`.
fn message_id(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_else(|| panic!("no Message-ID in {text}"))
        .to_string()
}

#[track_caller]
fn wait_ironpost_queue_empty(env: &Env, server: &Server, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let listing = json(&env.run(&["queue", "list", "--json"]));
        if listing.as_array().is_some_and(|a| a.is_empty()) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "Ironpost's queue not empty after {limit:?}:\n{listing:#}\nlog:\n{}",
                server.log()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn postfix_relays_100_messages_into_the_right_mailboxes_byte_exact() {
    let (env, ports) = env_with_listeners("");
    ok(&env.run(&["domain", "add", DOMAIN]));
    for account in ACCOUNTS {
        ok(&env.run_with_stdin(
            &[
                "account",
                "add",
                &format!("{account}@{DOMAIN}"),
                "--password-stdin",
            ],
            b"secret pw\n",
        ));
    }
    ok(&env.run(&[
        "alias",
        "add",
        &format!("{ALIAS}@{DOMAIN}"),
        &format!("carol@{DOMAIN}"),
    ]));
    let server = Server::start(&env);
    let postfix = Postfix::relay(ports.smtp);

    // Recipients by message: one, two or three accounts, some through the
    // alias (never with carol herself, so each account gets one copy).
    let mut sent = BTreeMap::new();
    let mut expected: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut session = postfix.connect();
    let mut deliveries = 0;
    for i in 0..100usize {
        let mut to = Vec::new();
        for (bit, account) in ACCOUNTS.iter().enumerate() {
            // i % 7 + 1 runs through every non-empty set of the three.
            if (i % 7 + 1) & (1 << bit) != 0 {
                to.push(*account);
            }
        }
        let addresses: Vec<String> = to
            .iter()
            .map(|a| {
                let local = if *a == "carol" && i.is_multiple_of(3) {
                    ALIAS
                } else {
                    a
                };
                format!("{local}@{DOMAIN}")
            })
            .collect();
        let bytes = message(i, &addresses);
        let id = message_id(&bytes);
        let rcpts: Vec<&str> = addresses.iter().map(String::as_str).collect();
        session.send(SENDER, &rcpts, &bytes);
        deliveries += rcpts.len();
        for account in to {
            expected.entry(account).or_default().push(id.clone());
        }
        sent.insert(id, bytes);
    }
    session.quit();
    postfix.wait_queue_empty(Duration::from_secs(120));
    let log = postfix.maillog();
    assert_eq!(
        log.matches("status=sent").count(),
        deliveries,
        "every recipient relayed at the first attempt:\n{log}"
    );
    wait_ironpost_queue_empty(&env, &server, Duration::from_secs(120));
    let (status, server_log) = server.terminate();
    assert!(status.success(), "ironpost exit {status}:\n{server_log}");
    drop(postfix);

    let store = Store::open_dir(env.data_dir().join("store")).expect("the store opens");
    for account in ACCOUNTS {
        let address = format!("{account}@{DOMAIN}");
        let id = store.account(&address).expect("account").id;
        let inbox = store.mailbox(id, "INBOX").expect("INBOX");
        let mut got = Vec::new();
        for m in store.messages(inbox.id).expect("messages") {
            let stored = store.read_message(inbox.id, m.uid).expect("message");
            let (trace, content) = strip_leading(&stored, &["Received", "Delivered-To"]);
            let id = message_id(content);
            let original = sent
                .get(&id)
                .unwrap_or_else(|| panic!("{address} got a message that was not sent: {id}"));
            assert!(
                content == original.as_slice(),
                "{address}: {id} differs from what was sent after {trace:?}: {}",
                difference(original, content)
            );
            assert!(
                trace
                    .iter()
                    .any(|f| f.starts_with("Delivered-To: ") && f.contains(&address)),
                "{address}: {id} has no Delivered-To naming the account: {trace:?}"
            );
            assert!(
                trace
                    .iter()
                    .any(|f| f.starts_with("Received: ") && f.contains(HOSTNAME)),
                "{address}: {id} lost Postfix's Received field: {trace:?}"
            );
            got.push(id);
        }
        let mut want = expected.get(account).cloned().unwrap_or_default();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{address}: messages by Message-ID");
    }
}

#[test]
fn postfix_maildir_mode_delivers_byte_exact() {
    let postfix = Postfix::maildir("bench.test", &["user", "other"]);
    let mut session = postfix.connect();
    let mut sent = Vec::new();
    for i in 0..20usize {
        let to = if i.is_multiple_of(4) {
            vec![
                "user@bench.test".to_string(),
                "other@bench.test".to_string(),
            ]
        } else {
            vec!["user@bench.test".to_string()]
        };
        let bytes = message(i, &to);
        let rcpts: Vec<&str> = to.iter().map(String::as_str).collect();
        session.send(SENDER, &rcpts, &bytes);
        sent.push((to.len() == 2, bytes));
    }
    session.quit();
    postfix.wait_queue_empty(Duration::from_secs(60));
    assert_eq!(postfix.maildir_count("user"), 20, "{}", postfix.maillog());
    assert_eq!(postfix.maildir_count("other"), 5, "{}", postfix.maillog());

    for user in ["user", "other"] {
        let mut got = BTreeMap::new();
        for stored in postfix.maildir_messages(user) {
            // virtual(8) stores lines with LF only; the wire had CRLF.
            let crlf = String::from_utf8(stored)
                .expect("UTF-8 test messages")
                .replace('\n', "\r\n")
                .into_bytes();
            let (trace, content) = strip_leading(
                &crlf,
                &["Return-Path", "X-Original-To", "Delivered-To", "Received"],
            );
            assert!(
                trace
                    .iter()
                    .any(|f| f == &format!("Delivered-To: {user}@bench.test\r\n")),
                "{trace:?}"
            );
            got.insert(message_id(content), content.to_vec());
        }
        let want: BTreeMap<String, Vec<u8>> = sent
            .iter()
            .filter(|(both, _)| user == "user" || *both)
            .map(|(_, bytes)| (message_id(bytes), bytes.clone()))
            .collect();
        assert_eq!(got.len(), want.len(), "{user}: one file per message");
        for (id, bytes) in &want {
            let stored = got
                .get(id)
                .unwrap_or_else(|| panic!("{user}: {id} missing"));
            assert!(
                stored == bytes,
                "{user}: {id} differs: {}",
                difference(bytes, stored)
            );
        }
    }
    let pid = postfix.pid();
    assert!(group_processes(pid).len() > 1, "master and daemons run");
    postfix.stop();
    assert_eq!(group_processes(pid), [0u32; 0], "left running after stop");
}
