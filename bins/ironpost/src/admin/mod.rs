//! The admin subcommands: `ironpost domain|account|alias|list|queue <verb>`, run
//! directly on the store (SQLite in WAL mode with its own locking, so they
//! work while the server runs).
//!
//! Each object has its own module holding its clap subcommand enum, a
//! serializable view of the store's value, and `run`, which turns a
//! subcommand into store calls and returns an [`Output`]. Printing (a table,
//! `key: value` lines, or JSON with `--json`) is done once, here.

pub mod account;
pub mod alias;
pub mod domain;
pub mod list;
pub mod queue;

use std::io::{self, BufRead, Write};

use ironpost_store::{Store, Timestamp};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;

/// Why an admin command failed. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store refused the operation (bad name, missing object, conflict...).
    #[error(transparent)]
    Store(#[from] ironpost_store::Error),
    /// The operation is refused for a reason of the command's own.
    #[error("{0}")]
    Refused(String),
    /// The command line is incomplete or contradictory.
    #[error("{0}")]
    Usage(String),
    /// Reading standard input or writing the output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl AdminError {
    /// The process exit code: 2 for a usage error, 1 when the operation was refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Opens the store the configuration names.
pub fn open_store(config: &Config) -> Result<Store, AdminError> {
    Ok(Store::open(config.store_config())?)
}

/// Where admin commands read a password from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// One line of standard input (the recommended way: nothing shows in `ps`).
    Stdin,
    /// Given on the command line.
    Argument(String),
}

impl PasswordSource {
    /// From the two options of a command; exactly one must be given.
    pub fn from_options(stdin: bool, argument: Option<String>) -> Result<Self, AdminError> {
        match (stdin, argument) {
            (true, None) => Ok(PasswordSource::Stdin),
            (false, Some(pw)) => Ok(PasswordSource::Argument(pw)),
            (true, Some(_)) => Err(AdminError::Usage(
                "give the password either with --password-stdin or with --password, not both"
                    .into(),
            )),
            (false, None) => Err(AdminError::Usage(
                "no password: pipe it in with --password-stdin (or give --password)".into(),
            )),
        }
    }

    /// The password: the argument, or the first line of `input` without its
    /// line end. An empty password is refused.
    pub fn read(self, input: &mut dyn BufRead) -> Result<String, AdminError> {
        let password = match self {
            PasswordSource::Argument(pw) => pw,
            PasswordSource::Stdin => {
                let mut line = String::new();
                input
                    .read_line(&mut line)
                    .map_err(|source| AdminError::Io {
                        what: "cannot read the password from standard input",
                        source,
                    })?;
                let end = line.trim_end_matches(['\r', '\n']).len();
                line.truncate(end);
                line
            }
        };
        if password.is_empty() {
            return Err(AdminError::Usage("the password is empty".into()));
        }
        Ok(password)
    }
}

/// A store value as the CLI shows it: serializable, with the keys of its
/// table columns.
pub trait Record: Serialize {
    /// The keys shown as table columns by the `list` verbs, in order.
    const COLUMNS: &'static [&'static str];
}

/// What a command has to say.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A change was made; the text says which.
    Done(String),
    /// One object (`show`).
    One(Value),
    /// Objects in rows, with the keys shown as columns (`list`).
    Many {
        /// Column keys.
        columns: &'static [&'static str],
        /// The objects.
        rows: Vec<Value>,
    },
}

fn to_value<T: Serialize>(item: &T) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

impl Output {
    /// One object.
    pub fn one<T: Record>(item: &T) -> Output {
        Output::One(to_value(item))
    }

    /// A listing.
    pub fn many<T: Record>(items: &[T]) -> Output {
        Output::Many {
            columns: T::COLUMNS,
            rows: items.iter().map(to_value).collect(),
        }
    }

    /// Writes the output: as pretty JSON when `json` (an object for one, an
    /// array for many), otherwise as `key: value` lines or an aligned table.
    pub fn write(&self, json: bool, out: &mut dyn Write) -> io::Result<()> {
        match self {
            Output::Done(text) => writeln!(out, "{text}"),
            Output::One(value) if json => writeln!(out, "{}", pretty(value)),
            Output::Many { rows, .. } if json => {
                writeln!(out, "{}", pretty(&Value::Array(rows.clone())))
            }
            Output::One(value) => {
                let Value::Object(fields) = value else {
                    return writeln!(out, "{}", cell(value));
                };
                let width = fields.keys().map(|k| k.len()).max().unwrap_or(0);
                for (key, value) in fields {
                    writeln!(out, "{key:width$}  {}", cell(value))?;
                }
                Ok(())
            }
            Output::Many { columns, rows } => {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
                    .collect();
                let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
                for row in &cells {
                    for (w, text) in widths.iter_mut().zip(row) {
                        *w = (*w).max(text.chars().count());
                    }
                }
                let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
                write_row(out, &header, &widths)?;
                for row in &cells {
                    write_row(out, row, &widths)?;
                }
                Ok(())
            }
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn write_row(out: &mut dyn Write, cells: &[String], widths: &[usize]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (text, width)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            line.push_str(text);
        } else {
            line.push_str(&format!("{text:width$}  "));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// How one JSON value reads in a table cell.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) if s.is_empty() => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        Value::Object(_) => value.to_string(),
    }
}

/// A store timestamp as RFC 3339 (UTC).
pub fn date(ts: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        name: &'static str,
        enabled: bool,
        tags: Vec<&'static str>,
        note: Option<&'static str>,
    }

    impl Record for Row {
        const COLUMNS: &'static [&'static str] = &["name", "enabled", "tags"];
    }

    fn render(output: &Output, json: bool) -> String {
        let mut buf = Vec::new();
        output.write(json, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn rows() -> Vec<Row> {
        vec![
            Row {
                name: "example.com",
                enabled: true,
                tags: vec![],
                note: None,
            },
            Row {
                name: "a.org",
                enabled: false,
                tags: vec!["x", "y"],
                note: Some("n"),
            },
        ]
    }

    #[test]
    fn tables_are_aligned_with_a_header() {
        let text = render(&Output::many(&rows()), false);
        assert_eq!(
            text,
            "NAME         ENABLED  TAGS\n\
             example.com  yes      -\n\
             a.org        no       x, y\n"
        );
    }

    #[test]
    fn json_listings_are_arrays_of_whole_objects() {
        let text = render(&Output::many(&rows()), true);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value[1]["note"], "n");
        assert_eq!(value[0]["tags"], serde_json::json!([]));
    }

    #[test]
    fn one_object_as_lines() {
        let rows = rows();
        let text = render(&Output::one(&rows[1]), false);
        assert_eq!(
            text,
            "name     a.org\nenabled  no\ntags     x, y\nnote     n\n"
        );
    }

    #[test]
    fn passwords_from_stdin_lose_their_line_end() {
        let mut input: &[u8] = b"s3cret pass\r\nnext line\n";
        let pw = PasswordSource::Stdin.read(&mut input).unwrap();
        assert_eq!(pw, "s3cret pass");
        let mut empty: &[u8] = b"\n";
        assert!(matches!(
            PasswordSource::Stdin.read(&mut empty),
            Err(AdminError::Usage(_))
        ));
        assert!(PasswordSource::from_options(true, Some("x".into())).is_err());
        assert!(PasswordSource::from_options(false, None).is_err());
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(date(0), "1970-01-01T00:00:00Z");
        assert_eq!(date(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
