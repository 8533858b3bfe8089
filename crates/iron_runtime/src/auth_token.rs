//! Local tokens minted when a router runs with a static provider key and no IC token.

use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh `ic_local_…` token: 256 bits from the OS-seeded hasher, time, pid and address entropy.
pub fn mint() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = Sha256::new();
    for _ in 0..4 {
        let mut s = RandomState::new().build_hasher();
        s.write_u64(0x1c);
        h.update(s.finish().to_le_bytes());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let local = 0u8;
    h.update((&local as *const u8 as usize).to_le_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(24).map(|b| format!("{b:02x}")).collect();
    format!("ic_local_{hex}")
}
