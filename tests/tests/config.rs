//! `ironpost config check|show` and what `serve` prepares from the
//! configuration (data directory, self-signed certificate).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use ironpost_e2e::server::{Server, env_with_listeners};
use ironpost_e2e::{Env, fails, ok, run_in};

#[test]
fn a_good_file_checks_ok() {
    let env = Env::with_config("[smtp]\nmax_recipients = 50\n[delivery]\nworkers = 4\n");
    let file = env.config().display().to_string();
    let out = run_in(env.dir(), &["config", "check", &file], b"");
    assert_eq!(ok(&out), format!("ok: {file}\n"));
    // --config names the file when no FILE is given.
    assert_eq!(ok(&env.run(&["config", "check"])), format!("ok: {file}\n"));
}

#[test]
fn the_defaults_check_ok() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["config", "check"], b"");
    assert_eq!(ok(&out), "ok: the built-in defaults\n");
}

#[test]
fn an_unknown_key_is_named() {
    let env = Env::with_config("[smtp]\nmax_connexions = 10\n");
    let err = fails(&env.run(&["config", "check"]), 2, "max_connexions");
    assert!(err.contains("ironpost.toml"), "{err}");
    let env = Env::with_config("[imapd]\nport = 143\n");
    fails(&env.run(&["config", "check"]), 2, "imapd");
    let env = Env::with_config("[imap]\nport = 143\n");
    fails(&env.run(&["config", "check"]), 2, "port");
}

#[test]
fn a_bad_port_is_named_with_its_key() {
    let env = Env::with_config(
        "[[smtp.listeners]]\nname = \"smtp\"\nbind = [\"127.0.0.1:2525\"]\nmode = \"plain\"\n\
         [[smtp.listeners]]\nname = \"odd\"\nbind = [\"0.0.0.0:99999\"]\nmode = \"starttls\"\n",
    );
    fails(
        &env.run(&["config", "check"]),
        2,
        "smtp.listeners[1].bind[0]: \"0.0.0.0:99999\" is not a socket address",
    );
}

#[test]
fn a_bad_value_type_is_named() {
    let env = Env::with_config("[smtp]\ntimeout_seconds = \"ten minutes\"\n");
    fails(&env.run(&["config", "check"]), 2, "timeout_seconds");
    let env = Env::with_config(
        "[[smtp.listeners]]\nname = \"x\"\nbind = [\"[::1]:25\"]\nmode = \"ssl\"\n",
    );
    fails(&env.run(&["config", "check"]), 2, "ssl");
}

#[test]
fn a_missing_certificate_file_is_named() {
    let env = Env::with_config(
        "[tls]\ncert = \"/nonexistent/mail.pem\"\nkey = \"/nonexistent/mail.key\"\nself_signed = false\n",
    );
    fails(
        &env.run(&["config", "check"]),
        2,
        "tls.cert: /nonexistent/mail.pem does not exist",
    );
    // serve refuses it the same way and creates nothing.
    fails(&env.run(&["serve"]), 2, "tls.cert");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["config", "check", "absent.toml"], b"");
    fails(&out, 2, "absent.toml");
}

#[test]
fn show_prints_every_default_and_round_trips_through_check() {
    let env = Env::with_config("[smtp]\nbanner = \"welcome\"\n");
    let shown = ok(&env.run(&["config", "show"]));
    for key in [
        "[server]",
        "hostname = \"mail.example.test\"",
        "[store]",
        "backend = \"sqlite\"",
        "[tls]",
        "self_signed = true",
        "[smtp]",
        "banner = \"welcome\"",
        "timeout_seconds = 600",
        "max_message_size = 20971520",
        "allow_plaintext_auth = false",
        "bare_lf = \"normalize\"",
        "accept_null_sender = true",
        "[[smtp.listeners]]",
        "\"[::]:587\"",
        "mode = \"implicit-tls\"",
        "[pop3]",
        "[[pop3.listeners]]",
        "\"[::]:995\"",
        "[imap]",
        "[[imap.listeners]]",
        "\"[::]:993\"",
        "timeout_seconds = 1800",
        "[delivery]",
        "workers = 8",
        "[log]",
        "level = \"info\"",
    ] {
        assert!(shown.contains(key), "{key:?} missing from:\n{shown}");
    }
    let copy = env.dir().join("shown.toml");
    fs::write(&copy, &shown).unwrap();
    let copy = copy.display().to_string();
    assert_eq!(
        ok(&run_in(env.dir(), &["config", "check", &copy], b"")),
        format!("ok: {copy}\n")
    );
    let again = ok(&run_in(
        env.dir(),
        &["config", "show", "--config", &copy],
        b"",
    ));
    assert_eq!(again, shown);
}

/// Runs `ironpost serve` on its embedded defaults (every listener on its
/// standard port) until it is ready, then stops it with SIGTERM.
fn serve_on_defaults(dir: &Path) -> String {
    let server = Server::spawn(dir, &[OsStr::new("serve")], &[]);
    let (status, log) = server.terminate();
    assert!(status.success(), "{status}\n{log}");
    log
}

#[test]
fn serve_on_defaults_creates_the_data_dir_and_reuses_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let log = serve_on_defaults(dir.path());
    for port in [25, 587, 465] {
        for host in ["0.0.0.0", "[::]"] {
            assert!(log.contains(&format!("address={host}:{port}")), "{log}");
        }
    }
    assert!(log.contains("stopped"), "{log}");
    let data = dir.path().join("ironpost-data");
    let cert = data.join("tls/cert.pem");
    let key = data.join("tls/key.pem");
    assert!(data.join("store/store.db").is_file());
    let first = (fs::read(&cert).unwrap(), fs::read(&key).unwrap());
    assert!(first.0.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert!(first.1.starts_with(b"-----BEGIN PRIVATE KEY-----"));

    serve_on_defaults(dir.path());
    assert_eq!((fs::read(&cert).unwrap(), fs::read(&key).unwrap()), first);

    // The admin commands find the same store.
    ok(&run_in(dir.path(), &["domain", "add", "example.com"], b""));
    let listed = ok(&run_in(dir.path(), &["domain", "list"], b""));
    assert!(listed.contains("example.com"), "{listed}");
}

#[test]
fn serve_with_a_damaged_certificate_names_it() {
    let (env, _) = env_with_listeners("");
    Server::start(&env).terminate();
    let cert = env.data_dir().join("tls/cert.pem");
    fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    fails(&env.run(&["serve"]), 2, "tls.cert");
    fails(&env.run(&["config", "check"]), 2, "tls.cert");
}
