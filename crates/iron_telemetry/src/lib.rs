//! iron_telemetry: one process-wide tracing subscriber whose sinks, levels and formats can be
//! swapped at run time, with every message and field passed through a [`Redactor`].
//!
//! Routers come and go within one process, so [`init`] installs the global subscriber only the
//! first time and otherwise just adds a sink; dropping the returned [`TelemetryHandle`] removes it.
//! Secrets registered with [`TelemetryHandle::register_secret`] (or [`Redactor::global`]) are
//! redacted in every sink, because a key must not leak through another router's log either.

mod layer;
mod patterns;
mod record;
mod redactor;
mod secrets;
mod sinks;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::layer::SubscriberExt;

pub use layer::RedactingLayer;
pub use record::{LogFormat, LogRecord};
pub use redactor::{Redactor, REDACTED};
pub use sinks::{LineCallback, RecordCallback, Sink};
pub use tracing::level_filters::LevelFilter;
pub use tracing::Level;

/// What one sink receives and how.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Most verbose level this sink receives (`LevelFilter::OFF` silences it); parse from text with `str::parse`.
    pub level: LevelFilter,
    /// Line format for `Sink::Stderr` and `Sink::Lines`.
    pub format: LogFormat,
    /// Destination.
    pub sink: Sink,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            level: LevelFilter::INFO,
            format: LogFormat::Text,
            sink: Sink::Stderr,
        }
    }
}

/// A registered sink; dropping it (or calling `close`) unregisters the sink.
#[derive(Debug)]
pub struct TelemetryHandle {
    id: u64,
    global: bool,
}

static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Installs the global subscriber on first use (idempotent) and registers a sink for `config`.
pub fn init(config: TelemetryConfig) -> TelemetryHandle {
    let global = *INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(RedactingLayer);
        // Fails only if the host already installed its own; it can add `layer()` to that one.
        tracing::subscriber::set_global_default(subscriber).is_ok()
    });
    let id = sinks::add(config.sink, config.level, config.format);
    TelemetryHandle { id, global }
}

/// The redacting layer, for a host that installs its own global subscriber.
pub fn layer() -> RedactingLayer {
    RedactingLayer
}

/// Number of sinks currently registered in this process.
pub fn sink_count() -> usize {
    sinks::count()
}

impl TelemetryHandle {
    /// Changes the most verbose level this sink receives.
    pub fn set_level(&self, level: LevelFilter) {
        sinks::reconfigure(self.id, Some(level), None);
    }

    /// Changes the line format of this sink.
    pub fn set_format(&self, format: LogFormat) {
        sinks::reconfigure(self.id, None, Some(format));
    }

    /// Redacts `secret` from every log line from now on; `false` if it is too short (under 8 bytes).
    pub fn register_secret(&self, secret: &str) -> bool {
        Redactor::global().register_secret(secret)
    }

    /// True if our subscriber is the process's global one (false if the host installed another first).
    pub fn is_global_subscriber(&self) -> bool {
        self.global
    }

    /// Unregisters the sink (same as dropping the handle).
    pub fn close(self) {}
}

impl Drop for TelemetryHandle {
    fn drop(&mut self) {
        sinks::remove(self.id);
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
