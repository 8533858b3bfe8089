//! The request's JSON tree for the policies, refusing any object that repeats a key.
//!
//! `serde_json` keeps the last of two equal keys. The policies read that tree, but an unchanged body
//! is forwarded as the original bytes, and a provider whose parser keeps the *first* copy would read
//! text the PII policy never saw (`{"content": "<PII>", "content": "hello"}`). So the tree the
//! policies use is built with a visitor that stops at a repeated key ([`iron_safety::unique`]); the
//! caller then treats the body as unreadable (refused while a policy needs to read it).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// `bytes` as a JSON value, or an error if it is not JSON or any object in it repeats a key.
///
/// A string escape of half a surrogate pair (`"\ud83d"`, what `JSON.stringify` writes for a
/// string cut inside an emoji, as agents do when they shorten history) is read as U+FFFD: JSON
/// allows it, JavaScript and Python accept it, `serde_json` refuses it.
pub fn parse_unique(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    parse_unique_masked(bytes).map(|(v, _)| v)
}

/// [`parse_unique`], with the bytes that were read when they are not `bytes` (half surrogate
/// pairs written as `\ufffd`): what a policy checked is what must be forwarded.
pub fn parse_unique_masked(bytes: &[u8]) -> Result<(Value, Option<Vec<u8>>), serde_json::Error> {
    match parse_strict(bytes) {
        Err(e) => match mask_lone_surrogates(bytes) {
            Some(masked) => parse_strict(&masked).map(|v| (v, Some(masked))),
            None => Err(e),
        },
        Ok(v) => Ok((v, None)),
    }
}

fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    iron_safety::unique::from_slice(bytes)
}

/// `bytes` with every `\uXXXX` escape of a surrogate half not paired with its other half written
/// as `\ufffd` (the same length), or `None` when there is none.
fn mask_lone_surrogates(bytes: &[u8]) -> Option<Vec<u8>> {
    let unit = |at: usize| -> Option<u16> {
        let hex = bytes.get(at..at + 6)?;
        if hex[0] != b'\\' || hex[1] != b'u' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    };
    let mut out: Option<Vec<u8>> = None;
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                in_string = !in_string;
                i += 1;
            }
            b'\\' if in_string => match unit(i) {
                Some(0xD800..=0xDBFF) => {
                    if matches!(unit(i + 6), Some(0xDC00..=0xDFFF)) {
                        i += 12;
                    } else {
                        out.get_or_insert_with(|| bytes.to_vec())[i..i + 6]
                            .copy_from_slice(b"\\ufffd");
                        i += 6;
                    }
                }
                Some(0xDC00..=0xDFFF) => {
                    out.get_or_insert_with(|| bytes.to_vec())[i..i + 6].copy_from_slice(b"\\ufffd");
                    i += 6;
                }
                Some(_) => i += 6,
                None => i += 2,
            },
            _ => i += 1,
        }
    }
    out
}

/// The original `body` with the strings of `redacted` (its tree after redaction changed some
/// strings) written in: members stay in the document's order. `serde_json`'s map sorts keys, and
/// re-encoding the tree reordered a JSON schema's properties, which is the order of a structured
/// answer's fields (a `reasoning` field written before `answer` on purpose came after it) and
/// changed the bytes a prompt cache compares. Only a redacted body pays for this second parse.
pub fn reencode_in_order(body: &[u8], redacted: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut ordered: Ordered = serde_json::from_slice(body)?;
    ordered.overlay(redacted);
    let mut out = Vec::with_capacity(body.len() + 256);
    serde_json::to_writer(&mut out, &ordered)?;
    Ok(out)
}

/// `body`, a JSON object, with its top-level members named in `drop` left out and `name: value`
/// written first; the other members keep their document order and their own bytes (a number
/// beyond 64 bits stays as written: read into a tree it would become a float).
pub fn with_first_member(
    body: &[u8],
    drop: &[&str],
    name: &str,
    value: Value,
) -> Result<Vec<u8>, serde_json::Error> {
    let RawMembers(members) = serde_json::from_slice(body)?;
    let mut bytes = Vec::with_capacity(body.len() + 40);
    bytes.push(b'{');
    serde_json::to_writer(&mut bytes, name)?;
    bytes.push(b':');
    serde_json::to_writer(&mut bytes, &value)?;
    for (k, v) in members.iter().filter(|(k, _)| !drop.contains(&k.as_str())) {
        bytes.push(b',');
        serde_json::to_writer(&mut bytes, k)?;
        bytes.push(b':');
        bytes.extend_from_slice(v.get().as_bytes());
    }
    bytes.push(b'}');
    Ok(bytes)
}

/// A JSON object's top-level members in document order, each value as its own bytes.
struct RawMembers(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> Deserialize<'de> for RawMembers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMembers, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(RawMembers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON value whose objects keep their members in document order.
enum Ordered {
    Leaf(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// Takes what redaction changed in `v`, found at the same place: strings, numbers that
    /// became their placeholder strings, and an object whose member names changed (a value used
    /// as a name is renamed), which is then taken whole (its members in `v`'s order).
    fn overlay(&mut self, v: &Value) {
        match (&mut *self, v) {
            (Ordered::Leaf(leaf), v) if leaf != v => *leaf = v.clone(),
            (Ordered::Array(items), Value::Array(vs)) => {
                for (item, v) in items.iter_mut().zip(vs) {
                    item.overlay(v);
                }
            }
            (Ordered::Object(members), Value::Object(map)) => {
                let same_names = members.len() == map.len()
                    && members.iter().all(|(k, _)| map.contains_key(k.as_str()));
                if !same_names {
                    *self = Ordered::Leaf(v.clone());
                    return;
                }
                for (k, member) in members.iter_mut() {
                    if let Some(v) = map.get(k.as_str()) {
                        member.overlay(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Ordered::Leaf(v) => v.serialize(s),
            Ordered::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Ordered::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Number(n.into())))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Number(n.into())))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(
            Number::from_f64(n).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::String(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::String(s)))
    }

    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Ordered, D::Error> {
        Ordered::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(i) = seq.next_element::<Ordered>()? {
            items.push(i);
        }
        Ok(Ordered::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut members = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v: Ordered = map.next_value()?;
            members.push((k, v));
        }
        Ok(Ordered::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_written_first_leaves_the_others_as_they_were() {
        let body =
            br#"{ "model":"o3", "max_completion_tokens":null, "seed":123456789012345678901234,
            "x":[1.50, "\u00e9"] }"#;
        let out = with_first_member(
            body,
            &["max_completion_tokens"],
            "max_completion_tokens",
            Value::from(4096),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"max_completion_tokens":4096,"model":"o3","seed":123456789012345678901234,"x":[1.50, "\u00e9"]}"#
        );
    }

    #[test]
    fn half_a_surrogate_pair_reads_as_the_replacement_character() {
        let body = br#"{"a":"trip \ud83d\ude00 end \ud83d","b":"\udc00x","c":"\\ud83d","d":"\ud83d\u0041"}"#;
        assert!(parse_strict(body).is_err(), "serde_json refuses it");
        let v = parse_unique(body).expect("read");
        assert_eq!(v["a"], "trip \u{1f600} end \u{fffd}");
        assert_eq!(v["b"], "\u{fffd}x");
        assert_eq!(v["c"], "\\ud83d", "an escaped backslash is not an escape");
        assert_eq!(v["d"], "\u{fffd}A");
        assert!(
            parse_unique(br#"{"a":"\ud83d""#).is_err(),
            "still JSON or not"
        );
    }

    #[test]
    fn equals_serde_json_on_bodies_without_repeated_keys() {
        let bodies = [
            r#"{"model":"gpt-4o-mini","max_tokens":512,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"mail maria\u0040example.com, call +1 415 555 0142 \ud83d\ude00 \"quoted\" \\ back"}],"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"a":-0,"b":1e300,"c":-9223372036854775808,"d":18446744073709551615,"e":0.1,"f":1.7976931348623157e308,"g":5e-324,"h":null,"i":[],"j":{},"k":[[[{"x":[true,false,null]}]]]}"#,
            r#"  [1, "two", {"three": 3}]  "#,
            r#""just a string""#,
            r#"{"":"empty key","a b":"space","é":"accent"}"#,
        ];
        for b in bodies {
            let want: Value = serde_json::from_str(b).unwrap();
            assert_eq!(parse_unique(b.as_bytes()).unwrap(), want, "{b}");
        }
        // Every random body serde_json writes (it never repeats a key) reads back the same.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let v = random_value(&mut seed, 0);
            let bytes = serde_json::to_vec(&v).unwrap();
            assert_eq!(parse_unique(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn a_repeated_key_at_any_depth_is_refused_and_bad_json_too() {
        for b in [
            r#"{"model":"a","model":"b"}"#,
            r#"{"messages":[{"role":"user","content":"card 4111 1111 1111 1111","content":"hello"}]}"#,
            r#"{"a":{"b":{"c":1,"c":2}}}"#,
            r#"{"x":1,"x\u0031":2,"x1":3}"#,
        ] {
            let e = parse_unique(b.as_bytes()).expect_err(b);
            assert!(e.to_string().contains("is repeated in one object"), "{e}");
        }
        for b in [
            r#"{"a":1"#,
            r#"{"a":1} trailing"#,
            "",
            "nul",
            r#"{"a":01}"#,
            r#"{"a":1e400}"#,
        ] {
            assert!(serde_json::from_str::<Value>(b).is_err(), "{b}");
            assert!(parse_unique(b.as_bytes()).is_err(), "{b}");
        }
        // Deep nesting stops at serde_json's recursion limit instead of overflowing the stack.
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_unique(deep.as_bytes()).is_err());
    }

    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    fn random_value(seed: &mut u64, depth: u32) -> Value {
        let pick = next(seed) % if depth > 3 { 5 } else { 7 };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(next(seed).is_multiple_of(2)),
            2 => {
                let shift = next(seed) % 60;
                Value::Number(((next(seed) as i64) >> shift).into())
            }
            3 => Number::from_f64((next(seed) % 1_000_000) as f64 / 7.0)
                .map_or(Value::Null, Value::Number),
            4 => Value::String(
                [
                    "",
                    "plain",
                    "é中😀",
                    "quote \" and \\ and \n",
                    "\u{1}\u{1f}",
                ][(next(seed) % 5) as usize]
                    .to_string(),
            ),
            5 => {
                let n = next(seed) % 4;
                Value::Array((0..n).map(|_| random_value(seed, depth + 1)).collect())
            }
            _ => {
                let n = next(seed) % 5;
                let mut m = serde_json::Map::new();
                for i in 0..n {
                    let k = format!("k{i}_{}", next(seed) % 3);
                    m.insert(k, random_value(seed, depth + 1));
                }
                Value::Object(m)
            }
        }
    }

    #[test]
    fn a_redacted_tree_is_written_back_in_document_order() {
        let body = br#"{"z":1,"a":[{"y":"secret one","b":"keep"},"secret two"],"m":{"q":true,"c":null},"n":1.5}"#;
        let mut tree = parse_unique(body).unwrap();
        tree["a"][0]["y"] = Value::String("[R]".into());
        tree["a"][1] = Value::String("[R2]".into());
        let out = reencode_in_order(body, &tree).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"z":1,"a":[{"y":"[R]","b":"keep"},"[R2]"],"m":{"q":true,"c":null},"n":1.5}"#
        );
    }
}
