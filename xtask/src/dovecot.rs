//! What `bench pop3` and `bench imap` share: the two servers they compare,
//! Ironpost and a private Dovecot, each started as a child of this process
//! in its own directory, measured and stopped.
//!
//! The private Dovecot has its own configuration, base and state
//! directories (the system's instance is neither used nor touched), no TLS,
//! plaintext logins, passwords from a `passwd-file`, and every user's mail
//! in `maildir/<user>` owned by `nobody`, as whom its mail processes run.
//! That needs root.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::Result;
use crate::bench_util::{is_root, make_dir, median, next_log, stop, user_ids, wait_ready};

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ironpost,
    Dovecot,
}

impl Kind {
    /// The name in options, messages and reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Ironpost => "ironpost",
            Kind::Dovecot => "dovecot",
        }
    }

    /// The value of `--only`.
    pub(crate) fn parse(value: Option<&str>) -> Result<Kind> {
        match value {
            Some("ironpost") => Ok(Kind::Ironpost),
            Some("dovecot") => Ok(Kind::Dovecot),
            _ => Err("--only takes ironpost or dovecot".into()),
        }
    }

    /// Both servers, or the one `--only` names.
    pub(crate) fn chosen(only: Option<Kind>) -> Vec<Kind> {
        [Kind::Ironpost, Kind::Dovecot]
            .into_iter()
            .filter(|k| only.is_none_or(|o| o == *k))
            .collect()
    }
}

/// Fails unless Dovecot can be measured for `protocol` (`pop3` or `imap`,
/// also the name of the bench): this process is root and Dovecot's
/// server for `protocol` is installed.
pub(crate) fn check(protocol: &str) -> Result {
    if !is_root() {
        return Err(format!(
            "bench {protocol} needs root for Dovecot (its mail processes run as nobody); \
             `--only ironpost` does not"
        ));
    }
    // Where Dovecot keeps its executables: `protocol` must be among them.
    let found = ["/usr/lib/dovecot", "/usr/libexec/dovecot"]
        .iter()
        .any(|d| Path::new(d).join(protocol).is_file());
    let dovecot = Command::new("dovecot").arg("--version").output();
    if found && dovecot.is_ok_and(|o| o.status.success()) {
        Ok(())
    } else {
        Err(format!(
            "Dovecot's {} server is missing: apt-get install -y dovecot-{protocol}d \
             (only `cargo xtask bench {protocol}` needs it)",
            protocol.to_uppercase()
        ))
    }
}

/// Makes each server's directory in `scratch` and fills it with `prepare`
/// (not timed), saying on standard error what `bench` puts in (`what`) and
/// how long it took. Returns each server with its directory.
pub(crate) fn prepare_each(
    scratch: &Path,
    kinds: &[Kind],
    bench: &str,
    what: &str,
    mut prepare: impl FnMut(Kind, &Path) -> Result,
) -> Result<Vec<(Kind, PathBuf)>> {
    let mut prepared = Vec::new();
    for &kind in kinds {
        let dir = scratch.join(kind.name());
        make_dir(&dir)?;
        let start = Instant::now();
        eprintln!("xtask: {bench} {}: {what}", kind.name());
        prepare(kind, &dir)?;
        eprintln!(
            "xtask: {bench} {}: ready after {:.1} s",
            kind.name(),
            start.elapsed().as_secs_f64()
        );
        prepared.push((kind, dir));
    }
    Ok(prepared)
}

/// Ironpost's and Dovecot's samples for one client count, run i of one
/// server measured right after run i of the other.
pub(crate) struct Pair<'a, S> {
    pub(crate) clients: usize,
    ours: &'a [S],
    theirs: &'a [S],
}

impl<S> Pair<'_, S> {
    /// Every pair in `series`, one per client count measured on both
    /// servers, in Ironpost's order; `parts` gives a series' server, client
    /// count and samples.
    pub(crate) fn all<'a, T>(
        series: &'a [T],
        parts: impl Fn(&'a T) -> (Kind, usize, &'a [S]),
    ) -> Vec<Pair<'a, S>> {
        let parts: Vec<_> = series.iter().map(parts).collect();
        parts
            .iter()
            .filter(|(kind, _, _)| *kind == Kind::Ironpost)
            .filter_map(|&(_, clients, ours)| {
                let &(_, _, theirs) = parts
                    .iter()
                    .find(|(kind, c, _)| *kind == Kind::Dovecot && *c == clients)?;
                Some(Pair {
                    clients,
                    ours,
                    theirs,
                })
            })
            .collect()
    }

    /// Ironpost's median of `f` over Dovecot's.
    pub(crate) fn of_medians(&self, f: impl Fn(&S) -> f64) -> f64 {
        median(self.ours.iter().map(&f).collect()) / median(self.theirs.iter().map(&f).collect())
    }

    /// The median of the ratios Ironpost over Dovecot of `f`, run by run.
    pub(crate) fn paired(&self, f: impl Fn(&S) -> f64) -> f64 {
        median(
            self.ours
                .iter()
                .zip(self.theirs)
                .map(|(a, b)| f(a) / f(b))
                .collect(),
        )
    }
}

/// A server under test, a child of this process; dropping it stops it.
pub(crate) struct Server {
    pub(crate) kind: Kind,
    child: Option<Child>,
    /// The plain port of the protocol measured.
    pub(crate) port: u16,
    /// Where the server logs.
    pub(crate) log: PathBuf,
}

impl Server {
    /// `ironpost serve` with `config` in `dir`, the log in a new file;
    /// returns once `greets(port)`.
    pub(crate) fn ironpost(
        ironpost: &Path,
        dir: &Path,
        config: &Path,
        port: u16,
        greets: fn(u16) -> bool,
    ) -> Result<Server> {
        let log = next_log(dir);
        let file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(ironpost)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start ironpost serve: {e}"))?;
        Server::ready(Kind::Ironpost, child, port, log, greets)
    }

    /// `dovecot -F` with the configuration `conf`, written to
    /// `dir/dovecot.conf`; returns once `greets(port)`.
    pub(crate) fn dovecot(
        dir: &Path,
        conf: &str,
        port: u16,
        greets: fn(u16) -> bool,
    ) -> Result<Server> {
        let config = dir.join("dovecot.conf");
        fs::write(&config, conf).map_err(|e| format!("{}: {e}", config.display()))?;
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start dovecot: {e}"))?;
        Server::ready(Kind::Dovecot, child, port, dir.join("dovecot.log"), greets)
    }

    /// Waits (30 s at most) until the port greets.
    fn ready(
        kind: Kind,
        child: Child,
        port: u16,
        log: PathBuf,
        greets: fn(u16) -> bool,
    ) -> Result<Server> {
        let mut server = Server {
            kind,
            child: Some(child),
            port,
            log,
        };
        wait_ready(&mut server.child, kind.name(), &server.log, || greets(port))?;
        Ok(server)
    }

    /// The server's process id: the root of its process tree.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the server and every process it started.
    pub(crate) fn stop(&mut self) -> Result {
        stop(&mut self.child, self.kind.name())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A private Dovecot's configuration for `protocol` (`pop3` or `imap`)
/// alone in `dir`, listening on 127.0.0.1:`port` (its TLS port off);
/// `settings` and `sections` (whole lines) come after the common settings
/// and the common sections.
pub(crate) fn conf(
    dir: &Path,
    protocol: &str,
    port: u16,
    settings: &str,
    sections: &str,
) -> Result<String> {
    let (uid, gid) = nobody()?;
    Ok(format!(
        "base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         protocols = {protocol}\n\
         listen = 127.0.0.1\n\
         ssl = no\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain\n\
         mail_location = maildir:{d}/maildir/%u\n\
         {settings}\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/home/%u\n}}\n\
         service {protocol}-login {{\n  inet_listener {protocol} {{\n    port = {port}\n  }}\n  \
         inet_listener {protocol}s {{\n    port = 0\n  }}\n}}\n\
         {sections}",
        d = dir.display()
    ))
}

/// The Maildir of `address` in a private Dovecot's `dir`.
pub(crate) fn maildir(dir: &Path, address: &str) -> PathBuf {
    dir.join("maildir").join(address)
}

/// The password file of a private Dovecot in `dir`, every address with
/// `password`, and each address's empty Maildir and home directory. What
/// the Maildirs hold when Dovecot starts must then be given to `nobody`
/// with [`give_to_nobody`].
pub(crate) fn add_accounts<'a>(
    dir: &Path,
    addresses: impl IntoIterator<Item = &'a str>,
    password: &str,
) -> Result {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut passwd = String::new();
    for address in addresses {
        let _ = writeln!(passwd, "{address}:{{PLAIN}}{password}");
        let maildir = maildir(dir, address);
        for d in [
            &maildir.join("cur"),
            &maildir.join("new"),
            &maildir.join("tmp"),
            &dir.join("home").join(address),
        ] {
            fs::create_dir_all(d).map_err(|e| io(d, e))?;
        }
    }
    let path = dir.join("passwd");
    fs::write(&path, passwd).map_err(|e| io(&path, e))
}

/// Gives the Maildirs and homes of a private Dovecot in `dir`, and all they
/// hold, to `nobody`, as whom its mail processes run.
pub(crate) fn give_to_nobody(dir: &Path) -> Result {
    let (uid, gid) = nobody()?;
    for top in ["maildir", "home"] {
        chown_tree(&dir.join(top), uid, gid)?;
    }
    Ok(())
}

fn nobody() -> Result<(u32, u32)> {
    user_ids("nobody").ok_or_else(|| "no user nobody in /etc/passwd".to_string())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_server_or_both() {
        assert_eq!(Kind::chosen(None), [Kind::Ironpost, Kind::Dovecot]);
        let dovecot = Kind::parse(Some("dovecot")).unwrap();
        assert_eq!(Kind::chosen(Some(dovecot)), [Kind::Dovecot]);
        assert_eq!(Kind::parse(Some("ironpost")), Ok(Kind::Ironpost));
        assert!(Kind::parse(Some("postfix")).is_err());
        assert!(Kind::parse(None).is_err());
    }

    #[test]
    fn pairs_of_the_client_counts_both_servers_ran() {
        let series = [
            (Kind::Ironpost, 1, vec![4.0, 2.0, 2.0]),
            (Kind::Ironpost, 4, vec![8.0]),
            (Kind::Dovecot, 1, vec![1.0, 1.0, 4.0]),
            (Kind::Dovecot, 2, vec![1.0]),
        ];
        let pairs = Pair::all(&series, |(kind, clients, samples)| {
            (*kind, *clients, &samples[..])
        });
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].clients, 1);
        // Medians 2 / 1; run by run 4, 2 and 0.5.
        assert_eq!(pairs[0].of_medians(|&x| x), 2.0);
        assert_eq!(pairs[0].paired(|&x| x), 2.0);
        assert_eq!(pairs[0].paired(|&x| 1.0 / x), 0.5);
    }

    #[test]
    fn a_configuration_for_one_protocol_with_extra_lines() {
        let Ok(text) = conf(
            Path::new("/d"),
            "imap",
            1143,
            "default_client_limit = 7\n",
            "service imap {\n  process_limit = 7\n}\n",
        ) else {
            // No user nobody on this machine: nothing to check.
            return;
        };
        assert!(text.contains("protocols = imap\n"), "{text}");
        assert!(text.contains(
            "mail_location = maildir:/d/maildir/%u\ndefault_client_limit = 7\npassdb {\n"
        ));
        assert!(text.contains(
            "service imap-login {\n  inet_listener imap {\n    port = 1143\n  }\n  \
             inet_listener imaps {\n    port = 0\n  }\n}\nservice imap {\n  process_limit = 7\n}\n"
        ));
    }
}
