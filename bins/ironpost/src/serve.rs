//! `ironpost serve`: prepares everything a running server needs (data
//! directory, certificate, store) from a validated [`Config`], then runs the
//! listeners.

use std::path::PathBuf;

use ironpost_store::Store;

use crate::config::{self, Config, ConfigError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is invalid or names unusable files.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] ironpost_store::Error),
    /// A listener could not start.
    #[error(transparent)]
    Run(#[from] crate::server::RunError),
}

impl ServeError {
    /// The process exit code: 2 for a configuration problem, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Config(_) | ServeError::Run(crate::server::RunError::Config(_)) => 2,
            _ => 1,
        }
    }
}

/// Runs the server on `config`: validates it, creates the data directory,
/// makes sure the certificate exists (generating a self-signed one on first
/// start), opens the store, then serves until SIGTERM or SIGINT.
pub fn serve(config: Config) -> Result<(), ServeError> {
    config.validate()?;
    init_logging(&config);
    let data_dir = config.data_dir().to_path_buf();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let (cert, _key) = config::ensure_certificate(&config)?;
    let store = Store::open(config.store_config())?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data = %data_dir.display(),
        certificate = %cert.display(),
        "starting"
    );
    crate::server::run(&config, store)?;
    Ok(())
}

/// Logs to standard error at the configured level (`log.level`, which
/// [`Config::validate`] has checked). `RUST_LOG`, when set, wins.
fn init_logging(config: &Config) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Only the first call in a process installs a subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
