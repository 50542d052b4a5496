//! Property tests: UIDs, modseq and quota under any interleaving.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use ironpost_store::{
    Flag, FlagOp, Flags, LocalDelivery, MailboxId, NewQueueEntry, NewRecipient, Store,
};
use proptest::prelude::*;

fn deleted() -> Flags {
    [Flag::Deleted].into_iter().collect()
}

/// Delivers `body` into `mailbox` through the queue, as local delivery does,
/// with a `Delivered-To:` prefix whose local part is `pad` octets long.
fn deliver_with_prefix(
    store: &Store,
    mailbox: MailboxId,
    body: &[u8],
    pad: usize,
) -> ironpost_store::Result<()> {
    let blob = store.blobs().write_bytes(body)?;
    let entry = NewQueueEntry::new(blob, "s@example.org", [NewRecipient::new("a@example.com")]);
    let id = store.enqueue(entry)?;
    let recipient = store.queue_entry(id)?.recipients[0].id;
    let prefix = format!("Delivered-To: {}@example.com\r\n", "p".repeat(pad));
    let copy = LocalDelivery::new(mailbox, prefix);
    let mut results =
        store.deliver_from_queue(id, vec![(recipient, vec![copy])], Flags::new(), None)?;
    let mut each = results.pop().expect("one recipient")?;
    each.pop().expect("one mailbox")?;
    store.remove_queue_entry(id)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// UIDs strictly increase per mailbox: within each writer, across all
    /// concurrent writers (never repeated), and across restarts, also when the
    /// newest messages were expunged before the restart.
    #[test]
    fn uids_strictly_increase_across_concurrent_appends_and_restarts(
        rounds in proptest::collection::vec((1usize..5, 1usize..12, any::<bool>()), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut highest = 0u32;
        for (writers, per_writer, expunge_all) in rounds {
            let store = common::open(dir.path());
            let account = match store.account("a@example.com") {
                Ok(a) => a,
                Err(_) => common::account(&store, "a@example.com"),
            };
            let inbox = store.mailbox(account.id, "INBOX").unwrap().id;
            let threads: Vec<_> = (0..writers)
                .map(|w| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        (0..per_writer)
                            .map(|i| {
                                let body = format!("writer {w} message {i}");
                                store.append(inbox, body.as_bytes(), Flags::new(), None).unwrap().uid
                            })
                            .collect::<Vec<u32>>()
                    })
                })
                .collect();
            let mut all = BTreeSet::new();
            for t in threads {
                let uids = t.join().unwrap();
                prop_assert!(uids.windows(2).all(|w| w[0] < w[1]), "per writer: {uids:?}");
                for uid in uids {
                    prop_assert!(uid > highest, "uid {uid} not above {highest} of earlier runs");
                    prop_assert!(all.insert(uid), "uid {uid} given twice");
                }
            }
            highest = *all.iter().max().unwrap();
            prop_assert_eq!(store.mailbox_by_id(inbox).unwrap().uidnext, highest + 1);
            if expunge_all {
                let uids: Vec<u32> = store.messages(inbox).unwrap().iter().map(|m| m.uid).collect();
                store.store_flags(inbox, &uids, FlagOp::Add, deleted(), None).unwrap();
                store.expunge(inbox, None).unwrap();
            }
        }
    }

    /// Every change's modseq is above every earlier one, and the mailbox's
    /// HIGHESTMODSEQ is the last one.
    #[test]
    fn modseq_is_monotonic(ops in proptest::collection::vec(0u8..4, 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open(dir.path());
        let a = common::account(&store, "a@example.com");
        let inbox = store.mailbox(a.id, "INBOX").unwrap().id;
        let mut last = store.mailbox_by_id(inbox).unwrap().highest_modseq;
        for (i, op) in ops.into_iter().enumerate() {
            let uids: Vec<u32> = store.messages(inbox).unwrap().iter().map(|m| m.uid).collect();
            let mut seen = Vec::new();
            match op {
                0 => seen.push(store.append(inbox, format!("m{i}").as_bytes(), Flags::new(), None).unwrap().modseq),
                1 => seen.extend(store.store_flags(inbox, &uids, FlagOp::Add, deleted(), None).unwrap()
                        .updated.iter().filter(|u| u.changed).map(|u| u.modseq)),
                2 => seen.extend(store.store_flags(inbox, &uids, FlagOp::Remove, deleted(), None).unwrap()
                        .updated.iter().filter(|u| u.changed).map(|u| u.modseq)),
                _ => {
                    let sub = store.subscribe(inbox);
                    store.expunge(inbox, None).unwrap();
                    seen.extend(sub.drain().into_iter().map(|c| match c {
                        ironpost_store::Change::Expunged { modseq, .. } => modseq,
                        other => panic!("unexpected {other:?}"),
                    }));
                }
            }
            for m in seen {
                prop_assert!(m > last, "modseq {m} not above {last}");
                last = m;
            }
            prop_assert_eq!(store.mailbox_by_id(inbox).unwrap().highest_modseq, last);
            for msg in store.messages(inbox).unwrap() {
                prop_assert!(msg.modseq <= last);
            }
        }
    }

    /// After any interleaving of append / delivery with a header prefix /
    /// copy / move / expunge by concurrent writers over two accounts, each
    /// account's usage is the sum of its messages' sizes (prefixes included).
    #[test]
    fn quota_usage_is_exact_under_concurrency(
        scripts in proptest::collection::vec(proptest::collection::vec((0u8..5, 0usize..4, 0usize..4, 1usize..300), 1..25), 2..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(common::open(dir.path()));
        let a = common::account(&store, "a@example.com");
        let b = common::account(&store, "b@example.com");
        let boxes: Vec<MailboxId> = [(a.id, "INBOX"), (a.id, "Archive"), (b.id, "INBOX"), (b.id, "Trash")]
            .iter()
            .map(|(acc, n)| store.mailbox(*acc, n).unwrap().id)
            .collect();
        let threads: Vec<_> = scripts.into_iter().enumerate().map(|(t, script)| {
            let store = store.clone();
            let boxes = boxes.clone();
            std::thread::spawn(move || {
                for (i, (op, x, y, size)) in script.into_iter().enumerate() {
                    let (src, dst) = (boxes[x], boxes[y]);
                    let uids = |s: &Store| s.messages(src).unwrap().iter().map(|m| m.uid).take(3).collect::<Vec<_>>();
                    let _ = match op {
                        0 => store.append(src, format!("{t}/{i}/{}", "x".repeat(size)).as_bytes(), Flags::new(), None).map(drop),
                        1 => store.copy_messages(src, &uids(&store), dst).map(drop),
                        2 if src != dst => store.move_messages(src, &uids(&store), dst).map(drop),
                        4 => {
                            // Nothing here can refuse it: no quota is set.
                            deliver_with_prefix(&store, src, format!("{t}/{i}").as_bytes(), size % 60)
                                .expect("delivery with a prefix");
                            Ok(())
                        }
                        _ => {
                            let u = uids(&store);
                            store.store_flags(src, &u, FlagOp::Add, deleted(), None).unwrap();
                            store.expunge(src, None).map(drop)
                        }
                    };
                }
            })
        }).collect();
        for t in threads {
            t.join().unwrap();
        }
        for (account, mine) in [(a.id, &boxes[..2]), (b.id, &boxes[2..])] {
            let sum: u64 = mine.iter().flat_map(|m| store.messages(*m).unwrap()).map(|m| m.size).sum();
            prop_assert_eq!(store.account_by_id(account).unwrap().used_bytes, sum);
        }
        let report = store.check().unwrap();
        prop_assert!(report.is_clean(), "{report:?}");
    }
}
