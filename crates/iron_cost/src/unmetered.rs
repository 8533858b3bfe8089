//! Requests whose cost cannot be held from the request alone: provider-run tools, search models,
//! background responses, service tiers and modes the price data has no rates for, compaction.

use crate::api_kind::ApiKind;
use serde_json::Value;

/// Why a request's cost cannot be held from the request alone; the router refuses such calls
/// while a budget is set unless the `unmeteredCalls` option allows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmetered {
    /// A tool the provider runs itself (web search, code execution, file search, MCP...): each
    /// use feeds results back through the model and some add per-use fees.
    ServerTool(String),
    /// An OpenAI chat search model (see [`is_chat_search_model`]): it runs a web search on every
    /// call, billed a per-search fee and search content the request does not show.
    SearchModel(String),
    /// A Responses call run in the background: its usage arrives later, on another request.
    Background,
    /// A request for a service tier (priority) the price data has no rates for, for this model
    /// at this input size: the provider bills it above the standard rates by an unknown amount.
    ServiceTier {
        /// The tier asked for.
        tier: &'static str,
        /// The catalog id of the model.
        model: String,
    },
    /// An Anthropic request for fast mode (`speed: "fast"`): billed at a premium over the
    /// standard rates (several times them) that the price data does not carry.
    FastMode,
    /// An Anthropic request with server-side compaction (`context_management` edit
    /// `compact_…`): its summary passes read the conversation and write a summary before the
    /// answer, possibly several times, billing input and output the request does not bound.
    Compaction,
}

impl std::fmt::Display for Unmetered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmetered::ServerTool(t) => write!(f, "it uses the provider-run tool '{t}', whose searches, fetches or runs bill input and fees the router cannot bound"),
            Unmetered::SearchModel(m) => write!(f, "the model '{m}' runs a provider-run web search on every call, whose fees and search content the router cannot bound"),
            Unmetered::Background => write!(f, "it runs in the background (background: true), so its usage is reported later on another request"),
            Unmetered::ServiceTier { tier, model } => write!(f, "it asks for service_tier '{tier}', and Iron Cage's price data has no {tier} rates for {model} at this input size (the provider bills it above the standard rates)"),
            Unmetered::FastMode => write!(f, "it asks for Anthropic's fast mode (speed: 'fast'), which Anthropic bills at a premium over the standard rates, and Iron Cage's price data has no fast-mode rates; send it without speed: 'fast' to have it held at the standard rates"),
            Unmetered::Compaction => write!(f, "it asks for Anthropic's server-side compaction (a context_management edit of type compact_…), whose summary passes read the conversation and write a summary before the answer, billing input and output the request does not bound"),
        }
    }
}

/// The first reason `body` cannot be held, if any.
pub fn unmetered(body: &Value, kind: ApiKind) -> Option<Unmetered> {
    match kind {
        ApiKind::OpenAiResponses if body.get("background") == Some(&Value::Bool(true)) => {
            return Some(Unmetered::Background);
        }
        // Chat runs no tools of its own, but web search: asked for with `web_search_options`,
        // and always run by the search models.
        ApiKind::OpenAiChat => {
            if body.get("web_search_options").is_some_and(|v| !v.is_null()) {
                return Some(Unmetered::ServerTool("web_search_options".into()));
            }
            let model = body.get("model").and_then(Value::as_str).unwrap_or("");
            return is_chat_search_model(model).then(|| Unmetered::SearchModel(model.into()));
        }
        // Fast mode is `speed: "fast"`; any speed but the standard one is held as unknown.
        ApiKind::AnthropicMessages
            if body
                .get("speed")
                .is_some_and(|s| !s.is_null() && s.as_str() != Some("standard")) =>
        {
            return Some(Unmetered::FastMode);
        }
        ApiKind::AnthropicMessages
            if body
                .get("context_management")
                .and_then(|c| c.get("edits"))
                .and_then(Value::as_array)
                .is_some_and(|edits| {
                    edits.iter().any(|e| {
                        e.get("type")
                            .and_then(Value::as_str)
                            .is_some_and(|t| t.starts_with("compact"))
                    })
                }) =>
        {
            return Some(Unmetered::Compaction);
        }
        ApiKind::AnthropicMessages
            if body
                .get("mcp_servers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()) =>
        {
            return Some(Unmetered::ServerTool("mcp_servers".into()));
        }
        ApiKind::OpenAiResponses | ApiKind::AnthropicMessages => {}
        _ => return None,
    }
    let tools = body.get("tools").and_then(Value::as_array)?;
    tools.iter().find_map(|t| {
        let ty = t.get("type").and_then(Value::as_str)?;
        is_server_tool(kind, ty).then(|| Unmetered::ServerTool(ty.to_string()))
    })
}

/// Whether `model` is one of OpenAI's chat search models (`gpt-4o-search-preview`,
/// `gpt-4o-mini-search-preview`, `gpt-5-search-api` and their snapshots), which run a web search
/// on every chat completion.
pub fn is_chat_search_model(model: &str) -> bool {
    let name = crate::model_name::normalize(model);
    name.contains("-search-preview") || name.contains("-search-api")
}

/// Web searches a call runs whatever its answer reports: one for an OpenAI chat completion of a
/// search model (chat usage does not count them), none otherwise. Each is billed the model's
/// search fee, where the price data has one.
pub fn searches_per_call(kind: ApiKind, model: &str) -> u64 {
    u64::from(kind == ApiKind::OpenAiChat && is_chat_search_model(model))
}

/// OpenAI Responses: every tool type but `function` and `custom` runs at OpenAI. Anthropic: typed
/// tools are the provider's; of those, the computer, bash, text editor and memory tools run on
/// the client (they only add a fixed prompt), the rest (web search and fetch, code execution,
/// tool search...) on Anthropic's side.
fn is_server_tool(kind: ApiKind, ty: &str) -> bool {
    match kind {
        ApiKind::OpenAiResponses => !matches!(ty, "function" | "custom"),
        ApiKind::AnthropicMessages => ty != "custom" && !is_anthropic_client_tool(ty),
        _ => false,
    }
}

pub(crate) fn is_anthropic_client_tool(ty: &str) -> bool {
    ["computer_", "bash_", "text_editor_", "memory_"]
        .iter()
        .any(|p| ty.starts_with(p))
}
