//! The running server: listeners, protocol sessions, the delivery worker,
//! and the orderly stop on SIGTERM or SIGINT.
//!
//! Everything is bound before anything is served, so a port that cannot be
//! bound stops the start with an error naming it. On a stop signal the
//! listeners close at once; each session ends at its next point with no
//! transaction in progress (an SMTP session after the `250` of its message),
//! and the server waits for them up to `server.shutdown_seconds`. A message
//! is acknowledged only once durable, so a session cut off after that
//! deadline loses nothing it was told was accepted.

mod conn;
mod delivery;
mod listen;
mod smtp;
mod spool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ironpost_store::Store;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tracing::{info, warn};

use crate::config::{self, Config, ConfigError, TlsMode};
use listen::{Accepting, ListenerContext};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A listener's certificate or key is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listening address could not be bound.
    #[error("listener {listener}: cannot listen on {address}: {source}")]
    Bind {
        /// The listener's name.
        listener: String,
        /// The address.
        address: SocketAddr,
        /// The cause (address in use, permission denied, ...).
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or the signal handlers could not be set up.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(config: &Config, store: Store) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ironpost")
        .build()
        .map_err(RunError::Runtime)?;
    let result = runtime.block_on(serve(config, store));
    // Sessions still open after the grace period are dropped here.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn serve(config: &Config, store: Store) -> Result<(), RunError> {
    let (stop, stopped) = watch::channel(false);
    let (alive, mut all_gone) = mpsc::channel::<()>(1);
    let queued = Arc::new(Notify::new());
    let service = Arc::new(smtp::SmtpService::new(
        config,
        store.clone(),
        queued.clone(),
    ));

    let mut loops = Vec::new();
    for (i, listener) in config.smtp.listeners.iter().enumerate() {
        let tls = match listener.mode {
            TlsMode::Plain => None,
            _ => {
                let (cert, key) = config.listener_tls_files(listener);
                let pair = config::load_pair(&cert, &key)?;
                let acceptor =
                    conn::tls_acceptor(pair).map_err(|problem| ConfigError::Invalid {
                        key: format!("smtp.listeners[{i}].cert"),
                        problem,
                    })?;
                Some(acceptor)
            }
        };
        let context = Arc::new(ListenerContext {
            name: listener.name.clone(),
            mode: listener.mode,
            auth_required: listener.auth_required,
            tls,
        });
        let limit = (config.smtp.max_connections > 0)
            .then(|| Arc::new(Semaphore::new(config.smtp.max_connections as usize)));
        let addresses = listener.addresses()?;
        let mut bound = 0;
        for (j, &address) in addresses.iter().enumerate() {
            let socket = match listen::bind(address) {
                Ok(socket) => socket,
                // A host without IPv6 still serves the listener's other
                // addresses (the defaults list `[::]` beside `0.0.0.0`).
                Err(e) if no_ipv6(address, &e) && (bound > 0 || j + 1 < addresses.len()) => {
                    warn!(listener = %listener.name, %address, error = %e, "IPv6 is not available here; skipping this address");
                    continue;
                }
                Err(source) => {
                    return Err(RunError::Bind {
                        listener: listener.name.clone(),
                        address,
                        source,
                    });
                }
            };
            bound += 1;
            info!(
                listener = %listener.name,
                %address,
                tls = ?listener.mode,
                auth_required = listener.auth_required,
                "listening"
            );
            let service = service.clone();
            loops.push(Accepting {
                listener: socket,
                context: context.clone(),
                limit: limit.clone(),
                shutdown: stopped.clone(),
                alive: alive.clone(),
                busy: b"421 4.7.0 Too many connections, try again later\r\n",
                serve: move |context, conn, shutdown| {
                    smtp::run(service.clone(), context, conn, shutdown)
                },
            });
        }
    }
    for accepting in loops {
        tokio::spawn(listen::accept_loop(accepting));
    }
    let delivery = tokio::spawn(delivery::run(
        store,
        config.server.hostname.clone(),
        config.delivery.workers as usize,
        queued,
        stopped.clone(),
    ));
    info!(hostname = %config.server.hostname, "server ready");

    let signal = stop_signal().await.map_err(RunError::Runtime)?;
    info!(
        signal,
        "stopping: listeners closed, open sessions finish their transaction"
    );
    let _ = stop.send(true);
    drop(alive);
    let grace = Duration::from_secs(config.server.shutdown_seconds);
    if tokio::time::timeout(grace, all_gone.recv()).await.is_err() {
        warn!(
            seconds = grace.as_secs(),
            "sessions still open after the grace period are cut off"
        );
    }
    if tokio::time::timeout(grace, delivery).await.is_err() {
        warn!("the delivery pass in progress is cut off; it resumes at the next start");
    }
    info!("stopped");
    Ok(())
}

/// Whether binding `address` failed because the host has no IPv6 at all
/// (EAFNOSUPPORT) or not that IPv6 address (EADDRNOTAVAIL).
fn no_ipv6(address: SocketAddr, error: &std::io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    const EADDRNOTAVAIL: i32 = 99;
    address.is_ipv6() && matches!(error.raw_os_error(), Some(EAFNOSUPPORT | EADDRNOTAVAIL))
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
