//! The admin command line on a real store: every subcommand, `--json`
//! output, and bad input that must change nothing.

use std::process::Output;

use ironpost_e2e::{Env, fails, json, ok, stderr, stdout};
use ironpost_store::{AuthError, Store};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

/// Every text the commands printed, to check no password leaks.
#[derive(Default)]
struct Transcript(String);

impl Transcript {
    fn keep(&mut self, out: Output) -> Output {
        self.0.push_str(&stdout(&out));
        self.0.push_str(&stderr(&out));
        out
    }
}

fn addresses(listing: &Value, key: &str) -> Vec<String> {
    listing
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item[key].as_str().expect("a string").to_string())
        .collect()
}

fn domains(env: &Env) -> Vec<String> {
    addresses(&json(&env.run(&["domain", "list", "--json"])), "name")
}

fn accounts(env: &Env) -> Vec<String> {
    addresses(&json(&env.run(&["account", "list", "--json"])), "address")
}

fn aliases(env: &Env) -> Vec<String> {
    addresses(&json(&env.run(&["alias", "list", "--json"])), "address")
}

fn add_account(env: &Env, address: &str) {
    ok(&env.run_with_stdin(
        &["account", "add", address, "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    ));
}

/// Opens the store the environment's commands use (no server runs).
fn store(env: &Env) -> Store {
    Store::open_dir(env.data_dir().join("store")).expect("the store opens")
}

#[test]
fn domains_add_list_show_disable_alias_and_remove() {
    let env = Env::new();
    assert_eq!(domains(&env), Vec::<String>::new());
    assert!(ok(&env.run(&["domain", "add", "Example.COM"])).contains("example.com"));
    ok(&env.run(&["domain", "add", "example.org"]));
    assert_eq!(domains(&env), ["example.com", "example.org"]);

    let table = ok(&env.run(&["domain", "list"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("example.org"), "{table}");

    ok(&env.run(&["domain", "disable", "example.org"]));
    let shown = json(&env.run(&["domain", "show", "example.org", "--json"]));
    assert_eq!(shown["enabled"], false);
    ok(&env.run(&["domain", "enable", "example.org"]));
    let shown = json(&env.run(&["domain", "show", "example.org", "--json"]));
    assert_eq!(shown["enabled"], true);

    ok(&env.run(&["domain", "alias", "add", "example.com", "example.net"]));
    let shown = json(&env.run(&["domain", "show", "example.net", "--json"]));
    assert_eq!(shown["name"], "example.com", "an alias shows its domain");
    assert_eq!(shown["aliases"], serde_json::json!(["example.net"]));
    let text = ok(&env.run(&["domain", "show", "example.com"]));
    assert!(
        text.contains("aliases") && text.contains("example.net"),
        "{text}"
    );
    fails(
        &env.run(&["domain", "alias", "add", "example.org", "example.net"]),
        1,
        "example.net already exists",
    );
    ok(&env.run(&["domain", "alias", "remove", "example.net"]));
    fails(
        &env.run(&["domain", "show", "example.net"]),
        1,
        "domain example.net does not exist",
    );

    ok(&env.run(&["domain", "remove", "example.org"]));
    assert_eq!(domains(&env), ["example.com"]);
}

#[test]
fn bad_domains_are_refused_and_change_nothing() {
    let env = Env::new();
    ok(&env.run(&["domain", "add", "example.com"]));
    fails(
        &env.run(&["domain", "add", "localhost"]),
        1,
        "must contain a dot",
    );
    fails(
        &env.run(&["domain", "add", "bad_name!.com"]),
        1,
        "invalid domain name",
    );
    fails(
        &env.run(&["domain", "add", "EXAMPLE.com"]),
        1,
        "domain example.com already exists",
    );
    fails(
        &env.run(&["domain", "remove", "nowhere.org"]),
        1,
        "domain nowhere.org does not exist",
    );
    fails(
        &env.run(&["domain", "disable", "nowhere.org"]),
        1,
        "nowhere.org does not exist",
    );
    fails(&env.run(&["domain", "add"]), 2, "<NAME>");
    fails(&env.run(&["domain", "frobnicate"]), 2, "frobnicate");
    assert_eq!(domains(&env), ["example.com"]);
}

#[test]
fn a_domain_in_use_is_removed_only_with_force() {
    let env = Env::new();
    ok(&env.run(&["domain", "add", "example.com"]));
    add_account(&env, "alice@example.com");
    ok(&env.run(&["alias", "add", "info@example.com", "alice@example.com"]));
    fails(
        &env.run(&["domain", "remove", "example.com"]),
        1,
        "still has 1 account(s), 1 alias(es) and 0 list(s)",
    );
    assert_eq!(domains(&env), ["example.com"]);
    assert_eq!(accounts(&env), ["alice@example.com"]);
    ok(&env.run(&["domain", "remove", "example.com", "--force"]));
    assert_eq!(domains(&env), Vec::<String>::new());
    assert_eq!(accounts(&env), Vec::<String>::new());
    assert_eq!(aliases(&env), Vec::<String>::new());
}

#[test]
fn accounts_every_verb_and_no_password_in_any_output() {
    let env = Env::new();
    let mut seen = Transcript::default();
    ok(&seen.keep(env.run(&["domain", "add", "example.com"])));
    let added = ok(&seen.keep(env.run_with_stdin(
        &[
            "account",
            "add",
            "Alice@example.com",
            "--password-stdin",
            "--quota",
            "100",
            "--first-name",
            "Alice",
            "--last-name",
            "Liddell",
        ],
        format!("{PASSWORD}\n").as_bytes(),
    )));
    assert!(added.contains("Alice@example.com"), "{added}");
    let other = "an0ther secret";
    ok(&seen.keep(env.run(&["account", "add", "bob@example.com", "--password", other])));

    let listing = json(&seen.keep(env.run(&["account", "list", "--json"])));
    assert_eq!(
        addresses(&listing, "address"),
        ["Alice@example.com", "bob@example.com"]
    );
    let table = ok(&seen.keep(env.run(&["account", "list", "--domain", "example.com"])));
    assert!(table.starts_with("ADDRESS"), "{table}");
    assert!(table.contains("Liddell"), "{table}");

    let alice = json(&seen.keep(env.run(&["account", "show", "alice@example.com", "--json"])));
    assert_eq!(alice["address"], "Alice@example.com");
    assert_eq!(alice["quota_mb"], 100);
    assert_eq!(alice["quota_bytes"], 100 * 1024 * 1024);
    assert_eq!(alice["first_name"], "Alice");
    assert_eq!(alice["enabled"], true);
    assert_eq!(alice["admin_level"], "user");
    assert!(alice.get("password").is_none() && alice.get("password_hash").is_none());
    seen.keep(env.run(&["account", "show", "alice@example.com"]));

    ok(&seen.keep(env.run(&["account", "quota", "alice@example.com", "0"])));
    let alice = json(&env.run(&["account", "show", "alice@example.com", "--json"]));
    assert_eq!(alice["quota_mb"], 0);

    ok(&seen.keep(env.run(&["account", "disable", "alice@example.com"])));
    let alice = json(&env.run(&["account", "show", "alice@example.com", "--json"]));
    assert_eq!(alice["enabled"], false);
    ok(&seen.keep(env.run(&["account", "enable", "alice@example.com"])));

    let new_password = "brand new pass phrase";
    ok(&seen.keep(env.run_with_stdin(
        &["account", "passwd", "alice@example.com", "--password-stdin"],
        format!("{new_password}\r\n").as_bytes(),
    )));
    {
        let store = store(&env);
        assert!(matches!(
            store.authenticate("alice@example.com", PASSWORD),
            Err(AuthError::InvalidCredentials)
        ));
        store
            .authenticate("alice@example.com", new_password)
            .expect("the new password works");
        store
            .authenticate("bob@example.com", other)
            .expect("a password given as an option works");
    }

    ok(&seen.keep(env.run(&["account", "remove", "bob@example.com"])));
    assert_eq!(accounts(&env), ["Alice@example.com"]);

    for secret in [PASSWORD, other, new_password] {
        assert!(
            !seen.0.contains(secret),
            "{secret:?} appeared in: {}",
            seen.0
        );
    }
}

#[test]
fn bad_account_input_is_refused_and_changes_nothing() {
    let env = Env::new();
    ok(&env.run(&["domain", "add", "example.com"]));
    add_account(&env, "alice@example.com");

    let out = env.run_with_stdin(
        &["account", "add", "carol@nowhere.org", "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    let err = fails(&out, 1, "domain nowhere.org does not exist");
    assert!(!err.contains(PASSWORD));
    fails(
        &env.run_with_stdin(
            &["account", "add", "ALICE@example.com", "--password-stdin"],
            b"x\n",
        ),
        1,
        "account ALICE@example.com already exists",
    );
    fails(
        &env.run_with_stdin(
            &["account", "add", "no-at-sign", "--password-stdin"],
            b"x\n",
        ),
        1,
        "invalid address \"no-at-sign\"",
    );
    fails(
        &env.run(&["account", "add", "carol@example.com"]),
        2,
        "--password-stdin",
    );
    fails(
        &env.run_with_stdin(
            &["account", "add", "carol@example.com", "--password-stdin"],
            b"\n",
        ),
        2,
        "the password is empty",
    );
    fails(
        &env.run_with_stdin(
            &[
                "account",
                "add",
                "carol@example.com",
                "--password-stdin",
                "--quota",
                "lots",
            ],
            b"pw\n",
        ),
        2,
        "--quota",
    );
    fails(
        &env.run(&["account", "quota", "alice@example.com", "-5"]),
        2,
        "-5",
    );
    fails(
        &env.run(&["account", "quota", "alice@example.com", "99999999999"]),
        2,
        "99999999999",
    );
    for verb in ["show", "remove", "enable", "disable"] {
        fails(
            &env.run(&["account", verb, "nobody@example.com"]),
            1,
            "account nobody@example.com does not exist",
        );
    }
    fails(
        &env.run(&["account", "quota", "nobody@example.com", "10"]),
        1,
        "account nobody@example.com does not exist",
    );
    fails(
        &env.run_with_stdin(
            &[
                "account",
                "passwd",
                "nobody@example.com",
                "--password-stdin",
            ],
            b"pw\n",
        ),
        1,
        "account nobody@example.com does not exist",
    );

    assert_eq!(accounts(&env), ["alice@example.com"]);
    let alice = json(&env.run(&["account", "show", "alice@example.com", "--json"]));
    assert_eq!(alice["quota_mb"], 0);
    assert_eq!(alice["enabled"], true);
    store(&env)
        .authenticate("alice@example.com", PASSWORD)
        .expect("the password is unchanged");
}

#[test]
fn aliases_add_list_show_remove_and_never_shadow() {
    let env = Env::new();
    ok(&env.run(&["domain", "add", "example.com"]));
    add_account(&env, "alice@example.com");
    ok(&env.run(&["list", "add", "team@example.com"]));

    ok(&env.run(&[
        "alias",
        "add",
        "postmaster@example.com",
        "alice@example.com",
    ]));
    ok(&env.run(&["alias", "add", "ext@example.com", "someone@example.org"]));
    let listing = json(&env.run(&["alias", "list", "--json"]));
    assert_eq!(
        addresses(&listing, "address"),
        ["ext@example.com", "postmaster@example.com"]
    );
    assert_eq!(listing[1]["target"], "alice@example.com");
    let table = ok(&env.run(&["alias", "list", "--domain", "example.com"]));
    assert!(table.starts_with("ADDRESS"), "{table}");
    let one = json(&env.run(&["alias", "show", "ext@example.com", "--json"]));
    assert_eq!(one["target"], "someone@example.org");

    fails(
        &env.run(&["alias", "add", "alice@example.com", "bob@example.org"]),
        1,
        "alias would shadow account alice@example.com",
    );
    fails(
        &env.run(&["alias", "add", "team@example.com", "bob@example.org"]),
        1,
        "alias would shadow list team@example.com",
    );
    fails(
        &env.run(&["alias", "add", "ext@example.com", "bob@example.org"]),
        1,
        "alias ext@example.com already exists",
    );
    fails(
        &env.run(&["alias", "add", "x@nowhere.org", "bob@example.org"]),
        1,
        "domain nowhere.org does not exist",
    );
    fails(
        &env.run(&["alias", "add", "x@example.com", "not an address"]),
        1,
        "invalid address \"not an address\"",
    );
    fails(
        &env.run(&["alias", "remove", "nobody@example.com"]),
        1,
        "alias nobody@example.com does not exist",
    );
    assert_eq!(aliases(&env), ["ext@example.com", "postmaster@example.com"]);

    ok(&env.run(&["alias", "remove", "ext@example.com"]));
    assert_eq!(aliases(&env), ["postmaster@example.com"]);
}

#[test]
fn lists_and_members() {
    let env = Env::new();
    ok(&env.run(&["domain", "add", "example.com"]));
    ok(&env.run(&["list", "add", "team@example.com", "--mode", "members-only"]));
    ok(&env.run(&[
        "list",
        "add",
        "news@example.com",
        "--mode",
        "announcement",
        "--announcer",
        "boss@example.com",
        "--require-auth",
    ]));
    let lists = json(&env.run(&["list", "list", "--json"]));
    assert_eq!(
        addresses(&lists, "address"),
        ["news@example.com", "team@example.com"]
    );
    assert_eq!(lists[0]["mode"], "announcement");
    assert_eq!(lists[0]["announcer"], "boss@example.com");
    assert_eq!(lists[0]["require_auth"], true);
    assert_eq!(lists[1]["mode"], "members-only");
    assert!(ok(&env.run(&["list", "list"])).starts_with("ADDRESS"));

    ok(&env.run(&[
        "list",
        "members",
        "add",
        "team@example.com",
        "Bob@Example.org",
        "carol@example.com",
    ]));
    let members = json(&env.run(&["list", "members", "list", "team@example.com", "--json"]));
    assert_eq!(
        addresses(&members, "address"),
        ["bob@example.org", "carol@example.com"]
    );
    let shown = json(&env.run(&["list", "show", "team@example.com", "--json"]));
    assert_eq!(
        shown["members"],
        serde_json::json!(["bob@example.org", "carol@example.com"])
    );

    // One bad address among several: nothing is added or removed.
    fails(
        &env.run(&[
            "list",
            "members",
            "add",
            "team@example.com",
            "dave@example.org",
            "bad",
        ]),
        1,
        "invalid address \"bad\"",
    );
    fails(
        &env.run(&[
            "list",
            "members",
            "remove",
            "team@example.com",
            "bob@example.org",
            "dave@example.org",
        ]),
        1,
        "dave@example.org is not a member of list team@example.com",
    );
    let members = json(&env.run(&["list", "members", "list", "team@example.com", "--json"]));
    assert_eq!(
        addresses(&members, "address"),
        ["bob@example.org", "carol@example.com"]
    );

    ok(&env.run(&[
        "list",
        "members",
        "remove",
        "team@example.com",
        "bob@example.org",
    ]));
    let members = json(&env.run(&["list", "members", "list", "team@example.com", "--json"]));
    assert_eq!(addresses(&members, "address"), ["carol@example.com"]);

    fails(
        &env.run(&["list", "add", "x@example.com", "--mode", "announcement"]),
        2,
        "--announcer",
    );
    fails(
        &env.run(&[
            "list",
            "add",
            "x@example.com",
            "--announcer",
            "a@example.com",
        ]),
        2,
        "--announcer is only for --mode announcement",
    );
    fails(
        &env.run(&["list", "add", "team@example.com"]),
        1,
        "list team@example.com already exists",
    );
    fails(
        &env.run(&["list", "members", "list", "nobody@example.com"]),
        1,
        "list nobody@example.com does not exist",
    );
    ok(&env.run(&["list", "remove", "news@example.com"]));
    let lists = json(&env.run(&["list", "list", "--json"]));
    assert_eq!(addresses(&lists, "address"), ["team@example.com"]);
}

#[test]
fn concurrent_commands_share_the_store() {
    let env = Env::new();
    ok(&env.run(&["domain", "add", "example.com"]));
    let names: Vec<String> = (0..6).map(|i| format!("user{i}@example.com")).collect();
    std::thread::scope(|s| {
        for name in &names {
            let env = &env;
            s.spawn(move || {
                ok(&env.run(&["alias", "add", name, "someone@example.org"]));
            });
        }
    });
    assert_eq!(aliases(&env), names);
}

#[test]
fn an_invalid_configuration_stops_admin_commands() {
    let env = Env::with_config("[smtp]\nmax_recipients = 0\n");
    fails(
        &env.run(&["domain", "list"]),
        2,
        "smtp.max_recipients: must be at least 1",
    );
    assert!(!env.data_dir().exists());
}

#[test]
fn settings_of_domains_accounts_aliases_and_lists() {
    let env = Env::new();
    ok(&env.run(&["domain", "add", "example.com"]));
    add_account(&env, "alice@example.com");
    ok(&env.run(&[
        "domain",
        "set",
        "example.com",
        "--catch-all",
        "alice@example.com",
        "--plus-separator",
        "+",
        "--greylisting",
        "on",
        "--max-accounts",
        "1",
        "--max-account-size",
        "10",
    ]));
    let d = json(&env.run(&["domain", "show", "example.com", "--json"]));
    assert_eq!(d["catch_all"], "alice@example.com");
    assert_eq!(d["plus_separator"], "+");
    assert_eq!(d["greylisting"], true);
    assert_eq!(d["max_accounts"], 1);
    assert_eq!(d["max_account_size"], 10 * 1024 * 1024);
    assert_eq!(d["max_lists"], Value::Null);

    // The limits now refuse a second account and a bigger quota.
    fails(
        &env.run_with_stdin(
            &["account", "add", "bob@example.com", "--password-stdin"],
            b"pw\n",
        ),
        1,
        "domain example.com: accounts limit of 1 reached",
    );
    fails(
        &env.run(&["account", "quota", "alice@example.com", "11"]),
        1,
        "account size limit",
    );
    fails(
        &env.run(&["domain", "set", "example.com", "--plus-separator", "@"]),
        2,
        "--plus-separator",
    );
    fails(
        &env.run(&["domain", "set", "example.com"]),
        2,
        "nothing to change",
    );
    ok(&env.run(&[
        "domain",
        "set",
        "example.com",
        "--no-catch-all",
        "--no-plus-separator",
        "--max-accounts",
        "0",
    ]));
    let d = json(&env.run(&["domain", "show", "example.com", "--json"]));
    assert_eq!(d["catch_all"], Value::Null);
    assert_eq!(d["plus_separator"], Value::Null);
    assert_eq!(d["max_accounts"], Value::Null);
    assert_eq!(d["max_account_size"], 10 * 1024 * 1024, "unchanged");

    ok(&env.run(&[
        "account",
        "set",
        "alice@example.com",
        "--last-name",
        "Liddell",
        "--admin-level",
        "domain",
    ]));
    let a = json(&env.run(&["account", "show", "alice@example.com", "--json"]));
    assert_eq!(a["last_name"], "Liddell");
    assert_eq!(a["admin_level"], "domain");
    fails(
        &env.run(&["account", "set", "alice@example.com"]),
        2,
        "nothing to change",
    );

    ok(&env.run(&["alias", "add", "info@example.com", "alice@example.com"]));
    ok(&env.run(&["alias", "set", "info@example.com", "bob@example.org"]));
    ok(&env.run(&["alias", "disable", "info@example.com"]));
    let a = json(&env.run(&["alias", "show", "info@example.com", "--json"]));
    assert_eq!(a["target"], "bob@example.org");
    assert_eq!(a["enabled"], false);
    ok(&env.run(&["alias", "enable", "info@example.com"]));

    ok(&env.run(&["list", "add", "team@example.com"]));
    ok(&env.run(&[
        "list",
        "set",
        "team@example.com",
        "--mode",
        "announcement",
        "--announcer",
        "alice@example.com",
        "--require-auth",
        "true",
    ]));
    ok(&env.run(&["list", "disable", "team@example.com"]));
    let l = json(&env.run(&["list", "show", "team@example.com", "--json"]));
    assert_eq!(l["mode"], "announcement");
    assert_eq!(l["announcer"], "alice@example.com");
    assert_eq!(l["require_auth"], true);
    assert_eq!(l["enabled"], false);
    ok(&env.run(&["list", "enable", "team@example.com"]));
    fails(
        &env.run(&["list", "set", "team@example.com", "--mode", "announcement"]),
        2,
        "--announcer",
    );
    let l = json(&env.run(&["list", "show", "team@example.com", "--json"]));
    assert_eq!(l["announcer"], "alice@example.com", "unchanged");
    assert_eq!(l["enabled"], true);
}
