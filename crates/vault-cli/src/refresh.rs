//! The refresh path shared by `refresh`, `token`, `header` and `exec`:
//! lock, re-read, re-check, refresh, persist, unlock.

use std::time::Duration;

use vault_format::{Credential, Provider, Record, RefreshClass, Vault};
use vault_oauth::{
    RefreshOutcome, RefreshRequest, Refresher, RefresherConfig, records_to_refresh, refresh_need,
};

use crate::error::{CliError, Exit, Result};
use crate::keys::Keys;
use crate::signals::HeldStopSignals;
use crate::store::Store;

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
}

impl RunResult {
    /// 3 (re-authorize) wins over 1 (misconfigured), which wins over 4
    /// (temporary): the more a person is needed, the higher it ranks.
    pub(crate) fn exit(&self) -> Exit {
        let has = |class| self.results.iter().any(|r| r.class == Some(class));
        if has(RefreshClass::ReauthorizationRequired) {
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

/// Refreshes the records of the vault at `store` that need it (only
/// `names` when given), under the lock, and persists before returning.
pub(crate) fn run(
    store: &Store,
    keys: &mut Keys,
    lock_timeout: Duration,
    names: &[String],
    min_valid: Duration,
    force: bool,
) -> Result<RunResult> {
    store.check_writable()?;
    let _guard = store.lock(lock_timeout)?;
    // Re-read under the lock: another process may have refreshed already.
    let bytes = store.read()?;
    let mut vault = store.open(&bytes, keys)?;
    for name in names {
        if vault.record(name).is_none() {
            return Err(CliError::failure(format!(
                "no record named {name:?} (see `tokvault list`)"
            )));
        }
    }
    let now = unix_now();
    let due: Vec<usize> = records_to_refresh(vault.records(), now, min_valid, force)
        .into_iter()
        .filter(|&i| names.is_empty() || names.contains(&vault.records()[i].name))
        .collect();
    let mut results = Vec::new();
    let mut outcomes: Vec<(usize, RefreshOutcome, u32)> = Vec::new();
    let mut requests = Vec::new();
    let mut request_index = Vec::new();
    for &i in &due {
        match RefreshRequest::from_record(&vault.records()[i]) {
            Ok(request) => {
                requests.push(request);
                request_index.push(i);
            }
            Err(problem) => outcomes.push((i, RefreshOutcome::Misconfigured(problem), 0)),
        }
    }
    // From the first request until the write, a stop signal waits: the
    // server may already have rotated the refresh token (crate::signals).
    let mut held = None;
    if !requests.is_empty() {
        let refresher = Refresher::new(RefresherConfig::default())
            .map_err(|e| CliError::failure(e.to_string()))?;
        let runtime = runtime()?;
        held = Some(HeldStopSignals::hold());
        let reports = runtime.block_on(refresher.refresh_all(&requests));
        for (i, report) in request_index.into_iter().zip(reports) {
            outcomes.push((i, report.outcome, report.attempts));
        }
    }
    let mut changed = false;
    outcomes.sort_by_key(|(i, _, _)| *i);
    for (i, outcome, attempts) in outcomes {
        let record = &mut vault.records_mut()[i];
        let name = record.name.clone();
        let class = outcome.class();
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
        let outcome_label = crate::output::class_label(class);
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
        changed |= class != RefreshClass::Transient;
        outcome.apply_to(record, now);
        results.push(RecordResult {
            name,
            class: Some(class),
            message,
            error_code,
            attempts,
        });
    }
    for (i, record) in vault.records().iter().enumerate() {
        if (names.is_empty() || names.contains(&record.name)) && !due.contains(&i) {
            let need = refresh_need(record, now, min_valid, false);
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
    if changed {
        let sealed = vault
            .seal(unix_now())
            .map_err(|e| CliError::failure(format!("cannot encrypt the vault: {e}")))?;
        store.write(&sealed, &vault, true)?;
    }
    drop(held);
    Ok(RunResult {
        vault,
        results,
        wrote: changed,
    })
}
