//! A server from a session and the endpoints asked for: what `serve` and
//! `exec --gce-server/--azure-server` both start.

use std::net::SocketAddr;
use std::sync::Arc;

use vault_engine::{Backend, EngineError, Result, Session};

use crate::endpoints::{Endpoints, server_config};
use crate::server::{BindError, Server};
use crate::tokens::{RunReport, TokenSettings, Tokens};

/// A bound server and the tokens it serves.
pub struct Started<B: Backend + 'static> {
    /// Accepts once run.
    pub server: Server<B>,
    /// The token cache, for a token before the server runs.
    pub tokens: Arc<Tokens<B>>,
    /// The address bound (the port, when asked for port 0).
    pub address: SocketAddr,
}

/// Opens the vault once to check `endpoints` against its records, then
/// binds `listen` (loopback only) for the records they serve.
pub async fn start<B: Backend + 'static>(
    session: Arc<Session<B>>,
    listen: SocketAddr,
    endpoints: Endpoints,
    settings: TokenSettings,
    report: RunReport,
) -> Result<Started<B>> {
    let vault = session.open().await?;
    let config = server_config(&vault, endpoints)?;
    drop(vault);
    let tokens = Tokens::new(
        session,
        vault_engine::refresher()?,
        settings,
        config.records(),
        report,
    )
    .map_err(|e| EngineError::failure(format!("cannot start the refresh worker: {e}")))?;
    let server = Server::bind(listen, config, Arc::clone(&tokens))
        .await
        .map_err(|e| match e {
            BindError::NotLoopback(_) => EngineError::usage(e.to_string()),
            BindError::Io { .. } => EngineError::failure(e.to_string()),
        })?;
    let address = server
        .local_addr()
        .map_err(|e| EngineError::failure(format!("cannot read the listening address: {e}")))?;
    Ok(Started {
        server,
        tokens,
        address,
    })
}
