//! Detections for the audit trail (counts and SHA-256 of values, never the values) and the
//! block message that names types and counts only.

use crate::kind::{Action, Direction, PiiKind};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What was found of one kind in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    /// The kind of value.
    pub kind: PiiKind,
    /// Request or response.
    pub direction: Direction,
    /// How many values were found (repeats included).
    pub count: u32,
    /// What the policy did with them.
    pub action: Action,
    /// Lower-case hex SHA-256 of each distinct value, sorted.
    pub value_sha256: Vec<String>,
}

// Bounds the memory an adversarial body can make us spend on distinct hashes.
const MAX_HASHES_PER_KIND: usize = 256;

#[derive(Debug, Clone, Default)]
struct Entry {
    count: u32,
    action: Option<Action>,
    hashes: BTreeSet<String>,
    labels: BTreeSet<&'static str>,
}

/// Accumulates detections per kind while text is inspected.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    entries: BTreeMap<PiiKind, Entry>,
}

impl Tally {
    /// Records one value of `kind` handled with `action`.
    pub fn record(&mut self, kind: &PiiKind, action: Action, value: &str, label: &'static str) {
        let entry = self.entries.entry(kind.clone()).or_default();
        entry.count = entry.count.saturating_add(1);
        entry.action = Some(entry.action.map_or(action, |a| a.max(action)));
        if entry.hashes.len() < MAX_HASHES_PER_KIND {
            entry.hashes.insert(sha256_hex(value));
        }
        if !label.is_empty() {
            entry.labels.insert(label);
        }
    }

    /// Adds everything from `other`.
    pub fn merge(&mut self, other: &Tally) {
        for (kind, e) in &other.entries {
            let mine = self.entries.entry(kind.clone()).or_default();
            mine.count = mine.count.saturating_add(e.count);
            mine.action = match (mine.action, e.action) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            for h in &e.hashes {
                if mine.hashes.len() < MAX_HASHES_PER_KIND {
                    mine.hashes.insert(h.clone());
                }
            }
            mine.labels.extend(e.labels.iter().copied());
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when any recorded kind's action is `Block`.
    pub fn is_blocked(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.action == Some(Action::Block))
    }

    /// The detections, one per kind.
    pub fn detections(&self, direction: Direction) -> Vec<Detection> {
        self.entries
            .iter()
            .map(|(kind, e)| Detection {
                kind: kind.clone(),
                direction,
                count: e.count,
                action: e.action.unwrap_or(Action::Log),
                value_sha256: e.hashes.iter().cloned().collect(),
            })
            .collect()
    }

    /// The message for a blocked request or response, naming types and counts, never values.
    pub fn block_message(&self, direction: Direction) -> Option<String> {
        let blocked: Vec<(&PiiKind, &Entry)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.action == Some(Action::Block))
            .collect();
        if blocked.is_empty() {
            return None;
        }
        let parts: Vec<String> = blocked
            .iter()
            .map(|(kind, e)| {
                let labels: Vec<&str> = e.labels.iter().copied().collect();
                if labels.is_empty() {
                    format!("{kind} ×{}", e.count)
                } else {
                    format!("{kind} ×{} ({})", e.count, labels.join(", "))
                }
            })
            .collect();
        let settings: Vec<String> = blocked
            .iter()
            .map(|(kind, _)| format!("safety.{}.{kind}", direction.as_str()))
            .collect();
        let (what, it) = match direction {
            Direction::Request => (
                "Request",
                if blocked.len() == 1 && blocked[0].1.count == 1 {
                    "it"
                } else {
                    "them"
                },
            ),
            Direction::Response => ("Response", "it"),
        };
        let fix = match direction {
            Direction::Request => {
                format!("Remove {it} or set {} to 'redact'.", settings.join(" and "))
            }
            Direction::Response => format!(
                "Set {} to 'redact' to let such responses through redacted.",
                settings.join(" and ")
            ),
        };
        Some(format!(
            "{what} blocked by Iron Cage PII policy: {}. {fix}",
            parts.join(", ")
        ))
    }
}

/// Lower-case hex SHA-256 of `value`.
pub fn sha256_hex(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_message_names_types_not_values() {
        let mut t = Tally::default();
        t.record(&PiiKind::Secret, Action::Block, "sk-abc", "OpenAI key");
        t.record(&PiiKind::Email, Action::Log, "a@b.co", "");
        assert_eq!(
            t.block_message(Direction::Request).as_deref(),
            Some("Request blocked by Iron Cage PII policy: secret ×1 (OpenAI key). Remove it or set safety.request.secret to 'redact'.")
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
