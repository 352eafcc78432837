//! `tokvault refresh`: the server job. Refreshes what is due, saves each
//! answer as it arrives, then the engine's monitoring (health, warnings,
//! the alert hook, metrics); prints one line (or JSON) per record.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use vault_engine::{Monitoring, ReauthHook, RunSummary, Selection};
use vault_format::RefreshClass;

use crate::context::{Context, VaultSession, block_on};
use crate::duration::{parse_duration, parse_positive_duration};
use crate::error::{Exit, Result};
use crate::signals::HeldStopSignals;
use crate::ui::output::print;

/// A run's time limit when none is given: requests start no later than
/// 45 s in (75 s minus the 30 s request timeout), so a run with its held
/// stop signals ends within systemd's default 90 s `TimeoutStopSec`.
pub(crate) const DEFAULT_MAX_RUN_TIME: Duration = Duration::from_secs(75);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only these records
    #[arg(add = crate::completion::record_names())]
    names: Vec<String>,
    /// Refresh when less than this validity remains
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    min_valid: Duration,
    /// Refresh even valid tokens
    #[arg(long)]
    force: bool,
    /// Longest time token requests may take, from the first one: none
    /// starts later than this minus the 30 s request timeout (a shorter
    /// limit shortens that timeout instead). The default keeps a run,
    /// and the stop signals it holds, inside systemd's 90 s TimeoutStopSec
    #[arg(long, default_value = "75s", value_parser = parse_positive_duration, value_name = "DURATION")]
    max_run_time: Duration,
    /// When a record needs re-authorization and stdin is a terminal, run
    /// `login --again` for it, then go on (without a terminal: exit 3 as usual)
    #[arg(long)]
    reauthorize: bool,
    #[command(flatten)]
    monitor: MonitorArgs,
    /// JSON output
    #[arg(long)]
    json: bool,
}

/// Monitoring options of `refresh` and `serve`.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct MonitorArgs {
    /// Write Prometheus metrics here after each run, atomically (for
    /// node_exporter's textfile collector)
    #[arg(long, env = "TOKVAULT_METRICS_FILE", value_name = "PATH")]
    pub(crate) metrics_file: Option<PathBuf>,
    /// Run this shell command once per record that needs re-authorization,
    /// with TOKVAULT_RECORD, TOKVAULT_ACCOUNT, TOKVAULT_ERROR... in its
    /// environment (no secrets); its failure is logged, not fatal
    #[arg(long, env = "TOKVAULT_ON_REAUTH_NEEDED", value_name = "CMD")]
    pub(crate) on_reauth_needed: Option<String>,
    /// How long the hook may run; then it is killed with everything it
    /// started (its process group)
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub(crate) on_reauth_needed_timeout: Duration,
    /// Warn when a refresh token is at least this old (e.g. 6d for Google
    /// apps in Testing mode, whose refresh tokens die after 7 days)
    #[arg(long, env = "TOKVAULT_WARN_REFRESH_AGE", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) warn_refresh_age: Option<Duration>,
    /// Warn when a token endpoint failed temporarily this many runs in a row (0: never)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) warn_transient_failures: u64,
}

impl MonitorArgs {
    pub(crate) fn monitoring(&self) -> Monitoring {
        Monitoring {
            metrics_file: self.metrics_file.clone(),
            hook: self.on_reauth_needed.as_ref().map(|command| ReauthHook {
                command: command.clone(),
                timeout: self.on_reauth_needed_timeout,
            }),
            warn_refresh_age: self.warn_refresh_age,
            warn_transient_failures: self.warn_transient_failures,
        }
    }
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session()?;
    let mut summary = match block_on(run(&session, args)).and_then(|run| run) {
        Ok(summary) => summary,
        Err(error) => {
            args.monitor
                .monitoring()
                .failed_run(&run_metrics(error.exit));
            return Err(error);
        }
    };
    if args.reauthorize {
        reauthorize(&session, &mut summary);
    }
    let exit = summary.kind().map_or(Exit::Success, Exit::from);
    if let Some(rescue) = &summary.rescued {
        eprintln!(
            "tokvault: error: {}",
            vault_engine::rescued_error(session.location(), rescue)
        );
    }
    args.monitor
        .monitoring()
        .after_run(&session, &args.names, &summary, &run_metrics(exit));
    for result in &summary.results {
        if let Some(class) = result.class.filter(|c| *c != RefreshClass::Refreshed) {
            let temporary = class == RefreshClass::Transient;
            ctx.report
                .record_failed(&result.name, &result.message, temporary);
        }
    }
    render(args.json, &summary, exit)?;
    Ok(exit)
}

/// Phase one under the lease, then phase two with stop signals held from
/// the first request to the last save (crate::signals).
async fn run(session: &VaultSession, args: &Args) -> Result<RunSummary> {
    let selection = Selection {
        names: args.names.clone(),
        min_valid: args.min_valid,
        force: args.force,
    };
    Ok(session
        .refresh(selection, args.max_run_time, HeldStopSignals::hold)
        .await?)
}

/// `--reauthorize`: logs in again, on the spot, the records the run found
/// rejected.
fn reauthorize(session: &VaultSession, summary: &mut RunSummary) {
    let renewed =
        super::login::reauthorize_interactively(session, &summary.vault, &summary.rejected());
    summary.mark_reauthorized(&renewed);
}

/// The run as the metrics file reports it.
pub(crate) fn run_metrics(exit: Exit) -> vault_engine::metrics::RunMetrics<'static> {
    vault_engine::metrics::RunMetrics {
        now: vault_engine::unix_now(),
        exit_code: exit as u8,
        exit_codes: Exit::REFRESH_CODES,
    }
}

/// One line per record, or one JSON object.
fn render(json: bool, summary: &RunSummary, exit: Exit) -> Result<()> {
    if !json {
        for result in &summary.results {
            print(&format!("{}: {}", result.name, result.message))?;
        }
        return Ok(());
    }
    let results: Vec<_> = summary
        .results
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "outcome": r.class.map_or("fresh", RefreshClass::as_str),
                "error_code": r.error_code,
                "message": r.message,
                "attempts": r.attempts,
            })
        })
        .collect();
    print(
        &serde_json::to_string_pretty(
            &json!({ "records": results, "saved": summary.wrote, "exit_code": exit as u8 }),
        )
        .unwrap_or_default(),
    )?;
    Ok(())
}
