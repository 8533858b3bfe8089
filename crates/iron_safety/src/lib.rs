//! iron_safety
