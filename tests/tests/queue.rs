//! `ironpost queue list|show|remove` on a store whose queue was filled the
//! way the SMTP server fills it (a durable body, then `Store::enqueue`).

use ironpost_e2e::{Env, fails, json, ok};
use ironpost_store::{NewQueueEntry, NewRecipient, QueueId, RecipientState, Store};

fn store(env: &Env) -> Store {
    // The CLI creates the store on first use; open the same one.
    ok(&env.run(&["domain", "list"]));
    Store::open_dir(env.data_dir().join("store")).expect("the store opens")
}

fn enqueue(store: &Store, sender: &str, recipients: &[&str]) -> QueueId {
    let blob = store
        .blobs()
        .write_bytes(b"Subject: queued\r\n\r\nbody\r\n")
        .unwrap();
    let mut entry = NewQueueEntry::new(
        blob,
        sender,
        recipients.iter().map(|r| NewRecipient::new(*r)),
    );
    entry.client = "192.0.2.1".into();
    entry.helo = "client.example".into();
    store.enqueue(entry).unwrap()
}

#[test]
fn list_show_and_remove() {
    let env = Env::new();
    let store = store(&env);
    let first = enqueue(
        &store,
        "a@example.org",
        &["x@remote.example", "y@remote.example"],
    );
    let bounce = enqueue(&store, "", &["a@example.org"]);
    let entry = store.queue_entry(first).unwrap();
    store
        .set_recipient_results(
            first,
            vec![(
                entry.recipients[0].id,
                RecipientState::Delivered,
                "250 2.0.0 ok".into(),
            )],
        )
        .unwrap();
    drop(store);

    let listing = json(&env.run(&["queue", "list", "--json"]));
    let rows = listing.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], first.0);
    assert_eq!(rows[0]["sender"], "a@example.org");
    assert_eq!(rows[0]["pending"], serde_json::json!(["y@remote.example"]));
    assert_eq!(rows[0]["size"], 25);
    assert_eq!(rows[1]["sender"], "<>");
    let table = ok(&env.run(&["queue", "list"]));
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("y@remote.example"), "{table}");

    let shown = json(&env.run(&["queue", "show", &first.0.to_string(), "--json"]));
    assert_eq!(shown["client"], "192.0.2.1");
    assert_eq!(shown["helo"], "client.example");
    assert_eq!(shown["recipients"][0]["state"], "delivered");
    assert_eq!(shown["recipients"][0]["last_result"], "250 2.0.0 ok");
    assert_eq!(shown["recipients"][1]["state"], "pending");
    assert!(ok(&env.run(&["queue", "show", &first.0.to_string()])).contains("192.0.2.1"));

    ok(&env.run(&["queue", "remove", &bounce.0.to_string()]));
    let listing = json(&env.run(&["queue", "list", "--json"]));
    assert_eq!(listing.as_array().unwrap().len(), 1);
}

#[test]
fn unknown_ids_are_refused_and_change_nothing() {
    let env = Env::new();
    let store = store(&env);
    let id = enqueue(&store, "a@example.org", &["x@remote.example"]);
    drop(store);
    let missing = (id.0 + 100).to_string();
    let needle = format!("queue entry #{missing} does not exist");
    fails(&env.run(&["queue", "remove", &missing]), 1, &needle);
    fails(&env.run(&["queue", "show", &missing]), 1, &needle);
    fails(
        &env.run(&["queue", "remove", "not-a-number"]),
        2,
        "not-a-number",
    );
    assert_eq!(
        json(&env.run(&["queue", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
