//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use ironpost_store::{Account, NewAccount, Password, PasswordParams, Store, StoreConfig};

/// A store in `dir` with cheap password hashing.
pub fn open(dir: &Path) -> Store {
    open_with(dir, |_| {})
}

/// [`open`] with the configuration changed by `edit` first.
pub fn open_with(dir: &Path, edit: impl FnOnce(&mut StoreConfig)) -> Store {
    let mut config = StoreConfig::new(dir);
    config.password = PasswordParams::insecure_fast();
    edit(&mut config);
    Store::open(config).expect("open store")
}

/// Adds `address` (its domain too when missing) with password "pw".
pub fn account(store: &Store, address: &str) -> Account {
    let domain = address.rsplit('@').next().unwrap();
    if store.domain(domain).is_err() {
        store.add_domain(domain).unwrap();
    }
    store
        .add_account(NewAccount::new(address, Password::Plain("pw".into())))
        .unwrap()
}

/// The number of body files in the store at `dir` (temporary files aside).
pub fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name() != "tmp")
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum()
}
