//! Operating tokvault: refresh health kept between runs, early warnings,
//! the re-authorization alert hook and the Prometheus metrics file. None
//! of it ever sees a secret: it works on record names, times and classes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vault_format::{Record, RefreshClass, Vault};

use crate::error::{CliError, Exit, Result};
use crate::output::refresh_token_issued_at;
use crate::refresh::RecordResult;
use crate::store::Store;

/// One record's history across runs. Transient failures never change the
/// vault (it stays byte-identical), so their streak lives here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordHealth {
    pub(crate) last_attempt_at: Option<u64>,
    pub(crate) last_outcome: Option<RefreshClass>,
    pub(crate) transient_in_a_row: u64,
    pub(crate) failing_since: Option<u64>,
    pub(crate) reauthorization_needed_since: Option<u64>,
    pub(crate) outcomes: BTreeMap<&'static str, u64>,
}

/// Health of every record of one vault, in `state_dir/health/`.
#[derive(Debug, Default)]
pub(crate) struct Health {
    pub(crate) records: BTreeMap<String, RecordHealth>,
}

impl Health {
    fn parse(text: &str) -> Self {
        let mut health = Self::default();
        let Ok(Value::Object(top)) = serde_json::from_str::<Value>(text) else {
            return health;
        };
        let Some(Value::Object(records)) = top.get("records") else {
            return health;
        };
        for (name, entry) in records {
            let number = |key: &str| entry.get(key).and_then(Value::as_u64);
            let mut outcomes = BTreeMap::new();
            for class in RefreshClass::ALL {
                let label = class.as_str();
                if let Some(n) = entry["outcomes"].get(label).and_then(Value::as_u64) {
                    outcomes.insert(label, n);
                }
            }
            health.records.insert(
                name.clone(),
                RecordHealth {
                    last_attempt_at: number("last_attempt_at"),
                    last_outcome: entry["last_outcome"]
                        .as_str()
                        .and_then(RefreshClass::from_label),
                    transient_in_a_row: number("transient_in_a_row").unwrap_or(0),
                    failing_since: number("failing_since"),
                    reauthorization_needed_since: number("reauthorization_needed_since"),
                    outcomes,
                },
            );
        }
        health
    }

    fn to_json(&self) -> String {
        let records: serde_json::Map<String, Value> = self
            .records
            .iter()
            .map(|(name, h)| {
                (
                    name.clone(),
                    json!({
                        "last_attempt_at": h.last_attempt_at,
                        "last_outcome": h.last_outcome.map(RefreshClass::as_str),
                        "transient_in_a_row": h.transient_in_a_row,
                        "failing_since": h.failing_since,
                        "reauthorization_needed_since": h.reauthorization_needed_since,
                        "outcomes": h.outcomes,
                    }),
                )
            })
            .collect();
        serde_json::to_string_pretty(&json!({ "version": 1, "records": records }))
            .unwrap_or_default()
    }

    /// Folds one run's results in. Returns the names whose need for
    /// re-authorization is new in this run.
    fn record_run(&mut self, vault: &Vault, results: &[RecordResult], now: u64) -> Vec<String> {
        let mut newly_rejected = Vec::new();
        for result in results {
            let Some(class) = result.class else {
                continue;
            };
            let entry = self.records.entry(result.name.clone()).or_default();
            entry.last_attempt_at = Some(now);
            entry.last_outcome = Some(class);
            *entry.outcomes.entry(class.as_str()).or_insert(0) += 1;
            if class == RefreshClass::Transient {
                entry.transient_in_a_row += 1;
                entry.failing_since.get_or_insert(now);
            } else {
                entry.transient_in_a_row = 0;
                entry.failing_since = None;
            }
            match class {
                RefreshClass::ReauthorizationRequired
                    if entry.reauthorization_needed_since.is_none() =>
                {
                    entry.reauthorization_needed_since = Some(now);
                    newly_rejected.push(result.name.clone());
                }
                RefreshClass::Refreshed => entry.reauthorization_needed_since = None,
                _ => {}
            }
        }
        self.records.retain(|name, _| vault.record(name).is_some());
        newly_rejected
    }
}

/// Loads, updates and saves the health of `store`'s vault under its own
/// lock (two refreshes at once must not lose a count). A health file that
/// cannot be kept only costs the streaks and counters: warn and go on.
pub(crate) fn update_health(
    store: &Store,
    vault: &Vault,
    results: &[RecordResult],
    now: u64,
) -> (Health, Vec<String>) {
    let path = store.health_path();
    let result = (|| -> Result<(Health, Vec<String>)> {
        let _lock = store.lock_health()?;
        let mut health = match std::fs::read_to_string(&path) {
            Ok(text) => Health::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Health::default(),
            Err(e) => return Err(CliError::io("cannot read", &path, &e)),
        };
        let newly = health.record_run(vault, results, now);
        crate::fsio::write_atomic(&path, health.to_json().as_bytes(), true)?;
        Ok((health, newly))
    })();
    result.unwrap_or_else(|error| {
        tracing::warn!(
            "refresh health is not kept ({error}); failure streaks and counters start again"
        );
        let mut health = Health::default();
        let newly = health.record_run(vault, results, now);
        (health, newly)
    })
}

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
    store: &Store,
    vault: &Vault,
    results: &[RecordResult],
    newly: &[String],
) {
    for result in results {
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
            .env("TOKVAULT_VAULT", &store.path)
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
    crate::fsio::write_atomic_mode(path, text.as_bytes(), true, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }

    #[test]
    fn health_round_trips_and_tolerates_garbage() {
        let mut health = Health::default();
        health.records.insert(
            "mail".to_owned(),
            RecordHealth {
                last_attempt_at: Some(5),
                last_outcome: Some(RefreshClass::Transient),
                transient_in_a_row: 3,
                failing_since: Some(1),
                reauthorization_needed_since: None,
                outcomes: BTreeMap::from([("transient", 3), ("refreshed", 7)]),
            },
        );
        let parsed = Health::parse(&health.to_json());
        assert_eq!(parsed.records, health.records);
        assert!(Health::parse("not json").records.is_empty());
        assert!(Health::parse("{\"records\": 5}").records.is_empty());
    }
}
