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
    /// Records one value of `kind` handled with `action`, by its digest (see [`DigestKey`]).
    pub fn record(&mut self, kind: &PiiKind, action: Action, digest: String, label: &'static str) {
        let entry = self.entries.entry(kind.clone()).or_default();
        entry.count = entry.count.saturating_add(1);
        entry.action = Some(entry.action.map_or(action, |a| a.max(action)));
        if entry.hashes.len() < MAX_HASHES_PER_KIND {
            entry.hashes.insert(digest);
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

/// The key of the digests that stand for values in detections, events and the audit trail:
/// HMAC-SHA256, so a digest cannot be reversed by hashing guesses (a card number's bank prefix and
/// last four leave a million candidates: an unkeyed SHA-256 gave it back in under a second).
/// Equal values give equal digests under one key: with `safety.digestKey` across routers and
/// restarts, else within one router (a random key made when it starts).
#[derive(Clone)]
pub struct DigestKey(ring::hmac::Key);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    /// A key from a secret the user keeps (`safety.digestKey`).
    pub fn from_secret(secret: &str) -> DigestKey {
        DigestKey(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            secret.as_bytes(),
        ))
    }

    /// A fresh key from the operating system's random source.
    pub fn random() -> DigestKey {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the operating system's random source failed");
        DigestKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
    }

    /// Lower-case hex HMAC-SHA256 of `value`.
    pub fn digest(&self, value: &str) -> String {
        hex(ring::hmac::sign(&self.0, value.as_bytes()).as_ref())
    }
}

/// [`DigestKey::from_secret`]`(secret).digest(value)`: what a detection of `value` reports under
/// `safety.digestKey: secret` (to look a known value up in the audit trail).
pub fn value_digest(secret: &str, value: &str) -> String {
    DigestKey::from_secret(secret).digest(value)
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
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
        t.record(&PiiKind::Secret, Action::Block, "d1".into(), "OpenAI key");
        t.record(&PiiKind::Email, Action::Log, "d2".into(), "");
        assert_eq!(
            t.block_message(Direction::Request).as_deref(),
            Some("Request blocked by Iron Cage PII policy: secret ×1 (OpenAI key). Remove it or set safety.request.secret to 'redact'.")
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digests_are_keyed() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            value_digest("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let (a, b) = (DigestKey::random(), DigestKey::random());
        assert_eq!(a.digest("4111111111111111"), a.digest("4111111111111111"));
        assert_ne!(a.digest("4111111111111111"), b.digest("4111111111111111"));
        assert_ne!(a.digest("abc"), sha256_hex("abc"));
    }
}
