//! Operating tokvault: early warnings, the re-authorization alert hook and
//! the Prometheus metrics file (the health they read is the engine's).
//! None of it ever sees a secret: it works on record names, times and
//! classes.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vault_engine::health::Health;
use vault_engine::{RecordResult, RunSummary};
use vault_format::{Record, RefreshClass};

use crate::error::Result;
use vault_engine::metrics::refresh_token_issued_at;

/// Warns about refresh tokens at least `limit` old (e.g. 6 days before
/// Google's 7-day limit for apps in Testing mode). Returns how many.
pub(crate) fn warn_refresh_age<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    limit: Option<Duration>,
    now: u64,
) -> usize {
    let Some(limit) = limit else {
        return 0;
    };
    let mut warned = 0;
    for record in records {
        let Some(issued) = refresh_token_issued_at(record) else {
            continue;
        };
        let age = now.saturating_sub(issued);
        if age >= limit.as_secs() {
            warned += 1;
            tracing::warn!(
                record = %record.name,
                refresh_token_age_seconds = age,
                warn_refresh_age_seconds = limit.as_secs(),
                "{}: the refresh token is {} old (--warn-refresh-age {}): re-authorize before the provider's limit \
                 with `tokvault login {} --again`",
                record.name,
                crate::ui::output::human_duration(age),
                crate::ui::output::human_duration(limit.as_secs()),
                record.name,
            );
        }
    }
    warned
}

/// Warns about records whose token endpoint failed temporarily at least
/// `threshold` times in a row.
pub(crate) fn warn_transient_streaks(health: &Health, threshold: u64, now: u64) {
    if threshold == 0 {
        return;
    }
    for (name, h) in &health.records {
        if h.transient_in_a_row >= threshold {
            let since = h.failing_since.unwrap_or(now);
            tracing::warn!(
                record = %name,
                transient_in_a_row = h.transient_in_a_row,
                failing_since = since,
                "{name}: the token endpoint has failed temporarily {} times in a row, for {}; \
                 check the network, proxy and the provider's status",
                h.transient_in_a_row,
                crate::ui::output::human_duration(now.saturating_sub(since)),
            );
        }
    }
}

/// Runs `command` (with `sh -c`) once per record the run found rejected,
/// with the record's name, account, provider and the server's error in the
/// environment. Never a secret; a failing or hanging hook is logged, not
/// fatal.
pub(crate) fn run_reauth_hook(
    command: &str,
    timeout: Duration,
    location: &str,
    summary: &RunSummary,
    newly: &[String],
) {
    for result in &summary.results {
        if result.class != Some(RefreshClass::ReauthorizationRequired) {
            continue;
        }
        let env = hook_env(result, summary.vault.record(&result.name), newly, location);
        match run_with_timeout(command, &env, timeout) {
            Err(e) => {
                tracing::error!(record = %result.name, "the --on-reauth-needed hook could not start: {e}");
            }
            Ok(Some(status)) if status.success() => {
                tracing::info!(record = %result.name, "ran the --on-reauth-needed hook");
            }
            Ok(Some(status)) => {
                tracing::error!(record = %result.name, "the --on-reauth-needed hook failed ({status})");
            }
            Ok(None) => tracing::error!(
                record = %result.name,
                "the --on-reauth-needed hook ran longer than {} s and was killed \
                 (--on-reauth-needed-timeout)",
                timeout.as_secs()
            ),
        }
    }
}

/// What the hook learns about one rejected record.
fn hook_env(
    result: &RecordResult,
    record: Option<&Record>,
    newly: &[String],
    location: &str,
) -> Vec<(&'static str, String)> {
    let description = record
        .and_then(|r| r.last_refresh.as_ref())
        .and_then(|s| s.error_description.clone());
    vec![
        ("TOKVAULT_RECORD", result.name.clone()),
        (
            "TOKVAULT_ACCOUNT",
            record.and_then(|r| r.account.clone()).unwrap_or_default(),
        ),
        (
            "TOKVAULT_PROVIDER",
            record.map_or("", |r| r.provider.as_str()).to_owned(),
        ),
        (
            "TOKVAULT_ERROR",
            result.error_code.clone().unwrap_or_default(),
        ),
        (
            "TOKVAULT_ERROR_DESCRIPTION",
            description.unwrap_or_default(),
        ),
        ("TOKVAULT_MESSAGE", result.message.clone()),
        (
            "TOKVAULT_FIRST_ALERT",
            if newly.contains(&result.name) {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        ),
        ("TOKVAULT_VAULT", location.to_owned()),
    ]
}

/// `sh -c command` with `env` added, stdin closed, stdout to our stderr
/// (never into refresh's stdout), in its own process group, killed whole
/// after `timeout` (`Ok(None)`).
fn run_with_timeout(
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        // Where the keys are is none of the hook's business.
        .env_remove("TOKVAULT_IDENTITY")
        .env_remove("TOKVAULT_PASSPHRASE_FILE")
        .env_remove("CREDENTIALS_DIRECTORY")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        // A grandchild would keep our stderr open: the whole group goes.
        .process_group(0)
        .spawn()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                kill_group(&child);
                let _ = child.wait();
                return Ok(None);
            }
        }
    }
}

/// SIGKILL to the hook's process group (its pid: it leads the group).
fn kill_group(child: &std::process::Child) {
    let group = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

/// Writes the metrics to `path` atomically (mode 0644: node_exporter's
/// textfile collector usually runs as another user; nothing in it is secret).
pub(crate) fn write_metrics(path: &Path, text: &str) -> Result<()> {
    Ok(vault_engine::fsio::write_atomic_mode(
        path,
        text.as_bytes(),
        true,
        0o644,
    )?)
}
