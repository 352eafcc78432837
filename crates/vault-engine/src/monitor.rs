//! What follows a refresh run so that people learn in time: the health
//! kept between runs, early warnings (old refresh tokens, streaks of
//! temporary failures), the alert hook and the metrics file. Warnings go
//! to the log; nothing here ever sees a secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vault_format::Record;

use crate::health::Health;
use crate::hook::ReauthHook;
use crate::metrics::{RunMetrics, refresh_token_issued_at};
use crate::refresh::{RunSummary, human_duration};
use crate::session::Session;
use crate::store::Backend;

/// The monitoring a front end asked for.
#[derive(Clone, Debug, Default)]
pub struct Monitoring {
    /// Where the Prometheus metrics go after each run, if anywhere.
    pub metrics_file: Option<PathBuf>,
    /// Run for each record that needs re-authorization.
    pub hook: Option<ReauthHook>,
    /// Warn about refresh tokens at least this old.
    pub warn_refresh_age: Option<Duration>,
    /// Warn after this many temporary failures in a row (0: never).
    pub warn_transient_failures: u64,
}

impl Monitoring {
    /// After a run over `names` (empty: all records): keeps the health,
    /// warns, runs the hook and writes the metrics.
    pub fn after_run<B: Backend>(
        &self,
        session: &Session<B>,
        names: &[String],
        summary: &RunSummary,
        run: &RunMetrics<'_>,
    ) {
        let now = run.now;
        let (health, newly_rejected) = crate::health::update(
            session.state(),
            &summary.vault,
            &summary.results,
            now,
            session.options().lock_wait,
        );
        let selected = summary
            .vault
            .records()
            .iter()
            .filter(|r| names.is_empty() || names.contains(&r.name));
        warn_refresh_age(selected, self.warn_refresh_age, now);
        warn_transient_streaks(&health, self.warn_transient_failures, now);
        if let Some(hook) = &self.hook {
            hook.run(session.location(), summary, &newly_rejected);
        }
        if let Some(path) = &self.metrics_file {
            write_metrics(path, &crate::metrics::render(&summary.vault, &health, run));
        }
    }

    /// Metrics for a run that could not even start: monitoring must see it.
    pub fn failed_run(&self, run: &RunMetrics<'_>) {
        if let Some(path) = &self.metrics_file {
            write_metrics(path, &crate::metrics::render_failed_run(run));
        }
    }
}

/// Writes the metrics atomically, mode 0644 (node_exporter's textfile
/// collector usually runs as another user; nothing in it is secret). A
/// failure is logged: the run's outcome stands.
fn write_metrics(path: &Path, text: &str) {
    if let Err(error) = crate::fsio::write_atomic_mode(path, text.as_bytes(), true, 0o644) {
        tracing::error!("metrics not written: {error}");
    }
}

/// Records whose refresh token is at least `limit` old at `now`, with
/// that age in seconds.
pub fn old_refresh_tokens<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    limit: Duration,
    now: u64,
) -> Vec<(&'a Record, u64)> {
    records
        .into_iter()
        .filter_map(|record| {
            let age = now.saturating_sub(refresh_token_issued_at(record)?);
            (age >= limit.as_secs()).then_some((record, age))
        })
        .collect()
}

/// Warns about refresh tokens at least `limit` old (e.g. 6 days before
/// Google's 7-day limit for apps in Testing mode); `None`: never.
pub fn warn_refresh_age<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    limit: Option<Duration>,
    now: u64,
) {
    let Some(limit) = limit else {
        return;
    };
    for (record, age) in old_refresh_tokens(records, limit, now) {
        tracing::warn!(
            record = %record.name,
            refresh_token_age_seconds = age,
            warn_refresh_age_seconds = limit.as_secs(),
            "{}: the refresh token is {} old (--warn-refresh-age {}): re-authorize before the provider's limit \
             with `tokvault login {} --again`",
            record.name,
            human_duration(age),
            human_duration(limit.as_secs()),
            record.name,
        );
    }
}

/// Records whose token endpoint failed temporarily at least `threshold`
/// times in a row (0: none), with the streak and when it began.
pub fn transient_streaks(health: &Health, threshold: u64, now: u64) -> Vec<(&str, u64, u64)> {
    if threshold == 0 {
        return Vec::new();
    }
    health
        .records
        .iter()
        .filter(|(_, h)| h.transient_in_a_row >= threshold)
        .map(|(name, h)| {
            let since = h.failing_since.unwrap_or(now);
            (name.as_str(), h.transient_in_a_row, since)
        })
        .collect()
}

/// Warns about the streaks of [`transient_streaks`].
fn warn_transient_streaks(health: &Health, threshold: u64, now: u64) {
    for (name, in_a_row, since) in transient_streaks(health, threshold, now) {
        tracing::warn!(
            record = %name,
            transient_in_a_row = in_a_row,
            failing_since = since,
            "{name}: the token endpoint has failed temporarily {in_a_row} times in a row, for {}; \
             check the network, proxy and the provider's status",
            human_duration(now.saturating_sub(since)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::RecordHealth;
    use vault_format::{ClientAuth, Credential, Provider, RefreshTokenCredential, SecretString};

    fn record(name: &str, issued_at: Option<u64>, created_at: u64) -> Record {
        Record::new(
            name,
            Provider::Generic,
            "https://auth.example/token",
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: "id".to_owned(),
                client_secret: None,
                client_auth: ClientAuth::None,
                refresh_token: SecretString::copy_from("rt"),
                refresh_token_issued_at: issued_at,
                authorization_endpoint: None,
            }),
            created_at,
        )
    }

    #[test]
    fn refresh_tokens_as_old_as_the_limit_are_named() {
        let day = 86_400;
        let now = 10 * day;
        let records = [
            record("old", Some(now - 6 * day), 0),
            record("young", Some(now - 6 * day + 1), 0),
            // No issue time: the record's creation counts.
            record("created-long-ago", None, now - 7 * day),
        ];
        let old = old_refresh_tokens(&records, Duration::from_secs(6 * day), now);
        let names: Vec<(&str, u64)> = old.iter().map(|(r, age)| (r.name.as_str(), *age)).collect();
        assert_eq!(names, [("old", 6 * day), ("created-long-ago", 7 * day)]);
    }

    #[test]
    fn streaks_at_the_threshold_are_named_and_zero_means_never() {
        let mut health = Health::default();
        for (name, in_a_row, since) in [("a", 3, Some(100)), ("b", 2, Some(50)), ("c", 4, None)] {
            health.records.insert(
                name.to_owned(),
                RecordHealth {
                    transient_in_a_row: in_a_row,
                    failing_since: since,
                    ..RecordHealth::default()
                },
            );
        }
        assert_eq!(
            transient_streaks(&health, 3, 1_000),
            [("a", 3, 100), ("c", 4, 1_000)]
        );
        assert!(transient_streaks(&health, 0, 1_000).is_empty());
    }
}
