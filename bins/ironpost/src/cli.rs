//! The command line of `ironpost`: parses it with clap and hands each
//! subcommand to its module (`serve`, `config`, `admin::*`).
//!
//! Exit codes: 0 success, 1 the operation was refused (or failed), 2 a usage
//! or configuration error.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin::{self, AdminError, Output};
use crate::config::Config;

/// Ironpost, a complete self-hosted mail server.
#[derive(Debug, Parser)]
#[command(name = "ironpost", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without it the built-in defaults apply.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `ironpost`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mail server.
    Serve,
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage local domains.
    #[command(subcommand)]
    Domain(admin::domain::DomainCommand),
    /// Manage accounts.
    #[command(subcommand)]
    Account(admin::account::AccountCommand),
    /// Manage aliases.
    #[command(subcommand)]
    Alias(admin::alias::AliasCommand),
    /// Manage distribution lists.
    #[command(subcommand)]
    List(admin::list::ListCommand),
    /// Inspect and remove queued messages.
    #[command(subcommand)]
    Queue(admin::queue::QueueCommand),
}

/// The `config` verbs.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file; prints `ok: FILE` or the problem.
    Check {
        /// The file (default: the one given with --config, else the built-in defaults).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML, every default included.
    Show,
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
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::Serve => serve(config_path),
        Command::Config(ConfigCommand::Check { file }) => check(file.as_deref().or(config_path)),
        Command::Config(ConfigCommand::Show) => show(config_path),
        Command::Domain(cmd) => {
            let json = cmd.json();
            admin_command(config_path, json, |store| admin::domain::run(store, cmd))
        }
        Command::Account(cmd) => {
            let json = cmd.json();
            admin_command(config_path, json, |store| {
                admin::account::run(store, cmd, &mut io::stdin().lock())
            })
        }
        Command::Alias(cmd) => {
            let json = cmd.json();
            admin_command(config_path, json, |store| admin::alias::run(store, cmd))
        }
        Command::List(cmd) => {
            let json = cmd.json();
            admin_command(config_path, json, |store| admin::list::run(store, cmd))
        }
        Command::Queue(cmd) => {
            let json = cmd.json();
            admin_command(config_path, json, |store| admin::queue::run(store, cmd))
        }
    }
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("ironpost: {message}");
    ExitCode::from(code)
}

/// The configuration from `path` (or the defaults), validated.
fn load(path: Option<&Path>) -> Result<Config, ExitCode> {
    Config::load_valid(path).map_err(|err| fail(err, 2))
}

fn serve(path: Option<&Path>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match crate::serve::serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err, err.exit_code()),
    }
}

fn check(path: Option<&Path>) -> ExitCode {
    match Config::load_valid(path) {
        Ok(_) => {
            match path {
                Some(path) => println!("ok: {}", path.display()),
                None => println!("ok: the built-in defaults"),
            }
            ExitCode::SUCCESS
        }
        Err(err) => fail(err, 2),
    }
}

fn show(path: Option<&Path>) -> ExitCode {
    match load(path) {
        Ok(config) => {
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn admin_command(
    path: Option<&Path>,
    json: bool,
    command: impl FnOnce(&ironpost_store::Store) -> Result<Output, AdminError>,
) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let result = admin::open_store(&config).and_then(|store| command(&store));
    match result {
        Ok(output) => {
            let mut stdout = io::stdout().lock();
            match output
                .write(json, &mut stdout)
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(format!("cannot write the output: {err}"), 1),
            }
        }
        Err(err) => fail(&err, err.exit_code()),
    }
}
