//! `cargo xtask bench imap`: an IMAP load client of ours against Ironpost
//! and against Dovecot's IMAP server, in the same run, both on loopback;
//! then each server's memory with many connections in IDLE.
//!
//! Each server gets a fresh directory once, with the same accounts and the
//! same messages, put in by IMAP `APPEND` from this process (not timed):
//! [`ACCOUNTS`] load accounts holding [`MESSAGES`] messages each (text/plain,
//! 1 to 8 KiB, sizes drawn from a fixed seed) and one idle account per idle
//! connection of the shared idle phase, holding [`IDLE_MESSAGES`] each.
//! Ironpost's accounts come from its `account add` command, Dovecot's from a
//! `passwd-file`. Then, for each run, each server is started, measured and
//! stopped, the runs alternating between the servers:
//!
//! - 1 client, then [`ACCOUNTS`] clients at once, each a thread with one
//!   connection logged in to its own account with its own INBOX selected
//!   (so that neither server's handling of several sessions on one mailbox
//!   is measured). The clock starts when all are ready. Each client draws
//!   its operations from a fixed mix with its own fixed seed (see [`Op`] and
//!   [`choose`]) and sends them one at a time; each is timed from sending
//!   its command until its tagged reply has been read, literals included.
//!   APPEND and EXPUNGE are drawn equally often and each is forced once the
//!   mailbox drifts [`SLACK`] messages from [`MESSAGES`], so its size stays
//!   about constant. After a warm-up, operations that end within the
//!   measured window count: operations/second, p50 and p99 latency, server
//!   CPU over the window (every thread of the server's process tree, from
//!   `/proc/PID/task/TID/schedstat`) and this process's CPU (the clients).
//! - Medians over the runs.
//!
//! The idle phase runs once per server, after the runs, on a fresh start:
//! a warm-up of [`BATCH`] logins (closed again), then the server's memory,
//! then K connections opened by one thread in batches of [`BATCH`]
//! (connect, greeting, `LOGIN`, `SELECT INBOX`, `IDLE`, up to the `+`),
//! then the memory again two seconds after the last `+`. The difference over
//! K is the memory per idle connection: for Ironpost the RSS of its one
//! process, for Dovecot the sum of `Pss` (`/proc/PID/smaps_rollup`) over its
//! process tree, where each connection is an `imap` process (both measures
//! are reported for both). K is 1 000 for both servers and 10 000 for
//! Ironpost alone (10 connections per idle account there).
//!
//! Both servers listen on a plain IMAP port with plaintext logins allowed,
//! so that TLS, which both would do through a library, does not dominate.
//! Dovecot runs as a private instance (its own configuration, base and state
//! directories; the system's instance is neither used nor touched) as a
//! child of this process; its mail processes run as `nobody`. Needs root for
//! that; `--only ironpost` does not.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::bench_util::{
    CpuReading, Resident, build_release, clean_up, clock_ticks, free_port, ironpost_admin,
    log_tail, make_dir, median, open_files_limit, tree_resident,
};
use crate::dovecot::{self, Kind, Pair, Server};

const DOMAIN: &str = "bench.test";
const PASSWORD: &str = "bench password";
/// Messages in each load account's INBOX.
const MESSAGES: usize = 200;
/// The smallest and the largest message, in octets.
const MIN_SIZE: usize = 1024;
const MAX_SIZE: usize = 8 * 1024;
/// The load accounts: one per client at the most concurrent.
const ACCOUNTS: usize = 50;
/// The client counts measured.
const CLIENTS: [usize; 2] = [1, ACCOUNTS];
/// How far a load mailbox may drift from [`MESSAGES`] before APPEND or
/// EXPUNGE is forced.
const SLACK: usize = 20;
/// Messages in each idle account's INBOX.
const IDLE_MESSAGES: usize = 10;
/// Idle connections to each server by default.
const IDLE: usize = 1000;
/// Ironpost alone is also measured with this many times the idle connections.
const IRONPOST_IDLE_FACTOR: usize = 10;
/// Connections that log in at once while the idle connections are opened.
const BATCH: usize = 64;
/// Threads that fill the mailboxes before the runs.
const FILL_THREADS: usize = 8;
/// The largest literal the client takes from a server.
const MAX_LITERAL: usize = 64 << 20;
/// How long a reply may take before the client gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the servers get to settle before a memory reading.
const SETTLE: Duration = Duration::from_secs(2);

const USAGE: &str =
    "usage: cargo xtask bench imap [--runs N] [--quick] [--only ironpost|dovecot] [--idle K]";

#[derive(Debug, PartialEq, Eq)]
struct Options {
    runs: usize,
    /// Not timed: each client's operations before the window.
    warmup: Duration,
    /// The measured window of each load.
    window: Duration,
    only: Option<Kind>,
    /// Idle connections to each server (0: no idle phase).
    idle: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let (mut runs, mut quick, mut only, mut idle) = (None, false, None, None);
    let number = |value: Option<&String>, option: &str| -> Result<usize> {
        let value = value.ok_or_else(|| format!("{option} needs a number"))?;
        value
            .parse()
            .map_err(|_| format!("{option} {value}: not a number"))
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--runs" => {
                let n = number(iter.next(), "--runs")?;
                if n == 0 {
                    return Err("--runs 0: give at least one run".into());
                }
                runs = Some(n);
            }
            "--quick" => quick = true,
            "--idle" => idle = Some(number(iter.next(), "--idle")?),
            "--only" => only = Some(Kind::parse(iter.next().map(String::as_str))?),
            other => return Err(format!("bench imap: unknown option {other}\n{USAGE}")),
        }
    }
    Ok(Options {
        runs: runs.unwrap_or(if quick { 1 } else { 3 }),
        warmup: Duration::from_secs(if quick { 1 } else { 2 }),
        window: Duration::from_secs(if quick { 3 } else { 10 }),
        only,
        idle: idle.unwrap_or(if quick { IDLE / 10 } else { IDLE }),
    })
}

/// Runs the benchmark with the options in `args`.
pub(crate) fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    let kinds = Kind::chosen(options.only);
    if kinds.contains(&Kind::Dovecot) {
        dovecot::check("imap")?;
    }
    let most = if kinds.contains(&Kind::Ironpost) {
        options.idle * IRONPOST_IDLE_FACTOR
    } else {
        options.idle
    };
    check_open_files(most + ACCOUNTS + BATCH + 100)?;
    let env = BenchEnv {
        ironpost: if kinds.contains(&Kind::Ironpost) {
            Some(build_release()?)
        } else {
            None
        },
        ticks: clock_ticks()?,
        scratch: std::env::temp_dir().join(format!("ironpost-bench-imap.{}", std::process::id())),
        messages: Arc::new((0..MESSAGES).map(message).collect()),
        idle_accounts: options.idle,
    };
    make_dir(&env.scratch)?;
    let result = bench(&env, &kinds, &options);
    clean_up(&env.scratch, &result);
    let (loads, idles) = result?;
    print!("{}", report(&loads, &idles, &options, &env.messages));
    Ok(())
}

/// Refuses to start when this process may not hold `needed` sockets.
/// `std` cannot raise `RLIMIT_NOFILE`; the shell that starts cargo can.
fn check_open_files(needed: usize) -> Result {
    match open_files_limit() {
        Some(limit) if limit < needed as u64 => Err(format!(
            "bench imap holds up to {needed} sockets at once but `ulimit -n` is {limit}: \
             raise it in the shell (`ulimit -n {needed}`) or give a smaller --idle K"
        )),
        _ => Ok(()),
    }
}

/// What every measurement needs.
struct BenchEnv {
    /// The release binary, when Ironpost is measured.
    ironpost: Option<PathBuf>,
    ticks: u64,
    scratch: PathBuf,
    /// The messages as appended: the first [`IDLE_MESSAGES`] fill the idle
    /// accounts, all of them the load accounts, and the load appends copies.
    messages: Arc<Vec<Vec<u8>>>,
    /// Idle accounts, one per idle connection to both servers.
    idle_accounts: usize,
}

impl BenchEnv {
    fn ironpost(&self) -> Result<&Path> {
        self.ironpost
            .as_deref()
            .ok_or_else(|| "the ironpost binary was not built".to_string())
    }

    /// Idle connections Dovecot must take: the process limit of its `imap`
    /// service, with room for the load clients and the warm-up.
    fn connection_limit(&self) -> usize {
        self.idle_accounts + ACCOUNTS + BATCH + 100
    }
}

/// One server's load results for one client count.
struct Series {
    kind: Kind,
    clients: usize,
    samples: Vec<Sample>,
}

fn bench(
    env: &BenchEnv,
    kinds: &[Kind],
    options: &Options,
) -> Result<(Vec<Series>, Vec<IdleSample>)> {
    let what = format!(
        "{ACCOUNTS} accounts with {MESSAGES} messages, {} with {IDLE_MESSAGES}",
        env.idle_accounts
    );
    let prepared =
        dovecot::prepare_each(&env.scratch, kinds, "imap", &what, |kind, dir| match kind {
            Kind::Ironpost => prepare_ironpost(env, dir),
            Kind::Dovecot => prepare_dovecot(env, dir),
        })?;
    let mut loads: Vec<Series> = Vec::new();
    for &kind in kinds {
        for clients in CLIENTS {
            loads.push(Series {
                kind,
                clients,
                samples: Vec::new(),
            });
        }
    }
    // Runs alternate between the servers, so that a noisy neighbour slows
    // both alike.
    for run in 1..=options.runs {
        for (kind, dir) in &prepared {
            let mut server = start(env, *kind, dir)?;
            for clients in CLIENTS {
                let sample = measure_load(env, &server, clients, options).map_err(|e| {
                    format!(
                        "{} with {clients} client(s), run {run}: {e}\n{}",
                        kind.name(),
                        log_tail(&server.log)
                    )
                })?;
                eprintln!(
                    "xtask: imap {} {clients} client(s) run {run}/{}: {}",
                    kind.name(),
                    options.runs,
                    describe(&sample)
                );
                loads
                    .iter_mut()
                    .find(|r| r.kind == *kind && r.clients == clients)
                    .expect("a series per kind and client count")
                    .samples
                    .push(sample);
            }
            server.stop()?;
        }
    }
    let mut idles = Vec::new();
    if options.idle > 0 {
        let mut counts: Vec<(Kind, usize)> =
            prepared.iter().map(|(k, _)| (*k, options.idle)).collect();
        if kinds.contains(&Kind::Ironpost) {
            counts.push((Kind::Ironpost, options.idle * IRONPOST_IDLE_FACTOR));
        }
        for (kind, connections) in counts {
            let (_, dir) = prepared
                .iter()
                .find(|(k, _)| *k == kind)
                .expect("a directory per kind");
            let mut server = start(env, kind, dir)?;
            let sample = measure_idle(env, &server, connections).map_err(|e| {
                format!(
                    "{} with {connections} idle connections: {e}\n{}",
                    kind.name(),
                    log_tail(&server.log)
                )
            })?;
            eprintln!(
                "xtask: imap {} idle: {}",
                kind.name(),
                describe_idle(&sample)
            );
            idles.push(sample);
            server.stop()?;
        }
    }
    Ok((loads, idles))
}

fn load_account(n: usize) -> String {
    format!("load{n}@{DOMAIN}")
}

fn idle_account(n: usize) -> String {
    format!("idle{n}@{DOMAIN}")
}

/// Every account with the number of messages it starts with.
fn accounts(env: &BenchEnv) -> Vec<(String, usize)> {
    let load = (1..=ACCOUNTS).map(|n| (load_account(n), MESSAGES));
    let idle = (1..=env.idle_accounts).map(|n| (idle_account(n), IDLE_MESSAGES));
    load.chain(idle).collect()
}

/// Message `i`: a plain text message of 1 to 8 KiB (the size drawn from
/// `i`), lines of at most 78 octets of letters and spaces.
fn message(i: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x1AB0_0000 + i as u64);
    let size = MIN_SIZE + rng.below(MAX_SIZE - MIN_SIZE + 1);
    let mut m = format!(
        "From: Sender <sender@remote.example>\r\n\
         To: <user@{DOMAIN}>\r\n\
         Subject: bench message {i}\r\n\
         Message-ID: <bench-{i}@remote.example>\r\n\
         Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n"
    )
    .into_bytes();
    while m.len() < size {
        // Lines of 78 octets with their CRLF; the last two share what is
        // left so that none is shorter than its CRLF.
        let room = size - m.len();
        let line = match room {
            81.. => 78,
            79..=80 => room - 40,
            _ => room,
        };
        for k in 0..line - 2 {
            let r = rng.next();
            m.push(if k > 0 && r.is_multiple_of(6) {
                b' '
            } else {
                b'a' + (r % 26) as u8
            });
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// xorshift64*: the same sequence for the same seed, on every server.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (which is not 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ------------------------------------------------------------------ servers

/// The server `kind` started in `dir`, its IMAP port greeting.
fn start(env: &BenchEnv, kind: Kind, dir: &Path) -> Result<Server> {
    match kind {
        Kind::Ironpost => start_ironpost(env, dir),
        Kind::Dovecot => start_dovecot(dir, env.connection_limit()),
    }
}

/// `ironpost serve` with one plain IMAP listener that allows logins, on
/// a fresh port.
fn start_ironpost(env: &BenchEnv, dir: &Path) -> Result<Server> {
    let imap = free_port()?;
    let config = write_ironpost_config(dir, imap)?;
    Server::ironpost(env.ironpost()?, dir, &config, imap, imap_greets)
}

/// `dovecot -F` with the configuration of [`dovecot_conf`] on a fresh
/// port.
fn start_dovecot(dir: &Path, limit: usize) -> Result<Server> {
    let imap = free_port()?;
    Server::dovecot(dir, &dovecot_conf(dir, imap, limit)?, imap, imap_greets)
}

/// Ironpost with IMAP alone: no SMTP or POP3 listener, one plain IMAP
/// listener with plaintext logins and no connection limit.
fn write_ironpost_config(dir: &Path, imap: u16) -> Result<PathBuf> {
    let config = dir.join("ironpost.toml");
    let text = format!(
        "[server]\nhostname = \"{DOMAIN}\"\ndata_dir = {:?}\n\n\
         [smtp]\nlisteners = []\n\n\
         [pop3]\nlisteners = []\n\n\
         [imap]\nallow_plaintext_auth = true\nmax_connections = 0\n\n\
         [[imap.listeners]]\nname = \"imap\"\nbind = [\"127.0.0.1:{imap}\"]\nmode = \"plain\"\n",
        dir.join("data").display().to_string()
    );
    fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    Ok(config)
}

/// Ironpost with the domain and every account (two `account add` commands
/// at a time: each hashes its password), then the messages appended.
fn prepare_ironpost(env: &BenchEnv, dir: &Path) -> Result {
    let ironpost = env.ironpost()?;
    let config = write_ironpost_config(dir, free_port()?)?;
    ironpost_admin(ironpost, &config, &["domain", "add", DOMAIN], b"")?;
    let accounts = accounts(env);
    let password = format!("{PASSWORD}\n");
    thread::scope(|scope| -> Result {
        let workers: Vec<_> = (0..2)
            .map(|first| {
                let (accounts, config, password) = (&accounts, &config, &password);
                scope.spawn(move || -> Result {
                    for (address, _) in accounts.iter().skip(first).step_by(2) {
                        ironpost_admin(
                            ironpost,
                            config,
                            &["account", "add", address, "--password-stdin"],
                            password.as_bytes(),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| "an account thread panicked".to_string())??;
        }
        Ok(())
    })?;
    let mut server = start_ironpost(env, dir)?;
    fill(server.port, &accounts, &env.messages)
        .map_err(|e| format!("filling the mailboxes: {e}\n{}", log_tail(&server.log)))?;
    server.stop()
}

/// A private Dovecot for IMAP alone. Each logged-in connection is an
/// `imap` process, so the `imap` service may start `limit` of them (the
/// default is 100), and the services every connection talks to (anvil,
/// auth, log, stats) take as many clients.
fn dovecot_conf(dir: &Path, port: u16, limit: usize) -> Result<String> {
    dovecot::conf(
        dir,
        "imap",
        port,
        &format!("default_client_limit = {limit}\n"),
        &format!("service imap {{\n  process_limit = {limit}\n}}\n"),
    )
}

/// Dovecot's password file and empty Maildirs, then the messages appended.
fn prepare_dovecot(env: &BenchEnv, dir: &Path) -> Result {
    let accounts = accounts(env);
    dovecot::add_accounts(dir, accounts.iter().map(|(a, _)| a.as_str()), PASSWORD)?;
    dovecot::give_to_nobody(dir)?;
    let mut server = start_dovecot(dir, env.connection_limit())?;
    fill(server.port, &accounts, &env.messages)
        .map_err(|e| format!("filling the mailboxes: {e}\n{}", log_tail(&server.log)))?;
    server.stop()
}

/// Appends the first `count` of `messages` to each account's empty INBOX,
/// from [`FILL_THREADS`] threads, and checks the count by selecting it.
fn fill(port: u16, accounts: &[(String, usize)], messages: &[Vec<u8>]) -> Result {
    thread::scope(|scope| -> Result {
        let workers: Vec<_> = (0..FILL_THREADS)
            .map(|first| {
                scope.spawn(move || -> Result {
                    for (address, count) in accounts.iter().skip(first).step_by(FILL_THREADS) {
                        fill_one(port, address, &messages[..*count])
                            .map_err(|e| format!("{address}: {e}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| "a filling thread panicked".to_string())??;
        }
        Ok(())
    })
}

fn fill_one(port: u16, address: &str, messages: &[Vec<u8>]) -> Result {
    let mut conn = Conn::open(port, address, 64 * 1024)?;
    if conn.exists != 0 {
        return Err(format!("INBOX holds {} messages already", conn.exists));
    }
    for m in messages {
        conn.append(m)?;
    }
    conn.select()?;
    if conn.exists != messages.len() {
        return Err(format!(
            "INBOX holds {} messages after {} APPENDs",
            conn.exists,
            messages.len()
        ));
    }
    conn.logout()
}

/// Whether an IMAP server on 127.0.0.1:`port` greets with `* OK`.
fn imap_greets(port: u16) -> bool {
    let Ok(mut conn) = Conn::connect(port, 1024) else {
        return false;
    };
    let _ = conn.reader.get_ref().set_read_timeout(Some(SETTLE * 5));
    let ok = conn.greeting().is_ok();
    let _ = conn.write(b"a0 LOGOUT\r\n");
    ok
}

// ------------------------------------------------------------------- client

/// One server response: its lines without their CRLF, joined, with each
/// literal's octets taken out (its `{n}` stays), and the literals apart.
#[derive(Debug, Default)]
struct Response {
    text: Vec<u8>,
    literals: Vec<Vec<u8>>,
}

impl Response {
    fn starts_with(&self, prefix: &[u8]) -> bool {
        self.text.len() >= prefix.len() && self.text[..prefix.len()].eq_ignore_ascii_case(prefix)
    }
}

/// What the current command sent and the first and last lines that came
/// back, for error messages. Keeps its buffers from command to command.
#[derive(Debug, Default)]
struct Transcript {
    sent: String,
    /// [`Transcript::KEEP`] first lines, then a ring of as many last ones.
    lines: Vec<Vec<u8>>,
    count: usize,
}

impl Transcript {
    const KEEP: usize = 8;
    const WIDTH: usize = 300;

    fn start(&mut self, sent: &str) {
        self.sent.clear();
        self.sent.push_str(sent);
        self.count = 0;
    }

    fn slot(i: usize) -> usize {
        if i < Self::KEEP {
            i
        } else {
            Self::KEEP + (i - Self::KEEP) % Self::KEEP
        }
    }

    fn record(&mut self, line: &[u8]) {
        let slot = Self::slot(self.count);
        if self.lines.len() <= slot {
            self.lines.resize_with(slot + 1, Vec::new);
        }
        let kept = &mut self.lines[slot];
        kept.clear();
        kept.extend_from_slice(&line[..line.len().min(Self::WIDTH)]);
        self.count += 1;
    }

    fn show(&self) -> String {
        let mut out = format!("  C: {}", self.sent);
        let shown: Vec<usize> = if self.count <= 2 * Self::KEEP {
            (0..self.count).collect()
        } else {
            (0..Self::KEEP)
                .chain(self.count - Self::KEEP..self.count)
                .collect()
        };
        for (k, &i) in shown.iter().enumerate() {
            if k == Self::KEEP && self.count > 2 * Self::KEEP {
                let _ = write!(
                    out,
                    "\n  S: ... {} more lines ...",
                    self.count - 2 * Self::KEEP
                );
            }
            let line = String::from_utf8_lossy(&self.lines[Self::slot(i)]);
            let _ = write!(out, "\n  S: {line}");
        }
        out
    }
}

/// A connection to an IMAP server: commands out, responses in, each
/// literal read byte-exactly by its announced length.
struct Conn {
    reader: BufReader<TcpStream>,
    next_tag: u32,
    tag: String,
    response: Response,
    transcript: Transcript,
    /// Messages in the selected mailbox, from `EXISTS` and `EXPUNGE`.
    exists: usize,
    /// Whether `* BYE` is expected (LOGOUT).
    leaving: bool,
}

impl Conn {
    /// Connects; `buffer` is the size of the read buffer.
    fn connect(port: u16, buffer: usize) -> Result<Conn> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            reader: BufReader::with_capacity(buffer, stream),
            next_tag: 0,
            tag: String::new(),
            response: Response::default(),
            transcript: Transcript::default(),
            exists: 0,
            leaving: false,
        })
    }

    /// Connects, logs in as `user` and selects INBOX.
    fn open(port: u16, user: &str, buffer: usize) -> Result<Conn> {
        let mut conn = Conn::connect(port, buffer)?;
        conn.greeting()?;
        conn.send(&login_command(user))?;
        conn.finish(|_| ())?;
        conn.select()?;
        Ok(conn)
    }

    fn write(&mut self, bytes: &[u8]) -> Result {
        let mut stream = self.reader.get_ref();
        stream
            .write_all(bytes)
            .map_err(|e| format!("writing: {e}\n{}", self.transcript.show()))
    }

    /// An error naming `what` and the exchange that led to it.
    fn failure(&self, what: &str) -> String {
        format!("{what}\n{}", self.transcript.show())
    }

    /// Reads one response: a line, and while a line ends in a literal
    /// announcement `{n}`, exactly n octets and the line that goes on.
    fn read_response(&mut self) -> Result {
        self.response.text.clear();
        self.response.literals.clear();
        loop {
            let start = self.response.text.len();
            let read = self
                .reader
                .read_until(b'\n', &mut self.response.text)
                .map_err(|e| self.failure(&format!("reading: {e}")))?;
            if read == 0 || self.response.text.last() != Some(&b'\n') {
                return Err(self.failure("the server closed the connection"));
            }
            self.response.text.pop();
            if self.response.text.last() == Some(&b'\r') {
                self.response.text.pop();
            }
            let line = &self.response.text[start..];
            self.transcript.record(line);
            let Some(size) = literal_size(line).map_err(|e| self.failure(&e))? else {
                return Ok(());
            };
            let mut literal = vec![0; size];
            self.reader
                .read_exact(&mut literal)
                .map_err(|e| self.failure(&format!("reading a literal of {size} octets: {e}")))?;
            self.response.literals.push(literal);
        }
    }

    /// Sends `TAG command` with a new tag.
    fn send(&mut self, command: &str) -> Result {
        self.next_tag += 1;
        self.tag.clear();
        let _ = write!(self.tag, "a{}", self.next_tag);
        let line = format!("{} {command}\r\n", self.tag);
        self.transcript.start(line.trim_end());
        self.write(line.as_bytes())
    }

    /// Reads the greeting, which must be `* OK`.
    fn greeting(&mut self) -> Result {
        self.transcript.start("(connected)");
        self.read_response()?;
        if self.response.starts_with(b"* OK") {
            Ok(())
        } else {
            Err(self.failure("the greeting is not * OK"))
        }
    }

    /// Reads the responses to the command sent last up to its tagged one,
    /// handing each untagged one to `each` (after noting `EXISTS` and
    /// `EXPUNGE`). A tagged `OK` is success; anything else is an error that
    /// shows the exchange.
    fn finish(&mut self, mut each: impl FnMut(&Response)) -> Result {
        loop {
            self.read_response()?;
            let text = &self.response.text;
            if text.len() > self.tag.len()
                && text.starts_with(self.tag.as_bytes())
                && text[self.tag.len()] == b' '
            {
                let status = &text[self.tag.len() + 1..];
                return if status.len() >= 2 && status[..2].eq_ignore_ascii_case(b"OK") {
                    Ok(())
                } else {
                    Err(self.failure("the command failed"))
                };
            }
            self.untagged()?;
            each(&self.response);
        }
    }

    /// Notes an untagged response; anything else where one is expected
    /// is an error, and so is `* BYE` unless logging out.
    fn untagged(&mut self) -> Result {
        if !self.response.starts_with(b"* ") {
            return Err(self.failure("expected an untagged or the tagged response"));
        }
        if self.response.starts_with(b"* BYE") && !self.leaving {
            return Err(self.failure("the server said BYE"));
        }
        match numbered(&self.response.text) {
            Some((n, word)) if word.eq_ignore_ascii_case(b"EXISTS") => self.exists = n,
            Some((_, word)) if word.eq_ignore_ascii_case(b"EXPUNGE") => {
                self.exists = self.exists.saturating_sub(1);
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads up to a `+` continuation request, noting untagged responses on
    /// the way; the tagged response (a refusal) is an error.
    fn continuation(&mut self) -> Result {
        loop {
            self.read_response()?;
            if self.response.text.starts_with(b"+") {
                return Ok(());
            }
            self.untagged()?;
        }
    }

    fn select(&mut self) -> Result {
        self.send("SELECT INBOX")?;
        self.finish(|_| ())
    }

    /// APPEND to INBOX with a synchronising literal.
    fn append(&mut self, message: &[u8]) -> Result {
        self.send(&format!("APPEND INBOX {{{}}}", message.len()))?;
        self.continuation()?;
        self.write(message)?;
        self.write(b"\r\n")?;
        self.finish(|_| ())
    }

    fn logout(mut self) -> Result {
        self.leaving = true;
        self.send("LOGOUT")?;
        self.finish(|_| ())
    }
}

fn login_command(user: &str) -> String {
    format!("LOGIN \"{user}\" \"{PASSWORD}\"")
}

/// The size in a literal announcement `{n}` or `{n+}` at the end of a line.
fn literal_size(line: &[u8]) -> Result<Option<usize>> {
    let Some(inner) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = inner.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    match std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
    {
        Some(n) if n <= MAX_LITERAL => Ok(Some(n)),
        _ => Err(format!(
            "a literal of {} octets, more than {MAX_LITERAL}",
            String::from_utf8_lossy(digits)
        )),
    }
}

/// `* N WORD ...`: N and WORD.
fn numbered(text: &[u8]) -> Option<(usize, &[u8])> {
    let rest = text.strip_prefix(b"* ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let word = rest[digits..].strip_prefix(b" ")?;
    let end = word
        .iter()
        .position(|&b| b == b' ' || b == b'(')
        .unwrap_or(word.len());
    Some((n, &word[..end]))
}

// --------------------------------------------------------------------- load

/// The operations of the mix. [`choose`] draws them; the weights are in
/// [`MIX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `SELECT INBOX` again.
    Select,
    /// `FETCH 1:* (FLAGS)`: a client resynchronising its flags.
    FetchFlags,
    /// `FETCH n BODY[]` of a random message (sets `\Seen`).
    FetchBody,
    /// `UID SEARCH FLAGGED`.
    SearchFlagged,
    /// `UID SEARCH SUBJECT "bench message k"`: a header search.
    SearchSubject,
    /// `STORE n +FLAGS (\Flagged)` or `-FLAGS`, half each.
    Store,
    /// `APPEND INBOX {n}` of a new message (1 to 8 KiB).
    Append,
    /// `STORE n +FLAGS.SILENT (\Deleted)` and then `EXPUNGE`, timed as
    /// two operations ([`Op::Expunge`] is the second).
    Delete,
    /// The `EXPUNGE` after [`Op::Delete`].
    Expunge,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::Select,
        Op::FetchFlags,
        Op::FetchBody,
        Op::SearchFlagged,
        Op::SearchSubject,
        Op::Store,
        Op::Append,
        Op::Delete,
        Op::Expunge,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Select => "SELECT INBOX",
            Op::FetchFlags => "FETCH 1:* (FLAGS)",
            Op::FetchBody => "FETCH n BODY[]",
            Op::SearchFlagged => "UID SEARCH FLAGGED",
            Op::SearchSubject => "UID SEARCH SUBJECT \"...\"",
            Op::Store => "STORE n ±FLAGS (\\Flagged)",
            Op::Append => "APPEND",
            Op::Delete => "STORE n +FLAGS.SILENT (\\Deleted)",
            Op::Expunge => "EXPUNGE",
        }
    }

    fn index(self) -> usize {
        Op::ALL.iter().position(|&o| o == self).expect("in ALL")
    }
}

/// The mix in percent of the draws; a `Delete` draw is also an `Expunge`.
const MIX: [(Op, usize); 8] = [
    (Op::Select, 5),
    (Op::FetchFlags, 15),
    (Op::FetchBody, 30),
    (Op::SearchFlagged, 8),
    (Op::SearchSubject, 7),
    (Op::Store, 21),
    (Op::Append, 7),
    (Op::Delete, 7),
];

/// The next operation for a mailbox of `exists` messages, and two random
/// numbers for its arguments. Every call takes three numbers from `rng`,
/// so the sequence stays the same whatever is forced: APPEND when the
/// mailbox is [`SLACK`] below [`MESSAGES`] (or empty), a deletion when it is
/// [`SLACK`] above.
fn choose(rng: &mut Rng, exists: usize) -> (Op, u64, u64) {
    let mut draw = rng.below(100);
    let (a, b) = (rng.next(), rng.next());
    let mut op = Op::Delete;
    for (candidate, weight) in MIX {
        if draw < weight {
            op = candidate;
            break;
        }
        draw -= weight;
    }
    if exists == 0 || (exists + SLACK <= MESSAGES && op == Op::Delete) {
        op = Op::Append;
    } else if exists >= MESSAGES + SLACK && op == Op::Append {
        op = Op::Delete;
    }
    (op, a, b)
}

/// One operation done: which, when it ended (from the start of the load)
/// and how long it took.
#[derive(Debug, Clone, Copy)]
struct Record {
    op: Op,
    done: Duration,
    latency: Duration,
}

/// One client of the load: its connection and its own sequence.
struct LoadClient {
    conn: Conn,
    rng: Rng,
    /// This client's number, in the header of what it appends.
    id: usize,
    appended: usize,
    /// What APPEND sends, kept from one to the next.
    outgoing: Vec<u8>,
}

impl LoadClient {
    fn open(port: u16, id: usize) -> Result<LoadClient> {
        Ok(LoadClient {
            conn: Conn::open(port, &load_account(id), 256 * 1024)?,
            rng: Rng::new(0xB0A7_0000 + id as u64),
            id,
            appended: 0,
            outgoing: Vec::with_capacity(MAX_SIZE + 64),
        })
    }

    /// Draws and does the next operation (two for a deletion), adds what
    /// it took to `records`.
    fn step(&mut self, messages: &[Vec<u8>], start: Instant, records: &mut Vec<Record>) -> Result {
        let (op, a, b) = choose(&mut self.rng, self.conn.exists);
        let n = 1 + (a % self.conn.exists.max(1) as u64);
        let began = Instant::now();
        let conn = &mut self.conn;
        match op {
            Op::Select => {
                conn.select()?;
            }
            Op::FetchFlags => {
                conn.send("FETCH 1:* (FLAGS)")?;
                let mut fetched = 0;
                conn.finish(|r| fetched += usize::from(is_fetch(r)))?;
                if fetched != conn.exists {
                    return Err(conn.failure(&format!(
                        "{fetched} FETCH responses for {} messages",
                        conn.exists
                    )));
                }
            }
            Op::FetchBody => {
                conn.send(&format!("FETCH {n} BODY[]"))?;
                let mut bodies = 0;
                conn.finish(|r| {
                    if is_fetch(r) {
                        bodies += r.literals.iter().filter(|l| memmem(l, b"\r\n\r\n")).count();
                    }
                })?;
                if bodies != 1 {
                    return Err(conn.failure(&format!(
                        "{bodies} message bodies (literals with a header) in the reply, not 1"
                    )));
                }
            }
            Op::SearchFlagged | Op::SearchSubject => {
                if op == Op::SearchFlagged {
                    conn.send("UID SEARCH FLAGGED")?;
                } else {
                    let k = b % MESSAGES as u64;
                    conn.send(&format!("UID SEARCH SUBJECT \"bench message {k}\""))?;
                }
                let mut searches = 0;
                conn.finish(|r| searches += usize::from(r.starts_with(b"* SEARCH")))?;
                if searches != 1 {
                    return Err(conn.failure(&format!("{searches} SEARCH responses, not 1")));
                }
            }
            Op::Store => {
                // The untagged FETCH with the new flags is a SHOULD, and
                // Dovecot leaves it out when the flags did not change.
                let sign = if b % 2 == 0 { '+' } else { '-' };
                conn.send(&format!("STORE {n} {sign}FLAGS (\\Flagged)"))?;
                conn.finish(|_| ())?;
            }
            Op::Append => {
                self.appended += 1;
                self.outgoing.clear();
                let _ = write!(
                    self.outgoing,
                    "X-Bench-Append: {}-{}\r\n",
                    self.id, self.appended
                );
                self.outgoing
                    .extend_from_slice(&messages[(b % messages.len() as u64) as usize]);
                conn.append(&self.outgoing)?;
            }
            Op::Delete | Op::Expunge => {
                conn.send(&format!("STORE {n} +FLAGS.SILENT (\\Deleted)"))?;
                conn.finish(|_| ())?;
                let stored = Instant::now();
                records.push(Record {
                    op: Op::Delete,
                    done: stored - start,
                    latency: stored - began,
                });
                conn.send("EXPUNGE")?;
                let mut expunged = 0;
                conn.finish(|r| {
                    expunged += usize::from(
                        numbered(&r.text).is_some_and(|(_, w)| w.eq_ignore_ascii_case(b"EXPUNGE")),
                    );
                })?;
                if expunged != 1 {
                    return Err(conn.failure(&format!(
                        "{expunged} EXPUNGE responses for one deleted message"
                    )));
                }
                let done = Instant::now();
                records.push(Record {
                    op: Op::Expunge,
                    done: done - start,
                    latency: done - stored,
                });
                return Ok(());
            }
        }
        let done = Instant::now();
        records.push(Record {
            op,
            done: done - start,
            latency: done - began,
        });
        Ok(())
    }
}

fn is_fetch(r: &Response) -> bool {
    numbered(&r.text).is_some_and(|(_, word)| word.eq_ignore_ascii_case(b"FETCH"))
}

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What one load measured.
#[derive(Debug, Clone)]
struct Sample {
    window: Duration,
    /// Latencies of the operations that ended in the window, sorted, by
    /// [`Op::index`].
    latencies: Vec<Vec<Duration>>,
    /// All of them, sorted.
    all: Vec<Duration>,
    /// Server CPU (user + system) over the window.
    cpu: Duration,
    /// This process's CPU over the window: the clients.
    client_cpu: Duration,
}

impl Sample {
    fn from_records(records: &[Record], from: Duration, window: Duration) -> Sample {
        let mut latencies = vec![Vec::new(); Op::ALL.len()];
        for r in records
            .iter()
            .filter(|r| r.done >= from && r.done < from + window)
        {
            latencies[r.op.index()].push(r.latency);
        }
        for l in &mut latencies {
            l.sort();
        }
        let mut all: Vec<Duration> = latencies.iter().flatten().copied().collect();
        all.sort();
        Sample {
            window,
            latencies,
            all,
            cpu: Duration::ZERO,
            client_cpu: Duration::ZERO,
        }
    }

    fn ops(&self) -> usize {
        self.all.len()
    }

    fn rate(&self) -> f64 {
        self.ops() as f64 / self.window.as_secs_f64()
    }

    fn p50_ms(&self) -> f64 {
        percentile_ms(&self.all, 50.0)
    }

    fn p99_ms(&self) -> f64 {
        percentile_ms(&self.all, 99.0)
    }

    /// Server CPU milliseconds per 1 000 operations.
    fn cpu_per_1000(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.ops().max(1) as f64
    }
}

/// The nearest-rank percentile `p` of sorted values, in milliseconds; NaN
/// for none.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// One load: `clients` clients on as many accounts, all logged in before
/// the clock starts; the operations that end between the warm-up and the
/// end of the window count.
fn measure_load(
    env: &BenchEnv,
    server: &Server,
    clients: usize,
    options: &Options,
) -> Result<Sample> {
    let ready = Arc::new(Barrier::new(clients + 1));
    let go = Arc::new(Barrier::new(clients + 1));
    let done = Arc::new(Barrier::new(clients + 1));
    let start = Arc::new(OnceLock::<Instant>::new());
    let end = options.warmup + options.window;
    let port = server.port;
    let threads: Vec<_> = (1..=clients)
        .map(|id| {
            let (ready, go, done, start) = (ready.clone(), go.clone(), done.clone(), start.clone());
            let messages = env.messages.clone();
            thread::spawn(move || -> Result<Vec<Record>> {
                // Every client takes part in every barrier, also after an
                // error, so that the others are not left waiting.
                let mut client = LoadClient::open(port, id);
                ready.wait();
                go.wait();
                let start = *start.get().expect("set before go");
                let mut records = Vec::with_capacity(4096);
                let result = match &mut client {
                    Ok(c) => loop {
                        if start.elapsed() >= end {
                            break Ok(());
                        }
                        if let Err(e) = c.step(&messages, start, &mut records) {
                            break Err(format!("client {id}: {e}"));
                        }
                    },
                    Err(e) => Err(format!("client {id}: {e}")),
                };
                done.wait();
                result?;
                client?.conn.logout()?;
                Ok(records)
            })
        })
        .collect();
    ready.wait();
    let began = Instant::now();
    let _ = start.set(began);
    go.wait();
    sleep_until(began + options.warmup);
    let before = CpuReading::now(server.pid(), env.ticks);
    sleep_until(began + end);
    let used = CpuReading::now(server.pid(), env.ticks).since(&before);
    done.wait();
    let mut records = Vec::new();
    let mut first_error = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(r)) => records.extend(r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("a client thread panicked".to_string());
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut sample = Sample::from_records(&records, options.warmup, options.window);
    sample.cpu = used.server;
    sample.client_cpu = used.clients;
    if sample.ops() == 0 {
        return Err("no operation ended within the window".into());
    }
    Ok(sample)
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        thread::sleep(when - now);
    }
}

// --------------------------------------------------------------------- idle

/// The server's memory before and after the idle connections were opened.
#[derive(Debug, Clone, Copy)]
struct IdleSample {
    kind: Kind,
    connections: usize,
    before: Resident,
    after: Resident,
    /// How long opening every connection took (logins included).
    opening: Duration,
}

impl IdleSample {
    fn rss_per_connection(&self) -> f64 {
        per_connection(self.before.rss_kib, self.after.rss_kib, self.connections)
    }

    fn pss_per_connection(&self) -> f64 {
        per_connection(self.before.pss_kib, self.after.pss_kib, self.connections)
    }

    /// The measure the goal is judged on: RSS for Ironpost's one process,
    /// PSS summed over Dovecot's processes.
    fn measure(&self) -> (&'static str, f64) {
        match self.kind {
            Kind::Ironpost => ("RSS", self.rss_per_connection()),
            Kind::Dovecot => ("PSS", self.pss_per_connection()),
        }
    }
}

/// KiB per connection; negative when the server shrank.
fn per_connection(before: u64, after: u64, connections: usize) -> f64 {
    (after as f64 - before as f64) / connections.max(1) as f64
}

/// `connections` connections in IDLE, connection i on idle account
/// i mod [`BenchEnv::idle_accounts`], after a warm-up of [`BATCH`] logins.
fn measure_idle(env: &BenchEnv, server: &Server, connections: usize) -> Result<IdleSample> {
    let accounts = env.idle_accounts.max(1);
    // Whatever the first logins start or allocate once (Dovecot's auth
    // worker, Ironpost's blocking threads and the password hashing's
    // memory) is then in the baseline, not in the connections.
    drop(open_idle(server.port, BATCH.min(connections), accounts)?);
    thread::sleep(SETTLE);
    let before = tree_resident(server.pid());
    let began = Instant::now();
    let open = open_idle(server.port, connections, accounts)?;
    let opening = began.elapsed();
    thread::sleep(SETTLE);
    let after = tree_resident(server.pid());
    if after.pss_unreadable > 0 {
        return Err(format!(
            "the Pss of {} of the server's processes could not be read",
            after.pss_unreadable
        ));
    }
    drop(open);
    Ok(IdleSample {
        kind: server.kind,
        connections,
        before,
        after,
        opening,
    })
}

/// Opens `count` connections, each logged in with INBOX selected and in
/// IDLE (its `+` read), [`BATCH`] at a time: each step of a batch is sent
/// on every connection of the batch before the answers are read, so the
/// server has [`BATCH`] logins to do at once.
fn open_idle(port: u16, count: usize, accounts: usize) -> Result<Vec<Conn>> {
    let mut open: Vec<Conn> = Vec::with_capacity(count);
    let mut reported = Instant::now();
    for first in (0..count).step_by(BATCH) {
        let numbers = first..(first + BATCH).min(count);
        let context = |i: usize, e: String| format!("idle connection {}: {e}", i + 1);
        let mut batch = Vec::with_capacity(BATCH);
        for i in numbers.clone() {
            batch.push(Conn::connect(port, 1024).map_err(|e| context(i, e))?);
        }
        let each = |batch: &mut Vec<Conn>, step: &dyn Fn(&mut Conn, usize) -> Result| {
            batch
                .iter_mut()
                .zip(numbers.clone())
                .try_for_each(|(conn, i)| step(conn, i).map_err(|e| context(i, e)))
        };
        each(&mut batch, &|c, _| c.greeting())?;
        each(&mut batch, &|c, i| {
            c.send(&login_command(&idle_account(i % accounts + 1)))
        })?;
        each(&mut batch, &|c, _| c.finish(|_| ()))?;
        each(&mut batch, &|c, _| c.send("SELECT INBOX"))?;
        each(&mut batch, &|c, _| c.finish(|_| ()))?;
        each(&mut batch, &|c, _| c.send("IDLE"))?;
        each(&mut batch, &|c, _| c.continuation())?;
        open.append(&mut batch);
        if reported.elapsed() > Duration::from_secs(10) {
            eprintln!("xtask: imap: {} of {count} connections in IDLE", open.len());
            reported = Instant::now();
        }
    }
    Ok(open)
}

// ------------------------------------------------------------------- report

fn describe(s: &Sample) -> String {
    format!(
        "{} ops, {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {:.3} s ({:.0} ms / 1000 ops), client CPU {:.3} s",
        s.ops(),
        s.rate(),
        s.p50_ms(),
        s.p99_ms(),
        s.cpu.as_secs_f64(),
        s.cpu_per_1000(),
        s.client_cpu.as_secs_f64()
    )
}

fn describe_idle(s: &IdleSample) -> String {
    format!(
        "{} connections in {:.1} s; RSS {} -> {} KiB ({:.1} KiB each), PSS {} -> {} KiB ({:.1} KiB each), {} -> {} processes",
        s.connections,
        s.opening.as_secs_f64(),
        s.before.rss_kib,
        s.after.rss_kib,
        s.rss_per_connection(),
        s.before.pss_kib,
        s.after.pss_kib,
        s.pss_per_connection(),
        s.before.processes,
        s.after.processes
    )
}

/// The results as Markdown tables: the load's medians with every run, the
/// ratios, the latency of each operation, and the idle memory.
fn report(
    loads: &[Series],
    idles: &[IdleSample],
    options: &Options,
    messages: &[Vec<u8>],
) -> String {
    let mut out = String::new();
    let mean = messages.iter().map(Vec::len).sum::<usize>() / messages.len().max(1);
    let mix: Vec<String> = MIX
        .iter()
        .map(|(op, weight)| format!("{weight} % {}", op.name()))
        .collect();
    let _ = writeln!(
        out,
        "\nimap: {ACCOUNTS} accounts of {MESSAGES} messages ({MIN_SIZE} to {MAX_SIZE} octets, mean {mean}),\n\
         plain TCP on 127.0.0.1 with LOGIN and no TLS on both servers; N clients on N accounts, one\n\
         command at a time each. Mix of draws: {}\n\
         (a deletion is a STORE +FLAGS.SILENT (\\Deleted) and an EXPUNGE, two operations).\n\
         {:.0} s warm-up, then {:.0} s measured; median of {} run(s). Latency from sending a command\n\
         to reading its tagged reply. CPU = the server's process tree over the window.\n",
        mix.join(", "),
        options.warmup.as_secs_f64(),
        options.window.as_secs_f64(),
        options.runs
    );
    if !loads.is_empty() {
        let _ = writeln!(
            out,
            "| clients | server | ops/s | p50 ms | p99 ms | server CPU ms / 1000 ops | client CPU s | runs: ops/s / p99 ms |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---|");
    }
    for r in loads {
        let m = |f: &dyn Fn(&Sample) -> f64| median(r.samples.iter().map(f).collect());
        let all: Vec<String> = r
            .samples
            .iter()
            .map(|s| format!("{:.0} / {:.2}", s.rate(), s.p99_ms()))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.3} | {} |",
            r.clients,
            r.kind.name(),
            m(&|s| s.rate()),
            m(&|s| s.p50_ms()),
            m(&|s| s.p99_ms()),
            m(&|s| s.cpu_per_1000()),
            m(&|s| s.client_cpu.as_secs_f64()),
            all.join(", ")
        );
    }
    let pairs = Pair::all(loads, |r| (r.kind, r.clients, &r.samples[..]));
    if !pairs.is_empty() {
        let _ = writeln!(
            out,
            "\nRatios ironpost/dovecot of the medians; \"paired\" is the median of the ratios of runs\n\
             made one after the other. Goal: ops/s at least 1.5x Dovecot's.\n\n\
             | clients | ops/s | paired | p99 latency | paired | CPU per op | goal ops/s >= 1.5x |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---|");
        for pair in pairs {
            let rate = |s: &Sample| s.rate();
            let p99 = |s: &Sample| s.p99_ms();
            let cpu = |s: &Sample| s.cpu_per_1000();
            let ratio = pair.of_medians(rate);
            let _ = writeln!(
                out,
                "| {} | {ratio:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                pair.clients,
                pair.paired(rate),
                pair.of_medians(p99),
                pair.paired(p99),
                pair.of_medians(cpu),
                if ratio >= 1.5 { "met" } else { "not met" }
            );
        }
    }
    for clients in CLIENTS {
        let series: Vec<&Series> = loads.iter().filter(|r| r.clients == clients).collect();
        if series.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\nLatency by operation, {clients} client(s), over all runs: p50 / p99 ms (share of the operations)\n"
        );
        let mut head = String::from("| operation |");
        let mut rule = String::from("|---|");
        for r in &series {
            let _ = write!(head, " {} |", r.kind.name());
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{head}\n{rule}");
        for op in Op::ALL {
            let mut row = format!("| {} |", op.name().replace('|', "\\|"));
            for r in &series {
                let mut pooled: Vec<Duration> = r
                    .samples
                    .iter()
                    .flat_map(|s| s.latencies[op.index()].iter().copied())
                    .collect();
                pooled.sort();
                let total: usize = r.samples.iter().map(Sample::ops).sum();
                let _ = write!(
                    row,
                    " {:.2} / {:.2} ({:.1} %) |",
                    percentile_ms(&pooled, 50.0),
                    percentile_ms(&pooled, 99.0),
                    pooled.len() as f64 * 100.0 / total.max(1) as f64
                );
            }
            let _ = writeln!(out, "{row}");
        }
    }
    if !idles.is_empty() {
        let _ = writeln!(
            out,
            "\nIdle connections (LOGIN, SELECT INBOX, IDLE), measured once; memory before (after a warm-up\n\
             of {BATCH} logins, closed again) and {:.0} s after the last connection's `+`. RSS and PSS are\n\
             sums over the server's process tree. Goal: at most 20 KiB per connection for Ironpost\n\
             (its RSS); Dovecot's figure is its PSS (one `imap` process per connection).\n\n\
             | server | connections | processes | RSS MiB | RSS KiB / conn | PSS MiB | PSS KiB / conn | opening s | goal <= 20 KiB |\n\
             |---|---:|---|---|---:|---|---:|---:|---|",
            SETTLE.as_secs_f64()
        );
        for s in idles {
            let mib = |kib: u64| kib as f64 / 1024.0;
            let (_, figure) = s.measure();
            let goal = match s.kind {
                Kind::Ironpost if figure <= 20.0 => "met",
                Kind::Ironpost => "not met",
                Kind::Dovecot => "-",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} -> {} | {:.1} -> {:.1} | {:.1} | {:.1} -> {:.1} | {:.1} | {:.1} | {goal} |",
                s.kind.name(),
                s.connections,
                s.before.processes,
                s.after.processes,
                mib(s.before.rss_kib),
                mib(s.after.rss_kib),
                s.rss_per_connection(),
                mib(s.before.pss_kib),
                mib(s.after.pss_kib),
                s.pss_per_connection(),
                s.opening.as_secs_f64()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn options_and_their_defaults() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = parse(&[]).unwrap();
        assert_eq!((o.runs, o.idle, o.only), (3, IDLE, None));
        let o = parse(&args("--quick --only dovecot")).unwrap();
        assert_eq!(
            (o.runs, o.idle, o.only),
            (1, IDLE / 10, Some(Kind::Dovecot))
        );
        let o = parse(&args("--runs 5 --quick --idle 0")).unwrap();
        assert_eq!((o.runs, o.idle), (5, 0));
        assert!(parse(&args("--runs 0")).is_err());
        assert!(parse(&args("--idle")).is_err());
        assert!(parse(&args("--only postfix")).is_err());
        assert!(
            parse(&args("--fast"))
                .unwrap_err()
                .contains("unknown option")
        );
    }

    #[test]
    fn messages_are_1_to_8_kib_in_crlf_lines_of_at_most_78() {
        let mut sizes = Vec::new();
        for i in 0..MESSAGES {
            let m = message(i);
            assert!((MIN_SIZE..=MAX_SIZE).contains(&m.len()), "{}", m.len());
            assert!(m.ends_with(b"\r\n"));
            for line in m.split(|&b| b == b'\n') {
                assert!(line.len() <= 77, "{}", String::from_utf8_lossy(line));
                assert!(line.is_empty() || line.ends_with(b"\r"));
            }
            sizes.push(m.len());
        }
        assert_eq!(message(7), message(7));
        assert_ne!(message(1), message(2));
        sizes.sort();
        assert!(
            sizes[0] < 2048 && sizes[MESSAGES - 1] > 7 * 1024,
            "{sizes:?}"
        );
    }

    #[test]
    fn literal_announcements() {
        assert_eq!(
            literal_size(b"* 1 FETCH (BODY[] {4021}").unwrap(),
            Some(4021)
        );
        assert_eq!(literal_size(b"* 1 FETCH (BODY[] {0}").unwrap(), Some(0));
        assert_eq!(literal_size(b"a1 APPEND INBOX {12+}").unwrap(), Some(12));
        assert_eq!(literal_size(b"* OK [ALERT] {}").unwrap(), None);
        assert_eq!(literal_size(b"* OK {x1}").unwrap(), None);
        assert_eq!(literal_size(b"* 3 FETCH (FLAGS ())").unwrap(), None);
        assert!(literal_size(b"* 1 FETCH (BODY[] {99999999999}").is_err());
        assert!(literal_size(b"* 1 FETCH (BODY[] {999999999999999999999999}").is_err());
    }

    #[test]
    fn numbered_untagged_responses() {
        assert_eq!(numbered(b"* 23 EXISTS"), Some((23, &b"EXISTS"[..])));
        assert_eq!(numbered(b"* 4 FETCH (FLAGS ())"), Some((4, &b"FETCH"[..])));
        assert_eq!(numbered(b"* 4 FETCH(FLAGS ())"), Some((4, &b"FETCH"[..])));
        assert_eq!(numbered(b"* SEARCH 1 2"), None);
        assert_eq!(numbered(b"a1 OK 3 EXISTS"), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let values = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile_ms(&values, 50.0), 50.0);
        assert_eq!(percentile_ms(&values, 99.0), 99.0);
        assert_eq!(percentile_ms(&ms(&[7]), 99.0), 7.0);
        assert_eq!(percentile_ms(&ms(&[1, 2]), 50.0), 1.0);
        assert!(percentile_ms(&[], 50.0).is_nan());
    }

    /// The mix over many draws, with the mailbox following what was drawn:
    /// the shares are the weights and the size stays within the slack.
    #[test]
    fn the_mix_keeps_the_mailbox_near_its_size() {
        let mut rng = Rng::new(1);
        let mut exists = MESSAGES;
        let mut counts = [0usize; Op::ALL.len()];
        let draws = 100_000;
        for _ in 0..draws {
            let (op, _, _) = choose(&mut rng, exists);
            counts[op.index()] += 1;
            match op {
                Op::Append => exists += 1,
                Op::Delete => exists -= 1,
                _ => {}
            }
            assert!(exists.abs_diff(MESSAGES) <= SLACK, "{exists}");
        }
        for (op, weight) in MIX {
            let share = counts[op.index()] as f64 * 100.0 / draws as f64;
            assert!((share - weight as f64).abs() < 1.0, "{op:?}: {share}");
        }
        // An empty mailbox gets messages first; the sequence is fixed.
        assert_eq!(choose(&mut Rng::new(9), 0).0, Op::Append);
        let ops = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| choose(&mut rng, MESSAGES))
                .collect::<Vec<_>>()
        };
        assert_eq!(ops(3), ops(3));
        assert_ne!(ops(3), ops(4));
    }

    /// A scripted IMAP server on a loopback socket: `reply(tag, command)`
    /// gives the bytes of each answer; an APPEND's literal is read first.
    fn fake_server(reply: fn(&str, &str) -> String) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut input = BufReader::new(stream);
            out.write_all(b"* OK fake ready\r\n").unwrap();
            loop {
                let mut line = String::new();
                if input.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                let (tag, command) = line.split_once(' ').unwrap();
                if let Some(size) = literal_size(command.as_bytes()).unwrap() {
                    out.write_all(b"+ go ahead\r\n").unwrap();
                    let mut message = vec![0; size + 2];
                    input.read_exact(&mut message).unwrap();
                    assert!(message.ends_with(b"\r\n"));
                }
                out.write_all(reply(tag, command).as_bytes()).unwrap();
            }
        });
        port
    }

    #[test]
    fn literals_are_followed_byte_exactly_and_tags_matched() {
        // The body holds what looks like the tagged reply and a literal
        // announcement; only its length says where it ends.
        let port = fake_server(|tag, command| match command {
            c if c.starts_with("LOGIN") => format!("{tag} OK logged in\r\n"),
            "SELECT INBOX" => format!("* 2 EXISTS\r\n* 0 RECENT\r\n{tag} OK [READ-WRITE] done\r\n"),
            "FETCH 2 BODY[]" => {
                let body = format!("Subject: x\r\n\r\n{tag} OK not yet {{5}}\r\n");
                format!(
                    "* 2 FETCH (BODY[] {{{}}}\r\n{body} FLAGS (\\Seen))\r\n{tag} OK done\r\n",
                    body.len()
                )
            }
            c if c.starts_with("APPEND") => {
                format!("* 3 EXISTS\r\n{tag} OK [APPENDUID 1 3] done\r\n")
            }
            "EXPUNGE" => format!("* 1 EXPUNGE\r\n{tag} OK done\r\n"),
            "LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n"),
            _ => format!("{tag} NO [CANNOT] not here\r\n"),
        });
        let mut conn = Conn::open(port, "u@bench.test", 64).unwrap();
        assert_eq!(conn.exists, 2);
        conn.send("FETCH 2 BODY[]").unwrap();
        let mut seen = Vec::new();
        conn.finish(|r| seen.push((r.text.clone(), r.literals.clone())))
            .unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].0.ends_with(b" FLAGS (\\Seen))"), "{seen:?}");
        assert!(seen[0].1[0].starts_with(b"Subject: x\r\n\r\na3 OK not yet {5}"));
        conn.append(b"Subject: y\r\n\r\nhi\r\n").unwrap();
        assert_eq!(conn.exists, 3);
        conn.send("EXPUNGE").unwrap();
        conn.finish(|_| ()).unwrap();
        assert_eq!(conn.exists, 2);
        // A refusal names what was sent and what came back.
        conn.send("UID SEARCH FLAGGED").unwrap();
        let err = conn.finish(|_| ()).unwrap_err();
        assert!(err.contains("C: a6 UID SEARCH FLAGGED"), "{err}");
        assert!(err.contains("S: a6 NO [CANNOT] not here"), "{err}");
        conn.logout().unwrap();
    }

    #[test]
    fn a_bye_outside_logout_and_a_closed_connection_are_errors() {
        let port = fake_server(|tag, command| match command {
            c if c.starts_with("LOGIN") => format!("{tag} OK logged in\r\n"),
            _ => "* BYE going away\r\n".to_string(),
        });
        let mut conn = Conn::connect(port, 64).unwrap();
        conn.greeting().unwrap();
        conn.send(&login_command("u@bench.test")).unwrap();
        conn.finish(|_| ()).unwrap();
        conn.send("NOOP").unwrap();
        let err = conn.finish(|_| ()).unwrap_err();
        assert!(err.contains("BYE"), "{err}");
    }

    #[test]
    fn a_transcript_keeps_the_first_and_last_lines() {
        let mut t = Transcript::default();
        t.start("a1 FETCH 1:* (FLAGS)");
        for i in 1..=100 {
            t.record(format!("* {i} FETCH (FLAGS ())").as_bytes());
        }
        let shown = t.show();
        assert!(shown.starts_with("  C: a1 FETCH 1:* (FLAGS)\n  S: * 1 FETCH"));
        assert!(shown.contains("S: * 8 FETCH") && !shown.contains("S: * 9 FETCH"));
        assert!(shown.contains("... 84 more lines ..."));
        assert!(shown.contains("S: * 93 FETCH") && shown.ends_with("S: * 100 FETCH (FLAGS ())"));
        assert!(!shown.contains("S: * 92 FETCH"));
        t.start("a2 NOOP");
        t.record(b"a2 OK done");
        assert_eq!(t.show(), "  C: a2 NOOP\n  S: a2 OK done");
    }

    #[test]
    fn the_report_gives_medians_ratios_and_memory_per_connection() {
        let sample = |ops: u64, p99: u64| {
            // `ops` operations over 10 s: all 1 ms but the slowest 2 %.
            let mut records: Vec<Record> = (0..ops)
                .map(|i| Record {
                    op: Op::ALL[(i % 9) as usize],
                    done: Duration::from_millis(2000 + i * 10_000 / ops),
                    latency: Duration::from_millis(if i % 50 == 0 { p99 } else { 1 }),
                })
                .collect();
            // Outside the window: not counted.
            records.push(Record {
                op: Op::Select,
                done: Duration::from_millis(1000),
                latency: Duration::from_secs(9),
            });
            let mut s =
                Sample::from_records(&records, Duration::from_secs(2), Duration::from_secs(10));
            s.cpu = Duration::from_millis(ops);
            s
        };
        let ours = vec![sample(30_000, 5), sample(20_000, 4), sample(10_000, 3)];
        let theirs = vec![sample(10_000, 10), sample(10_000, 8), sample(5_000, 6)];
        assert_eq!(ours[1].ops(), 20_000);
        assert_eq!(ours[1].p99_ms(), 4.0);
        let loads = [
            Series {
                kind: Kind::Ironpost,
                clients: 1,
                samples: ours,
            },
            Series {
                kind: Kind::Dovecot,
                clients: 1,
                samples: theirs,
            },
        ];
        let resident = |rss_kib, pss_kib, processes| Resident {
            rss_kib,
            pss_kib,
            processes,
            pss_unreadable: 0,
        };
        let idles = [
            IdleSample {
                kind: Kind::Ironpost,
                connections: 1000,
                before: resident(20_000, 18_000, 1),
                after: resident(35_000, 33_000, 1),
                opening: Duration::from_secs(30),
            },
            IdleSample {
                kind: Kind::Dovecot,
                connections: 1000,
                before: resident(30_000, 10_000, 8),
                after: resident(3_030_000, 1_010_000, 1008),
                opening: Duration::from_secs(20),
            },
        ];
        let options = parse(&[]).unwrap();
        let text = report(&loads, &idles, &options, &[vec![0; 1000], vec![0; 3000]]);
        assert!(text.contains("mean 2000"), "{text}");
        assert!(
            text.contains("| 1 | ironpost | 2000 | 1.00 | 4.00 | 1000 | 0.000 | 3000 / 5.00, 2000 / 4.00, 1000 / 3.00 |"),
            "{text}"
        );
        // Rates: 2000 / 1000 = 2.00, paired 3, 2, 2 -> 2.00; p99 4 / 8 = 0.50,
        // paired 0.5 each; CPU per op 1 ms for both.
        assert!(
            text.contains("| 1 | 2.00 | 2.00 | 0.50 | 0.50 | 1.00 | met |"),
            "{text}"
        );
        assert!(
            text.contains("| ironpost | 1000 | 1 -> 1 | 19.5 -> 34.2 | 15.0 | 17.6 -> 32.2 | 15.0 | 30.0 | met |"),
            "{text}"
        );
        assert!(text.contains("| dovecot | 1000 | 8 -> 1008 |"), "{text}");
        assert!(
            text.contains("| 3000.0 | 9.8 -> 986.3 | 1000.0 | 20.0 | - |"),
            "{text}"
        );
        assert!(text.contains("| FETCH n BODY[] | 1.00 / "), "{text}");
    }
}
