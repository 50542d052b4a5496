//! The POP3 maildrop lock.

mod common;

use common::{account, open};

#[test]
fn one_holder_at_a_time_and_an_admin_can_release_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alice = account(&store, "alice@example.com");
    let bob = account(&store, "bob@example.com");
    assert!(store.lock_maildrop(alice.id, "s1").unwrap());
    assert!(!store.lock_maildrop(alice.id, "s2").unwrap());
    assert!(store.lock_maildrop(bob.id, "s2").unwrap());
    assert_eq!(store.maildrop_lock(alice.id).unwrap().unwrap().0, "s1");
    // Only its holder releases it, unless no holder is named.
    assert!(!store.unlock_maildrop(alice.id, Some("s2")).unwrap());
    assert!(store.unlock_maildrop(alice.id, Some("s1")).unwrap());
    assert!(store.lock_maildrop(alice.id, "s3").unwrap());
    assert!(store.unlock_maildrop(alice.id, None).unwrap());
    assert!(store.maildrop_lock(alice.id).unwrap().is_none());
    // A restart clears what a previous run held.
    assert_eq!(store.clear_maildrop_locks().unwrap(), 1);
    assert!(store.lock_maildrop(bob.id, "s4").unwrap());
}

#[test]
fn a_removed_account_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let alice = account(&store, "alice@example.com");
    assert!(store.lock_maildrop(alice.id, "s1").unwrap());
    store.remove_account("alice@example.com").unwrap();
    assert_eq!(store.clear_maildrop_locks().unwrap(), 0);
}
