//! Recipient resolution: every rule, every error, and termination on any graph.

mod common;

use ironpost_store::{DomainUpdate, ListMode, ResolveError, Sender, Store};
use proptest::prelude::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    (dir, store)
}

fn locals(store: &Store, addr: &str) -> Vec<String> {
    let r = store
        .resolve(addr, &Sender::new("someone@else.org"))
        .unwrap();
    r.local.into_iter().map(|t| t.address).collect()
}

#[test]
fn accounts_domain_aliases_plus_and_catch_all() {
    let (_d, store) = store();
    let a = common::account(&store, "a@example.com");
    common::account(&store, "b@example.com");
    store
        .add_domain_alias("example.com", "example.net")
        .unwrap();
    let r = store.resolve("A@Example.NET", &Sender::default()).unwrap();
    assert_eq!(r.local.len(), 1);
    assert_eq!(r.local[0].account, a.id);
    assert_eq!(r.local[0].mailbox, store.mailbox(a.id, "INBOX").unwrap().id);
    assert!(r.remote.is_empty());

    // Plus addressing only when the domain has a separator.
    assert!(matches!(
        store.resolve("a+news@example.com", &Sender::default()),
        Err(ResolveError::UnknownUser(_))
    ));
    store
        .update_domain(
            "example.com",
            DomainUpdate {
                plus_separator: Some(Some('+')),
                ..DomainUpdate::default()
            },
        )
        .unwrap();
    let r = store
        .resolve("a+news@example.com", &Sender::default())
        .unwrap();
    assert_eq!(r.local[0].detail.as_deref(), Some("news"));

    // Catch-all.
    store
        .update_domain(
            "example.com",
            DomainUpdate {
                catch_all: Some(Some("b@example.com".into())),
                ..DomainUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(locals(&store, "whoever@example.com"), ["b@example.com"]);

    // Remote addresses pass through.
    let r = store.resolve("x@remote.org", &Sender::default()).unwrap();
    assert_eq!(r.remote, ["x@remote.org"]);
}

#[test]
fn every_error_is_its_own_case() {
    let (_d, store) = store();
    common::account(&store, "a@example.com");
    common::account(&store, "off@example.com");
    store.set_account_enabled("off@example.com", false).unwrap();
    store.add_alias("al@example.com", "a@example.com").unwrap();
    store.set_alias_enabled("al@example.com", false).unwrap();
    store
        .add_list("list@example.com", ListMode::Public, false)
        .unwrap();
    store
        .update_list(
            "list@example.com",
            ironpost_store::ListUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    store
        .add_list("members@example.com", ListMode::MembersOnly, false)
        .unwrap();
    store
        .add_list_member("members@example.com", "a@example.com")
        .unwrap();
    store
        .add_list(
            "news@example.com",
            ListMode::Announcement("boss@example.com".into()),
            false,
        )
        .unwrap();
    store
        .add_list("auth@example.com", ListMode::Public, true)
        .unwrap();
    store
        .add_alias("loop1@example.com", "loop2@example.com")
        .unwrap();
    store
        .add_alias("loop2@example.com", "loop1@example.com")
        .unwrap();
    common::account(&store, "x@disabled.org");
    store.set_domain_enabled("disabled.org", false).unwrap();

    let s = Sender::new("stranger@remote.org");
    let r = |a: &str| store.resolve(a, &s);
    assert!(matches!(
        r("nobody@example.com"),
        Err(ResolveError::UnknownUser(_))
    ));
    assert!(matches!(
        r("off@example.com"),
        Err(ResolveError::AccountDisabled(_))
    ));
    assert!(matches!(
        r("al@example.com"),
        Err(ResolveError::AliasDisabled(_))
    ));
    assert!(matches!(
        r("x@disabled.org"),
        Err(ResolveError::DomainDisabled(_))
    ));
    assert!(matches!(
        r("list@example.com"),
        Err(ResolveError::ListDisabled(_))
    ));
    assert!(matches!(
        r("members@example.com"),
        Err(ResolveError::SenderNotAllowed { .. })
    ));
    assert!(matches!(
        r("news@example.com"),
        Err(ResolveError::SenderNotAllowed { .. })
    ));
    assert!(matches!(
        r("auth@example.com"),
        Err(ResolveError::ListRequiresAuth(_))
    ));
    let e = r("loop1@example.com").unwrap_err();
    assert!(matches!(e, ResolveError::TooManyForwards(_)));
    assert_eq!(e.smtp_reply().1, "5.4.6");
    assert_eq!(
        r("nobody@example.com").unwrap_err().smtp_reply(),
        (550, "5.1.1", "unknown user")
    );

    // The right senders may post.
    let ok = store
        .resolve("members@example.com", &Sender::new("A@example.com"))
        .unwrap();
    assert_eq!(ok.local.len(), 1);
    assert!(
        store
            .resolve("news@example.com", &Sender::new("boss@example.com"))
            .is_ok()
    );
    assert!(
        store
            .resolve("auth@example.com", &Sender::authenticated("a@example.com"))
            .is_ok()
    );
}

#[test]
fn lists_expand_nested_deduplicate_and_skip_bad_members() {
    let (_d, store) = store();
    common::account(&store, "a@example.com");
    common::account(&store, "b@example.com");
    common::account(&store, "off@example.com");
    store.set_account_enabled("off@example.com", false).unwrap();
    store
        .add_list("all@example.com", ListMode::Public, false)
        .unwrap();
    store
        .add_list("sub@example.com", ListMode::Public, false)
        .unwrap();
    for m in [
        "a@example.com",
        "sub@example.com",
        "off@example.com",
        "far@remote.org",
    ] {
        store.add_list_member("all@example.com", m).unwrap();
    }
    for m in [
        "a@example.com",
        "b@example.com",
        "all@example.com",
        "FAR@remote.org",
    ] {
        store.add_list_member("sub@example.com", m).unwrap();
    }
    let r = store
        .resolve("all@example.com", &Sender::default())
        .unwrap();
    let mut got: Vec<_> = r.local.iter().map(|t| t.address.clone()).collect();
    got.sort();
    assert_eq!(got, ["a@example.com", "b@example.com"]);
    assert_eq!(r.remote.len(), 1);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].0, "off@example.com");
}

#[test]
fn depth_limit() {
    let (_d, store) = store();
    common::account(&store, "end@example.com");
    // a0 -> a1 -> ... -> a11 -> end: 12 hops, over the default limit of 10.
    for i in 0..12 {
        let next = if i == 11 {
            "end@example.com".to_string()
        } else {
            format!("a{}@example.com", i + 1)
        };
        store
            .add_alias(&format!("a{i}@example.com"), &next)
            .unwrap();
    }
    assert!(matches!(
        store.resolve("a0@example.com", &Sender::default()),
        Err(ResolveError::TooManyForwards(_))
    ));
    assert!(store.resolve("a5@example.com", &Sender::default()).is_ok());
}

/// A random graph over 8 local names: each an account (maybe disabled), an
/// alias to another name (or remote), or a list of names.
#[derive(Debug, Clone)]
enum Node {
    Account(bool),
    Alias(usize, bool),
    List(Vec<usize>),
    Missing,
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        any::<bool>().prop_map(Node::Account),
        (0usize..9, any::<bool>()).prop_map(|(t, e)| Node::Alias(t, e)),
        proptest::collection::vec(0usize..9, 0..5).prop_map(Node::List),
        Just(Node::Missing),
    ]
}

fn name(i: usize) -> String {
    if i == 8 {
        "far@remote.org".into()
    } else {
        format!("n{i}@example.com")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn resolution_terminates_on_any_graph(nodes in proptest::collection::vec(node(), 8), catch_all in proptest::option::of(0usize..9)) {
        let (_d, store) = store();
        store.add_domain("example.com").unwrap();
        for (i, n) in nodes.iter().enumerate() {
            match n {
                Node::Account(enabled) => {
                    common::account(&store, &name(i));
                    if !enabled { store.set_account_enabled(&name(i), false).unwrap(); }
                }
                Node::Alias(t, enabled) => {
                    store.add_alias(&name(i), &name(*t)).unwrap();
                    if !enabled { store.set_alias_enabled(&name(i), false).unwrap(); }
                }
                Node::List(_) => { store.add_list(&name(i), ListMode::Public, false).unwrap(); }
                Node::Missing => {}
            }
        }
        for (i, n) in nodes.iter().enumerate() {
            if let Node::List(members) = n {
                for m in members { store.add_list_member(&name(i), &name(*m)).unwrap(); }
            }
        }
        if let Some(c) = catch_all {
            store.update_domain("example.com", DomainUpdate { catch_all: Some(Some(name(c))), ..DomainUpdate::default() }).unwrap();
        }
        for i in 0..9 {
            match store.resolve(&name(i), &Sender::default()) {
                Ok(r) => {
                    // Every local target is an enabled account, each once.
                    let mut seen = std::collections::HashSet::new();
                    for t in &r.local {
                        prop_assert!(seen.insert(t.account));
                        prop_assert!(store.account_by_id(t.account).unwrap().enabled);
                    }
                    prop_assert!(r.remote.len() <= 1);
                }
                Err(ResolveError::Store(e)) => prop_assert!(false, "store error {e}"),
                Err(_) => {}
            }
        }
    }
}
