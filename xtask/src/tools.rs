//! The external programs the test suite uses, in one list: `cargo xtask test`
//! refuses to run without them and `.ci/run` installs their packages from it
//! (`cargo xtask deps --apt`).

use std::env;
use std::path::Path;

/// A program that some test runs for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tool {
    /// The command looked up on `PATH`.
    pub(crate) program: &'static str,
    /// The Debian package that installs it.
    pub(crate) package: &'static str,
    /// Which tests need it.
    pub(crate) used_by: &'static str,
}

/// Every external program the test suite needs. Tests never skip when one is
/// missing: `cargo xtask test` stops first with the list of what is absent.
pub(crate) const REQUIRED: &[Tool] = &[Tool {
    program: "python3",
    package: "python3",
    used_by: "tests/ (protocol clients from the standard library)",
}];

/// The tools of `tools` that are not on `PATH`.
pub(crate) fn missing(tools: &[Tool]) -> Vec<Tool> {
    tools
        .iter()
        .copied()
        .filter(|t| !on_path(t.program))
        .collect()
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
                used_by: "x",
            },
            Tool {
                program: "ironpost-no-such-program",
                package: "nothing",
                used_by: "y",
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
                used_by: "",
            },
            Tool {
                program: "b",
                package: "q",
                used_by: "",
            },
            Tool {
                program: "c",
                package: "p",
                used_by: "",
            },
        ];
        assert_eq!(packages(&tools), ["p", "q"]);
    }
}
