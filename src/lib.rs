//! Node-API binding: converts JS types and forwards to `iron_runtime`.
