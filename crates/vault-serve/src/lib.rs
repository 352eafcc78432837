//! tokvault's local credential servers: the Compute Engine metadata
//! protocol and the App Service managed-identity protocol on loopback, so
//! that Google's and Microsoft's client libraries, unmodified, get access
//! tokens from a vault and never see a refresh token or a key.
//!
//! Who may ask is decided per connection from the socket's owner
//! ([`peer`]); tokens come from [`tokens::Tokens`], which refreshes through
//! the engine's transaction. Like the engine, this crate never prints,
//! prompts or exits: it logs through `tracing`.

pub mod azure;
pub mod endpoints;
pub mod environment;
pub mod gce;
pub mod metrics;
pub mod peer;
pub mod server;
pub mod start;
pub mod tokens;

pub use azure::AzureConfig;
pub use gce::{GceAccount, GceConfig};
pub use server::{BindError, Server, ServerConfig};
pub use start::{Started, start};
pub use tokens::{Failure, RunReport, Served, TokenSettings, Tokens};
