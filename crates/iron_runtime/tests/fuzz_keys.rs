//! Property tests (fuzzing) of the key-server response parser: any bytes never panic, an accepted
//! answer always has a usable key, and no accepted `base_url` sends the key over plain http to a
//! host other than loopback. `PROPTEST_CASES` raises the case count (scripts/fuzz-long.sh).

mod fuzz_config;

use fuzz_config::config;
use iron_runtime::config::is_loopback_host;
use iron_runtime::keys::parse_key_response;
use proptest::prelude::*;
use serde_json::{json, Value};

/// URL-like strings: schemes, hosts and tricks (credentials, backslashes, tabs, odd brackets).
fn url() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec![
        "https://",
        "http://",
        "HTTP://",
        "HtTpS://",
        "ftp://",
        "file://",
        "ws://",
        "http:",
        "https:/",
        "http:\\\\",
        " http://",
        "\thttps://",
        "",
        "javascript:",
    ]);
    let host = prop::sample::select(vec![
        "127.0.0.1",
        "localhost",
        "LOCALHOST",
        "[::1]",
        "127.1",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "2130706433",
        "127.0.0.1.nip.io",
        "localhost.evil.com",
        "evil.com",
        "api.openai.com",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "169.254.169.254",
        "[::]",
        "10.0.0.1",
        "127.0.0.1@evil.com",
        "evil.com#@127.0.0.1",
        "evil.com\\@127.0.0.1",
        "127.0.0.1:80@evil.com",
        "user:pw@127.0.0.1",
        "evil.com%2f127.0.0.1",
        "127.0.0.1%00.evil.com",
        "",
    ]);
    let tail = prop::sample::select(vec![
        "",
        "/",
        ":8080",
        ":8080/",
        "/v1",
        "?x=1",
        "#frag",
        ":0",
        ":99999",
        "/..",
        "\t",
        "\n",
        "\u{0}",
        "@evil.com",
        ":@evil.com",
        "\\",
        " ",
    ]);
    prop_oneof![
        4 => (scheme, host, tail).prop_map(|(s, h, t)| format!("{s}{h}{t}")),
        1 => ".{0,40}",
    ]
}

fn key() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "(sk-|sk-ant-|sk-proj-)?[A-Za-z0-9_-]{1,24}".prop_map(Value::String),
        1 => ".{0,20}".prop_map(Value::String),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(|n| json!(n)),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let provider = prop::option::of(prop::sample::select(vec![
        json!("openai"),
        json!("anthropic"),
        json!("OpenAI"),
        json!("gemini"),
        json!(""),
        json!(5),
        Value::Null,
    ]));
    let object =
        (provider, prop::option::of(key()), prop::option::of(url())).prop_map(|(p, k, u)| {
            let mut m = serde_json::Map::new();
            if let Some(p) = p {
                m.insert("provider".into(), p);
            }
            if let Some(k) = k {
                m.insert("api_key".into(), k);
            }
            if let Some(u) = u {
                m.insert("base_url".into(), Value::String(u));
            }
            serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
        });
    prop_oneof![
        4 => object,
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// The URL the router will call for a chat request, built as forward.rs builds it.
fn upstream(base_url: &str) -> String {
    iron_runtime::forward::upstream_url(base_url, "/v1/chat/completions", None)
}

/// The key may only travel over https, or plain http to loopback, and never with credentials in
/// the URL. A URL that does not parse sends nothing, so it is safe (but see the usability test).
fn upstream_is_safe(base_url: &str) -> Result<(), String> {
    let full = upstream(base_url);
    let Ok(u) = reqwest::Url::parse(&full) else {
        return Ok(());
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(u.host_str().unwrap_or("")) => Ok(()),
        s => Err(format!("{full:?} is {s} to {:?}", u.host_str())),
    }?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{full:?} carries credentials"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_answer_is_parsed_without_panic_and_accepted_ones_are_safe(b in body()) {
        if let Ok(k) = parse_key_response(&b) {
            let secret = k.expose();
            prop_assert!(!secret.trim().is_empty());
            prop_assert!(!secret.chars().any(|c| c.is_control() || c == ' '));
            // Debug output never shows the key (short keys may match other text by chance).
            let debug = format!("{k:?}");
            prop_assert!(secret.len() < 8 || !debug.contains(secret), "{}", debug);
            if let Err(e) = upstream_is_safe(&k.base_url) {
                return Err(TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn plain_http_is_accepted_only_for_loopback(u in url()) {
        let b = serde_json::to_vec(&json!({"provider":"openai","api_key":"sk-x","base_url":u}))
            .unwrap_or_default();
        match parse_key_response(&b) {
            Ok(k) => {
                if let Err(e) = upstream_is_safe(&k.base_url) {
                    return Err(TestCaseError::fail(e));
                }
            }
            Err(e) => prop_assert!(!e.0.contains("sk-x"), "error names the key: {}", e.0),
        }
    }
}

#[test]
fn tricky_base_urls_are_judged_by_their_real_host() {
    let parse = |u: &str| {
        parse_key_response(
            &serde_json::to_vec(&json!({"provider":"openai","api_key":"sk-x","base_url":u}))
                .expect("json"),
        )
    };
    for bad in [
        "http://127.0.0.1@evil.com",
        "http://evil.com\\@127.0.0.1",
        "http://127.0.0.1.nip.io",
        "http://169.254.169.254",
        "http://0.0.0.0:8080",
        "ftp://127.0.0.1",
        "http://user:pw@127.0.0.1",
        "https://user:pw@api.openai.com",
    ] {
        assert!(parse(bad).is_err(), "{bad} accepted");
    }
    for good in [
        "http://127.0.0.1:8080/",
        "http://[::1]:9",
        "http://localhost:1",
        "https://api.openai.com/",
    ] {
        let k = parse(good).expect(good);
        assert!(upstream_is_safe(&k.base_url).is_ok(), "{good}");
    }
}

/// A base_url the URL parser accepts only after trimming control characters (`\0`, `\n` at the
/// end) was once kept raw, so every call built an unparseable URL. An accepted base_url must give
/// a URL that parses, to the host the key server named.
#[test]
fn an_accepted_base_url_gives_a_usable_upstream_url() {
    for raw in [
        "https://127.0.0.1\0",
        "https://api.openai.com\n",
        "http://127.0.0.1:9 ",
    ] {
        let body =
            serde_json::to_vec(&json!({"provider":"openai","api_key":"sk-x","base_url":raw}))
                .expect("json");
        if let Ok(k) = parse_key_response(&body) {
            let full = upstream(&k.base_url);
            let u = reqwest::Url::parse(&full)
                .unwrap_or_else(|e| panic!("{raw:?} accepted but {full:?} does not parse: {e}"));
            assert_eq!(u.path(), "/v1/chat/completions", "{raw:?}");
        }
    }
}
