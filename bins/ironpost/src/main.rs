//! The `ironpost` command: parses the command line and hands over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ironpost::cli::run(std::env::args_os())
}
