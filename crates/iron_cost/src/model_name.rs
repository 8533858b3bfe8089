//! Model-name normalisation: case, provider prefixes and date / `-latest` suffixes.

/// Lower-cases, trims, and drops a leading `openai/` or `anthropic/` routing prefix.
pub fn normalize(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    for prefix in ["openai/", "anthropic/"] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    lower
}

/// The name without one trailing snapshot marker (`-20250929`, `-2024-08-06`, `@20250929`,
/// `-latest`), or `None` when there is none. Bare 4-digit suffixes (`-0613`) are not stripped:
/// they name distinct, differently priced snapshots and the data lists them explicitly.
pub fn strip_snapshot_suffix(name: &str) -> Option<&str> {
    if let Some(base) = name.strip_suffix("-latest") {
        return non_empty(base);
    }
    let bytes = name.as_bytes();
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    // -YYYY-MM-DD
    if bytes.len() > 11 {
        let tail = &bytes[bytes.len() - 11..];
        if tail[0] == b'-'
            && all_digits(&tail[1..5])
            && tail[5] == b'-'
            && all_digits(&tail[6..8])
            && tail[8] == b'-'
            && all_digits(&tail[9..11])
        {
            return non_empty(&name[..name.len() - 11]);
        }
    }
    // -YYYYMMDD or @YYYYMMDD
    if bytes.len() > 9 {
        let tail = &bytes[bytes.len() - 9..];
        if (tail[0] == b'-' || tail[0] == b'@') && all_digits(&tail[1..]) && tail[1..3] == *b"20" {
            return non_empty(&name[..name.len() - 9]);
        }
    }
    None
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_handles_case_space_and_routing_prefix() {
        assert_eq!(normalize("  GPT-4o "), "gpt-4o");
        assert_eq!(
            normalize("anthropic/Claude-Sonnet-4-5"),
            "claude-sonnet-4-5"
        );
    }

    #[test]
    fn strips_each_snapshot_form_once() {
        assert_eq!(strip_snapshot_suffix("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(
            strip_snapshot_suffix("claude-sonnet-4-5-20250929"),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            strip_snapshot_suffix("claude-sonnet-4-5@20250929"),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            strip_snapshot_suffix("claude-3-5-haiku-latest"),
            Some("claude-3-5-haiku")
        );
        assert_eq!(strip_snapshot_suffix("gpt-4-0613"), None);
        assert_eq!(strip_snapshot_suffix("gpt-4o-mini"), None);
        assert_eq!(strip_snapshot_suffix("-latest"), None);
        assert_eq!(strip_snapshot_suffix("é-2024-08-06"), Some("é"));
        assert_eq!(strip_snapshot_suffix("éééééééééé"), None);
    }
}
