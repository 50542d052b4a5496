//! Shared harness for the end-to-end tests: where the built `ironpost` binary
//! is, and how to run it on a fresh data directory.
//!
//! The binary is built by `cargo xtask test` before the tests run; a test that
//! cannot find it fails with a message saying so rather than skipping.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod mail;
pub mod postfix;
pub mod server;

/// The path of the `ironpost` binary under test: `IRONPOST_BIN` when set,
/// otherwise the one in the same target directory as this test executable.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("IRONPOST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test> -> target/<profile>/ironpost
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps");
    let path = profile_dir.join("ironpost");
    assert!(
        path.is_file(),
        "{} does not exist: build it with `cargo build -p ironpost` (cargo xtask test does)",
        path.display()
    );
    path
}

/// Runs `ironpost` with `args` in a fresh temporary directory and returns its output.
pub fn ironpost(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temporary directory");
    Command::new(binary())
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("ironpost starts")
}

/// A fresh working directory with a configuration file whose data directory
/// is inside it, to run `ironpost` commands against the same store.
pub struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    /// An environment whose configuration sets only the data directory and
    /// the host name.
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// An environment whose configuration file is `extra` after the
    /// `[server]` section that sets the data directory and the host name.
    pub fn with_config(extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("ironpost.toml");
        let data = dir.path().join("data");
        let text = format!(
            "[server]\nhostname = \"mail.example.test\"\ndata_dir = {:?}\n{extra}",
            data.display().to_string()
        );
        std::fs::write(&config, text).expect("configuration written");
        Env { dir, config }
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The data directory the configuration names.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `ironpost --config FILE args` with nothing on standard input.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, b"")
    }

    /// Runs `ironpost --config FILE args` with `stdin` as standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut all: Vec<&OsStr> = vec![OsStr::new("--config"), self.config.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        run_in(self.dir.path(), &all, stdin)
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// Runs `ironpost args` in `dir` with `stdin` as standard input.
pub fn run_in<S: AsRef<OsStr>>(dir: &Path, args: &[S], stdin: &[u8]) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ironpost starts");
    let mut input = child.stdin.take().expect("piped stdin");
    // A command that does not read its input may exit before it is written.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("ironpost runs")
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that the command succeeded and returns its standard output.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts that the command exited with `code` and said something containing
/// `needle` on standard error; returns standard error.
#[track_caller]
pub fn fails(out: &Output, code: i32, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {err}",
        stdout(out)
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    err
}

/// Parses standard output as JSON, after checking success.
#[track_caller]
pub fn json(out: &Output) -> serde_json::Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
