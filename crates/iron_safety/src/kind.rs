//! The kinds of sensitive data, the direction of traffic and the action a policy takes.

use serde::Serialize;
use std::fmt;

/// A type of sensitive value the scanner can find.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    /// An e-mail address.
    Email,
    /// A telephone number (international or common national formats).
    Phone,
    /// A payment card number (Luhn-valid, known issuer prefix).
    CreditCard,
    /// A US social security number.
    UsSsn,
    /// An international bank account number (mod-97 valid).
    Iban,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// An API key, token, JWT or private key.
    Secret,
    /// A user-defined pattern, by its configured name.
    Custom(String),
}

impl PiiKind {
    /// The built-in kinds, in the order policies and reports list them.
    pub const BUILT_IN: [PiiKind; 7] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::CreditCard,
        PiiKind::UsSsn,
        PiiKind::Iban,
        PiiKind::IpAddress,
        PiiKind::Secret,
    ];

    /// The camelCase policy key for this kind (`creditCard`, or the custom name).
    pub fn policy_key(&self) -> &str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::CreditCard => "creditCard",
            PiiKind::UsSsn => "usSsn",
            PiiKind::Iban => "iban",
            PiiKind::IpAddress => "ipAddress",
            PiiKind::Secret => "secret",
            PiiKind::Custom(name) => name,
        }
    }

    /// The text that replaces a redacted value, e.g. `[CREDIT_CARD]`.
    pub fn placeholder(&self) -> String {
        let body = match self {
            PiiKind::Email => "EMAIL".to_string(),
            PiiKind::Phone => "PHONE".to_string(),
            PiiKind::CreditCard => "CREDIT_CARD".to_string(),
            PiiKind::UsSsn => "US_SSN".to_string(),
            PiiKind::Iban => "IBAN".to_string(),
            PiiKind::IpAddress => "IP_ADDRESS".to_string(),
            PiiKind::Secret => "SECRET".to_string(),
            PiiKind::Custom(name) => name.to_uppercase(),
        };
        format!("[{body}]")
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.policy_key())
    }
}

impl Serialize for PiiKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.policy_key())
    }
}

/// Which way the text travels: the prompt to the provider, or the answer back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Agent to provider.
    Request,
    /// Provider to agent.
    Response,
}

impl Direction {
    /// The policy key for this direction (`request` / `response`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// What a policy does with a detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Do not look for this type.
    Off,
    /// Record the detection (hash only) and let the text through.
    Log,
    /// Replace the value with its placeholder.
    Redact,
    /// Refuse the request, or stop the stream.
    Block,
}

impl Action {
    /// Parses `off|log|redact|block`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "off" => Some(Action::Off),
            "log" => Some(Action::Log),
            "redact" => Some(Action::Redact),
            "block" => Some(Action::Block),
            _ => None,
        }
    }

    /// The lower-case policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::Log => "log",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}
