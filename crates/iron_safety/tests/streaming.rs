//! StreamRedactor: values split across chunks are still redacted, and text before them is
//! released early instead of waiting for the end of the stream.

use iron_safety::{Direction, SafetyEngine, SafetyPolicy, StreamRedactor};

fn redactor() -> StreamRedactor {
    let policy =
        SafetyPolicy::from_json_str(r#"{"response":{"default":"redact"}}"#).expect("policy");
    let engine = SafetyEngine::new(&policy).expect("engine");
    StreamRedactor::new(engine.response_guard())
}

fn run(chunks: &[&str]) -> (Vec<String>, String) {
    let mut r = redactor();
    let mut outs: Vec<String> = chunks.iter().map(|c| r.push(c)).collect();
    outs.push(r.finish());
    let all = outs.concat();
    (outs, all)
}

const LEAD: &str =
    "Hello there, this is a fairly long introduction so that some text can flow early. ";

#[test]
fn card_split_in_two_three_and_one_char_chunks_is_redacted() {
    let text = format!("{LEAD}Card 4111 1111 1111 1111 ok.");
    let expected = format!("{LEAD}Card [CREDIT_CARD] ok.");
    let cut = LEAD.len() + 12;
    let (_, two) = run(&[&text[..cut], &text[cut..]]);
    assert_eq!(two, expected);
    let (_, three) = run(&[&text[..cut - 3], &text[cut - 3..cut + 4], &text[cut + 4..]]);
    assert_eq!(three, expected);
    let singles: Vec<String> = text.chars().map(String::from).collect();
    let refs: Vec<&str> = singles.iter().map(String::as_str).collect();
    let (outs, all) = run(&refs);
    assert_eq!(all, expected);
    // the first word of the lead is released long before the stream ends
    let first_release = outs
        .iter()
        .position(|o| !o.is_empty())
        .expect("some output");
    assert!(
        first_release < LEAD.len(),
        "released at chunk {first_release}"
    );
    assert!(outs.iter().all(|o| !o.contains("4111")));
}

#[test]
fn earlier_text_is_released_before_the_end() {
    let mut r = redactor();
    let first = r.push(LEAD);
    // Everything except the held tail window (cut back to a word start) flows at once.
    assert!(!first.is_empty());
    assert!(LEAD.starts_with(&first));
    assert!(LEAD.len() - first.len() <= iron_safety::WINDOW_BYTES + 16);
    let second = r.push("my mail is jane.doe@exa");
    assert!(!second.contains("jane"));
    let third = r.push("mple.com and more text follows here");
    let rest = r.finish();
    let all = format!("{first}{second}{third}{rest}");
    assert_eq!(
        all,
        format!("{LEAD}my mail is [EMAIL] and more text follows here")
    );
}

#[test]
fn long_key_split_in_many_chunks_is_redacted() {
    let key = "sk-proj-Ab3dEf9hIjK1mNoP2rStU7wXyZ0aBcD4eFgH5iJkL6mNoP8qRsT";
    let text = format!("{LEAD}key={key} end");
    let chunks: Vec<&str> = text
        .as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    let (outs, all) = run(&chunks);
    assert_eq!(all, format!("{LEAD}key=[SECRET] end"));
    assert!(outs.iter().all(|o| !o.contains("Ab3dEf9")));
}

#[test]
fn private_key_is_held_until_end_marker_and_redacted() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1Yz\nQk9sb2Zmb0Jhcg==\n-----END RSA PRIVATE KEY-----";
    let text = format!("{LEAD}here:\n{pem}\nthanks");
    let chunks: Vec<String> = text
        .chars()
        .collect::<Vec<_>>()
        .chunks(7)
        .map(|c| c.iter().collect())
        .collect();
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let (outs, all) = run(&refs);
    assert_eq!(all, format!("{LEAD}here:\n[SECRET]\nthanks"));
    assert!(outs.iter().all(|o| !o.contains("MIIE")));
}

#[test]
fn oversized_private_key_is_replaced_not_leaked() {
    let mut r = redactor();
    let mut out = r.push("start -----BEGIN PRIVATE KEY-----\n");
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MTIzNDU2Nzg5MGFiY2RlZmdo\n";
    for _ in 0..400 {
        out.push_str(&r.push(line));
    }
    out.push_str(&r.push("-----END PRIVATE KEY-----\nafter"));
    out.push_str(&r.finish());
    assert_eq!(out, "start [SECRET]\nafter");
    assert_eq!(r.tally().detections(Direction::Response)[0].count, 1);
}

#[test]
fn ssn_context_before_a_chunk_boundary_still_counts() {
    let text = format!("{LEAD}My SSN is 536 22 1234 thanks");
    let cut = text.find("536").unwrap_or(0);
    let (_, all) = run(&[&text[..cut], &text[cut..]]);
    assert_eq!(all, format!("{LEAD}My SSN is [US_SSN] thanks"));
}

#[test]
fn prose_flows_word_by_word_and_only_digit_groups_are_held() {
    let mut r = redactor();
    assert_eq!(r.push("Hello "), "Hello ");
    assert_eq!(r.push("there, frie"), "there, ");
    assert_eq!(r.push("nd. Pay with 4111 1111 "), "friend. Pay with ");
    let rest = r.push("1111 1111 today");
    assert_eq!(rest, "[CREDIT_CARD] ");
    assert_eq!(r.finish(), "today");
}

fn custom_redactor(pattern: &str, action: &str) -> StreamRedactor {
    let policy = SafetyPolicy::from_value(&serde_json::json!({
        "response": {"default": "off", "name": action},
        "custom": [{"name": "name", "pattern": pattern}],
    }))
    .expect("policy");
    let engine = SafetyEngine::new(&policy).expect("engine");
    StreamRedactor::new(engine.response_guard())
}

#[test]
fn a_custom_pattern_spanning_words_is_held_until_it_completes_or_cannot() {
    for (pattern, expected) in [
        (
            r"(?:Jane|John) (?:Doe|Smith)",
            "Patient [NAME] lives at 221 Baker Street, see you. Jane went home.",
        ),
        (
            r"\d+ [A-Z][a-z]+ (?:Street|Avenue)",
            "Patient Jane Doe lives at [NAME], see you. Jane went home.",
        ),
    ] {
        let text =
            format!("{LEAD}Patient Jane Doe lives at 221 Baker Street, see you. Jane went home.");
        let whole = {
            let mut r = custom_redactor(pattern, "redact");
            let mut out = r.push(&text);
            out.push_str(&r.finish());
            out
        };
        let mut r = custom_redactor(pattern, "redact");
        let mut outs: Vec<String> = text.split_inclusive(' ').map(|w| r.push(w)).collect();
        outs.push(r.finish());
        assert_eq!(outs.concat(), whole, "{pattern}: word by word = whole text");
        assert_eq!(whole, format!("{LEAD}{expected}"));
        // Ordinary words still flow before the end; "Jane" that is not followed by a surname is released.
        assert!(outs.iter().position(|o| !o.is_empty()).expect("output") < 10);
        assert!(outs.concat().ends_with("Jane went home."));
    }
    // Chunk by chunk, one character at a time, block mode: nothing of the value goes out first.
    let text = format!("{LEAD}Patient Jane Doe lives here.");
    let mut r = custom_redactor(r"(?:Jane|John) (?:Doe|Smith)", "block");
    let mut sent = String::new();
    for c in text.chars() {
        sent.push_str(&r.push(&c.to_string()));
        if r.is_blocked() {
            break;
        }
    }
    assert!(r.is_blocked());
    assert!(
        !sent.contains("Jane"),
        "released before the block: {sent:?}"
    );
}

#[test]
fn a_jwt_at_the_end_of_a_long_run_is_not_released_in_part() {
    // Minified JSON longer than the run cap, then a JWT arriving 8 bytes at a time: a JWT only
    // matches once its second dot is there, so its header and payload must be held until then.
    let payload = "eyJzdWIiOiIxMjM0NTY3ODkwIiwiZW1haWwiOiJqYW5lLmRvZUBleGFtcGxlLmNvbSIsIm5hbWUiOiJKYW5lIERvZSJ9";
    let jwt = format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
    let rows: Vec<String> = (0..400)
        .map(|i| format!(r#"{{"id":{i},"v":"abcdef"}}"#))
        .collect();
    let text = format!(r#"{{"rows":[{}],"api_key":"{jwt}"}}"#, rows.join(","));
    assert!(text.len() > iron_safety::RUN_CAP_BYTES);
    let chunks: Vec<&str> = text
        .as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    let (outs, all) = run(&chunks);
    assert!(
        all.ends_with(r#""api_key":"[SECRET]"}"#),
        "{}",
        &all[all.len() - 60..]
    );
    assert!(
        outs.iter().all(|o| !o.contains(&payload[..20])),
        "payload leaked"
    );
    // The run itself still flows while it grows: most of it is out before the key arrives.
    let before_key: usize = outs[..chunks.len() - jwt.len() / 8 - 2]
        .iter()
        .map(String::len)
        .sum();
    assert!(
        before_key > text.len() / 2,
        "released {before_key} of {}",
        text.len()
    );
}

/// Scripts written without spaces (Chinese, Japanese, Thai) flow as they arrive: no value is made
/// of their characters, so a run of them is not held as if it could still become a key or an
/// e-mail. An address glued to such text is still held until complete and redacted.
#[test]
fn text_without_spaces_flows_and_values_glued_to_it_are_still_held() {
    let mut r = redactor();
    let mut out = String::new();
    for piece in ["你好，", "我是一个", "助手。今天", "天气很好。"] {
        let released = r.push(piece);
        assert!(!released.is_empty(), "{piece:?} held back");
        out.push_str(&released);
    }
    assert_eq!(out, "你好，我是一个助手。今天天气很好。");
    let held = r.push("请写信给jane.doe@exa");
    assert_eq!(held, "请写信给");
    out.push_str(&held);
    out.push_str(&r.push("mple.com谢谢"));
    out.push_str(&r.finish());
    assert_eq!(out, "你好，我是一个助手。今天天气很好。请写信给[EMAIL]谢谢");
}

#[test]
fn an_internationalised_address_split_across_pieces_is_held_whole() {
    // Before, a Latin or Cyrillic letter ended the held run like any non-ASCII character: the
    // stream released `jörg.mü` before `ller@bücher.de` arrived, and the address itself, with a
    // non-ASCII domain, was not found at all.
    let (outs, all) = run(&[LEAD, "Mail an jörg.mü", "ller@bü", "cher.de, danke"]);
    assert_eq!(all, format!("{LEAD}Mail an [EMAIL], danke"));
    assert!(outs
        .iter()
        .all(|o| !o.contains("jörg") && !o.contains("mü")));
    let (outs, all) = run(&["пишите: иван.пе", "тров@пример.р", "ф — спасибо"]);
    assert_eq!(all, "пишите: [EMAIL] — спасибо");
    assert!(outs.iter().all(|o| !o.contains("иван")));
    // Words in those scripts still flow one by one.
    let mut r = redactor();
    assert_eq!(r.push("Grüße aus München und "), "Grüße aus München und ");
}
