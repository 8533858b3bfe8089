//! Walks the text fields of provider request and response bodies, scanning and redacting in place.
//! Only the fields that carry prompt or answer text are touched; everything else stays as it was.

use crate::audit::{Detection, Tally};
use crate::guard::TextGuard;
use serde_json::Value;

/// The API a JSON body belongs to, which decides where its text lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiShape {
    /// `POST /v1/chat/completions`.
    OpenAiChat,
    /// `POST /v1/responses`.
    OpenAiResponses,
    /// `POST /v1/completions` (legacy).
    OpenAiCompletions,
    /// `POST /v1/embeddings`.
    OpenAiEmbeddings,
    /// `POST /v1/messages`.
    AnthropicMessages,
    /// Anything else: not inspected.
    Other,
}

/// The outcome of inspecting a request or a non-streamed response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// One entry per kind found.
    pub detections: Vec<Detection>,
    /// True when redaction rewrote the body.
    pub modified: bool,
    /// True when a block-action type was found.
    pub blocked: bool,
    /// For a blocked body: the message to return, naming types and counts, never values.
    pub message: Option<String>,
}

/// The verdict on a request body.
pub type RequestVerdict = Verdict;
/// The verdict on a non-streamed response body.
pub type ResponseVerdict = Verdict;

/// Scans one string value and replaces it when redaction changed it.
struct Walker<'a> {
    guard: &'a TextGuard,
    tally: Tally,
    modified: bool,
}

impl Walker<'_> {
    fn text(&mut self, v: Option<&mut Value>) {
        if let Some(Value::String(s)) = v {
            if let Some(new) = self.guard.process(s, &mut self.tally) {
                *s = new;
                self.modified = true;
            }
        }
    }

    /// A string, or an array of strings / `{type:"text"|"input_text"|"output_text", text}` parts.
    fn content(&mut self, v: Option<&mut Value>) {
        match v {
            Some(Value::String(_)) => self.text(v),
            Some(Value::Array(parts)) => {
                for part in parts {
                    match part {
                        Value::String(_) => self.text(Some(part)),
                        // Text parts, and every other string a part carries (a refusal, an image
                        // URL's query, annotations); types, ids and data URLs aside.
                        Value::Object(_) => self.any(part, 1),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// Every string inside a JSON value (tool inputs are arbitrary objects).
    fn all_strings(&mut self, v: &mut Value) {
        match v {
            Value::String(_) => self.text(Some(v)),
            Value::Array(a) => a.iter_mut().for_each(|x| self.all_strings(x)),
            Value::Object(o) => {
                o.values_mut().for_each(|x| self.all_strings(x));
                self.object_keys(o);
            }
            // Arguments are arbitrary JSON: a card number sent as a number is still a card number.
            // A redacted one becomes its placeholder string.
            Value::Number(n)
                if n.as_u64()
                    .or(n.as_i64().map(i64::unsigned_abs))
                    .is_some_and(|x| x >= 100_000) =>
            {
                let digits = n.as_u64().or(n.as_i64().map(i64::unsigned_abs));
                let mut text = Value::String(digits.unwrap_or(0).to_string());
                let before = self.modified;
                self.modified = false;
                self.text(Some(&mut text));
                if self.modified {
                    *v = text;
                }
                self.modified |= before;
            }
            _ => {}
        }
    }

    /// The member names of an arbitrary object (tool arguments use e-mails and phone numbers as
    /// keys: `{"jane@x.io": {...}}`): a name with a value in it is renamed to its redacted form
    /// (made unique with `#2`, `#3` … if another member has that name already).
    fn object_keys(&mut self, o: &mut serde_json::Map<String, Value>) {
        let mut renames = Vec::new();
        for k in o.keys() {
            if k.len() < 3 {
                continue;
            }
            if let Some(new) = self.guard.process(k, &mut self.tally) {
                renames.push((k.clone(), new));
            }
        }
        for (old, new) in renames {
            let Some(v) = o.remove(&old) else { continue };
            let mut name = new.clone();
            let mut n = 2;
            while o.contains_key(&name) {
                name = format!("{new}#{n}");
                n += 1;
            }
            o.insert(name, v);
            self.modified = true;
        }
    }

    /// Tool-call arguments: a JSON document in a string; walked as JSON when it parses. When an
    /// object in it repeats a key, a tree would hold only the last copy while the provider (or
    /// the client) gets the text with both: the text is checked as JSON text instead, every copy,
    /// the way streamed arguments are (escapes read as what they stand for; still JSON after).
    fn json_string(&mut self, v: Option<&mut Value>) {
        let Some(Value::String(s)) = v else {
            return;
        };
        match crate::unique::from_str(s) {
            Ok(mut parsed) => {
                let before = self.modified;
                self.modified = false;
                self.all_strings(&mut parsed);
                if self.modified {
                    *s = parsed.to_string();
                }
                self.modified |= before;
            }
            Err(e) if e.is_data() => {
                let encoded = crate::json_text::encode_whole(s);
                if let Some(new) = self.guard.process_json(&encoded, &mut self.tally) {
                    *s = crate::json_text::decode(&new);
                    self.modified = true;
                }
            }
            Err(_) => {
                if let Some(new) = self.guard.process(s, &mut self.tally) {
                    *s = new;
                    self.modified = true;
                }
            }
        }
    }

    fn tool_calls(&mut self, msg: &mut Value) {
        if let Some(Value::Array(calls)) = msg.get_mut("tool_calls") {
            for call in calls {
                self.json_string(
                    call.get_mut("function")
                        .and_then(|f| f.get_mut("arguments")),
                );
            }
        }
        self.json_string(
            msg.get_mut("function_call")
                .and_then(|f| f.get_mut("arguments")),
        );
    }

    fn anthropic_blocks(&mut self, v: Option<&mut Value>) {
        let Some(Value::Array(blocks)) = v else {
            return self.content(v);
        };
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    self.text(block.get_mut("text"));
                    // Citations quote the sources they cite.
                    if let Some(c) = block.get_mut("citations") {
                        self.any(c, 1);
                    }
                }
                // Tool inputs (`tool_use`, `server_tool_use`, `mcp_tool_use`, …) are arbitrary
                // JSON: numbers and member names are read too. The block's other members (a
                // name, an MCP server's name) are read like any string.
                Some(t) if t.ends_with("tool_use") => {
                    if let Some(input) = block.get_mut("input") {
                        self.all_strings(input);
                    }
                    if let Value::Object(map) = block {
                        for (k, x) in map.iter_mut() {
                            if k != "input" && !is_identifier_key(k) {
                                self.any(x, 1);
                            }
                        }
                    }
                }
                Some("tool_result") => self.anthropic_blocks(block.get_mut("content")),
                // Left as they are: the provider signs them and refuses a changed one when it
                // comes back.
                Some("thinking" | "redacted_thinking") => {}
                // Every other block (documents' text sources, titles and context, search results,
                // the results of provider-run and MCP tools, image URLs, block types newer than
                // this reader): every string but ids, types and encoded data.
                _ => self.any(block, 0),
            }
        }
    }

    /// Responses input and output items: every string of every item (messages, tool calls and
    /// their outputs, shell commands and output, MCP calls and results, code interpreter code and
    /// outputs, patches, search results, item types newer than this reader) but ids, types,
    /// statuses and encoded data; `arguments` is JSON text, walked as JSON.
    fn responses_items(&mut self, v: Option<&mut Value>) {
        let Some(Value::Array(items)) = v else {
            return self.text(v);
        };
        for item in items {
            // Reasoning summaries in answers; in a request they are the provider's own items
            // coming back, which must come back unchanged.
            if item.get("type").and_then(Value::as_str) == Some("reasoning")
                && self.guard.direction() == crate::kind::Direction::Request
            {
                continue;
            }
            self.any(item, 0);
        }
    }

    /// Tool definitions go to the provider with every call: their descriptions and parameter
    /// schemas (descriptions, enums, examples, defaults) are text like any other. OpenAI chat
    /// `tools[].function` and legacy `functions[]`, Responses and Anthropic `tools[]`.
    fn tool_definitions(&mut self, body: &mut Value) {
        let definition = |w: &mut Self, t: &mut Value| {
            w.text(t.get_mut("description"));
            for schema in ["parameters", "input_schema"] {
                if let Some(v) = t.get_mut(schema) {
                    w.all_strings(v);
                }
            }
        };
        if let Some(Value::Array(tools)) = body.get_mut("tools") {
            for t in tools {
                match t.get_mut("function") {
                    Some(f) if f.is_object() => definition(self, f),
                    _ => definition(self, t),
                }
            }
        }
        if let Some(Value::Array(functions)) = body.get_mut("functions") {
            for f in functions {
                definition(self, f);
            }
        }
    }

    /// A body of no known shape (an endpoint the router has no reader for, an error answer), and
    /// the parts and items of known ones: every string is text, except values that only name or
    /// identify things and encoded data in the members that carry it. A member named `arguments`
    /// holding a string is tool-call arguments: JSON text, walked as JSON.
    fn any(&mut self, v: &mut Value, depth: usize) {
        if depth > 256 {
            return;
        }
        match v {
            Value::String(s) if is_data_url(s) => self.data_url(v),
            Value::String(_) => self.text(Some(v)),
            Value::Array(items) => items.iter_mut().for_each(|x| self.any(x, depth + 1)),
            Value::Object(map) => {
                // Anthropic `{type:"text", data}` sources hold text; `{type:"base64", data}` data.
                let text_source = map.get("type").and_then(Value::as_str) == Some("text");
                for (k, x) in map.iter_mut() {
                    if is_identifier_key(k) {
                        continue;
                    }
                    match x {
                        Value::String(s) if !text_source && is_encoded_member(k, s) => {}
                        Value::String(_) if k == "arguments" => self.json_string(Some(x)),
                        _ => self.any(x, depth + 1),
                    }
                }
            }
            _ => {}
        }
    }

    /// A `data:` URL: a text file inline (`data:text/plain;base64,…`, JSON, CSV, XML, a `.env`
    /// sent as `application/octet-stream`) is text the model reads, so it is decoded, checked and,
    /// when redacted, encoded again. Read as leniently as a provider might: the scheme, type and
    /// `base64` in any case, an empty type as text, base64 with line breaks, either alphabet and
    /// no padding, bytes that are not UTF-8. Media (images, audio, video, fonts, PDFs, archives)
    /// and anything with a NUL byte pass as they are.
    fn data_url(&mut self, v: &mut Value) {
        let Value::String(url) = v else { return };
        let Some((head, data)) = url.split_once(',') else {
            return;
        };
        let mut params = head[5..].split(';').map(|p| p.trim().to_ascii_lowercase());
        let media = params.next().unwrap_or_default();
        let b64 = params.any(|p| p == "base64");
        let binary = ["image/", "audio/", "video/", "font/", "model/"]
            .iter()
            .any(|p| media.starts_with(p))
            || matches!(
                media.as_str(),
                "application/pdf"
                    | "application/zip"
                    | "application/gzip"
                    | "application/x-gzip"
                    | "application/x-tar"
                    | "application/x-7z-compressed"
                    | "application/wasm"
            );
        if binary || data.len() > MAX_DATA_URL_BYTES {
            return;
        }
        let decoded = if b64 {
            match crate::b64::lenient_base64(data) {
                Some(bytes) => bytes,
                None => return,
            }
        } else {
            percent_decode(data)
        };
        if decoded.contains(&0) {
            return;
        }
        let text = String::from_utf8_lossy(&decoded);
        if let Some(new) = self.guard.process(&text, &mut self.tally) {
            let body = if b64 {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(new.as_bytes())
            } else {
                percent_encode(&new)
            };
            *url = format!("{head},{body}");
            self.modified = true;
        }
    }

    fn finish(self) -> Verdict {
        let direction = self.guard.direction();
        Verdict {
            detections: self.tally.detections(direction),
            modified: self.modified,
            blocked: self.tally.is_blocked(),
            message: self.tally.block_message(direction),
        }
    }
}

/// Keys whose values name or identify (ids, model names, types, statuses, timestamps) or hold
/// encoded data (images, embeddings): not text a person wrote or reads.
fn is_identifier_key(k: &str) -> bool {
    matches!(
        k,
        "id" | "object"
            | "model"
            | "role"
            | "type"
            | "status"
            | "finish_reason"
            | "stop_reason"
            | "system_fingerprint"
            | "service_tier"
            | "b64_json"
            | "partial_image_b64"
            | "embedding"
            | "encrypted_content"
            // Opaque end-user ids and cache keys, by contract (hash them if they hold PII).
            | "user"
            | "safety_identifier"
            | "prompt_cache_key"
    ) || k.ends_with("_id")
        || k.ends_with("_at")
}

/// A `data:` URL, in any case.
fn is_data_url(s: &str) -> bool {
    s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:"))
}

/// The bytes of a percent-encoded `data:` URL body (`%40` → `@`; a stray `%` stays).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Percent-encodes everything but URL-unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Inline text files larger than this (encoded) are passed as other media are.
const MAX_DATA_URL_BYTES: usize = 32 << 20;

/// Encoded data, not text: a string of 1 KiB or more made only of base64 characters, in a member
/// that carries encoded media (Anthropic `source.data`, an audio part's `data`, a file's
/// `file_data`, a generated image's `result`). Text a person wrote (prose in any script, JSON, a
/// log line) is never skipped: it holds characters base64 does not have.
fn is_encoded_member(k: &str, s: &str) -> bool {
    matches!(k, "data" | "file_data" | "result")
        && s.len() >= 1024
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'\r' | b'\n')
        })
}

fn each_in(v: Option<&mut Value>, mut f: impl FnMut(&mut Value)) {
    if let Some(Value::Array(items)) = v {
        items.iter_mut().for_each(&mut f);
    }
}

/// Scans and redacts the prompt text of a request body.
pub fn inspect_request(guard: &TextGuard, api: ApiShape, body: &mut Value) -> RequestVerdict {
    let mut w = Walker {
        guard,
        tally: Tally::default(),
        modified: false,
    };
    match api {
        ApiShape::OpenAiChat => {
            each_in(body.get_mut("messages"), |m| {
                w.content(m.get_mut("content"));
                w.tool_calls(m);
            });
            w.tool_definitions(body);
        }
        ApiShape::OpenAiResponses => {
            w.text(body.get_mut("instructions"));
            w.responses_items(body.get_mut("input"));
            w.tool_definitions(body);
        }
        ApiShape::OpenAiCompletions => w.content(body.get_mut("prompt")),
        ApiShape::OpenAiEmbeddings => w.content(body.get_mut("input")),
        ApiShape::AnthropicMessages => {
            w.anthropic_blocks(body.get_mut("system"));
            each_in(body.get_mut("messages"), |m| {
                w.anthropic_blocks(m.get_mut("content"))
            });
            w.tool_definitions(body);
        }
        ApiShape::Other => w.any(body, 0),
    }
    // Every other member is read as text too (predicted output, response formats and their
    // schemas, stored prompt variables, a completion's suffix, metadata): a secret there reaches
    // the provider like one in a message.
    if let (Some(covered), Value::Object(map)) = (covered_request_members(api), &mut *body) {
        for (k, v) in map.iter_mut() {
            if !covered.contains(&k.as_str()) && !is_identifier_key(k) {
                w.any(v, 1);
            }
        }
    }
    w.finish()
}

/// The request members the shape's own walk reads (with the care their shapes need: tool-call
/// arguments are JSON text, for one).
fn covered_request_members(api: ApiShape) -> Option<&'static [&'static str]> {
    match api {
        ApiShape::OpenAiChat => Some(&["messages", "tools", "functions"]),
        ApiShape::OpenAiResponses => Some(&["instructions", "input", "tools"]),
        ApiShape::OpenAiCompletions => Some(&["prompt"]),
        ApiShape::OpenAiEmbeddings => Some(&["input"]),
        ApiShape::AnthropicMessages => Some(&["system", "messages", "tools"]),
        ApiShape::Other => None,
    }
}

/// Scans and redacts the answer text of a non-streamed response body.
pub fn inspect_response(guard: &TextGuard, api: ApiShape, body: &mut Value) -> ResponseVerdict {
    response_walker(guard, api, body).finish()
}

/// What [`inspect_response`] found in `body` (redacted in place) and whether it changed it.
pub(crate) fn walk_response(guard: &TextGuard, api: ApiShape, body: &mut Value) -> (Tally, bool) {
    let w = response_walker(guard, api, body);
    (w.tally, w.modified)
}

fn response_walker<'a>(guard: &'a TextGuard, api: ApiShape, body: &mut Value) -> Walker<'a> {
    let mut w = Walker {
        guard,
        tally: Tally::default(),
        modified: false,
    };
    match api {
        ApiShape::OpenAiChat => each_in(body.get_mut("choices"), |c| {
            if let Some(msg) = c.get_mut("message") {
                w.content(msg.get_mut("content"));
                w.text(msg.get_mut("refusal"));
                w.tool_calls(msg);
                // An audio answer's transcript, and the annotations (cited pages' titles, URLs).
                if let Some(audio) = msg.get_mut("audio") {
                    w.text(audio.get_mut("transcript"));
                }
                if let Some(a) = msg.get_mut("annotations") {
                    w.any(a, 1);
                }
            }
        }),
        ApiShape::OpenAiCompletions => {
            each_in(body.get_mut("choices"), |c| w.text(c.get_mut("text")))
        }
        ApiShape::OpenAiResponses => w.responses_items(body.get_mut("output")),
        ApiShape::AnthropicMessages => w.anthropic_blocks(body.get_mut("content")),
        ApiShape::OpenAiEmbeddings => {}
        ApiShape::Other => w.any(body, 0),
    }
    w
}
