//! The safety policy: an action per kind and direction, plus custom patterns, parsed from the
//! camelCase JSON options with errors that name the offending field.

use crate::kind::{Action, Direction, PiiKind};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// A user-defined pattern: values matching `pattern` are reported as kind `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPattern {
    /// Policy key and placeholder (upper-cased) of the pattern.
    pub name: String,
    /// A Rust `regex` pattern.
    pub pattern: String,
}

/// Actions for one direction; unset types fall back to `default`, then to the built-in default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectionPolicy {
    /// Fallback for every type not named, except `secret`, which keeps its stricter built-in default.
    pub default: Option<Action>,
    /// Explicit actions keyed by policy key (`email`, `creditCard`, a custom name …).
    pub actions: BTreeMap<String, Action>,
}

impl DirectionPolicy {
    /// The action for `kind` in `direction`.
    pub fn action(&self, kind: &PiiKind, direction: Direction) -> Action {
        if let Some(a) = self.actions.get(kind.policy_key()) {
            return *a;
        }
        if *kind == PiiKind::Secret {
            return match direction {
                Direction::Request => Action::Block,
                Direction::Response => Action::Redact,
            };
        }
        self.default.unwrap_or(Action::Log)
    }
}

/// The whole `safety` option: request and response policies and custom patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SafetyPolicy {
    /// Applied to prompts before they are forwarded.
    pub request: DirectionPolicy,
    /// Applied to answers before they reach the agent.
    pub response: DirectionPolicy,
    /// User patterns, scanned in both directions.
    pub custom: Vec<CustomPattern>,
    /// Keys the HMAC digests that stand for values found (`safety.digestKey`); `None`: a random
    /// key per router.
    pub digest_key: Option<String>,
}

/// A policy that cannot be used, naming the field (`safety.request.email`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Dotted path of the offending field.
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for PolicyError {}

fn err(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError {
        field: field.into(),
        message: message.into(),
    }
}

const DIRECTION_KEYS: [&str; 8] = [
    "default",
    "email",
    "phone",
    "creditCard",
    "usSsn",
    "iban",
    "ipAddress",
    "secret",
];

impl SafetyPolicy {
    /// The policy for `direction`.
    pub fn direction(&self, direction: Direction) -> &DirectionPolicy {
        match direction {
            Direction::Request => &self.request,
            Direction::Response => &self.response,
        }
    }

    /// Parses the `safety` JSON object (`null` means all defaults).
    pub fn from_value(value: &Value) -> Result<SafetyPolicy, PolicyError> {
        let obj = match value {
            Value::Null => return Ok(SafetyPolicy::default()),
            Value::Object(o) => o,
            other => {
                return Err(err(
                    "safety",
                    format!("expected an object, got {}", type_name(other)),
                ))
            }
        };
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "request" | "response" | "custom" | "digestKey"
            ) {
                return Err(err(
                    format!("safety.{key}"),
                    "unknown key; expected request, response, custom or digestKey",
                ));
            }
        }
        let digest_key = match obj.get("digestKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if (16..=4096).contains(&s.len()) => Some(s.clone()),
            Some(Value::String(_)) => {
                return Err(err(
                    "safety.digestKey",
                    "must be a secret of 16 to 4096 characters (it keys the digests of values found; keep it like a password)",
                ))
            }
            Some(other) => {
                return Err(err(
                    "safety.digestKey",
                    format!("expected a string, got {}", type_name(other)),
                ))
            }
        };
        let custom = parse_custom(obj.get("custom").unwrap_or(&Value::Null))?;
        let names: Vec<&str> = custom.iter().map(|c| c.name.as_str()).collect();
        let request = parse_direction("safety.request", obj.get("request"), &names)?;
        let response = parse_direction("safety.response", obj.get("response"), &names)?;
        Ok(SafetyPolicy {
            request,
            response,
            custom,
            digest_key,
        })
    }

    /// Parses a JSON document holding the `safety` object.
    pub fn from_json_str(json: &str) -> Result<SafetyPolicy, PolicyError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| err("safety", format!("invalid JSON: {e}")))?;
        SafetyPolicy::from_value(&value)
    }
}

impl<'de> Deserialize<'de> for SafetyPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        SafetyPolicy::from_value(&value).map_err(serde::de::Error::custom)
    }
}

fn parse_direction(
    path: &str,
    value: Option<&Value>,
    custom: &[&str],
) -> Result<DirectionPolicy, PolicyError> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(DirectionPolicy::default()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(err(
                path,
                format!("expected an object, got {}", type_name(other)),
            ))
        }
    };
    let mut policy = DirectionPolicy::default();
    for (key, v) in obj {
        let field = format!("{path}.{key}");
        if !DIRECTION_KEYS.contains(&key.as_str()) && !custom.contains(&key.as_str()) {
            let mut allowed: Vec<&str> = DIRECTION_KEYS.to_vec();
            allowed.extend_from_slice(custom);
            return Err(err(
                field,
                format!("unknown type; expected one of {}", allowed.join(", ")),
            ));
        }
        let action = match v {
            Value::Null => continue,
            Value::String(s) => Action::parse(s),
            _ => None,
        };
        let Some(action) = action else {
            return Err(err(
                field,
                format!("expected one of off|log|redact|block, got {v}"),
            ));
        };
        if key == "default" {
            policy.default = Some(action);
        } else {
            policy.actions.insert(key.clone(), action);
        }
    }
    Ok(policy)
}

fn parse_custom(value: &Value) -> Result<Vec<CustomPattern>, PolicyError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        other => {
            return Err(err(
                "safety.custom",
                format!("expected an array, got {}", type_name(other)),
            ))
        }
    };
    let mut out: Vec<CustomPattern> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("safety.custom[{i}]");
        let Value::Object(obj) = item else {
            return Err(err(path, "expected an object { name, pattern }"));
        };
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(err(format!("{path}.name"), "expected a string")),
        };
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(err(
                format!("{path}.name"),
                format!("expected letters, digits or _ starting with a letter, got {name:?}"),
            ));
        }
        if DIRECTION_KEYS.contains(&name.as_str()) || out.iter().any(|c| c.name == name) {
            return Err(err(
                format!("{path}.name"),
                format!("{name:?} is already used; pick another name"),
            ));
        }
        let pattern = match obj.get("pattern") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(err(format!("{path}.pattern"), "expected a string")),
        };
        if let Err(e) = crate::scanner::build(&pattern) {
            return Err(err(
                format!("{path}.pattern"),
                format!("invalid regex: {}", first_line(&e.to_string())),
            ));
        }
        out.push(CustomPattern { name, pattern });
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
