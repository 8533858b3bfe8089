//! iron_runtime
