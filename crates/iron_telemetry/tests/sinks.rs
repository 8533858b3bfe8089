//! Sinks come and go, filter by level, and JSON lines are valid JSON.

mod common;

use std::sync::Arc;

use common::{for_target, line_sink, record_sink};
use iron_telemetry::{init, sink_count, Level, LevelFilter, LogFormat, Sink, TelemetryConfig};

fn log_all_levels(target_marker: &str) {
    match target_marker {
        "t_levels" => {
            tracing::trace!(target: "t_levels", "t");
            tracing::debug!(target: "t_levels", "d");
            tracing::info!(target: "t_levels", "i");
            tracing::warn!(target: "t_levels", "w");
            tracing::error!(target: "t_levels", "e");
        }
        _ => {
            tracing::trace!(target: "t_two", "t");
            tracing::debug!(target: "t_two", "d");
            tracing::info!(target: "t_two", "i");
            tracing::warn!(target: "t_two", "w");
            tracing::error!(target: "t_two", "e");
        }
    }
}

fn levels(records: &common::Records, target: &str) -> Vec<Level> {
    for_target(records, target)
        .iter()
        .map(|r| r.level)
        .collect()
}

#[test]
fn each_sink_gets_only_its_levels_and_can_change_them() {
    let (warn, warn_records) = record_sink(LevelFilter::WARN);
    let (_off, off_records) = record_sink(LevelFilter::OFF);
    log_all_levels("t_levels");
    assert_eq!(
        levels(&warn_records, "t_levels"),
        [Level::WARN, Level::ERROR]
    );

    warn.set_level(LevelFilter::DEBUG);
    log_all_levels("t_levels");
    assert_eq!(
        levels(&warn_records, "t_levels"),
        [
            Level::WARN,
            Level::ERROR,
            Level::DEBUG,
            Level::INFO,
            Level::WARN,
            Level::ERROR
        ]
    );
    assert!(levels(&off_records, "t_levels").is_empty());

    drop(warn);
    log_all_levels("t_levels");
    assert_eq!(
        levels(&warn_records, "t_levels").len(),
        6,
        "a dropped sink receives nothing"
    );
}

#[test]
fn init_twice_gives_two_independent_sinks() {
    let before = sink_count();
    let (first, first_records) = record_sink(LevelFilter::INFO);
    let (second, second_records) = record_sink(LevelFilter::ERROR);
    assert!(first.is_global_subscriber() && second.is_global_subscriber());
    assert!(sink_count() >= before + 2);
    log_all_levels("t_two");
    assert_eq!(
        levels(&first_records, "t_two"),
        [Level::INFO, Level::WARN, Level::ERROR]
    );
    assert_eq!(levels(&second_records, "t_two"), [Level::ERROR]);
    first.close();
    log_all_levels("t_two");
    assert_eq!(levels(&first_records, "t_two").len(), 3);
    assert_eq!(
        levels(&second_records, "t_two"),
        [Level::ERROR, Level::ERROR]
    );
}

#[test]
fn json_format_is_one_valid_object_per_line() {
    let (handle, lines) = line_sink(LevelFilter::DEBUG, LogFormat::Json);
    let nasty = "quote \" backslash \\ newline \n tab \t nul \0 bell \u{7} emoji 😀";
    let span = tracing::info_span!(target: "t_json", "req", request_id = 42u64);
    let _entered = span.enter();
    tracing::info!(target: "t_json", text = nasty, ratio = 0.5, nan = f64::NAN, ok = true, "msg {nasty}");
    tracing::debug!(target: "t_json", big = %"x".repeat(100_000), "big");
    drop(_entered);
    handle.set_format(LogFormat::Text);
    tracing::info!(target: "t_json", "now text");

    let lines = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mine: Vec<&String> = lines.iter().filter(|l| l.contains("t_json")).collect();
    assert_eq!(mine.len(), 3);
    for line in &mine[..2] {
        assert!(!line.contains('\n'));
        let _: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
    }
    let first: serde_json::Value = serde_json::from_str(mine[0]).expect("json");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["target"], "t_json");
    assert_eq!(first["message"], format!("msg {nasty}"));
    assert_eq!(first["fields"]["text"], nasty);
    assert_eq!(first["fields"]["request_id"], 42);
    assert_eq!(first["fields"]["ratio"], 0.5);
    assert_eq!(first["fields"]["nan"], "NaN");
    assert_eq!(first["fields"]["ok"], true);
    let big: serde_json::Value = serde_json::from_str(mine[1]).expect("json");
    let big_field = big["fields"]["big"].as_str().unwrap_or_default();
    assert!(big_field.len() < 20_000 && big_field.ends_with("[truncated]"));
    assert!(mine[2].contains(" INFO t_json: now text"), "{}", mine[2]);
}

#[test]
fn a_panicking_or_logging_sink_does_not_break_others() {
    let _panics = init(TelemetryConfig {
        level: LevelFilter::INFO,
        format: LogFormat::Text,
        sink: Sink::Records(Arc::new(|r| {
            if r.target == "t_robust" {
                panic!("sink bug")
            }
        })),
    });
    let _logs_back = init(TelemetryConfig {
        level: LevelFilter::INFO,
        format: LogFormat::Text,
        sink: Sink::Lines(Arc::new(
            |_| tracing::error!(target: "t_robust", "from inside a sink"),
        )),
    });
    let (_h, records) = record_sink(LevelFilter::INFO);
    tracing::info!(target: "t_robust", "still delivered");
    let mine = for_target(&records, "t_robust");
    assert_eq!(
        mine.len(),
        1,
        "the event logged inside a sink is dropped, not looped"
    );
    assert_eq!(mine[0].message, "still delivered");
}
