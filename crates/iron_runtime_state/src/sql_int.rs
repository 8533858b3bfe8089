//! Conversions between Rust unsigned integers and SQLite's signed 64-bit INTEGER.
//!
//! Values beyond `i64::MAX` cannot be stored; they saturate rather than wrap, and negative values read
//! back from a hand-edited file become 0, so no input can panic or turn a cost negative.

/// u64 → SQLite INTEGER, saturating at `i64::MAX`.
pub(crate) fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// SQLite INTEGER → u64, negative values read as 0.
pub(crate) fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Optional variant of [`to_sql`].
pub(crate) fn opt_to_sql(v: Option<u64>) -> Option<i64> {
    v.map(to_sql)
}

/// Optional variant of [`from_sql`].
pub(crate) fn opt_from_sql(v: Option<i64>) -> Option<u64> {
    v.map(from_sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_wrapping() {
        assert_eq!(to_sql(u64::MAX), i64::MAX);
        assert_eq!(to_sql(42), 42);
        assert_eq!(from_sql(-5), 0);
        assert_eq!(from_sql(7), 7);
        assert_eq!(opt_to_sql(None), None);
        assert_eq!(opt_from_sql(Some(-1)), Some(0));
    }
}
