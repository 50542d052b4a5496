//! Durability under SIGKILL: 20 concurrent SMTP senders, and the server is
//! killed 5 times at random moments and started again on the same data
//! directory and ports. After each restart, every message that got `250`
//! before the kill reaches each of its mailboxes exactly once; at the end,
//! with the queue drained, every acknowledged message is in each of its
//! mailboxes exactly once, and no message (acknowledged or not) is in any
//! mailbox twice, in a mailbox it was not sent to, or in only some of its
//! mailboxes.
//!
//! The senders run from a moment before each kill until the server is
//! started again, then pause while the test waits for the deliveries to
//! catch up, so each kill falls on a server that is both accepting (20
//! sessions) and delivering, and the backlog stays small enough to check in
//! seconds. Each sender paces itself: local delivery is one queue entry at a
//! time, far slower than 20 sessions sharing group commits can accept.
//!
//! The kill moments come from a seeded generator; the seed is printed and
//! `DURABILITY_SEED=<n>` replays it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ironpost_e2e::server::{Server, env_with_listeners};
use ironpost_e2e::{Env, json, ok};
use ironpost_store::{Flags, LocalDelivery, NewQueueEntry, NewRecipient, Store};

const DOMAIN: &str = "example.com";
const ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];
const SENDERS: usize = 20;
const KILLS: usize = 5;
/// Fewer acknowledged messages than this and the kills proved little.
const MIN_ACKED: usize = 200;
/// How long deliveries may take to catch up after a restart.
const CATCH_UP: Duration = Duration::from_secs(15);
/// Each sender's pause after a message.
const PACE: Duration = Duration::from_millis(100);
/// How long the senders run on the server started after the last kill.
const LAST_ROUND: Duration = Duration::from_millis(500);

/// SplitMix64: a small seeded generator, enough to pick kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// The accounts message `n` of sender `t` goes to: one, and every fourth
/// message a second one, so that one queue entry fills two mailboxes.
fn recipients(t: usize, n: usize) -> Vec<&'static str> {
    let first = (t + n) % ACCOUNTS.len();
    let mut to = vec![ACCOUNTS[first]];
    if n % 4 == 3 {
        to.push(ACCOUNTS[(first + 1) % ACCOUNTS.len()]);
    }
    to
}

fn message_id(t: usize, n: usize) -> String {
    format!("t{t:02}-m{n:05}")
}

/// Parses what [`message_id`] made.
fn parse_id(id: &str) -> Option<(usize, usize)> {
    let (t, n) = id.strip_prefix('t')?.split_once("-m")?;
    Some((t.parse().ok()?, n.parse().ok()?))
}

/// The message with `id`: its id in the Subject, and a body of a size that
/// varies with it, every 64th over a mebibyte (past the size at which the
/// server streams a body to disk while it arrives, rather than holding it).
fn message(id: &str) -> Vec<u8> {
    let (t, n) = parse_id(id).expect("a message id");
    let mut m = format!(
        "Subject: durability {id}\r\nFrom: <sender@remote.example>\r\n\
         Message-ID: <{id}@durability.test>\r\n\r\n.a leading dot\r\n"
    )
    .into_bytes();
    let lines = if n % 64 == 63 {
        16_000
    } else {
        2 + (t * 7 + n * 13) % 90
    };
    for line in 0..lines {
        m.extend_from_slice(format!("{id} line {line:05} {}\r\n", "x".repeat(50)).as_bytes());
    }
    m
}

/// The message as DATA carries it: leading dots doubled, the final dot.
fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A plain SMTP client on a blocking socket.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// Why a message was not acknowledged.
enum NotAccepted {
    /// The connection broke: the server may or may not have the message.
    Lost,
    /// The server answered something else than expected.
    Refused(String),
}

impl From<io::Error> for NotAccepted {
    fn from(_: io::Error) -> Self {
        NotAccepted::Lost
    }
}

impl Client {
    fn connect(port: u16) -> Result<Client, NotAccepted> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_write_timeout(Some(Duration::from_secs(20)))?;
        let mut client = Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        client.expect("greeting", 220)?;
        client.command("EHLO sender.example\r\n", 250)?;
        Ok(client)
    }

    /// Reads one reply, all its lines, and checks its code.
    fn expect(&mut self, what: &str, code: u16) -> Result<(), NotAccepted> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(NotAccepted::Lost);
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        if text.starts_with(&code.to_string()) {
            Ok(())
        } else {
            Err(NotAccepted::Refused(format!(
                "{what}: expected {code}, got {}",
                text.trim_end()
            )))
        }
    }

    fn command(&mut self, line: &str, code: u16) -> Result<(), NotAccepted> {
        self.writer.write_all(line.as_bytes())?;
        self.expect(line.trim_end(), code)
    }

    /// Sends one message; `Ok` when it got `250` after the final dot.
    fn send(&mut self, id: &str, to: &[&str]) -> Result<(), NotAccepted> {
        self.command("MAIL FROM:<sender@remote.example>\r\n", 250)?;
        for account in to {
            self.command(&format!("RCPT TO:<{account}@{DOMAIN}>\r\n"), 250)?;
        }
        self.command("DATA\r\n", 354)?;
        self.writer.write_all(&stuffed(&message(id)))?;
        self.expect("end of DATA", 250)
    }
}

/// A message that got `250`.
struct Ack {
    id: String,
    to: Vec<&'static str>,
    /// How many kills came before the acknowledgement.
    round: usize,
}

/// What the senders share with the test.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Senders start messages only while this is set.
    sending: AtomicBool,
    round: AtomicUsize,
    acked: Mutex<Vec<Ack>>,
    refused: Mutex<Vec<String>>,
}

/// Sends messages until told to stop, reconnecting whenever the connection
/// breaks; returns how many it tried.
fn sender(t: usize, port: u16, shared: &Shared) -> usize {
    let mut n = 0;
    let mut client: Option<Client> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        if !shared.sending.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let session = match client.as_mut() {
            Some(session) => session,
            None => match Client::connect(port) {
                Ok(session) => client.insert(session),
                Err(NotAccepted::Refused(why)) => {
                    shared.refused.lock().unwrap().push(why);
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(NotAccepted::Lost) => {
                    // Not listening (killed, or starting again).
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        let id = message_id(t, n);
        let to = recipients(t, n);
        n += 1;
        match session.send(&id, &to) {
            Ok(()) => {
                let round = shared.round.load(Ordering::SeqCst);
                shared.acked.lock().unwrap().push(Ack { id, to, round });
            }
            Err(NotAccepted::Lost) => client = None,
            Err(NotAccepted::Refused(why)) => {
                shared.refused.lock().unwrap().push(format!("{id}: {why}"));
                client = None;
            }
        }
        thread::sleep(PACE);
    }
    n
}

/// The messages found in the mailboxes, read once each (UIDs are never
/// reused, so a UID seen stays what it was).
#[derive(Default)]
struct Mailboxes {
    /// (account, UID) -> message id.
    seen: HashMap<(&'static str, u32), String>,
}

impl Mailboxes {
    /// Reads the messages not seen yet, checking each copy: `Delivered-To:`
    /// its account, the server's `Received:`, then the message as sent.
    /// Returns, per message id, the accounts holding it (once per copy).
    fn scan(&mut self, env: &Env) -> HashMap<String, Vec<&'static str>> {
        let store = Store::open_dir(env.data_dir().join("store")).expect("the store opens");
        for account in ACCOUNTS {
            let address = format!("{account}@{DOMAIN}");
            let id = store.account(&address).expect("account").id;
            let inbox = store.mailbox(id, "INBOX").expect("INBOX");
            for m in store.messages(inbox.id).expect("messages") {
                if self.seen.contains_key(&(account, m.uid)) {
                    continue;
                }
                let copy = store.read_message(inbox.id, m.uid).expect("message reads");
                let id = check_copy(&address, m.uid, &copy);
                self.seen.insert((account, m.uid), id);
            }
        }
        let mut found: HashMap<String, Vec<&'static str>> = HashMap::new();
        for ((account, _), id) in &self.seen {
            found.entry(id.clone()).or_default().push(account);
        }
        found
    }
}

/// Checks one stored copy and returns its message id.
#[track_caller]
fn check_copy(address: &str, uid: u32, copy: &[u8]) -> String {
    let head = String::from_utf8_lossy(&copy[..copy.len().min(600)]).into_owned();
    let delivered_to = format!("Delivered-To: {address}\r\n");
    let rest = copy
        .strip_prefix(delivered_to.as_bytes())
        .unwrap_or_else(|| panic!("{address} UID {uid} lacks {delivered_to:?}:\n{head}"));
    let subject = b"\r\nSubject: durability ";
    let at = rest
        .windows(subject.len())
        .position(|w| w == subject)
        .unwrap_or_else(|| panic!("{address} UID {uid}: no Subject of ours:\n{head}"));
    let (received, content) = rest.split_at(at + 2);
    assert!(
        received.starts_with(b"Received: from sender.example ([127.0.0.1])"),
        "{address} UID {uid}: no Received: of the server:\n{head}"
    );
    let line_end = content
        .iter()
        .position(|&b| b == b'\r')
        .expect("the Subject line ends");
    let id = String::from_utf8_lossy(&content[subject.len() - 2..line_end]).into_owned();
    assert!(
        parse_id(&id).is_some() && content == message(&id).as_slice(),
        "{address} UID {uid}: not the message {id} as sent:\n{head}"
    );
    id
}

/// Waits until every message in `acked` is in each of its mailboxes;
/// panics at once if any message is anywhere twice, and after
/// [`CATCH_UP`] if some are still missing.
fn wait_delivered(
    env: &Env,
    server: &Server,
    mailboxes: &mut Mailboxes,
    acked: &[(String, Vec<&str>)],
    context: &str,
) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let found = mailboxes.scan(env);
        assert_no_duplicates(&found, context);
        let missing: Vec<&str> = acked
            .iter()
            .filter(|(id, to)| {
                let holders = found.get(id).map(Vec::as_slice).unwrap_or_default();
                to.iter().any(|account| !holders.contains(account))
            })
            .map(|(id, _)| id.as_str())
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: {} acknowledged messages not delivered after {CATCH_UP:?}, e.g. {:?}\n\
             queue: {}\nlog:\n{}",
            missing.len(),
            &missing[..missing.len().min(10)],
            ok(&env.run(&["queue", "list"])),
            server.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[track_caller]
fn assert_no_duplicates(found: &HashMap<String, Vec<&'static str>>, context: &str) {
    for (id, holders) in found {
        let mut sorted = holders.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            holders.len(),
            "{context}: message {id} delivered more than once: {holders:?}"
        );
    }
}

/// Waits until no queue entry has a recipient left to deliver; returns the
/// entries still in the queue (none, when every finished entry was removed).
#[track_caller]
fn wait_nothing_pending(env: &Env, server: &Server) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let listing = json(&env.run(&["queue", "list", "--json"]));
        let entries = listing.as_array().expect("a JSON array").clone();
        let pending = |e: &serde_json::Value| e["pending"].as_array().is_none_or(|p| !p.is_empty());
        if !entries.iter().any(pending) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "recipients still pending after {CATCH_UP:?}:\n{listing:#}\nlog:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_acknowledged_message_survives_sigkill_exactly_once() {
    let seed = std::env::var("DURABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("DURABILITY_SEED={seed}");
    let mut rng = Rng(seed);

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
    let mut server = Server::start(&env);
    let shared = Arc::new(Shared::default());
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let shared = shared.clone();
            thread::spawn(move || sender(t, ports.smtp, &shared))
        })
        .collect();

    let mut mailboxes = Mailboxes::default();
    let mut delays = Vec::new();
    for kill in 1..=KILLS {
        let delay = rng.range(200, 1500);
        delays.push(delay);
        shared.sending.store(true, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(delay));
        server.kill();
        // Every 250 a sender reads from now on was sent before the kill.
        let before_kill: Vec<(String, Vec<&str>)> = {
            let acked = shared.acked.lock().unwrap();
            acked.iter().map(|a| (a.id.clone(), a.to.clone())).collect()
        };
        shared.round.store(kill, Ordering::SeqCst);
        server = Server::start(&env);
        shared.sending.store(false, Ordering::SeqCst);
        let context = format!("seed {seed}, after kill {kill} ({delay} ms)");
        wait_delivered(&env, &server, &mut mailboxes, &before_kill, &context);
    }

    shared.sending.store(true, Ordering::SeqCst);
    thread::sleep(LAST_ROUND);
    shared.stop.store(true, Ordering::SeqCst);
    let attempted: Vec<usize> = senders
        .into_iter()
        .map(|s| s.join().expect("a sender thread"))
        .collect();
    let left = wait_nothing_pending(&env, &server);
    let context = format!("seed {seed}, at the end");
    let found = mailboxes.scan(&env);
    let (status, log) = server.terminate();
    assert!(status.success(), "ironpost exit {status}:\n{log}");

    let refused = shared.refused.lock().unwrap();
    assert!(
        refused.is_empty(),
        "{context}: unexpected replies: {refused:#?}"
    );
    let acked = shared.acked.lock().unwrap();
    let mut per_round = BTreeMap::new();
    for ack in acked.iter() {
        *per_round.entry(ack.round).or_insert(0usize) += 1;
    }
    println!(
        "kill delays {delays:?} ms; acknowledged per round (kills before): {per_round:?}; \
         total {} of {} tried",
        acked.len(),
        attempted.iter().sum::<usize>()
    );
    assert!(
        acked.len() >= MIN_ACKED,
        "{context}: only {} messages acknowledged",
        acked.len()
    );
    assert!(
        (0..=KILLS).all(|round| per_round.contains_key(&round)),
        "{context}: a round without acknowledged messages: {per_round:?}"
    );

    // Acknowledged: exactly once in each of its mailboxes.
    assert_no_duplicates(&found, &context);
    let mut lost = Vec::new();
    for ack in acked.iter() {
        let holders = found.get(&ack.id).map(Vec::as_slice).unwrap_or_default();
        if ack.to.iter().any(|account| !holders.contains(account)) {
            lost.push((ack.id.as_str(), holders));
        }
    }
    assert!(
        lost.is_empty(),
        "{context}: {} acknowledged messages lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    // Every message found was sent, to exactly the mailboxes it names,
    // acknowledged or not (a message accepted but cut off before its 250
    // is in all its mailboxes or in none).
    let acked_ids: HashSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
    let mut unacknowledged = 0;
    for (id, holders) in &found {
        let (t, n) = parse_id(id).expect("ids were checked by scan");
        assert!(
            t < SENDERS && n < attempted[t],
            "{context}: message {id} was never sent"
        );
        let mut want = recipients(t, n);
        want.sort_unstable();
        let mut got = holders.clone();
        got.sort_unstable();
        assert_eq!(got, want, "{context}: message {id} in the wrong mailboxes");
        if !acked_ids.contains(id.as_str()) {
            unacknowledged += 1;
        }
    }
    println!("{unacknowledged} messages without a 250 were delivered (each once)");

    // Nothing left to deliver, so nothing may be left in the queue.
    let shown: Vec<String> = left
        .iter()
        .map(|e| ok(&env.run(&["queue", "show", &e["id"].to_string()])))
        .collect();
    assert!(
        left.is_empty(),
        "{context}: {} queue entries with no recipient left to deliver were not removed:\n{}",
        left.len(),
        shown.join("\n")
    );
}

/// The state a kill leaves between the two commits of a local delivery: the
/// copies are in the mailbox and the recipient is marked delivered, but the
/// entry was not removed yet. The next start must remove it, without
/// delivering it again.
#[test]
fn entry_delivered_just_before_a_kill_is_removed_at_the_next_start() {
    let (env, _ports) = env_with_listeners("");
    ok(&env.run(&["domain", "add", DOMAIN]));
    let address = format!("alice@{DOMAIN}");
    ok(&env.run_with_stdin(
        &["account", "add", &address, "--password-stdin"],
        b"secret pw\n",
    ));
    let store = Store::open_dir(env.data_dir().join("store")).expect("the store opens");
    let blob = store
        .blobs()
        .write_bytes(b"Subject: delivered before the kill\r\n\r\nbody\r\n")
        .expect("body written");
    let id = store
        .enqueue(NewQueueEntry::new(
            blob,
            "sender@remote.example",
            [NewRecipient::new(address.clone())],
        ))
        .expect("queued");
    let recipient = store.queue_entry(id).expect("entry").recipients[0].id;
    let account = store.account(&address).expect("account");
    let inbox = store.mailbox(account.id, "INBOX").expect("INBOX");
    let copy = LocalDelivery::new(inbox.id, format!("Delivered-To: {address}\r\n"));
    store
        .deliver_from_queue(id, vec![(recipient, vec![copy])], Flags::new(), None)
        .expect("delivered");
    drop(store);
    let shown = ok(&env.run(&["queue", "show", &id.0.to_string()]));
    assert!(shown.contains(r#""state":"delivered""#), "{shown}");

    let server = Server::start(&env);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listing = json(&env.run(&["queue", "list", "--json"]));
        if listing.as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an entry with every recipient delivered is still queued 5 s after the start:\n{}\nlog:\n{}",
            ok(&env.run(&["queue", "show", &id.0.to_string()])),
            server.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let store = Store::open_dir(env.data_dir().join("store")).expect("the store opens");
    assert_eq!(store.messages(inbox.id).expect("messages").len(), 1);
}
