//! What the server benchmarks (`bench smtp`, `bench pop3`, `bench imap`)
//! share: the release binary and its admin commands, free ports, stopping a
//! server and its daemons, scratch directories and log files, CPU and memory
//! accounting from `/proc`, medians.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Result, cargo, root, run as run_command};

/// Builds `ironpost` in release and returns the binary's path.
pub(crate) fn build_release() -> Result<PathBuf> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--package",
        "ironpost",
        "--bin",
        "ironpost",
    ]);
    run_command(build)?;
    Ok(release_binary())
}

/// The release binary `cargo build --release` makes.
fn release_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root().join(t) })
        .unwrap_or_else(|| root().join("target"));
    target.join("release/ironpost")
}

/// Runs `ironpost --config CONFIG args` with `input` on standard input;
/// returns its standard output.
pub(crate) fn ironpost_admin(
    ironpost: &Path,
    config: &Path,
    args: &[&str],
    input: &[u8],
) -> Result<String> {
    let mut child = Command::new(ironpost)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ironpost.display()))?;
    // A command that does not read its input may exit before it is written.
    let _ = child.stdin.take().expect("piped").write_all(input);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ironpost {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16> {
    free_ports::<1>().map(|[port]| port)
}

/// `N` distinct ports that were free a moment ago on 127.0.0.1: all are
/// held until all are found, so the kernel cannot hand out one twice.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let held = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("no free loopback port: {e}"))?;
    let ports = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("no free loopback port: {e}"))?;
    Ok(ports.try_into().expect("one port per listener"))
}

/// Makes the directory `dir` (and its parents), readable by every user,
/// so that a server's processes that run as `nobody` get through it.
pub(crate) fn make_dir(dir: &Path) -> Result {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Removes the scratch directory `dir` after a bench that succeeded; after
/// one that failed, keeps it and says where it is.
pub(crate) fn clean_up<T>(dir: &Path, result: &Result<T>) {
    match result {
        Ok(_) => {
            let _ = fs::remove_dir_all(dir);
        }
        Err(_) => eprintln!("xtask: files kept in {}", dir.display()),
    }
}

/// `server-N.log` in `dir`: the first that does not exist, one per start.
pub(crate) fn next_log(dir: &Path) -> PathBuf {
    (1..)
        .map(|n| dir.join(format!("server-{n}.log")))
        .find(|p| !p.exists())
        .expect("a free log name")
}

/// Stops the server in `child` (if it still runs): SIGTERM, then waits
/// (30 s at most) for it and (10 s at most) for every other process of its
/// process group, the daemons of a master process. What outlives that is
/// killed and reported as an error.
pub(crate) fn stop(child: &mut Option<Child>, name: &str) -> Result {
    let Some(mut child) = child.take() else {
        return Ok(());
    };
    let pid = child.id();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut result = Ok(());
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                result = Err(format!("{name} did not stop on SIGTERM within 30 s"));
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = group_processes(pid);
        if left.is_empty() {
            return result;
        }
        if Instant::now() > deadline {
            for member in &left {
                let _ = Command::new("kill")
                    .args(["-KILL", &member.to_string()])
                    .status();
            }
            return Err(format!("processes {left:?} of {name} outlived it"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The last 30 lines of a server's log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits (30 s at most) until `ready()` says the server `child` serves;
/// fails with the tail of its `log` if it exits first or never gets ready.
pub(crate) fn wait_ready(
    child: &mut Option<Child>,
    name: &str,
    log: &Path,
    ready: impl Fn() -> bool,
) -> Result {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
            *child = None;
            return Err(format!(
                "{name} exited ({status}) before it was ready:\n{}",
                log_tail(log)
            ));
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{name} not ready after 30 s:\n{}", log_tail(log)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Clock ticks per second, the unit of the CPU times in `/proc/PID/stat`.
pub(crate) fn clock_ticks() -> Result<u64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(|e| format!("cannot run getconf: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "getconf CLK_TCK did not print a number".to_string())
}

/// Whether this process runs as root (its effective user id is 0).
pub(crate) fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The user and group ids of `user`, from `/etc/passwd`.
pub(crate) fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[0] == user)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// The fields of `/proc/PID/stat` after the command name (which may hold
/// spaces and parentheses): index 0 is the state (field 3 of proc(5)).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// One process as the CPU and memory accounting needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) pgrp: u32,
    pub(crate) zombie: bool,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub(crate) ticks: u64,
    /// cutime + cstime alone: the children it has waited for.
    pub(crate) child_ticks: u64,
}

fn parse_stat(pid: u32, stat: &str) -> Option<Proc> {
    let f = stat_fields(stat)?;
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(Proc {
        pid,
        ppid: num(1)? as u32,
        pgrp: num(2)? as u32,
        zombie: f.first() == Some(&"Z"),
        // proc(5) fields 14-17: utime, stime, cutime, cstime.
        ticks: num(11)? + num(12)? + num(13)? + num(14)?,
        child_ticks: num(13)? + num(14)?,
    })
}

/// Every process of the machine.
pub(crate) fn processes() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| parse_stat(pid, &fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect()
}

/// `root` and all its descendants.
pub(crate) fn tree(all: &[Proc], root: u32) -> Vec<&Proc> {
    let mut out: Vec<&Proc> = all.iter().filter(|p| p.pid == root).collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].pid;
        out.extend(all.iter().filter(|p| p.ppid == parent));
        i += 1;
    }
    out
}

/// CPU ticks of `root`'s process tree: each process's own time plus that
/// of the children it has reaped, so that a daemon that exited and was
/// waited for still counts (in its parent).
pub(crate) fn tree_cpu_ticks(root: u32) -> u64 {
    tree(&processes(), root).iter().map(|p| p.ticks).sum()
}

/// CPU time of `root`'s process tree, as precise as the kernel tells it:
/// each live thread's time on a CPU in nanoseconds (the first field of
/// `/proc/PID/task/TID/schedstat`) plus the time of the children each
/// process has waited for (cutime + cstime, in clock ticks). A thread that
/// ends between two samples is missed, so this suits phases in which the
/// server starts and ends no threads or processes. `ticks` is clock ticks
/// per second. Where schedstat is not there, this is [`tree_cpu_ticks`]
/// in seconds, whose truncation to ticks can be off by 10 ms per process.
pub(crate) fn tree_cpu(root: u32, ticks: u64) -> Duration {
    let all = processes();
    tree(&all, root).iter().map(|p| process_cpu(p, ticks)).sum()
}

/// [`tree_cpu`] for one process and the children it has waited for.
pub(crate) fn process_cpu(p: &Proc, ticks: u64) -> Duration {
    let tick = |n: u64| Duration::from_nanos(n * 1_000_000_000 / ticks.max(1));
    let threads = || -> Option<u64> {
        let mut sum = 0;
        for task in fs::read_dir(format!("/proc/{}/task", p.pid)).ok()? {
            let path = task.ok()?.path().join("schedstat");
            let text = fs::read_to_string(path).ok()?;
            sum += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(sum)
    };
    match threads() {
        Some(ns) => Duration::from_nanos(ns) + tick(p.child_ticks),
        None => tick(p.ticks),
    }
}

fn group_processes(pgid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid && !p.zombie)
        .map(|p| p.pid)
        .collect()
}

/// The CPU time of this process (all its threads): the load clients.
pub(crate) fn own_cpu(ticks: u64) -> Duration {
    let me = std::process::id();
    processes()
        .iter()
        .find(|p| p.pid == me)
        .map_or(Duration::ZERO, |p| process_cpu(p, ticks))
}

/// The CPU time of a server and of the load clients at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuReading {
    /// [`tree_cpu`] of the server.
    pub(crate) server: Duration,
    /// [`own_cpu`]: this process, the clients.
    pub(crate) clients: Duration,
}

impl CpuReading {
    /// Reads the CPU time of the process tree of `server` (a pid), then
    /// this process's; `ticks` is clock ticks per second.
    pub(crate) fn now(server: u32, ticks: u64) -> CpuReading {
        CpuReading {
            server: tree_cpu(server, ticks),
            clients: own_cpu(ticks),
        }
    }

    /// What was used from `before` until this reading.
    pub(crate) fn since(&self, before: &CpuReading) -> CpuReading {
        CpuReading {
            server: self.server.saturating_sub(before.server),
            clients: self.clients.saturating_sub(before.clients),
        }
    }
}

/// Resident memory of a process tree at one moment, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Resident {
    /// Sum of `VmRSS` (`/proc/PID/status`): pages shared between the
    /// processes (libraries, shared mappings) count once per process.
    pub(crate) rss_kib: u64,
    /// Sum of `Pss` (`/proc/PID/smaps_rollup`): each shared page divided
    /// among the processes that map it, so the sum counts it once.
    pub(crate) pss_kib: u64,
    /// Live processes counted.
    pub(crate) processes: usize,
    /// Live processes whose `smaps_rollup` could not be read (their `Pss`
    /// is missing from the sum).
    pub(crate) pss_unreadable: usize,
}

/// [`Resident`] of `root` and its live descendants.
pub(crate) fn tree_resident(root: u32) -> Resident {
    let all = processes();
    let mut sum = Resident::default();
    for p in tree(&all, root).into_iter().filter(|p| !p.zombie) {
        let read = |file: &str, key: &str| {
            fs::read_to_string(format!("/proc/{}/{file}", p.pid))
                .ok()
                .and_then(|text| kib_field(&text, key))
        };
        // A process that exits between the listing and the read counts as nothing.
        let Some(rss) = read("status", "VmRSS:") else {
            continue;
        };
        sum.rss_kib += rss;
        sum.processes += 1;
        match read("smaps_rollup", "Pss:") {
            Some(pss) => sum.pss_kib += pss,
            None => sum.pss_unreadable += 1,
        }
    }
    sum
}

/// The value of a `Key:   1234 kB` line of a `/proc` file.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// This process's soft limit on open files (`ulimit -n`), from
/// `/proc/self/limits`; `None` when unlimited or unreadable.
pub(crate) fn open_files_limit() -> Option<u64> {
    soft_limit(
        &fs::read_to_string("/proc/self/limits").ok()?,
        "Max open files",
    )
}

fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The median; NaN for no values.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parentheses_in_the_name() {
        let stat = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 7 3 11 13 20 0 1 0 5 0 0";
        let p = parse_stat(4242, stat).unwrap();
        assert_eq!(
            p,
            Proc {
                pid: 4242,
                ppid: 17,
                pgrp: 4242,
                zombie: false,
                ticks: 7 + 3 + 11 + 13,
                child_ticks: 11 + 13,
            }
        );
        let zombie = "9 (smtpd) Z 1 4242 4242 0 -1 0 0 0 0 0 1 1 0 0";
        assert!(parse_stat(9, zombie).unwrap().zombie);
    }

    #[test]
    fn a_tree_is_the_root_and_every_descendant() {
        let p = |pid, ppid| Proc {
            pid,
            ppid,
            pgrp: 0,
            zombie: false,
            ticks: u64::from(pid),
            child_ticks: 0,
        };
        let all = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(20, 1), p(13, 10)];
        let mut pids: Vec<u32> = tree(&all, 10).iter().map(|p| p.pid).collect();
        pids.sort();
        assert_eq!(pids, [10, 11, 12, 13]);
    }

    #[test]
    fn memory_fields_and_limits_from_proc_text() {
        let status = "Name:\tdovecot\nVmHWM:\t   9000 kB\nVmRSS:\t   8123 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(8123));
        assert_eq!(kib_field(status, "VmSwap:"), None);
        let rollup = "55d7-7ffc ---p 00000000 00:00 0  [rollup]\nRss:  1764 kB\nPss:  339 kB\nPss_Dirty: 112 kB\n";
        assert_eq!(kib_field(rollup, "Pss:"), Some(339));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             96343                96343                processes \n\
                      Max open files            20000                524288               files     \n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(soft_limit(unlimited, "Max open files"), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        let me = tree_resident(std::process::id());
        assert!(me.processes >= 1);
        assert!(me.rss_kib > 0);
        assert!(me.pss_kib > 0 || me.pss_unreadable > 0);
        assert!(open_files_limit().is_none_or(|n| n > 0));
    }

    #[test]
    fn cpu_used_between_two_readings_never_goes_below_zero() {
        let reading = |server, clients| CpuReading {
            server: Duration::from_millis(server),
            clients: Duration::from_millis(clients),
        };
        assert_eq!(reading(700, 90).since(&reading(200, 40)), reading(500, 50));
        // A process that ended between the readings takes its time along.
        assert_eq!(reading(100, 90).since(&reading(200, 40)), reading(0, 50));
        let me = std::process::id();
        let ticks = clock_ticks().unwrap();
        let before = CpuReading::now(me, ticks);
        assert!(before.server > Duration::ZERO && before.clients > Duration::ZERO);
    }

    #[test]
    fn scratch_directories_and_one_log_per_start() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-util.{}", std::process::id()));
        make_dir(&dir.join("a")).unwrap();
        let mode = fs::metadata(dir.join("a")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(next_log(&dir), dir.join("server-1.log"));
        fs::write(dir.join("server-1.log"), "").unwrap();
        assert_eq!(next_log(&dir), dir.join("server-2.log"));
        clean_up(&dir, &Err::<(), _>("failed".to_string()));
        assert!(dir.exists());
        clean_up(&dir, &Ok(()));
        assert!(!dir.exists());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn this_process_is_in_its_own_tree_with_some_cpu() {
        let me = std::process::id();
        let all = processes();
        assert!(tree(&all, me).iter().any(|p| p.pid == me));
        // Burn a little CPU so the counter moves past one tick.
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 1);
        assert!(tree_cpu_ticks(me) > 0);
        let ticks = clock_ticks().unwrap();
        let before = tree_cpu(me, ticks);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 1);
        let used = tree_cpu(me, ticks) - before;
        // At least most of the 100 ms of spinning (other test threads of
        // this process count too, so there is no upper bound to check).
        assert!(used >= Duration::from_millis(50), "{used:?}");
    }

    #[test]
    fn stopping_a_child_with_sigterm() {
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        let mut slot = Some(child);
        assert_eq!(stop(&mut slot, "sleep"), Ok(()));
        assert!(slot.is_none());
        assert!(!processes().iter().any(|p| p.pid == pid && !p.zombie));
        // Stopping what is already stopped is nothing.
        assert_eq!(stop(&mut slot, "sleep"), Ok(()));
    }
}
