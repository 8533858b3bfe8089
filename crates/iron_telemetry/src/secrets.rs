//! Exact-match detection of registered secrets without keeping the secrets themselves.
//!
//! For each secret we keep its length, a rolling hash and its SHA-256. Text is scanned with a
//! Rabin–Karp window per distinct length; a rolling-hash hit is confirmed by SHA-256, so a match is
//! exact while memory holds nothing a log line could leak.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use sha2::{Digest, Sha256};

/// Shorter strings would redact ordinary words; real keys and tokens are far longer.
pub(crate) const MIN_SECRET_LEN: usize = 8;

const BASE: u64 = 0x100_0000_01b3;

/// Registered secrets, grouped by byte length.
#[derive(Debug, Default)]
pub(crate) struct SecretSet {
    by_len: HashMap<usize, LengthGroup>,
}

#[derive(Debug)]
struct LengthGroup {
    /// BASE^(len-1), to remove the byte leaving the window.
    top_power: u64,
    /// One bit per `filter_slot(hash)`: a clear bit rules a window out without a map lookup, which
    /// keeps the scan at a few instructions per byte (every log line and audit row is scanned).
    filter: Box<[u64; FILTER_WORDS]>,
    /// rolling hash → SHA-256 digests of secrets with that hash.
    digests: HashMap<u64, HashSet<[u8; 32]>>,
}

const FILTER_BITS: u32 = 16;
const FILTER_WORDS: usize = (1 << FILTER_BITS) / 64;

/// Bit index for a rolling hash (the multiply mixes all bits into the top ones).
fn filter_slot(h: u64) -> usize {
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_BITS)) as usize
}

fn rolling_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |h, &b| {
        h.wrapping_mul(BASE).wrapping_add(u64::from(b))
    })
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl SecretSet {
    /// Adds one exact byte string; returns false if it is too short to register.
    pub(crate) fn insert(&mut self, secret: &[u8]) -> bool {
        if secret.len() < MIN_SECRET_LEN {
            return false;
        }
        let group = self
            .by_len
            .entry(secret.len())
            .or_insert_with(|| LengthGroup {
                top_power: (1..secret.len()).fold(1u64, |p, _| p.wrapping_mul(BASE)),
                filter: Box::new([0; FILTER_WORDS]),
                digests: HashMap::new(),
            });
        let h = rolling_hash(secret);
        let slot = filter_slot(h);
        group.filter[slot / 64] |= 1 << (slot % 64);
        group.digests.entry(h).or_default().insert(sha256(secret));
        true
    }

    /// True when nothing is registered (lets callers skip the scan).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    /// Byte ranges of `text` that equal a registered secret (may overlap, unsorted).
    pub(crate) fn find(&self, text: &[u8]) -> Vec<Range<usize>> {
        let mut hits = Vec::new();
        for (&len, group) in &self.by_len {
            if text.len() < len {
                continue;
            }
            let mut h = rolling_hash(&text[..len]);
            let mut start = 0;
            loop {
                let slot = filter_slot(h);
                if group.filter[slot / 64] & (1 << (slot % 64)) == 0 {
                    // Not a registered hash: nothing to confirm.
                } else if let Some(digests) = group.digests.get(&h) {
                    if digests.contains(&sha256(&text[start..start + len])) {
                        hits.push(start..start + len);
                    }
                }
                let end = start + len;
                if end >= text.len() {
                    break;
                }
                h = h
                    .wrapping_sub(u64::from(text[start]).wrapping_mul(group.top_power))
                    .wrapping_mul(BASE)
                    .wrapping_add(u64::from(text[end]));
                start += 1;
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_occurrence_inside_longer_text() {
        let mut set = SecretSet::default();
        assert!(set.insert(b"s3cr3t-value"));
        assert!(!set.insert(b"short"));
        let text = b"xx s3cr3t-valuezz and s3cr3t-value";
        let mut hits = set.find(text);
        hits.sort_by_key(|r| r.start);
        assert_eq!(hits, vec![3..15, 22..34]);
        assert!(set.find(b"s3cr3t-valu").is_empty());
        assert!(set.find(b"").is_empty());
    }

    #[test]
    fn same_length_secrets_do_not_shadow_each_other() {
        let mut set = SecretSet::default();
        set.insert(b"aaaaaaaa");
        set.insert(b"bbbbbbbb");
        assert_eq!(set.find(b"bbbbbbbb"), vec![0..8]);
        assert_eq!(set.find(b"aaaaaaaa").len(), 1);
    }
}
