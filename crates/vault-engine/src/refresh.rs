//! A refresh run in two phases: [`Session::begin_refresh`] takes the lease,
//! opens the vault, picks the records due, builds their requests and
//! reserves the room the saves need, all before anything is sent;
//! [`RefreshRun::run`] sends them and saves each answer that changes tokens
//! as soon as it arrives. A front end holds what must not interrupt a save
//! (stop signals; a server, a task nobody cancels) around `run` only.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use vault_format::{Credential, Record, RefreshClass, Vault};
use vault_oauth::{
    RefreshOutcome, RefreshRequest, Refresher, RefresherConfig, SendWindow, records_to_refresh,
    refresh_need,
};

use crate::error::{EngineError, ErrorKind, Result};
use crate::session::{IfWriteFails, Saved, Saver, Session, unix_now};
use crate::store::{Backend, Lease, Version};

/// Room reserved beyond the vault's size before a run: 64 KiB, plus 1 KiB
/// per record due for what its answer adds (a rotated token is about the
/// size of the old one; status text is at most 1 KiB).
const SLACK_BASE: u64 = 64 * 1024;
const SLACK_PER_RECORD: u64 = 1024;

/// A lease with a time to live must keep this much beyond the last request.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Which records a run covers.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Only these records (all when empty).
    pub names: Vec<String>,
    /// Refresh when less than this validity remains.
    pub min_valid: Duration,
    /// Refresh even valid tokens.
    pub force: bool,
}

impl Selection {
    fn covers(&self, record: &Record) -> bool {
        self.names.is_empty() || self.names.contains(&record.name)
    }
}

/// One record's result in a run.
#[derive(Clone, Debug)]
pub struct RecordResult {
    /// The record.
    pub name: String,
    /// The outcome's class; `None`: still valid, not refreshed.
    pub class: Option<RefreshClass>,
    /// What happened, for people (never a secret).
    pub message: String,
    /// The server's error code, if any.
    pub error_code: Option<String>,
    /// Token requests made.
    pub attempts: u32,
}

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    /// The vault as the run left it.
    pub vault: Vault,
    /// Attempted records in vault order, then the ones still valid.
    pub results: Vec<RecordResult>,
    /// Some save reached the vault.
    pub wrote: bool,
    /// The rescue file that holds what the vault could not take.
    pub rescued: Option<PathBuf>,
}

impl RunSummary {
    /// The class of the run, `None` when all went well: not saved wins
    /// over re-authorize, which wins over misconfigured, which wins over
    /// temporary; the more a person is needed, the higher it ranks.
    pub fn kind(&self) -> Option<ErrorKind> {
        let has = |class| self.results.iter().any(|r| r.class == Some(class));
        if self.rescued.is_some() {
            Some(ErrorKind::NotSaved)
        } else if has(RefreshClass::ReauthorizationRequired) {
            Some(ErrorKind::Reauthorize)
        } else if has(RefreshClass::Misconfigured) {
            Some(ErrorKind::Failure)
        } else if has(RefreshClass::Transient) {
            Some(ErrorKind::Temporary)
        } else {
            None
        }
    }

    /// The result of `name`, if it was in the run.
    pub fn result(&self, name: &str) -> Option<&RecordResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// The records whose refresh token was rejected: a person must
    /// authorize them again.
    pub fn rejected(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.class == Some(RefreshClass::ReauthorizationRequired))
            .map(|r| r.name.clone())
            .collect()
    }

    /// Counts `names` as refreshed: a person authorized them again after
    /// the run, and their new tokens are saved.
    pub fn mark_reauthorized(&mut self, names: &[String]) {
        for result in &mut self.results {
            if names.contains(&result.name) {
                result.class = Some(RefreshClass::Refreshed);
                result.error_code = None;
                result.message = "re-authorized, new tokens saved".to_owned();
            }
        }
    }
}

/// The token endpoint client with the default settings.
pub fn refresher() -> Result<Refresher> {
    Refresher::new(RefresherConfig::default()).map_err(|e| EngineError::failure(e.to_string()))
}

/// A run prepared under the lease, nothing sent yet.
pub struct RefreshRun<'s, B: Backend> {
    session: &'s Session<B>,
    lease: B::Lease<'s>,
    vault: Vault,
    version: Option<Version>,
    selection: Selection,
    now: u64,
    due: Vec<usize>,
    requests: Vec<RefreshRequest>,
    request_index: Vec<usize>,
    applied: Applied,
}

impl<B: Backend> Session<B> {
    /// Phase one: takes the lease and prepares a run.
    pub async fn begin_refresh(&self, selection: Selection) -> Result<RefreshRun<'_, B>> {
        let lease = self.lock_existing().await?;
        self.begin_refresh_under(lease, selection).await
    }

    /// A whole run over `selection`: phase one under the lease, then phase
    /// two with `hold()` kept (stop signals held, say) from the first
    /// request to the last save.
    pub async fn refresh<H>(
        &self,
        selection: Selection,
        max_run_time: Duration,
        hold: impl FnOnce() -> H,
    ) -> Result<RunSummary> {
        let run = self.begin_refresh(selection).await?;
        run.run_holding(&refresher()?, max_run_time, hold).await
    }

    /// [`Session::begin_refresh`] under a lease the caller took.
    pub async fn begin_refresh_under<'s>(
        &'s self,
        mut lease: B::Lease<'s>,
        selection: Selection,
    ) -> Result<RefreshRun<'s, B>> {
        // Opened under the lease: another process may have refreshed already.
        let opened = self.open_locked(&mut lease).await?;
        let mut vault = opened.vault;
        for name in &selection.names {
            if vault.record(name).is_none() {
                return Err(EngineError::no_record(name));
            }
        }
        let now = unix_now();
        let due: Vec<usize> =
            records_to_refresh(vault.records(), now, selection.min_valid, selection.force)
                .into_iter()
                .filter(|&i| selection.covers(&vault.records()[i]))
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
        if !requests.is_empty() {
            let room = opened.size + SLACK_BASE + SLACK_PER_RECORD * requests.len() as u64;
            lease.reserve(room).await.map_err(|e| {
                EngineError::temporary(format!(
                    "nothing was refreshed: {e}; free space (or raise the quota) where the vault \
                     is, then run again"
                ))
            })?;
        }
        Ok(RefreshRun {
            session: self,
            lease,
            vault,
            version: opened.version,
            selection,
            now,
            due,
            requests,
            request_index,
            applied,
        })
    }
}

impl<'s, B: Backend> RefreshRun<'s, B> {
    /// The token requests phase two will send (none: nothing to send).
    pub fn requests(&self) -> &[RefreshRequest] {
        &self.requests
    }

    /// [`RefreshRun::run`] with `hold()` kept while requests are out and
    /// their answers unsaved (not at all when nothing is sent).
    pub async fn run_holding<H>(
        self,
        refresher: &Refresher,
        max_run_time: Duration,
        hold: impl FnOnce() -> H,
    ) -> Result<RunSummary> {
        let _held = (!self.requests().is_empty()).then(hold);
        self.run(refresher, max_run_time).await
    }

    /// Phase two: sends the requests, at most `max_run_time` from now (and
    /// within the lease's time to live), and saves each answer that changes
    /// tokens as it arrives (answers that arrive together in one save); the
    /// others are saved at the end. What the vault cannot take goes to the
    /// rescue file, and then no further request is sent.
    pub async fn run(
        mut self,
        refresher: &Refresher,
        max_run_time: Duration,
    ) -> Result<RunSummary> {
        let mut saver = Saver::new(
            self.session,
            &mut self.lease,
            self.version.take(),
            IfWriteFails::Rescue,
        );
        let mut vault = self.vault;
        let mut applied = self.applied;
        if !self.requests.is_empty() {
            let lease_left = saver
                .lease()
                .remaining()
                .map(|left| left.saturating_sub(LEASE_MARGIN));
            let window =
                SendWindow::for_duration(lease_left.map_or(max_run_time, |l| l.min(max_run_time)));
            let stream = refresher.refresh_each(&self.requests, &window);
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
                        self.request_index[k],
                        report.outcome,
                        report.attempts,
                        unix_now(),
                    );
                }
                if tokens_changed {
                    applied.save(&mut saver, &mut vault).await;
                    if !applied.may_go_on(&mut saver) {
                        // Whatever comes next might not be saved: send no more.
                        window.close();
                    }
                }
            }
        }
        if applied.unsaved {
            applied.save(&mut saver, &mut vault).await;
        }
        let rescued = saver.rescued().map(std::path::Path::to_path_buf);
        saver.finish();
        if let Some(error) = applied.save_error {
            return Err(error);
        }
        let mut attempted = applied.results;
        attempted.sort_by_key(|(i, _)| *i);
        let mut results: Vec<RecordResult> = attempted.into_iter().map(|(_, r)| r).collect();
        for (i, record) in vault.records().iter().enumerate() {
            if self.selection.covers(record) && !self.due.contains(&i) {
                results.push(fresh_result(record, self.now, self.selection.min_valid));
            }
        }
        Ok(RunSummary {
            vault,
            results,
            wrote: applied.wrote,
            rescued,
        })
    }
}

fn fresh_result(record: &Record, now: u64, min_valid: Duration) -> RecordResult {
    let remaining = match refresh_need(record, now, min_valid, false) {
        vault_oauth::RefreshNeed::Fresh { remaining_secs } => remaining_secs,
        _ => 0,
    };
    RecordResult {
        name: record.name.clone(),
        class: None,
        message: format!("still valid for {}", human_duration(remaining)),
        error_code: None,
        attempts: 0,
    }
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
    save_error: Option<EngineError>,
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
        let rotated = rotates(&outcome, record);
        let message = message_for(record, &outcome, rotated);
        let error_code = outcome.server_error().map(|e| e.code.clone());
        // Info for every outcome: the result lines already show failures
        // to people; JSON logs carry each refresh for collectors.
        tracing::info!(
            record = %name,
            outcome = class.as_str(),
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

    async fn save<B: Backend>(&mut self, saver: &mut Saver<'_, '_, B>, vault: &mut Vault) {
        match saver.save(vault).await {
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

    /// Whether a next save can still be trusted to land: nothing went to
    /// the rescue file, no save failed, and the room reserved is still held.
    fn may_go_on<B: Backend>(&self, saver: &mut Saver<'_, '_, B>) -> bool {
        self.save_error.is_none() && saver.rescued().is_none() && saver.lease().has_room()
    }
}

/// Whether `outcome` replaces the record's refresh token (a server that
/// does not rotate may echo the same one back).
fn rotates(outcome: &RefreshOutcome, record: &Record) -> bool {
    let Credential::RefreshToken(credential) = &record.credential else {
        return false;
    };
    let new = match outcome {
        RefreshOutcome::Refreshed(r) => r.refresh_token.as_ref(),
        RefreshOutcome::Salvaged(s) => Some(&s.refresh_token),
        _ => None,
    };
    new.is_some_and(|t| t.expose_secret() != credential.refresh_token.expose_secret())
}

/// `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s / 60 % 60),
        s => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

/// The line a person reads about one record's outcome.
fn message_for(record: &Record, outcome: &RefreshOutcome, rotated: bool) -> String {
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
        RefreshOutcome::ReauthorizationRequired(error) => reauthorization_message(record, error),
        RefreshOutcome::Misconfigured(problem) => format!("misconfigured: {problem}"),
        RefreshOutcome::Salvaged(salvaged) => format!(
            "misconfigured: {}; the new refresh token it carried was saved",
            salvaged.misconfiguration()
        ),
        RefreshOutcome::Transient(failure) => format!("temporary failure, retry later: {failure}"),
    }
}

fn reauthorization_message(record: &Record, error: &vault_oauth::ServerError) -> String {
    let name = &record.name;
    let policy = if error.is_google_reauth_policy() {
        " (Google Workspace re-authentication policy)"
    } else {
        ""
    };
    // What `login --again` would use: the stored endpoint or the provider's.
    let knows_where = vault_oauth::LoginPlan::for_record(record, &[], None, None)
        .map_or(true, |plan| !plan.authorization_endpoint.is_empty());
    let (auth_hint, fill_in) = if knows_where {
        ("", String::new())
    } else {
        (
            " --auth-url AUTHORIZATION_URL",
            format!(
                ". The record stores no authorization endpoint: for AUTHORIZATION_URL give that of \
                 the server whose token endpoint is {} (authorization_endpoint in its \
                 /.well-known/openid-configuration, or its documentation); it is stored for next time",
                record.token_endpoint
            ),
        )
    };
    // No doubled full stop when the server's description, which ends the
    // error's text, already ends a sentence.
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
         `tokvault login {name} --again{auth_hint}` (--no-browser on a machine without one){fill_in}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, class: Option<RefreshClass>) -> RecordResult {
        RecordResult {
            name: name.to_owned(),
            class,
            message: "m".to_owned(),
            error_code: Some("invalid_grant".to_owned()),
            attempts: 1,
        }
    }

    fn imported(provider: vault_format::Provider, authorization_endpoint: Option<&str>) -> Record {
        Record::new(
            "mail",
            provider,
            "https://auth.example/oauth/token",
            Credential::RefreshToken(vault_format::RefreshTokenCredential {
                client_id: "c".to_owned(),
                client_secret: None,
                client_auth: vault_format::ClientAuth::None,
                refresh_token: vault_format::SecretString::copy_from("rt"),
                refresh_token_issued_at: None,
                authorization_endpoint: authorization_endpoint.map(str::to_owned),
            }),
            0,
        )
    }

    #[test]
    fn the_reauthorization_hint_is_runnable_or_names_what_to_fill_in() {
        use vault_format::Provider;
        let error = vault_oauth::ServerError {
            status: 400,
            code: "invalid_grant".to_owned(),
            subtype: None,
            description: None,
        };
        let runnable = "`tokvault login mail --again` (--no-browser on a machine without one)";
        for record in [
            imported(Provider::Google, None),
            imported(Provider::Microsoft, None),
            imported(
                Provider::Generic,
                Some("https://auth.example/oauth/authorize"),
            ),
        ] {
            let message = reauthorization_message(&record, &error);
            assert!(message.ends_with(runnable), "{message}");
        }
        let message = reauthorization_message(&imported(Provider::Generic, None), &error);
        assert!(
            message.contains("`tokvault login mail --again --auth-url AUTHORIZATION_URL`"),
            "{message}"
        );
        assert!(
            message.contains(
                "for AUTHORIZATION_URL give that of the server whose token endpoint \
                              is https://auth.example/oauth/token"
            ),
            "{message}"
        );
        assert!(
            !message.contains(" URL`"),
            "no bare URL placeholder: {message}"
        );
    }

    #[test]
    fn re_authorized_records_no_longer_count_as_rejected() {
        let recipient = age::x25519::Identity::generate().to_public().to_string();
        let mut summary = RunSummary {
            vault: crate::vaults::create_vault(&[recipient], None).expect("vault"),
            results: vec![
                result("a", Some(RefreshClass::ReauthorizationRequired)),
                result("b", Some(RefreshClass::ReauthorizationRequired)),
                result("c", None),
            ],
            wrote: true,
            rescued: None,
        };
        assert_eq!(summary.rejected(), ["a", "b"]);
        assert_eq!(summary.kind(), Some(ErrorKind::Reauthorize));
        summary.mark_reauthorized(&["a".to_owned()]);
        assert_eq!(summary.rejected(), ["b"]);
        let a = summary.result("a").expect("a");
        assert_eq!(a.class, Some(RefreshClass::Refreshed));
        assert_eq!(a.error_code, None);
        summary.mark_reauthorized(&["b".to_owned()]);
        assert_eq!(summary.kind(), None);
    }
}
