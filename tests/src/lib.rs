//! Shared harness for the end-to-end tests: where the built `ironpost` binary
//! is, and how to run it on a fresh data directory.
//!
//! The binary is built by `cargo xtask test` before the tests run; a test that
//! cannot find it fails with a message saying so rather than skipping.

use std::path::PathBuf;
use std::process::{Command, Output};

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
