//! JSON text (tool-call arguments arrive as fragments of a JSON document) scanned as plain text:
//! each escape sequence becomes one private-use character before scanning and is restored after,
//! so `\n` is not read as the letter `n` glued to the next value, and a placeholder can never split
//! an escape and break the JSON. A `\uXXXX` escape of a character a JSON string may hold as it is
//! (`\u0040` for `@`) is decoded instead: the value a reader of the JSON gets is what is scanned.

// `\` + ASCII c  <->  U+E000 + c.
const ESC_BASE: u32 = 0xE000;
// `\uXXXX`  <->  U+F0000 + 0xXXXX (supplementary private use area A).
const UNIT_BASE: u32 = 0xF_0000;
// The whitespace escapes stand for whitespace the scanner must see as such (a custom pattern
// `Jane\s+Doe` against `"Jane\nDoe"`, a value ending at a line break), so each becomes a
// Unicode whitespace character that a JSON text otherwise holds only inside strings, where it is
// stored as its `\u` escape instead: `\n` <-> U+2028, `\r` <-> U+2029, `\t` <-> U+0085.
const WHITESPACE_ESCAPES: [(u8, char); 3] =
    [(b'n', '\u{2028}'), (b'r', '\u{2029}'), (b't', '\u{85}')];

fn is_reserved(c: char) -> bool {
    let v = u32::from(c);
    (ESC_BASE..ESC_BASE + 0x80).contains(&v)
        || (UNIT_BASE..=UNIT_BASE + 0xFFFF).contains(&v)
        || WHITESPACE_ESCAPES.iter().any(|&(_, w)| w == c)
}

fn mapped(v: u32) -> char {
    char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Encodes one JSON text stream fragment by fragment, holding an escape cut at a fragment end.
#[derive(Default)]
pub(crate) struct EscapeCodec {
    pending: String,
}

impl EscapeCodec {
    /// The encoded form of everything complete so far.
    pub(crate) fn encode(&mut self, fragment: &str) -> String {
        let mut input = std::mem::take(&mut self.pending);
        input.push_str(fragment);
        let mut out = String::with_capacity(input.len());
        let mut i = 0;
        while let Some(c) = input[i..].chars().next() {
            if c != '\\' {
                if is_reserved(c) {
                    // A literal private-use character would decode as an escape: store it as one.
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push(mapped(UNIT_BASE + u32::from(*u)));
                    }
                } else {
                    out.push(c);
                }
                i += c.len_utf8();
                continue;
            }
            let rest = &input[i + 1..];
            match rest.bytes().next() {
                None => {
                    self.pending = input[i..].to_string();
                    return out;
                }
                Some(b'u') => {
                    let hex = rest.get(1..5);
                    match hex {
                        None if rest.len() < 5
                            && rest.bytes().skip(1).all(|b| b.is_ascii_hexdigit()) =>
                        {
                            self.pending = input[i..].to_string();
                            return out;
                        }
                        Some(h) if h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                            let unit = u32::from_str_radix(h, 16).unwrap_or(0);
                            // A character that may stand unescaped in a JSON string is scanned
                            // (and sent on) as itself: `jane\u0040x.io` is the address its reader
                            // gets, so the scanner must see it too. Quotes, backslashes, controls
                            // and surrogate halves stay escapes.
                            match char::from_u32(unit) {
                                Some(c)
                                    if unit >= 0x20 && c != '"' && c != '\\' && !is_reserved(c) =>
                                {
                                    out.push(c)
                                }
                                _ => out.push(mapped(UNIT_BASE + unit)),
                            }
                            i += 6;
                        }
                        _ => {
                            out.push(mapped(ESC_BASE + u32::from(b'u')));
                            i += 2;
                        }
                    }
                }
                Some(b) if b.is_ascii() => {
                    match WHITESPACE_ESCAPES.iter().find(|&&(e, _)| e == b) {
                        Some(&(_, w)) => out.push(w),
                        None => out.push(mapped(ESC_BASE + u32::from(b))),
                    }
                    i += 2;
                }
                Some(_) => {
                    // Not JSON: a backslash before a non-ASCII character stays as it is.
                    out.push('\\');
                    i += 1;
                }
            }
        }
        out
    }

    /// An unfinished escape left at the very end (invalid JSON), unchanged.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Restores the escapes of encoded text (placeholders and other text are left as they are).
pub(crate) fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let v = u32::from(c);
        if let Some(&(e, _)) = WHITESPACE_ESCAPES.iter().find(|&&(_, w)| w == c) {
            out.push('\\');
            out.push(char::from(e));
        } else if (ESC_BASE..ESC_BASE + 0x80).contains(&v) {
            out.push('\\');
            out.push(mapped(v - ESC_BASE));
        } else if (UNIT_BASE..=UNIT_BASE + 0xFFFF).contains(&v) {
            out.push_str(&format!("\\u{:04x}", v - UNIT_BASE));
        } else {
            out.push(c);
        }
    }
    out
}

/// The whole JSON text, encoded.
pub(crate) fn encode_whole(text: &str) -> String {
    let mut codec = EscapeCodec::default();
    let mut out = codec.encode(text);
    out.push_str(&codec.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_escapes_of_plain_characters_are_scanned_as_those_characters() {
        let text = r#"{"to":"jane.doe\u0040example.com","card":"\u00341111","q":"\u0022\u005c\u000a\ud83d\ude00"}"#;
        let enc = encode_whole(text);
        assert!(enc.contains("jane.doe@example.com"), "{enc}");
        assert!(enc.contains("41111"), "{enc}");
        // Quotes, backslashes, controls and surrogates keep their escapes.
        let back = decode(&enc);
        assert_eq!(
            back,
            r#"{"to":"jane.doe@example.com","card":"41111","q":"\u0022\u005c\u000a\ud83d\ude00"}"#
        );
        let a: serde_json::Value = serde_json::from_str(text).unwrap();
        let b: serde_json::Value = serde_json::from_str(&back).unwrap();
        assert_eq!(a, b, "the JSON means the same");
    }

    #[test]
    fn escapes_round_trip_across_fragments() {
        let text = r#"{"body":"Hi,\njane@x.io \"q\" \u000a \\ end","k":"\ue001"}"#;
        assert_eq!(decode(&encode_whole(text)), text);
        for cut in 0..=text.len() {
            if !text.is_char_boundary(cut) {
                continue;
            }
            let mut c = EscapeCodec::default();
            let mut enc = c.encode(&text[..cut]);
            enc.push_str(&c.encode(&text[cut..]));
            enc.push_str(&c.finish());
            assert_eq!(decode(&enc), text, "cut at {cut}");
            assert!(
                !enc.contains('\\'),
                "every escape is one character: {enc:?}"
            );
        }
        // A literal private-use character survives as an equivalent escape.
        assert_eq!(decode(&encode_whole("a\u{e06e}b")), "a\\ue06eb");
        // So does a literal line separator (it stands for `\n` while scanning).
        assert_eq!(decode(&encode_whole("a\u{2028}b")), "a\\u2028b");
        // Escaped line breaks and tabs are whitespace to the scanner.
        let enc = encode_whole(r#"{"n":"Jane\nDoe\tx\r"}"#);
        assert!(enc.contains("Jane\u{2028}Doe\u{85}x\u{2029}"), "{enc:?}");
        assert!(enc.chars().filter(|c| c.is_whitespace()).count() == 3);
        assert_eq!(decode(&encode_whole("bad \\")), "bad \\");
    }
}
