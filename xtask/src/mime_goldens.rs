//! `cargo xtask mime-goldens`: record what a real Dovecot answers for every
//! message of the ironpost-mime corpus, so that the crate's golden test can
//! compare its own ENVELOPE, BODYSTRUCTURE and sections byte for byte without
//! Dovecot on the machine.
//!
//! The command starts `dovecot -F` with a generated configuration in a
//! temporary directory (maildir storage, a passwd-file user, no TLS, one IMAP
//! listener on 127.0.0.1 on a free port), logs in over a plain `TcpStream`,
//! appends each `crates/mime/tests/corpus/*.eml` (LF line ends turned into
//! CRLF first, as the server stores messages) and fetches:
//!
//! ```text
//! RFC822.SIZE ENVELOPE BODYSTRUCTURE
//! BODY[HEADER] BODY[TEXT] BODY[TEXT]<10.50>
//! BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE)]
//! BODY[HEADER.FIELDS.NOT (RECEIVED DATE)]
//! BODY[n] and BODY[n.MIME] for every part n of the BODYSTRUCTURE
//! ```
//!
//! Each answer goes to `crates/mime/tests/goldens/<name>.txt` as records
//! `<item> <length>\n<exact bytes Dovecot sent for the value>\n`.
//!
//! Dovecot must be installed (`apt-get install dovecot-imapd`). As root the
//! server's processes run as the Debian package's `dovecot` and `dovenull`
//! users; otherwise everything runs as the current user.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, root};

/// The header fields asked for with HEADER.FIELDS in every golden file.
pub(crate) const HEADER_FIELDS: &str = "FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE";
/// The header fields asked for with HEADER.FIELDS.NOT in every golden file.
pub(crate) const HEADER_FIELDS_NOT: &str = "RECEIVED DATE";

pub(crate) fn run(args: &[String]) -> Result {
    let mut dovecot = "dovecot".to_string();
    let mut only: Option<String> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--dovecot" => dovecot = iter.next().ok_or("--dovecot needs a path")?.clone(),
            "--only" => only = Some(iter.next().ok_or("--only needs a file name")?.clone()),
            other => return Err(format!("mime-goldens: unknown argument {other}")),
        }
    }
    let corpus = root().join("crates/mime/tests/corpus");
    let goldens = root().join("crates/mime/tests/goldens");
    let mut files: Vec<PathBuf> = fs::read_dir(&corpus)
        .map_err(|e| format!("{}: {e}", corpus.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .filter(|p| {
            only.as_ref()
                .is_none_or(|o| p.file_name().is_some_and(|n| n.to_string_lossy() == *o))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "no .eml files in {} (run `cargo xtask mime-corpus` first)",
            corpus.display()
        ));
    }
    fs::create_dir_all(&goldens).map_err(|e| format!("{}: {e}", goldens.display()))?;

    let server = Dovecot::start(&dovecot)?;
    let result = fetch_all(&server, &files, &goldens);
    drop(server);
    result?;
    eprintln!(
        "xtask: wrote {} golden files to {}",
        files.len(),
        goldens.display()
    );
    Ok(())
}

fn fetch_all(server: &Dovecot, files: &[PathBuf], goldens: &Path) -> Result {
    let mut imap = Imap::connect(server.port)?;
    imap.command("LOGIN golden golden")?;
    imap.command("SELECT INBOX")?;
    for (index, file) in files.iter().enumerate() {
        let raw = fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let message = crlf(&raw);
        imap.append(&message)?;
        let seq = index + 1;
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        let items = imap.fetch(seq, "RFC822.SIZE ENVELOPE BODYSTRUCTURE")?;
        records.extend(items);
        let structure = records
            .iter()
            .find(|(name, _)| name == "BODYSTRUCTURE")
            .map(|(_, value)| value.clone())
            .ok_or_else(|| format!("{}: no BODYSTRUCTURE in the answer", file.display()))?;
        let tree = Value::parse(&structure)
            .ok_or_else(|| format!("{}: cannot read BODYSTRUCTURE", file.display()))?;
        let mut fetches = vec![
            "BODY.PEEK[HEADER]".to_string(),
            "BODY.PEEK[TEXT]".to_string(),
            "BODY.PEEK[TEXT]<10.50>".to_string(),
            format!("BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})]"),
            format!("BODY.PEEK[HEADER.FIELDS.NOT ({HEADER_FIELDS_NOT})]"),
        ];
        for part in part_numbers(&tree) {
            fetches.push(format!("BODY.PEEK[{part}]"));
            fetches.push(format!("BODY.PEEK[{part}.MIME]"));
        }
        for fetch in fetches {
            records.extend(imap.fetch(seq, &fetch)?);
        }
        let mut out = Vec::new();
        for (name, value) in records {
            out.extend_from_slice(format!("{name} {}\n", value.len()).as_bytes());
            out.extend_from_slice(&value);
            out.push(b'\n');
        }
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = goldens.join(format!("{name}.txt"));
        fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    imap.command("LOGOUT").ok();
    Ok(())
}

/// LF line ends to CRLF; existing CRLF pairs stay as they are.
pub(crate) fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// A Dovecot instance in a temporary directory, stopped on drop.
struct Dovecot {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Dovecot {
    fn start(program: &str) -> Result<Dovecot> {
        let dir =
            std::env::temp_dir().join(format!("ironpost-mime-goldens-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        for sub in ["run", "state", "mail", "home"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let (internal, login, mail_user) = if is_root {
            (
                "dovecot".to_string(),
                "dovenull".to_string(),
                "dovecot".to_string(),
            )
        } else {
            let me = Command::new("id")
                .arg("-un")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .map_err(|e| format!("id -un: {e}"))?;
            (me.clone(), me.clone(), me)
        };
        if is_root {
            // The mail processes run as the `dovecot` user and need the tree.
            let status = Command::new("chown")
                .args(["-R", &format!("{mail_user}:{mail_user}")])
                .arg(dir.join("mail"))
                .arg(dir.join("home"))
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err("chown of the mail directory failed".into());
            }
            let status = Command::new("chmod")
                .arg("755")
                .arg(&dir)
                .status()
                .map_err(|e| format!("chmod: {e}"))?;
            if !status.success() {
                return Err("chmod of the temporary directory failed".into());
            }
        }
        let d = dir.display();
        let config = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             instance_name = ironpost-mime-goldens\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain\n\
             login_trusted_networks = 127.0.0.0/8\n\
             default_internal_user = {internal}\n\
             default_internal_group = {internal}\n\
             default_login_user = {login}\n\
             first_valid_uid = 1\n\
             mail_location = maildir:{d}/mail/%u\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={mail_user} gid={mail_user} home={d}/home/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        fs::write(dir.join("dovecot.conf"), config).map_err(|e| format!("{d}: {e}"))?;
        fs::write(dir.join("passwd"), "golden:{PLAIN}golden\n").map_err(|e| format!("{d}: {e}"))?;
        let child = Command::new(program)
            .arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start {program}: {e} (install it with: apt-get install -y dovecot-imapd)")
            })?;
        let server = Dovecot { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let log = fs::read_to_string(server.dir.join("dovecot.log")).unwrap_or_default();
                return Err(format!("dovecot did not listen on port {port}:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A minimal IMAP client: one command at a time, literals read in full.
struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Imap {
    fn connect(port: u16) -> Result<Imap> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("socket: {e}"))?;
        let writer = stream.try_clone().map_err(|e| format!("socket: {e}"))?;
        let mut imap = Imap {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        let greeting = imap.read_response_line()?;
        if !greeting.starts_with(b"* OK") {
            return Err(format!(
                "unexpected greeting: {}",
                String::from_utf8_lossy(&greeting)
            ));
        }
        Ok(imap)
    }

    /// One response line with its literals inlined (`{n}\r\n` + n bytes).
    fn read_response_line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            let start = line.len();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            let chunk = &line[start..];
            let Some(size) = literal_size(chunk) else {
                return Ok(line);
            };
            let mut literal = vec![0u8; size];
            self.reader
                .read_exact(&mut literal)
                .map_err(|e| format!("read literal: {e}"))?;
            line.extend_from_slice(&literal);
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result {
        self.writer
            .write_all(bytes)
            .map_err(|e| format!("write: {e}"))
    }

    /// Sends `command` and returns the untagged lines before the tagged OK.
    fn command(&mut self, command: &str) -> Result<Vec<Vec<u8>>> {
        self.tag += 1;
        let tag = format!("x{}", self.tag);
        self.send(format!("{tag} {command}\r\n").as_bytes())?;
        self.collect(&tag, command)
    }

    fn collect(&mut self, tag: &str, what: &str) -> Result<Vec<Vec<u8>>> {
        let mut untagged = Vec::new();
        loop {
            let line = self.read_response_line()?;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                if line[tag.len() + 1..].starts_with(b"OK") {
                    return Ok(untagged);
                }
                return Err(format!("{what}: {}", String::from_utf8_lossy(&line)));
            }
            untagged.push(line);
        }
    }

    fn append(&mut self, message: &[u8]) -> Result {
        self.tag += 1;
        let tag = format!("x{}", self.tag);
        self.send(format!("{tag} APPEND INBOX {{{}}}\r\n", message.len()).as_bytes())?;
        let cont = self.read_response_line()?;
        if !cont.starts_with(b"+") {
            return Err(format!("APPEND: {}", String::from_utf8_lossy(&cont)));
        }
        self.send(message)?;
        self.send(b"\r\n")?;
        self.collect(&tag, "APPEND").map(|_| ())
    }

    /// FETCH and split the answer into (item name, raw value bytes).
    fn fetch(&mut self, seq: usize, items: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let lines = self.command(&format!("FETCH {seq} ({items})"))?;
        let prefix = format!("* {seq} FETCH (");
        let mut out = Vec::new();
        for line in lines {
            if !line.starts_with(prefix.as_bytes()) {
                continue;
            }
            let body = line
                .strip_suffix(b"\r\n")
                .ok_or("FETCH answer without CRLF")?;
            let body = body
                .strip_suffix(b")")
                .ok_or("FETCH answer without closing parenthesis")?;
            out.extend(split_items(&body[prefix.len()..])?);
        }
        Ok(out)
    }
}

/// `{n}` or `{n+}` at the end of a line (before CRLF): the literal's size.
fn literal_size(line: &[u8]) -> Option<usize> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `NAME value NAME value ...` of a FETCH answer.
fn split_items(mut data: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        // The name runs to a space outside brackets (`BODY[HEADER.FIELDS (A B)]<0>`).
        let mut depth = 0usize;
        let mut end = data.len();
        for (i, &b) in data.iter().enumerate() {
            match b {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let name = String::from_utf8_lossy(&data[..end]).into_owned();
        data = data.get(end + 1..).ok_or("FETCH item without value")?;
        let len = value_len(data).ok_or_else(|| format!("cannot read the value of {name}"))?;
        out.push((name, data[..len].to_vec()));
        data = &data[len..];
        if let Some(rest) = data.strip_prefix(b" ") {
            data = rest;
        }
    }
    Ok(out)
}

/// The length of the IMAP value at the start of `data`.
fn value_len(data: &[u8]) -> Option<usize> {
    match *data.first()? {
        b'(' => {
            let mut pos = 1;
            loop {
                match *data.get(pos)? {
                    b')' => return Some(pos + 1),
                    b' ' => pos += 1,
                    _ => pos += value_len(&data[pos..])?,
                }
            }
        }
        b'"' => {
            let mut pos = 1;
            loop {
                match *data.get(pos)? {
                    b'\\' => pos += 2,
                    b'"' => return Some(pos + 1),
                    _ => pos += 1,
                }
            }
        }
        b'{' => {
            let close = data.iter().position(|&b| b == b'}')?;
            let size: usize = std::str::from_utf8(&data[1..close]).ok()?.parse().ok()?;
            let start = close + 3;
            (data.len() >= start + size).then_some(start + size)
        }
        _ => Some(
            data.iter()
                .position(|&b| b == b' ' || b == b')' || b == b'(')
                .unwrap_or(data.len()),
        ),
    }
}

/// A parsed IMAP value: enough to walk a BODYSTRUCTURE.
#[derive(Debug)]
enum Value {
    List(Vec<Value>),
    Text(Vec<u8>),
    Nil,
}

impl Value {
    fn parse(data: &[u8]) -> Option<Value> {
        let (value, len) = Value::parse_at(data)?;
        (len == data.len()).then_some(value)
    }

    fn parse_at(data: &[u8]) -> Option<(Value, usize)> {
        let len = value_len(data)?;
        let value = match data[0] {
            b'(' => {
                let mut items = Vec::new();
                let mut pos = 1;
                while data[pos] != b')' {
                    if data[pos] == b' ' {
                        pos += 1;
                        continue;
                    }
                    let (item, n) = Value::parse_at(&data[pos..len])?;
                    items.push(item);
                    pos += n;
                }
                Value::List(items)
            }
            b'"' => {
                let mut text = Vec::new();
                let mut i = 1;
                while i < len - 1 {
                    if data[i] == b'\\' {
                        i += 1;
                    }
                    text.push(data[i]);
                    i += 1;
                }
                Value::Text(text)
            }
            b'{' => {
                let close = data.iter().position(|&b| b == b'}')?;
                Value::Text(data[close + 3..len].to_vec())
            }
            _ if data[..len].eq_ignore_ascii_case(b"NIL") => Value::Nil,
            _ => Value::Text(data[..len].to_vec()),
        };
        Some((value, len))
    }

    fn text_is(&self, expected: &str) -> bool {
        matches!(self, Value::Text(t) if t.eq_ignore_ascii_case(expected.as_bytes()))
    }
}

/// Every part number of a BODYSTRUCTURE, in order (`1`, `2`, `2.1`, ...).
fn part_numbers(structure: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Value::List(items) = structure else {
        return out;
    };
    if matches!(items.first(), Some(Value::List(_))) {
        children(items, "", &mut out);
    } else {
        out.push("1".to_string());
        nested(items, "1", &mut out);
    }
    out
}

fn join(prefix: &str, n: usize) -> String {
    if prefix.is_empty() {
        n.to_string()
    } else {
        format!("{prefix}.{n}")
    }
}

/// The children of a multipart whose own number is `prefix`.
fn children(items: &[Value], prefix: &str, out: &mut Vec<String>) {
    for (i, child) in items
        .iter()
        .take_while(|v| matches!(v, Value::List(_)))
        .enumerate()
    {
        let number = join(prefix, i + 1);
        out.push(number.clone());
        if let Value::List(child_items) = child {
            if matches!(child_items.first(), Some(Value::List(_))) {
                children(child_items, &number, out);
            } else {
                nested(child_items, &number, out);
            }
        }
    }
}

/// The parts inside a message/rfc822 part numbered `number`.
fn nested(items: &[Value], number: &str, out: &mut Vec<String>) {
    if !(items.len() > 8 && items[0].text_is("message") && items[1].text_is("rfc822")) {
        return;
    }
    let Value::List(body) = &items[8] else {
        return;
    };
    if matches!(body.first(), Some(Value::List(_))) {
        children(body, number, out);
    } else {
        let inner = format!("{number}.1");
        out.push(inner.clone());
        nested(body, &inner, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fetch_items_with_literals() {
        let data =
            b"RFC822.SIZE 34 BODY[HEADER.FIELDS (FROM TO)] {4}\r\nab\r\n ENVELOPE (NIL \"x\")";
        let items = split_items(data).unwrap();
        assert_eq!(items[0], ("RFC822.SIZE".to_string(), b"34".to_vec()));
        assert_eq!(
            items[1],
            (
                "BODY[HEADER.FIELDS (FROM TO)]".to_string(),
                b"{4}\r\nab\r\n".to_vec()
            )
        );
        assert_eq!(items[2].1, b"(NIL \"x\")".to_vec());
    }

    #[test]
    fn numbers_nested_parts() {
        let bs = b"((\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 9 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ((\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)(\"text\" \"html\" NIL NIL NIL \"7bit\" 1 1) \"alternative\") 3) \"mixed\")";
        let value = Value::parse(bs).unwrap();
        assert_eq!(part_numbers(&value), ["1", "2", "2.1", "2.2"]);
        let single = Value::parse(b"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)").unwrap();
        assert_eq!(part_numbers(&single), ["1"]);
    }

    #[test]
    fn crlf_keeps_existing_pairs() {
        assert_eq!(crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc".to_vec());
    }
}
