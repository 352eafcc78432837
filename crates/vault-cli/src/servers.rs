//! What `serve` and `exec --gce-server/--azure-server` share: the
//! endpoints built from the options and the vault's records, the token
//! cache and the runtime they run on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use vault_format::{SecretString, Vault};
use vault_oauth::{Refresher, RefresherConfig};
use vault_serve::{
    AzureConfig, GceAccount, GceConfig, RunReport, Server, ServerConfig, TokenSettings, Tokens,
};

use crate::context::{Context, VaultSession};
use crate::error::{CliError, Result};

/// The endpoints asked for.
#[derive(Debug, Default)]
pub(crate) struct Endpoints {
    /// Compute Engine accounts: (email, record); the first is `default`,
    /// and without an email it is the record's account.
    pub(crate) gce: Vec<(Option<String>, String)>,
    /// `project/project-id`.
    pub(crate) project_id: Option<String>,
    /// Records served as managed identities.
    pub(crate) azure: Vec<String>,
    /// Resources served besides the origins of the records' scopes.
    pub(crate) azure_resources: Vec<String>,
    /// The `IDENTITY_HEADER` requests must carry.
    pub(crate) azure_header: Option<SecretString>,
    /// Uids besides ours that may ask.
    pub(crate) allowed_uids: Vec<u32>,
}

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
    let config = server_config(&vault, endpoints)?;
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

/// The endpoints' configuration, checked against the vault's records.
fn server_config(vault: &Vault, endpoints: Endpoints) -> Result<ServerConfig> {
    let record = |name: &str| {
        vault.record(name).ok_or_else(|| {
            CliError::failure(format!("no record named {name:?} (see `tokvault list`)"))
        })
    };
    let mut accounts = Vec::new();
    for (email, name) in &endpoints.gce {
        let record = record(name)?;
        let email = email
            .clone()
            .or_else(|| record.account.clone())
            .unwrap_or_else(|| format!("{name}@tokvault.invalid"));
        if accounts.iter().any(|a: &GceAccount| a.email == email) {
            return Err(CliError::usage(format!(
                "two records are served as {email}; give each its own email"
            )));
        }
        accounts.push(GceAccount {
            email,
            record: name.clone(),
            scopes: record.scopes.clone(),
        });
    }
    let gce = (!accounts.is_empty()).then(|| GceConfig {
        accounts,
        project_id: endpoints.project_id.clone(),
    });
    let azure = match endpoints.azure_header {
        Some(header) if !endpoints.azure.is_empty() => Some(azure_config(
            vault,
            &endpoints.azure,
            &endpoints.azure_resources,
            header,
        )?),
        _ => None,
    };
    Ok(ServerConfig {
        gce,
        azure,
        allowed_uids: endpoints.allowed_uids,
    })
}

/// Each Azure record serves the origins of its URL-shaped scopes and the
/// `--azure-resource`s; no resource may point at two records.
fn azure_config(
    vault: &Vault,
    names: &[String],
    extra: &[String],
    header: SecretString,
) -> Result<AzureConfig> {
    let mut extra_origins = Vec::new();
    for resource in extra {
        extra_origins.push(vault_serve::azure::origin(resource).ok_or_else(|| {
            CliError::usage(format!(
                "--azure-resource {resource:?} is not an http(s) URL (e.g. https://graph.microsoft.com)"
            ))
        })?);
    }
    let mut resources = BTreeMap::new();
    for name in names {
        let record = vault.record(name).ok_or_else(|| {
            CliError::failure(format!("no record named {name:?} (see `tokvault list`)"))
        })?;
        let mut served = vault_serve::azure::resources_of_scopes(&record.scopes);
        served.extend(extra_origins.iter().cloned());
        if served.is_empty() {
            return Err(CliError::usage(format!(
                "record {name:?} has no URL-shaped scope to derive a resource from; name one with --azure-resource URL"
            )));
        }
        for resource in served {
            if let Some(other) = resources.insert(resource.clone(), name.clone())
                && other != *name
            {
                return Err(CliError::usage(format!(
                    "resource {resource} would be served by both {other:?} and {name:?}; serve them from separate servers"
                )));
            }
        }
    }
    Ok(AzureConfig { header, resources })
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
