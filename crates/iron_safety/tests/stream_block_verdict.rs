//! A streamed answer is blocked exactly when the whole answer would be: digits held back at the
//! end of the text may still grow into a longer number that is no card, IBAN, phone number or
//! SSN, so they decide nothing until no more text can change them; a real value is still blocked
//! before any of it is sent.

use iron_safety::{SafetyEngine, SafetyPolicy, StreamRedactor, Tally, TextGuard};
use std::sync::Arc;

/// The response guard of a policy that blocks `kind`.
fn blocking(kind: &str) -> Arc<TextGuard> {
    let policy = SafetyPolicy::from_json_str(&format!(r#"{{"response":{{"{kind}":"block"}}}}"#))
        .expect("policy");
    SafetyEngine::new(&policy).expect("engine").response_guard()
}

/// The ways an answer arrives: word by word (as models stream), 1 byte and 3 bytes at a time.
fn cuts(text: &str) -> Vec<(&'static str, Vec<String>)> {
    let bytes = |n: usize| -> Vec<String> {
        text.as_bytes()
            .chunks(n)
            .map(|c| String::from_utf8(c.to_vec()).expect("ASCII text"))
            .collect()
    };
    vec![
        (
            "word by word",
            text.split_inclusive(' ').map(String::from).collect(),
        ),
        ("1 byte", bytes(1)),
        ("3 bytes", bytes(3)),
    ]
}

/// What a client receives: the text of every piece up to the one after which the stream is
/// blocked (that piece's text is dropped, as the SSE filter drops its event), and whether it was.
fn stream(guard: &Arc<TextGuard>, pieces: &[String]) -> (String, bool) {
    let mut r = StreamRedactor::new(guard.clone());
    let mut sent = String::new();
    for p in pieces {
        let out = r.push(p);
        if r.is_blocked() {
            return (sent, true);
        }
        sent.push_str(&out);
    }
    let out = r.finish();
    if r.is_blocked() {
        return (sent, true);
    }
    sent.push_str(&out);
    (sent, false)
}

fn whole_blocks(guard: &TextGuard, text: &str) -> bool {
    let mut tally = Tally::default();
    guard.process(text, &mut tally);
    tally.is_blocked()
}

/// Texts whose held tail looks like a value of `kind` for a moment, though the whole text holds none.
const LOOK_ALIKES: &[(&str, &str)] = &[
    (
        "creditCard",
        "Account 4111 1111 1111 1111 1234 5678 9012 is a long reference",
    ),
    (
        "creditCard",
        "Account 4111 1111 1111 1111 2 is a long reference",
    ),
    (
        "creditCard",
        "Order 4111-1111-1111-1111-1234-5678-9012 is a long reference",
    ),
    (
        "iban",
        "Ref DE89 3704 0044 0532 0130 0012 3456 is a long reference",
    ),
    (
        "iban",
        "Ref GB82 WEST 1234 5698 7654 3210 99 is a long reference",
    ),
    (
        "phone",
        "Ref +44 20 7946 0958 1234 5678 9999 is a long reference",
    ),
    ("phone", "Ref (415) 555-2671 2345 is a long reference"),
    ("phone", "Ref 415 555 2671 99 is a long reference"),
    ("phone", "Ref 020 7946 0958 1234 is a long reference"),
    ("phone", "Ref 01 23 45 67 89 12 is a long reference"),
    ("usSsn", "My SSN 536 22 1234 5678 is not one"),
    ("usSsn", "Ref 536-22-1234-5678 is not one"),
];

/// The same values where they end (text before, value, text after): blocked whole, and so streamed.
const VALUES: &[(&str, &str, &str, &str)] = &[
    (
        "creditCard",
        "Account ",
        "4111 1111 1111 1111",
        " is a card, more words follow",
    ),
    (
        "iban",
        "Ref ",
        "DE89 3704 0044 0532 0130 00",
        " is an IBAN, more words follow",
    ),
    (
        "iban",
        "Ref ",
        "GB82 WEST 1234 5698 7654 32",
        " is an IBAN, more words follow",
    ),
    (
        "phone",
        "Ref ",
        "+44 20 7946 0958",
        " is a phone, more words follow",
    ),
    (
        "phone",
        "Ref ",
        "(415) 555-2671",
        " is a phone, more words follow",
    ),
    (
        "phone",
        "Ref ",
        "01 23 45 67 89",
        " is a phone, more words follow",
    ),
    (
        "usSsn",
        "My SSN ",
        "536 22 1234",
        " is mine, more words follow",
    ),
    (
        "usSsn",
        "Ref ",
        "536-22-1234",
        " is an SSN, more words follow",
    ),
];

#[test]
fn a_long_number_that_only_begins_like_a_value_is_not_blocked_and_flows_unchanged() {
    let mut wrong = Vec::new();
    for (kind, text) in LOOK_ALIKES {
        let guard = blocking(kind);
        assert!(
            !whole_blocks(&guard, text),
            "{kind}: the whole text is clean: {text}"
        );
        for (how, pieces) in cuts(text) {
            let (sent, blocked) = stream(&guard, &pieces);
            if blocked || sent != *text {
                wrong.push(format!("{kind} {how}: blocked={blocked} sent={sent:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_real_value_followed_by_more_words_is_blocked_before_any_of_it_is_sent() {
    for (kind, before, value, after) in VALUES {
        let guard = blocking(kind);
        let text = format!("{before}{value}{after}");
        assert!(
            whole_blocks(&guard, &text),
            "{kind}: the whole text blocks: {text}"
        );
        for (how, pieces) in cuts(&text) {
            let (sent, blocked) = stream(&guard, &pieces);
            assert!(blocked, "{kind} {how}: not blocked, sent {sent:?}");
            // Only text before the value went out: none of its characters, nothing after it.
            assert!(before.starts_with(&sent), "{kind} {how}: sent {sent:?}");
        }
    }
}

#[test]
fn a_value_still_held_when_the_stream_breaks_off_is_reported_but_does_not_block() {
    let guard = blocking("creditCard");
    let mut r = StreamRedactor::new(guard.clone());
    let mut sent = String::new();
    for word in "Your card is 4111 1111 1111 1111".split_inclusive(' ') {
        sent.push_str(&r.push(word));
    }
    // The provider's stream ends here without its end (broken, timed out, stopped): the digits
    // were never sent and nothing was decided, but the audit shows what the provider produced.
    assert!(!sent.contains("4111"), "{sent}");
    assert!(!r.is_blocked());
    let held = r.tally().detections(iron_safety::Direction::Response);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].kind, iron_safety::PiiKind::CreditCard);
    assert_eq!(held[0].action, iron_safety::Action::Block);
    // More digits turn it into a reference that is no card: the held finding goes away.
    r.push(" 1234 5678 9012");
    assert!(r
        .tally()
        .detections(iron_safety::Direction::Response)
        .is_empty());
}

#[test]
fn a_key_held_in_a_run_that_is_still_growing_is_reported_while_held() {
    // Pieces that release nothing are not scanned as they come (the run is scanned once it can
    // go): what is held must be reported all the same if the stream breaks off here.
    let guard = blocking("secret");
    let mut r = StreamRedactor::new(guard.clone());
    let mut sent = r.push("The token is ");
    let key = "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3";
    for piece in key.as_bytes().chunks(4) {
        sent.push_str(&r.push(std::str::from_utf8(piece).expect("ASCII")));
        assert!(!sent.contains("sk-"), "{sent}");
    }
    assert_eq!(r.held(), key);
    let held = r.tally().detections(iron_safety::Direction::Response);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].kind, iron_safety::PiiKind::Secret);
    assert!(!r.is_blocked());
    // The run ends: now it is scanned, released as its placeholder, and blocks.
    sent.push_str(&r.push(" and more"));
    assert!(r.is_blocked());
    assert!(!sent.contains("Ab3dE5"), "{sent}");
}
