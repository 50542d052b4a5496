//! Domains, accounts, aliases, lists, groups and logins, as the admin CLI uses them.

mod common;

use ironpost_store::{
    AccountUpdate, AdminLevel, AuthError, DomainLimits, DomainUpdate, Error, ListMode, NewAccount,
    Password, SpecialUse,
};

#[test]
fn domains_need_a_dot_and_unique_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    assert!(matches!(
        store.add_domain("localhost"),
        Err(Error::InvalidDomain { .. })
    ));
    let d = store.add_domain("Example.COM").unwrap();
    assert_eq!(d.name, "example.com");
    assert!(d.enabled);
    assert!(matches!(
        store.add_domain("example.com"),
        Err(Error::DomainExists(_))
    ));
    store
        .add_domain_alias("example.com", "example.net")
        .unwrap();
    assert!(matches!(
        store.add_domain("example.net"),
        Err(Error::DomainExists(_))
    ));
    assert_eq!(store.domain("example.net").unwrap().name, "example.com");
    assert_eq!(
        store.domain("example.com").unwrap().aliases,
        ["example.net"]
    );
    let d = store.set_domain_enabled("example.com", false).unwrap();
    assert!(!d.enabled);
    let err = store.domain("nope.org").unwrap_err();
    assert_eq!(err.to_string(), "domain nope.org does not exist");
    store.remove_domain_alias("example.net").unwrap();
    assert_eq!(store.domains().unwrap().len(), 1);
}

#[test]
fn accounts_get_default_folders_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    store.add_domain("example.com").unwrap();
    let mut new = NewAccount::new("Alice@example.com", Password::Plain("pw".into()));
    new.first_name = "Alice".into();
    new.admin_level = AdminLevel::Domain;
    new.quota_bytes = 1000;
    let a = store.add_account(new).unwrap();
    assert_eq!(a.address, "Alice@example.com");
    assert_eq!(a.quota_bytes, 1000);
    assert_eq!(a.admin_level, AdminLevel::Domain);
    let boxes = store.mailboxes(a.id).unwrap();
    let names: Vec<_> = boxes
        .iter()
        .map(|m| (m.name.as_str(), m.special_use))
        .collect();
    assert_eq!(
        names,
        [
            ("Archive", Some(SpecialUse::Archive)),
            ("Drafts", Some(SpecialUse::Drafts)),
            ("INBOX", None),
            ("Junk", Some(SpecialUse::Junk)),
            ("Sent", Some(SpecialUse::Sent)),
            ("Trash", Some(SpecialUse::Trash)),
        ]
    );
    // UIDVALIDITY differs between mailboxes.
    let mut v: Vec<_> = boxes.iter().map(|m| m.uidvalidity).collect();
    v.dedup();
    assert_eq!(v.len(), 6);
    assert_eq!(store.account("alice@EXAMPLE.com").unwrap().id, a.id);
    let dup = store.add_account(NewAccount::new(
        "alice@example.com",
        Password::Plain("x".into()),
    ));
    assert!(matches!(dup, Err(Error::AddressInUse { .. })));
    let u = store
        .update_account(
            "alice@example.com",
            AccountUpdate {
                last_name: Some("Liddell".into()),
                ..AccountUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(u.last_name, "Liddell");
    assert_eq!(
        store.set_quota("alice@example.com", 5).unwrap().quota_bytes,
        5
    );
    assert_eq!(store.accounts(Some("example.com")).unwrap().len(), 1);
    store.remove_account("alice@example.com").unwrap();
    assert!(matches!(
        store.account("alice@example.com"),
        Err(Error::AccountNotFound(_))
    ));
    assert!(matches!(
        store.add_account(NewAccount::new(
            "x@missing.org",
            Password::Plain("x".into())
        )),
        Err(Error::DomainNotFound(_))
    ));
}

#[test]
fn domain_limits_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    store.add_domain("example.com").unwrap();
    store
        .update_domain(
            "example.com",
            DomainUpdate {
                limits: Some(DomainLimits {
                    max_accounts: Some(1),
                    max_account_size: Some(100),
                    ..DomainLimits::default()
                }),
                ..DomainUpdate::default()
            },
        )
        .unwrap();
    let a = common::account(&store, "a@example.com");
    assert_eq!(a.quota_bytes, 100, "no quota means the domain's maximum");
    let err = store
        .add_account(NewAccount::new(
            "b@example.com",
            Password::Plain("x".into()),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::DomainLimit { .. }), "{err}");
    assert!(store.set_quota("a@example.com", 101).is_err());
}

#[test]
fn aliases_never_shadow_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    common::account(&store, "x@example.com");
    let err = store
        .add_alias("x@example.com", "y@example.org")
        .unwrap_err();
    assert_eq!(err.to_string(), "alias would shadow account x@example.com");
    let alias = store
        .add_alias("info@example.com", "x@example.com")
        .unwrap();
    assert_eq!(alias.target, "x@example.com");
    let err = store
        .add_alias("Info@example.com", "y@example.org")
        .unwrap_err();
    assert_eq!(err.to_string(), "alias Info@example.com already exists");
    let err = store
        .add_account(NewAccount::new(
            "info@example.com",
            Password::Plain("x".into()),
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "account would shadow alias info@example.com"
    );
    assert!(
        !store
            .set_alias_enabled("info@example.com", false)
            .unwrap()
            .enabled
    );
    store
        .set_alias_target("info@example.com", "z@example.org")
        .unwrap();
    assert_eq!(store.aliases(None).unwrap()[0].target, "z@example.org");
    store.remove_alias("info@example.com").unwrap();
    assert!(matches!(
        store.alias("info@example.com"),
        Err(Error::AliasNotFound(_))
    ));
}

#[test]
fn lists_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    common::account(&store, "a@example.com");
    common::account(&store, "b@example.com");
    let l = store
        .add_list("team@example.com", ListMode::MembersOnly, true)
        .unwrap();
    assert_eq!(l.mode, ListMode::MembersOnly);
    store
        .add_list_member("team@example.com", "A@example.com")
        .unwrap();
    let l = store
        .add_list_member("team@example.com", "far@remote.org")
        .unwrap();
    assert_eq!(l.members, ["a@example.com", "far@remote.org"]);
    let l = store
        .remove_list_member("team@example.com", "far@remote.org")
        .unwrap();
    assert_eq!(l.members, ["a@example.com"]);
    assert_eq!(store.lists(Some("example.com")).unwrap().len(), 1);
    store.remove_list("team@example.com").unwrap();
    assert!(matches!(
        store.list("team@example.com"),
        Err(Error::ListNotFound(_))
    ));

    store.add_group("staff").unwrap();
    assert!(matches!(
        store.add_group("staff"),
        Err(Error::GroupExists(_))
    ));
    store.add_group_member("staff", "a@example.com").unwrap();
    let g = store.add_group_member("staff", "b@example.com").unwrap();
    assert_eq!(g.members, ["a@example.com", "b@example.com"]);
    assert_eq!(store.groups_of("a@example.com").unwrap(), ["staff"]);
    store.remove_account("b@example.com").unwrap();
    assert_eq!(store.group("staff").unwrap().members, ["a@example.com"]);
    store.remove_group("staff").unwrap();
    assert!(store.groups().unwrap().is_empty());
}

#[test]
fn logins_upgrade_imported_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    store.add_domain("example.com").unwrap();
    // MD5("secret") as hMailServer stored it.
    let md5 = "5ebe2294ecd0e0f08eab7690d2a6ee69";
    store
        .add_account(NewAccount::new(
            "old@example.com",
            Password::Hash(md5.into()),
        ))
        .unwrap();
    assert_eq!(store.password_scheme("old@example.com").unwrap(), "legacy");
    assert!(matches!(
        store.authenticate("old@example.com", "wrong"),
        Err(AuthError::InvalidCredentials)
    ));
    assert_eq!(store.password_scheme("old@example.com").unwrap(), "legacy");
    let a = store.authenticate("old@example.com", "secret").unwrap();
    assert!(a.last_logon.is_some());
    assert_eq!(
        store.password_scheme("old@example.com").unwrap(),
        "argon2id"
    );
    store.authenticate("OLD@example.com", "secret").unwrap();
    assert!(matches!(
        store.authenticate("nobody@example.com", "secret"),
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        store.add_account(NewAccount::new(
            "p@example.com",
            Password::Hash("plain".into())
        )),
        Err(Error::UnsupportedHash)
    ));
    store.set_account_enabled("old@example.com", false).unwrap();
    assert!(matches!(
        store.authenticate("old@example.com", "secret"),
        Err(AuthError::Disabled(_))
    ));
    store.set_account_enabled("old@example.com", true).unwrap();
    store
        .set_password("old@example.com", Password::Plain("new".into()))
        .unwrap();
    assert!(store.authenticate("old@example.com", "new").is_ok());
}

#[test]
fn removing_a_domain_releases_its_mail() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let a = common::account(&store, "a@example.com");
    let inbox = store.mailbox(a.id, "INBOX").unwrap();
    let sub = store.subscribe(inbox.id);
    let id = store.blobs().write_bytes(b"mail").unwrap();
    store
        .deliver(id, &[inbox.id], Default::default(), None)
        .unwrap();
    assert_eq!(store.blob_refs(&id).unwrap(), 1);
    store.remove_domain("example.com").unwrap();
    assert_eq!(store.blob_refs(&id).unwrap(), 0);
    assert!(store.check().unwrap().is_clean());
    let changes = sub.drain();
    assert_eq!(changes.last(), Some(&ironpost_store::Change::Deleted));
}

#[test]
fn bad_argon2_parameters_are_refused_at_open_and_unknown_logins_still_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ironpost_store::StoreConfig::new(dir.path());
    config.password = ironpost_store::PasswordParams {
        memory_kib: 0,
        iterations: 0,
        parallelism: 0,
    };
    assert!(ironpost_store::Store::open(config).is_err());
    // The dummy hash is made at the first login of an unknown address.
    let store = common::open(dir.path());
    for _ in 0..2 {
        assert!(matches!(
            store.authenticate("nobody@example.com", "pw"),
            Err(AuthError::InvalidCredentials)
        ));
    }
}
