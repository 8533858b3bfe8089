//! One bounded broadcast bus. The request path never waits on it: a slow subscriber loses the oldest
//! events and the loss is counted. Payloads never hold key material or prompt/answer text.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Token counts by kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// PII detection summary for one kind (values only as SHA-256).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PiiSummary {
    pub kind: String,
    pub count: u64,
    pub action: String,
    pub sha256: Vec<String>,
}

/// Everything the router tells the world, tagged by `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RouterEvent {
    #[serde(rename_all = "camelCase")]
    Request {
        request_id: u64,
        ts_ms: u64,
        method: String,
        path: String,
        provider: Option<String>,
        model: Option<String>,
        stream: bool,
    },
    #[serde(rename_all = "camelCase")]
    Response {
        request_id: u64,
        ts_ms: u64,
        provider: String,
        model: Option<String>,
        status: u16,
        tokens: Tokens,
        cost_usd: f64,
        cost_micros: u64,
        estimated: bool,
        /// The model has no price, so the call is recorded at $0 whatever it cost.
        unpriced: bool,
        latency_ms: u64,
        ttft_ms: Option<u64>,
        outcome: String,
    },
    #[serde(rename_all = "camelCase")]
    Blocked {
        request_id: u64,
        ts_ms: u64,
        reason: String,
        code: String,
        message: String,
    },
    #[serde(rename_all = "camelCase")]
    Budget {
        ts_ms: u64,
        level: String,
        spent_usd: f64,
        limit_usd: f64,
        percent: f64,
    },
    #[serde(rename_all = "camelCase")]
    Pii {
        request_id: u64,
        ts_ms: u64,
        direction: String,
        detections: Vec<PiiSummary>,
    },
    #[serde(rename_all = "camelCase")]
    Circuit {
        ts_ms: u64,
        provider: String,
        host: String,
        state: String,
        reason: String,
    },
    #[serde(rename_all = "camelCase")]
    Key {
        ts_ms: u64,
        action: String,
        provider: Option<String>,
        message: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        ts_ms: u64,
        code: String,
        message: String,
    },
    #[serde(rename_all = "camelCase")]
    Agent {
        ts_ms: u64,
        agent_id: String,
        name: String,
        action: String,
        pid: Option<u32>,
        exit_code: Option<i32>,
        signal: Option<String>,
        reason: Option<String>,
    },
}

impl RouterEvent {
    /// The `type` name, for filtering without serialising.
    pub fn kind(&self) -> &'static str {
        match self {
            RouterEvent::Request { .. } => "request",
            RouterEvent::Response { .. } => "response",
            RouterEvent::Blocked { .. } => "blocked",
            RouterEvent::Budget { .. } => "budget",
            RouterEvent::Pii { .. } => "pii",
            RouterEvent::Circuit { .. } => "circuit",
            RouterEvent::Key { .. } => "key",
            RouterEvent::Error { .. } => "error",
            RouterEvent::Agent { .. } => "agent",
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A synchronous observer that must see every event (the audit trail), unlike lossy subscribers.
pub type AuditHook = Arc<dyn Fn(&Published) + Send + Sync>;

/// An event as published: the event, and its JSON made once for every reader that wants it (the
/// audit trail, the JS listeners, WebSocket clients) instead of once per reader.
#[derive(Debug)]
pub struct Published {
    event: RouterEvent,
    json: std::sync::OnceLock<Box<str>>,
}

impl Published {
    pub fn new(event: RouterEvent) -> Published {
        Published {
            event,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The event's JSON (`{"type":...}`), serialised on first use.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| {
            serde_json::to_string(&self.event)
                .unwrap_or_else(|_| "null".into())
                .into_boxed_str()
        })
    }
}

/// Serialises as the event itself (what [`Published::json`] holds).
impl Serialize for Published {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.event.serialize(s)
    }
}

impl std::ops::Deref for Published {
    type Target = RouterEvent;
    fn deref(&self) -> &RouterEvent {
        &self.event
    }
}

/// Cheap to clone; every clone publishes to the same bus.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Published>>,
    dropped: Arc<AtomicU64>,
    published: Arc<AtomicU64>,
    audit: Arc<std::sync::OnceLock<AuditHook>>,
}

impl EventBus {
    /// A bus holding at most `capacity` undelivered events per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        EventBus {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            published: Arc::new(AtomicU64::new(0)),
            audit: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Set the audit hook (once).
    pub fn set_audit_hook(&self, hook: AuditHook) {
        let _ = self.audit.set(hook);
    }

    /// Publish without waiting; with no subscriber the event is simply not kept.
    pub fn emit(&self, event: RouterEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let published = Arc::new(Published::new(event));
        if let Some(hook) = self.audit.get() {
            hook(&published);
        }
        let _ = self.tx.send(published);
    }

    /// True when someone listens (lets callers skip building events nobody reads).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A new subscription starting at the next event.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            dropped: self.dropped.clone(),
        }
    }

    /// Events lost by slow subscribers, in total.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

/// One subscriber's view of the bus.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Published>>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// The next event; `None` once the bus is gone. Lost events are counted, not returned.
    pub async fn recv(&mut self) -> Option<Arc<Published>> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// An event if one is ready now.
    pub fn try_recv(&mut self) -> Option<Arc<Published>> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    self.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_subscriber_loses_oldest_and_counts() {
        let bus = EventBus::new(16);
        let mut sub = bus.subscribe();
        for i in 0..40u64 {
            bus.emit(RouterEvent::Error {
                ts_ms: i,
                code: "X".into(),
                message: String::new(),
            });
        }
        let first = sub.recv().await.unwrap();
        match &**first {
            RouterEvent::Error { ts_ms, .. } => assert_eq!(*ts_ms, 24),
            _ => panic!(),
        }
        assert_eq!(bus.dropped(), 24);
        let json: serde_json::Value = serde_json::from_str(first.json()).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["tsMs"], 24);
    }

    #[tokio::test]
    async fn json_is_made_once_for_the_audit_hook_and_every_subscriber() {
        let bus = EventBus::new(16);
        let seen: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
        let hook_seen = seen.clone();
        bus.set_audit_hook(Arc::new(move |e: &Published| {
            hook_seen.lock().unwrap().push(e.json().as_ptr() as usize);
        }));
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        bus.emit(RouterEvent::Pii {
            request_id: 7,
            ts_ms: 1,
            direction: "request".into(),
            detections: vec![],
        });
        let (ea, eb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        let hook_ptr = seen.lock().unwrap()[0];
        assert_eq!(ea.json().as_ptr() as usize, hook_ptr);
        assert_eq!(eb.json().as_ptr() as usize, hook_ptr);
        let v: serde_json::Value = serde_json::from_str(ea.json()).unwrap();
        assert_eq!(v["type"], "pii");
        assert_eq!(v["requestId"], 7);
    }
}
