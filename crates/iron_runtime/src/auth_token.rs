//! Local tokens minted when a router runs with a static provider key and no IC token.

use ring::rand::{SecureRandom, SystemRandom};

/// A fresh `ic_local_…` token: 192 bits from the operating system's random source.
pub fn mint() -> String {
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source failed");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ic_local_{hex}")
}
