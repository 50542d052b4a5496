//! Message headers kept in memory, by body: what header-only reads (IMAP
//! SEARCH on header fields, SORT, ENVELOPE, header sections) ask for again
//! and again, answered without a trip through the database's pages or the
//! body's file.
//!
//! A body never changes once stored, so an entry never goes stale: it is
//! the header of the body with that hash for as long as the cache keeps it.
//! The bound is in bytes. Entries live in two generations: a hit in the old
//! one moves the entry to the new one, and when the new one has taken half
//! the bound, the old one is dropped and the new one becomes old. What is
//! read often stays; the memory never passes the bound (plus the map's own
//! overhead, about 64 bytes an entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::blob::BlobId;

/// Headers above this size are not kept: a message without an empty line
/// has its whole body as "header".
const MAX_ENTRY: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<BlobId, Arc<[u8]>>,
    young_bytes: usize,
    old: HashMap<BlobId, Arc<[u8]>>,
}

/// The cache: shared by every reader of the store.
#[derive(Debug)]
pub(crate) struct HeaderCache {
    max_bytes: usize,
    generations: Mutex<Generations>,
}

impl HeaderCache {
    /// A cache of at most `max_bytes` of headers (0 keeps none).
    pub(crate) fn new(max_bytes: usize) -> HeaderCache {
        HeaderCache {
            max_bytes,
            generations: Mutex::new(Generations::default()),
        }
    }

    /// The header of the body `id`, if kept.
    pub(crate) fn get(&self, id: &BlobId) -> Option<Arc<[u8]>> {
        if self.max_bytes == 0 {
            return None;
        }
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(header) = g.young.get(id) {
            return Some(header.clone());
        }
        let header = g.old.remove(id)?;
        self.insert_young(&mut g, *id, header.clone());
        Some(header)
    }

    /// Keeps the header of the body `id`.
    pub(crate) fn insert(&self, id: BlobId, header: &[u8]) {
        if self.max_bytes == 0 || header.len() > MAX_ENTRY.min(self.max_bytes / 2) {
            return;
        }
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if g.young.contains_key(&id) {
            return;
        }
        g.old.remove(&id);
        self.insert_young(&mut g, id, header.into());
    }

    fn insert_young(&self, g: &mut Generations, id: BlobId, header: Arc<[u8]>) {
        if g.young_bytes + header.len() > self.max_bytes / 2 {
            g.old = std::mem::take(&mut g.young);
            g.young_bytes = 0;
        }
        g.young_bytes += header.len();
        g.young.insert(id, header);
    }

    /// Bytes of headers held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        let g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        g.young_bytes + g.old.values().map(|h| h.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    #[test]
    fn keeps_what_is_read_and_stays_within_its_bound() {
        let cache = HeaderCache::new(1000);
        cache.insert(id(1), &[1; 100]);
        assert_eq!(cache.get(&id(1)).as_deref(), Some(&[1u8; 100][..]));
        for n in 2..50 {
            cache.insert(id(n), &[n; 100]);
            // The first entry is read all along: it stays.
            assert!(cache.get(&id(1)).is_some(), "lost after {n}");
            assert!(cache.bytes() <= 1000, "{} bytes", cache.bytes());
        }
        assert!(cache.get(&id(2)).is_none(), "never read again: dropped");
        assert_eq!(cache.get(&id(49)).as_deref(), Some(&[49u8; 100][..]));
    }

    #[test]
    fn large_headers_and_a_zero_bound_keep_nothing() {
        let cache = HeaderCache::new(1000);
        cache.insert(id(1), &[0; 501]);
        assert!(cache.get(&id(1)).is_none());
        let none = HeaderCache::new(0);
        none.insert(id(1), b"Subject: x\r\n\r\n");
        assert!(none.get(&id(1)).is_none());
    }
}
