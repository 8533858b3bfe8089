//! The client's end of a relayed body: pieces go to the client's connection through a bounded
//! channel, and a client that takes none within the idle timeout (or the total deadline) is cut off.

use crate::key_guard::KeyGuard;
use crate::relay::Ending;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

pub(crate) type Piece = Result<Bytes, std::io::Error>;

/// The client's end of a relayed body. Every piece must be taken within the idle timeout and
/// before the total deadline: a client that stops reading would otherwise hold the upstream
/// stream and the budget hold for as long as it keeps its socket open.
pub(crate) struct ClientSink {
    pub(crate) tx: mpsc::Sender<Piece>,
    pub(crate) deadline: Instant,
    pub(crate) idle: Duration,
    /// Set when the relay gives up on the client: its body then ends with an error.
    pub(crate) cut: Arc<AtomicBool>,
    /// Why delivery stopped, once it has; later pieces are not sent.
    pub(crate) stopped: Option<Ending>,
    /// Keeps the provider key out of every piece (see `key_guard`).
    pub(crate) guard: Option<KeyGuard>,
}

impl ClientSink {
    /// Hands `piece` to the client's connection. A free slot takes it at once (a normal reader, and
    /// every piece of a burst the client keeps up with, never waits on a timer); a full channel is
    /// waited on until the idle timeout or the total deadline, whichever comes first.
    pub(crate) async fn send(&mut self, piece: Piece) -> Result<(), Ending> {
        if let Some(e) = &self.stopped {
            return Err(e.clone());
        }
        let piece = match (piece, self.guard.as_mut()) {
            (Ok(bytes), Some(g)) => {
                let bytes = g.pass(bytes);
                if bytes.is_empty() {
                    return Ok(());
                }
                Ok(bytes)
            }
            (piece, _) => piece,
        };
        let piece = match self.tx.try_send(piece) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => return Err(self.stop(Ending::ClientAborted)),
            Err(TrySendError::Full(piece)) => piece,
        };
        let until = self.deadline.min(Instant::now() + self.idle);
        match tokio::time::timeout_at(until.into(), self.tx.send(piece)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.stop(Ending::ClientAborted)),
            Err(_) => {
                self.cut.store(true, Ordering::Release);
                let what = if Instant::now() >= self.deadline {
                    "total"
                } else {
                    "idle"
                };
                Err(self.stop(Ending::ClientTimeout(what)))
            }
        }
    }

    /// The end of the answer: what the key guard still held goes out (it was not the key).
    pub(crate) async fn finish(&mut self, request_id: u64) {
        let Some(mut g) = self.guard.take() else {
            return;
        };
        let rest = g.finish();
        if !rest.is_empty() {
            let _ = self.send(Ok(rest)).await;
        }
        if g.redacted {
            tracing::warn!(target: "iron_cage", request_id, "the provider's answer held the provider key; Iron Cage replaced it with [REDACTED]");
        }
    }

    fn stop(&mut self, why: Ending) -> Ending {
        self.stopped = Some(why.clone());
        why
    }
}
