//! `ironpost serve` against Python's smtplib: a pipelined transaction to 50
//! recipients reached through an account, an alias, a list and plus
//! addresses; 8BITMIME and SMTPUTF8; a 15 MB message; a message over the size
//! limit in a session that goes on; an unknown user; and the relay rule of
//! "My computer". Every delivered copy is compared byte for byte with what
//! the client sent, after the two trace fields the server puts in front.
//!
//! Each Python script exits non-zero with a message naming the command on
//! any reply it did not expect, and prints one line of JSON that the test
//! checks.

use std::thread;
use std::time::{Duration, Instant};

use ironpost_e2e::mail::{self, add_account, assert_same, open_store};
use ironpost_e2e::server::{Ports, Server, env_with_listeners};
use ironpost_e2e::{Env, json, ok};
use ironpost_store::Store;
use serde_json::Value;

const DOMAIN: &str = "example.com";

/// What every script starts with: reply checks and the usual client steps.
const PRELUDE: &str = r#"
import json, re, smtplib, sys

def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)

def expect(what, reply, code, status=None):
    got, text = reply
    text = text.decode("utf-8", "replace")
    if got != code or (status is not None and not text.startswith(status + " ")):
        fail(f"{what}: expected {code} {status or ''}, got {got} {text!r}")
    return text

def connect(port, source="127.0.0.1"):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test",
                     timeout=60, source_address=(source, 0))
    expect("EHLO", s.ehlo(), 250)
    return s

def need(s, extension):
    if not s.has_extn(extension):
        fail(f"EHLO does not offer {extension}: {s.esmtp_features}")

def send(s, sender, recipients, body, options=()):
    expect(f"MAIL FROM:<{sender}> {' '.join(options)}", s.mail(sender, list(options)), 250)
    for r in recipients:
        expect(f"RCPT TO:<{r}>", s.rcpt(r), 250)
    return expect("end of DATA", s.data(body), 250)

def stuffed(body):
    """The message as DATA carries it: leading dots doubled, then the final dot."""
    body = re.sub(rb"(?m)^\.", b"..", body)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"

def done(s, result):
    expect("QUIT", s.docmd("QUIT"), 221)
    s.close()
    print(json.dumps(result))
"#;

/// Runs `script` (after [`PRELUDE`]) with `args` and returns the JSON of its
/// last line of output. Panics with its error output and the server's log
/// when it fails.
#[track_caller]
fn python(server: &Server, script: &str, args: &[&str]) -> Value {
    mail::python(&format!("{PRELUDE}\n{script}"), args).unwrap_or_else(|e| {
        panic!(
            "the Python client failed: {e}\nserver log:\n{}",
            server.log()
        )
    })
}

/// An environment with the listeners (after `extra` in `[smtp]`), the domain
/// and the accounts `local@DOMAIN`.
fn setup(extra: &str, accounts: &[&str]) -> (Env, Ports) {
    let (env, ports) = env_with_listeners(extra);
    ok(&env.run(&["domain", "add", DOMAIN]));
    for local in accounts {
        add_account(&env, &format!("{local}@{DOMAIN}"), "secret pw");
    }
    (env, ports)
}

/// Writes `message` into the environment's directory for a script to read.
fn message_file(env: &Env, name: &str, message: &[u8]) -> String {
    let path = env.dir().join(name);
    std::fs::write(&path, message).expect("message file written");
    path.display().to_string()
}

/// Waits until the queue holds exactly `remaining` entries (what cannot be
/// delivered locally) and returns the listing.
#[track_caller]
fn wait_queue(env: &Env, server: &Server, remaining: usize) -> Value {
    let limit = Duration::from_secs(15);
    let deadline = Instant::now() + limit;
    loop {
        let listing = json(&env.run(&["queue", "list", "--json"]));
        if listing.as_array().is_some_and(|a| a.len() == remaining) {
            return listing;
        }
        assert!(
            Instant::now() < deadline,
            "the queue does not hold {remaining} entries after {limit:?}:\n{listing:#}\nlog:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every message in the INBOX of `address`, as stored.
fn inbox(store: &Store, address: &str) -> Vec<Vec<u8>> {
    let account = store.account(address).expect("the account exists");
    let inbox = store.mailbox(account.id, "INBOX").expect("INBOX");
    store
        .messages(inbox.id)
        .expect("messages")
        .iter()
        .map(|m| {
            store
                .read_message(inbox.id, m.uid)
                .expect("the message reads")
        })
        .collect()
}

/// A delivered copy in its three parts: the `Delivered-To:` line, the
/// server's `Received:` field (with its continuation lines) and the message
/// as the client sent it.
struct Copy<'a> {
    delivered_to: String,
    received: String,
    content: &'a [u8],
}

#[track_caller]
fn split_copy(copy: &[u8]) -> Copy<'_> {
    let start = String::from_utf8_lossy(&copy[..copy.len().min(400)]).into_owned();
    assert!(
        copy.starts_with(b"Delivered-To: "),
        "the copy does not start with Delivered-To:\n{start}"
    );
    let first = copy
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a line end")
        + 2;
    let rest = &copy[first..];
    assert!(
        rest.starts_with(b"Received: "),
        "no Received: after Delivered-To:\n{start}"
    );
    // The field ends at the first CRLF not followed by white space.
    let mut end = 0;
    loop {
        end += rest[end..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("the Received: field ends")
            + 2;
        if !matches!(rest.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    Copy {
        delivered_to: String::from_utf8_lossy(&copy[..first]).into_owned(),
        received: String::from_utf8_lossy(&rest[..end]).into_owned(),
        content: &rest[end..],
    }
}

/// Asserts that `address` holds exactly the copies in `want`, in order, each
/// with `Delivered-To: address` and byte-exact after the trace fields.
/// Returns the `Received:` fields.
#[track_caller]
fn assert_inbox(store: &Store, address: &str, want: &[&[u8]]) -> Vec<String> {
    let copies = inbox(store, address);
    assert_eq!(
        copies.len(),
        want.len(),
        "{address} holds {} messages, expected {}",
        copies.len(),
        want.len()
    );
    copies
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (copy, want))| {
            let copy = split_copy(copy);
            assert_eq!(copy.delivered_to, format!("Delivered-To: {address}\r\n"));
            assert_same(&format!("{address} message {}", i + 1), copy.content, want);
            copy.received
        })
        .collect()
}

/// The recipients of the pipelined transaction: 50 addresses that lead to
/// five accounts, directly, in another case, through an alias, through a
/// list and with plus tags on each of those.
fn fifty_recipients() -> Vec<String> {
    let mut rcpts: Vec<String> = [
        "alice",
        "ALICE",
        "alice+news",
        "sales",
        "sales+promo",
        "carol",
        "carol+x",
        "team",
        "team+weekly",
        "dave+direct",
        "bob",
    ]
    .iter()
    .map(|l| format!("{l}@{DOMAIN}"))
    .collect();
    let mut tag = 0;
    while rcpts.len() < 50 {
        rcpts.push(format!("bob+tag{tag}@{DOMAIN}"));
        tag += 1;
    }
    rcpts
}

#[test]
fn pipelined_transaction_to_50_recipients_gives_one_copy_per_mailbox() {
    let (env, ports) = setup("", &["alice", "bob", "carol", "dave", "erin", "frank"]);
    ok(&env.run(&["domain", "set", DOMAIN, "--plus-separator", "+"]));
    ok(&env.run(&["alias", "add", "sales@example.com", "carol@example.com"]));
    ok(&env.run(&["list", "add", "team@example.com"]));
    ok(&env.run(&[
        "list",
        "members",
        "add",
        "team@example.com",
        "dave@example.com",
        "erin@example.com",
    ]));
    let server = Server::start(&env);

    let rcpts = fifty_recipients();
    assert_eq!(rcpts.len(), 50);
    let message = b"From: News <news@remote.example>\r\n\
        To: undisclosed-recipients:;\r\n\
        Subject: pipelined to 50\r\n\
        Message-ID: <pipelined-50@remote.example>\r\n\
        \r\n\
        .a line that starts with a dot\r\n\
        .\r\n\
        ..\r\n\
        trailing spaces   \r\n\
        \r\n\
        last line\r\n";
    let file = message_file(&env, "pipelined.eml", message);
    // smtplib sends MAIL and each RCPT on its own; the commands are written
    // on its socket in one piece instead, and the replies read after.
    let script = r#"
port, sender, path, rcpts = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
body = open(path, "rb").read()
s = connect(port)
need(s, "pipelining")
batch = f"MAIL FROM:<{sender}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts) + "DATA\r\n"
s.sock.sendall(batch.encode())
expect("MAIL", s.getreply(), 250)
for r in rcpts:
    expect(f"RCPT TO:<{r}>", s.getreply(), 250)
expect("DATA", s.getreply(), 354)
s.sock.sendall(stuffed(body))
accepted = expect("end of DATA", s.getreply(), 250)
done(s, {"rcpt_replies": len(rcpts), "accepted": accepted})
"#;
    let port = ports.smtp.to_string();
    let mut args = vec![port.as_str(), "news@remote.example", file.as_str()];
    args.extend(rcpts.iter().map(String::as_str));
    let result = python(&server, script, &args);
    assert_eq!(result["rcpt_replies"], 50);

    wait_queue(&env, &server, 0);
    let store = open_store(&env);
    for local in ["alice", "bob", "carol", "dave", "erin"] {
        let address = format!("{local}@{DOMAIN}");
        let received = assert_inbox(&store, &address, &[message]);
        assert!(
            received[0].starts_with("Received: from client.example.test ([127.0.0.1])"),
            "{}",
            received[0]
        );
    }
    assert_inbox(&store, "frank@example.com", &[]);
}

#[test]
fn eight_bit_body_is_delivered_byte_exact() {
    let (env, ports) = setup("", &["bob"]);
    let server = Server::start(&env);
    let mut message = "From: Zoë <zoe@remote.example>\r\n\
        To: bob@example.com\r\n\
        Subject: 8-bit\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: 8bit\r\n\
        \r\n\
        Grüße aus Köln, ½ € — ✓\r\n\
        .über a leading dot\r\n"
        .as_bytes()
        .to_vec();
    // Latin-1 text, then every byte with the high bit set.
    message.extend_from_slice(b"caf\xe9 na\xefve \xa9 \xff\r\n");
    message.extend(0x80..=0xffu8);
    message.extend_from_slice(b"\r\nend\r\n");
    let file = message_file(&env, "8bit.eml", &message);
    let script = r#"
port, path = int(sys.argv[1]), sys.argv[2]
s = connect(port)
need(s, "8bitmime")
send(s, "zoe@remote.example", ["bob@example.com"], open(path, "rb").read(), ["BODY=8BITMIME"])
done(s, {})
"#;
    python(&server, script, &[&ports.smtp.to_string(), &file]);
    wait_queue(&env, &server, 0);
    assert_inbox(&open_store(&env), "bob@example.com", &[&message]);
}

#[test]
fn smtputf8_addresses_are_delivered() {
    let (env, ports) = setup("", &["bob"]);
    ok(&env.run_with_stdin(
        &["account", "add", "jörg@example.com", "--password-stdin"],
        b"secret pw\n",
    ));
    ok(&env.run(&["alias", "add", "δοκιμή@example.com", "bob@example.com"]));
    let server = Server::start(&env);
    let message = "From: Grüße <grüße@absender.example>\r\n\
        To: Jörg <jörg@example.com>, δοκιμή@example.com\r\n\
        Subject: Grüße, Jörg\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: 8bit\r\n\
        \r\n\
        Ünïcödé everywhere: 日本語, Ελληνικά.\r\n"
        .as_bytes();
    let file = message_file(&env, "utf8.eml", message);
    // smtplib sends the commands in UTF-8 once SMTPUTF8 is in MAIL's
    // options; before that, a UTF-8 address without it is refused.
    let script = r#"
port, path = int(sys.argv[1]), sys.argv[2]
s = connect(port)
need(s, "smtputf8")
s.command_encoding = "utf-8"
expect("MAIL without SMTPUTF8", s.mail("plain@absender.example"), 250)
expect("RCPT of a UTF-8 address without SMTPUTF8", s.rcpt("jörg@example.com"), 553, "5.6.7")
expect("RSET", s.rset(), 250)
send(s, "grüße@absender.example", ["jörg@example.com", "δοκιμή@example.com"],
     open(path, "rb").read(), ["SMTPUTF8", "BODY=8BITMIME"])
done(s, {})
"#;
    python(&server, script, &[&ports.smtp.to_string(), &file]);
    wait_queue(&env, &server, 0);
    let store = open_store(&env);
    for address in ["jörg@example.com", "bob@example.com"] {
        let received = assert_inbox(&store, address, &[message]);
        assert!(
            received[0].contains(" with UTF8SMTP "),
            "an SMTPUTF8 transaction is `with UTF8SMTP` (RFC 6531 section 3.7.3): {}",
            received[0]
        );
    }
}

/// A large message of printable lines of varying length, some starting
/// with a dot, from a fixed seed.
fn large_message(size: usize) -> Vec<u8> {
    let mut out =
        b"From: big@remote.example\r\nTo: bob@example.com\r\nSubject: large\r\n\r\n".to_vec();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 998) as usize;
        if state.is_multiple_of(17) {
            out.push(b'.');
        }
        out.extend((0..len).map(|i| b'!' + ((state >> (i % 56)) as u8).wrapping_add(i as u8) % 94));
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn fifteen_megabyte_message_is_delivered_byte_exact() {
    let (env, ports) = setup("", &["bob"]);
    let server = Server::start(&env);
    let message = large_message(15_000_000);
    let file = message_file(&env, "large.eml", &message);
    let script = r#"
port, path = int(sys.argv[1]), sys.argv[2]
body = open(path, "rb").read()
s = connect(port)
need(s, "size")
send(s, "big@remote.example", ["bob@example.com"], body, [f"SIZE={len(body)}"])
done(s, {"sent": len(body)})
"#;
    let result = python(&server, script, &[&ports.smtp.to_string(), &file]);
    assert_eq!(result["sent"], message.len());
    wait_queue(&env, &server, 0);
    assert_inbox(&open_store(&env), "bob@example.com", &[&message]);
}

#[test]
fn oversized_message_gets_552_and_the_session_goes_on() {
    let (env, ports) = setup("max_message_size = 1048576\n", &["bob"]);
    let server = Server::start(&env);
    let big = large_message(2 * 1024 * 1024);
    let small = b"From: big@remote.example\r\nTo: bob@example.com\r\nSubject: small\r\n\r\nafter the refusal\r\n";
    let big_file = message_file(&env, "big.eml", &big);
    let small_file = message_file(&env, "small.eml", small);
    // Announced too big at MAIL, then sent whole without SIZE: refused at
    // the end of DATA; then a small message in the same session.
    let script = r#"
port, big, small = int(sys.argv[1]), open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
s = connect(port)
limit = s.esmtp_features.get("size")
expect("MAIL with SIZE over the limit", s.mail("big@remote.example", [f"SIZE={len(big)}"]), 552, "5.3.4")
expect("MAIL", s.mail("big@remote.example"), 250)
expect("RCPT", s.rcpt("bob@example.com"), 250)
refused = expect("end of DATA of the big message", s.data(big), 552, "5.3.4")
send(s, "big@remote.example", ["bob@example.com"], small)
done(s, {"size": limit, "refused": refused})
"#;
    let result = python(
        &server,
        script,
        &[&ports.smtp.to_string(), &big_file, &small_file],
    );
    assert_eq!(
        result["size"], "1048576",
        "EHLO's SIZE is the configured limit"
    );
    wait_queue(&env, &server, 0);
    assert_inbox(&open_store(&env), "bob@example.com", &[small]);
}

#[test]
fn unknown_user_is_refused_and_only_my_computer_relays_without_auth() {
    let (env, ports) = setup("", &["alice"]);
    let server = Server::start(&env);
    let local = b"Subject: to alice\r\n\r\nfrom 127.0.0.1\r\n";
    let inbound = b"Subject: inbound\r\n\r\nfrom 127.0.0.2\r\n";
    let relayed = b"Subject: relayed\r\n\r\nto a remote address\r\n";
    let files = [
        message_file(&env, "local.eml", local),
        message_file(&env, "inbound.eml", inbound),
        message_file(&env, "relayed.eml", relayed),
    ];
    // 127.0.0.2 is loopback too, but not "My computer": it is the Internet.
    let script = r#"
port, local, inbound, relayed = int(sys.argv[1]), *(open(p, "rb").read() for p in sys.argv[2:5])
s = connect(port, source="127.0.0.2")
expect("MAIL as a local sender from the Internet", s.mail("alice@example.com"), 530, "5.7.0")
expect("MAIL", s.mail("someone@remote.example"), 250)
expect("RCPT to relay from the Internet", s.rcpt("friend@remote.example"), 550, "5.7.1")
expect("RCPT to a local account", s.rcpt("alice@example.com"), 250)
expect("end of DATA", s.data(inbound), 250)
done(s, {})

s = connect(port)
expect("MAIL", s.mail("someone@remote.example"), 250)
unknown = expect("RCPT to an unknown user", s.rcpt("nobody@example.com"), 550, "5.1.1")
expect("RCPT", s.rcpt("alice@example.com"), 250)
expect("end of DATA", s.data(local), 250)
send(s, "alice@example.com", ["friend@remote.example"], relayed)
done(s, {"unknown": unknown})
"#;
    let mut args = vec![ports.smtp.to_string()];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = python(&server, script, &args);
    println!("unknown user: {}", result["unknown"]);

    // The relayed message stays queued for its remote recipient.
    let listing = wait_queue(&env, &server, 1);
    let entry = &listing[0];
    assert_eq!(entry["sender"], "alice@example.com", "{listing:#}");
    assert_eq!(
        entry["pending"],
        serde_json::json!(["friend@remote.example"]),
        "{listing:#}"
    );
    assert!(
        entry["size"]
            .as_u64()
            .is_some_and(|n| n > relayed.len() as u64),
        "{listing:#}"
    );
    assert_inbox(&open_store(&env), "alice@example.com", &[inbound, local]);
}
