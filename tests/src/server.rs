//! A running `ironpost serve` for the protocol tests: listeners on free
//! loopback ports, a fresh data directory, the log in a file, and the means
//! to stop it gently (SIGTERM) or not (SIGKILL).

use std::ffi::OsStr;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Env, binary};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct ports that were free a moment ago on 127.0.0.1.
///
/// They come from below the kernel's ephemeral range (32768 and up on
/// Linux), so that no client connection of a test running alongside is
/// handed one of them, and every one is held until all are found, so no
/// two are the same. Each process starts at its own place in the range.
pub fn free_ports<const N: usize>() -> [u16; N] {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = std::process::id().wrapping_mul(7919).wrapping_add(nanos) % COUNT;
    let mut held = Vec::with_capacity(N);
    for step in 0..COUNT {
        if held.len() == N {
            break;
        }
        let port = u16::try_from(FIRST + (start + step) % COUNT).expect("the range is below 65536");
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    assert_eq!(held.len(), N, "{N} free loopback ports");
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().expect("a bound listener's address").port())
        .collect();
    ports.try_into().expect("N ports")
}

/// The SMTP ports of a test server.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Port 25's listener: STARTTLS, no AUTH required.
    pub smtp: u16,
    /// Port 587's listener: STARTTLS, AUTH required.
    pub submission: u16,
    /// Port 465's listener: implicit TLS, AUTH required.
    pub smtps: u16,
    /// Port 110's listener: POP3 with STLS.
    pub pop3: u16,
    /// Port 995's listener: POP3 over implicit TLS.
    pub pop3s: u16,
    /// Port 143's listener: IMAP with STARTTLS.
    pub imap: u16,
    /// Port 993's listener: IMAP over implicit TLS.
    pub imaps: u16,
}

impl Ports {
    /// Seven free ports.
    pub fn free() -> Ports {
        let [smtp, submission, smtps, pop3, pop3s, imap, imaps] = free_ports();
        Ports {
            smtp,
            submission,
            smtps,
            pop3,
            pop3s,
            imap,
            imaps,
        }
    }

    /// The `[[smtp.listeners]]`, `[[pop3.listeners]]` and
    /// `[[imap.listeners]]` of the seven listeners on 127.0.0.1.
    pub fn listeners(&self) -> String {
        format!(
            "[[smtp.listeners]]\nname = \"smtp\"\nbind = [\"127.0.0.1:{}\"]\nmode = \"starttls\"\n\n\
             [[smtp.listeners]]\nname = \"submission\"\nbind = [\"127.0.0.1:{}\"]\nmode = \"starttls\"\nauth_required = true\n\n\
             [[smtp.listeners]]\nname = \"smtps\"\nbind = [\"127.0.0.1:{}\"]\nmode = \"implicit-tls\"\nauth_required = true\n\n\
             [[pop3.listeners]]\nname = \"pop3\"\nbind = [\"127.0.0.1:{}\"]\nmode = \"starttls\"\n\n\
             [[pop3.listeners]]\nname = \"pop3s\"\nbind = [\"127.0.0.1:{}\"]\nmode = \"implicit-tls\"\n\n\
             [[imap.listeners]]\nname = \"imap\"\nbind = [\"127.0.0.1:{}\"]\nmode = \"starttls\"\n\n\
             [[imap.listeners]]\nname = \"imaps\"\nbind = [\"127.0.0.1:{}\"]\nmode = \"implicit-tls\"\n",
            self.smtp, self.submission, self.smtps, self.pop3, self.pop3s, self.imap, self.imaps
        )
    }
}

/// An environment whose configuration has the three SMTP listeners on free
/// loopback ports, after `extra` (which may set other `[smtp]` keys, but
/// must not end inside a table other than `[smtp]`).
pub fn env_with_listeners(extra: &str) -> (Env, Ports) {
    let ports = Ports::free();
    let smtp_keys = if extra.contains("[smtp]") {
        String::new()
    } else {
        "[smtp]\n".to_string()
    };
    let config = format!("{smtp_keys}{extra}\n{}", ports.listeners());
    (Env::with_config(&config), ports)
}

/// The line the server logs once every listener is bound.
pub const READY: &str = "server ready";

/// A running server. Dropping it kills the process.
pub struct Server {
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Starts `ironpost --config FILE serve` in `env`, the log going to a
    /// file in the environment's directory, and waits until it is ready.
    /// Panics with the log when it exits or is not ready within 30 seconds.
    pub fn start(env: &Env) -> Server {
        Server::start_with(env, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with(env: &Env, vars: &[(&str, &str)]) -> Server {
        let args = [
            OsStr::new("--config"),
            env.config().as_os_str(),
            OsStr::new("serve"),
        ];
        Server::spawn(env.dir(), &args, vars)
    }

    /// Starts `ironpost args` (which must run the server) in `dir`, the log
    /// going to a new file there, and waits until it is ready.
    pub fn spawn(dir: &Path, args: &[&OsStr], vars: &[(&str, &str)]) -> Server {
        let log = next_log_path(dir);
        let file = fs::File::create(&log).expect("log file");
        let child = Command::new(binary())
            .args(args)
            .current_dir(dir)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .expect("ironpost starts");
        let mut server = Server {
            child: Some(child),
            log,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.log().contains(READY) {
                return;
            }
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ironpost exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!("ironpost not ready after 30 s:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the process to exit (at most 60 s).
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = self.wait(Duration::from_secs(60));
        (status, self.log())
    }

    /// Waits for the process to exit (at most 60 s), after a signal sent
    /// some other way.
    pub fn terminate_wait(mut self) -> (ExitStatus, String) {
        let status = self.wait(Duration::from_secs(60));
        (status, self.log())
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(mut self) -> String {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
        self.log()
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ironpost did not exit in {limit:?}:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `server.log`, `server-2.log`, ...: one file per start in `dir`.
fn next_log_path(dir: &Path) -> PathBuf {
    (1..)
        .map(|n| {
            dir.join(if n == 1 {
                "server.log".to_string()
            } else {
                format!("server-{n}.log")
            })
        })
        .find(|p| !p.exists())
        .expect("a free log name")
}
