//! Iron Cage runtime: the LlmRouter (a local governance proxy for LLM calls) and, later, AgentRuntime.

pub mod agent;
pub mod auth;
pub mod auth_limit;
mod auth_token;
pub mod browser;
pub mod config;
pub mod cost_policy;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod exchange;
pub mod forward;
pub mod inspect;
mod internal;
pub mod keys;
pub mod ledger;
pub mod logging;
pub mod pipeline;
pub mod policies;
pub mod provider;
pub mod relay;
mod relay_buffered;
mod relay_runs;
pub mod safety_policy;
pub mod server;
mod settle;
pub mod sse;
pub mod stats;
pub mod upstream_call;
pub mod upstream_h1;
pub mod ws_events;

pub use config::{ConfigError, RouterConfig};
pub use error::RouterError;
pub use events::{EventBus, RouterEvent};
pub use provider::Provider;
pub use server::{Router, StartError};
