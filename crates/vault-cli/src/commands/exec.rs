//! `tokvault exec NAME -- CMD...`: runs CMD with a valid access token in
//! its environment, and nothing that unlocks the vault. With
//! `--gce-server` or `--azure-server`, CMD instead gets a metadata server
//! on loopback that its Google or Microsoft client library finds by
//! itself and asks for fresh tokens for as long as it runs.

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::duration::parse_duration;
use crate::error::{CliError, Exit, Result};
use crate::servers::{self, Endpoints, StopSignals};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    #[arg(add = crate::completion::record_names())]
    name: String,
    /// Environment variable for the token [default: TOKVAULT_ACCESS_TOKEN;
    /// none with a server]
    #[arg(long, value_name = "VAR")]
    env: Option<String>,
    /// Refresh when less than this validity remains
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    min_valid: Duration,
    /// Serve Compute Engine metadata on 127.0.0.1 for the command, so that
    /// google.auth.default() and other Google libraries get fresh tokens
    #[arg(long)]
    gce_server: bool,
    /// What project/project-id answers on the metadata server [default: 404]
    #[arg(long, value_name = "ID", requires = "gce_server")]
    project_id: Option<String>,
    /// Serve the App Service managed-identity endpoint on 127.0.0.1 for
    /// the command, for azure-identity's ManagedIdentityCredential
    #[arg(long)]
    azure_server: bool,
    /// Serve this resource too, besides the origins of the record's
    /// URL-shaped scopes (repeatable)
    #[arg(long = "azure-resource", value_name = "URL", requires = "azure_server")]
    azure_resources: Vec<String>,
    /// The command and its arguments
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    if let Some(env) = &args.env
        && (env.is_empty() || env.contains('=') || env.contains('\0'))
    {
        return Err(CliError::usage(format!(
            "--env {env:?} is not a valid environment variable name"
        )));
    }
    if args.gce_server || args.azure_server {
        let code = with_servers(ctx, args)?;
        // The child's status is ours, as when exec replaces this process;
        // everything holding a secret was dropped with the runtime.
        std::process::exit(code);
    }
    let issued = super::token::valid_token(ctx, &args.name, args.min_valid)?;
    let token = issued.token;
    let mut command = command(args)?;
    let env = args.env.as_deref().unwrap_or("TOKVAULT_ACCESS_TOKEN");
    // How long the token lasts: a job that runs longer knows when to ask
    // again (`tokvault token --json`).
    if let Some(expires_at) = issued.expires_at {
        let expires_in = expires_at.saturating_sub(vault_engine::unix_now());
        command.env(
            format!("{env}_EXPIRES_AT"),
            vault_oauth::rfc3339(expires_at),
        );
        command.env(format!("{env}_EXPIRES_IN"), expires_in.to_string());
    }
    // exec replaces this process: the child's exit status is ours, and no
    // decrypted state outlives the switch.
    let error = command.env(env, token.expose_secret()).exec();
    drop(token);
    // As a shell reports a command it cannot run: 127 not found, 126 not
    // executable.
    eprintln!("tokvault: error: cannot run {:?}: {error}", args.command[0]);
    std::process::exit(spawn_failure_code(&error));
}

/// The exit code a shell gives a command that could not be started.
fn spawn_failure_code(error: &std::io::Error) -> i32 {
    match error.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    }
}

/// The command, without what unlocks the vault in its environment.
fn command(args: &Args) -> Result<Command> {
    let (program, program_args) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::usage("exec needs a command after --"))?;
    let mut command = Command::new(program);
    command.args(program_args);
    for variable in vault_engine::paths::KEY_VARIABLES {
        command.env_remove(variable);
    }
    Ok(command)
}

/// Runs the command beside the servers; its exit code (128 + signal when
/// a signal ended it, 127/126 when it cannot be started).
fn with_servers(ctx: &Context, args: &Args) -> Result<i32> {
    let header = args
        .azure_server
        .then(vault_serve::azure::random_header)
        .transpose()?;
    let endpoints = Endpoints {
        gce: if args.gce_server {
            vec![(None, args.name.clone())]
        } else {
            Vec::new()
        },
        project_id: args.project_id.clone(),
        azure: if args.azure_server {
            vec![args.name.clone()]
        } else {
            Vec::new()
        },
        azure_resources: args.azure_resources.clone(),
        azure_header: header.clone(),
        allowed_uids: Vec::new(),
    };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let runtime = servers::runtime()?;
    runtime.block_on(async {
        // Caught from here on: a stop while the first token is refreshed
        // waits for its save.
        let mut signals = StopSignals::listen()
            .map_err(|e| CliError::failure(format!("cannot catch stop signals: {e}")))?;
        let started = servers::start(ctx, listen, endpoints, args.min_valid, |session| {
            let session = Arc::clone(session);
            let lock_timeout = ctx.lock_timeout;
            Arc::new(move |summary: &vault_engine::RunSummary| {
                let now = vault_engine::unix_now();
                let state = session.state();
                vault_engine::health::update(
                    state,
                    &summary.vault,
                    &summary.results,
                    now,
                    lock_timeout,
                );
            })
        })
        .await?;
        // The job starts only with a grant that works: a rejected one is
        // exit 3 now, not an HTTP 502 inside the job later.
        let first = started
            .tokens
            .get(&args.name)
            .await
            .map_err(|failure| CliError::new(Exit::from(failure.kind), failure.message))?;
        let mut command = command(args)?;
        let port = started.address.port();
        if args.gce_server {
            vault_serve::environment::for_gce(&mut command, port);
        }
        if let Some(header) = &header {
            vault_serve::environment::for_azure(&mut command, port, header);
        }
        if let Some(env) = &args.env {
            command.env(env, first.token.expose_secret());
        }
        drop(first);
        if let Some(signal) = signals.arrived().await {
            // Stopped before the job started: it never runs.
            return Ok(128 + signal.as_raw());
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(started.server.run(async {
            let _ = stopped.await;
        }));
        let code = run_child(command, &args.command[0], &mut signals).await;
        let _ = stop.send(());
        // Any refresh in flight finishes and is saved before we exit.
        let _ = server.await;
        Ok(code)
    })
}

/// Starts the command, passes SIGTERM, SIGINT and SIGHUP on to it, and
/// returns its exit code as a shell would report it.
async fn run_child(command: Command, program: &str, signals: &mut StopSignals) -> i32 {
    let mut child = match tokio::process::Command::from(command).spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("tokvault: error: cannot run {program:?}: {error}");
            return spawn_failure_code(&error);
        }
    };
    match forward_signals_until_exit(&mut child, signals).await {
        Ok(status) => exit_code(status),
        Err(error) => {
            eprintln!("tokvault: error: waiting for {program:?} failed: {error}");
            1
        }
    }
}

async fn forward_signals_until_exit(
    child: &mut tokio::process::Child,
    signals: &mut StopSignals,
) -> std::io::Result<ExitStatus> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    loop {
        let signal = tokio::select! {
            status = child.wait() => return status,
            signal = signals.next() => signal,
        };
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}
