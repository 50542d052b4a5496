//! The body of a message being received, on its way to the store.
//!
//! Small messages collect in memory: up to [`INLINE`] they go into the
//! database with their queue entry (one commit, no file), larger ones are
//! written to the blob store in one call at the end;
//! once a message passes [`IN_MEMORY`] the rest streams through a bounded
//! channel to a blocking thread that writes it to the blob store as it comes,
//! so no message is ever held whole in memory, and a slow client never ties
//! up a thread for a small message.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, Bytes};
use ironpost_store::{BlobId, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes of a message kept in memory before it streams to disk.
const IN_MEMORY: usize = 256 * 1024;
/// Largest body kept in the database with its queue entry rather than in a
/// file of its own.
const INLINE: usize = 64 * 1024;

/// Where a spooled body is.
pub(crate) enum Spooled {
    /// Small: the bytes, to queue with [`ironpost_store::NewQueueEntry::inline`].
    Inline(Vec<u8>),
    /// Durable in the blob store.
    Blob(BlobId),
}
/// Chunks in flight between the session and the writing thread.
const CHANNEL_CHUNKS: usize = 16;

/// Why a body could not be spooled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    #[error(transparent)]
    Store(#[from] ironpost_store::Error),
    #[error("the spool writer stopped: {0}")]
    Writer(String),
}

struct Streaming {
    chunks: mpsc::Sender<Bytes>,
    complete: Arc<AtomicBool>,
    writer: JoinHandle<Result<BlobId, ironpost_store::Error>>,
}

/// A body being received.
pub(crate) struct Spool {
    store: Store,
    memory: Vec<u8>,
    streaming: Option<Streaming>,
    size: u64,
}

impl Spool {
    /// A spool whose body starts with `head` (the `Received:` line).
    pub(crate) fn new(store: Store, head: Vec<u8>) -> Spool {
        let size = head.len() as u64;
        Spool {
            store,
            memory: head,
            streaming: None,
            size,
        }
    }

    /// Appends the next bytes of the body.
    pub(crate) async fn push(&mut self, chunk: Bytes) -> Result<(), SpoolError> {
        self.size += chunk.len() as u64;
        if self.streaming.is_none() {
            self.memory.extend_from_slice(&chunk);
            if self.memory.len() > IN_MEMORY {
                self.start_streaming().await?;
            }
            return Ok(());
        }
        self.send(chunk).await
    }

    async fn start_streaming(&mut self) -> Result<(), SpoolError> {
        let (chunks, receiver) = mpsc::channel(CHANNEL_CHUNKS);
        let complete = Arc::new(AtomicBool::new(false));
        let reader = ChannelReader {
            chunks: receiver,
            current: Bytes::new(),
            complete: complete.clone(),
        };
        let blobs = self.store.blobs().clone();
        let writer = tokio::task::spawn_blocking(move || blobs.write(reader));
        self.streaming = Some(Streaming {
            chunks,
            complete,
            writer,
        });
        let first = Bytes::from(std::mem::take(&mut self.memory));
        self.send(first).await
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), SpoolError> {
        let Some(streaming) = &self.streaming else {
            return Err(SpoolError::Writer("not streaming".into()));
        };
        if streaming.chunks.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The writer gave up: its error says why.
        match self.streaming.take() {
            Some(s) => match s.writer.await {
                Ok(Err(e)) => Err(e.into()),
                Ok(Ok(_)) => Err(SpoolError::Writer("ended early".into())),
                Err(e) => Err(SpoolError::Writer(e.to_string())),
            },
            None => Err(SpoolError::Writer("not streaming".into())),
        }
    }

    /// The size so far, head included.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Ends the body: a small one is handed back to be queued inline, a
    /// larger one is made durable in the blob store.
    pub(crate) async fn finish(mut self) -> Result<Spooled, SpoolError> {
        match self.streaming.take() {
            Some(Streaming {
                chunks,
                complete,
                writer,
            }) => {
                complete.store(true, Ordering::Release);
                drop(chunks);
                let blob = writer
                    .await
                    .map_err(|e| SpoolError::Writer(e.to_string()))?
                    .map_err(SpoolError::from)?;
                Ok(Spooled::Blob(blob))
            }
            None if self.memory.len() <= INLINE => {
                Ok(Spooled::Inline(std::mem::take(&mut self.memory)))
            }
            None => {
                let blobs = self.store.blobs().clone();
                let memory = std::mem::take(&mut self.memory);
                let blob = tokio::task::spawn_blocking(move || blobs.write_bytes(&memory))
                    .await
                    .map_err(|e| SpoolError::Writer(e.to_string()))?
                    .map_err(SpoolError::from)?;
                Ok(Spooled::Blob(blob))
            }
        }
    }
}

/// The blocking side of a streaming spool: reads the chunks the session
/// sends. When the sending side goes away without marking the body complete
/// (the client vanished, the message was refused), reading fails, so the
/// blob store discards the partial file instead of keeping it.
struct ChannelReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
    complete: Arc<AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None if self.complete.load(Ordering::Acquire) => return Ok(0),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the message was abandoned",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
