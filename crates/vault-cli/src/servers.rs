//! What `serve` and `exec --gce-server/--azure-server` share: the
//! endpoints built from the options and the vault's records, the token
//! cache and the runtime they run on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use vault_oauth::{Refresher, RefresherConfig};
pub(crate) use vault_serve::endpoints::Endpoints;
use vault_serve::{RunReport, Server, TokenSettings, Tokens};

use crate::context::{Context, VaultSession};
use crate::error::{CliError, Result};

/// A bound server and what it serves.
pub(crate) struct Bound {
    pub(crate) server: Server<vault_engine::AnyBackend>,
    pub(crate) tokens: Arc<Tokens<vault_engine::AnyBackend>>,
    pub(crate) address: SocketAddr,
}

/// A runtime for a server: two workers, so that requests are answered
/// while a refresh waits on its provider.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}

/// Opens the vault once to learn the records, then binds `listen`.
pub(crate) async fn bind(
    ctx: &Context,
    listen: SocketAddr,
    endpoints: Endpoints,
    min_valid: Duration,
    report: impl Fn(&Arc<VaultSession>) -> RunReport,
) -> Result<Bound> {
    let session = Arc::new(ctx.session()?);
    let vault = session.open().await?;
    let config = vault_serve::endpoints::server_config(&vault, endpoints)?;
    drop(vault);
    let mut records: Vec<String> = config
        .gce
        .iter()
        .flat_map(|g| g.accounts.iter().map(|a| a.record.clone()))
        .chain(
            config
                .azure
                .iter()
                .flat_map(|a| a.resources.values().cloned()),
        )
        .collect();
    records.sort();
    records.dedup();
    let refresher =
        Refresher::new(RefresherConfig::default()).map_err(|e| CliError::failure(e.to_string()))?;
    let settings = TokenSettings {
        min_valid,
        max_run_time: crate::commands::refresh::DEFAULT_MAX_RUN_TIME,
        retry_after: Duration::from_secs(30),
    };
    let report = report(&session);
    let tokens = Tokens::new(session, refresher, settings, records, report)
        .map_err(|e| CliError::failure(format!("cannot start the refresh worker: {e}")))?;
    let server = Server::bind(listen, config, Arc::clone(&tokens))
        .await
        .map_err(|e| match e {
            vault_serve::BindError::NotLoopback(_) => CliError::usage(e.to_string()),
            vault_serve::BindError::Io { .. } => CliError::failure(e.to_string()),
        })?;
    let address = server
        .local_addr()
        .map_err(|e| CliError::failure(format!("cannot read the listening address: {e}")))?;
    Ok(Bound {
        server,
        tokens,
        address,
    })
}

/// Resolves when SIGTERM, SIGINT or SIGHUP arrives.
pub(crate) async fn stop_signal() {
    match StopSignals::listen() {
        Ok(mut signals) => {
            signals.next().await;
        }
        Err(error) => {
            tracing::error!("cannot listen for stop signals ({error}); stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught from the moment this exists: none
/// of them ends the process while a refresh may be out.
pub(crate) struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(crate) fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next one to arrive.
    pub(crate) async fn next(&mut self) -> rustix::process::Signal {
        use rustix::process::Signal;
        tokio::select! {
            _ = self.term.recv() => Signal::TERM,
            _ = self.int.recv() => Signal::INT,
            _ = self.hup.recv() => Signal::HUP,
        }
    }

    /// One that arrived already, if any.
    pub(crate) async fn arrived(&mut self) -> Option<rustix::process::Signal> {
        tokio::select! {
            biased;
            signal = self.next() => Some(signal),
            () = std::future::ready(()) => None,
        }
    }
}
