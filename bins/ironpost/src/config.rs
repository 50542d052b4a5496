//! The server's static configuration: one TOML file in which every key has a
//! default, so that an empty file (or none) is a working configuration.
//!
//! [`Config::load`] reads and parses a file (unknown keys are refused),
//! [`Config::validate`] checks every value and names the key of the first bad
//! one, [`Config::to_toml`] renders the effective configuration with every
//! default spelled out. Relative paths in `[store]` and `[tls]` are taken
//! under `server.data_dir`; a relative `data_dir` is taken from the working
//! directory.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ironpost_store::StoreConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// What is wrong with a configuration. The text names the file or the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, has an unknown key, or a value of the wrong type.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column and the offending key).
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key, e.g. `smtp.listeners[1].bind[0]`.
        key: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// A file or directory the configuration names could not be created or written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `[server]`: host name and data directory.
    pub server: ServerConfig,
    /// `[store]`: where domains, accounts and mail are kept.
    pub store: StoreSection,
    /// `[tls]`: the certificate and key.
    pub tls: TlsConfig,
    /// `[smtp]`: SMTP listeners and session limits.
    pub smtp: SmtpConfig,
    /// `[pop3]`: POP3 listeners and session limits.
    pub pop3: Pop3Config,
    /// `[imap]`: IMAP listeners and session limits.
    pub imap: ImapConfig,
    /// `[delivery]`: the delivery workers.
    pub delivery: DeliveryConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The server's name in greetings, `Received:` lines and the
    /// self-signed certificate. Default: the system's host name, or
    /// `localhost` when it has none.
    pub hostname: String,
    /// Where the store, message bodies and generated certificate live.
    /// Default `./ironpost-data`.
    pub data_dir: PathBuf,
    /// On SIGTERM or SIGINT, how long open sessions may take to finish
    /// their transaction before they are cut off. Default 30, at most 3600.
    pub shutdown_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: system_hostname(),
            data_dir: PathBuf::from("./ironpost-data"),
            shutdown_seconds: 30,
        }
    }
}

/// The system's host name when it is a usable one, otherwise `localhost`.
fn system_hostname() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    if check_hostname(&name).is_ok() {
        name.to_ascii_lowercase()
    } else {
        "localhost".to_string()
    }
}

/// Checks a host name: dot-separated labels of letters, digits and hyphens.
fn check_hostname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("must have 1 to 253 characters");
    }
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("every label must have 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with a hyphen");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("only letters, digits, hyphens and dots are allowed");
        }
    }
    Ok(())
}

/// The store backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Backend {
    /// SQLite database plus message files in one directory.
    #[default]
    Sqlite,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreSection {
    /// The backend. Default `sqlite` (the only one so far).
    pub backend: Backend,
    /// Directory of `store.db` and `blobs/`, under `data_dir` when relative.
    /// Default `store`.
    pub dir: PathBuf,
    /// MiB of message headers kept in memory for IMAP SEARCH and SORT on
    /// header fields. Default 32; 0 keeps none.
    pub header_cache_mib: u32,
    /// Longest a flag change (IMAP STORE, `\Seen` set by a FETCH) waits
    /// for its `fsync`, in milliseconds. Default 100; 0 syncs each before
    /// it is answered. A crash of the process loses none either way; a
    /// crash of the machine may lose the flag changes of this last span
    /// (never a message).
    pub flag_sync_ms: u32,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: Backend::Sqlite,
            dir: PathBuf::from("store"),
            header_cache_mib: 32,
            flag_sync_ms: 100,
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// Certificate chain (PEM), under `data_dir` when relative.
    /// Default `tls/cert.pem`.
    pub cert: PathBuf,
    /// Private key (PEM) of the chain's first certificate, under `data_dir`
    /// when relative. Default `tls/key.pem`.
    pub key: PathBuf,
    /// When neither file exists, generate a self-signed pair there on start
    /// (and reuse it afterwards). Default `true`; set `false` when you give
    /// your own certificate, so that a wrong path is an error.
    pub self_signed: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::from("tls/cert.pem"),
            key: PathBuf::from("tls/key.pem"),
            self_signed: true,
        }
    }
}

/// How a listener uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TlsMode {
    /// No TLS at all.
    Plain,
    /// Clear text first; STARTTLS offered.
    Starttls,
    /// TLS from the first byte (SMTPS).
    ImplicitTls,
}

/// One `[[smtp.listeners]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Listener {
    /// A name for logs, unique among the listeners.
    pub name: String,
    /// Socket addresses to listen on, e.g. `"0.0.0.0:25"` and `"[::]:25"`.
    /// An IPv6 address listens on IPv6 only, so both can be given.
    pub bind: Vec<String>,
    /// `plain`, `starttls` or `implicit-tls`.
    pub mode: TlsMode,
    /// Whether a client must authenticate before sending (submission).
    #[serde(default)]
    pub auth_required: bool,
    /// This listener's own certificate chain (PEM), under `data_dir` when
    /// relative; absent: the `[tls]` pair. Given with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// This listener's own private key (PEM); given with `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl Listener {
    fn new(name: &str, port: u16, mode: TlsMode, auth_required: bool) -> Self {
        Listener {
            name: name.to_string(),
            bind: vec![format!("0.0.0.0:{port}"), format!("[::]:{port}")],
            mode,
            auth_required,
            cert: None,
            key: None,
        }
    }

    /// The bind addresses, parsed. Fails only on a configuration that
    /// [`Config::validate`] refuses.
    pub fn addresses(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        self.bind
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse().map_err(|_| {
                    invalid(
                        format!("{}.bind[{i}]", self.name),
                        format!("{a:?} is not a socket address"),
                    )
                })
            })
            .collect()
    }
}

/// What to do with a bare LF (or CR) in a message (SPEC S-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BareLf {
    /// Store it as CRLF.
    #[default]
    Normalize,
    /// Refuse the message with `554`.
    Reject,
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// Greeting text after the host name in the `220` line. Default `ESMTP ready`.
    pub banner: String,
    /// Simultaneous connections per listener; 0 is unlimited. Default 1000.
    pub max_connections: u32,
    /// Idle seconds before `421` and close. Default 600 (SPEC L-2).
    pub timeout_seconds: u64,
    /// Bad commands in a session before it is closed. Default 20.
    pub max_bad_commands: u32,
    /// Largest message in bytes. Default 20 MiB (SPEC S-2).
    pub max_message_size: u64,
    /// Recipients per message. Default 1000.
    pub max_recipients: u32,
    /// Allow AUTH over a connection without TLS. Default `false`.
    pub allow_plaintext_auth: bool,
    /// Bare LF in a message: `normalize` (default) or `reject`.
    pub bare_lf: BareLf,
    /// Accept the null sender `<>` (bounces). Default `true`.
    pub accept_null_sender: bool,
    /// The listeners. Default: `smtp` on port 25 (STARTTLS), `submission`
    /// on 587 (STARTTLS, AUTH required), `smtps` on 465 (implicit TLS, AUTH
    /// required), each on `0.0.0.0` and `[::]`.
    pub listeners: Vec<Listener>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            banner: "ESMTP ready".to_string(),
            max_connections: 1000,
            timeout_seconds: 600,
            max_bad_commands: 20,
            max_message_size: 20 * 1024 * 1024,
            max_recipients: 1000,
            allow_plaintext_auth: false,
            bare_lf: BareLf::Normalize,
            accept_null_sender: true,
            listeners: vec![
                Listener::new("smtp", 25, TlsMode::Starttls, false),
                Listener::new("submission", 587, TlsMode::Starttls, true),
                Listener::new("smtps", 465, TlsMode::ImplicitTls, true),
            ],
        }
    }
}

/// `[pop3]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Pop3Config {
    /// Greeting text after `+OK`. Default `POP3 ready`.
    pub banner: String,
    /// Simultaneous connections per listener; 0 is unlimited. Default 1000.
    pub max_connections: u32,
    /// Idle seconds before the session is closed. Default 600, the minimum
    /// RFC 1939 allows.
    pub timeout_seconds: u64,
    /// Bad commands in a session before it is closed. Default 20.
    pub max_bad_commands: u32,
    /// Allow USER/PASS and AUTH over a connection without TLS. Default `false`.
    pub allow_plaintext_auth: bool,
    /// The listeners. Default: `pop3` on port 110 (STLS) and `pop3s` on 995
    /// (implicit TLS), each on `0.0.0.0` and `[::]`.
    pub listeners: Vec<Listener>,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            banner: "POP3 ready".to_string(),
            max_connections: 1000,
            timeout_seconds: 600,
            max_bad_commands: 20,
            allow_plaintext_auth: false,
            listeners: vec![
                Listener::new("pop3", 110, TlsMode::Starttls, false),
                Listener::new("pop3s", 995, TlsMode::ImplicitTls, false),
            ],
        }
    }
}

/// `[imap]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ImapConfig {
    /// Greeting text after `* OK`. Default `IMAP ready`.
    pub greeting: String,
    /// Simultaneous connections per listener; 0 is unlimited. Default
    /// 10000: mail clients keep a connection or two open per account, most
    /// of them in IDLE.
    pub max_connections: u32,
    /// Seconds without a command before a logged-in session is closed (IDLE
    /// included). Default 1800, the minimum RFC 3501 allows.
    pub timeout_seconds: u64,
    /// Bad commands and failed logins in a session before it is closed.
    /// Default 20.
    pub max_bad_commands: u32,
    /// Allow LOGIN and AUTHENTICATE over a connection without TLS. Default
    /// `false`.
    pub allow_plaintext_auth: bool,
    /// The largest message APPEND takes, in bytes. Default 50 MiB.
    pub max_append_size: u64,
    /// The listeners. Default: `imap` on port 143 (STARTTLS) and `imaps` on
    /// 993 (implicit TLS), each on `0.0.0.0` and `[::]`.
    pub listeners: Vec<Listener>,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            greeting: "IMAP ready".to_string(),
            max_connections: 10_000,
            timeout_seconds: 1800,
            max_bad_commands: 20,
            allow_plaintext_auth: false,
            max_append_size: 50 * 1024 * 1024,
            listeners: vec![
                Listener::new("imap", 143, TlsMode::Starttls, false),
                Listener::new("imaps", 993, TlsMode::ImplicitTls, false),
            ],
        }
    }
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DeliveryConfig {
    /// Local delivery threads sharing each batch of queued messages, 1 to
    /// 256. Default 8: deliveries mostly wait for syncs, and concurrent ones
    /// share them.
    pub workers: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig { workers: 8 }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, optionally followed by
    /// per-module directives such as `info,ironpost::server::smtp=debug`.
    /// Default `info`; `RUST_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
        }
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn check_log_level(spec: &str) -> Result<(), String> {
    if spec.trim().is_empty() {
        return Err("is empty".to_string());
    }
    for directive in spec.split(',') {
        let directive = directive.trim();
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        if let Some(target) = target
            && (target.is_empty()
                || !target
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'))
        {
            return Err(format!("{directive:?} does not name a module"));
        }
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{level:?} is not a level (one of {})",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// The most delivery workers allowed.
const MAX_WORKERS: u32 = 256;
/// The longest grace period of a stop: one hour.
const MAX_SHUTDOWN: u64 = 3600;
/// Longest `store.flag_sync_ms`: flag changes a machine crash may lose stay
/// within seconds.
const MAX_FLAG_SYNC_MS: u32 = 10_000;
/// The longest session timeout allowed: one day.
const MAX_TIMEOUT: u64 = 24 * 3600;

impl Config {
    /// Reads and parses `path`. Missing keys take their defaults; unknown
    /// keys and values of the wrong type are errors. Does not validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses configuration text; the error is the parser's message.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// [`Config::load`] of `path` then [`Config::validate`]; the defaults when
    /// `path` is `None`.
    pub fn load_valid(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = match path {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML, every default written out.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Checks every value, including that the certificate and key files
    /// named (or about to be generated) are usable. The first problem found
    /// is returned, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(problem) = check_hostname(&self.server.hostname) {
            return Err(invalid(
                "server.hostname",
                format!("{:?} {problem}", self.server.hostname),
            ));
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(invalid("server.data_dir", "is empty"));
        }
        if self.data_dir().is_file() {
            return Err(invalid(
                "server.data_dir",
                format!("{} is a file, not a directory", self.data_dir().display()),
            ));
        }
        if self.server.shutdown_seconds > MAX_SHUTDOWN {
            return Err(invalid(
                "server.shutdown_seconds",
                format!(
                    "{} is more than {MAX_SHUTDOWN}",
                    self.server.shutdown_seconds
                ),
            ));
        }
        if self.store.dir.as_os_str().is_empty() {
            return Err(invalid("store.dir", "is empty"));
        }
        if self.store.flag_sync_ms > MAX_FLAG_SYNC_MS {
            return Err(invalid(
                "store.flag_sync_ms",
                format!(
                    "{} is more than {MAX_FLAG_SYNC_MS}",
                    self.store.flag_sync_ms
                ),
            ));
        }
        self.validate_smtp()?;
        self.validate_pop3()?;
        self.validate_imap()?;
        self.validate_listeners()?;
        if !(1..=MAX_WORKERS).contains(&self.delivery.workers) {
            return Err(invalid(
                "delivery.workers",
                format!(
                    "{} is not between 1 and {MAX_WORKERS}",
                    self.delivery.workers
                ),
            ));
        }
        check_log_level(&self.log.level).map_err(|p| invalid("log.level", p))?;
        self.validate_tls()
    }

    fn validate_smtp(&self) -> Result<(), ConfigError> {
        let smtp = &self.smtp;
        if smtp.banner.chars().any(|c| c.is_control()) {
            return Err(invalid("smtp.banner", "has a control character"));
        }
        if !(1..=MAX_TIMEOUT).contains(&smtp.timeout_seconds) {
            return Err(invalid(
                "smtp.timeout_seconds",
                format!(
                    "{} is not between 1 and {MAX_TIMEOUT}",
                    smtp.timeout_seconds
                ),
            ));
        }
        if smtp.max_bad_commands == 0 {
            return Err(invalid("smtp.max_bad_commands", "must be at least 1"));
        }
        if smtp.max_message_size < 1024 {
            return Err(invalid(
                "smtp.max_message_size",
                format!("{} is less than 1024 bytes", smtp.max_message_size),
            ));
        }
        if smtp.max_recipients == 0 {
            return Err(invalid("smtp.max_recipients", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_pop3(&self) -> Result<(), ConfigError> {
        let pop3 = &self.pop3;
        if pop3.banner.chars().any(|c| c.is_control()) {
            return Err(invalid("pop3.banner", "has a control character"));
        }
        if !(600..=MAX_TIMEOUT).contains(&pop3.timeout_seconds) {
            return Err(invalid(
                "pop3.timeout_seconds",
                format!(
                    "{} is not between 600 (RFC 1939's minimum) and {MAX_TIMEOUT}",
                    pop3.timeout_seconds
                ),
            ));
        }
        if pop3.max_bad_commands == 0 {
            return Err(invalid("pop3.max_bad_commands", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_imap(&self) -> Result<(), ConfigError> {
        let imap = &self.imap;
        if imap.greeting.trim().is_empty() || imap.greeting.chars().any(|c| c.is_control()) {
            return Err(invalid(
                "imap.greeting",
                "is empty or has a control character",
            ));
        }
        if imap.greeting.starts_with('[') {
            return Err(invalid(
                "imap.greeting",
                "starts with '[', which IMAP reads as a response code",
            ));
        }
        if !(1800..=MAX_TIMEOUT).contains(&imap.timeout_seconds) {
            return Err(invalid(
                "imap.timeout_seconds",
                format!(
                    "{} is not between 1800 (RFC 3501's minimum) and {MAX_TIMEOUT}",
                    imap.timeout_seconds
                ),
            ));
        }
        if imap.max_bad_commands == 0 {
            return Err(invalid("imap.max_bad_commands", "must be at least 1"));
        }
        if !(1024..=u64::from(u32::MAX)).contains(&imap.max_append_size) {
            return Err(invalid(
                "imap.max_append_size",
                format!(
                    "{} is not between 1024 and {} bytes",
                    imap.max_append_size,
                    u32::MAX
                ),
            ));
        }
        Ok(())
    }

    /// Checks the listeners of every service: names unique within a service,
    /// every bind address a socket address used once across all services,
    /// certificate files given in pairs, present and fitting.
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        let mut addresses = HashSet::new();
        for (section, listeners) in [
            ("smtp", &self.smtp.listeners),
            ("pop3", &self.pop3.listeners),
            ("imap", &self.imap.listeners),
        ] {
            let mut names = HashSet::new();
            for (i, listener) in listeners.iter().enumerate() {
                let key = format!("{section}.listeners[{i}]");
                self.validate_listener(&key, listener, &mut names, &mut addresses)?;
                if section != "smtp" && listener.auth_required {
                    return Err(invalid(
                        format!("{key}.auth_required"),
                        format!(
                            "has no meaning for {}, where every session logs in",
                            section.to_uppercase()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_listener<'a>(
        &self,
        key: &str,
        listener: &'a Listener,
        names: &mut HashSet<&'a str>,
        addresses: &mut HashSet<SocketAddr>,
    ) -> Result<(), ConfigError> {
        if listener.name.trim().is_empty() {
            return Err(invalid(format!("{key}.name"), "is empty"));
        }
        if !names.insert(listener.name.as_str()) {
            return Err(invalid(
                format!("{key}.name"),
                format!("{:?} is used by another listener", listener.name),
            ));
        }
        if listener.bind.is_empty() {
            return Err(invalid(format!("{key}.bind"), "has no address"));
        }
        for (j, text) in listener.bind.iter().enumerate() {
            let addr: SocketAddr = text.parse().map_err(|_| {
                invalid(
                    format!("{key}.bind[{j}]"),
                    format!("{text:?} is not a socket address"),
                )
            })?;
            if !addresses.insert(addr) {
                return Err(invalid(
                    format!("{key}.bind[{j}]"),
                    format!("{addr} is listed twice"),
                ));
            }
        }
        match (&listener.cert, &listener.key) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(invalid(
                    format!("{key}.key"),
                    "is missing: cert needs a key",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    format!("{key}.cert"),
                    "is missing: key needs a cert",
                ));
            }
            (Some(cert), Some(private)) => {
                let (cert, private) = (self.resolve(cert), self.resolve(private));
                for (name, path) in [("cert", &cert), ("key", &private)] {
                    if !path.exists() {
                        return Err(invalid(
                            format!("{key}.{name}"),
                            format!("{} does not exist", path.display()),
                        ));
                    }
                }
                load_pair(&cert, &private).map_err(|e| match e {
                    ConfigError::Invalid { key: k, problem } => {
                        invalid(format!("{key}.{}", k.trim_start_matches("tls.")), problem)
                    }
                    other => other,
                })?;
            }
        }
        Ok(())
    }

    /// The certificate and key files a listener uses: its own, or the `[tls]` pair.
    pub fn listener_tls_files(&self, listener: &Listener) -> (PathBuf, PathBuf) {
        match (&listener.cert, &listener.key) {
            (Some(cert), Some(key)) => (self.resolve(cert), self.resolve(key)),
            _ => (self.cert_path(), self.key_path()),
        }
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let (cert, key) = (self.cert_path(), self.key_path());
        match (cert.exists(), key.exists()) {
            (true, true) => {
                load_pair(&cert, &key)?;
                Ok(())
            }
            (false, false) if self.tls.self_signed => Ok(()),
            (false, _) => Err(invalid(
                "tls.cert",
                format!("{} does not exist", cert.display()),
            )),
            (true, false) => Err(invalid(
                "tls.key",
                format!("{} does not exist", key.display()),
            )),
        }
    }

    /// The data directory as configured (relative to the working directory).
    pub fn data_dir(&self) -> &Path {
        &self.server.data_dir
    }

    /// `path` under the data directory when relative.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.server.data_dir.join(path)
        }
    }

    /// The store's directory.
    pub fn store_dir(&self) -> PathBuf {
        self.resolve(&self.store.dir)
    }

    /// The certificate chain file.
    pub fn cert_path(&self) -> PathBuf {
        self.resolve(&self.tls.cert)
    }

    /// The private key file.
    pub fn key_path(&self) -> PathBuf {
        self.resolve(&self.tls.key)
    }

    /// How to open the store.
    pub fn store_config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.store_dir());
        config.header_cache_bytes = (self.store.header_cache_mib as usize).saturating_mul(1 << 20);
        config.flag_sync_delay = std::time::Duration::from_millis(self.store.flag_sync_ms.into());
        config
    }
}

/// A certificate chain and its private key, read from PEM files.
#[derive(Debug)]
#[non_exhaustive]
pub struct CertificatePair {
    /// The chain, end-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

/// Reads a certificate chain and key and checks that the key belongs to the
/// first certificate.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertificatePair, ConfigError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid("tls.cert", format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(invalid(
            "tls.cert",
            format!("{}: no PEM certificate in it", cert.display()),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid("tls.key", format!("{}: {e}", key.display())))?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain.clone(), private.clone_key(), &provider).map_err(
        |e| {
            invalid(
                "tls.key",
                format!(
                    "{} does not fit the certificate {}: {e}",
                    key.display(),
                    cert.display()
                ),
            )
        },
    )?;
    Ok(CertificatePair {
        chain,
        key: private,
    })
}

/// Makes sure the certificate and key exist: when neither file exists and
/// `tls.self_signed` is on, generates a self-signed pair for
/// `server.hostname` (and `localhost`) there; then checks that the pair
/// parses and fits. Returns the two paths (certificate, key).
pub fn ensure_certificate(config: &Config) -> Result<(PathBuf, PathBuf), ConfigError> {
    let (cert, key) = (config.cert_path(), config.key_path());
    if config.tls.self_signed && !cert.exists() && !key.exists() {
        generate_self_signed(&config.server.hostname, &cert, &key)?;
    }
    config.validate_tls()?;
    Ok((cert, key))
}

/// Generates a self-signed certificate and its key with rcgen (ring) and
/// writes them: each to a temporary file first, then renamed into place, the
/// key readable by its owner only.
fn generate_self_signed(hostname: &str, cert: &Path, key: &Path) -> Result<(), ConfigError> {
    let failed = |e: rcgen::Error| invalid("tls.self_signed", format!("cannot generate: {e}"));
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".to_string());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let signing_key = rcgen::KeyPair::generate().map_err(failed)?;
    let certificate = params.self_signed(&signing_key).map_err(failed)?;
    write_new(key, signing_key.serialize_pem().as_bytes(), true)?;
    write_new(cert, certificate.pem().as_bytes(), false)
}

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// synced before the rename, creating the directory when needed.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), ConfigError> {
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Write { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(error(dir))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(error(&tmp))?;
    file.write_all(bytes).map_err(error(&tmp))?;
    file.sync_all().map_err(error(&tmp))?;
    fs::rename(&tmp, path).map_err(error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_dir(dir: &Path, text: &str) -> Config {
        let mut config = Config::parse(text).unwrap();
        config.server.data_dir = dir.to_path_buf();
        config
    }

    fn problem(config: &Config) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let smtp = Config::default().smtp;
        let ports: Vec<_> = smtp
            .listeners
            .iter()
            .map(|l| (l.name.as_str(), l.addresses().unwrap()[0].port(), l.mode))
            .collect();
        assert_eq!(
            ports,
            [
                ("smtp", 25, TlsMode::Starttls),
                ("submission", 587, TlsMode::Starttls),
                ("smtps", 465, TlsMode::ImplicitTls)
            ]
        );
        assert!(!smtp.listeners[0].auth_required);
        assert!(smtp.listeners[1].auth_required && smtp.listeners[2].auth_required);
        assert_eq!(smtp.timeout_seconds, 600);
        assert!(!smtp.allow_plaintext_auth);
    }

    #[test]
    fn the_defaults_are_valid_and_render_back_to_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let config = in_dir(dir.path(), "");
        config.validate().unwrap();
        let text = config.to_toml();
        assert!(text.contains("[[smtp.listeners]]"), "{text}");
        assert_eq!(Config::parse(&text).unwrap(), config);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_their_name() {
        let err = Config::parse("[smtp]\nmax_conections = 5\n").unwrap_err();
        assert!(err.contains("max_conections"), "{err}");
        let err = Config::parse("[server]\nhostname = 5\n").unwrap_err();
        assert!(err.contains("hostname"), "{err}");
        let err = Config::parse("[smtp]\nbare_lf = \"keep\"\n").unwrap_err();
        assert!(err.contains("keep"), "{err}");
        let err = Config::parse("[ldapd]\n").unwrap_err();
        assert!(err.contains("ldapd"), "{err}");
        let err = Config::parse("[imap]\nidle_seconds = 60\n").unwrap_err();
        assert!(err.contains("idle_seconds"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "[[smtp.listeners]]\nname = \"a\"\nbind = [\"0.0.0.0:25\"]\nmode = \"plain\"\n\
                 [[smtp.listeners]]\nname = \"b\"\nbind = [\"0.0.0.0:99999\"]\nmode = \"plain\"\n",
                "smtp.listeners[1].bind[0]: \"0.0.0.0:99999\" is not a socket address",
            ),
            (
                "[[smtp.listeners]]\nname = \"a\"\nbind = [\"[::1]:25\", \"[::1]:25\"]\nmode = \"plain\"\n",
                "smtp.listeners[0].bind[1]: [::1]:25 is listed twice",
            ),
            (
                "[[smtp.listeners]]\nname = \"a\"\nbind = []\nmode = \"plain\"\n",
                "smtp.listeners[0].bind: has no address",
            ),
            (
                "[[smtp.listeners]]\nname = \"a\"\nbind = [\"127.0.0.1:25\"]\nmode = \"plain\"\n\
                 [[smtp.listeners]]\nname = \"a\"\nbind = [\"127.0.0.1:26\"]\nmode = \"plain\"\n",
                "smtp.listeners[1].name: \"a\" is used by another listener",
            ),
            ("[server]\nhostname = \"bad host\"\n", "server.hostname"),
            (
                "[smtp]\ntimeout_seconds = 0\n",
                "smtp.timeout_seconds: 0 is not",
            ),
            ("[smtp]\nmax_message_size = 10\n", "smtp.max_message_size"),
            ("[smtp]\nmax_recipients = 0\n", "smtp.max_recipients"),
            ("[smtp]\nmax_bad_commands = 0\n", "smtp.max_bad_commands"),
            ("[smtp]\nbanner = \"a\\r\\nb\"\n", "smtp.banner"),
            (
                "[delivery]\nworkers = 0\n",
                "delivery.workers: 0 is not between",
            ),
            (
                "[log]\nlevel = \"loud\"\n",
                "log.level: \"loud\" is not a level",
            ),
            ("[store]\ndir = \"\"\n", "store.dir: is empty"),
            (
                "[store]\nflag_sync_ms = 10001\n",
                "store.flag_sync_ms: 10001 is more than 10000",
            ),
        ];
        for (text, expected) in cases {
            let config = in_dir(dir.path(), text);
            let message = problem(&config);
            assert!(message.starts_with(expected), "{text}: {message}");
        }
    }

    #[test]
    fn log_levels_with_directives() {
        assert!(check_log_level("info").is_ok());
        assert!(check_log_level("warn,ironpost::smtp=debug").is_ok());
        assert!(check_log_level("=debug").is_err());
        assert!(check_log_level("").is_err());
    }

    #[test]
    fn a_named_certificate_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let config = in_dir(
            dir.path(),
            "[tls]\ncert = \"mine.pem\"\nkey = \"mine.key\"\nself_signed = false\n",
        );
        assert!(
            problem(&config).starts_with("tls.cert: "),
            "{}",
            problem(&config)
        );
        fs::write(dir.path().join("mine.pem"), "not pem").unwrap();
        assert!(
            problem(&config).starts_with("tls.key: "),
            "{}",
            problem(&config)
        );
        fs::write(dir.path().join("mine.key"), "not pem").unwrap();
        let message = problem(&config);
        assert!(message.starts_with("tls.cert: "), "{message}");
    }

    #[test]
    fn a_self_signed_pair_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = in_dir(dir.path(), "[server]\nhostname = \"mail.example.com\"\n");
        let (cert, key) = ensure_certificate(&config).unwrap();
        assert_eq!(cert, dir.path().join("tls/cert.pem"));
        let first = (fs::read(&cert).unwrap(), fs::read(&key).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
        ensure_certificate(&config).unwrap();
        assert_eq!((fs::read(&cert).unwrap(), fs::read(&key).unwrap()), first);
        config.validate().unwrap();
        let pair = load_pair(&cert, &key).unwrap();
        assert_eq!(pair.chain.len(), 1);
    }

    #[test]
    fn a_listener_may_have_its_own_pair() {
        let dir = tempfile::tempdir().unwrap();
        let other = in_dir(&dir.path().join("other"), "");
        ensure_certificate(&other).unwrap();
        let listener = |extra: &str| {
            format!(
                "[[smtp.listeners]]\nname = \"a\"\nbind = [\"[::1]:25\"]\nmode = \"plain\"\n{extra}"
            )
        };
        let config = in_dir(dir.path(), &listener("cert = \"other/tls/cert.pem\"\n"));
        assert_eq!(
            problem(&config),
            "smtp.listeners[0].key: is missing: cert needs a key"
        );
        let config = in_dir(
            dir.path(),
            &listener("cert = \"other/tls/cert.pem\"\nkey = \"other/tls/nokey.pem\"\n"),
        );
        assert!(problem(&config).starts_with("smtp.listeners[0].key: "));
        let config = in_dir(
            dir.path(),
            &listener("cert = \"other/tls/cert.pem\"\nkey = \"other/tls/key.pem\"\n"),
        );
        config.validate().unwrap();
        let (cert, _) = config.listener_tls_files(&config.smtp.listeners[0]);
        assert_eq!(cert, dir.path().join("other/tls/cert.pem"));
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
        let defaults = Config::default();
        let (cert, _) = defaults.listener_tls_files(&defaults.smtp.listeners[0]);
        assert_eq!(cert, defaults.cert_path());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = in_dir(&dir.path().join("a"), "");
        let b = in_dir(&dir.path().join("b"), "");
        let (cert, _) = ensure_certificate(&a).unwrap();
        let (_, key) = ensure_certificate(&b).unwrap();
        let message = load_pair(&cert, &key).unwrap_err().to_string();
        assert!(message.contains("does not fit"), "{message}");
    }

    #[test]
    fn half_a_pair_is_an_error_not_a_new_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = in_dir(dir.path(), "");
        let (_, key) = ensure_certificate(&config).unwrap();
        fs::remove_file(config.cert_path()).unwrap();
        let message = ensure_certificate(&config).unwrap_err().to_string();
        assert!(message.starts_with("tls.cert: "), "{message}");
        assert!(key.exists());
    }
}
