//! Logs of one router: `tracing` through iron_telemetry, whose redactor sees every field, so no key,
//! token or raw PII reaches a line. Nothing is written unless `logLevel` or a JS logger asks for it.

use crate::config::ConfigError;
use iron_telemetry::{
    LevelFilter, LineCallback, LogFormat, Sink, TelemetryConfig, TelemetryHandle,
};
use std::sync::{Mutex, Once};

/// The router's log sinks (dropped on stop, which unregisters them).
pub struct Logging {
    level: LevelFilter,
    format: LogFormat,
    handles: Mutex<Vec<TelemetryHandle>>,
}

fn parse_level(v: Option<&str>) -> Result<Option<LevelFilter>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) => match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Some(LevelFilter::OFF)),
            "error" => Ok(Some(LevelFilter::ERROR)),
            "warn" => Ok(Some(LevelFilter::WARN)),
            "info" => Ok(Some(LevelFilter::INFO)),
            "debug" => Ok(Some(LevelFilter::DEBUG)),
            "trace" => Ok(Some(LevelFilter::TRACE)),
            _ => Err(ConfigError {
                field: "logLevel".into(),
                message: format!("must be one of off|error|warn|info|debug|trace, got '{s}'"),
            }),
        },
    }
}

impl Logging {
    /// `logLevel` alone sends lines to stderr; a JS logger is attached later with `attach`.
    pub fn from_options(
        level: Option<&str>,
        format: Option<&str>,
        to_stderr: bool,
        secrets: &[&str],
    ) -> Result<Logging, ConfigError> {
        let explicit = parse_level(level)?;
        let format = match format.map(str::to_ascii_lowercase).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    field: "logFormat".into(),
                    message: format!("must be 'text' or 'json', got '{other}'"),
                })
            }
        };
        let logging = Logging {
            level: explicit.unwrap_or(LevelFilter::INFO),
            format,
            handles: Mutex::new(Vec::new()),
        };
        install_panic_hook();
        for s in secrets {
            iron_telemetry::Redactor::global().register_secret(s);
        }
        if let Some(level) = explicit {
            if level != LevelFilter::OFF && to_stderr {
                logging.add(Sink::Stderr);
            }
        }
        Ok(logging)
    }

    /// Send this router's log lines to `callback` (e.g. a JS function) at the configured level.
    pub fn attach(&self, callback: LineCallback) {
        self.add(Sink::Lines(callback));
    }

    fn add(&self, sink: Sink) {
        let handle = iron_telemetry::init(TelemetryConfig {
            level: self.level,
            format: self.format,
            sink,
        });
        if let Ok(mut h) = self.handles.lock() {
            h.push(handle);
        }
    }

    /// Stop writing (unregisters the sinks).
    pub fn close(&self) {
        if let Ok(mut h) = self.handles.lock() {
            h.clear();
        }
    }
}

/// Make sure a secret learnt at run time (a fetched provider key) never reaches a log line.
pub fn register_secret(secret: &str) {
    iron_telemetry::Redactor::global().register_secret(secret);
}

/// Text from outside (a server's error message) with registered secrets and key-shaped strings
/// replaced, before it reaches a client, an event or the state file.
pub fn redact(text: &str) -> String {
    iron_telemetry::Redactor::global().redact(text).into_owned()
}

/// [`redact`] without the personal data shapes (emails): for text the PII policy checks next,
/// with its own placeholders and actions.
pub fn redact_credentials(text: &str) -> String {
    iron_telemetry::Redactor::global()
        .redact_credentials(text)
        .into_owned()
}

/// The line printed for a panic: its message and place with registered secrets and key-shaped
/// strings redacted, like every log line.
pub fn panic_line(thread: Option<&str>, message: &str, location: Option<String>) -> String {
    let place = location.map(|l| format!(" at {l}")).unwrap_or_default();
    redact(&format!(
        "iron-cage: thread '{}' panicked{place}: {message}\n",
        thread.unwrap_or("<unnamed>")
    ))
}

/// Replace the default panic message of this addon's Rust code (it printed the panic's text as is,
/// so a value being formatted, such as a key, could reach stderr) with a redacted line. Rust's
/// panic hook belongs to the addon's own copy of std, so other addons in the process are unaffected.
/// `RUST_BACKTRACE` still adds a backtrace (frames only, no values).
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "(no message)".to_string()
            };
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            let mut line = panic_line(std::thread::current().name(), &message, location);
            let backtrace = std::backtrace::Backtrace::capture();
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                line.push_str(&format!("{backtrace}\n"));
            }
            use std::io::Write;
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }));
    });
}
