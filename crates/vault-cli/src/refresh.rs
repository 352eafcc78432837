//! The refresh path shared by `refresh`, `token`, `header` and `exec`:
//! lock, re-read, re-check, refresh, persist each answer as it comes,
//! unlock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use vault_format::{Credential, Provider, Record, RefreshClass, Vault};
use vault_oauth::{
    RefreshOutcome, RefreshRequest, Refresher, RefresherConfig, SendWindow, records_to_refresh,
    refresh_need,
};

use crate::error::{CliError, Exit, Result};
use crate::keys::Keys;
use crate::signals::HeldStopSignals;
use crate::store::{IfWriteFails, LockGuard, Saved, Saver, Store};

/// One record's result in a refresh run.
pub(crate) struct RecordResult {
    pub(crate) name: String,
    pub(crate) class: Option<RefreshClass>,
    pub(crate) message: String,
    pub(crate) error_code: Option<String>,
    pub(crate) attempts: u32,
}

pub(crate) struct RunResult {
    pub(crate) vault: Vault,
    pub(crate) results: Vec<RecordResult>,
    pub(crate) wrote: bool,
    /// The rescue file that holds what the vault could not take.
    pub(crate) rescued: Option<PathBuf>,
}

impl RunResult {
    /// 6 (not saved) wins over 3 (re-authorize), which wins over 1
    /// (misconfigured), which wins over 4 (temporary): the more a person is
    /// needed, the higher it ranks.
    pub(crate) fn exit(&self) -> Exit {
        let has = |class| self.results.iter().any(|r| r.class == Some(class));
        if self.rescued.is_some() {
            Exit::NotSaved
        } else if has(RefreshClass::ReauthorizationRequired) {
            Exit::Reauthorize
        } else if has(RefreshClass::Misconfigured) {
            Exit::Failure
        } else if has(RefreshClass::Transient) {
            Exit::Temporary
        } else {
            Exit::Success
        }
    }
}

/// The single-threaded runtime a command's network work runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn message_for(record: &Record, outcome: &RefreshOutcome, rotated: bool) -> String {
    let name = &record.name;
    match outcome {
        RefreshOutcome::Refreshed(r) => {
            let mut text = "refreshed".to_owned();
            if let Some(expires_at) = r.expires_at {
                text.push_str(&format!(
                    ", valid until {}",
                    vault_oauth::rfc3339(expires_at)
                ));
            }
            if rotated {
                text.push_str(", refresh token rotated and saved");
            }
            text
        }
        RefreshOutcome::ReauthorizationRequired(error) => {
            let policy = if error.is_google_reauth_policy() {
                " (Google Workspace re-authentication policy)"
            } else {
                ""
            };
            let knows_where = match &record.credential {
                Credential::RefreshToken(c) => {
                    c.authorization_endpoint.is_some()
                        || matches!(record.provider, Provider::Google | Provider::Microsoft)
                }
                _ => true,
            };
            let auth_hint = if knows_where { "" } else { " --auth-url URL" };
            // Server descriptions often end a sentence already.
            // The error's text ends with its description, when it has one.
            let ends_sentence = error
                .description
                .as_deref()
                .is_some_and(|d| d.ends_with(['.', '!', '?']));
            let stop = if policy.is_empty() && ends_sentence {
                ""
            } else {
                "."
            };
            format!(
                "needs re-authorization: the server rejected the refresh token: {error}{policy}{stop} \
                 The record is kept; authorize again where a person can: \
                 `tokvault login {name} --again{auth_hint}` (--no-browser on a machine without one)"
            )
        }
        RefreshOutcome::Misconfigured(problem) => format!("misconfigured: {problem}"),
        RefreshOutcome::Salvaged(salvaged) => format!(
            "misconfigured: {}; the new refresh token it carried was saved",
            salvaged.misconfiguration()
        ),
        RefreshOutcome::Transient(failure) => format!("temporary failure, retry later: {failure}"),
    }
}

/// A run's time limit when none is given: requests start no later than
/// 45 s in (75 s minus the 30 s request timeout), so a run with its held
/// stop signals ends within systemd's default 90 s `TimeoutStopSec`.
pub(crate) const DEFAULT_MAX_RUN_TIME: Duration = Duration::from_secs(75);

/// Space reserved beyond the vault's size before a run: 64 KiB, plus 1 KiB
/// per record due for what its answer adds (a rotated token is about the
/// size of the old one; status text is at most 1 KiB).
const SLACK_PER_RECORD: u64 = 1024;
const SLACK_BASE: u64 = 64 * 1024;

/// What a refresh run covers.
pub(crate) struct RunOptions<'a> {
    /// Only these records (all when empty).
    pub(crate) names: &'a [String],
    /// Refresh when less than this validity remains.
    pub(crate) min_valid: Duration,
    /// Refresh even valid tokens.
    pub(crate) force: bool,
    /// No token request outlives this, counted from the first one.
    pub(crate) max_run_time: Duration,
}

/// Refreshes the records of the vault at `store` that need it, under the
/// lock. A result that changes tokens is saved as soon as it arrives
/// (results that arrive together in one write), so that a rotated refresh
/// token never waits in memory for a slower record; the others are saved at
/// the end. Saves go into space reserved before the first request, and to
/// the rescue file when the vault cannot take them.
pub(crate) fn run(
    store: &Store,
    guard: &LockGuard,
    keys: &mut Keys,
    options: &RunOptions<'_>,
) -> Result<RunResult> {
    let names = options.names;
    // Opened under the lock: another process may have refreshed already.
    let mut vault = store.open_locked(guard, keys)?;
    for name in names {
        if vault.record(name).is_none() {
            return Err(CliError::failure(format!(
                "no record named {name:?} (see `tokvault list`)"
            )));
        }
    }
    let now = unix_now();
    let due: Vec<usize> =
        records_to_refresh(vault.records(), now, options.min_valid, options.force)
            .into_iter()
            .filter(|&i| names.is_empty() || names.contains(&vault.records()[i].name))
            .collect();
    let mut applied = Applied::default();
    let mut requests = Vec::new();
    let mut request_index = Vec::new();
    for &i in &due {
        match RefreshRequest::from_record(&vault.records()[i]) {
            Ok(request) => {
                requests.push(request);
                request_index.push(i);
            }
            Err(problem) => {
                applied.apply(
                    &mut vault,
                    i,
                    RefreshOutcome::Misconfigured(problem),
                    0,
                    now,
                );
            }
        }
    }
    let mut saver = Saver::new(store, IfWriteFails::Rescue);
    let mut held = None;
    if !requests.is_empty() {
        let vault_len = std::fs::metadata(&store.path).map_or(SLACK_BASE, |m| m.len());
        let slack = SLACK_BASE + SLACK_PER_RECORD * requests.len() as u64;
        saver.reserve(guard, vault_len + slack)?;
        let refresher = Refresher::new(RefresherConfig::default())
            .map_err(|e| CliError::failure(e.to_string()))?;
        let runtime = runtime()?;
        let window = SendWindow::for_duration(options.max_run_time);
        // From the first request until the last save, a stop signal waits:
        // the server may already have rotated the refresh token
        // (crate::signals).
        held = Some(HeldStopSignals::hold());
        runtime.block_on(async {
            let stream = refresher.refresh_each(&requests, &window);
            let mut stream = std::pin::pin!(stream);
            while let Some(first) = stream.next().await {
                let mut tokens_changed = false;
                let mut batch = vec![first];
                while let Some(Some(more)) = stream.next().now_or_never() {
                    batch.push(more);
                }
                for (k, report) in batch {
                    tokens_changed |= applied.apply(
                        &mut vault,
                        request_index[k],
                        report.outcome,
                        report.attempts,
                        unix_now(),
                    );
                }
                if tokens_changed {
                    applied.save(&mut saver, guard, &mut vault);
                    if !saver.has_room(true) {
                        // Whatever comes next might not be saved: send no more.
                        window.close();
                    }
                }
            }
        });
    }
    if applied.unsaved {
        applied.save(&mut saver, guard, &mut vault);
    }
    let rescued = saver.rescued().map(Path::to_path_buf);
    saver.finish();
    drop(held);
    if let Some(error) = applied.save_error {
        return Err(error);
    }
    let mut results: Vec<RecordResult> = {
        let mut attempted = applied.results;
        attempted.sort_by_key(|(i, _)| *i);
        attempted.into_iter().map(|(_, r)| r).collect()
    };
    for (i, record) in vault.records().iter().enumerate() {
        if (names.is_empty() || names.contains(&record.name)) && !due.contains(&i) {
            let need = refresh_need(record, now, options.min_valid, false);
            let remaining = match need {
                vault_oauth::RefreshNeed::Fresh { remaining_secs } => remaining_secs,
                _ => 0,
            };
            results.push(RecordResult {
                name: record.name.clone(),
                class: None,
                message: format!(
                    "still valid for {}",
                    crate::output::human_duration(remaining)
                ),
                error_code: None,
                attempts: 0,
            });
        }
    }
    Ok(RunResult {
        vault,
        results,
        wrote: applied.wrote,
        rescued,
    })
}

/// The outcomes of a run applied to its vault so far, and how saving went.
#[derive(Default)]
struct Applied {
    /// Record index and result, in the order they arrived.
    results: Vec<(usize, RecordResult)>,
    /// Applied outcomes not saved yet.
    unsaved: bool,
    /// Some save reached the vault.
    wrote: bool,
    /// A save that reached neither the vault nor the rescue file.
    save_error: Option<CliError>,
}

impl Applied {
    /// Applies one outcome to record `i`; returns whether its tokens changed
    /// (what must be saved at once).
    fn apply(
        &mut self,
        vault: &mut Vault,
        i: usize,
        outcome: RefreshOutcome,
        attempts: u32,
        now: u64,
    ) -> bool {
        let record = &mut vault.records_mut()[i];
        let name = record.name.clone();
        let class = outcome.class();
        let tokens_changed = matches!(
            outcome,
            RefreshOutcome::Refreshed(_) | RefreshOutcome::Salvaged(_)
        );
        // A server that does not rotate may echo the same token back.
        let rotated = match (&outcome, &record.credential) {
            (RefreshOutcome::Refreshed(r), Credential::RefreshToken(c)) => r
                .refresh_token
                .as_ref()
                .is_some_and(|t| t.expose_secret() != c.refresh_token.expose_secret()),
            (RefreshOutcome::Salvaged(s), Credential::RefreshToken(c)) => {
                s.refresh_token.expose_secret() != c.refresh_token.expose_secret()
            }
            _ => false,
        };
        let message = message_for(record, &outcome, rotated);
        let error_code = outcome.server_error().map(|e| e.code.clone());
        let outcome_label = class.as_str();
        // Info for every outcome: the result lines on stdout already show
        // failures to people; JSON logs carry each refresh for collectors.
        tracing::info!(
            record = %name,
            outcome = outcome_label,
            error_code = error_code.as_deref(),
            attempts,
            rotated,
            "refresh: {message}"
        );
        // A transient failure changes nothing worth a write: the vault
        // stays byte-identical when the server is down.
        self.unsaved |= class != RefreshClass::Transient;
        outcome.apply_to(record, now);
        self.results.push((
            i,
            RecordResult {
                name,
                class: Some(class),
                message,
                error_code,
                attempts,
            },
        ));
        tokens_changed
    }

    fn save(&mut self, saver: &mut Saver<'_>, guard: &LockGuard, vault: &mut Vault) {
        match saver.save(guard, vault) {
            Ok(Saved::Vault) => {
                self.wrote = true;
                self.unsaved = false;
                self.save_error = None;
            }
            Ok(Saved::Rescue(path)) => {
                tracing::error!(
                    "the refreshed tokens were saved in the rescue file {}",
                    path.display()
                );
                self.unsaved = false;
                self.save_error = None;
            }
            Err(error) => {
                tracing::error!("{error}");
                self.save_error = Some(error);
            }
        }
    }
}
