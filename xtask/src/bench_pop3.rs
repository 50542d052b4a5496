//! `cargo xtask bench pop3`: RETR of 1 000 messages of 10 KiB from
//! Ironpost and from Dovecot's POP3 server, in the same run, both on
//! loopback, by a POP3 client of ours.
//!
//! Each server gets a fresh directory once, with four accounts holding the
//! same 1 000 messages (not timed): Ironpost's come in over SMTP (one
//! session, pipelined `BDAT ... LAST` transactions to the four accounts);
//! Dovecot's are written straight into the Maildirs, as its own delivery
//! agent would write them (LF line ends, `S=` and `W=` sizes in the file
//! names). Every message starts with a `Delivered-To:` and a `Received:`
//! field of the same shape on both, so the listed sizes match to a few
//! bytes. Then, for each run, each server is started, measured and
//! stopped, the runs alternating between the servers:
//!
//! - 1 client, then 4 clients at once on 4 accounts: each logs in
//!   (USER/PASS), checks STAT and LIST, and waits; the clock starts when all
//!   are ready; each then sends `RETR 1` to `RETR 1000`, pipelined with up to
//!   [`WINDOW`] commands in flight, reads every message and checks that its
//!   unstuffed size is the listed one; the clock stops when the last client
//!   has its last message. QUIT comes after (Dovecot updates `\Seen` flags
//!   at QUIT, which is not part of the RETR phase);
//! - messages/second over that phase;
//! - server CPU seconds over that phase: the time on a CPU of every thread
//!   of the server's process tree, in nanoseconds from
//!   `/proc/PID/task/TID/schedstat` (Dovecot: the master and its pop3,
//!   auth, log and other processes; none starts or ends during the phase,
//!   the logins being over). The phase lasts a fraction of a second, too
//!   short for `/proc/PID/stat`'s 10 ms ticks per process;
//! - this process's CPU over the same phase (the clients), to show that
//!   the client is not what limits the rate.
//!
//! Both servers listen on a plain POP3 port with plaintext logins allowed,
//! so that TLS, which both would do through a library, does not dominate.
//! Dovecot runs as a private instance (its own configuration, base and state
//! directories; the system's instance is neither used nor touched) as a
//! child of this process; its mail processes run as `nobody`. Needs root for
//! that; `--only ironpost` does not.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::bench_util::{
    CpuReading, build_release, clean_up, clock_ticks, free_port, free_ports, ironpost_admin,
    log_tail, make_dir, median,
};
use crate::dovecot::{self, Kind, Pair, Server};

const DOMAIN: &str = "bench.test";
const PASSWORD: &str = "bench password";
/// Each message's size as sent, before the trace fields the server adds.
const SIZE: usize = 10 * 1024;
/// The accounts: as many as the most concurrent clients.
const ACCOUNTS: usize = 4;
/// The client counts measured.
const CLIENTS: [usize; 2] = [1, ACCOUNTS];
/// RETR commands a client has in flight at most.
const WINDOW: usize = 32;
/// How long delivery into Ironpost may take before it is a failure.
const DELIVERY_LIMIT: Duration = Duration::from_secs(600);

const USAGE: &str = "usage: cargo xtask bench pop3 [--runs N] [--quick] [--only ironpost|dovecot]";

struct Options {
    runs: usize,
    messages: usize,
    only: Option<Kind>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 5,
        messages: 1000,
        only: None,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--runs" => {
                let value = iter.next().ok_or("--runs needs a number")?;
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--runs {value}: not a positive number"))?;
            }
            "--quick" => {
                options.messages = 100;
                options.runs = 1;
            }
            "--only" => options.only = Some(Kind::parse(iter.next().map(String::as_str))?),
            other => return Err(format!("bench pop3: unknown option {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// What one phase of RETRs measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// From the first RETR sent until the last message read.
    elapsed: Duration,
    /// Server CPU (user + system) over `elapsed`.
    cpu: Duration,
    /// This process's CPU over `elapsed`: the clients.
    client_cpu: Duration,
    /// Messages retrieved, over all clients.
    messages: usize,
    /// Message octets retrieved (listed sizes), over all clients.
    octets: u64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    fn mib_per_second(&self) -> f64 {
        self.octets as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64()
    }

    fn cpu_per_1000(&self) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / self.messages as f64
    }
}

/// Runs the benchmark with the options in `args`.
pub(crate) fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    let kinds = Kind::chosen(options.only);
    if kinds.contains(&Kind::Dovecot) {
        dovecot::check("pop3")?;
    }
    let env = BenchEnv {
        ironpost: build_release()?,
        ticks: clock_ticks()?,
        scratch: std::env::temp_dir().join(format!("ironpost-bench-pop3.{}", std::process::id())),
        messages: (0..options.messages).map(message).collect(),
    };
    make_dir(&env.scratch)?;
    let result = bench(&env, &kinds, options.runs);
    clean_up(&env.scratch, &result);
    let results = result?;
    print!("{}", report(&results, options.runs, options.messages));
    Ok(())
}

/// What every measurement needs.
struct BenchEnv {
    ironpost: PathBuf,
    ticks: u64,
    scratch: PathBuf,
    /// The messages as sent.
    messages: Vec<Vec<u8>>,
}

/// One server's results for one client count.
struct Series {
    kind: Kind,
    clients: usize,
    /// Mean listed size of a message.
    listed: f64,
    samples: Vec<Sample>,
}

fn bench(env: &BenchEnv, kinds: &[Kind], runs: usize) -> Result<Vec<Series>> {
    let what = format!(
        "putting {} messages into each of {ACCOUNTS} accounts",
        env.messages.len()
    );
    let prepared =
        dovecot::prepare_each(&env.scratch, kinds, "pop3", &what, |kind, dir| match kind {
            Kind::Ironpost => prepare_ironpost(env, dir),
            Kind::Dovecot => prepare_dovecot(env, dir),
        })?;
    let mut results: Vec<Series> = Vec::new();
    for &kind in kinds {
        for clients in CLIENTS {
            results.push(Series {
                kind,
                clients,
                listed: 0.0,
                samples: Vec::new(),
            });
        }
    }
    // Runs alternate between the servers, so that a noisy neighbour slows
    // both alike.
    for run in 1..=runs {
        for (kind, dir) in &prepared {
            let mut server = start(env, *kind, dir)?;
            for clients in CLIENTS {
                let (sample, listed) = measure(env, &server, clients).map_err(|e| {
                    format!(
                        "{} with {clients} client(s), run {run}: {e}\n{}",
                        kind.name(),
                        log_tail(&server.log)
                    )
                })?;
                eprintln!(
                    "xtask: pop3 {} {clients} client(s) run {run}/{runs}: {}",
                    kind.name(),
                    describe(&sample)
                );
                let entry = results
                    .iter_mut()
                    .find(|r| r.kind == *kind && r.clients == clients)
                    .expect("an entry per kind and client count");
                entry.listed = listed;
                entry.samples.push(sample);
            }
            server.stop()?;
        }
    }
    Ok(results)
}

fn account(n: usize) -> String {
    format!("user{n}@{DOMAIN}")
}

/// Message `i`: a plain text message of exactly [`SIZE`] octets, lines of
/// 76 characters of letters and spaces.
fn message(i: usize) -> Vec<u8> {
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
    // A fixed pseudo-random text (xorshift), so that every message differs.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (i as u64 + 1);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while m.len() < SIZE {
        // Lines of 78 octets with their CRLF; the last two share what is
        // left so that none is shorter than its CRLF.
        let room = SIZE - m.len();
        let line = match room {
            81.. => 78,
            79..=80 => room - 40,
            _ => room,
        };
        for k in 0..line - 2 {
            let r = next();
            m.push(if k > 0 && r % 6 == 0 {
                b' '
            } else {
                b'a' + (r % 26) as u8
            });
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// The trace fields in front of Dovecot's copy, shaped like Ironpost's.
fn dovecot_trace(address: &str, i: usize) -> String {
    format!(
        "Delivered-To: {address}\r\n\
         Received: from [127.0.0.1] ([127.0.0.1])\r\n\
         \tby {DOMAIN} (Dovecot bench) with ESMTP id {:012X}.{}\r\n\
         \tfor <{address}>;\r\n\
         \tSun, 22 Nov 2026 12:00:01 +0000\r\n",
        0x6B03_1597_0000_u64 + i as u64,
        i + 1
    )
}

// ------------------------------------------------------------------ servers

/// The server `kind` started in `dir`, its POP3 port greeting.
fn start(env: &BenchEnv, kind: Kind, dir: &Path) -> Result<Server> {
    match kind {
        Kind::Ironpost => Ok(start_ironpost(env, dir)?.0),
        Kind::Dovecot => {
            let pop3 = free_port()?;
            let conf = dovecot::conf(dir, "pop3", pop3, "", "")?;
            Server::dovecot(dir, &conf, pop3, pop3_greets)
        }
    }
}

/// `ironpost serve` with a plain SMTP listener and a plain POP3 listener
/// that allows logins, on fresh ports; returns the server (its port is the
/// POP3 one) and the SMTP port.
fn start_ironpost(env: &BenchEnv, dir: &Path) -> Result<(Server, u16)> {
    let [smtp, pop3] = free_ports()?;
    let config = write_ironpost_config(dir, smtp, pop3)?;
    let server = Server::ironpost(&env.ironpost, dir, &config, pop3, pop3_greets)?;
    Ok((server, smtp))
}

fn write_ironpost_config(dir: &Path, smtp: u16, pop3: u16) -> Result<PathBuf> {
    let config = dir.join("ironpost.toml");
    let text = format!(
        "[server]\nhostname = \"{DOMAIN}\"\ndata_dir = {:?}\n\n\
         [smtp]\n\n\
         [[smtp.listeners]]\nname = \"smtp\"\nbind = [\"127.0.0.1:{smtp}\"]\nmode = \"plain\"\n\n\
         [pop3]\nallow_plaintext_auth = true\n\n\
         [[pop3.listeners]]\nname = \"pop3\"\nbind = [\"127.0.0.1:{pop3}\"]\nmode = \"plain\"\n\n\
         [imap]\nlisteners = []\n",
        dir.join("data").display().to_string()
    );
    fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    Ok(config)
}

/// Ironpost with the domain and the accounts, the messages delivered to
/// every account over SMTP; returns once the queue is empty and every
/// account's STAT counts them all.
fn prepare_ironpost(env: &BenchEnv, dir: &Path) -> Result {
    let [smtp, pop3] = free_ports()?;
    let config = write_ironpost_config(dir, smtp, pop3)?;
    ironpost_admin(&env.ironpost, &config, &["domain", "add", DOMAIN], b"")?;
    for n in 1..=ACCOUNTS {
        ironpost_admin(
            &env.ironpost,
            &config,
            &["account", "add", &account(n), "--password-stdin"],
            format!("{PASSWORD}\n").as_bytes(),
        )?;
    }
    let (mut server, smtp) = start_ironpost(env, dir)?;
    let config = dir.join("ironpost.toml");
    smtp_deliver(smtp, &env.messages)
        .map_err(|e| format!("delivering: {e}\n{}", log_tail(&server.log)))?;
    let deadline = Instant::now() + DELIVERY_LIMIT;
    loop {
        // Each question starts a process that opens the store; twice a
        // second is often enough.
        let queue = ironpost_admin(&env.ironpost, &config, &["queue", "list", "--json"], b"")?;
        if queue.trim() == "[]" {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not everything delivered after {DELIVERY_LIMIT:?}:\n{}",
                log_tail(&server.log)
            ));
        }
        thread::sleep(Duration::from_millis(500));
    }
    for n in 1..=ACCOUNTS {
        let client = Client::login(server.port, &account(n))?;
        if client.sizes.len() != env.messages.len() {
            return Err(format!(
                "{} holds {} messages, {} were sent",
                account(n),
                client.sizes.len(),
                env.messages.len()
            ));
        }
        client.quit()?;
    }
    server.stop()
}

/// Sends `messages` to every account in one SMTP session: pipelined
/// `MAIL`, `RCPT` per account and `BDAT <size> LAST` with the message,
/// written from a thread while this one reads the replies.
fn smtp_deliver(port: u16, messages: &[Vec<u8>]) -> Result {
    let stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("SMTP connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let mut replies = Lines::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let smtp_reply = |replies: &mut Lines, code: &str, what: &str| -> Result {
        loop {
            let line = replies.line()?;
            if !line.starts_with(code.as_bytes()) {
                return Err(format!(
                    "{what}: expected {code}, got {:?}",
                    String::from_utf8_lossy(line)
                ));
            }
            if line.get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    smtp_reply(&mut replies, "220", "greeting")?;
    writer
        .write_all(b"EHLO client.bench.test\r\n")
        .map_err(|e| e.to_string())?;
    smtp_reply(&mut replies, "250", "EHLO")?;
    let outgoing = messages.to_vec();
    let writing = thread::spawn(move || -> std::io::Result<()> {
        for message in &outgoing {
            let mut chunk = b"MAIL FROM:<sender@remote.example>\r\n".to_vec();
            for n in 1..=ACCOUNTS {
                chunk.extend_from_slice(format!("RCPT TO:<{}>\r\n", account(n)).as_bytes());
            }
            chunk.extend_from_slice(format!("BDAT {} LAST\r\n", message.len()).as_bytes());
            chunk.extend_from_slice(message);
            writer.write_all(&chunk)?;
        }
        writer.write_all(b"QUIT\r\n")
    });
    for i in 1..=messages.len() {
        smtp_reply(&mut replies, "250", &format!("MAIL of message {i}"))?;
        for n in 1..=ACCOUNTS {
            smtp_reply(&mut replies, "250", &format!("RCPT {n} of message {i}"))?;
        }
        smtp_reply(&mut replies, "250", &format!("BDAT of message {i}"))?;
    }
    smtp_reply(&mut replies, "221", "QUIT")?;
    writing
        .join()
        .map_err(|_| "the SMTP writer panicked".to_string())?
        .map_err(|e| format!("writing to the SMTP server: {e}"))
}

/// Dovecot's password file and Maildirs: each message in `cur/` with the
/// trace fields in front, LF line ends, and its sizes in the name
/// (`S=` on disk, `W=` with CRLF), as Dovecot's delivery agent writes them.
fn prepare_dovecot(env: &BenchEnv, dir: &Path) -> Result {
    let addresses: Vec<String> = (1..=ACCOUNTS).map(account).collect();
    dovecot::add_accounts(dir, addresses.iter().map(String::as_str), PASSWORD)?;
    for address in &addresses {
        let cur = dovecot::maildir(dir, address).join("cur");
        for (i, message) in env.messages.iter().enumerate() {
            let mut crlf = dovecot_trace(address, i).into_bytes();
            crlf.extend_from_slice(message);
            let lf = to_lf(&crlf);
            let name = format!(
                "{}.M{i}P1.bench,S={},W={}:2,",
                1_795_000_000 + i,
                lf.len(),
                crlf.len()
            );
            let path = cur.join(name);
            fs::write(&path, &lf).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    dovecot::give_to_nobody(dir)
}

fn to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// Whether a POP3 server on 127.0.0.1:`port` greets with `+OK`.
fn pop3_greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut lines = Lines::new(stream);
    let ok = lines.line().is_ok_and(|l| l.starts_with(b"+OK"));
    let _ = lines.send(b"QUIT\r\n");
    ok
}

// ------------------------------------------------------------------- client

/// Lines from a socket. `read_until` finds line ends with the standard
/// library's `memchr`, so the client stays cheap even in the debug build
/// that `cargo xtask` runs.
struct Lines {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Lines {
    fn new(stream: TcpStream) -> Lines {
        Lines {
            reader: BufReader::with_capacity(256 * 1024, stream),
            line: Vec::with_capacity(1024),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result {
        let mut stream = self.reader.get_ref();
        stream.write_all(bytes).map_err(|e| format!("writing: {e}"))
    }

    /// The next line without its CRLF.
    fn line(&mut self) -> Result<&[u8]> {
        self.line.clear();
        self.reader
            .read_until(b'\n', &mut self.line)
            .map_err(|e| format!("reading: {e}"))?;
        match self.line.strip_suffix(b"\n") {
            Some(line) => Ok(line.strip_suffix(b"\r").unwrap_or(line)),
            None => Err("the server closed the connection".into()),
        }
    }

    /// A `+OK` status line; an error with the line otherwise.
    fn ok(&mut self, what: &str) -> Result {
        let line = self.line()?;
        if line.starts_with(b"+OK") {
            Ok(())
        } else {
            Err(format!("{what}: {}", String::from_utf8_lossy(line)))
        }
    }

    /// The lines of a multi-line response up to the `.` line, each handed
    /// to `each` with its byte-stuffing undone.
    fn multiline(&mut self, mut each: impl FnMut(&[u8])) -> Result {
        loop {
            let line = self.line()?;
            match line.strip_prefix(b".") {
                Some([]) => return Ok(()),
                Some(unstuffed) => each(unstuffed),
                None => each(line),
            }
        }
    }
}

/// A logged-in POP3 session and its listing.
struct Client {
    lines: Lines,
    /// The size of each message, by number.
    sizes: Vec<u64>,
}

impl Client {
    /// Connects, logs in with USER/PASS, and reads STAT and LIST.
    fn login(port: u16, user: &str) -> Result<Client> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let mut lines = Lines::new(stream);
        lines.ok("greeting")?;
        let send = |lines: &mut Lines, command: &str| lines.send(command.as_bytes());
        send(&mut lines, &format!("USER {user}\r\n"))?;
        lines.ok("USER")?;
        send(&mut lines, &format!("PASS {PASSWORD}\r\n"))?;
        lines.ok("PASS")?;
        send(&mut lines, "STAT\r\n")?;
        let stat = String::from_utf8_lossy(lines.line()?).into_owned();
        let count: usize = stat
            .strip_prefix("+OK ")
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("STAT: {stat}"))?;
        send(&mut lines, "LIST\r\n")?;
        lines.ok("LIST")?;
        let mut sizes = Vec::with_capacity(count);
        let mut bad = None;
        lines.multiline(|line| {
            let text = String::from_utf8_lossy(line);
            let mut words = text.split_whitespace();
            match (words.next(), words.next().and_then(|s| s.parse().ok())) {
                (Some(n), Some(size)) if n == (sizes.len() + 1).to_string() => sizes.push(size),
                _ => bad = Some(text.into_owned()),
            }
        })?;
        if let Some(line) = bad {
            return Err(format!("LIST: unexpected line {line:?}"));
        }
        if sizes.len() != count {
            return Err(format!("STAT says {count} messages, LIST {}", sizes.len()));
        }
        Ok(Client { lines, sizes })
    }

    /// RETR of every message, up to [`WINDOW`] commands in flight; checks
    /// each message's size against the listing. Returns the time from the
    /// first command until the last message was read.
    fn retrieve_all(&mut self) -> Result<Duration> {
        let count = self.sizes.len();
        let start = Instant::now();
        let (mut sent, mut done) = (0, 0);
        let mut commands = String::new();
        while done < count {
            if sent < count && sent - done <= WINDOW / 2 {
                commands.clear();
                for n in sent + 1..=count.min(done + WINDOW) {
                    let _ = write!(commands, "RETR {n}\r\n");
                    sent = n;
                }
                self.lines.send(commands.as_bytes())?;
            }
            self.lines.ok(&format!("RETR {}", done + 1))?;
            let mut size = 0u64;
            self.lines.multiline(|line| size += line.len() as u64 + 2)?;
            if size != self.sizes[done] {
                return Err(format!(
                    "RETR {} gave {size} octets, LIST said {}",
                    done + 1,
                    self.sizes[done]
                ));
            }
            done += 1;
        }
        Ok(start.elapsed())
    }

    fn quit(mut self) -> Result {
        self.lines.send(b"QUIT\r\n")?;
        self.lines.ok("QUIT")
    }
}

/// One measurement: `clients` sessions on as many accounts, all logged in
/// before the clock starts; the server's CPU time over the RETR phase.
/// Returns the sample and the mean listed message size.
fn measure(env: &BenchEnv, server: &Server, clients: usize) -> Result<(Sample, f64)> {
    let ready = Arc::new(Barrier::new(clients + 1));
    let go = Arc::new(Barrier::new(clients + 1));
    let done = Arc::new(Barrier::new(clients + 1));
    let quit = Arc::new(Barrier::new(clients + 1));
    let port = server.port;
    let threads: Vec<_> = (1..=clients)
        .map(|n| {
            let (ready, go, done, quit) = (ready.clone(), go.clone(), done.clone(), quit.clone());
            thread::spawn(move || -> Result<(Duration, u64, usize)> {
                // Every client takes part in every barrier, also after an
                // error, so that the others are not left waiting.
                let mut client = Client::login(port, &account(n));
                ready.wait();
                go.wait();
                let retrieved = match &mut client {
                    Ok(c) => c.retrieve_all(),
                    Err(e) => Err(e.clone()),
                };
                done.wait();
                quit.wait();
                let elapsed = retrieved?;
                let client = client?;
                let octets = client.sizes.iter().sum();
                let count = client.sizes.len();
                client.quit()?;
                Ok((elapsed, octets, count))
            })
        })
        .collect();
    ready.wait();
    let before = CpuReading::now(server.pid(), env.ticks);
    let start = Instant::now();
    go.wait();
    done.wait();
    let elapsed = start.elapsed();
    let used = CpuReading::now(server.pid(), env.ticks).since(&before);
    quit.wait();
    let mut octets = 0;
    let mut messages = 0;
    for thread in threads {
        let (_, o, m) = thread
            .join()
            .map_err(|_| "a client thread panicked".to_string())??;
        octets += o;
        messages += m;
    }
    if messages != clients * env.messages.len() {
        return Err(format!(
            "{messages} messages retrieved, {} expected",
            clients * env.messages.len()
        ));
    }
    let sample = Sample {
        elapsed,
        cpu: used.server,
        client_cpu: used.clients,
        messages,
        octets,
    };
    Ok((sample, octets as f64 / messages as f64))
}

// ------------------------------------------------------------------- report

fn describe(s: &Sample) -> String {
    format!(
        "{:.0} msg/s, {:.1} MiB/s, server CPU {:.3} s ({:.0} ms / 1000 msg), client CPU {:.3} s, {:.3} s",
        s.rate(),
        s.mib_per_second(),
        s.cpu.as_secs_f64(),
        s.cpu_per_1000() * 1000.0,
        s.client_cpu.as_secs_f64(),
        s.elapsed.as_secs_f64()
    )
}

/// The results as Markdown tables: medians with every run, and the ratios.
fn report(results: &[Series], runs: usize, messages: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\npop3: RETR of {messages} messages of {SIZE} octets (as sent; the listed size adds the trace fields)\n\
         per client, pipelined ({WINDOW} in flight), over plain TCP on 127.0.0.1 with USER/PASS and no TLS\n\
         on both servers, so that TLS cost does not dominate; N clients use N accounts at once.\n\
         Median of {runs} run(s); CPU = the server's process tree, user + system, over the RETR phase;\n\
         client CPU = this process (the clients), over the same phase.\n"
    );
    let _ = writeln!(
        out,
        "| clients | server | messages | listed octets/msg | msg/s | MiB/s | server CPU s | CPU ms / 1000 msg | client CPU s | runs: msg/s / CPU s |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        let m = |f: &dyn Fn(&Sample) -> f64| median(r.samples.iter().map(f).collect());
        let all: Vec<String> = r
            .samples
            .iter()
            .map(|s| format!("{:.0} / {:.3}", s.rate(), s.cpu.as_secs_f64()))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.3} | {:.0} | {:.3} | {} |",
            r.clients,
            r.kind.name(),
            r.samples.first().map_or(0, |s| s.messages),
            r.listed,
            m(&|s| s.rate()),
            m(&|s| s.mib_per_second()),
            m(&|s| s.cpu.as_secs_f64()),
            m(&|s| s.cpu_per_1000() * 1000.0),
            m(&|s| s.client_cpu.as_secs_f64()),
            all.join(", ")
        );
    }
    let pairs = Pair::all(results, |r| (r.kind, r.clients, &r.samples[..]));
    if !pairs.is_empty() {
        let _ = writeln!(
            out,
            "\nRatios ironpost/dovecot of the medians; \"paired\" is the median of the ratios of runs\n\
             made one after the other (run i of Ironpost, then run i of Dovecot).\n\n\
             | clients | msg/s | paired | CPU per message | paired |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
        for pair in pairs {
            let rate = |s: &Sample| s.rate();
            let cpu = |s: &Sample| s.cpu_per_1000();
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                pair.clients,
                pair.of_medians(rate),
                pair.paired(rate),
                pair.of_medians(cpu),
                pair.paired(cpu)
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
    fn messages_have_the_size_and_crlf_lines_of_at_most_78() {
        for i in 0..1000 {
            let m = message(i);
            assert_eq!(m.len(), SIZE);
            assert!(m.ends_with(b"\r\n"));
            for line in m.split(|&b| b == b'\n') {
                assert!(line.len() <= 77, "{}", String::from_utf8_lossy(line));
                assert!(line.is_empty() || line.ends_with(b"\r"));
                assert!(!line.starts_with(b"."));
            }
        }
        assert_ne!(message(1), message(2));
    }

    #[test]
    fn lf_drops_only_the_cr_of_crlf() {
        assert_eq!(to_lf(b"a\r\nb\rc\n\r\n\r"), b"a\nb\rc\n\n\r");
    }

    /// A scripted server on a loopback socket: answers the login, STAT and
    /// LIST, then each RETR with a message whose lines are byte-stuffed.
    fn fake_server(body_lines: &'static [&'static str], listed: u64) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut lines = Lines::new(stream);
            out.write_all(b"+OK ready\r\n").unwrap();
            loop {
                let Ok(line) = lines.line() else { return };
                let command = String::from_utf8_lossy(line).into_owned();
                let reply = match command.split(' ').next().unwrap() {
                    "USER" | "PASS" => "+OK\r\n".to_string(),
                    "STAT" => format!("+OK 2 {}\r\n", 2 * listed),
                    "LIST" => format!("+OK\r\n1 {listed}\r\n2 {listed}\r\n.\r\n"),
                    "RETR" => {
                        let mut r = "+OK message follows\r\n".to_string();
                        for l in body_lines {
                            let stuffed = if l.starts_with('.') { "." } else { "" };
                            r.push_str(&format!("{stuffed}{l}\r\n"));
                        }
                        r + ".\r\n"
                    }
                    "QUIT" => "+OK bye\r\n".to_string(),
                    _ => "-ERR what\r\n".to_string(),
                };
                out.write_all(reply.as_bytes()).unwrap();
            }
        });
        port
    }

    #[test]
    fn the_client_counts_unstuffed_octets_against_the_listing() {
        // "a", "" and ".b" as sent: 3 + 2 + 4 octets.
        let port = fake_server(&["a", "", ".b"], 9);
        let mut client = Client::login(port, "u").unwrap();
        assert_eq!(client.sizes, [9, 9]);
        client.retrieve_all().unwrap();
        client.quit().unwrap();

        let port = fake_server(&["a", "", ".b"], 10);
        let mut client = Client::login(port, "u").unwrap();
        let err = client.retrieve_all().unwrap_err();
        assert!(err.contains("RETR 1 gave 9 octets, LIST said 10"), "{err}");
    }

    #[test]
    fn the_report_gives_medians_and_both_ratios() {
        let sample = |ms: u64, cpu_ms: u64| Sample {
            elapsed: Duration::from_millis(ms),
            cpu: Duration::from_millis(cpu_ms),
            client_cpu: Duration::from_millis(ms / 2),
            messages: 1000,
            octets: 1000 * 10_500,
        };
        // Ironpost 4000, 2000, 1000 msg/s; Dovecot 1000, 1000, 500 msg/s.
        let ours = vec![sample(250, 100), sample(500, 200), sample(1000, 300)];
        let theirs = vec![sample(1000, 400), sample(1000, 400), sample(2000, 600)];
        let results = [
            Series {
                kind: Kind::Ironpost,
                clients: 1,
                listed: 10_500.0,
                samples: ours,
            },
            Series {
                kind: Kind::Dovecot,
                clients: 1,
                listed: 10_480.0,
                samples: theirs,
            },
        ];
        let text = report(&results, 3, 1000);
        assert!(
            text.contains(
                "| 1 | ironpost | 1000 | 10500 | 2000 | 20.0 | 0.200 | 200 | 0.250 | 4000 / 0.100, 2000 / 0.200, 1000 / 0.300 |"
            ),
            "{text}"
        );
        // Rates: medians 2000 / 1000 = 2.00; run ratios 4, 2, 2 -> 2.00.
        // CPU per message: medians 0.200 / 0.400 = 0.50; runs 0.25, 0.5, 0.5 -> 0.50.
        assert!(text.contains("| 1 | 2.00 | 2.00 | 0.50 | 0.50 |"), "{text}");
    }
}
