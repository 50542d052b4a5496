//! The IMAP service with Python's imaplib: every command of RFC 3501 and of
//! the extensions the server announces, each answer checked against what
//! the store holds.
//!
//! - Logins: CAPABILITY before and after STARTTLS, LOGIN refused before TLS,
//!   LOGIN and AUTHENTICATE PLAIN, IMAPS, a wrong password and an alias
//!   (`[AUTHENTICATIONFAILED]`), LOGIN without TLS when the configuration
//!   allows it.
//! - Mailboxes: the special-use folders of a new account, CREATE, DELETE,
//!   RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, NAMESPACE and the
//!   QUOTA commands.
//! - FETCH of every data item, byte for byte against `Store::read_message`,
//!   and which of them set `\Seen`.
//! - STORE, SEARCH with every RFC 3501 key (and `CHARSET UTF-8`), SORT.
//! - COPY, MOVE and their UID forms with COPYUID, EXPUNGE numbering, UID
//!   EXPUNGE, CLOSE, UNSELECT, APPEND with flags and a date (APPENDUID), and
//!   `[OVERQUOTA]`.
//!
//! Mail comes in over SMTP from 127.0.0.1, one message at a time, each
//! waited for in the store, so that UIDs follow the order of sending.

use ironpost_e2e::mail::{
    self, assert_same, deliver_in_order, header_len, open_store, start_with_account,
};
use ironpost_e2e::server::{Ports, Server};
use ironpost_e2e::{Env, ok};
use ironpost_store::{Flag, Flags, Message};
use serde_json::{Value, json};

const ADDRESS: &str = "bob@example.com";
const PASSWORD: &str = "imap secret 9";

/// A server (its configuration `extra`, see `env_with_listeners`) with the
/// domain and the account, nothing delivered yet.
fn setup(extra: &str) -> (Env, Ports, Server) {
    start_with_account(extra, ADDRESS, PASSWORD)
}

/// Delivers `messages` to the account over SMTP, each waited for in the
/// INBOX before the next is sent (so UIDs follow the order of sending).
fn deliver(env: &Env, ports: &Ports, messages: &[Vec<u8>]) {
    deliver_in_order(env, ports.smtp, ADDRESS, messages);
}

/// A mailbox's messages in UID order, each with its bytes as stored.
fn mailbox(env: &Env, name: &str) -> Vec<(Message, Vec<u8>)> {
    mail::mailbox(env, ADDRESS, name)
}

/// A mailbox's UIDVALIDITY.
fn uidvalidity(env: &Env, name: &str) -> u32 {
    mail::uidvalidity(env, ADDRESS, name)
}

/// The Python that every script starts with: connections, and helpers
/// that return what the server said as text. Bytes travel as Latin-1 text
/// (one code point per octet), so JSON carries them exactly.
const PRELUDE: &str = r#"
import datetime, imaplib, json, re, ssl, sys
PORT, PORT_TLS, PASSWORD = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
USER = "bob@example.com"
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

def text(b):
    return b.decode("latin-1")

def traced(m):
    # Records every line the server sends (literals aside).
    m.trace = []
    get_line = m._get_line
    def recording():
        line = get_line()
        m.trace.append(text(line))
        return line
    m._get_line = recording
    return m

def plain():
    return traced(imaplib.IMAP4("127.0.0.1", PORT, timeout=20))

def connect():
    m = plain()
    m.starttls(ssl_context=CTX)
    return m

def imaps():
    return traced(imaplib.IMAP4_SSL("127.0.0.1", PORT_TLS, ssl_context=CTX, timeout=20))

def login(user=USER, password=None):
    m = connect()
    m.login(user, PASSWORD if password is None else password)
    return m

def plain_auth(user=USER, password=None):
    secret = "\0%s\0%s" % (user, PASSWORD if password is None else password)
    return lambda _: secret.encode()

def cmd(m, name, *args):
    # Runs an imaplib method: its untagged lines, and its tagged status
    # without the tag (imaplib raises on some NO and on BAD).
    m.trace.clear()
    try:
        getattr(m, name)(*args)
    except (m.error, m.abort) as e:
        pass
    lines = list(m.trace)
    status = lines[-1].split(" ", 1)[1] if lines else ""
    return {"untagged": [l for l in lines[:-1] if l.startswith("* ")], "status": status}

def raw(m, line):
    # Sends a command imaplib refuses to send in its state.
    m.trace.clear()
    tag = m._new_tag()
    m.send(tag + b" " + line.encode() + b"\r\n")
    while not m._get_line().startswith(tag + b" "):
        pass
    lines = list(m.trace)
    return {"untagged": [l for l in lines[:-1] if l.startswith("* ")], "status": lines[-1].split(" ", 1)[1]}

def quoted_end(b, i):
    i += 1
    while b[i:i + 1] != b'"':
        i += 2 if b[i:i + 1] == b"\\" else 1
    return i + 1

def literal_end(b, i):
    close = b.index(b"}", i)
    return close + 3 + int(b[i + 1:close].rstrip(b"+"))

def value_end(b, i):
    c = b[i:i + 1]
    if c == b'"':
        return quoted_end(b, i)
    if c == b"{":
        return literal_end(b, i)
    if c != b"(":
        while i < len(b) and b[i:i + 1] not in (b" ", b")"):
            i += 1
        return i
    depth = 0
    while True:
        c = b[i:i + 1]
        if c == b'"':
            i = quoted_end(b, i)
            continue
        if c == b"{":
            i = literal_end(b, i)
            continue
        i += 1
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth == 0:
                return i

def decoded(v):
    # A string's octets; a list's (or an atom's) wire text.
    if v.startswith(b'"'):
        return re.sub(rb'\\(.)', rb'\1', v[1:-1])
    if v.startswith(b"{"):
        return v[v.index(b"}\r\n") + 3:]
    return v

def items(b):
    # "(NAME value NAME value ...)" -> {NAME: value}
    out = {}
    i = 1
    while b[i:i + 1] != b")":
        start, depth = i, 0
        while depth or b[i:i + 1] != b" ":
            depth += {b"[": 1, b"]": -1}.get(b[i:i + 1], 0)
            i += 1
        name = text(b[start:i])
        end = value_end(b, i + 1)
        out[name] = text(decoded(b[i + 1:end]))
        i = end + 1 if b[end:end + 1] == b" " else end
    return out

def fetch(m, numbers, attributes, uid=False):
    # FETCH or UID FETCH: {number: {item: value}} (responses for one number
    # merged), and the untagged lines as "lines".
    m.trace.clear()
    if uid:
        typ, data = m.uid("FETCH", numbers, attributes)
    else:
        typ, data = m.fetch(numbers, attributes)
    assert typ == "OK", (typ, data, m.trace)
    out, buf = {}, b""
    for part in data:
        if part is None:
            continue
        if isinstance(part, tuple):
            buf += part[0] + b"\r\n" + part[1]
            continue
        buf += part
        number, rest = buf.split(b" ", 1)
        out.setdefault(text(number), {}).update(items(rest))
        buf = b""
    out["lines"] = [l for l in m.trace[:-1] if l.startswith("* ")]
    return out

def seconds(internaldate):
    return int(datetime.datetime.strptime(internaldate, "%d-%b-%Y %H:%M:%S %z").timestamp())
"#;

/// Runs an imaplib script (after [`PRELUDE`]) with the ports and the
/// password as arguments; its last line of output is JSON.
fn imaplib(script: &str, ports: &Ports) -> Value {
    let program = format!("{PRELUDE}\n{script}");
    let (imap, imaps) = (ports.imap.to_string(), ports.imaps.to_string());
    mail::python(&program, &[&imap, &imaps, PASSWORD])
        .unwrap_or_else(|e| panic!("imaplib failed: {e}"))
}

/// The octets a script sent as Latin-1 text.
#[track_caller]
fn bytes(value: &Value) -> Vec<u8> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("one octet per character"))
        .collect()
}

/// A JSON string's text.
#[track_caller]
fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// The untagged lines of a `cmd` result.
#[track_caller]
fn untagged(result: &Value) -> Vec<&str> {
    result["untagged"]
        .as_array()
        .unwrap_or_else(|| panic!("no untagged lines: {result}"))
        .iter()
        .map(str_of)
        .collect()
}

/// Asserts that a `cmd` result's tagged status starts with `prefix`.
#[track_caller]
fn assert_status(result: &Value, prefix: &str) {
    let status = str_of(&result["status"]);
    assert!(
        status.starts_with(prefix),
        "expected a status starting {prefix:?}, got {status:?} in {result}"
    );
}

fn flags(names: &[Flag]) -> Flags {
    names.iter().cloned().collect()
}

// ------------------------------------------------------------------ logins

#[test]
fn logins_starttls_authenticate_and_imaps() {
    let (env, ports, server) = setup("");
    ok(&env.run(&["alias", "add", "robert@example.com", ADDRESS]));
    let r = imaplib(
        r#"
r = {}
m = plain()
r["greeting"] = text(m.welcome)
r["caps_plain"] = cmd(m, "capability")
r["noop_before_login"] = cmd(m, "noop")
r["login_before_tls"] = cmd(m, "login", USER, PASSWORD)
r["auth_before_tls"] = cmd(m, "authenticate", "PLAIN", plain_auth())
r["select_before_login"] = raw(m, "SELECT INBOX")
m.trace.clear()
r["starttls"] = list(m.starttls(ssl_context=CTX)[0:1])
r["caps_tls"] = cmd(m, "capability")
r["starttls_again"] = raw(m, "STARTTLS")
r["wrong"] = cmd(m, "login", USER, "not the password")
r["alias"] = cmd(m, "login", "robert@example.com", PASSWORD)
r["unknown"] = cmd(m, "login", "nobody@example.com", PASSWORD)
r["login"] = cmd(m, "login", USER, PASSWORD)
r["caps_logged_in"] = cmd(m, "capability")
r["noop"] = cmd(m, "noop")
r["login_again"] = raw(m, 'LOGIN bob@example.com "x"')
# imaplib's logout() returns at the BYE; the tagged OK must follow it.
r["logout"] = raw(m, "LOGOUT")
m.shutdown()

m = connect()
r["auth_wrong"] = cmd(m, "authenticate", "PLAIN", plain_auth(password="not the password"))
r["auth_alias"] = cmd(m, "authenticate", "PLAIN", plain_auth(user="robert@example.com"))
r["auth"] = cmd(m, "authenticate", "PLAIN", plain_auth())
r["auth_select"] = cmd(m, "select", "INBOX")
m.logout()

m = imaps()
r["imaps_greeting"] = text(m.welcome)
r["imaps_caps"] = cmd(m, "capability")
r["imaps_login"] = cmd(m, "login", USER, PASSWORD)
r["imaps_select"] = cmd(m, "select", "INBOX")
r["imaps_logout"] = raw(m, "LOGOUT")
m.shutdown()
print(json.dumps(r))
"#,
        &ports,
    );
    let greeting = str_of(&r["greeting"]);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    // Before TLS: STARTTLS and LOGINDISABLED, no mechanism.
    let caps = untagged(&r["caps_plain"]).join(" ");
    assert!(caps.starts_with("* CAPABILITY IMAP4rev1 "), "{caps}");
    for cap in [
        "STARTTLS",
        "LOGINDISABLED",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "NAMESPACE",
    ] {
        assert!(caps.split(' ').any(|c| c == cap), "{cap} missing: {caps}");
    }
    assert!(!caps.contains("AUTH="), "{caps}");
    assert_status(&r["noop_before_login"], "OK");
    assert_status(&r["login_before_tls"], "NO [PRIVACYREQUIRED]");
    assert_status(&r["auth_before_tls"], "NO [PRIVACYREQUIRED]");
    assert_status(&r["select_before_login"], "BAD");
    assert_eq!(r["starttls"], json!(["OK"]));
    // After STARTTLS: the mechanisms, no STARTTLS, no LOGINDISABLED.
    let caps = untagged(&r["caps_tls"]).join(" ");
    for cap in ["AUTH=PLAIN", "IDLE", "SPECIAL-USE", "QUOTA", "SORT"] {
        assert!(caps.split(' ').any(|c| c == cap), "{cap} missing: {caps}");
    }
    assert!(
        !caps.contains("STARTTLS") && !caps.contains("LOGINDISABLED"),
        "{caps}"
    );
    assert_status(&r["starttls_again"], "BAD");
    for failed in ["wrong", "alias", "unknown", "auth_wrong", "auth_alias"] {
        assert_status(&r[failed], "NO [AUTHENTICATIONFAILED]");
    }
    assert_status(&r["login"], "OK");
    let caps = untagged(&r["caps_logged_in"]).join(" ");
    assert!(!caps.contains("AUTH="), "no mechanisms after login: {caps}");
    assert_status(&r["noop"], "OK");
    assert_status(&r["login_again"], "BAD");
    assert_eq!(untagged(&r["logout"]), ["* BYE Logging out"]);
    assert_status(&r["logout"], "OK");
    assert_status(&r["auth"], "OK");
    assert_status(&r["auth_select"], "OK [READ-WRITE]");
    // IMAPS: TLS from the first byte, the mechanisms at once.
    let greeting = str_of(&r["imaps_greeting"]);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let caps = untagged(&r["imaps_caps"]).join(" ");
    assert!(
        caps.contains("AUTH=PLAIN") && !caps.contains("STARTTLS"),
        "{caps}"
    );
    assert_status(&r["imaps_login"], "OK");
    assert_status(&r["imaps_select"], "OK [READ-WRITE]");
    assert_status(&r["imaps_logout"], "OK");
    let log = server.log();
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(!log.contains("not the password"), "{log}");
}

#[test]
fn plaintext_login_when_the_configuration_allows_it() {
    let (_env, ports, _server) = setup("[imap]\nallow_plaintext_auth = true\n");
    let r = imaplib(
        r#"
r = {}
m = plain()
r["caps"] = cmd(m, "capability")
r["login"] = cmd(m, "login", USER, PASSWORD)
r["select"] = cmd(m, "select", "INBOX")
m.logout()
m = plain()
r["auth"] = cmd(m, "authenticate", "PLAIN", plain_auth())
m.logout()
print(json.dumps(r))
"#,
        &ports,
    );
    let caps = untagged(&r["caps"]).join(" ");
    assert!(
        caps.contains("AUTH=PLAIN") && caps.contains("STARTTLS"),
        "{caps}"
    );
    assert!(!caps.contains("LOGINDISABLED"), "{caps}");
    assert_status(&r["login"], "OK");
    assert_status(&r["select"], "OK [READ-WRITE]");
    assert_status(&r["auth"], "OK");
}

// --------------------------------------------------------------- mailboxes

#[test]
fn mailboxes_status_namespace_and_quota() {
    let (env, ports, _server) = setup("");
    ok(&env.run(&["account", "quota", ADDRESS, "10"]));
    let sent: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("Subject: message {i}\r\n\r\nbody {i}\r\n").into_bytes())
        .collect();
    deliver(&env, &ports, &sent);
    let r = imaplib(
        r#"
r = {}
m = login()
r["list"] = cmd(m, "list", '""', "*")
r["root"] = cmd(m, "list", '""', '""')
r["lsub"] = cmd(m, "lsub", '""', "*")
r["create"] = cmd(m, "create", "Projects/2026")
r["create_parent_again"] = cmd(m, "create", "Projects")
r["create_inbox"] = cmd(m, "create", "INBOX")
r["create_utf7"] = cmd(m, "create", "&ZeVnLIqe-")
r["list_all"] = cmd(m, "list", '""', "*")
r["list_top"] = cmd(m, "list", '""', "%")
r["list_under"] = cmd(m, "list", "Projects/", "%")
r["list_inbox_any_case"] = cmd(m, "list", '""', "inbox")
r["unsubscribe"] = cmd(m, "unsubscribe", "Projects/2026")
r["lsub_after_unsubscribe"] = cmd(m, "lsub", '""', "Projects/*")
r["subscribe"] = cmd(m, "subscribe", "Projects/2026")
r["lsub_after_subscribe"] = cmd(m, "lsub", '""', "Projects/*")
r["rename"] = cmd(m, "rename", "Projects/2026", "Archive/2026")
r["rename_to_existing"] = cmd(m, "rename", "Archive/2026", "Sent")
r["rename_missing"] = cmd(m, "rename", "Nowhere", "Elsewhere")
r["list_archive"] = cmd(m, "list", '""', "Archive*")
r["delete"] = cmd(m, "delete", "Archive/2026")
r["delete_again"] = cmd(m, "delete", "Archive/2026")
r["delete_inbox"] = cmd(m, "delete", "INBOX")
r["status_inbox"] = cmd(m, "status", "INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
r["status_sent"] = cmd(m, "status", "Sent", "(MESSAGES UIDNEXT UNSEEN)")
r["status_missing"] = cmd(m, "status", "Nowhere", "(MESSAGES)")
m.select("INBOX")
fetch(m, "2", "(BODY[])")
r["status_after_read"] = cmd(m, "status", "INBOX", "(MESSAGES UNSEEN)")
r["namespace"] = cmd(m, "namespace")
r["getquotaroot"] = cmd(m, "getquotaroot", "INBOX")
r["getquota"] = cmd(m, "getquota", '""')
r["getquota_other"] = cmd(m, "getquota", "other")
r["setquota"] = cmd(m, "setquota", '""', "(STORAGE 1)")
m.logout()
print(json.dumps(r))
"#,
        &ports,
    );
    // A new account's folders, the five special-use ones flagged.
    assert_eq!(untagged(&r["list"]), mail::NEW_ACCOUNT_LIST);
    assert_eq!(untagged(&r["root"]), [r#"* LIST (\Noselect) "/" """#]);
    assert_eq!(untagged(&r["lsub"]).len(), 6, "{}", r["lsub"]);
    assert_status(&r["create"], "OK");
    assert_status(&r["create_parent_again"], "NO [ALREADYEXISTS]");
    assert_status(&r["create_inbox"], "NO");
    assert_status(&r["create_utf7"], "OK");
    let all = untagged(&r["list_all"]);
    assert!(
        all.contains(&r#"* LIST (\HasChildren) "/" Projects"#),
        "{all:?}"
    );
    assert!(
        all.contains(&r#"* LIST (\HasNoChildren) "/" Projects/2026"#),
        "{all:?}"
    );
    // Modified UTF-7 names come back as they were sent.
    assert!(
        all.contains(&r#"* LIST (\HasNoChildren) "/" &ZeVnLIqe-"#),
        "{all:?}"
    );
    assert_eq!(all.len(), 9, "{all:?}");
    let top = untagged(&r["list_top"]);
    assert_eq!(top.len(), 8, "{top:?}");
    assert!(!top.iter().any(|l| l.contains("2026")), "{top:?}");
    assert_eq!(
        untagged(&r["list_under"]),
        [r#"* LIST (\HasNoChildren) "/" Projects/2026"#]
    );
    assert_eq!(
        untagged(&r["list_inbox_any_case"]),
        [r#"* LIST (\HasNoChildren) "/" INBOX"#]
    );
    assert_status(&r["unsubscribe"], "OK");
    assert!(untagged(&r["lsub_after_unsubscribe"]).is_empty());
    assert_status(&r["subscribe"], "OK");
    assert_eq!(
        untagged(&r["lsub_after_subscribe"]),
        [r#"* LSUB () "/" Projects/2026"#]
    );
    assert_status(&r["rename"], "OK");
    assert_status(&r["rename_to_existing"], "NO [ALREADYEXISTS]");
    assert_status(&r["rename_missing"], "NO [NONEXISTENT]");
    assert_eq!(
        untagged(&r["list_archive"]),
        [
            r#"* LIST (\HasChildren \Archive) "/" Archive"#,
            r#"* LIST (\HasNoChildren) "/" Archive/2026"#,
        ]
    );
    assert_status(&r["delete"], "OK");
    assert_status(&r["delete_again"], "NO [NONEXISTENT]");
    assert_status(&r["delete_inbox"], "NO");
    let names: Vec<String> = {
        let store = open_store(&env);
        let account = store.account(ADDRESS).unwrap();
        store
            .mailboxes(account.id)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    };
    assert!(names.contains(&"Projects".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("2026")), "{names:?}");

    // STATUS against the store.
    let inbox = mailbox(&env, "INBOX");
    let validity = uidvalidity(&env, "INBOX");
    let next = inbox.last().unwrap().0.uid + 1;
    assert_eq!(
        untagged(&r["status_inbox"]),
        [format!(
            "* STATUS INBOX (MESSAGES 3 RECENT 0 UIDNEXT {next} UIDVALIDITY {validity} UNSEEN 3)"
        )]
    );
    assert_eq!(
        untagged(&r["status_sent"]),
        ["* STATUS Sent (MESSAGES 0 UIDNEXT 1 UNSEEN 0)"]
    );
    assert_status(&r["status_missing"], "NO [NONEXISTENT]");
    assert_eq!(
        untagged(&r["status_after_read"]),
        ["* STATUS INBOX (MESSAGES 3 UNSEEN 2)"]
    );
    assert_eq!(
        untagged(&r["namespace"]),
        [r#"* NAMESPACE (("" "/")) NIL NIL"#]
    );

    // One quota root, "", with the account's quota in KiB.
    let used = open_store(&env).account(ADDRESS).unwrap().used_bytes;
    let total: u64 = inbox.iter().map(|(m, _)| m.size).sum();
    assert_eq!(used, total, "the quota counts the stored messages");
    let quota = format!(r#"* QUOTA "" (STORAGE {} 10240)"#, used.div_ceil(1024));
    assert_eq!(
        untagged(&r["getquotaroot"]),
        [r#"* QUOTAROOT INBOX """#, quota.as_str()]
    );
    assert_eq!(untagged(&r["getquota"]), [quota.as_str()]);
    assert_status(&r["getquota_other"], "NO");
    assert_status(&r["setquota"], "NO");
}

// ------------------------------------------------------------------- FETCH

/// The fetch test's messages: a plain one with every envelope field, a
/// multipart/mixed one (quoted-printable text and a base64 attachment),
/// and two plain ones for RFC822.*.
fn fetch_messages() -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let plain = b"From: Alice Example <alice@remote.example>\r\n\
        Sender: Secretary <sec@remote.example>\r\n\
        Reply-To: Lists <lists@remote.example>\r\n\
        To: bob@example.com\r\n\
        Cc: Carol <carol@remote.example>, dave@remote.example\r\n\
        Subject: Lunch on Friday\r\n\
        Date: Mon, 02 Nov 2026 09:30:00 +0100\r\n\
        In-Reply-To: <earlier@remote.example>\r\n\
        Message-ID: <lunch-1@remote.example>\r\n\
        \r\n\
        Shall we try the new Thai place?\r\n\
        .A line with a dot\r\n"
        .to_vec();
    let text_part = b"Viele Gr=C3=BC=C3=9Fe aus Berlin,\r\nDieter\r\n".to_vec();
    let attachment = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n".to_vec();
    let mut multipart = b"From: =?utf-8?q?Dieter_M=C3=BCller?= <dieter@remote.example>\r\n\
        To: bob@example.com\r\n\
        Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
        Date: Tue, 10 Nov 2026 18:00:00 +0100\r\n\
        Message-ID: <gruesse@remote.example>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
        \r\n\
        This is a multi-part message.\r\n\
        --b1\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n"
        .to_vec();
    multipart.extend_from_slice(&text_part);
    multipart.extend_from_slice(
        b"--b1\r\n\
        Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
        Content-Transfer-Encoding: base64\r\n\
        Content-Disposition: attachment; filename=\"data.bin\"\r\n\
        \r\n",
    );
    multipart.extend_from_slice(&attachment);
    multipart.extend_from_slice(b"--b1--\r\n");
    let third = b"Subject: third\r\n\r\nthe third body\r\n".to_vec();
    let fourth = b"Subject: fourth\r\n\r\nthe fourth body\r\n".to_vec();
    (vec![plain, multipart, third, fourth], text_part, attachment)
}

#[test]
fn fetch_every_data_item() {
    let (env, ports, _server) = setup("");
    let (sent, text_part, attachment) = fetch_messages();
    deliver(&env, &ports, &sent);
    let r = imaplib(
        r#"
r = {}
m = login()
r["examine"] = cmd(m, "select", "INBOX", True)
r["examine_body"] = fetch(m, "1", "(BODY[])")
r["examine_flags"] = fetch(m, "1:*", "(FLAGS)")
r["select"] = cmd(m, "select", "INBOX")
r["index"] = fetch(m, "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)")
r["seconds"] = {n: seconds(v["INTERNALDATE"]) for n, v in r["index"].items() if n != "lines"}
r["peek"] = fetch(m, "1:2", "(BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
r["after_peek"] = fetch(m, "1:*", "(FLAGS)")
r["sections"] = fetch(m, "2", "(BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[1.MIME] BODY.PEEK[2.MIME] BODY.PEEK[3] BODY.PEEK[HEADER.FIELDS (Subject From)] BODY.PEEK[HEADER.FIELDS.NOT (Subject From)] BODY.PEEK[]<10.20> BODY.PEEK[2]<4.8> BODY.PEEK[]<100000.10>)")
r["partial"] = fetch(m, "1", "(BODY[]<0.100>)")
r["body"] = fetch(m, "2", "(BODY[])")
r["header_only"] = fetch(m, "3", "(RFC822.HEADER RFC822.SIZE)")
r["after_header"] = fetch(m, "3", "(FLAGS)")
r["rfc822_text"] = fetch(m, "3", "(RFC822.TEXT)")
r["rfc822"] = fetch(m, "4", "(RFC822)")
r["uid_fetch"] = fetch(m, "3:4", "(RFC822.SIZE)", uid=True)
r["uid_fetch_missing"] = fetch(m, "999", "(FLAGS)", uid=True)
r["star"] = fetch(m, "*", "(UID)")
r["final"] = fetch(m, "1:*", "(FLAGS)")
m.logout()
print(json.dumps(r))
"#,
        &ports,
    );
    let stored = mailbox(&env, "INBOX");
    assert_eq!(stored.len(), 4);
    for (i, (message, bytes)) in stored.iter().enumerate() {
        assert!(
            bytes.ends_with(&sent[i]),
            "message {i} is not what was sent"
        );
        assert_eq!(message.uid, i as u32 + 1);
    }
    let body = |n: usize| &stored[n - 1].1;

    // SELECT and EXAMINE: the counts, the flags, the UID values.
    let validity = uidvalidity(&env, "INBOX");
    let flags_line = r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)";
    let select = untagged(&r["select"]);
    for want in [
        flags_line.to_string(),
        "* 4 EXISTS".into(),
        "* 0 RECENT".into(),
        "* OK [UNSEEN 1] First unseen".into(),
        r"* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Limited".into(),
        format!("* OK [UIDVALIDITY {validity}] UIDs valid"),
        "* OK [UIDNEXT 5] Predicted next UID".into(),
    ] {
        assert!(
            select.contains(&want.as_str()),
            "{want} missing: {select:?}"
        );
    }
    assert_status(&r["select"], "OK [READ-WRITE]");
    let examine = untagged(&r["examine"]);
    assert!(examine.contains(&"* 4 EXISTS"), "{examine:?}");
    assert!(
        examine.contains(&"* OK [PERMANENTFLAGS ()] Limited"),
        "{examine:?}"
    );

    // EXAMINE: BODY[] reads but sets no \Seen.
    assert_status(&r["examine"], "OK [READ-ONLY]");
    assert_same(
        "BODY[] under EXAMINE",
        &bytes(&r["examine_body"]["1"]["BODY[]"]),
        body(1),
    );
    assert_eq!(
        r["examine_body"]["1"].get("FLAGS"),
        None,
        "{}",
        r["examine_body"]
    );
    for n in ["1", "2", "3", "4"] {
        assert_eq!(
            r["examine_flags"][n]["FLAGS"], "()",
            "{}",
            r["examine_flags"]
        );
    }

    // The index items.
    for (i, (message, bytes)) in stored.iter().enumerate() {
        let n = (i + 1).to_string();
        let got = &r["index"][&n];
        assert_eq!(got["UID"], message.uid.to_string(), "{got}");
        assert_eq!(got["FLAGS"], "()", "{got}");
        assert_eq!(got["RFC822.SIZE"], bytes.len().to_string(), "{got}");
        assert_eq!(r["seconds"][&n], message.internal_date, "{got}");
        let date = str_of(&got["INTERNALDATE"]);
        assert!(date.ends_with(" +0000") && date.len() == 26, "{date}");
    }
    assert_eq!(
        r["index"]["1"]["ENVELOPE"],
        concat!(
            r#"("Mon, 02 Nov 2026 09:30:00 +0100" "Lunch on Friday" "#,
            r#"(("Alice Example" NIL "alice" "remote.example")) "#,
            r#"(("Secretary" NIL "sec" "remote.example")) "#,
            r#"(("Lists" NIL "lists" "remote.example")) "#,
            r#"((NIL NIL "bob" "example.com")) "#,
            r#"(("Carol" NIL "carol" "remote.example")(NIL NIL "dave" "remote.example")) "#,
            r#"NIL "<earlier@remote.example>" "<lunch-1@remote.example>")"#
        )
    );
    // Sender and Reply-To default to From (RFC 3501 section 7.4.2).
    assert_eq!(
        r["index"]["2"]["ENVELOPE"],
        concat!(
            r#"("Tue, 10 Nov 2026 18:00:00 +0100" "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" "#,
            r#"(("=?utf-8?q?Dieter_M=C3=BCller?=" NIL "dieter" "remote.example")) "#,
            r#"(("=?utf-8?q?Dieter_M=C3=BCller?=" NIL "dieter" "remote.example")) "#,
            r#"(("=?utf-8?q?Dieter_M=C3=BCller?=" NIL "dieter" "remote.example")) "#,
            r#"((NIL NIL "bob" "example.com")) NIL NIL NIL "<gruesse@remote.example>")"#
        )
    );
    let plain_lines = sent[0][header_len(&sent[0])..]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(
        r["index"]["1"]["BODYSTRUCTURE"],
        format!(
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" {} {plain_lines} NIL NIL NIL NIL)"#,
            sent[0].len() - header_len(&sent[0])
        )
    );
    // Lines are the part's line ends (as Dovecot counts them): the CRLF
    // before a boundary belongs to the boundary.
    let text_lines = text_part[..text_part.len() - 2]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let structure = format!(
        concat!(
            r#"(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" {} {} NIL NIL NIL NIL)"#,
            r#"("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" {} NIL "#,
            r#"("attachment" ("filename" "data.bin")) NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL)"#
        ),
        // A part's body ends before the CRLF that precedes its boundary.
        text_part.len() - 2,
        text_lines,
        attachment.len() - 2
    );
    assert_eq!(r["index"]["2"]["BODYSTRUCTURE"], structure);
    // BODY: the same without the extension data.
    assert_eq!(
        r["index"]["2"]["BODY"],
        format!(
            concat!(
                r#"(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" {} {})"#,
                r#"("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" {}) "mixed")"#
            ),
            text_part.len() - 2,
            text_lines,
            attachment.len() - 2
        )
    );

    // BODY.PEEK: byte-exact, and no \Seen.
    for n in [1, 2] {
        let got = &r["peek"][n.to_string()];
        let header = header_len(body(n));
        assert_same(&format!("BODY[] of {n}"), &bytes(&got["BODY[]"]), body(n));
        assert_same(
            &format!("BODY[HEADER] of {n}"),
            &bytes(&got["BODY[HEADER]"]),
            &body(n)[..header],
        );
        assert_same(
            &format!("BODY[TEXT] of {n}"),
            &bytes(&got["BODY[TEXT]"]),
            &body(n)[header..],
        );
        assert_eq!(got.get("FLAGS"), None, "PEEK answered flags: {got}");
    }
    for n in ["1", "2", "3", "4"] {
        assert_eq!(r["after_peek"][n]["FLAGS"], "()", "{}", r["after_peek"]);
    }

    // Sections of the multipart message.
    let got = &r["sections"]["2"];
    assert_same(
        "BODY[1]",
        &bytes(&got["BODY[1]"]),
        &text_part[..text_part.len() - 2],
    );
    assert_same(
        "BODY[2]",
        &bytes(&got["BODY[2]"]),
        &attachment[..attachment.len() - 2],
    );
    assert_same(
        "BODY[1.MIME]",
        &bytes(&got["BODY[1.MIME]"]),
        b"Content-Type: text/plain; charset=utf-8\r\n\
          Content-Transfer-Encoding: quoted-printable\r\n\r\n",
    );
    assert_same(
        "BODY[2.MIME]",
        &bytes(&got["BODY[2.MIME]"]),
        b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
          Content-Transfer-Encoding: base64\r\n\
          Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n",
    );
    assert_eq!(got["BODY[3]"], "", "a part the message lacks: {got}");
    let fields = got
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.to_ascii_uppercase().starts_with("BODY[HEADER.FIELDS ("))
        .unwrap_or_else(|| panic!("no HEADER.FIELDS: {got}"));
    assert_same(
        "BODY[HEADER.FIELDS (Subject From)]",
        &bytes(fields.1),
        b"From: =?utf-8?q?Dieter_M=C3=BCller?= <dieter@remote.example>\r\n\
          Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n",
    );
    let not_fields = got
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| {
            k.to_ascii_uppercase()
                .starts_with("BODY[HEADER.FIELDS.NOT (")
        })
        .unwrap_or_else(|| panic!("no HEADER.FIELDS.NOT: {got}"));
    let header = &body(2)[..header_len(body(2))];
    let want_not: Vec<u8> = header
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.starts_with(b"From:") && !l.starts_with(b"Subject:"))
        .flatten()
        .copied()
        .collect();
    // The trace fields the server added come first, and they fold; none of
    // their continuation lines starts with From or Subject.
    assert_same(
        "BODY[HEADER.FIELDS.NOT (Subject From)]",
        &bytes(not_fields.1),
        &want_not,
    );
    assert_same(
        "BODY[]<10.20>",
        &bytes(&got["BODY[]<10>"]),
        &body(2)[10..30],
    );
    assert_same(
        "BODY[2]<4.8>",
        &bytes(&got["BODY[2]<4>"]),
        &attachment[4..12],
    );
    assert_eq!(got["BODY[]<100000>"], "", "a partial past the end: {got}");
    for item in got.as_object().unwrap().keys() {
        assert!(item != "FLAGS", "PEEK answered flags: {got}");
    }

    // BODY[] and BODY[]<partial> set \Seen and say so.
    assert_same(
        "BODY[]<0.100>",
        &bytes(&r["partial"]["1"]["BODY[]<0>"]),
        &body(1)[..100],
    );
    assert_eq!(r["partial"]["1"]["FLAGS"], r"(\Seen)", "{}", r["partial"]);
    assert_same("BODY[] of 2", &bytes(&r["body"]["2"]["BODY[]"]), body(2));
    assert_eq!(r["body"]["2"]["FLAGS"], r"(\Seen)", "{}", r["body"]);

    // RFC822.HEADER does not set \Seen; RFC822.TEXT and RFC822 do.
    let header3 = header_len(body(3));
    assert_same(
        "RFC822.HEADER",
        &bytes(&r["header_only"]["3"]["RFC822.HEADER"]),
        &body(3)[..header3],
    );
    assert_eq!(
        r["header_only"]["3"]["RFC822.SIZE"],
        body(3).len().to_string()
    );
    assert_eq!(r["after_header"]["3"]["FLAGS"], "()");
    assert_same(
        "RFC822.TEXT",
        &bytes(&r["rfc822_text"]["3"]["RFC822.TEXT"]),
        &body(3)[header3..],
    );
    assert_eq!(r["rfc822_text"]["3"]["FLAGS"], r"(\Seen)");
    assert_same("RFC822", &bytes(&r["rfc822"]["4"]["RFC822"]), body(4));
    assert_eq!(r["rfc822"]["4"]["FLAGS"], r"(\Seen)");

    // UID FETCH answers the UID even when not asked; unknown UIDs nothing.
    for n in [3, 4] {
        let got = &r["uid_fetch"][n.to_string()];
        assert_eq!(got["UID"], n.to_string(), "{got}");
        assert_eq!(got["RFC822.SIZE"], body(n).len().to_string(), "{got}");
    }
    assert_eq!(r["uid_fetch_missing"], json!({"lines": []}));
    assert_eq!(r["star"]["4"]["UID"], "4", "{}", r["star"]);
    for n in ["1", "2", "3", "4"] {
        assert_eq!(r["final"][n]["FLAGS"], r"(\Seen)", "{}", r["final"]);
    }
    // The store agrees.
    for (message, _) in mailbox(&env, "INBOX") {
        assert_eq!(message.flags, flags(&[Flag::Seen]), "UID {}", message.uid);
    }
}

// ---------------------------------------------------- STORE, SEARCH, SORT

/// The search test's messages, delivered as 1 to 4; 5 and 6 are appended
/// by the script with their own internal dates.
fn search_messages() -> Vec<Vec<u8>> {
    let big = "The quarterly figures follow.\r\n".to_string()
        + &"0123456789 abcdefghijklmnopqrstuvwxyz 0123456789\r\n".repeat(100);
    vec![
        "From: Alice Example <alice@remote.example>\r\n\
         To: bob@example.com\r\n\
         Cc: Carol <carol@remote.example>\r\n\
         Subject: Lunch on Friday\r\n\
         Date: Mon, 02 Nov 2026 09:30:00 +0100\r\n\
         \r\n\
         Shall we try the new Thai place?\r\n"
            .to_string(),
        "From: =?utf-8?q?Dieter_M=C3=BCller?= <dieter@remote.example>\r\n\
         To: bob@example.com\r\n\
         Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Berlin?=\r\n\
         Date: Tue, 10 Nov 2026 18:00:00 +0100\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         Viele Gr=C3=BC=C3=9Fe, Dieter\r\n"
            .to_string(),
        format!(
            "From: alice@remote.example\r\n\
             To: bob@example.com\r\n\
             Bcc: hidden@remote.example\r\n\
             Subject: Quarterly report\r\n\
             Date: Wed, 18 Nov 2026 08:00:00 +0000\r\n\
             X-Priority: 1\r\n\
             \r\n\
             {big}"
        ),
        "From: Zed <zed@remote.example>\r\n\
         To: team@remote.example\r\n\
         Subject: Re: Lunch on Friday\r\n\
         Date: Sun, 01 Nov 2026 12:00:00 +0000\r\n\
         \r\n\
         Yes.\r\n"
            .to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

#[test]
fn store_search_and_sort() {
    let (env, ports, _server) = setup("");
    deliver(&env, &ports, &search_messages());
    let r = imaplib(
        r#"
r = {}
m = login()
draft = (b"From: bob@example.com\r\nTo: someone@remote.example\r\n"
         b"Subject: Draft of a letter\r\nDate: Wed, 01 Jan 2020 10:00:00 +0000\r\n\r\nDear someone,\r\n")
old = (b"From: Alice Example <alice@remote.example>\r\nTo: bob@example.com\r\n"
       b"Subject: Old thread\r\nDate: Tue, 15 Jun 2021 08:00:00 +0000\r\n\r\nFrom long ago.\r\n")
r["append5"] = cmd(m, "append", "INBOX", r"(\Seen \Draft)", '"01-Jan-2020 10:00:00 +0000"', draft)
m.select("INBOX")
# Appended while selected: \Recent in this session.
r["append6"] = cmd(m, "append", "INBOX", r"(\Answered $Important)", '"15-Jun-2021 08:00:00 +0000"', old)
r["store_add"] = cmd(m, "store", "1", "+FLAGS", r"(\Flagged)")
r["store_silent"] = cmd(m, "store", "2", "+FLAGS.SILENT", r"(\Seen)")
r["store_replace"] = cmd(m, "store", "3", "FLAGS", r"(\Answered $Work)")
r["store_remove"] = cmd(m, "store", "3", "-FLAGS", r"($Work)")
r["store_readd"] = cmd(m, "store", "3", "+FLAGS", r"($Work)")
r["uid_store"] = cmd(m, "uid", "STORE", "4", "+FLAGS", r"(\Deleted)")
r["store_remove_silent"] = cmd(m, "store", "1:2", "-FLAGS.SILENT", r"(\Draft)")
searches = [
    "ALL", "ANSWERED", "UNANSWERED", "DELETED", "UNDELETED", "DRAFT", "UNDRAFT",
    "FLAGGED", "UNFLAGGED", "SEEN", "UNSEEN", "KEYWORD $Work", "UNKEYWORD $Work",
    "KEYWORD $Important", "RECENT", "NEW", "OLD",
    "FROM alice", "FROM Zed", "TO team", "CC carol", "BCC hidden", "SUBJECT lunch",
    "BODY thai", "TEXT Quarterly", "TEXT thai", "HEADER X-Priority 1", 'HEADER X-Priority ""',
    "LARGER 4000", "SMALLER 4000",
    "BEFORE 1-Jan-2022", "ON 15-Jun-2021", "SINCE 1-Jan-2022",
    "SENTBEFORE 5-Nov-2026", "SENTON 10-Nov-2026", "SENTSINCE 18-Nov-2026",
    "UID 2:4", "2,4:5", "5:*", "NOT FROM alice", "OR FLAGGED DRAFT",
    "FROM alice UNSEEN", "(OR SEEN FLAGGED) FROM alice", "NOT (OR SEEN FLAGGED)",
]
r["search"] = {}
for criteria in searches:
    typ, data = m.search(None, criteria)
    r["search"][criteria] = [typ, text(data[0])]
typ, data = m.uid("SEARCH", "KEYWORD", "$Important")
r["uid_search"] = [typ, text(data[0])]
m.literal = "Grüße".encode()
typ, data = m.search("UTF-8", "SUBJECT")
r["utf8_subject"] = [typ, text(data[0])]
m.literal = "viele grüße".encode()
typ, data = m.search("UTF-8", "BODY")
r["utf8_body"] = [typ, text(data[0])]
m.literal = "Müller".encode()
typ, data = m.search("UTF-8", "FROM")
r["utf8_from"] = [typ, text(data[0])]
r["bad_charset"] = cmd(m, "search", "X-UNKNOWN", "ALL")
sorts = [
    ("(SUBJECT)", "ALL"), ("(REVERSE SUBJECT)", "ALL"), ("(DATE)", "ALL"),
    ("(ARRIVAL)", "ALL"), ("(FROM)", "ALL"), ("(SIZE)", "ALL"), ("(REVERSE SIZE)", "ALL"),
    ("(SUBJECT)", "FROM alice"), ("(CC SUBJECT)", "ALL"), ("(TO REVERSE DATE)", "ALL"),
]
r["sort"] = {}
for criteria, keys in sorts:
    typ, data = m.sort(criteria, "UTF-8", keys)
    r["sort"][criteria + " " + keys] = [typ, text(data[0])]
typ, data = m.uid("SORT", "(REVERSE DATE)", "UTF-8", "SEEN")
r["uid_sort"] = [typ, text(data[0])]
m.logout()
print(json.dumps(r))
"#,
        &ports,
    );
    let stored = mailbox(&env, "INBOX");
    assert_eq!(stored.len(), 6);
    let validity = uidvalidity(&env, "INBOX");
    assert_status(&r["append5"], &format!("OK [APPENDUID {validity} 5]"));
    // The session hears of its own append.
    assert_eq!(untagged(&r["append6"]), ["* 6 EXISTS", "* 1 RECENT"]);
    assert_status(&r["append6"], &format!("OK [APPENDUID {validity} 6]"));

    // STORE answers the new flags, except .SILENT.
    assert_eq!(untagged(&r["store_add"]), [r"* 1 FETCH (FLAGS (\Flagged))"]);
    assert!(
        untagged(&r["store_silent"]).is_empty(),
        "{}",
        r["store_silent"]
    );
    assert_eq!(
        untagged(&r["store_replace"]),
        [r"* 3 FETCH (FLAGS (\Answered $Work))"]
    );
    assert_eq!(
        untagged(&r["store_remove"]),
        [r"* 3 FETCH (FLAGS (\Answered))"]
    );
    assert_eq!(
        untagged(&r["store_readd"]),
        [r"* 3 FETCH (FLAGS (\Answered $Work))"]
    );
    assert_eq!(
        untagged(&r["uid_store"]),
        [r"* 4 FETCH (FLAGS (\Deleted) UID 4)"]
    );
    assert!(untagged(&r["store_remove_silent"]).is_empty());
    let want_flags = [
        flags(&[Flag::Flagged]),
        flags(&[Flag::Seen]),
        flags(&[Flag::Answered, Flag::Keyword("$Work".into())]),
        flags(&[Flag::Deleted]),
        flags(&[Flag::Seen, Flag::Draft]),
        flags(&[Flag::Answered, Flag::Keyword("$Important".into())]),
    ];
    for (i, (message, _)) in stored.iter().enumerate() {
        assert_eq!(message.flags, want_flags[i], "flags of UID {}", message.uid);
    }
    // The appended internal dates: 2020-01-01T10:00:00Z, 2021-06-15T08:00:00Z.
    assert_eq!(stored[4].0.internal_date, 1_577_872_800);
    assert_eq!(stored[5].0.internal_date, 1_623_744_000);

    // Each search against the expected message numbers.
    let big: Vec<String> = stored
        .iter()
        .enumerate()
        .filter(|(_, (m, _))| m.size > 4000)
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    assert_eq!(big, ["3"], "only message 3 is large");
    let expected = [
        ("ALL", "1 2 3 4 5 6"),
        ("ANSWERED", "3 6"),
        ("UNANSWERED", "1 2 4 5"),
        ("DELETED", "4"),
        ("UNDELETED", "1 2 3 5 6"),
        ("DRAFT", "5"),
        ("UNDRAFT", "1 2 3 4 6"),
        ("FLAGGED", "1"),
        ("UNFLAGGED", "2 3 4 5 6"),
        ("SEEN", "2 5"),
        ("UNSEEN", "1 3 4 6"),
        ("KEYWORD $Work", "3"),
        ("UNKEYWORD $Work", "1 2 4 5 6"),
        ("KEYWORD $Important", "6"),
        ("RECENT", "6"),
        ("NEW", "6"),
        ("OLD", "1 2 3 4 5"),
        ("FROM alice", "1 3 6"),
        ("FROM Zed", "4"),
        ("TO team", "4"),
        ("CC carol", "1"),
        ("BCC hidden", "3"),
        ("SUBJECT lunch", "1 4"),
        ("BODY thai", "1"),
        ("TEXT Quarterly", "3"),
        ("TEXT thai", "1"),
        ("HEADER X-Priority 1", "3"),
        ("HEADER X-Priority \"\"", "3"),
        ("LARGER 4000", "3"),
        ("SMALLER 4000", "1 2 4 5 6"),
        ("BEFORE 1-Jan-2022", "5 6"),
        ("ON 15-Jun-2021", "6"),
        ("SINCE 1-Jan-2022", "1 2 3 4"),
        ("SENTBEFORE 5-Nov-2026", "1 4 5 6"),
        ("SENTON 10-Nov-2026", "2"),
        ("SENTSINCE 18-Nov-2026", "3"),
        ("UID 2:4", "2 3 4"),
        ("2,4:5", "2 4 5"),
        ("5:*", "5 6"),
        ("NOT FROM alice", "2 4 5"),
        ("OR FLAGGED DRAFT", "1 5"),
        ("FROM alice UNSEEN", "1 3 6"),
        ("(OR SEEN FLAGGED) FROM alice", "1"),
        ("NOT (OR SEEN FLAGGED)", "3 4 6"),
    ];
    let mut wrong = Vec::new();
    for (criteria, want) in expected {
        let got = &r["search"][criteria];
        if got != &json!(["OK", want]) {
            wrong.push(format!("SEARCH {criteria}: got {got}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(r["uid_search"], json!(["OK", "6"]));
    assert_eq!(r["utf8_subject"], json!(["OK", "2"]));
    assert_eq!(r["utf8_body"], json!(["OK", "2"]));
    assert_eq!(r["utf8_from"], json!(["OK", "2"]));
    assert_status(&r["bad_charset"], "NO [BADCHARSET");

    // SORT (RFC 5256): base subjects ("Re:" removed), sent dates, arrival,
    // first From mailbox, size; ties in message-number order.
    let mut by_size: Vec<(u64, usize)> = stored
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (m.size, i + 1))
        .collect();
    by_size.sort();
    let size_order: Vec<String> = by_size.iter().map(|(_, n)| n.to_string()).collect();
    let reverse_size: Vec<String> = {
        let mut v = by_size.clone();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        v.iter().map(|(_, n)| n.to_string()).collect()
    };
    let expected = [
        ("(SUBJECT) ALL", "5 2 1 4 6 3".to_string()),
        ("(REVERSE SUBJECT) ALL", "3 6 1 4 2 5".to_string()),
        ("(DATE) ALL", "5 6 4 1 2 3".to_string()),
        ("(ARRIVAL) ALL", "5 6 1 2 3 4".to_string()),
        ("(FROM) ALL", "1 3 6 5 2 4".to_string()),
        ("(SIZE) ALL", size_order.join(" ")),
        ("(REVERSE SIZE) ALL", reverse_size.join(" ")),
        ("(SUBJECT) FROM alice", "1 6 3".to_string()),
        // No Cc sorts first (an empty string), then carol.
        ("(CC SUBJECT) ALL", "5 2 4 6 3 1".to_string()),
        // To: bob (1 2 3 6, newest first), someone (5), team (4).
        ("(TO REVERSE DATE) ALL", "3 2 1 6 5 4".to_string()),
    ];
    let mut wrong = Vec::new();
    for (criteria, want) in &expected {
        let got = &r["sort"][criteria];
        if got != &json!(["OK", want]) {
            wrong.push(format!("SORT {criteria}: got {got}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(r["uid_sort"], json!(["OK", "2 5"]));
}

// ------------------------------------- COPY, MOVE, EXPUNGE, APPEND, CLOSE

#[test]
fn copy_move_expunge_append_and_close() {
    let (env, ports, _server) = setup("");
    let sent: Vec<Vec<u8>> = (1..=8)
        .map(|i| format!("Subject: message {i}\r\n\r\nbody {i}\r\n").into_bytes())
        .collect();
    deliver(&env, &ports, &sent);
    // Room for the small messages, not for the big APPEND.
    ok(&env.run(&["account", "quota", ADDRESS, "1"]));
    let r = imaplib(
        r#"
r = {}
m = login()
m.select("INBOX")
r["copy"] = cmd(m, "copy", "1:2", "Archive")
r["uid_copy"] = cmd(m, "uid", "COPY", "4,6", "Archive")
r["copy_missing"] = cmd(m, "copy", "1", "Nowhere")
r["move"] = cmd(m, "_simple_command", "MOVE", "3", "Trash")
r["uid_move"] = cmd(m, "uid", "MOVE", "5", "Junk")
r["move_missing"] = cmd(m, "_simple_command", "MOVE", "1", "Nowhere")
r["after_moves"] = fetch(m, "1:*", "(UID)")
# INBOX is now UIDs 1 2 4 6 7 8 as 1..6; delete 1, 3 and 4 (UIDs 1, 4, 6).
m.store("1,3:4", "+FLAGS.SILENT", r"(\Deleted)")
r["expunge"] = cmd(m, "expunge")
r["after_expunge"] = fetch(m, "1:*", "(UID)")
# UIDs 2 7 8 left; mark all deleted, UID EXPUNGE only 7.
m.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
r["uid_expunge"] = cmd(m, "uid", "EXPUNGE", "7")
r["after_uid_expunge"] = fetch(m, "1:*", "(UID FLAGS)")
r["close"] = cmd(m, "close")
r["reselect"] = cmd(m, "select", "INBOX")
r["status_trash_junk"] = [cmd(m, "status", "Trash", "(MESSAGES)"), cmd(m, "status", "Junk", "(MESSAGES)")]
m.select("Archive")
m.store("1", "+FLAGS.SILENT", r"(\Deleted)")
r["unselect"] = cmd(m, "unselect")
r["status_archive"] = cmd(m, "status", "Archive", "(MESSAGES)")
r["examine_archive"] = cmd(m, "select", "Archive", True)
r["expunge_read_only"] = cmd(m, "expunge")
r["close_read_only"] = cmd(m, "close")
r["status_archive_after"] = cmd(m, "status", "Archive", "(MESSAGES)")

letter = b"From: bob@example.com\r\nSubject: appended\r\n\r\nDear Sir,\r\n.\r\nYours\r\n"
m.select("Drafts")
r["append"] = cmd(m, "append", "Drafts", r"(\Draft \Seen $Label)", '"05-Mar-2024 14:15:16 +0100"', letter)
r["append_plain"] = cmd(m, "append", "Drafts", None, None, b"Subject: no flags\r\n\r\nx\r\n")
r["drafts"] = fetch(m, "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
r["append_seconds"] = seconds(r["drafts"]["1"]["INTERNALDATE"])
r["too_big"] = cmd(m, "append", "Drafts", None, None, b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 14000)
r["append_missing"] = cmd(m, "append", "Nowhere", None, None, b"Subject: lost\r\n\r\nx\r\n")
m.logout()
print(json.dumps(r))
"#,
        &ports,
    );
    let archive = uidvalidity(&env, "Archive");
    let trash = uidvalidity(&env, "Trash");
    let junk = uidvalidity(&env, "Junk");
    let drafts = uidvalidity(&env, "Drafts");

    // COPYUID: source UIDs and the UIDs the copies got, in order.
    assert_status(&r["copy"], &format!("OK [COPYUID {archive} 1:2 1:2]"));
    assert_status(&r["uid_copy"], &format!("OK [COPYUID {archive} 4,6 3,4]"));
    assert_status(&r["copy_missing"], "NO [TRYCREATE]");
    // MOVE: COPYUID in an untagged OK, then the EXPUNGE (RFC 6851).
    assert_eq!(
        untagged(&r["move"]),
        [
            format!("* OK [COPYUID {trash} 3 1] Moved"),
            "* 3 EXPUNGE".into()
        ]
    );
    assert_status(&r["move"], "OK");
    assert_eq!(
        untagged(&r["uid_move"]),
        [
            format!("* OK [COPYUID {junk} 5 1] Moved"),
            "* 4 EXPUNGE".into()
        ]
    );
    assert_status(&r["move_missing"], "NO [TRYCREATE]");
    let uids = |v: &Value| -> Vec<String> {
        (1..)
            .map_while(|n: usize| v.get(n.to_string()).map(|m| str_of(&m["UID"]).to_string()))
            .collect()
    };
    assert_eq!(uids(&r["after_moves"]), ["1", "2", "4", "6", "7", "8"]);
    // Each EXPUNGE numbers against the mailbox as it is after the ones
    // before it: 1, 3, 4 go as 1, 2, 2.
    assert_eq!(
        untagged(&r["expunge"]),
        ["* 1 EXPUNGE", "* 2 EXPUNGE", "* 2 EXPUNGE"]
    );
    assert_eq!(uids(&r["after_expunge"]), ["2", "7", "8"]);
    assert_eq!(untagged(&r["uid_expunge"]), ["* 2 EXPUNGE"]);
    assert_eq!(uids(&r["after_uid_expunge"]), ["2", "8"]);
    assert_eq!(r["after_uid_expunge"]["1"]["FLAGS"], r"(\Deleted)");
    // CLOSE removes the \Deleted messages without a word.
    assert!(untagged(&r["close"]).is_empty(), "{}", r["close"]);
    assert_status(&r["close"], "OK");
    assert!(
        untagged(&r["reselect"]).contains(&"* 0 EXISTS"),
        "{}",
        r["reselect"]
    );
    assert!(mailbox(&env, "INBOX").is_empty());
    assert_eq!(
        untagged(&r["status_trash_junk"][0]),
        ["* STATUS Trash (MESSAGES 1)"]
    );
    assert_eq!(
        untagged(&r["status_trash_junk"][1]),
        ["* STATUS Junk (MESSAGES 1)"]
    );
    // UNSELECT and a read-only CLOSE expunge nothing.
    assert_status(&r["unselect"], "OK");
    assert_eq!(
        untagged(&r["status_archive"]),
        ["* STATUS Archive (MESSAGES 4)"]
    );
    assert_status(&r["examine_archive"], "OK [READ-ONLY]");
    assert_status(&r["expunge_read_only"], "NO");
    assert_status(&r["close_read_only"], "OK");
    assert_eq!(
        untagged(&r["status_archive_after"]),
        ["* STATUS Archive (MESSAGES 4)"]
    );
    // The copies and moves are the messages themselves, under the UIDs
    // COPYUID gave.
    let inbox_sent = |n: usize| &sent[n - 1];
    let archived = mailbox(&env, "Archive");
    assert_eq!(archived.len(), 4);
    for ((message, bytes), (uid, n)) in archived.iter().zip([(1, 1), (2, 2), (3, 4), (4, 6)]) {
        assert_eq!(message.uid, uid);
        assert!(
            bytes.ends_with(inbox_sent(n)),
            "Archive UID {uid} is message {n}"
        );
    }
    let trashed = mailbox(&env, "Trash");
    assert_eq!(trashed[0].0.uid, 1);
    assert!(trashed[0].1.ends_with(inbox_sent(3)));
    let junked = mailbox(&env, "Junk");
    assert_eq!(junked[0].0.uid, 1);
    assert!(junked[0].1.ends_with(inbox_sent(5)));

    // APPEND: APPENDUID, flags, the date, the bytes as sent.
    assert_eq!(untagged(&r["append"]), ["* 1 EXISTS", "* 1 RECENT"]);
    assert_status(&r["append"], &format!("OK [APPENDUID {drafts} 1]"));
    assert_status(&r["append_plain"], &format!("OK [APPENDUID {drafts} 2]"));
    let stored = mailbox(&env, "Drafts");
    assert_eq!(stored.len(), 2);
    let letter = b"From: bob@example.com\r\nSubject: appended\r\n\r\nDear Sir,\r\n.\r\nYours\r\n";
    assert_same("the appended message", &stored[0].1, letter);
    assert_same(
        "BODY[] of the appended message",
        &bytes(&r["drafts"]["1"]["BODY[]"]),
        letter,
    );
    assert_eq!(
        stored[0].0.flags,
        flags(&[Flag::Draft, Flag::Seen, Flag::Keyword("$Label".into())])
    );
    // 05-Mar-2024 14:15:16 +0100 is 13:15:16 UTC.
    assert_eq!(stored[0].0.internal_date, 1_709_644_516);
    assert_eq!(r["append_seconds"], 1_709_644_516);
    assert_eq!(stored[1].0.flags, Flags::new());
    let flags1 = str_of(&r["drafts"]["1"]["FLAGS"]);
    for flag in [r"\Draft", r"\Seen", "$Label", r"\Recent"] {
        assert!(flags1.contains(flag), "{flag} missing: {flags1}");
    }
    // Over the quota: [OVERQUOTA], and nothing stored.
    assert_status(&r["too_big"], "NO [OVERQUOTA]");
    assert_eq!(mailbox(&env, "Drafts").len(), 2);
    // RFC 3501 6.3.11: APPEND to a mailbox that does not exist fails with
    // [TRYCREATE], as COPY and MOVE do.
    assert_status(&r["append_missing"], "NO [TRYCREATE]");
}
