//! IBANs typed in lower or mixed case are found and redacted like upper-case ones, whole or
//! streamed in pieces; lower-case look-alikes (hashes, UUIDs, identifiers, numbers failing the
//! check digits or the country's length) are not.

mod common;

use common::{guard, streamed, whole};
use iron_safety::{
    PiiKind, SafetyEngine, SafetyPolicy, Scanner, StreamRedactor, TextGuard, SCAN_ORDER,
};
use std::sync::Arc;

const IBANS: [&str; 9] = [
    "de89 3704 0044 0532 0130 00",
    "de89370400440532013000",
    "De89 3704 0044 0532 0130 00",
    "gb82 west 1234 5698 7654 32",
    "gb82West12345698765432",
    "fr14 2004 1010 0505 0001 3m02 606",
    "nl91abna0417164300",
    "ie29 aibk 9311 5212 3456 78",
    "Ch93 0076 2011 6238 5295 7",
];

#[test]
fn lower_and_mixed_case_ibans_are_redacted_whole_and_streamed() {
    let guard = guard();
    for iban in IBANS {
        let text = format!("Please pay to {iban} today.");
        assert_eq!(
            whole(&guard, &text),
            "Please pay to [IBAN] today.",
            "{iban}"
        );
        for size in [1, 2, 3, 5] {
            assert_eq!(
                streamed(&guard, &text, size),
                "Please pay to [IBAN] today.",
                "{iban} in pieces of {size}"
            );
        }
    }
    // Glued to a label, as the upper-case form is held: the first group must not flow early.
    let text = "iban=gb82 west 1234 5698 7654 32 ok";
    for size in [1, 2, 4] {
        assert_eq!(
            streamed(&guard, text, size),
            "iban=[IBAN] ok",
            "pieces of {size}"
        );
    }
}

#[test]
fn lower_case_look_alikes_are_not_ibans() {
    let scanner = Scanner::new(&SCAN_ORDER, &[]).expect("scanner");
    let look_alikes = [
        // A git SHA-1 and a short one, both starting with a country code and two digits.
        "commit de45f8a9c0b4e7d1a2b3c4d5e6f708192a3b4c5d fixed it",
        "see de45f8a for the fix",
        // UUIDs, with and without dashes (32 characters: no country's IBAN length).
        "request de305d54-75b4-431b-adb2-eb6b9e546014 failed",
        "request de305d5475b4431badb2eb6b9e546014 failed",
        // The right length for the country, but failing mod-97.
        "span be12ab34cd56ef78 closed",
        "id de12345678901234567890 seen",
        "fr76 3000 6000 0112 3456 7890 188",
        // Identifiers and a valid German IBAN's digits under a country with another length.
        "use the de12_config flag and nl12abcd in cfg",
        "at89 3704 0044 0532 0130 00",
    ];
    for text in look_alikes {
        let found: Vec<_> = scanner
            .scan(text)
            .into_iter()
            .filter(|f| f.kind == PiiKind::Iban)
            .map(|f| text[f.span].to_string())
            .collect();
        assert!(found.is_empty(), "{text}: {found:?}");
    }
}

/// Text sent after each word of `text` is pushed, word by word.
fn sent_per_word(guard: &Arc<TextGuard>, text: &str) -> Vec<String> {
    let mut r = StreamRedactor::new(guard.clone());
    let mut sent = String::new();
    text.split_inclusive(' ')
        .map(|w| {
            sent.push_str(&r.push(w));
            sent.clone()
        })
        .collect()
}

#[test]
fn an_iban_start_is_held_only_when_ibans_are_replaced() {
    let text = "see gb82 west lane for the rest of it ";
    // Redacted: the words that may be an IBAN's first groups wait for the rest.
    let held = sent_per_word(&guard(), text);
    assert!(!held[3].contains("west"), "{:?}", held[3]);
    // Only logged: nothing would change in them, so they flow word by word.
    let policy = SafetyPolicy::from_json_str(r#"{"response":{"default":"redact","iban":"log"}}"#)
        .expect("policy");
    let logged = SafetyEngine::new(&policy).expect("engine").response_guard();
    let flowing = sent_per_word(&logged, text);
    assert!(flowing[3].contains("gb82 west"), "{:?}", flowing[3]);
}
