//! iron_reliability
