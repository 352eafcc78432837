//! `tokvault serve`: the Compute Engine metadata and App Service
//! managed-identity endpoints on loopback, long-running (systemd), so that
//! jobs of this or another user (`--allow-uid`) get access tokens from
//! unmodified Google and Microsoft client libraries.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vault_serve::RunReport;

use super::refresh::{MonitorArgs, run_metrics};
use crate::context::{Context, VaultSession};
use crate::duration::parse_duration;
use crate::error::{CliError, Exit, Result};
use crate::servers::{self, Endpoints};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on: loopback only; port 0 picks a free port
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Serve this record as the Compute Engine default service account
    #[arg(long, value_name = "RECORD", add = crate::completion::record_names())]
    gce: Option<String>,
    /// Serve this record as the service account EMAIL too (repeatable)
    #[arg(long = "gce-account", value_name = "EMAIL=RECORD", value_parser = parse_account)]
    gce_accounts: Vec<(String, String)>,
    /// What project/project-id answers [default: 404]
    #[arg(long, value_name = "ID")]
    project_id: Option<String>,
    /// Serve this record as an App Service managed identity (repeatable)
    #[arg(
        long = "azure",
        value_name = "RECORD",
        requires = "azure_header_file",
        add = crate::completion::record_names()
    )]
    azure: Vec<String>,
    /// Serve this resource too, besides the origins of the record's
    /// URL-shaped scopes (repeatable)
    #[arg(long = "azure-resource", value_name = "URL", requires = "azure")]
    azure_resources: Vec<String>,
    /// File (mode 0600) holding the IDENTITY_HEADER value jobs must send
    #[arg(long, value_name = "FILE", requires = "azure")]
    azure_header_file: Option<PathBuf>,
    /// A served token has at least this validity left (or half the
    /// provider's lifetime, when that is shorter)
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    min_valid: Duration,
    /// Also answer processes of this user (repeatable); others get 403
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uids: Vec<u32>,
    #[command(flatten)]
    monitor: MonitorArgs,
}

fn parse_account(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((email, record)) if !email.is_empty() && !record.is_empty() => {
            Ok((email.to_owned(), record.to_owned()))
        }
        _ => Err(format!("{text:?}: write EMAIL=RECORD")),
    }
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let endpoints = endpoints(args)?;
    let runtime = servers::runtime()?;
    runtime.block_on(async {
        let started = servers::start(ctx, args.listen, endpoints, args.min_valid, |session| {
            report(session, &args.monitor)
        })
        .await?;
        announce(started.address)?;
        tracing::info!(
            records = ?started.tokens.records().collect::<Vec<_>>(),
            "serving on {}",
            started.address
        );
        started.server.run(servers::stop_signal()).await;
        tracing::info!("stopped");
        Ok(Exit::Success)
    })
}

fn endpoints(args: &Args) -> Result<Endpoints> {
    if args.gce.is_none() && args.gce_accounts.is_empty() && args.azure.is_empty() {
        return Err(CliError::usage(
            "nothing to serve: give --gce RECORD, --gce-account EMAIL=RECORD or --azure RECORD",
        ));
    }
    let gce = args
        .gce
        .iter()
        .map(|record| (None, record.clone()))
        .chain(
            args.gce_accounts
                .iter()
                .map(|(email, record)| (Some(email.clone()), record.clone())),
        )
        .collect();
    let azure_header = args
        .azure_header_file
        .as_deref()
        .map(|path| {
            vault_serve::azure::read_header(path, &vault_engine::SecretFilePolicy::from_env())
        })
        .transpose()?;
    Ok(Endpoints {
        gce,
        project_id: args.project_id.clone(),
        azure: args.azure.clone(),
        azure_resources: args.azure_resources.clone(),
        azure_header,
        allowed_uids: args.allow_uids.clone(),
    })
}

/// The first line on stdout, for scripts and tests waiting for the port.
fn announce(address: SocketAddr) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {address}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::failure(format!("cannot write to stdout: {e}")))
}

/// After each refresh run: health, warnings, the hook and the metrics
/// file, as after `tokvault refresh`.
fn report(session: &Arc<VaultSession>, monitor: &MonitorArgs) -> RunReport {
    let session = Arc::clone(session);
    let monitoring = monitor.monitoring();
    Arc::new(move |summary| {
        let exit = summary.kind().map_or(Exit::Success, Exit::from);
        monitoring.after_run(&session, &[], summary, &run_metrics(exit));
    })
}
