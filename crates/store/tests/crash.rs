//! Crash safety: a child process appends in a loop (four writers, so group
//! commit is in play) and is killed with SIGKILL at a random moment, 20
//! times. Every other body is small enough to be kept inline, in the
//! database, and the others are over the threshold and go to files, so
//! both ways to durability are cut at random points. After each kill the
//! store is reopened: every append the child saw return `Ok` must be there
//! with its exact bytes and kept where its size says, no message row may
//! point at a missing or short body, quota must add up, and UIDs keep growing.
//! Every third append is also flagged before it is acknowledged: flag
//! changes commit without waiting for their `fsync`
//! ([`StoreConfig::flag_sync_delay`]), and a crash of the process must not
//! lose them either.
//!
//! The child is this same test executable, run with `crash_child` as the
//! test filter and the store directory in an environment variable.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ironpost_store::{BlobId, Flag, FlagOp, Flags, Store, StoreConfig};

const CHILD_ENV: &str = "IRONPOST_STORE_CRASH_CHILD";
const RUNS: u32 = 20;
const WRITERS: u32 = 4;

/// The default threshold up to which a body is kept inline.
fn inline_max() -> usize {
    StoreConfig::new("").inline_body_max
}

/// Whether the `i`-th append of a writer has a body small enough to be kept inline.
fn small(i: u32) -> bool {
    i.is_multiple_of(2)
}

/// Whether the `i`-th append of a writer is flagged before it is acknowledged.
fn flagged(i: u32) -> bool {
    i.is_multiple_of(3)
}

/// The body of the `i`-th append of `writer` in `run`, known to both sides:
/// under 30 000 octets (inline) when [`small`], over the inline threshold (a
/// file) otherwise.
fn body(run: u32, writer: u32, i: u32) -> Vec<u8> {
    let mut b = format!("Subject: run {run} writer {writer} message {i}\r\n\r\n").into_bytes();
    let spread = i.wrapping_mul(7919).wrapping_add(writer * 131) as usize;
    let len = if small(i) {
        spread % 30_000
    } else {
        inline_max() + 1 + spread % 40_000
    };
    b.extend((0..len).map(|k| b'a' + (k % 26) as u8));
    b
}

fn inbox(store: &Store) -> ironpost_store::MailboxId {
    let a = store.account("crash@example.com").unwrap();
    store.mailbox(a.id, "INBOX").unwrap().id
}

/// The child's side; does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let run: u32 = std::env::var("IRONPOST_STORE_CRASH_RUN")
        .unwrap()
        .parse()
        .unwrap();
    let store = common::open(std::path::Path::new(&dir));
    let inbox = inbox(&store);
    println!("READY");
    std::io::stdout().flush().unwrap();
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let appended = store
                        .append(inbox, &body(run, w, i), Flags::new(), None)
                        .unwrap();
                    if flagged(i) {
                        let flags: Flags = [Flag::Flagged].into_iter().collect();
                        store
                            .store_flags(inbox, &[appended.uid], FlagOp::Add, flags, None)
                            .unwrap();
                    }
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {w} {i} {}", appended.uid).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = common::open(dir.path());
        common::account(&store, "crash@example.com");
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed | 1);
    let mut acked: Vec<(u32, u32, u32, u32)> = Vec::new(); // run, writer, i, uid
    let mut highest_uid = 0;
    for run in 0..RUNS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("IRONPOST_STORE_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("child never got ready");
            // libtest may print "test crash_child ... " on the same line first.
            if line.ends_with("READY") {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30));
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let mut this_run = 0;
        for line in rx.try_iter() {
            let Some(at) = line.find("ACK ") else {
                continue;
            };
            let parts: Vec<&str> = line[at..].split_whitespace().collect();
            if parts.len() == 4 {
                let n: Vec<u32> = parts[1..].iter().map(|p| p.parse().unwrap()).collect();
                acked.push((run, n[0], n[1], n[2]));
                this_run += 1;
            }
        }

        // Restart and check everything acknowledged so far.
        let store = common::open(dir.path());
        let inbox = inbox(&store);
        for &(r, w, i, uid) in &acked {
            let got = store
                .read_message(inbox, uid)
                .unwrap_or_else(|e| panic!("run {run}: acknowledged UID {uid} lost: {e}"));
            let want = body(r, w, i);
            assert_eq!(got, want, "run {run}: UID {uid} has the wrong bytes");
            assert_eq!(
                store.blobs().path(&BlobId::of(&want)).is_file(),
                want.len() > inline_max(),
                "run {run}: UID {uid} of {} octets is not where its size says",
                want.len()
            );
        }
        let report = store.check().unwrap();
        assert!(report.is_clean(), "run {run}: {report:?}");
        let messages = store.messages(inbox).unwrap();
        for &(_, _, i, uid) in &acked {
            let m = messages.iter().find(|m| m.uid == uid).unwrap();
            assert_eq!(
                m.flags.contains(&Flag::Flagged),
                flagged(i),
                "run {run}: UID {uid} has lost or gained its flag"
            );
        }
        let run_max = acked
            .iter()
            .filter(|a| a.0 == run)
            .map(|a| a.3)
            .max()
            .unwrap_or(0);
        assert!(
            acked
                .iter()
                .filter(|a| a.0 == run)
                .all(|a| a.3 > highest_uid),
            "run {run}: a UID did not grow past {highest_uid}"
        );
        highest_uid = highest_uid
            .max(run_max)
            .max(messages.last().map_or(0, |m| m.uid));
        let this_inline = acked.iter().filter(|a| a.0 == run && small(a.2)).count();
        eprintln!(
            "run {run}: {this_run} appends acknowledged ({this_inline} inline), {} messages",
            messages.len()
        );
    }
    let inline = acked.iter().filter(|a| small(a.2)).count();
    assert!(
        inline > 0 && inline < acked.len(),
        "the child should have appended inline and file bodies: {inline} of {}",
        acked.len()
    );
}
