//! An access token a job can use now: the stored one while it stays valid
//! long enough (no lease, no write), else refreshed and saved first.

use std::time::Duration;

use vault_format::{Record, RefreshClass, SecretString};
use vault_oauth::{Refresher, refresh_need};

use crate::error::{EngineError, ErrorKind, Result};
use crate::refresh::{RecordResult, RunSummary, Selection};
use crate::session::{Locked, Session, unix_now};
use crate::store::Backend;
use crate::vaults::record;

/// Validity an older token must still have to be used after a refresh that
/// failed for now.
const STALE_MARGIN: u64 = 30;

/// A token to hand out, and why it is not a fresh one when it is not.
#[derive(Debug)]
pub struct IssuedToken {
    /// The access token.
    pub token: SecretString,
    /// Unix seconds when it expires, if known.
    pub expires_at: Option<u64>,
    /// The record's scopes.
    pub scopes: Vec<String>,
    /// Set when the refresh failed for now and an older, still valid token
    /// is used: what went wrong.
    pub stale_because: Option<String>,
}

/// The record's stored access token when it stays valid for `min_valid`.
pub fn stored_token(record: &Record, now: u64, min_valid: Duration) -> Option<IssuedToken> {
    let access = record.access_token.as_ref()?;
    if refresh_need(record, now, min_valid, false).should_refresh() {
        return None;
    }
    Some(IssuedToken {
        token: access.token.clone(),
        expires_at: access.expires_at,
        scopes: record.scopes.clone(),
        stale_because: None,
    })
}

/// After a refresh run: fresh from the server (or from a writer that got
/// the lease first), any remaining validity will do; after a temporary
/// failure, an older token only with [`STALE_MARGIN`] left; otherwise the
/// run's outcome, as an error of its class.
pub fn choose_token(
    record: &Record,
    result: Option<&RecordResult>,
    now: u64,
) -> Result<IssuedToken> {
    let unexpired = |margin: u64| {
        record
            .access_token
            .as_ref()
            .filter(move |a| a.expires_at.is_none_or(|at| at > now + margin))
    };
    let class = result.and_then(|r| r.class);
    let issue = |access: &vault_format::AccessToken, stale_because| IssuedToken {
        token: access.token.clone(),
        expires_at: access.expires_at,
        scopes: record.scopes.clone(),
        stale_because,
    };
    match (class, unexpired(0), unexpired(STALE_MARGIN)) {
        (Some(RefreshClass::Refreshed) | None, Some(access), _) => Ok(issue(access, None)),
        (Some(RefreshClass::Transient), _, Some(access)) => Ok(issue(
            access,
            Some(result.map_or_else(String::new, |r| r.message.clone())),
        )),
        _ => {
            let message =
                result.map_or_else(|| "no valid access token".to_owned(), |r| r.message.clone());
            let kind = match class {
                Some(RefreshClass::ReauthorizationRequired) => ErrorKind::Reauthorize,
                Some(RefreshClass::Transient) => ErrorKind::Temporary,
                _ => ErrorKind::Failure,
            };
            Err(EngineError::new(
                kind,
                format!("{}: {message}", record.name),
            ))
        }
    }
}

impl<B: Backend> Session<B> {
    /// The stored token of `name`, read without the lease, when it stays
    /// valid for `min_valid`.
    pub async fn stored_token(
        &self,
        name: &str,
        min_valid: Duration,
    ) -> Result<Option<IssuedToken>> {
        let vault = self.open().await?;
        Ok(stored_token(record(&vault, name)?, unix_now(), min_valid))
    }

    /// A token for `name` valid for `min_valid`: the stored one, one a
    /// concurrent holder of the lease saves meanwhile, or a fresh one.
    /// `hold` is called just before the first token request and its value
    /// dropped after the last save (the CLI holds stop signals with it).
    pub async fn access_token<H>(
        &self,
        name: &str,
        min_valid: Duration,
        refresher: impl FnOnce() -> Result<Refresher>,
        max_run_time: Duration,
        hold: impl FnOnce() -> H,
    ) -> Result<(IssuedToken, Option<RunSummary>)> {
        if let Some(token) = self.stored_token(name, min_valid).await? {
            return Ok((token, None));
        }
        self.refreshed_token(name, min_valid, refresher, max_run_time, hold)
            .await
    }

    /// [`Session::access_token`] for a caller that found no stored token
    /// valid for `min_valid` already.
    pub async fn refreshed_token<H>(
        &self,
        name: &str,
        min_valid: Duration,
        refresher: impl FnOnce() -> Result<Refresher>,
        max_run_time: Duration,
        hold: impl FnOnce() -> H,
    ) -> Result<(IssuedToken, Option<RunSummary>)> {
        let run = self
            .token_run(name, min_valid, refresher, max_run_time, hold)
            .await?;
        Ok((run.token?, run.summary))
    }

    /// [`Session::refreshed_token`] that keeps the run's summary when no
    /// token can be handed out (a server still reports a rejected grant to
    /// health, hook and metrics).
    pub async fn token_run<H>(
        &self,
        name: &str,
        min_valid: Duration,
        refresher: impl FnOnce() -> Result<Refresher>,
        max_run_time: Duration,
        hold: impl FnOnce() -> H,
    ) -> Result<TokenRun> {
        // While another process refreshes, it saves each answer as it
        // comes: the token may be there before the lease is free.
        let locked = self
            .lock_or(async || self.stored_token(name, min_valid).await.ok().flatten())
            .await?;
        let lease = match locked {
            Locked::Lease(lease) => lease,
            Locked::Ready(token) => {
                return Ok(TokenRun {
                    token: Ok(token),
                    summary: None,
                });
            }
        };
        let selection = Selection {
            names: vec![name.to_owned()],
            min_valid,
            force: false,
        };
        let run = self.begin_refresh_under(lease, selection).await?;
        let summary = run.run_holding(&refresher()?, max_run_time, hold).await?;
        let token = record(&summary.vault, name)
            .and_then(|r| choose_token(r, summary.result(name), unix_now()));
        Ok(TokenRun {
            token,
            summary: Some(summary),
        })
    }
}

/// What [`Session::token_run`] found: the token or why there is none, and
/// the refresh run, if one was needed.
#[derive(Debug)]
pub struct TokenRun {
    /// The token to hand out, or the run's outcome as an error.
    pub token: Result<IssuedToken>,
    /// The run; `None` when a valid token was there without one.
    pub summary: Option<RunSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::{AccessToken, ClientAuth, Credential, Provider, RefreshTokenCredential};

    fn record(expires_at: Option<u64>) -> Record {
        let mut record = Record::new(
            "mail",
            Provider::Generic,
            "https://a.example/token",
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: "c".to_owned(),
                client_secret: None,
                client_auth: ClientAuth::None,
                refresh_token: SecretString::copy_from("rt"),
                refresh_token_issued_at: None,
                authorization_endpoint: None,
            }),
            0,
        );
        record.access_token = Some(AccessToken {
            token: SecretString::copy_from("at"),
            expires_at,
        });
        record
    }

    fn result(class: Option<RefreshClass>) -> RecordResult {
        RecordResult {
            name: "mail".to_owned(),
            class,
            message: "what happened".to_owned(),
            error_code: None,
            attempts: 1,
        }
    }

    #[test]
    fn a_fresh_or_stored_token_is_used_while_it_lasts() {
        let now = 1_000;
        for class in [Some(RefreshClass::Refreshed), None] {
            let chosen =
                choose_token(&record(Some(now + 1)), Some(&result(class)), now).expect("a token");
            assert_eq!(chosen.token.expose_secret(), "at");
            assert!(chosen.stale_because.is_none());
        }
        let error =
            choose_token(&record(Some(now)), Some(&result(None)), now).expect_err("expired");
        assert_eq!(error.kind(), ErrorKind::Failure);
    }

    #[test]
    fn after_a_temporary_failure_only_a_token_with_margin_is_used() {
        let now = 1_000;
        let transient = result(Some(RefreshClass::Transient));
        let chosen = choose_token(&record(Some(now + STALE_MARGIN + 1)), Some(&transient), now)
            .expect("still valid with margin");
        assert_eq!(chosen.stale_because.as_deref(), Some("what happened"));
        let error = choose_token(&record(Some(now + STALE_MARGIN)), Some(&transient), now)
            .expect_err("too close to expiry");
        assert_eq!(error.kind(), ErrorKind::Temporary);
        assert_eq!(error.to_string(), "mail: what happened");
    }

    #[test]
    fn a_rejected_grant_is_never_covered_by_an_old_token() {
        let now = 1_000;
        let rejected = result(Some(RefreshClass::ReauthorizationRequired));
        let error =
            choose_token(&record(Some(now + 3_600)), Some(&rejected), now).expect_err("rejected");
        assert_eq!(error.kind(), ErrorKind::Reauthorize);
        let misconfigured = result(Some(RefreshClass::Misconfigured));
        let error = choose_token(&record(Some(now + 3_600)), Some(&misconfigured), now)
            .expect_err("misconfigured");
        assert_eq!(error.kind(), ErrorKind::Failure);
    }

    #[test]
    fn a_stored_token_must_outlast_min_valid() {
        let now = 1_000;
        let min = Duration::from_secs(600);
        assert!(stored_token(&record(Some(now + 600)), now, min).is_some());
        assert!(stored_token(&record(Some(now + 599)), now, min).is_none());
        assert!(
            stored_token(&record(None), now, min).is_none(),
            "unknown expiry"
        );
    }
}
