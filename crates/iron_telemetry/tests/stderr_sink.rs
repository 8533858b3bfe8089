//! The default sink writes redacted lines to stderr (checked in a child process that owns its stderr).

use std::process::Command;

use iron_telemetry::{init, LevelFilter, LogFormat, Sink, TelemetryConfig};

const CHILD_ENV: &str = "IRON_TELEMETRY_STDERR_CHILD";
const TEST_NAME: &str = "stderr_sink_writes_redacted_json_lines";
const SECRET: &str = "stderr-secret-0042-zz";

#[test]
fn stderr_sink_writes_redacted_json_lines() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let handle = init(TelemetryConfig {
            level: LevelFilter::INFO,
            format: LogFormat::Json,
            sink: Sink::Stderr,
        });
        handle.register_secret(SECRET);
        tracing::info!(target: "t_stderr", key = SECRET, "hello {SECRET}");
        tracing::debug!(target: "t_stderr", "below the level");
        return;
    }
    let output = Command::new(std::env::current_exe().expect("own binary"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run child");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(SECRET));
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("t_stderr")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON line");
    assert_eq!(v["message"], "hello [REDACTED]");
    assert_eq!(v["fields"]["key"], "[REDACTED]");
}
