//! Postfix as a peer MTA. The Maildir mode of the harness (the peer of
//! `cargo xtask bench smtp`) delivers byte-exact apart from the trace fields
//! in front, and stops without leaving a process behind.

use std::collections::BTreeMap;
use std::time::Duration;

use ironpost_e2e::postfix::{Postfix, group_processes};

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
    m.push_str(&format!("{}\r\n", "x".repeat(900 + i)));
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

/// The `Message-ID` of a message, as `<...>`.
fn message_id(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_else(|| panic!("no Message-ID in {text}"))
        .to_string()
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
            assert!(
                got.get(id) == Some(bytes),
                "{user}: {id} differs:\n--- sent\n{}\n--- stored\n{}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(got.get(id).map(Vec::as_slice).unwrap_or(b"(missing)"))
            );
        }
    }
    let pid = postfix.pid();
    assert!(group_processes(pid).len() > 1, "master and daemons run");
    postfix.stop();
    assert_eq!(group_processes(pid), [0u32; 0], "left running after stop");
}
