//! Message bodies as immutable files addressed by their SHA-256.
//!
//! Layout under the store directory:
//!
//! ```text
//! blobs/tmp/<pid>-<n>        a body being written
//! blobs/ab/ab01…ef           a finished body: the 64 hex digits of its SHA-256,
//!                            under the directory named by the first two
//! ```
//!
//! Writing: stream into a new temporary file while hashing, then hand it to
//! the group sync ([`GroupSync`]). One writer at a time leads a batch of
//! every file handed over meanwhile: `syncfs` (the batch's bytes are
//! durable), `rename` each file to its content address (or drop it when that
//! body is already there), `syncfs` again (the names are durable). Only then
//! do the batch's writers return, and only then is the index row that
//! references a body handed to the committer. A batch costs two syncs
//! however many bodies it holds, so concurrent deliveries share them the way
//! they share the WAL `fsync` of the committer.
//!
//! `syncfs` flushes the whole file system that holds the blob directory:
//! keep the data directory on a file system of its own when other programs
//! write a lot beside it.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::stats::Counters;

/// The content address of a body: its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// The id of these bytes.
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(Sha256::digest(bytes).into())
    }

    /// The 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Result<BlobId> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Corrupt(format!("blob hash of {} bytes", bytes.len())))?;
        Ok(BlobId(arr))
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.to_hex())
    }
}

/// Parsing a [`BlobId`] from anything but 64 hex digits fails with this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a blob id is 64 hex digits")]
pub struct ParseBlobIdError;

impl FromStr for BlobId {
    type Err = ParseBlobIdError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(ParseBlobIdError);
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(ParseBlobIdError),
        };
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Ok(BlobId(out))
    }
}

/// The body files. Cheap to clone; shared by every handle of a [`crate::Store`].
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
    seq: Arc<AtomicU64>,
    counters: Arc<Counters>,
    group: Arc<GroupSync>,
}

impl BlobStore {
    /// Opens (creating) the blob directories under `root`, syncing every new
    /// directory entry, and removes temporary files older than `stale`.
    pub(crate) fn open(root: PathBuf, counters: Arc<Counters>, stale: Duration) -> Result<Self> {
        let tmp = root.join("tmp");
        let mut created = false;
        for dir in std::iter::once(tmp.clone()).chain((0..=255u8).map(|b| root.join(hex2(b)))) {
            if !dir.is_dir() {
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                created = true;
            }
        }
        let handle = File::open(&root).map_err(|e| Error::io(&root, e))?;
        let store = BlobStore {
            group: Arc::new(GroupSync::new(handle, root.clone())),
            root,
            tmp,
            seq: Arc::new(AtomicU64::new(0)),
            counters,
        };
        if created {
            store.sync_dir(&store.root)?;
            if let Some(parent) = store.root.parent() {
                store.sync_dir(parent)?;
            }
        }
        store.clean_tmp(stale)?;
        Ok(store)
    }

    /// The file of a body (which may not exist).
    pub fn path(&self, id: &BlobId) -> PathBuf {
        self.dir_of(id).join(id.to_hex())
    }

    fn dir_of(&self, id: &BlobId) -> PathBuf {
        self.root.join(hex2(id.0[0]))
    }

    /// Writes a body durably and returns its id: when this returns, the bytes
    /// and the name survive a crash or power loss. Writing the same bytes again
    /// stores nothing new. This is the spool API: the SMTP acceptance path calls
    /// it before answering `250`, and later delivers by reference.
    ///
    /// A body that nothing references ([`crate::Store::hold_blob`] or a message)
    /// is removed by [`crate::Store::collect_garbage`] once older than its grace period.
    pub fn write(&self, reader: impl Read) -> Result<BlobId> {
        self.write_durable(reader).map(|(id, _)| id)
    }

    /// [`BlobStore::write`], also giving the size.
    pub(crate) fn write_durable(&self, reader: impl Read) -> Result<(BlobId, u64)> {
        let (tmp_path, id, size) = self.write_temp(reader)?;
        let path = self.path(&id);
        if let Ok(existing) = File::open(&path) {
            // Already stored: keep the old file, and make it young again so
            // that garbage collection leaves it to the reference about to
            // come. Its name may come from a batch still in flight: waiting
            // for the next batch makes sure that one is durable too.
            let _ = fs::remove_file(&tmp_path);
            existing
                .set_modified(SystemTime::now())
                .map_err(|e| Error::io(&path, e))?;
            self.group.sync(None, &self.counters)?;
        } else {
            self.group.sync(Some((tmp_path, path)), &self.counters)?;
        }
        Ok((id, size))
    }

    /// [`BlobStore::write`] for bytes in memory.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<BlobId> {
        self.write(bytes)
    }

    /// Opens a body for reading.
    pub fn open_file(&self, id: &BlobId) -> Result<File> {
        let path = self.path(id);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::BlobMissing(*id),
            _ => Error::io(path, e),
        })
    }

    /// The size of a body's file.
    pub fn size(&self, id: &BlobId) -> Result<u64> {
        let path = self.path(id);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::BlobMissing(*id),
                _ => Error::io(path, e),
            })
    }

    /// Reads a body whole and checks its hash: [`Error::BlobCorrupt`] when the
    /// bytes are not the ones the id names. Returns the size.
    pub fn verify(&self, id: &BlobId) -> Result<u64> {
        let mut file = self.open_file(id)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io(self.path(id), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        if <[u8; 32]>::from(hasher.finalize()) == id.0 {
            Ok(size)
        } else {
            Err(Error::BlobCorrupt(*id))
        }
    }

    /// Streams `reader` into a new temporary file while hashing it; returns
    /// the file's path, the body's id and its size. Nothing is synced yet.
    fn write_temp(&self, mut reader: impl Read) -> Result<(PathBuf, BlobId, u64)> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self.tmp.join(format!("{}-{n}", std::process::id()));
        let mut file = File::create_new(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
        let result = (|| {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(&tmp_path, e)),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(|e| Error::io(&tmp_path, e))?;
                size += n as u64;
            }
            Ok((BlobId(hasher.finalize().into()), size))
        })();
        drop(file);
        match result {
            Ok((id, size)) => Ok((tmp_path, id, size)),
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                Err(e)
            }
        }
    }

    /// `fsync` on a directory, so that the names created in it are durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
        self.counters.dir_fsync();
        Ok(())
    }

    /// Every body file with its modification time.
    pub(crate) fn list(&self) -> Result<Vec<(BlobId, SystemTime)>> {
        let mut out = Vec::new();
        for b in 0..=255u8 {
            let dir = self.root.join(hex2(b));
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, e))?;
                let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let mtime = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((id, mtime));
            }
        }
        Ok(out)
    }

    /// Whether the body file was modified within the last `grace`.
    pub(crate) fn is_young(&self, id: &BlobId, grace: Duration) -> bool {
        fs::metadata(self.path(id))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().map_or(true, |age| age < grace))
    }

    /// Removes a body file; false when it was not there.
    pub(crate) fn remove(&self, id: &BlobId) -> Result<bool> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Removes temporary files older than `stale` (left by a crash mid-write).
    fn clean_tmp(&self, stale: Duration) -> Result<()> {
        let entries = fs::read_dir(&self.tmp).map_err(|e| Error::io(&self.tmp, e))?;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= stale));
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

fn hex2(b: u8) -> String {
    format!("{b:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> BlobStore {
        BlobStore::open(
            dir.join("blobs"),
            Arc::new(Counters::default()),
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    #[test]
    fn write_is_content_addressed_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path());
        let a = blobs.write_bytes(b"hello").unwrap();
        let b = blobs.write(&b"hello"[..]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, BlobId::of(b"hello"));
        assert_eq!(blobs.list().unwrap().len(), 1);
        assert_eq!(blobs.verify(&a).unwrap(), 5);
        let mut s = String::new();
        blobs.open_file(&a).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn missing_and_corrupt_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = store(dir.path());
        let id = blobs.write_bytes(b"body").unwrap();
        fs::write(blobs.path(&id), b"bodx").unwrap();
        assert!(matches!(blobs.verify(&id), Err(Error::BlobCorrupt(_))));
        fs::remove_file(blobs.path(&id)).unwrap();
        assert!(matches!(blobs.open_file(&id), Err(Error::BlobMissing(_))));
    }

    #[test]
    fn ids_parse_and_print() {
        let id = BlobId::of(b"x");
        assert_eq!(id.to_hex().parse::<BlobId>().unwrap(), id);
        assert!("xyz".parse::<BlobId>().is_err());
    }
}

/// Makes written bodies durable in batches (leader/follower group commit):
/// the first writer to find no batch running leads one for every body
/// handed over so far, while the others wait for the batch that holds theirs.
#[derive(Debug)]
pub(crate) struct GroupSync {
    /// A handle on the blob directory: `syncfs` flushes its file system.
    handle: File,
    root: PathBuf,
    state: Mutex<SyncState>,
    finished: Condvar,
}

/// A body to put in place: its temporary file and its final path; `None`
/// only waits for a batch boundary.
type Item = Option<(PathBuf, PathBuf)>;

#[derive(Debug, Default)]
struct SyncState {
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one belongs to a finished batch.
    finished_through: u64,
    /// A writer is running a batch.
    leading: bool,
    /// Tickets waiting for the next batch, in order.
    waiting: Vec<(u64, Item)>,
    /// Tickets of failed batches, with the error.
    failed: HashMap<u64, String>,
}

impl GroupSync {
    fn new(handle: File, root: PathBuf) -> Self {
        GroupSync {
            handle,
            root,
            state: Mutex::new(SyncState::default()),
            finished: Condvar::new(),
        }
    }

    /// Returns once `item` is in place and durable, its bytes and its name.
    fn sync(&self, item: Item, counters: &Counters) -> Result<()> {
        let lock = || self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = lock();
        state.issued += 1;
        let ticket = state.issued;
        state.waiting.push((ticket, item));
        loop {
            if state.finished_through >= ticket {
                return match state.failed.remove(&ticket) {
                    None => Ok(()),
                    Some(error) => Err(Error::io(&self.root, io::Error::other(error))),
                };
            }
            if state.leading {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.leading = true;
            let batch = std::mem::take(&mut state.waiting);
            drop(state);
            let outcome = self.run(&batch, counters);
            state = lock();
            state.leading = false;
            if let Some(&(last, _)) = batch.last() {
                state.finished_through = last;
            }
            if let Err(error) = outcome {
                for (t, _) in &batch {
                    state.failed.insert(*t, error.to_string());
                }
            }
            self.finished.notify_all();
        }
    }

    /// `syncfs`, the renames, `syncfs`: the data of every file is durable
    /// before any of them gets its final name.
    fn run(&self, batch: &[(u64, Item)], counters: &Counters) -> io::Result<()> {
        rustix::fs::syncfs(&self.handle)?;
        counters.fs_sync();
        for (_, item) in batch {
            if let Some((tmp, path)) = item {
                if path.exists() {
                    // The same body came twice in one batch.
                    let _ = fs::remove_file(tmp);
                } else {
                    fs::rename(tmp, path)?;
                }
            }
        }
        rustix::fs::syncfs(&self.handle)?;
        counters.fs_sync();
        Ok(())
    }
}
