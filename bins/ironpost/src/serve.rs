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
}

impl ServeError {
    /// The process exit code: 2 for a configuration problem, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Config(_) => 2,
            _ => 1,
        }
    }
}

/// Runs the server on `config`: validates it, creates the data directory,
/// makes sure the certificate exists (generating a self-signed one on first
/// start), opens the store, then serves.
pub fn serve(config: Config) -> Result<(), ServeError> {
    config.validate()?;
    let data_dir = config.data_dir().to_path_buf();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let (cert, _key) = config::ensure_certificate(&config)?;
    let store = Store::open(config.store_config())?;
    println!(
        "ironpost {}: data in {}, certificate {}",
        env!("CARGO_PKG_VERSION"),
        data_dir.display(),
        cert.display()
    );
    println!("no protocol listener exists yet in this version; nothing to serve");
    drop(store);
    Ok(())
}
