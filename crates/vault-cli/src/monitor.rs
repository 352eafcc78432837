//! Operating tokvault: early warnings, the re-authorization alert hook and
//! the Prometheus metrics file (the health they read is the engine's).
//! None of it ever sees a secret: it works on record names, times and
//! classes.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vault_engine::RunSummary;
use vault_engine::health::Health;
use vault_format::{Record, RefreshClass, Vault};

use crate::error::{Exit, Result};
use crate::output::refresh_token_issued_at;

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
                crate::output::human_duration(age),
                crate::output::human_duration(limit.as_secs()),
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
                crate::output::human_duration(now.saturating_sub(since)),
            );
        }
    }
}

/// Runs `command` (with `sh -c`) once per record in `rejected`, with the
/// record's name, account, provider and the server's error in the
/// environment. Never a secret; a failing or hanging hook is logged, not
/// fatal.
pub(crate) fn run_reauth_hook(
    command: &str,
    timeout: Duration,
    location: &str,
    summary: &RunSummary,
    newly: &[String],
) {
    let vault = &summary.vault;
    for result in &summary.results {
        if result.class != Some(RefreshClass::ReauthorizationRequired) {
            continue;
        }
        let record = vault.record(&result.name);
        let account = record.and_then(|r| r.account.clone()).unwrap_or_default();
        let provider = record.map_or("", |r| r.provider.as_str()).to_owned();
        let description = record
            .and_then(|r| r.last_refresh.as_ref())
            .and_then(|s| s.error_description.clone())
            .unwrap_or_default();
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(command)
            // Where the keys are is none of the hook's business.
            .env_remove("TOKVAULT_IDENTITY")
            .env_remove("TOKVAULT_PASSPHRASE_FILE")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env("TOKVAULT_RECORD", &result.name)
            .env("TOKVAULT_ACCOUNT", account)
            .env("TOKVAULT_PROVIDER", provider)
            .env(
                "TOKVAULT_ERROR",
                result.error_code.as_deref().unwrap_or_default(),
            )
            .env("TOKVAULT_ERROR_DESCRIPTION", description)
            .env("TOKVAULT_MESSAGE", &result.message)
            .env(
                "TOKVAULT_FIRST_ALERT",
                if newly.contains(&result.name) {
                    "1"
                } else {
                    "0"
                },
            )
            .env("TOKVAULT_VAULT", location)
            .stdin(Stdio::null())
            // Its output goes to our stderr, never into refresh's stdout.
            .stdout(Stdio::from(std::io::stderr()))
            // Its own process group, so that a timeout ends everything it
            // started (a grandchild would keep our stderr open).
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(record = %result.name, "the --on-reauth-needed hook could not start: {e}");
                continue;
            }
        };
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    kill_group(&child);
                    let _ = child.wait();
                    break None;
                }
            }
        };
        match status {
            Some(status) if status.success() => {
                tracing::info!(record = %result.name, "ran the --on-reauth-needed hook");
            }
            Some(status) => {
                tracing::error!(record = %result.name, "the --on-reauth-needed hook failed ({status})");
            }
            None => tracing::error!(
                record = %result.name,
                "the --on-reauth-needed hook ran longer than {} s and was killed \
                 (--on-reauth-needed-timeout)",
                timeout.as_secs()
            ),
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

/// A Prometheus label value (text format escaping).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics in Prometheus' text exposition format.
pub(crate) fn render_metrics(vault: &Vault, health: &Health, exit: Exit, now: u64) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    family(
        "tokvault_last_run_timestamp_seconds",
        "gauge",
        "Unix time of the last tokvault refresh run.",
        &[(String::new(), now as f64)],
    );
    family(
        "tokvault_last_run_exit_code",
        "gauge",
        "Exit code of the last refresh run (0 ok, 1 error, 3 re-authorization required, 4 temporary failure, 5 untrusted vault).",
        &[(String::new(), f64::from(exit as u8))],
    );
    family(
        "tokvault_records",
        "gauge",
        "Records in the vault.",
        &[(String::new(), vault.records().len() as f64)],
    );
    let records = vault.records();
    let of = |name: &str| format!("{{record=\"{}\"}}", label(name));
    let mut attempts = Vec::new();
    let mut outcome_now = Vec::new();
    let mut expiry = Vec::new();
    let mut age = Vec::new();
    let mut streak = Vec::new();
    let mut totals = Vec::new();
    for record in records {
        let h = health
            .records
            .get(&record.name)
            .cloned()
            .unwrap_or_default();
        let last_attempt = h
            .last_attempt_at
            .or(record.last_refresh.as_ref().map(|s| s.at));
        if let Some(at) = last_attempt {
            attempts.push((of(&record.name), at as f64));
        }
        let last_class = h
            .last_outcome
            .or(record.last_refresh.as_ref().map(|s| s.class));
        if let Some(last_class) = last_class {
            for class in RefreshClass::ALL {
                outcome_now.push((
                    format!(
                        "{{record=\"{}\",outcome=\"{}\"}}",
                        label(&record.name),
                        class.as_str()
                    ),
                    if class == last_class { 1.0 } else { 0.0 },
                ));
            }
        }
        if let Some(at) = record.access_token.as_ref().and_then(|a| a.expires_at) {
            expiry.push((of(&record.name), at as f64));
        }
        if let Some(issued) = refresh_token_issued_at(record) {
            age.push((of(&record.name), now.saturating_sub(issued) as f64));
        }
        streak.push((of(&record.name), h.transient_in_a_row as f64));
        for class in RefreshClass::ALL {
            let label_text = class.as_str();
            totals.push((
                format!(
                    "{{record=\"{}\",outcome=\"{label_text}\"}}",
                    label(&record.name)
                ),
                h.outcomes.get(label_text).copied().unwrap_or(0) as f64,
            ));
        }
    }
    family(
        "tokvault_last_refresh_timestamp_seconds",
        "gauge",
        "Unix time of the record's last refresh attempt.",
        &attempts,
    );
    family(
        "tokvault_last_refresh_outcome",
        "gauge",
        "1 for the outcome of the record's last refresh attempt, 0 for the others.",
        &outcome_now,
    );
    family(
        "tokvault_access_token_expiry_timestamp_seconds",
        "gauge",
        "Unix time at which the record's access token expires.",
        &expiry,
    );
    family(
        "tokvault_refresh_token_age_seconds",
        "gauge",
        "Age of the record's refresh token.",
        &age,
    );
    family(
        "tokvault_transient_failures_in_a_row",
        "gauge",
        "Consecutive temporary failures of the record's token endpoint.",
        &streak,
    );
    family(
        "tokvault_refresh_outcomes_total",
        "counter",
        "Refresh attempts of the record by outcome, since the health file was created.",
        &totals,
    );
    out
}

/// The run-level metrics of a run that stopped before it could read the
/// vault (exit 5, a busy lock, an unwritable directory).
pub(crate) fn render_failed_run(exit: Exit, now: u64) -> String {
    format!(
        "# HELP tokvault_last_run_timestamp_seconds Unix time of the last tokvault refresh run.\n\
         # TYPE tokvault_last_run_timestamp_seconds gauge\n\
         tokvault_last_run_timestamp_seconds {now}\n\
         # HELP tokvault_last_run_exit_code Exit code of the last refresh run (0 ok, 1 error, 3 re-authorization required, 4 temporary failure, 5 untrusted vault).\n\
         # TYPE tokvault_last_run_exit_code gauge\n\
         tokvault_last_run_exit_code {}\n",
        exit as u8
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }
}
