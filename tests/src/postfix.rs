//! A private Postfix instance for the tests: its own configuration, queue
//! and data directories in a fresh temporary directory, its `master(8)` a
//! child of the test, its log in a file there. The system's Postfix
//! (`/etc/postfix`, `/var/spool/postfix`) is never read or touched.
//!
//! Two modes:
//! - [`Postfix::relay`]: accepts mail for any recipient from 127.0.0.1 and
//!   relays all of it to `[127.0.0.1]:PORT` (Ironpost), without TLS or DNS.
//! - [`Postfix::maildir`]: accepts mail for the accounts of one virtual
//!   domain and delivers it with `virtual(8)` into Maildirs under the
//!   temporary directory.
//!
//! Postfix's master must run as root (it binds the port, then its daemons
//! drop to `mail_owner`), so these tests need root, as CI gives them.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::server::free_port;

/// The host name of a relay instance (in its `Received:` fields). It must
/// differ from the peer's, or Postfix's SMTP client takes the peer's
/// greeting for its own and reports a mail loop.
pub const HOSTNAME: &str = "relay.postfix.test";

/// The host name of a Maildir instance, different from a relay's so that
/// one can relay to the other.
const MAILDIR_HOSTNAME: &str = "mx.postfix.test";

/// The queue directories that hold messages not yet delivered.
const QUEUES: &[&str] = &["maildrop", "incoming", "active", "deferred", "hold"];

/// A running private Postfix. Dropping it stops it.
pub struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
    master: Option<Child>,
    /// The virtual domain of the Maildir mode.
    domain: Option<String>,
}

impl Postfix {
    /// A relay: its smtpd accepts mail for any recipient from 127.0.0.1 and
    /// the smtp client hands everything to `[127.0.0.1]:port`.
    pub fn relay(port: u16) -> Postfix {
        let main = format!(
            "relayhost = [127.0.0.1]:{port}\n\
             smtp_tls_security_level = none\n\
             smtp_dns_support_level = disabled\n\
             smtp_host_lookup = native\n"
        );
        Postfix::start(HOSTNAME, &main, None)
    }

    /// A final destination for `domain`: mail for `domain`'s `users` (local
    /// parts) is delivered by `virtual(8)` into one Maildir each, owned by
    /// `nobody`; other recipients are refused at RCPT.
    pub fn maildir(domain: &str, users: &[&str]) -> Postfix {
        Postfix::start(MAILDIR_HOSTNAME, "", Some((domain, users)))
    }

    /// Starts an instance called `hostname` whose main.cf ends with `extra`
    /// and, given `maildir` (a domain and its users), delivers to Maildirs.
    fn start(hostname: &str, extra: &str, maildir: Option<(&str, &[&str])>) -> Postfix {
        assert!(
            is_root(),
            "a private Postfix needs root (its master binds ports and drops privileges)"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        // Postfix's daemons run as mail_owner, virtual(8) as the mailbox
        // owner; both must be able to reach their directories below this one.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("temporary directory made searchable");
        let root = dir.path();
        let conf = root.join("conf");
        fs::create_dir_all(&conf).expect("config directory");
        fs::create_dir_all(root.join("queue")).expect("queue directory");
        let port = free_port();
        let mut main = main_cf(root, hostname);
        main.push_str(extra);
        if let Some((domain, users)) = maildir {
            let (uid, gid) = user_ids("nobody").expect("the user nobody exists");
            let base = root.join("maildir");
            fs::create_dir_all(&base).expect("Maildir base");
            std::os::unix::fs::chown(&base, Some(uid), Some(gid)).expect("Maildir base owner");
            let map: String = users
                .iter()
                .map(|u| format!("{u}@{domain} {domain}/{u}/\n"))
                .collect();
            fs::write(conf.join("vmailbox"), map).expect("virtual mailbox map");
            main.push_str(&format!(
                "virtual_mailbox_domains = {domain}\n\
                 virtual_mailbox_base = {}\n\
                 virtual_mailbox_maps = texthash:{}\n\
                 virtual_uid_maps = static:{uid}\n\
                 virtual_gid_maps = static:{gid}\n",
                base.display(),
                conf.join("vmailbox").display()
            ));
        }
        fs::write(conf.join("main.cf"), main).expect("main.cf");
        fs::write(conf.join("master.cf"), master_cf(port)).expect("master.cf");

        // `postfix check` creates the queue and data directories with the
        // owners and modes Postfix wants (post-install create-missing).
        let check = Command::new("postfix")
            .arg("-c")
            .arg(&conf)
            .arg("check")
            .output()
            .expect("postfix runs (Debian package postfix)");
        let log = fs::read_to_string(root.join("maillog")).unwrap_or_default();
        assert!(
            check.status.success(),
            "postfix check failed: {}\n{}\n{log}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        // The master itself, not `postfix start`, so that it is our child:
        // it stays in the foreground (in a session of its own) and its
        // SIGTERM handler stops every daemon it started. Should the test be
        // killed before it can stop it, the master ends itself after an hour.
        let master = Command::new(daemon_directory().join("master"))
            .arg("-c")
            .arg(&conf)
            .args(["-e", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Postfix's master starts");
        let mut postfix = Postfix {
            dir,
            port,
            master: Some(master),
            domain: maildir.map(|(domain, _)| domain.to_string()),
        };
        postfix.wait_ready();
        postfix
    }

    /// Waits until the smtpd answers with its `220` greeting.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut session = Session::over(stream);
                if session.reply().is_ok_and(|r| r.starts_with("220")) {
                    let _ = session.command("QUIT");
                    return;
                }
            }
            let master = self.master.as_mut().expect("running");
            if let Ok(Some(status)) = master.try_wait() {
                panic!(
                    "Postfix's master exited ({status}) before it was ready:\n{}",
                    self.maillog()
                );
            }
            if Instant::now() > deadline {
                panic!("Postfix not ready after 30 s:\n{}", self.maillog());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port its smtpd listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of its master.
    pub fn pid(&self) -> u32 {
        self.master.as_ref().expect("running").id()
    }

    /// The instance's temporary directory (`conf/`, `queue/`, `data/`,
    /// `maillog`, `maildir/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything Postfix logged so far.
    pub fn maillog(&self) -> String {
        fs::read_to_string(self.dir().join("maillog")).unwrap_or_default()
    }

    /// The messages still queued, each as `queue/ID` (`deferred/4B/4BC12`…).
    pub fn queued(&self) -> Vec<String> {
        let mut out = Vec::new();
        for queue in QUEUES {
            let dir = self.dir().join("queue").join(queue);
            collect_files(&dir, &dir, &mut out);
        }
        out.sort();
        out
    }

    /// Waits until no message is left in the queue; panics after `limit`
    /// with what `postqueue -p` says is queued and the log.
    #[track_caller]
    pub fn wait_queue_empty(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let queued = self.queued();
            if queued.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let listing = Command::new("postqueue")
                    .arg("-c")
                    .arg(self.dir().join("conf"))
                    .arg("-p")
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_else(|e| format!("(postqueue -p failed: {e})"));
                panic!(
                    "Postfix's queue still holds {} message(s) after {limit:?}:\n{listing}\nmaillog:\n{}",
                    queued.len(),
                    self.maillog()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Opens an SMTP session to its smtpd, greeted with `EHLO`.
    pub fn connect(&self) -> Session {
        Session::connect(self.port)
    }

    /// The Maildir of `user` (a local part of the virtual domain).
    pub fn maildir_path(&self, user: &str) -> PathBuf {
        let domain = self
            .domain
            .as_deref()
            .expect("only the Maildir mode has Maildirs");
        self.dir().join("maildir").join(domain).join(user)
    }

    /// The messages delivered to `user` so far (`new/` and `cur/`), in the
    /// order of their file names, which start with the delivery time.
    pub fn maildir_messages(&self, user: &str) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir_path(user).join(sub);
            if let Ok(entries) = fs::read_dir(&dir) {
                files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
        files.sort();
        files
            .iter()
            .map(|f| fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
            .collect()
    }

    /// How many messages `user`'s Maildir holds.
    pub fn maildir_count(&self, user: &str) -> usize {
        ["new", "cur"]
            .iter()
            .filter_map(|sub| fs::read_dir(self.maildir_path(user).join(sub)).ok())
            .map(|entries| entries.count())
            .sum()
    }

    /// Stops Postfix: SIGTERM to the master, which passes it to every
    /// daemon of its process group; then waits until all of them are gone.
    /// Returns the log.
    pub fn stop(mut self) -> String {
        self.shutdown();
        self.maillog()
    }

    fn shutdown(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        let pid = master.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match master.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = master.kill();
                    let _ = master.wait();
                    break;
                }
            }
        }
        // The daemons exit on the master's SIGTERM; kill any that lingers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = group_processes(pid);
            if left.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                for member in left {
                    let _ = Command::new("kill")
                        .args(["-KILL", &member.to_string()])
                        .status();
                }
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The main.cf both modes share: everything in `root`, loopback only,
/// no local delivery, no TLS, relaying for 127.0.0.0/8 only.
fn main_cf(root: &Path, hostname: &str) -> String {
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {root}/queue\n\
         data_directory = {root}/data\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = {hostname}\n\
         mydomain = postfix.test\n\
         myorigin = $myhostname\n\
         mydestination =\n\
         relay_domains =\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         smtpd_relay_restrictions = permit_mynetworks, reject\n\
         smtpd_tls_security_level = none\n\
         local_header_rewrite_clients =\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         biff = no\n\
         maillog_file = {root}/maillog\n\
         maillog_file_prefixes = {root}\n",
        root = root.display()
    )
}

/// master.cf: the smtpd on `port` and the daemons that relay or deliver,
/// none chrooted; `postlogd` writes `maillog_file` (there is no syslog).
fn master_cf(port: u16) -> String {
    let services = [
        format!("127.0.0.1:{port} inet n - n - - smtpd"),
        "cleanup unix n - n - 0 cleanup".into(),
        "qmgr unix n - n 300 1 qmgr".into(),
        "rewrite unix - - n - - trivial-rewrite".into(),
        "bounce unix - - n - 0 bounce".into(),
        "defer unix - - n - 0 bounce".into(),
        "trace unix - - n - 0 bounce".into(),
        "verify unix - - n - 1 verify".into(),
        "flush unix n - n 1000? 0 flush".into(),
        "proxymap unix - - n - - proxymap".into(),
        "showq unix n - n - - showq".into(),
        "error unix - - n - - error".into(),
        "retry unix - - n - - error".into(),
        "discard unix - - n - - discard".into(),
        "smtp unix - - n - - smtp".into(),
        "relay unix - - n - - smtp".into(),
        "virtual unix - n n - - virtual".into(),
        "anvil unix - - n - 1 anvil".into(),
        "scache unix - - n - 1 scache".into(),
        "postlog unix-dgram n - n - 1 postlogd".into(),
    ];
    services.iter().map(|s| format!("{s}\n")).collect()
}

/// Where the Postfix daemons are installed (`/usr/lib/postfix/sbin` on Debian).
fn daemon_directory() -> PathBuf {
    let out = Command::new("postconf")
        .args(["-d", "-h", "daemon_directory"])
        .output()
        .expect("postconf runs (Debian package postfix)");
    assert!(out.status.success(), "postconf -d daemon_directory failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Whether this process runs as root (effective user id 0).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The user and group ids of `user`, from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == user {
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// The regular files below `dir`, as paths relative to `base`'s parent.
fn collect_files(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(base, &path, out),
            Ok(t) if t.is_file() => {
                let queue = base.file_name().unwrap_or_default().to_string_lossy();
                let rest = path.strip_prefix(base).unwrap_or(&path);
                out.push(format!("{queue}/{}", rest.display()));
            }
            _ => {}
        }
    }
}

/// The live processes of process group `pgid` (zombies left out): for a
/// master's pid, the master and every daemon it started.
pub fn group_processes(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the command name, which may hold spaces:
                    // state, ppid, pgrp, ...
                    let rest = &stat[stat.rfind(')')? + 1..];
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    // A zombie waits for its new parent; it runs no more.
                    Some(fields.first() != Some(&"Z") && fields.get(2)? == &pgid.to_string())
                })
                .unwrap_or(false)
        })
        .collect()
}

/// A plain SMTP client session, enough to hand messages to Postfix: one
/// command at a time, each reply checked.
pub struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    /// Connects to 127.0.0.1:`port`, reads the greeting and says `EHLO`.
    pub fn connect(port: u16) -> Session {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        let mut session = Session::over(stream);
        session.expect(None, "220");
        session.expect(Some("EHLO client.test"), "250");
        session
    }

    fn over(stream: TcpStream) -> Session {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let writer = stream.try_clone().expect("socket handle");
        Session {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Sends one message: `MAIL FROM` (with `BODY=8BITMIME` when a byte
    /// has the high bit set), a `RCPT TO` per recipient, `DATA` and the
    /// dot-stuffed message, which must be CRLF-terminated lines. Panics
    /// unless every reply is positive.
    #[track_caller]
    pub fn send(&mut self, from: &str, to: &[&str], message: &[u8]) {
        assert!(
            message.ends_with(b"\r\n"),
            "a message to send must end with CRLF"
        );
        let body = if message.is_ascii() {
            ""
        } else {
            " BODY=8BITMIME"
        };
        self.expect(Some(&format!("MAIL FROM:<{from}>{body}")), "250");
        for rcpt in to {
            self.expect(Some(&format!("RCPT TO:<{rcpt}>")), "250");
        }
        self.expect(Some("DATA"), "354");
        let mut data = Vec::with_capacity(message.len() + 64);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        data.extend_from_slice(b".\r\n");
        self.writer.write_all(&data).expect("message sent");
        self.expect(None, "250");
    }

    /// Says `QUIT`.
    pub fn quit(mut self) {
        self.expect(Some("QUIT"), "221");
    }

    /// Sends `line` (if any) and checks that the reply starts with `code`.
    #[track_caller]
    fn expect(&mut self, line: Option<&str>, code: &str) {
        let reply = match line {
            Some(line) => self.command(line),
            None => self.reply(),
        }
        .unwrap_or_else(|e| panic!("SMTP {line:?}: {e}"));
        assert!(
            reply.starts_with(code),
            "SMTP {line:?}: expected {code}, got {reply}"
        );
    }

    fn command(&mut self, line: &str) -> std::io::Result<String> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One whole reply, its lines joined.
    fn reply(&mut self) -> std::io::Result<String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {text:?}"),
                ));
            }
            text.push_str(&line);
            // "250-..." continues, "250 ..." (or a bare "250") ends.
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(text);
            }
        }
    }
}
