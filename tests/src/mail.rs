//! What the mail-service tests share: a server with a domain and an account,
//! delivery over SMTP from a raw socket, the store read beside the running
//! server, Python scripts whose last line is JSON, curl, and byte
//! comparisons that say where two messages differ.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use ironpost_store::{Message, Store};
use serde_json::Value;

use crate::server::{Ports, Server, env_with_listeners};
use crate::{Env, json, ok};

/// Adds the account `address` with `password` (given on standard input).
pub fn add_account(env: &Env, address: &str, password: &str) {
    ok(&env.run_with_stdin(
        &["account", "add", address, "--password-stdin"],
        format!("{password}\n").as_bytes(),
    ));
}

/// A running server (its configuration `extra`, see [`env_with_listeners`])
/// with the domain of `address` and the account `address` with `password`,
/// nothing delivered yet.
pub fn start_with_account(extra: &str, address: &str, password: &str) -> (Env, Ports, Server) {
    let (env, ports) = env_with_listeners(extra);
    let (_, domain) = address
        .split_once('@')
        .unwrap_or_else(|| panic!("{address:?} has no domain"));
    ok(&env.run(&["domain", "add", domain]));
    add_account(&env, address, password);
    let server = Server::start(&env);
    (env, ports, server)
}

/// An SMTP session on a raw socket, past the greeting and `EHLO`.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    ehlo: String,
}

impl Smtp {
    /// Connects to 127.0.0.1:`port`, waiting at most `timeout` for each
    /// read, and says `EHLO client.example`.
    pub fn connect(port: u16, timeout: Duration) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("SMTP connects");
        stream.set_read_timeout(Some(timeout)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("stream clone"));
        let mut smtp = Smtp {
            reader,
            writer: stream,
            ehlo: String::new(),
        };
        smtp.reply("220", "greeting");
        smtp.write(b"EHLO client.example\r\n");
        smtp.ehlo = smtp.reply("250", "EHLO");
        smtp
    }

    /// The server's reply to `EHLO`, all its lines.
    pub fn ehlo(&self) -> &str {
        &self.ehlo
    }

    /// Writes `bytes` as they are.
    pub fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("written to SMTP");
    }

    /// Reads one reply (all its lines), checks its code and returns it;
    /// `what` names the command in a failure.
    #[track_caller]
    pub fn reply(&mut self, code: &str, what: &str) -> String {
        read_reply(&mut self.reader, code, what)
    }

    /// One transaction from `x@remote.example` to `to` with `DATA`, the
    /// message dot-stuffed (it must end with CRLF); returns at the `250`.
    #[track_caller]
    pub fn data(&mut self, to: &str, message: &[u8]) {
        self.write(
            format!("MAIL FROM:<x@remote.example>\r\nRCPT TO:<{to}>\r\nDATA\r\n").as_bytes(),
        );
        self.reply("250", "MAIL");
        self.reply("250", "RCPT");
        self.reply("354", "DATA");
        let mut data = Vec::with_capacity(message.len() + 16);
        for line in message.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        data.extend_from_slice(b".\r\n");
        self.write(&data);
        self.reply("250", "the end of DATA");
    }

    /// Sends `QUIT` and reads the `221`.
    #[track_caller]
    pub fn quit(mut self) {
        self.write(b"QUIT\r\n");
        self.reply("221", "QUIT");
    }
}

/// Reads one SMTP reply (all its lines) from `reader` and checks its code.
#[track_caller]
fn read_reply(reader: &mut BufReader<TcpStream>, code: &str, what: &str) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("an SMTP reply");
        assert!(n > 0, "the server closed the connection; {what}");
        assert!(
            line.starts_with(code),
            "{what}: expected {code}, got {line:?}"
        );
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

/// Delivers `messages` to `to` over SMTP on `port`, one `DATA` transaction
/// each, every message waited for in the INBOX before the next is sent, so
/// that their UIDs follow the order of sending.
pub fn deliver_in_order(env: &Env, port: u16, to: &str, messages: &[Vec<u8>]) {
    let mut smtp = Smtp::connect(port, Duration::from_secs(20));
    let before = messages_of(env, to, "INBOX").len();
    for (i, message) in messages.iter().enumerate() {
        smtp.data(to, message);
        let deadline = Instant::now() + Duration::from_secs(20);
        while messages_of(env, to, "INBOX").len() < before + i + 1 {
            assert!(Instant::now() < deadline, "message {i} not delivered");
            thread::sleep(Duration::from_millis(20));
        }
    }
    smtp.quit();
}

/// Delivers `messages` to `to` in one SMTP session on `port`, every
/// transaction `BDAT <size> LAST` (so the bytes go as they are) and all of
/// them pipelined, then waits until the INBOX holds them all (see
/// [`wait_delivered`]). Returns the INBOX in UID order: each stored message
/// is one of those sent with the server's `Delivered-To:` and `Received:`
/// in front.
pub fn deliver_pipelined(
    env: &Env,
    port: u16,
    to: &str,
    messages: &[Vec<u8>],
) -> Vec<(Message, Vec<u8>)> {
    let smtp = Smtp::connect(port, Duration::from_secs(60));
    let ehlo = smtp.ehlo();
    assert!(
        ehlo.contains("CHUNKING") && ehlo.contains("PIPELINING"),
        "{ehlo}"
    );
    let Smtp {
        mut reader,
        mut writer,
        ..
    } = smtp;
    // Written from another thread, so that the replies are read while the
    // server holds back on reading when it is behind.
    let outgoing: Vec<Vec<u8>> = messages.to_vec();
    let envelope = format!("MAIL FROM:<x@remote.example>\r\nRCPT TO:<{to}>\r\n");
    let writing = thread::spawn(move || {
        for message in &outgoing {
            let mut chunk = format!("{envelope}BDAT {} LAST\r\n", message.len()).into_bytes();
            chunk.extend_from_slice(message);
            writer.write_all(&chunk).expect("a transaction written");
        }
        writer.write_all(b"QUIT\r\n").expect("QUIT");
    });
    for i in 0..messages.len() {
        read_reply(&mut reader, "250", &format!("MAIL of message {i}"));
        read_reply(&mut reader, "250", &format!("RCPT of message {i}"));
        read_reply(&mut reader, "250", &format!("BDAT of message {i}"));
    }
    read_reply(&mut reader, "221", "QUIT");
    writing.join().expect("the writer thread");

    let stored = wait_delivered(env, to, messages.len(), Duration::from_secs(120));
    // Concurrent delivery workers may give UIDs in another order than the
    // messages were sent: each sent message must be one stored copy,
    // matched by its bytes.
    let mut unmatched: Vec<&Vec<u8>> = stored.iter().map(|(_, bytes)| bytes).collect();
    for (i, sent) in messages.iter().enumerate() {
        let at = unmatched
            .iter()
            .position(|c| c.ends_with(sent) && c.starts_with(b"Delivered-To: "))
            .unwrap_or_else(|| panic!("message {i} is not in the INBOX after the trace fields"));
        unmatched.swap_remove(at);
    }
    stored
}

/// Waits (at most `limit`) until the queue is empty and the INBOX of
/// `address` holds `count` messages; returns them in UID order with their
/// bytes.
#[track_caller]
pub fn wait_delivered(
    env: &Env,
    address: &str,
    count: usize,
    limit: Duration,
) -> Vec<(Message, Vec<u8>)> {
    let deadline = Instant::now() + limit;
    loop {
        let queue = json(&env.run(&["queue", "list", "--json"]));
        let stored = mailbox(env, address, "INBOX");
        if queue.as_array().is_some_and(Vec::is_empty) && stored.len() == count {
            return stored;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered after {limit:?}: {} of {count} in the INBOX, queue {queue}",
            stored.len()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The store of the environment, opened beside the running server.
pub fn open_store(env: &Env) -> Store {
    Store::open_dir(env.data_dir().join("store")).expect("the store opens")
}

/// The messages of the mailbox `name` of `address` in UID order, without
/// their bytes.
pub fn messages_of(env: &Env, address: &str, name: &str) -> Vec<Message> {
    let store = open_store(env);
    let account = store.account(address).expect("the account");
    let mailbox = store.mailbox(account.id, name).expect("the mailbox");
    store.messages(mailbox.id).expect("the messages")
}

/// The messages of the mailbox `name` of `address` in UID order, each with
/// its bytes as stored.
pub fn mailbox(env: &Env, address: &str, name: &str) -> Vec<(Message, Vec<u8>)> {
    let store = open_store(env);
    let account = store.account(address).expect("the account");
    let mailbox = store.mailbox(account.id, name).expect("the mailbox");
    store
        .messages(mailbox.id)
        .expect("the messages")
        .into_iter()
        .map(|m| {
            let bytes = store.read_message(mailbox.id, m.uid).expect("a message");
            (m, bytes)
        })
        .collect()
}

/// The UIDVALIDITY of the mailbox `name` of `address`.
pub fn uidvalidity(env: &Env, address: &str, name: &str) -> u32 {
    let store = open_store(env);
    let account = store.account(address).expect("the account");
    store
        .mailbox(account.id, name)
        .expect("the mailbox")
        .uidvalidity
}

/// Runs `python3 -c program args`; returns the JSON of its last line of
/// output, or what went wrong (its exit status, error output and output).
pub fn python(program: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .expect("python3 runs (a required tool: `cargo xtask test` checks for it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "python3 exited with {}:\n{}\nstdout: {stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("not JSON ({e}): {stdout}"))
}

/// Runs curl with `args` (silent but for errors, at most 60 s) as `user`
/// (`name:password`) and returns its output.
pub fn curl(user: &str, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60", "-u", user])
        .args(args)
        .output()
        .expect("curl runs (a required tool: `cargo xtask test` checks for it)")
}

/// Asserts that curl (see [`curl`]) succeeded and returns its standard
/// output.
#[track_caller]
pub fn curl_ok(user: &str, args: &[&str]) -> Vec<u8> {
    let out = curl(user, args);
    assert!(
        out.status.success(),
        "curl {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs curl on `url` (with `-k`) as `address` with a wrong password and
/// asserts that it fails with its "login denied" exit code (67), and that
/// the server's log holds neither the wrong password nor `password`.
#[track_caller]
pub fn assert_curl_login_denied(server: &Server, address: &str, password: &str, url: &str) {
    const WRONG: &str = "not the password";
    let out = curl(&format!("{address}:{WRONG}"), &["-k", url]);
    assert_eq!(
        out.status.code(),
        Some(67),
        "curl with a wrong password: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = server.log();
    assert!(!log.contains(password), "{log}");
    assert!(!log.contains(WRONG), "{log}");
}

/// The mailboxes of a new account as `LIST "" "*"` answers: the INBOX and
/// the five special-use folders with their attributes.
pub const NEW_ACCOUNT_LIST: [&str; 6] = [
    r#"* LIST (\HasNoChildren \Archive) "/" Archive"#,
    r#"* LIST (\HasNoChildren \Drafts) "/" Drafts"#,
    r#"* LIST (\HasNoChildren) "/" INBOX"#,
    r#"* LIST (\HasNoChildren \Junk) "/" Junk"#,
    r#"* LIST (\HasNoChildren \Sent) "/" Sent"#,
    r#"* LIST (\HasNoChildren \Trash) "/" Trash"#,
];

/// The exit code of a client program and all it wrote (standard output,
/// then standard error); panics when a signal killed it.
#[track_caller]
pub fn exit_code_and_text(program: &str, output: &Output) -> (i32, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("{program} killed by a signal:\n{text}"));
    (code, text)
}

/// Asserts byte equality, reporting the first difference rather than both
/// values (which may be megabytes).
#[track_caller]
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let around = |bytes: &[u8]| {
        let from = at.saturating_sub(60);
        bytes[from..bytes.len().min(at + 60)]
            .escape_ascii()
            .to_string()
    };
    panic!(
        "{what}: got {} bytes, want {}, first difference at {at}:\ngot:  {}\nwant: {}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    );
}

/// Where a message's header ends (after its empty line).
#[track_caller]
pub fn header_len(message: &[u8]) -> usize {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header and a body")
        + 4
}

/// `message` with CRLF line ends turned into LF, as clients that hand
/// messages to local programs or files write them.
pub fn lf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < message.len() {
        if message[i..].starts_with(b"\r\n") {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(message[i]);
            i += 1;
        }
    }
    out
}
