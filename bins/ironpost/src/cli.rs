//! The command line of `ironpost`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ironpost, a complete self-hosted mail server.
#[derive(Debug, Parser)]
#[command(name = "ironpost", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `ironpost`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mail server.
    Serve {
        /// Configuration file (TOML). Without it the embedded defaults apply.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Parses `args` and runs the command; the exit code tells success.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Serve { config } => serve(config),
    }
}

fn serve(config: Option<PathBuf>) -> ExitCode {
    if let Some(path) = &config
        && !path.is_file()
    {
        eprintln!(
            "ironpost: configuration file {} does not exist",
            path.display()
        );
        return ExitCode::from(2);
    }
    println!(
        "ironpost {}: no protocol listener exists yet in this version; nothing to serve",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::SUCCESS
}
