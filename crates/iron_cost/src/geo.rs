//! Anthropic's US-only inference (`inference_geo: "us"`): billed at 1.1× the standard rates on
//! every token category (input, output, cache writes and reads) of Claude Opus 4.6, Sonnet 4.6
//! and later models; earlier models do not accept the parameter and bill at the standard rates.
//!
//! Facts from Anthropic's data-residency and pricing pages. A request asks for it with
//! `inference_geo`; a workspace can also make it the default, which the router cannot see. The
//! answer says where the call ran in `usage.inference_geo`, and that is what the call is priced
//! by. Neither price data source carries the multiplier for Anthropic's own API, so it lives here.

use crate::api_kind::ApiKind;
use crate::price::ModelPrice;
use crate::provider::Provider;
use serde_json::Value;

/// The surcharge as a fraction: 11/10.
const UPLIFT_NUM: u128 = 11;
const UPLIFT_DEN: u128 = 10;

/// First model version billed at the US-only rate: Opus 4.6 and Sonnet 4.6.
const FIRST_UPLIFTED: (u32, u32) = (4, 6);

/// Whether a call of `price`'s model that ran US-only is billed at the US-only rate: an
/// Anthropic model named `claude-<family>-<major>[-<minor>]` at version 4.6 or later. Older
/// naming (`claude-3-7-sonnet`) and names of no known pattern are billed at the standard rates.
pub fn us_only_uplift_applies(price: &ModelPrice) -> bool {
    price.provider == Provider::Anthropic
        && claude_version(&price.id).is_some_and(|v| v >= FIRST_UPLIFTED)
}

/// `(major, minor)` of an Anthropic model id of the current naming: `claude-opus-4-6` is (4, 6),
/// `claude-opus-5` and `claude-opus-4-20250514` are (5, 0) and (4, 0); a snapshot date (eight
/// digits) is not a minor version.
pub fn claude_version(id: &str) -> Option<(u32, u32)> {
    let mut parts = id.strip_prefix("claude-")?.split(['-', '.']);
    let family = parts.next()?;
    if family.is_empty() || !family.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let major = number(parts.next()?)?;
    let minor = parts.next().and_then(number).unwrap_or(0);
    Some((major, minor))
}

/// Whether a request may run US-only, as far as its body tells: an Anthropic Messages request
/// that does not ask for `inference_geo: "global"`. One that names no geography runs at its
/// workspace's default, which may be US-only; a hold must cover that.
pub fn may_run_us_only(body: &Value, kind: ApiKind) -> bool {
    kind == ApiKind::AnthropicMessages && requested_geo(body) != Some("global")
}

/// Whether a request asks for US-only inference outright (`inference_geo: "us"`): what a charge
/// made without the answer's usage goes by.
pub(crate) fn asks_us_only(body: &Value, kind: ApiKind) -> bool {
    kind == ApiKind::AnthropicMessages && requested_geo(body) == Some("us")
}

fn requested_geo(body: &Value) -> Option<&str> {
    body.get("inference_geo").and_then(Value::as_str)
}

/// Whether `host` (`host` or `host:port`) is one of OpenAI's data-residency endpoints
/// (`us.api.openai.com`, `eu.api.openai.com`, `jp.api.openai.com`, …), which charge the models
/// that list a surcharge ([`crate::ModelPrice::regional_uplift_percent`]) that much more.
pub fn is_openai_data_residency_host(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.strip_suffix(".api.openai.com").is_some_and(|region| {
        (2..=3).contains(&region.len()) && region.bytes().all(|b| b.is_ascii_lowercase())
    })
}

/// `pico` at the US-only rate, rounded up.
pub(crate) fn uplift(pico: u128) -> u128 {
    pico.saturating_mul(UPLIFT_NUM).div_ceil(UPLIFT_DEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_of_the_current_naming_are_read() {
        assert_eq!(claude_version("claude-opus-4-6"), Some((4, 6)));
        assert_eq!(claude_version("claude-sonnet-4-5"), Some((4, 5)));
        assert_eq!(claude_version("claude-opus-5"), Some((5, 0)));
        assert_eq!(claude_version("claude-haiku-5-5"), Some((5, 5)));
        assert_eq!(claude_version("claude-opus-4-20250514"), Some((4, 0)));
        assert_eq!(claude_version("claude-opus-4-6-20260205"), Some((4, 6)));
        assert_eq!(claude_version("claude-opus-4.6"), Some((4, 6)));
        // The older naming puts the version first; it predates US-only inference.
        assert_eq!(claude_version("claude-3-7-sonnet-latest"), None);
        assert_eq!(claude_version("claude-2"), None);
        assert_eq!(claude_version("claude-v1"), None);
        assert_eq!(claude_version("gpt-5.4"), None);
    }

    #[test]
    fn opus_and_sonnet_4_6_and_later_are_uplifted_not_earlier_ones() {
        let catalog = crate::Catalog::builtin();
        let applies = |m: &str| us_only_uplift_applies(catalog.price(m).expect(m));
        for m in [
            "claude-opus-4-6",
            "claude-sonnet-4-6",
            "claude-opus-4-7",
            "claude-opus-5",
            "claude-fable-5-1",
        ] {
            assert!(applies(m), "{m}");
        }
        for m in [
            "claude-opus-4-5",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "claude-opus-4-1",
            "claude-sonnet-4-20250514",
            "claude-3-7-sonnet-latest",
            "claude-3-5-haiku-latest",
            "gpt-5",
        ] {
            assert!(!applies(m), "{m}");
        }
    }

    #[test]
    fn only_an_explicit_global_rules_out_us_only() {
        let k = ApiKind::AnthropicMessages;
        assert!(may_run_us_only(&json!({"model": "claude-opus-4-6"}), k));
        assert!(may_run_us_only(&json!({"inference_geo": "us"}), k));
        assert!(!may_run_us_only(&json!({"inference_geo": "global"}), k));
        // OpenAI requests have no such parameter.
        assert!(!may_run_us_only(&json!({}), ApiKind::OpenAiChat));
    }

    #[test]
    fn openai_data_residency_hosts_are_told_from_the_global_one() {
        for host in [
            "eu.api.openai.com",
            "US.api.openai.com",
            "jp.api.openai.com:443",
        ] {
            assert!(is_openai_data_residency_host(host), "{host}");
        }
        for host in [
            "api.openai.com",
            "api.openai.com:443",
            "eu.api.openai.com.evil.test",
            "my-proxy.api.openai.com",
            "127.0.0.1:8080",
            "api.anthropic.com",
        ] {
            assert!(!is_openai_data_residency_host(host), "{host}");
        }
    }

    #[test]
    fn the_uplift_is_a_tenth_rounded_up() {
        assert_eq!(uplift(1_000), 1_100);
        assert_eq!(uplift(1), 2);
        assert_eq!(uplift(0), 0);
    }
}
