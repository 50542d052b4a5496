//! The external programs the test suite uses, in one list: `cargo xtask test`
//! refuses to run without them and `.ci/run` installs their packages from it
//! (`cargo xtask deps --apt`).

use std::env;
use std::path::Path;

/// A program that some test runs for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tool {
    /// The command looked up on `PATH`, or the name of what `probe` checks.
    pub(crate) program: &'static str,
    /// A command that succeeds only when the tool is usable, for what is not
    /// a program of its own (a Perl module); empty: look `program` up on `PATH`.
    pub(crate) probe: &'static [&'static str],
    /// The Debian package that installs it.
    pub(crate) package: &'static str,
    /// Which tests need it.
    pub(crate) used_by: &'static str,
}

/// Every external program the test suite needs. Tests never skip when one is
/// missing: `cargo xtask test` stops first with the list of what is absent.
pub(crate) const REQUIRED: &[Tool] = &[
    Tool {
        program: "python3",
        package: "python3",
        probe: &[],
        used_by: "tests/ (protocol clients from the standard library)",
    },
    Tool {
        program: "swaks",
        package: "swaks",
        probe: &[],
        used_by: "tests/tests/smtp.rs (submission, SMTPS, AUTH)",
    },
    Tool {
        program: "Net::SSLeay",
        package: "libnet-ssleay-perl",
        probe: &["perl", "-MNet::SSLeay", "-e1"],
        used_by: "swaks --tls and --tls-on-connect",
    },
    Tool {
        program: "postfix",
        package: "postfix",
        probe: &[],
        used_by: "tests/tests/postfix.rs (a real MTA relaying to Ironpost)",
    },
    Tool {
        program: "smtp-source",
        package: "postfix",
        probe: &[],
        used_by: "cargo xtask bench smtp (the load generator)",
    },
    Tool {
        program: "fetchmail",
        package: "fetchmail",
        probe: &[],
        used_by: "tests/tests/pop3_clients.rs (downloads over STLS and POP3S, keep and delete)",
    },
    Tool {
        program: "curl",
        package: "curl",
        probe: &[],
        used_by: "tests/tests/pop3_clients.rs and imap_clients.rs (curl's POP3 and IMAP clients)",
    },
    Tool {
        program: "mbsync",
        package: "isync",
        probe: &[],
        used_by: "tests/tests/imap_clients.rs (a 500-message Maildir sync down and back up)",
    },
];

/// The tools of `tools` that are not on `PATH`.
pub(crate) fn missing(tools: &[Tool]) -> Vec<Tool> {
    tools.iter().copied().filter(|t| !usable(t)).collect()
}

/// The Debian packages of `tools`, each once, in order.
pub(crate) fn packages(tools: &[Tool]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for tool in tools {
        if !out.contains(&tool.package) {
            out.push(tool.package);
        }
    }
    out
}

fn usable(tool: &Tool) -> bool {
    match tool.probe {
        [] => on_path(tool.program),
        [program, args @ ..] => std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

fn on_path(program: &str) -> bool {
    let Some(path) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_program_that_is_not_installed() {
        let tools = [
            Tool {
                program: "sh",
                package: "dash",
                probe: &[],
                used_by: "x",
            },
            Tool {
                program: "ironpost-no-such-program",
                package: "nothing",
                probe: &[],
                used_by: "y",
            },
        ];
        assert_eq!(missing(&tools), [tools[1]]);
    }

    #[test]
    fn a_failing_probe_is_missing() {
        let tools = [
            Tool {
                program: "works",
                package: "a",
                probe: &["sh", "-c", "exit 0"],
                used_by: "",
            },
            Tool {
                program: "fails",
                package: "b",
                probe: &["sh", "-c", "exit 1"],
                used_by: "",
            },
        ];
        assert_eq!(missing(&tools), [tools[1]]);
    }

    #[test]
    fn lists_each_package_once() {
        let tools = [
            Tool {
                program: "a",
                package: "p",
                probe: &[],
                used_by: "",
            },
            Tool {
                program: "b",
                package: "q",
                probe: &[],
                used_by: "",
            },
            Tool {
                program: "c",
                package: "p",
                probe: &[],
                used_by: "",
            },
        ];
        assert_eq!(packages(&tools), ["p", "q"]);
    }
}
