//! iron_telemetry
