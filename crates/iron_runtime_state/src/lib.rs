//! iron_runtime_state
