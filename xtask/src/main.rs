//! `cargo xtask`: the project's chores, written in Rust so they run the same
//! everywhere cargo does.
//!
//! ```text
//! cargo xtask ci                 fmt, clippy, tests, cargo-deny, fuzz smoke
//! cargo xtask test               the whole test suite (checks external programs first)
//! cargo xtask fuzz --smoke       every fuzz target for a short bounded time
//! cargo xtask fuzz TARGET [--seconds N]
//! cargo xtask bench NAME         a benchmark (see `cargo xtask bench --list`)
//! cargo xtask deps [--apt]       the external programs the tests need
//! ```

mod bench_imap;
mod bench_pop3;
mod bench_smtp;
mod bench_util;
mod dovecot;
mod mime_corpus;
mod mime_goldens;
mod tools;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use tools::{REQUIRED, missing};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("deps") => deps(&args[1..]),
        Some("mime-corpus") => mime_corpus::run(&args[1..]),
        Some("mime-goldens") => mime_goldens::run(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <ci | test | fuzz [--smoke | TARGET] [--seconds N] | bench NAME | deps [--apt]>";

/// Seconds each target runs in `fuzz --smoke` unless `IRONPOST_FUZZ_SECONDS` says otherwise.
const SMOKE_SECONDS: u64 = 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    // What `cargo run` set for this program (its manifest directory, its
    // package's name...) is not the nested build's: some build scripts
    // (ring's) rerun when it changes, and would rebuild everything above
    // them each time a build alternates with an xtask's.
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        {
            cmd.env_remove(&*name);
        }
    }
    cmd
}

fn run(mut cmd: Command) -> Result {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn ci() -> Result {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    test()?;
    let mut deny = cargo();
    // The advisory database is a git repository fetched from the network;
    // CI has only the package registries, so advisories are checked where
    // the network allows (`cargo deny check advisories`).
    deny.args(["deny", "check", "bans", "licenses", "sources"]);
    run(deny)?;
    fuzz(&["--smoke".to_string()])
}

fn test() -> Result {
    let absent = missing(REQUIRED);
    if !absent.is_empty() {
        let mut message =
            String::from("the tests need external programs that are not installed:\n");
        for tool in &absent {
            message.push_str(&format!(
                "  - {} (Debian package {}; used by {})\n",
                tool.program, tool.package, tool.used_by
            ));
        }
        message.push_str(&format!(
            "install them with: apt-get install -y {}",
            tools::packages(&absent).join(" ")
        ));
        return Err(message);
    }
    // The end-to-end tests in tests/ start the built binary.
    let mut build = cargo();
    build.args(["build", "--package", "ironpost", "--bin", "ironpost"]);
    run(build)?;
    let mut nextest = cargo();
    nextest.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    run(nextest)?;
    // nextest does not run doctests; the crate docs carry run loops that must compile and run.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    run(doc)
}

fn fuzz(args: &[String]) -> Result {
    let mut smoke = false;
    let mut target = None;
    let mut seconds = env::var("IRONPOST_FUZZ_SECONDS")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| format!("IRONPOST_FUZZ_SECONDS={s} is not a number"))
        })
        .transpose()?;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--seconds" => {
                let value = iter.next().ok_or("--seconds needs a number")?;
                seconds = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--seconds {value}: not a number"))?,
                );
            }
            name if !name.starts_with('-') => target = Some(name.to_string()),
            other => return Err(format!("fuzz: unknown option {other}\n{USAGE}")),
        }
    }
    let targets = match (smoke, target) {
        (true, None) => fuzz_targets()?,
        (false, Some(t)) => vec![t],
        _ => return Err(format!("fuzz: give either --smoke or one target\n{USAGE}")),
    };
    let seconds = seconds.unwrap_or(if smoke { SMOKE_SECONDS } else { 600 });
    if targets.is_empty() {
        eprintln!("xtask: no fuzz targets in fuzz/Cargo.toml");
        return Ok(());
    }
    let fuzz_dir = root().join("fuzz");
    let mut build = fuzz_cargo();
    build.args(["fuzz", "build", "--fuzz-dir"]).arg(&fuzz_dir);
    run(build)?;
    for target in targets {
        // New inputs go to a scratch corpus under target/; the committed seeds are read only.
        let scratch = root().join("target/fuzz-corpus").join(&target);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let mut cmd = fuzz_cargo();
        cmd.args(["fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg(&target)
            .arg(&scratch);
        let seeds = fuzz_dir.join("seeds").join(&target);
        if seeds.is_dir() {
            cmd.arg(seeds);
        }
        cmd.arg("--");
        cmd.arg(format!("-max_total_time={seconds}"));
        cmd.arg("-rss_limit_mb=2048");
        cmd.arg("-timeout=10");
        let dict = fuzz_dir.join("dict").join(format!("{target}.dict"));
        if dict.is_file() {
            cmd.arg(format!("-dict={}", dict.display()));
        }
        run(cmd)?;
    }
    Ok(())
}

/// `cargo fuzz` needs nightly features: the nightly toolchain when it is
/// installed, otherwise the stable one with `RUSTC_BOOTSTRAP=1`.
fn fuzz_cargo() -> Command {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    let mut cmd = if nightly {
        let mut cmd = Command::new("rustup");
        cmd.args(["run", "nightly", "cargo"]);
        cmd
    } else {
        let mut cmd = Command::new("cargo");
        cmd.env("RUSTC_BOOTSTRAP", "1");
        cmd
    };
    cmd.current_dir(root());
    cmd
}

/// The `[[bin]]` names of fuzz/Cargo.toml: one entry per target.
fn fuzz_targets() -> Result<Vec<String>> {
    let path = root().join("fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bin_names(&text))
}

fn bin_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some(value) = line
                .strip_prefix("name")
                .map(str::trim_start)
                .and_then(|v| v.strip_prefix('='))
        {
            names.push(value.trim().trim_matches('"').to_string());
        }
    }
    names
}

/// The benchmarks that are drivers here rather than cargo benches:
/// `smtp-source` against the `ironpost` binary and against Postfix, our
/// POP3 client's RETRs from the `ironpost` binary and from Dovecot, and our
/// IMAP load client and idle connections against both.
const SMTP_BENCH: &str = "smtp";
const POP3_BENCH: &str = "pop3";
const IMAP_BENCH: &str = "imap";

/// Benchmarks: name, package, bench target.
const BENCHES: &[(&str, &str, &str)] = &[
    ("smtp-proto", "ironpost-smtp-proto", "throughput"),
    ("mime", "ironpost-mime", "bodystructure"),
    ("store", "ironpost-store", "append"),
];

fn bench(args: &[String]) -> Result {
    let list = || {
        BENCHES
            .iter()
            .map(|(name, _, _)| *name)
            .chain([SMTP_BENCH, POP3_BENCH, IMAP_BENCH])
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = match args.first().map(String::as_str) {
        None | Some("--list") => {
            println!("benchmarks: {}", list());
            return Ok(());
        }
        Some(SMTP_BENCH) => return bench_smtp::run(&args[1..]),
        Some(POP3_BENCH) => return bench_pop3::run(&args[1..]),
        Some(IMAP_BENCH) => return bench_imap::run(&args[1..]),
        Some(name) => name,
    };
    let (_, package, target) = BENCHES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| format!("no benchmark named {name}; there are: {}", list()))?;
    let mut cmd = cargo();
    cmd.args(["bench", "--package", package, "--bench", target, "--"]);
    cmd.args(&args[1..]);
    run(cmd)
}

fn deps(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("--apt") {
        println!("{}", tools::packages(REQUIRED).join(" "));
    } else {
        for tool in REQUIRED {
            println!("{}\t{}\t{}", tool.program, tool.package, tool.used_by);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bin_names;

    #[test]
    fn finds_every_bin_entry() {
        let manifest = r#"
[package]
name = "ironpost-fuzz"

[[bin]]
name = "smtp_server"
path = "fuzz_targets/smtp_server.rs"

[[bin]]
name   =   "reply"
path = "fuzz_targets/reply.rs"
"#;
        assert_eq!(bin_names(manifest), ["smtp_server", "reply"]);
    }
}
