//! The POP3 service with Python's poplib: STLS and POP3S, every command,
//! a wrong password, the maildrop lock and `account unlock-pop3`, and
//! deletions that take effect only at QUIT.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

use ironpost_e2e::mail::{Smtp, open_store, python, start_with_account, wait_delivered};
use ironpost_e2e::server::{Ports, Server};
use ironpost_e2e::{Env, ok};

const PASSWORD: &str = "pop secret 7";

/// A server with bob@example.com holding `count` messages in his INBOX.
fn setup(count: usize) -> (Env, Ports, Server, Vec<Vec<u8>>) {
    let (env, ports, server) = start_with_account("", "bob@example.com", PASSWORD);
    let mut smtp = Smtp::connect(ports.smtp, Duration::from_secs(20));
    for i in 0..count {
        // A line starting with a dot, to check byte-stuffing both ways.
        let body = format!(
            "Subject: message {i}\r\n\r\nline one\r\n.starts with a dot\r\n{}\r\n",
            "x".repeat(100 * i)
        );
        smtp.data("bob@example.com", body.as_bytes());
    }
    smtp.quit();
    let stored = wait_delivered(&env, "bob@example.com", count, Duration::from_secs(20))
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    (env, ports, server, stored)
}

/// Runs a poplib script with `ports` and the password as arguments; its
/// last line of output is JSON.
fn poplib(script: &str, ports: &Ports, extra: &[&str]) -> serde_json::Value {
    let prelude = r#"
import json, poplib, ssl, sys
PORT, PORT_TLS, PASSWORD = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
EXTRA = sys.argv[4:]
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE
def plain():
    p = poplib.POP3("127.0.0.1", PORT, timeout=20)
    p.stls(context=CTX)
    return p
def login(p, user="bob@example.com", password=None):
    p.user(user)
    return p.pass_(password if password is not None else PASSWORD)
def text(b):
    return b.decode("utf-8", "replace")
"#;
    let program = format!("{prelude}\n{script}");
    let (pop3, pop3s) = (ports.pop3.to_string(), ports.pop3s.to_string());
    let mut args = vec![pop3.as_str(), pop3s.as_str(), PASSWORD];
    args.extend_from_slice(extra);
    python(&program, &args).unwrap_or_else(|e| panic!("poplib failed: {e}"))
}

#[test]
fn every_command_over_stls_and_deletions_at_quit() {
    let (env, ports, _server, stored) = setup(3);
    let result = poplib(
        r#"
p = plain()
caps = p.capa()
r = {"caps": sorted(caps.keys())}
r["login"] = text(login(p))
r["stat"] = list(p.stat())
r["list"] = [text(x) for x in p.list()[1]]
r["uidl"] = [text(x) for x in p.uidl()[1]]
r["uidl1"] = text(p.uidl(1))
r["retr"] = [text(b"\r\n".join(p.retr(n)[1]) + b"\r\n") for n in (1, 2, 3)]
r["top"] = [text(x) for x in p.top(2, 1)[1]]
r["noop"] = text(p.noop())
r["dele"] = text(p.dele(1))
r["stat_after_dele"] = list(p.stat())
r["rset"] = text(p.rset())
r["stat_after_rset"] = list(p.stat())
p.dele(2)
r["quit"] = text(p.quit())
# A second session sees the deletion, with the same unique-ids.
p = plain()
login(p)
r["stat2"] = list(p.stat())
r["uidl2"] = [text(x) for x in p.uidl()[1]]
p.quit()
print(json.dumps(r))
"#,
        &ports,
        &[],
    );
    let caps: Vec<&str> = result["caps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for cap in ["TOP", "UIDL", "USER", "SASL", "RESP-CODES", "PIPELINING"] {
        assert!(caps.contains(&cap), "{cap} missing: {caps:?}");
    }
    // After STLS, STLS is no longer offered.
    assert!(!caps.contains(&"STLS"), "{caps:?}");
    assert!(result["login"].as_str().unwrap().starts_with("+OK"));
    let total: u64 = stored.iter().map(|m| m.len() as u64).sum();
    assert_eq!(result["stat"], serde_json::json!([3, total]));
    for (i, message) in stored.iter().enumerate() {
        assert_eq!(
            result["list"][i],
            format!("{} {}", i + 1, message.len()),
            "{result}"
        );
        assert_eq!(
            result["retr"][i].as_str().unwrap().as_bytes(),
            &message[..],
            "RETR {} differs",
            i + 1
        );
    }
    let uidl: Vec<String> = result["uidl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(uidl.len(), 3);
    assert!(result["uidl1"].as_str().unwrap().contains(&uidl[0][2..]));
    // TOP 2 1: the header, the blank line and one body line.
    let top: Vec<&str> = result["top"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(top.last(), Some(&"line one"), "{top:?}");
    assert!(top.contains(&""), "{top:?}");
    assert_eq!(result["stat_after_dele"][0], 2);
    assert_eq!(result["stat_after_rset"][0], 3);
    assert!(result["quit"].as_str().unwrap().starts_with("+OK"));
    // RSET took back the first DELE; message 2 is gone, and the others keep
    // their unique-ids under new numbers.
    assert_eq!(result["stat2"][0], 2);
    assert_eq!(
        result["uidl2"],
        serde_json::json!([
            format!("1 {}", &uidl[0][2..]),
            format!("2 {}", &uidl[2][2..])
        ])
    );
    let store = open_store(&env);
    let bob = store.account("bob@example.com").unwrap();
    let inbox = store.mailbox(bob.id, "INBOX").unwrap();
    assert_eq!(store.messages(inbox.id).unwrap().len(), 2);
}

#[test]
fn pop3s_a_wrong_password_and_no_login_before_tls() {
    let (_env, ports, server, _) = setup(1);
    let result = poplib(
        r#"
r = {}
p = poplib.POP3_SSL("127.0.0.1", PORT_TLS, timeout=20, context=CTX)
r["ssl_login"] = text(login(p))
r["ssl_stat"] = list(p.stat())
p.quit()
p = plain()
try:
    login(p, password="wrong")
    r["wrong"] = "accepted"
except poplib.error_proto as e:
    r["wrong"] = text(e.args[0])
p.quit()
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
r["caps_before_tls"] = sorted(p.capa().keys())
try:
    p.user("bob@example.com")
    r["user_before_tls"] = "accepted"
except poplib.error_proto as e:
    r["user_before_tls"] = text(e.args[0])
p.quit()
print(json.dumps(r))
"#,
        &ports,
        &[],
    );
    assert!(result["ssl_login"].as_str().unwrap().starts_with("+OK"));
    assert_eq!(result["ssl_stat"][0], 1);
    assert!(
        result["wrong"].as_str().unwrap().starts_with("-ERR [AUTH]"),
        "{result}"
    );
    assert!(
        result["user_before_tls"]
            .as_str()
            .unwrap()
            .starts_with("-ERR"),
        "{result}"
    );
    let caps = result["caps_before_tls"].to_string();
    assert!(caps.contains("STLS") && !caps.contains("USER"), "{caps}");
    let log = server.log();
    assert!(!log.contains("wrong\""), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn one_session_per_maildrop_and_a_dropped_connection_deletes_nothing() {
    let (env, ports, _server, _) = setup(2);
    // The first session deletes a message and vanishes without QUIT; the
    // second, while the first holds the lock, is refused.
    let result = poplib(
        r#"
r = {}
first = plain()
login(first)
first.dele(1)
second = plain()
try:
    login(second)
    r["second"] = "accepted"
except poplib.error_proto as e:
    r["second"] = text(e.args[0])
second.quit()
first.sock.close()
print(json.dumps(r))
"#,
        &ports,
        &[],
    );
    assert!(
        result["second"]
            .as_str()
            .unwrap()
            .starts_with("-ERR [IN-USE]"),
        "{result}"
    );
    // The vanished session deleted nothing and released its lock.
    let result = poplib(
        r#"
import time
r = {}
for attempt in range(100):
    p = plain()
    try:
        login(p)
        break
    except poplib.error_proto:
        p.quit()
        time.sleep(0.05)
r["stat"] = list(p.stat())
p.quit()
print(json.dumps(r))
"#,
        &ports,
        &[],
    );
    assert_eq!(result["stat"][0], 2);

    // A session that holds the lock: an admin can release it.
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(format!(
            r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3("127.0.0.1", {port}, timeout=60)
p.stls(context=ctx)
p.user("bob@example.com"); p.pass_("{PASSWORD}")
print("locked", flush=True)
sys.stdin.readline()
"#,
            port = ports.pop3
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let refused = poplib(
        r#"
p = plain()
try:
    login(p)
    r = "accepted"
except poplib.error_proto as e:
    r = text(e.args[0])
p.quit()
print(json.dumps(r))
"#,
        &ports,
        &[],
    );
    assert!(refused.as_str().unwrap().contains("[IN-USE]"), "{refused}");
    let out = ok(&env.run(&["account", "unlock-pop3", "bob@example.com"]));
    assert!(out.contains("released the POP3 lock"), "{out}");
    let after = poplib(
        r#"
p = plain()
r = text(login(p))
p.quit()
print(json.dumps(r))
"#,
        &ports,
        &[],
    );
    assert!(after.as_str().unwrap().starts_with("+OK"), "{after}");
    let _ = holder.kill();
    let _ = holder.wait();
    let out = ok(&env.run(&["account", "unlock-pop3", "bob@example.com"]));
    assert!(out.contains("had no POP3 lock"), "{out}");
}
