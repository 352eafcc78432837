//! What `serve` and `exec --gce-server/--azure-server` share: the runtime
//! they run on, the token settings, and stop signals caught as a future.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use vault_serve::endpoints::Endpoints;
use vault_serve::{RunReport, Started, TokenSettings};

use crate::context::{Context, VaultSession};
use crate::error::{CliError, Result};

/// A runtime for a server: two workers, so that requests are answered
/// while a refresh waits on its provider.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}

/// The server for `endpoints` on `listen`, its runs reported by `report`.
pub(crate) async fn start(
    ctx: &Context,
    listen: SocketAddr,
    endpoints: Endpoints,
    min_valid: Duration,
    report: impl Fn(&Arc<VaultSession>) -> RunReport,
) -> Result<Started<vault_engine::AnyBackend>> {
    let session = Arc::new(ctx.session()?);
    let report = report(&session);
    let settings = TokenSettings {
        min_valid,
        max_run_time: crate::commands::refresh::DEFAULT_MAX_RUN_TIME,
        retry_after: Duration::from_secs(30),
    };
    Ok(vault_serve::start(session, listen, endpoints, settings, report).await?)
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
