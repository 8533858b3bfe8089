//! Shared by the fuzz targets: `PROPTEST_CASES` overrides each target's case count (see
//! `scripts/fuzz-long.sh`); failing inputs are kept as regression cases in the tests, not in files.

use proptest::prelude::ProptestConfig;

pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
