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
mod imap;
mod listen;
mod pop3;
mod smtp;
mod spool;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ironpost_store::Store;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tracing::{info, warn};

use crate::config::{self, Config, ConfigError, Listener, TlsMode};
use conn::Connection;
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
    let ids = Arc::new(SessionIds::new());
    let smtp = Arc::new(smtp::SmtpService::new(
        config,
        store.clone(),
        queued.clone(),
        ids.clone(),
    ));
    let pop3 = Arc::new(pop3::Pop3Service::new(config, store.clone(), ids.clone()));
    let imap = Arc::new(imap::ImapService::new(config, store.clone(), ids));
    match store.clear_maildrop_locks() {
        Ok(0) => {}
        Ok(n) => info!(locks = n, "released the POP3 locks of the previous run"),
        Err(e) => warn!(error = %e, "cannot release the POP3 locks of the previous run"),
    }

    // Bind everything first: nothing is served unless every listener binds.
    let mut loops: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
    let shared = Shared {
        stopped: stopped.clone(),
        alive: alive.clone(),
    };
    for (i, listener) in config.smtp.listeners.iter().enumerate() {
        let service = smtp.clone();
        bind_listener(
            config,
            ("smtp", i, listener),
            config.smtp.max_connections,
            &shared,
            b"421 4.7.0 Too many connections, try again later\r\n",
            move |context, conn, shutdown| smtp::run(service.clone(), context, conn, shutdown),
            &mut loops,
        )?;
    }
    for (i, listener) in config.pop3.listeners.iter().enumerate() {
        let service = pop3.clone();
        bind_listener(
            config,
            ("pop3", i, listener),
            config.pop3.max_connections,
            &shared,
            b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
            move |context, conn, shutdown| pop3::run(service.clone(), context, conn, shutdown),
            &mut loops,
        )?;
    }
    for (i, listener) in config.imap.listeners.iter().enumerate() {
        let service = imap.clone();
        bind_listener(
            config,
            ("imap", i, listener),
            config.imap.max_connections,
            &shared,
            b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
            move |context, conn, shutdown| imap::run(service.clone(), context, conn, shutdown),
            &mut loops,
        )?;
    }
    drop(shared);
    for accept_loop in loops {
        tokio::spawn(accept_loop);
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

/// What every accept loop shares: the stop signal and the liveness channel.
struct Shared {
    stopped: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

/// Binds one listener's addresses and adds their accept loops to `loops`.
fn bind_listener<F, Fut>(
    config: &Config,
    (section, i, listener): (&str, usize, &Listener),
    max_connections: u32,
    shared: &Shared,
    busy: &'static [u8],
    serve: F,
    loops: &mut Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> Result<(), RunError>
where
    F: Fn(Arc<ListenerContext>, Connection, watch::Receiver<bool>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tls = match listener.mode {
        TlsMode::Plain => None,
        _ => {
            let (cert, key) = config.listener_tls_files(listener);
            let pair = config::load_pair(&cert, &key)?;
            let acceptor = conn::tls_acceptor(pair).map_err(|problem| ConfigError::Invalid {
                key: format!("{section}.listeners[{i}].cert"),
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
    let limit = (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections as usize)));
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
            service = section,
            listener = %listener.name,
            %address,
            tls = ?listener.mode,
            auth_required = listener.auth_required,
            "listening"
        );
        loops.push(Box::pin(listen::accept_loop(Accepting {
            listener: socket,
            context: context.clone(),
            limit: limit.clone(),
            shutdown: shared.stopped.clone(),
            alive: shared.alive.clone(),
            busy,
            serve: serve.clone(),
        })));
    }
    Ok(())
}

/// Session ids, unique across restarts: the server's start time and a
/// counter, for logs and `Received:` lines.
pub(crate) struct SessionIds {
    started: u64,
    next: AtomicU64,
}

impl SessionIds {
    fn new() -> SessionIds {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        SessionIds {
            started,
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:X}{:04X}", self.started, n)
    }
}

/// Runs blocking work (store calls, argon2, file reads) off the async
/// threads. `None` when the task panicked (a bug), which the caller answers
/// as a temporary failure.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The start of every session: its id, and the TLS handshake on an
/// implicit-TLS listener. `None` (logged) when the handshake fails.
pub(crate) async fn begin(
    ids: &SessionIds,
    listener: &ListenerContext,
    conn: &mut Connection,
) -> Option<String> {
    let id = ids.next();
    match handshake(listener, conn).await {
        Ok(()) => Some(id),
        Err(why) => {
            info!(session = %id, client = %conn.peer().ip(), listener = %listener.name, "{why}");
            None
        }
    }
}

/// The TLS handshake of an implicit-TLS listener, before the protocol
/// starts; nothing to do on other listeners.
async fn handshake(listener: &ListenerContext, conn: &mut Connection) -> Result<(), &'static str> {
    if listener.mode == TlsMode::ImplicitTls {
        start_tls(listener, conn).await
    } else {
        Ok(())
    }
}

/// Runs the server side of a TLS handshake, within [`HANDSHAKE_TIMEOUT`].
pub(crate) async fn start_tls(
    listener: &ListenerContext,
    conn: &mut Connection,
) -> Result<(), &'static str> {
    let Some(acceptor) = &listener.tls else {
        return Err("no certificate");
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.start_tls(acceptor)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("TLS handshake failed"),
        Err(_) => Err("TLS handshake timed out"),
    }
}

/// Sleeps until `deadline`, or for ever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
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
