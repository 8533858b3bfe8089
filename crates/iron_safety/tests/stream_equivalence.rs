//! Streaming redaction gives exactly the same text as redacting the whole answer at once, however
//! the answer is cut: every labelled corpus line (positives and look-alikes) is streamed in pieces
//! of 1, 2, 3, 5 and 7 characters and compared with the whole-text result.

mod corpus_lines;

mod common;

use common::{guard, streamed, whole};
use iron_safety::{SafetyEngine, SafetyPolicy};

#[test]
fn every_corpus_line_streams_to_the_same_redaction_as_the_whole_text() {
    let guard = guard();
    let mut lines = 0;
    let mut mismatches = Vec::new();
    for l in corpus_lines::plain_lines() {
        let text = format!("Some lead text here. {l} and then the end.");
        lines += 1;
        let expected = whole(&guard, &text);
        for size in [1, 2, 3, 5, 7] {
            let got = streamed(&guard, &text, size);
            if got != expected {
                mismatches.push(format!("{size}: {got:?} != {expected:?}"));
            }
        }
    }
    assert!(lines > 300, "corpus lines read: {lines}");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn custom_patterns_spanning_words_stream_like_the_whole_text_beside_every_built_in_kind() {
    let policy = SafetyPolicy::from_value(&serde_json::json!({
        "response": {"default": "redact"},
        "custom": [
            {"name": "patient", "pattern": "(?:Jane|John) (?:Doe|Smith)"},
            {"name": "address", "pattern": "\\d+ [A-Z][a-z]+ (?:Street|Avenue)"},
        ],
    }))
    .expect("policy");
    let guard = SafetyEngine::new(&policy).expect("engine").response_guard();
    let mut mismatches = Vec::new();
    for l in corpus_lines::plain_lines() {
        let text = format!("Dear John Smith, {l} and Jane Doe at 12 Main Street, Jane.");
        let expected = whole(&guard, &text);
        assert!(
            expected.contains("[PATIENT]") && expected.contains("[ADDRESS]"),
            "{expected}"
        );
        for size in [1, 2, 3, 5, 7] {
            let got = streamed(&guard, &text, size);
            if got != expected {
                mismatches.push(format!("{size}: {got:?} != {expected:?}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn groups_glued_to_labels_or_made_of_letters_are_held_whole() {
    // Regressions: the first group used to flow before the value was complete ("GB82 WEST [IBAN]",
    // "card:4111 [CREDIT_CARD]", "+1 [PHONE]").
    let guard = guard();
    let cases = [
        (
            "Pay to GB82 WEST 1234 5698 7654 32 today.",
            "Pay to [IBAN] today.",
        ),
        (
            "Pay to IE29 AIBK 9311 5212 3456 78 today.",
            "Pay to [IBAN] today.",
        ),
        ("card:4111 1111 1111 1111 ok", "card:[CREDIT_CARD] ok"),
        ("iban=DE89 3704 0044 0532 0130 00 ok", "iban=[IBAN] ok"),
        ("call +1 (415) 555-2671 ext 2", "call [PHONE] ext 2"),
    ];
    for (text, expected) in cases {
        for size in [1, 2, 4] {
            assert_eq!(
                streamed(&guard, text, size),
                expected,
                "{text} in pieces of {size}"
            );
        }
    }
}

#[test]
fn internationalised_and_glued_addresses_stream_like_the_whole_text() {
    // Addresses in Latin, Greek and Cyrillic letters, and words glued to them in front or behind,
    // which the whole-text scan cuts off: a stream split anywhere must give the same text.
    let guard = guard();
    let texts = [
        "Mail an jörg.müller@bücher.de, danke und Grüße aus München",
        "пишите: иван.петров@пример.рф — спасибо",
        "Γράψτε στο νίκος@παράδειγμα.ελ τώρα",
        "liên hệ nguyễn@ví-dụ.vn nhé",
        "Хм..ivan@mail.ru и всё",
        "Write to...jane@example.com today",
        "почтыjane@example.com ok",
        "ivan@mail.ru.Спасибо за помощь",
        "jane@example.comПривет.Как дела",
        "请联系jane@example.com。谢谢",
        "Straße.Nummer.Zwölf.Hausnummer.Einhundertdreiundzwanzig.Erdgeschoss.jane@example.com fertig",
        "card 4111111111111111..jane@example.com ok",
        "write иван2000@mail.ru or ivan@mail.пример.рф now",
    ];
    for text in texts {
        let expected = whole(&guard, text);
        assert!(expected.contains("[EMAIL]"), "{text}: {expected}");
        for size in 1..=9 {
            assert_eq!(
                streamed(&guard, text, size),
                expected,
                "{text} in pieces of {size}"
            );
        }
    }
}

#[test]
fn keys_after_a_url_escape_or_glued_to_a_word_stream_like_the_whole_text() {
    // A token after `%3D` or `%20` (no word boundary there), and a prefixed key glued to the word
    // before it: found by the whole-text scan, and so by a stream split anywhere.
    let guard = guard();
    let key = "sk-proj-Xa9dK2LmQ7vB3nR8tY1wZ5cF6gH0jP4sU";
    let texts = [
        format!("GET /v1/models?api_key%3D{key}&limit=2 done"),
        format!("header Authorization%3A%20Bearer%20{key} sent"),
        format!("see example.com{key} now"),
        "token%3DeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWJ5dGVz&x=1 ok".to_string(),
    ];
    for text in &texts {
        let expected = whole(&guard, text);
        assert!(
            expected.contains("[SECRET]")
                && !expected.contains("Xa9dK2")
                && !expected.contains("eyJzdWIi"),
            "{text}: {expected}"
        );
        for size in 1..=9 {
            assert_eq!(
                streamed(&guard, text, size),
                expected,
                "{text} in pieces of {size}"
            );
        }
    }
}
