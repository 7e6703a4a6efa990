//! A connection's write queue: counted in bytes, never awaited by a
//! sender, drained by the connection's task; and the connection's close
//! request, which the same lock guards so a closing queue takes no bytes.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::{CloseReason, SendError};

/// Unsent bytes of one connection and why it is closing, if it is.
#[derive(Debug)]
pub(super) struct Queue {
    state: Mutex<State>,
    /// Wakes the writer: bytes were queued.
    data: Notify,
    /// Wakes the connection's task: it must close.
    close: Notify,
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    /// Queued bytes plus the chunk being written: what the queue holds.
    bytes: usize,
    closing: Option<CloseReason>,
}

impl Queue {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            state: Mutex::default(),
            data: Notify::new(),
            close: Notify::new(),
            limit,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few counters and a deque, consistent after every
        // statement: a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `bytes`; over the limit the connection closes instead
    /// (a peer that does not read must not grow our memory).
    pub(super) fn push(&self, bytes: Vec<u8>) -> Result<(), SendError> {
        let mut s = self.state();
        if s.closing.is_some() {
            return Err(SendError::NoSuchConnection);
        }
        if s.bytes.saturating_add(bytes.len()) > self.limit {
            s.closing = Some(CloseReason::WriteQueueFull);
            drop(s);
            self.close.notify_one();
            return Err(SendError::QueueFull);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        s.bytes += bytes.len();
        s.chunks.push_back(bytes);
        drop(s);
        self.data.notify_one();
        Ok(())
    }

    /// Asks the connection to close; the first reason wins.
    pub(super) fn close(&self, reason: CloseReason) {
        let mut s = self.state();
        if s.closing.is_none() {
            s.closing = Some(reason);
        }
        drop(s);
        self.close.notify_one();
    }

    pub(super) fn is_closing(&self) -> bool {
        self.state().closing.is_some()
    }

    /// Bytes queued and not yet written.
    pub(super) fn queued(&self) -> usize {
        self.state().bytes
    }

    /// Resolves with the reason once the connection was asked to close.
    pub(super) async fn closed(&self) -> CloseReason {
        loop {
            if let Some(reason) = self.state().closing {
                return reason;
            }
            // notify_one keeps a permit when nobody waits: no lost wake-up.
            self.close.notified().await;
        }
    }

    /// The next chunk to write; its bytes stay counted until [`Self::written`].
    pub(super) async fn next_chunk(&self) -> Vec<u8> {
        loop {
            if let Some(chunk) = self.state().chunks.pop_front() {
                return chunk;
            }
            self.data.notified().await;
        }
    }

    /// `n` bytes of a chunk from [`Self::next_chunk`] were written.
    pub(super) fn written(&self, n: usize) {
        let mut s = self.state();
        s.bytes = s.bytes.saturating_sub(n);
    }

    /// Nothing left to write.
    pub(super) fn is_empty(&self) -> bool {
        self.state().bytes == 0
    }
}
