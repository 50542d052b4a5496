//! Two imaplib sessions on one mailbox: what each hears of the other's
//! changes and of deliveries, and when.
//!
//! - Session A idles (IDLE sent by hand: imaplib has no `idle()` before
//!   Python 3.14); an SMTP delivery reaches it as `EXISTS` within a second
//!   of the SMTP `250`, session B's STORE as `FETCH (FLAGS ...)`, B's
//!   EXPUNGE as `EXPUNGE`; DONE ends the IDLE with its tagged OK.
//! - Without IDLE, A hears of B's changes and of deliveries at NOOP; during
//!   FETCH, STORE and SEARCH by message number it is told of no expunge
//!   (RFC 3501 section 7.4.1) and the numbers stay as they were, until the
//!   next command that allows it (NOOP, UID FETCH).

use ironpost_e2e::Env;
use ironpost_e2e::mail::{deliver_in_order, messages_of, python, start_with_account};
use ironpost_e2e::server::{Ports, Server};
use ironpost_store::Flag;
use serde_json::Value;

const ADDRESS: &str = "bob@example.com";
const PASSWORD: &str = "idle secret 3";

/// A server with the account holding `count` messages in its INBOX, UIDs
/// 1 to `count` in the order sent.
fn setup(count: usize) -> (Env, Ports, Server) {
    let (env, ports, server) = start_with_account("", ADDRESS, PASSWORD);
    let messages: Vec<Vec<u8>> = (1..=count)
        .map(|i| format!("Subject: message {i}\r\n\r\nbody {i}\r\n").into_bytes())
        .collect();
    deliver_in_order(&env, ports.smtp, ADDRESS, &messages);
    (env, ports, server)
}

/// The INBOX's UIDs and whether each is `\Seen`.
fn inbox(env: &Env) -> Vec<(u32, bool)> {
    messages_of(env, ADDRESS, "INBOX")
        .iter()
        .map(|m| (m.uid, m.flags.contains(&Flag::Seen)))
        .collect()
}

fn inbox_uids(env: &Env) -> Vec<u32> {
    inbox(env).into_iter().map(|(uid, _)| uid).collect()
}

/// The Python every script starts with: two kinds of connection, a trace
/// of the lines each receives, and a way to read lines as they come.
const PRELUDE: &str = r#"
import imaplib, json, re, smtplib, ssl, sys, time
PORT, SMTP_PORT, PASSWORD = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
USER = "bob@example.com"
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

def text(b):
    return b.decode("latin-1")

def login():
    m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
    m.starttls(ssl_context=CTX)
    m.login(USER, PASSWORD)
    # Records every line the server sends from here on.
    m.trace = []
    get_line = m._get_line
    def recording():
        line = get_line()
        m.trace.append(text(line))
        return line
    m._get_line = recording
    return m

def both_selected():
    # Two sessions, each with the INBOX selected.
    a = login()
    a.select("INBOX")
    b = login()
    b.select("INBOX")
    return a, b

def cmd(m, name, *args):
    # Runs an imaplib method: its untagged lines and tagged status.
    m.trace.clear()
    typ, data = getattr(m, name)(*args)
    lines = list(m.trace)
    return {"untagged": [l for l in lines[:-1] if l.startswith("* ")],
            "status": lines[-1].split(" ", 1)[1], "data": [text(d) for d in data if isinstance(d, bytes)]}

def numbers(lines):
    # {message number: UID} of "* n FETCH (UID u ...)" lines.
    out = {}
    for line in lines:
        match = re.match(r"\* (\d+) FETCH \(UID (\d+)", line)
        if match:
            out[match.group(1)] = int(match.group(2))
    return out

def read_until(m, pattern, seconds=10):
    # The lines the server sends until one matches.
    m.sock.settimeout(seconds)
    lines = []
    while True:
        line = text(m._get_line())
        lines.append(line)
        if re.match(pattern, line):
            m.sock.settimeout(20)
            return lines

def deliver(subject):
    # One message over SMTP; returns when the server said 250 to it.
    s = smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=20)
    s.ehlo("client.example")
    s.mail("x@remote.example")
    s.rcpt(USER)
    code, _ = s.data(("Subject: %s\r\n\r\nnew mail\r\n" % subject).encode())
    assert code == 250, code
    return s
"#;

/// Runs a script (after [`PRELUDE`]) with the IMAP and SMTP ports and the
/// password as arguments; its last line of output is JSON.
fn imaplib(script: &str, ports: &Ports) -> Value {
    let program = format!("{PRELUDE}\n{script}");
    let (imap, smtp) = (ports.imap.to_string(), ports.smtp.to_string());
    python(&program, &[&imap, &smtp, PASSWORD]).unwrap_or_else(|e| panic!("imaplib failed: {e}"))
}

/// A JSON array of strings.
#[track_caller]
fn lines(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .collect()
}

/// The untagged lines of a `cmd` result.
#[track_caller]
fn untagged(result: &Value) -> Vec<&str> {
    lines(&result["untagged"])
}

#[test]
fn idle_hears_deliveries_flag_changes_and_expunges() {
    let (env, ports, _server) = setup(3);
    let r = imaplib(
        r#"
r = {}
a, b = both_selected()

tag = a._new_tag()
a.send(tag + b" IDLE\r\n")
r["idle"] = text(a._get_line())

smtp = deliver("while idling")
after_250 = time.monotonic()
r["delivery"] = read_until(a, r"\* \d+ EXISTS")
r["delivery_seconds"] = time.monotonic() - after_250
smtp.quit()

r["b_store"] = cmd(b, "store", "1", "+FLAGS", r"(\Seen)")
r["flags"] = read_until(a, r"\* \d+ FETCH")

b.store("2", "+FLAGS.SILENT", r"(\Deleted)")
r["b_expunge"] = cmd(b, "expunge")
r["expunge"] = read_until(a, r"\* \d+ EXPUNGE")

a.trace.clear()
a.send(b"DONE\r\n")
r["done"] = read_until(a, re.escape(text(tag)) + " ")
r["after_idle"] = cmd(a, "fetch", "1:*", "(UID FLAGS)")
a.logout()
b.logout()
print(json.dumps(r))
"#,
        &ports,
    );
    assert!(
        r["idle"].as_str().is_some_and(|l| l.starts_with("+ ")),
        "{r}"
    );
    // The delivery: EXISTS of the fourth message. Within one second of the
    // 250 is the issue's stated requirement for new-mail notification, not
    // a performance goal.
    let delivery = lines(&r["delivery"]);
    assert_eq!(delivery.last(), Some(&"* 4 EXISTS"), "{delivery:?}");
    let seconds = r["delivery_seconds"].as_f64().expect("seconds");
    assert!(
        seconds < 1.0,
        "EXISTS came {seconds:.3} s after the SMTP 250 ({delivery:?})"
    );
    // B's STORE, as B hears it (with the delivery) and as A hears it
    // while idling.
    let b_store = untagged(&r["b_store"]);
    assert!(
        b_store.contains(&r"* 1 FETCH (FLAGS (\Seen))") && b_store.contains(&"* 4 EXISTS"),
        "{b_store:?}"
    );
    let flags = lines(&r["flags"]);
    assert_eq!(
        flags.last(),
        Some(&r"* 1 FETCH (FLAGS (\Seen))"),
        "{flags:?}"
    );
    // B's EXPUNGE: numbered as A knows the mailbox.
    assert_eq!(untagged(&r["b_expunge"]), ["* 2 EXPUNGE"]);
    let expunge = lines(&r["expunge"]);
    assert_eq!(expunge.last(), Some(&"* 2 EXPUNGE"), "{expunge:?}");
    assert!(
        expunge
            .iter()
            .all(|l| l.starts_with("* 2 FETCH (FLAGS (") || *l == "* 2 EXPUNGE"),
        "{expunge:?}"
    );
    // DONE: the tagged OK, and A's numbering is the mailbox's.
    let done = lines(&r["done"]);
    let tagged = done.last().expect("the tagged answer");
    assert!(tagged.split(' ').nth(1) == Some("OK"), "{done:?}");
    assert_eq!(
        lines(&r["after_idle"]["data"]),
        [
            r"1 (UID 1 FLAGS (\Seen))",
            "2 (UID 3 FLAGS ())",
            r"3 (UID 4 FLAGS (\Recent))"
        ],
        "{}",
        r["after_idle"]
    );
    assert_eq!(inbox(&env), [(1, true), (3, false), (4, false)]);
}

#[test]
fn without_idle_changes_come_at_noop_and_never_during_fetch() {
    let (env, ports, _server) = setup(6);
    let r = imaplib(
        r#"
r = {}
a, b = both_selected()

# 1. B expunges UID 1: A hears it at NOOP.
b.store("1", "+FLAGS.SILENT", r"(\Deleted)")
b.expunge()
r["noop_expunge"] = cmd(a, "noop")

# 2. A delivery: A hears it at a NOOP (delivery takes its moment).
deliver("new").quit()
r["noop_exists"] = []
for attempt in range(200):
    lines = cmd(a, "noop")["untagged"]
    r["noop_exists"] += lines
    if any(l.endswith(" EXISTS") for l in lines):
        break
    time.sleep(0.05)

# 3. B expunges UID 2 (A's message 1): not during A's FETCH, whose
#    numbers stay; at the NOOP after it.
b.uid("STORE", "2", "+FLAGS.SILENT", r"(\Deleted)")
b.uid("EXPUNGE", "2")
r["fetch"] = cmd(a, "fetch", "1:*", "(UID FLAGS)")
r["fetch_numbers"] = numbers(r["fetch"]["untagged"])
r["noop_after_fetch"] = cmd(a, "noop")

# 4. B expunges UID 3 (A's message 1): not during STORE or SEARCH by
#    number; UID FETCH may tell it.
b.uid("STORE", "3", "+FLAGS.SILENT", r"(\Deleted)")
b.uid("EXPUNGE", "3")
r["store"] = cmd(a, "store", "2", "+FLAGS", r"(\Flagged)")
r["search"] = cmd(a, "search", None, "ALL")
r["uid_fetch"] = cmd(a, "uid", "FETCH", "1:*", "(FLAGS)")
r["final"] = cmd(a, "fetch", "1:*", "(UID)")
r["final_numbers"] = numbers(r["final"]["untagged"])
a.logout()
b.logout()
print(json.dumps(r))
"#,
        &ports,
    );
    // 1.
    let noop = untagged(&r["noop_expunge"]);
    assert_eq!(noop.last(), Some(&"* 1 EXPUNGE"), "{noop:?}");
    assert_eq!(noop.iter().filter(|l| l.ends_with("EXPUNGE")).count(), 1);
    // 2. Five messages left, the new one is the sixth.
    let exists = lines(&r["noop_exists"]);
    assert!(exists.contains(&"* 6 EXISTS"), "{exists:?}");
    // 3. No EXPUNGE during FETCH; message 1 (gone) is left out or still
    //    answered, but message 2 is still UID 3.
    let fetch = untagged(&r["fetch"]);
    assert!(
        !fetch.iter().any(|l| l.contains("EXPUNGE")),
        "EXPUNGE during FETCH: {fetch:?}"
    );
    assert_eq!(r["fetch_numbers"]["2"], 3, "{fetch:?}");
    assert_eq!(r["fetch_numbers"]["6"], 7, "{fetch:?}");
    assert_eq!(untagged(&r["noop_after_fetch"]), ["* 1 EXPUNGE"]);
    // 4. Not during STORE or SEARCH by number either; UID FETCH tells it.
    for command in ["store", "search"] {
        let said = untagged(&r[command]);
        assert!(
            !said.iter().any(|l| l.contains("EXPUNGE")),
            "EXPUNGE during {command}: {said:?}"
        );
    }
    assert!(
        untagged(&r["store"]).contains(&r"* 2 FETCH (FLAGS (\Flagged))"),
        "{}",
        r["store"]
    );
    let uid_fetch = untagged(&r["uid_fetch"]);
    assert!(uid_fetch.contains(&"* 1 EXPUNGE"), "{uid_fetch:?}");
    let final_numbers = &r["final_numbers"];
    assert_eq!(
        final_numbers,
        &serde_json::json!({"1": 4, "2": 5, "3": 6, "4": 7}),
        "{}",
        r["final"]
    );
    assert_eq!(inbox_uids(&env), [4, 5, 6, 7]);
}
