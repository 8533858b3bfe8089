//! User-defined patterns from the policy (`custom: [{ name, pattern }]`): every regex match counts.

use crate::kind::PiiKind;
use crate::recognizer::Recognizer;

/// A named user regex; the placeholder is the upper-cased name in brackets.
pub struct CustomRecognizer {
    name: String,
    pattern: String,
}

impl CustomRecognizer {
    /// A recognizer for an already validated name and regex.
    pub fn new(name: impl Into<String>, pattern: impl Into<String>) -> Self {
        CustomRecognizer {
            name: name.into(),
            pattern: pattern.into(),
        }
    }
}

impl Recognizer for CustomRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::Custom(self.name.clone())
    }

    fn pattern(&self) -> &str {
        &self.pattern
    }

    fn validate(&self, candidate: &str) -> bool {
        !candidate.is_empty()
    }

    fn short_candidates(&self) -> bool {
        false
    }
}
