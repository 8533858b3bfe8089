//! What the router knows about one request as it moves through the pipeline.

use crate::provider::Provider;
use std::time::Instant;

/// Which API a request calls, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAiChat,
    OpenAiCompletions,
    OpenAiResponses,
    OpenAiEmbeddings,
    AnthropicMessages,
    AnthropicCountTokens,
    Other,
}

impl Api {
    /// Classify a normalised path.
    pub fn from_path(path: &str) -> Api {
        let p = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        match p {
            "/v1/chat/completions" => Api::OpenAiChat,
            "/v1/completions" => Api::OpenAiCompletions,
            "/v1/responses" => Api::OpenAiResponses,
            "/v1/embeddings" => Api::OpenAiEmbeddings,
            "/v1/messages" => Api::AnthropicMessages,
            "/v1/messages/count_tokens" => Api::AnthropicCountTokens,
            _ => Api::Other,
        }
    }

    /// The API whose answer a `GET` of `path` returns: a stored response (`/v1/responses/{id}`,
    /// also streamed with `?stream=true`) or a stored chat completion. Not billed again, but its
    /// text is checked like the original answer's.
    pub fn retrieved(path: &str) -> Option<Api> {
        let p = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        let one_segment = |rest: &str| !rest.is_empty() && !rest.contains('/');
        if p.strip_prefix("/v1/responses/").is_some_and(one_segment) {
            Some(Api::OpenAiResponses)
        } else if p
            .strip_prefix("/v1/chat/completions/")
            .is_some_and(one_segment)
        {
            Some(Api::OpenAiChat)
        } else {
            None
        }
    }

    /// Lowercase name for events and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAiChat => "chat.completions",
            Api::OpenAiCompletions => "completions",
            Api::OpenAiResponses => "responses",
            Api::OpenAiEmbeddings => "embeddings",
            Api::AnthropicMessages => "messages",
            Api::AnthropicCountTokens => "messages.count_tokens",
            Api::Other => "other",
        }
    }

    /// True when the call is billed by tokens.
    pub fn is_billable(self) -> bool {
        !matches!(self, Api::Other | Api::AnthropicCountTokens)
    }
}

/// One request in flight.
pub struct Exchange {
    pub id: u64,
    pub started: Instant,
    pub provider: Provider,
    pub shape: Provider,
    pub model: Option<String>,
    pub api: Api,
    /// The API whose answer shape the response has: `api`, or for a retrieval (see
    /// [`Api::retrieved`]) the API that made the answer.
    pub answer_api: Api,
    pub stream: bool,
    /// The router asked for usage on an OpenAI chat stream; the usage-only chunk is removed.
    pub strip_usage_chunk: bool,
    pub host: String,
    /// The input the call is expected to bill, for an answer whose usage never arrives: its text
    /// estimated, its images and audio clips at the hold's counts, at the tier it asked for.
    pub estimated_input_tokens: iron_cost::InputEstimate,
    /// The request body when `estimated_input_tokens` is only its length over 4 (no budget): read
    /// for a real estimate if the stream ends before its usage.
    pub estimate_body: Option<bytes::Bytes>,
    /// Price of the model, when the catalog knows it.
    pub price: Option<iron_cost::ModelPrice>,
    /// Budget held for this call; committed or released at settle.
    pub reservation: Option<iron_cost::Reservation>,
    /// Flat charge for an unpriced model allowed by the `unknownModel` option.
    pub flat_cost_micros: Option<u64>,
    /// Breaker admission, recorded with the call's outcome at settle.
    pub permit: Option<iron_reliability::Permit>,
    /// The status the client got when the router answered in the provider's place (a whole answer
    /// blocked by the response policy); events and the ledger report it. `None`: the provider's.
    pub client_status: Option<u16>,
    /// The model may bill thinking or audio the stream does not show as text (see
    /// `RequestInfo::may_reason`): a stream cut short before its usage is charged its hold, not
    /// the text seen.
    pub may_reason: bool,
    /// Keeps the key(s) the call was sent with out of the answer (see `key_guard`).
    pub(crate) guard: Option<crate::key_guard::KeyGuard>,
    /// Cancelled when the router stops this call (see [`crate::server::CallStop`]).
    pub stop: tokio_util::sync::CancellationToken,
}
