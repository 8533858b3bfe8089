//! The upstream API families whose prices and usage shapes this crate knows.

use std::fmt;

/// An LLM provider: decides the usage wire shape and the cache-pricing defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// OpenAI (`api.openai.com`): cached tokens are a subset of prompt tokens.
    OpenAi,
    /// Anthropic (`api.anthropic.com`): `input_tokens` excludes cache reads and writes.
    Anthropic,
}

impl Provider {
    /// Lower-case name as used in the price data file (`openai`, `anthropic`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// Parses the data-file name, case-insensitively.
    pub fn parse(name: &str) -> Option<Provider> {
        if name.eq_ignore_ascii_case("openai") {
            Some(Provider::OpenAi)
        } else if name.eq_ignore_ascii_case("anthropic") {
            Some(Provider::Anthropic)
        } else {
            None
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        assert_eq!(Provider::parse("OpenAI"), Some(Provider::OpenAi));
        assert_eq!(
            Provider::parse(Provider::Anthropic.as_str()),
            Some(Provider::Anthropic)
        );
        assert_eq!(Provider::parse("google"), None);
    }
}
