//! The IMAP service against two real clients:
//!
//! - mbsync (isync) syncs a 500-message INBOX down to a Maildir over IMAPS;
//!   every file is the stored message (with LF line ends, as mbsync writes
//!   Maildir files, and the `X-TUID:` field it adds to what it copies). Local changes (flags set by renaming files, a file
//!   deleted, one moved to another folder) go back up; the server then has
//!   the flags, the expunge and the moved message. A last sync, over
//!   STARTTLS, changes nothing on either side and duplicates nothing.
//! - curl lists mailboxes, fetches messages by UID and by number (a message
//!   of 600 KB among them) and a section, searches, appends, sends a custom
//!   command, works over STARTTLS with `--ssl-reqd` and each SASL mechanism
//!   it is given, and fails a wrong password with its "login denied" exit
//!   code.
//!
//! Test mail comes in over SMTP from 127.0.0.1, all of it in one session
//! (pipelined `BDAT ... LAST` transactions).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ironpost_e2e::Env;
use ironpost_e2e::mail::{
    self, assert_curl_login_denied, assert_same, curl, deliver_pipelined, exit_code_and_text,
    header_len, lf, open_store, start_with_account,
};
use ironpost_e2e::server::{Ports, Server};
use ironpost_store::{Flag, Flags, Message};

const ADDRESS: &str = "bob@example.com";
const PASSWORD: &str = "sync secret 5";

/// A server with the account and nothing delivered yet.
fn setup() -> (Env, Ports, Server) {
    start_with_account("", ADDRESS, PASSWORD)
}

/// Delivers `messages` to the account, pipelined (see
/// [`deliver_pipelined`]). Returns the INBOX in UID order.
fn deliver(env: &Env, ports: &Ports, messages: &[Vec<u8>]) -> Vec<(Message, Vec<u8>)> {
    deliver_pipelined(env, ports.smtp, ADDRESS, messages)
}

/// A mailbox's messages in UID order, each with its bytes as stored.
fn mailbox(env: &Env, name: &str) -> Vec<(Message, Vec<u8>)> {
    mail::mailbox(env, ADDRESS, name)
}

// ------------------------------------------------------------------ mbsync

/// Message `i` of the mbsync test: sizes from a few hundred bytes to about
/// 30 KB, UTF-8 text, lines starting with dots and `From `.
fn mbsync_message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {i} <sender{i}@remote.example>\r\n\
         To: {ADDRESS}\r\n\
         Subject: mbsync message {i}\r\n\
         Message-ID: <mbsync-{i}@remote.example>\r\n\
         Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Grüße, message {i} ✉\r\n\
         .\r\n\
         ..a line that starts with two dots\r\n\
         From the start of a line\r\n"
    );
    let filler = (i * 613) % 30_000;
    let line = "abcdefghijklmnopqrstuvwxyz0123456789 ".repeat(2);
    let mut n = 0;
    while m.len() < filler {
        m.push_str(&format!("{n} {line}\r\n"));
        n += 1;
    }
    m.push_str("the end\r\n");
    m.into_bytes()
}

/// Every local folder with the names and contents of its files.
type LocalState = BTreeMap<String, Vec<(String, Vec<u8>)>>;

/// Every mailbox of the account with each message's UID, flags and bytes.
type ServerState = BTreeMap<String, Vec<(u32, Flags, Vec<u8>)>>;

/// A Maildir message as mbsync left it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Local {
    /// The file.
    path: PathBuf,
    /// The Maildir UID (`,U=n` in the name), when mbsync gave it one.
    uid: Option<u32>,
    /// The Maildir flags (after `:2,`).
    flags: String,
    /// The contents.
    bytes: Vec<u8>,
}

/// A private mbsync setup: its configuration file and the Maildir tree.
struct Mbsync {
    dir: tempfile::TempDir,
    cert: PathBuf,
}

impl Mbsync {
    fn new(env: &Env) -> Mbsync {
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::create_dir(dir.path().join("mail")).expect("the Maildir root");
        Mbsync {
            dir,
            cert: env.data_dir().join("tls").join("cert.pem"),
        }
    }

    fn mail(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Runs `mbsync -a` with a configuration for `port` and `ssl_type`
    /// (`IMAPS` or `STARTTLS`) trusting the server's self-signed
    /// certificate, with `flag` (`-V` or `-D`). Returns the exit code and
    /// the output.
    fn run(&self, port: u16, ssl_type: &str, flag: &str) -> (i32, String) {
        let rc = self.dir.path().join("mbsyncrc");
        let mail = self.mail();
        fs::write(
            &rc,
            format!(
                "IMAPAccount ironpost\n\
                 Host 127.0.0.1\n\
                 Port {port}\n\
                 User {ADDRESS}\n\
                 Pass \"{PASSWORD}\"\n\
                 SSLType {ssl_type}\n\
                 CertificateFile {cert}\n\
                 \n\
                 IMAPStore remote\n\
                 Account ironpost\n\
                 \n\
                 MaildirStore local\n\
                 Path {mail}/\n\
                 Inbox {mail}/INBOX\n\
                 SubFolders Verbatim\n\
                 \n\
                 Channel sync\n\
                 Far :remote:\n\
                 Near :local:\n\
                 Patterns *\n\
                 Create Both\n\
                 Expunge Both\n\
                 SyncState *\n\
                 Sync All\n",
                cert = self.cert.display(),
                mail = mail.display(),
            ),
        )
        .expect("the mbsync configuration");
        let output = Command::new("mbsync")
            .args([flag, "-c"])
            .arg(&rc)
            .arg("-a")
            .env("HOME", self.dir.path())
            .output()
            .expect("mbsync runs (a required tool: `cargo xtask test` checks for it)");
        exit_code_and_text("mbsync", &output)
    }

    /// A local folder's messages (`cur` and `new`), ordered by file name.
    fn folder(&self, name: &str) -> Vec<Local> {
        let mut out = Vec::new();
        for sub in ["cur", "new"] {
            let dir = self.mail().join(name).join(sub);
            for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.expect("a directory entry").path();
                let file = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("a file name")
                    .to_string();
                let (base, flags) = file.split_once(":2,").unwrap_or((&file, ""));
                let uid = base
                    .split(',')
                    .find_map(|part| part.strip_prefix("U="))
                    .map(|n| n.parse().expect("a Maildir UID"));
                let bytes = fs::read(&path).expect("a message file");
                out.push(Local {
                    path,
                    uid,
                    flags: flags.to_string(),
                    bytes,
                });
            }
        }
        out.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
        out
    }

    /// A folder's sync state: the server UID of each Maildir UID.
    fn pairs(&self, name: &str) -> BTreeMap<u32, u32> {
        let path = self.mail().join(name).join(".mbsyncstate");
        let state = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // After the header, one "far near flags" line per pair.
        let (_, entries) = state.split_once("\n\n").expect("a header and entries");
        entries
            .lines()
            .map(|line| {
                let mut fields = line.split(' ');
                let far: u32 = fields.next().and_then(|f| f.parse().ok()).expect("far UID");
                let near: u32 = fields
                    .next()
                    .and_then(|f| f.parse().ok())
                    .expect("near UID");
                (near, far)
            })
            .collect()
    }

    /// Every local folder with the names and contents of its files.
    fn snapshot(&self) -> LocalState {
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(self.mail()).expect("the Maildir root") {
            let path = entry.expect("an entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a folder name")
                .to_string();
            let files = self
                .folder(&name)
                .into_iter()
                .map(|l| {
                    let file = l.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    (file.to_string(), l.bytes)
                })
                .collect();
            out.insert(name, files);
        }
        out
    }
}

/// The server's side: every mailbox of the account with each message's
/// UID, flags and bytes.
fn server_state(env: &Env) -> ServerState {
    let store = open_store(env);
    let account = store.account(ADDRESS).expect("the account");
    let mut out = BTreeMap::new();
    for mailbox in store.mailboxes(account.id).expect("the mailboxes") {
        let messages = store
            .messages(mailbox.id)
            .expect("the messages")
            .into_iter()
            .map(|m| {
                let bytes = store.read_message(mailbox.id, m.uid).expect("a message");
                (m.uid, m.flags, bytes)
            })
            .collect();
        out.insert(mailbox.name, messages);
    }
    out
}

/// `message` without the `X-TUID:` header field mbsync adds to each
/// message it copies (exactly one must be there, the header's last).
#[track_caller]
fn without_tuid(message: &[u8]) -> Vec<u8> {
    let lines: Vec<&[u8]> = message.split_inclusive(|b| *b == b'\n').collect();
    let tuid: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(b"X-TUID: "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(tuid.len(), 1, "not one X-TUID line");
    assert!(
        matches!(lines.get(tuid[0] + 1), Some(&b"\n" | &b"\r\n")),
        "X-TUID is not the header's last field"
    );
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != tuid[0])
        .flat_map(|(_, l)| l.iter().copied())
        .collect()
}

/// Asserts no Maildir or mailbox holds a message twice.
#[track_caller]
fn assert_no_duplicates(local: &LocalState, server: &ServerState) {
    let mut seen = BTreeSet::new();
    for (folder, files) in local {
        for (name, bytes) in files {
            assert!(
                seen.insert(lf(&tuid_removed(bytes))),
                "a message twice on the near side: {folder}/{name}"
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (mailbox, messages) in server {
        for (uid, _, bytes) in messages {
            assert!(
                seen.insert(lf(&tuid_removed(bytes))),
                "a message twice on the server: {mailbox} UID {uid}"
            );
        }
    }
}

/// A message with any X-TUID line taken out, so that an uploaded copy and
/// its original compare equal.
fn tuid_removed(message: &[u8]) -> Vec<u8> {
    message
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.starts_with(b"X-TUID: "))
        .flatten()
        .copied()
        .collect()
}

#[test]
fn mbsync_syncs_500_messages_down_and_local_changes_up() {
    const COUNT: usize = 500;
    let (env, ports, server) = setup();
    let sent: Vec<Vec<u8>> = (0..COUNT).map(mbsync_message).collect();
    let stored = deliver(&env, &ports, &sent);
    let by_uid: BTreeMap<u32, &Vec<u8>> = stored.iter().map(|(m, b)| (m.uid, b)).collect();
    let sync = Mbsync::new(&env);

    // 1. Down, over IMAPS: every message once, byte for byte.
    let (code, log) = sync.run(ports.imaps, "IMAPS", "-V");
    assert_eq!(code, 0, "the first sync:\n{log}");
    let inbox = sync.folder("INBOX");
    assert_eq!(inbox.len(), COUNT, "files in the INBOX Maildir:\n{log}");
    let pairs = sync.pairs("INBOX");
    assert_eq!(pairs.len(), COUNT, "pairs in the sync state");
    let mut far_seen = BTreeSet::new();
    for local in &inbox {
        let near = local.uid.expect("a Maildir UID after the sync");
        let far = pairs[&near];
        assert!(far_seen.insert(far), "UID {far} downloaded twice");
        // mbsync marks each message it copies with an X-TUID field.
        assert_same(
            &format!("{} (UID {far})", local.path.display()),
            &without_tuid(&local.bytes),
            &lf(by_uid[&far]),
        );
        assert_eq!(local.flags, "", "{}", local.path.display());
    }
    for folder in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(sync.folder(folder).is_empty(), "{folder} created and empty");
    }

    // 2. Local changes: \Seen on ten messages, \Flagged and \Seen on five,
    //    \Answered on one (by renaming their files), one file deleted, one
    //    moved to the Archive folder (as a new message there).
    let far_of = |local: &Local| pairs[&local.uid.expect("a Maildir UID")];
    let mut want_flags: BTreeMap<u32, Flags> = BTreeMap::new();
    let (mut deleted, mut moved) = (0, 0);
    for (i, local) in inbox.iter().enumerate() {
        let far = far_of(local);
        let file = local
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a name");
        let base = file.split_once(":2,").map_or(file, |(b, _)| b);
        let cur = local
            .path
            .parent()
            .and_then(Path::parent)
            .expect("a folder")
            .join("cur");
        let (flags, letters) = match i {
            10..=19 => (vec![Flag::Seen], "S"),
            20..=24 => (vec![Flag::Flagged, Flag::Seen], "FS"),
            25 => (vec![Flag::Answered], "R"),
            30 => {
                fs::remove_file(&local.path).expect("a file deleted");
                deleted = far;
                continue;
            }
            40 => {
                let to = sync.mail().join("Archive").join("cur").join("moved.1:2,S");
                fs::rename(&local.path, to).expect("a file moved");
                moved = far;
                continue;
            }
            _ => continue,
        };
        fs::rename(&local.path, cur.join(format!("{base}:2,{letters}"))).expect("a rename");
        want_flags.insert(far, flags.into_iter().collect());
    }

    // 3. Up: the flags, the expunge and the moved message reach the server.
    let (code, log) = sync.run(ports.imaps, "IMAPS", "-V");
    assert_eq!(code, 0, "the second sync:\n{log}");
    let after = mailbox(&env, "INBOX");
    assert_eq!(
        after.len(),
        COUNT - 2,
        "the server's INBOX after the sync up"
    );
    for (message, bytes) in &after {
        assert!(
            message.uid != deleted && message.uid != moved,
            "UID {} still there",
            message.uid
        );
        let want = want_flags.get(&message.uid).cloned().unwrap_or_default();
        assert_eq!(message.flags, want, "flags of UID {}", message.uid);
        assert_same(&format!("UID {}", message.uid), bytes, by_uid[&message.uid]);
    }
    let archive = mailbox(&env, "Archive");
    assert_eq!(
        archive.len(),
        1,
        "the moved message in the server's Archive"
    );
    assert_eq!(
        archive[0].0.flags,
        [Flag::Seen].into_iter().collect::<Flags>()
    );
    assert_same(
        "the moved message on the server",
        &without_tuid(&archive[0].1),
        by_uid[&moved],
    );
    let local_archive = sync.folder("Archive");
    assert_eq!(local_archive.len(), 1);
    // The upload got a new X-TUID; the local file keeps the one it had.
    assert_same(
        "the moved message, both sides",
        &without_tuid(&local_archive[0].bytes),
        &lf(&without_tuid(&archive[0].1)),
    );

    // 4. Again, over STARTTLS: nothing to do, and nothing done.
    let local_before = sync.snapshot();
    let server_before = server_state(&env);
    let (code, log) = sync.run(ports.imap, "STARTTLS", "-D");
    assert_eq!(code, 0, "the third sync:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(">>> ") && l.ends_with(" STARTTLS")),
        "no STARTTLS:\n{log}"
    );
    for write in [" APPEND ", " UID STORE ", " EXPUNGE", " BODY.PEEK["] {
        let sent: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(">>>") && l.contains(write))
            .collect();
        assert!(sent.is_empty(), "the third sync sent {write:?}: {sent:?}");
    }
    let local_after = sync.snapshot();
    assert_eq!(
        local_before.keys().collect::<Vec<_>>(),
        local_after.keys().collect::<Vec<_>>()
    );
    for (folder, files) in &local_before {
        assert!(&local_after[folder] == files, "the local {folder} changed");
    }
    assert!(server_state(&env) == server_before, "the server changed");
    assert_no_duplicates(&local_after, &server_before);
    assert_eq!(local_after["INBOX"].len(), COUNT - 2);
    let log = server.log();
    assert!(!log.contains(PASSWORD), "{log}");
}

// --------------------------------------------------------------------- curl

/// Asserts that curl (as the account) succeeded and returns its standard
/// output.
#[track_caller]
fn curl_ok(args: &[&str]) -> Vec<u8> {
    mail::curl_ok(&format!("{ADDRESS}:{PASSWORD}"), args)
}

/// The curl test's messages: a short one, one of about 600 KB, an 8-bit one.
fn curl_messages() -> Vec<Vec<u8>> {
    let short = b"Subject: short\r\n\r\n.\r\n..\r\nend\r\n".to_vec();
    let mut big = b"Subject: big\r\nFrom: a@remote.example\r\n\r\n".to_vec();
    let mut n = 0;
    while big.len() < 600_000 {
        big.extend_from_slice(
            format!("{n:06} the quick brown fox jumps over the lazy dog......\r\n").as_bytes(),
        );
        n += 1;
    }
    let eight_bit =
        "Subject: =?utf-8?q?8bit?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nÀ bientôt, 日本語\r\n"
            .as_bytes()
            .to_vec();
    vec![short, big, eight_bit]
}

/// The lines of a curl answer, without their line ends.
fn answer_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn curl_lists_fetches_searches_appends_and_sends_custom_commands() {
    let (env, ports, server) = setup();
    let sent = curl_messages();
    let stored = deliver(&env, &ports, &sent);
    // Its message number: deliveries run in parallel, so UIDs need not
    // follow the order of sending.
    let big = stored
        .iter()
        .position(|(_, bytes)| bytes.ends_with(&sent[1]))
        .expect("the big message")
        + 1;
    let imaps = format!("imaps://127.0.0.1:{}/", ports.imaps);
    let imap = format!("imap://127.0.0.1:{}/", ports.imap);

    // The mailbox list.
    let list = answer_lines(&curl_ok(&["-k", &imaps]));
    assert_eq!(list, mail::NEW_ACCOUNT_LIST);

    // Each message by UID, byte for byte; by number too.
    for (message, bytes) in &stored {
        let url = format!("{imaps}INBOX;UID={}", message.uid);
        assert_same(&url, &curl_ok(&["-k", &url]), bytes);
    }
    let url = format!("{imaps}INBOX;MAILINDEX=2");
    assert_same(&url, &curl_ok(&["-k", &url]), &stored[1].1);
    // A section.
    let url = format!("{imaps}INBOX;UID={};SECTION=TEXT", stored[0].0.uid);
    let text_at = header_len(&stored[0].1);
    assert_same(&url, &curl_ok(&["-k", &url]), &stored[0].1[text_at..]);

    // STARTTLS, required, with each mechanism.
    for options in ["AUTH=PLAIN", "AUTH=LOGIN"] {
        let url = format!("{imap}INBOX;UID={}", stored[1].0.uid);
        let out = curl(
            &format!("{ADDRESS}:{PASSWORD}"),
            &["-k", "--ssl-reqd", "--login-options", options, "-v", &url],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "curl {options} over STARTTLS: {stderr}"
        );
        assert!(stderr.contains("> A002 STARTTLS"), "{stderr}");
        let mechanism = options.trim_start_matches("AUTH=");
        assert!(
            stderr.contains(&format!("AUTHENTICATE {mechanism}")),
            "{options}: {stderr}"
        );
        assert_same(&format!("{url} ({options})"), &out.stdout, &stored[1].1);
    }

    // A search in the URL's query.
    let search = answer_lines(&curl_ok(&["-k", &format!("{imaps}INBOX?SUBJECT%20big")]));
    assert_eq!(search, [format!("* SEARCH {big}")]);

    // A custom command: EXAMINE's untagged answers.
    let examine = answer_lines(&curl_ok(&[
        "-k",
        &format!("{imaps}INBOX"),
        "-X",
        "EXAMINE INBOX",
    ]));
    let validity = mail::uidvalidity(&env, ADDRESS, "INBOX");
    for want in [
        "* 3 EXISTS".to_string(),
        format!("* OK [UIDVALIDITY {validity}] UIDs valid"),
        format!("* OK [UIDNEXT {}] Predicted next UID", stored[2].0.uid + 1),
    ] {
        assert!(examine.contains(&want), "{want} missing: {examine:?}");
    }

    // An upload: APPEND, the bytes as sent.
    let upload = tempfile::NamedTempFile::new().expect("a temporary file");
    let letter = b"From: bob@example.com\r\nSubject: uploaded\r\n\r\nSent with curl.\r\n";
    fs::write(upload.path(), letter).expect("the upload written");
    let path = upload.path().to_str().expect("a UTF-8 path");
    curl_ok(&["-k", &format!("{imaps}Drafts"), "-T", path]);
    let drafts = mailbox(&env, "Drafts");
    assert_eq!(drafts.len(), 1);
    assert_same("the uploaded message", &drafts[0].1, letter);

    // A wrong password: curl's "login denied".
    assert_curl_login_denied(&server, ADDRESS, PASSWORD, &imaps);
}
