//! iron_cost
