//! `cargo xtask bench smtp`: Postfix's `smtp-source` against Ironpost and
//! against Postfix's own smtpd delivering to Maildir, in the same run, both
//! on loopback.
//!
//! Each case (1 or 20 sessions, 1 KiB or 100 KiB messages) starts each
//! server fresh in a temporary directory, as a child of this process, and
//! measures from just before `smtp-source` starts until every message is in
//! a mailbox (the server's queue empty):
//!
//! - messages/second, for the acceptance alone (`smtp-source`'s wall time)
//!   and for the whole way into the mailboxes;
//! - server CPU seconds per 1 000 messages: utime + stime of the server's
//!   whole process tree, sampled before and after from `/proc/PID/stat`.
//!   A process that exits in between is counted through its parent's
//!   cutime + cstime (Postfix's master reaps its daemons);
//! - peak RSS: `VmHWM` of the server; for Postfix the sum over its processes
//!   alive at the end of the case, beside the sum of their `Pss` (which
//!   shares the common pages out instead of counting them in every process).
//!
//! Postfix runs as a private instance (its own config, queue and data
//! directories in the case's temporary directory; the system's instance is
//! neither used nor touched), its master started directly so that it is our
//! child; SIGTERM to the master stops every daemon. Needs root.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bench_util::{
    Proc, build_release, clock_ticks, free_port, ironpost_admin, is_root, log_tail, median,
    processes, stop, tree, tree_cpu_ticks, user_ids, wait_ready,
};
use crate::{Result, tools};

const DOMAIN: &str = "bench.test";
const SENDER: &str = "sender@bench.test";
const RECIPIENT: &str = "user@bench.test";
/// How long a case may take to deliver everything before it is a failure.
const DELIVERY_LIMIT: Duration = Duration::from_secs(600);

/// One load: `smtp-source -s sessions -m messages -l size`.
#[derive(Debug, Clone, Copy)]
struct Case {
    sessions: u32,
    size: u32,
    messages: u32,
}

impl Case {
    fn label(&self) -> String {
        format!("{:>2} x {:>3} KiB", self.sessions, self.size / 1024)
    }
}

/// The cases; message counts chosen so that each takes a few seconds on a
/// 2-core machine. `--quick` sends a tenth.
fn cases(quick: bool) -> Vec<Case> {
    let scale = if quick { 10 } else { 1 };
    [
        (1, 1024, 1000),
        (20, 1024, 4000),
        (1, 102_400, 500),
        (20, 102_400, 1500),
    ]
    .into_iter()
    .map(|(sessions, size, messages)| Case {
        sessions,
        size,
        messages: messages / scale,
    })
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ironpost,
    Postfix,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ironpost => "ironpost",
            Kind::Postfix => "postfix",
        }
    }
}

/// What one run of one case on one server measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// `smtp-source`'s wall time.
    accept: Duration,
    /// From `smtp-source`'s start until every message is delivered.
    total: Duration,
    /// Server CPU (user + system) over `total`.
    cpu: Duration,
    /// Peak RSS in KiB (Postfix: summed over its processes).
    rss_kib: u64,
    /// PSS at the end in KiB, summed over the server's processes.
    pss_kib: u64,
    /// The server's processes at the end.
    processes: usize,
}

struct Options {
    runs: usize,
    quick: bool,
    only: Option<Kind>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 3,
        quick: false,
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
                options.quick = true;
                options.runs = 1;
            }
            "--only" => {
                options.only = match iter.next().map(String::as_str) {
                    Some("ironpost") => Some(Kind::Ironpost),
                    Some("postfix") => Some(Kind::Postfix),
                    _ => return Err("--only takes ironpost or postfix".into()),
                }
            }
            other => return Err(format!("bench smtp: unknown option {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

const USAGE: &str = "usage: cargo xtask bench smtp [--runs N] [--quick] [--only ironpost|postfix]";

/// Runs the benchmark with the options in `args`.
pub(crate) fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    if !is_root() {
        return Err(
            "bench smtp needs root: Postfix's master binds ports and drops privileges".into(),
        );
    }
    let absent: Vec<&str> = tools::missing(tools::REQUIRED)
        .iter()
        .filter(|t| t.package == "postfix")
        .map(|t| t.program)
        .collect();
    if !absent.is_empty() {
        return Err(format!(
            "{} missing: apt-get install -y postfix",
            absent.join(", ")
        ));
    }
    let env = BenchEnv {
        ironpost: build_release()?,
        postfix_daemons: postfix_daemon_directory()?,
        ticks: clock_ticks()?,
        scratch: std::env::temp_dir().join(format!("ironpost-bench-smtp.{}", std::process::id())),
    };
    fs::create_dir_all(&env.scratch).map_err(|e| format!("{}: {e}", env.scratch.display()))?;
    fs::set_permissions(&env.scratch, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", env.scratch.display()))?;

    let kinds: Vec<Kind> = [Kind::Ironpost, Kind::Postfix]
        .into_iter()
        .filter(|k| options.only.is_none_or(|o| o == *k))
        .collect();
    let mut results: Vec<(Case, Kind, Vec<Sample>)> = Vec::new();
    for case in cases(options.quick) {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        // Runs alternate between the servers, so that a noisy neighbour
        // slows both alike.
        for run in 1..=options.runs {
            for (k, kind) in kinds.iter().enumerate() {
                let dir = env.scratch.join(format!(
                    "{}-{}k-{}-{run}",
                    case.sessions,
                    case.size / 1024,
                    kind.name()
                ));
                eprintln!(
                    "xtask: smtp {} {} run {run}/{}: {} messages",
                    case.label(),
                    kind.name(),
                    options.runs,
                    case.messages
                );
                let sample = measure(&env, *kind, case, &dir).map_err(|e| {
                    format!(
                        "{} {} run {run}: {e} (files kept in {})",
                        kind.name(),
                        case.label(),
                        dir.display()
                    )
                })?;
                eprintln!("xtask:   {}", describe(case, &sample));
                let _ = fs::remove_dir_all(&dir);
                samples[k].push(sample);
            }
        }
        for (kind, s) in kinds.iter().zip(samples) {
            results.push((case, *kind, s));
        }
    }
    let _ = fs::remove_dir_all(&env.scratch);
    print!("{}", report(&results, options.runs));
    Ok(())
}

/// What every measurement needs.
struct BenchEnv {
    ironpost: PathBuf,
    postfix_daemons: PathBuf,
    ticks: u64,
    scratch: PathBuf,
}

/// Runs `case` once against a fresh `kind` server in `dir`.
fn measure(env: &BenchEnv, kind: Kind, case: Case, dir: &Path) -> Result<Sample> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut server = match kind {
        Kind::Ironpost => Server::ironpost(env, dir)?,
        Kind::Postfix => Server::postfix(env, dir)?,
    };
    let before = tree_cpu_ticks(server.pid());
    let start = Instant::now();
    let source = Command::new("smtp-source")
        .args(["-s", &case.sessions.to_string()])
        .args(["-m", &case.messages.to_string()])
        .args(["-l", &case.size.to_string()])
        .args(["-f", SENDER, "-t", RECIPIENT, "-M", "client.bench.test"])
        .arg(format!("127.0.0.1:{}", server.port))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start smtp-source: {e}"))?;
    let accept = start.elapsed();
    if !source.status.success() {
        return Err(format!(
            "smtp-source failed ({}): {}{}\nserver log:\n{}",
            source.status,
            String::from_utf8_lossy(&source.stdout),
            String::from_utf8_lossy(&source.stderr),
            server.log_tail()
        ));
    }
    server.wait_delivered(case)?;
    let total = start.elapsed();
    let after = tree_cpu_ticks(server.pid());
    let memory = tree_memory(server.pid());
    server.check_delivered(case)?;
    server.stop()?;
    Ok(Sample {
        accept,
        total,
        cpu: Duration::from_secs_f64(after.saturating_sub(before) as f64 / env.ticks as f64),
        rss_kib: memory.hwm_kib,
        pss_kib: memory.pss_kib,
        processes: memory.processes,
    })
}

/// A server under test, a child of this process; dropping it stops it.
struct Server {
    kind: Kind,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Ironpost: the configuration file.
    config: PathBuf,
    ironpost: PathBuf,
}

impl Server {
    /// Ironpost with one plain SMTP listener, the domain and the account.
    fn ironpost(env: &BenchEnv, dir: &Path) -> Result<Server> {
        let port = free_port()?;
        let config = dir.join("ironpost.toml");
        let text = format!(
            "[server]\nhostname = \"{DOMAIN}\"\ndata_dir = {:?}\n\n[smtp]\n\n\
             [[smtp.listeners]]\nname = \"smtp\"\nbind = [\"127.0.0.1:{port}\"]\nmode = \"plain\"\n\
             [pop3]\nlisteners = []\n[imap]\nlisteners = []\n",
            dir.join("data").display().to_string()
        );
        fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let admin = |args: &[&str], input: &[u8]| -> Result {
            ironpost_admin(&env.ironpost, &config, args, input).map(drop)
        };
        admin(&["domain", "add", DOMAIN], b"")?;
        admin(
            &["account", "add", RECIPIENT, "--password-stdin"],
            b"bench password\n",
        )?;
        let log = fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&env.ironpost)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start ironpost serve: {e}"))?;
        let mut server = Server {
            kind: Kind::Ironpost,
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            config,
            ironpost: env.ironpost.clone(),
        };
        server.wait_ready(|s| s.log().contains("server ready"))?;
        Ok(server)
    }

    /// A private Postfix whose smtpd accepts mail for `bench.test` and whose
    /// virtual(8) delivers it to `maildir/bench.test/user/` (owned by nobody).
    fn postfix(env: &BenchEnv, dir: &Path) -> Result<Server> {
        let port = free_port()?;
        let conf = dir.join("conf");
        let maildir = dir.join("maildir");
        for d in [&conf, &maildir, &dir.join("queue")] {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let (uid, gid) = user_ids("nobody").ok_or("no user nobody in /etc/passwd")?;
        std::os::unix::fs::chown(&maildir, Some(uid), Some(gid))
            .map_err(|e| format!("{}: {e}", maildir.display()))?;
        let write = |name: &str, text: String| {
            fs::write(conf.join(name), text).map_err(|e| format!("{name}: {e}"))
        };
        write("vmailbox", format!("{RECIPIENT} {DOMAIN}/user/\n"))?;
        write("main.cf", postfix_main_cf(dir, uid, gid))?;
        write("master.cf", postfix_master_cf(port))?;
        // `postfix check` creates the queue and data directories with the
        // owners and modes Postfix wants.
        let check = Command::new("postfix")
            .arg("-c")
            .arg(&conf)
            .arg("check")
            .output()
            .map_err(|e| format!("cannot run postfix check: {e}"))?;
        if !check.status.success() {
            return Err(format!(
                "postfix check: {}{}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr),
                fs::read_to_string(dir.join("maillog")).unwrap_or_default()
            ));
        }
        // Should this process be killed before it stops the master, the
        // master ends itself after an hour.
        let child = Command::new(env.postfix_daemons.join("master"))
            .arg("-c")
            .arg(&conf)
            .args(["-e", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Postfix's master: {e}"))?;
        let mut server = Server {
            kind: Kind::Postfix,
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            config: conf,
            ironpost: env.ironpost.clone(),
        };
        server.wait_ready(|s| greets(s.port))?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(match self.kind {
            Kind::Ironpost => "server.log",
            Kind::Postfix => "maillog",
        })
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_path())
    }

    fn wait_ready(&mut self, ready: impl Fn(&Server) -> bool) -> Result {
        let log = self.log_path();
        let mut child = self.child.take();
        let waited = wait_ready(&mut child, self.kind.name(), &log, || ready(self));
        self.child = child;
        waited
    }

    /// Waits until the queue is empty (and, for Postfix, every message is
    /// in the Maildir). Ironpost's queue is asked for (`queue list --json`
    /// gives `[]`) once its log counts every delivery, and once a second
    /// regardless: each question starts a process that opens the store, so
    /// asking every few milliseconds would load the machine being measured.
    fn wait_delivered(&self, case: Case) -> Result {
        let deadline = Instant::now() + DELIVERY_LIMIT;
        let mut last_asked = Instant::now();
        loop {
            let done = match self.kind {
                Kind::Ironpost => {
                    let logged = logged_deliveries(&self.log()).unwrap_or(0);
                    if logged >= u64::from(case.messages)
                        || last_asked.elapsed() >= Duration::from_secs(1)
                    {
                        last_asked = Instant::now();
                        self.ironpost_queue()?.trim() == "[]"
                    } else {
                        false
                    }
                }
                Kind::Postfix => {
                    postfix_queued(&self.dir.join("queue")) == 0
                        && maildir_count(&self.dir.join("maildir").join(DOMAIN).join("user"))
                            >= case.messages as usize
                }
            };
            if done {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not everything delivered after {DELIVERY_LIMIT:?}:\n{}",
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn ironpost_queue(&self) -> Result<String> {
        let out = Command::new(&self.ironpost)
            .arg("--config")
            .arg(&self.config)
            .args(["queue", "list", "--json"])
            .output()
            .map_err(|e| format!("cannot run ironpost queue list: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ironpost queue list: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Checks that the mailbox got every message: Postfix's Maildir holds
    /// one file per message; Ironpost's delivery passes (its log) delivered
    /// one copy per message, and the account holds at least the payload
    /// bytes of them all.
    fn check_delivered(&self, case: Case) -> Result {
        let sent = u64::from(case.messages);
        match self.kind {
            Kind::Postfix => {
                let n = maildir_count(&self.dir.join("maildir").join(DOMAIN).join("user"));
                if n as u64 != sent {
                    return Err(format!("{n} messages in the Maildir, {sent} sent"));
                }
            }
            Kind::Ironpost => {
                let delivered = logged_deliveries(&self.log()).ok_or(
                    "no \"delivery pass ... delivered=N\" line in the server log to count deliveries by",
                )?;
                if delivered != sent {
                    return Err(format!(
                        "the server log counts {delivered} deliveries, {sent} sent"
                    ));
                }
                let out = Command::new(&self.ironpost)
                    .arg("--config")
                    .arg(&self.config)
                    .args(["account", "show", RECIPIENT, "--json"])
                    .output()
                    .map_err(|e| format!("cannot run ironpost account show: {e}"))?;
                let text = String::from_utf8_lossy(&out.stdout);
                let used = json_number(&text, "used_bytes")
                    .ok_or_else(|| format!("no used_bytes in {text}"))?;
                let least = sent * u64::from(case.size);
                if used < least {
                    return Err(format!(
                        "{RECIPIENT} holds {used} bytes, less than the {least} bytes of payload sent"
                    ));
                }
            }
        }
        Ok(())
    }

    /// SIGTERM, then waits (30 s at most) for the process and, for
    /// Postfix, for every daemon of the master's process group.
    fn stop(&mut self) -> Result {
        stop(&mut self.child, self.kind.name())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Postfix's main.cf for the bench: defaults except what a private instance
/// on loopback needs (directories, no local delivery, no TLS, no syslog).
fn postfix_main_cf(dir: &Path, uid: u32, gid: u32) -> String {
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = mx.postfix.test\n\
         mydomain = postfix.test\n\
         mydestination =\n\
         relay_domains =\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         smtpd_relay_restrictions = permit_mynetworks, reject\n\
         smtpd_tls_security_level = none\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         biff = no\n\
         maillog_file = {d}/maillog\n\
         maillog_file_prefixes = {d}\n\
         virtual_mailbox_domains = {DOMAIN}\n\
         virtual_mailbox_base = {d}/maildir\n\
         virtual_mailbox_maps = texthash:{d}/conf/vmailbox\n\
         virtual_uid_maps = static:{uid}\n\
         virtual_gid_maps = static:{gid}\n",
        d = dir.display()
    )
}

/// master.cf: the smtpd on `port` and the daemons that deliver, none chrooted.
fn postfix_master_cf(port: u16) -> String {
    [
        &format!("127.0.0.1:{port} inet n - n - - smtpd") as &str,
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "virtual unix - n n - - virtual",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    .iter()
    .map(|s| format!("{s}\n"))
    .collect()
}

/// Messages in Postfix's queue directories that hold undelivered mail.
fn postfix_queued(queue: &Path) -> usize {
    fn files(dir: &Path) -> usize {
        fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => files(&e.path()),
                    Ok(t) if t.is_file() => 1,
                    _ => 0,
                })
                .sum()
        })
    }
    ["maildrop", "incoming", "active", "deferred", "hold"]
        .iter()
        .map(|q| files(&queue.join(q)))
        .sum()
}

fn maildir_count(maildir: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| fs::read_dir(maildir.join(sub)).ok())
        .map(|entries| entries.count())
        .sum()
}

/// Whether an SMTP server on 127.0.0.1:`port` greets with `220`.
fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    let ok = reader.read_line(&mut line).is_ok() && line.starts_with("220");
    let _ = (&stream).write_all(b"QUIT\r\n");
    ok
}

fn postfix_daemon_directory() -> Result<PathBuf> {
    let out = Command::new("postconf")
        .args(["-d", "-h", "daemon_directory"])
        .output()
        .map_err(|e| format!("cannot run postconf: {e}"))?;
    if !out.status.success() {
        return Err("postconf -d daemon_directory failed".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The sum of `delivered=N` over the `delivery pass` lines of Ironpost's
/// log; `None` when there is no such line.
fn logged_deliveries(log: &str) -> Option<u64> {
    let counts: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("delivery pass"))
        .filter_map(|l| {
            let value = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("delivered="))?;
            value.parse().ok()
        })
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// The number after `"key":` in a JSON text (enough for the CLI's objects).
fn json_number(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

struct Memory {
    hwm_kib: u64,
    pss_kib: u64,
    processes: usize,
}

/// Sums of `VmHWM` and `Pss` over `root`'s live process tree.
fn tree_memory(root: u32) -> Memory {
    let all = processes();
    let live: Vec<&Proc> = tree(&all, root).into_iter().filter(|p| !p.zombie).collect();
    let field = |path: String, key: &str| -> u64 {
        fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    };
    Memory {
        hwm_kib: live
            .iter()
            .map(|p| field(format!("/proc/{}/status", p.pid), "VmHWM:"))
            .sum(),
        pss_kib: live
            .iter()
            .map(|p| field(format!("/proc/{}/smaps_rollup", p.pid), "Pss:"))
            .sum(),
        processes: live.len(),
    }
}

fn rate(case: Case, d: Duration) -> f64 {
    f64::from(case.messages) / d.as_secs_f64()
}

fn cpu_per_1000(case: Case, s: &Sample) -> f64 {
    s.cpu.as_secs_f64() * 1000.0 / f64::from(case.messages)
}

fn describe(case: Case, s: &Sample) -> String {
    format!(
        "accepted {:.0} msg/s, delivered {:.0} msg/s, CPU {:.2} s/1000 msg, peak RSS {:.1} MiB, PSS {:.1} MiB, {} processes",
        rate(case, s.accept),
        rate(case, s.total),
        cpu_per_1000(case, s),
        s.rss_kib as f64 / 1024.0,
        s.pss_kib as f64 / 1024.0,
        s.processes
    )
}

/// The medians of one server in one case.
struct Medians {
    accepted: f64,
    delivered: f64,
    cpu: f64,
    rss_mib: f64,
    pss_mib: f64,
}

fn medians(case: Case, samples: &[Sample]) -> Medians {
    let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Medians {
        accepted: m(&|s| rate(case, s.accept)),
        delivered: m(&|s| rate(case, s.total)),
        cpu: m(&|s| cpu_per_1000(case, s)),
        rss_mib: m(&|s| s.rss_kib as f64 / 1024.0),
        pss_mib: m(&|s| s.pss_kib as f64 / 1024.0),
    }
}

/// The results as Markdown tables: medians, every run, and the ratios.
fn report(results: &[(Case, Kind, Vec<Sample>)], runs: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsmtp: smtp-source on 127.0.0.1, one message per connection; median of {runs} run(s).\n\
         delivered = until every message is in the mailbox; CPU = server process tree, user + system;\n\
         RSS = VmHWM (Postfix: summed over its processes alive at the end), PSS = summed Pss at the end.\n"
    );
    let _ = writeln!(
        out,
        "| sessions x size | server | messages | accepted msg/s | delivered msg/s | CPU s / 1000 msg | peak RSS MiB | PSS MiB | runs: delivered msg/s, CPU s / 1000 |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---|");
    for (case, kind, samples) in results {
        let m = medians(*case, samples);
        let all: Vec<String> = samples
            .iter()
            .map(|s| {
                format!(
                    "{:.0} / {:.2}",
                    rate(*case, s.total),
                    cpu_per_1000(*case, s)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {} |",
            case.label(),
            kind.name(),
            case.messages,
            m.accepted,
            m.delivered,
            m.cpu,
            m.rss_mib,
            m.pss_mib,
            all.join(", ")
        );
    }
    let pairs: Vec<(Case, &[Sample], &[Sample])> = results
        .iter()
        .filter(|(_, kind, _)| *kind == Kind::Ironpost)
        .filter_map(|(case, _, ours)| {
            let theirs = results.iter().find(|(c, k, _)| {
                *k == Kind::Postfix && c.sessions == case.sessions && c.size == case.size
            })?;
            Some((*case, ours.as_slice(), theirs.2.as_slice()))
        })
        .collect();
    if !pairs.is_empty() {
        let _ = writeln!(
            out,
            "\nRatios ironpost/postfix of the medians; \"paired\" is the median of the ratios of runs\n\
             made one after the other (run i of Ironpost, then run i of Postfix).\n\n\
             | sessions x size | delivered msg/s | paired | CPU per msg | paired | peak RSS | PSS |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for (case, ours, theirs) in pairs {
            let (m_ours, m_theirs) = (medians(case, ours), medians(case, theirs));
            let paired = |f: &dyn Fn(&Sample) -> f64| {
                median(ours.iter().zip(theirs).map(|(a, b)| f(a) / f(b)).collect())
            };
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                case.label(),
                m_ours.delivered / m_theirs.delivered,
                paired(&|s| rate(case, s.total)),
                m_ours.cpu / m_theirs.cpu,
                paired(&|s| cpu_per_1000(case, s)),
                m_ours.rss_mib / m_theirs.rss_mib,
                m_ours.pss_mib / m_theirs.pss_mib
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_medians_and_both_ratios() {
        let case = Case {
            sessions: 20,
            size: 1024,
            messages: 1000,
        };
        let sample = |total_ms: u64, cpu_ms: u64| Sample {
            accept: Duration::from_millis(total_ms / 2),
            total: Duration::from_millis(total_ms),
            cpu: Duration::from_millis(cpu_ms),
            rss_kib: 10240,
            pss_kib: 5120,
            processes: 1,
        };
        // Ironpost: 1000, 500, 250 msg/s; Postfix: 500, 500, 100 msg/s.
        let ours = vec![sample(1000, 500), sample(2000, 600), sample(4000, 700)];
        let theirs = vec![sample(2000, 1000), sample(2000, 1000), sample(10_000, 2000)];
        let text = report(
            &[(case, Kind::Ironpost, ours), (case, Kind::Postfix, theirs)],
            3,
        );
        assert!(
            text.contains("| 20 x   1 KiB | ironpost | 1000 | 1000 | 500 | 0.60 | 10.0 | 5.0 | 1000 / 0.50, 500 / 0.60, 250 / 0.70 |"),
            "{text}"
        );
        // Medians 500 / 500 = 1.00; run ratios 2.0, 1.0, 2.5 -> 2.00.
        // CPU medians 0.60 / 1.00; run ratios 0.5, 0.6, 0.35 -> 0.50.
        assert!(
            text.contains("| 20 x   1 KiB | 1.00 | 2.00 | 0.60 | 0.50 | 1.00 | 1.00 |"),
            "{text}"
        );
    }

    #[test]
    fn deliveries_counted_from_the_log() {
        let log = "2026-11-22T15:38:12Z  INFO server ready hostname=\"bench.test\"\n\
                   2026-11-22T15:38:12Z  INFO delivery pass entries=20 delivered=20 failed=0\n\
                   2026-11-22T15:38:13Z  INFO delivery pass entries=7 delivered=6 failed=1\n";
        assert_eq!(logged_deliveries(log), Some(26));
        assert_eq!(logged_deliveries("INFO server ready\n"), None);
    }

    #[test]
    fn numbers_from_the_cli_json() {
        let text =
            "{\n  \"address\": \"user@bench.test\",\n  \"used_bytes\": 123456,\n  \"x\": 1\n}";
        assert_eq!(json_number(text, "used_bytes"), Some(123456));
        assert_eq!(json_number(text, "quota"), None);
    }
}
