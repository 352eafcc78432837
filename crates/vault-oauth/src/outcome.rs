//! The closed set of refresh outcomes, and how an outcome updates a record.

use std::fmt;
use std::time::Duration;

use vault_format::{Credential, Record, RefreshClass, RefreshStatus, SecretString};

/// What one refresh (after any retries) came to. Every failure falls in
/// exactly one class, and the class decides what happens next: a person
/// re-authorizes, an operator fixes configuration, or a later run retries.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The server issued a new access token.
    Refreshed(Refreshed),
    /// The grant is gone (`invalid_grant`: revoked, expired, replayed, or a
    /// Google re-authentication policy): a person must authorize again.
    ReauthorizationRequired(ServerError),
    /// The client, the record or the endpoint is wrong; retrying the same
    /// request cannot succeed.
    Misconfigured(Misconfiguration),
    /// A failure that a later attempt may not meet.
    Transient(TransientFailure),
    /// A 2xx whose access token is unusable but which carries a new refresh
    /// token. The server may already have retired the old one, so the new
    /// one must be kept; the record is misconfigured all the same.
    Salvaged(Salvaged),
}

/// What is kept of a refused 2xx token response: its new refresh token.
#[derive(Debug)]
pub struct Salvaged {
    /// The new refresh token the response carried.
    pub refresh_token: SecretString,
    /// HTTP status of the response.
    pub status: u16,
    /// Why the rest of the response was refused.
    pub problem: ResponseProblem,
    /// Unix seconds when the request was sent.
    pub obtained_at: u64,
}

impl Salvaged {
    /// The refusal, as the misconfiguration it is.
    pub fn misconfiguration(&self) -> Misconfiguration {
        Misconfiguration::InvalidResponse {
            status: self.status,
            problem: self.problem,
        }
    }
}

/// A successful token response.
#[derive(Debug)]
pub struct Refreshed {
    /// The new access token.
    pub access_token: SecretString,
    /// Unix seconds when it expires (request time + `expires_in`), if given.
    pub expires_at: Option<u64>,
    /// A new refresh token, when the server rotated it. `None` means the
    /// old one stays valid and must be kept.
    pub refresh_token: Option<SecretString>,
    /// The granted scopes, when the response lists them.
    pub scopes: Option<Vec<String>>,
    /// An OpenID Connect ID token, when returned.
    pub id_token: Option<SecretString>,
    /// Unix seconds when the request was sent.
    pub obtained_at: u64,
    /// Fields of the response that were malformed and ignored (a missing
    /// `token_type`, a malformed `expires_in`, `scope` or `id_token`).
    pub ignored: Vec<ResponseProblem>,
}

/// An OAuth error response (RFC 6749 §5.2), sanitized: codes keep the RFC
/// charset, descriptions lose control and bidi characters, both are capped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// HTTP status of the response.
    pub status: u16,
    /// The `error` code, e.g. `invalid_grant`.
    pub code: String,
    /// Google's `error_subtype`, e.g. `invalid_rapt`, when present.
    pub subtype: Option<String>,
    /// The `error_description`, when present.
    pub description: Option<String>,
}

impl ServerError {
    /// Whether Google's Workspace re-authentication policy caused this
    /// (`invalid_rapt` / `rapt_required` in the subtype or description).
    pub fn is_google_reauth_policy(&self) -> bool {
        let mentions = |s: &str| s.contains("invalid_rapt") || s.contains("rapt_required");
        self.subtype.as_deref().is_some_and(mentions)
            || self.description.as_deref().is_some_and(mentions)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}", self.code, self.status)?;
        if let Some(subtype) = &self.subtype {
            write!(f, ", {subtype}")?;
        }
        f.write_str(")")?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

/// Why a request cannot succeed as configured.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misconfiguration {
    /// The server rejected the client or the request: `invalid_client`,
    /// `unauthorized_client`, `invalid_scope`, `unsupported_grant_type`,
    /// `invalid_request` or an unknown code on a 4xx.
    Rejected(ServerError),
    /// The token endpoint URL is not usable (not https off loopback,
    /// credentials in the URL, unparseable).
    Endpoint(String),
    /// The record cannot produce a request (e.g. `client_secret_basic`
    /// without a secret, a service-account key that does not parse).
    Credential(String),
    /// The endpoint answered with a redirect, which is never followed.
    Redirect {
        /// HTTP status (301, 302, 303, 307, 308).
        status: u16,
        /// Host of the `Location` header, when it parses.
        location_host: Option<String>,
    },
    /// A status that an OAuth token endpoint does not send for this request
    /// (e.g. 404 with an HTML page).
    UnexpectedStatus(u16),
    /// The response was not a usable token response.
    InvalidResponse {
        /// HTTP status of the response.
        status: u16,
        /// What was wrong with it.
        problem: ResponseProblem,
    },
}

/// What made a token response unusable. Never carries response content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseProblem {
    /// The body is not a JSON object.
    NotJson,
    /// The body exceeded the configured size cap.
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// No `access_token`.
    MissingAccessToken,
    /// No `token_type`.
    MissingTokenType,
    /// `token_type` is not `Bearer` (case-insensitive).
    TokenTypeNotBearer,
    /// A field has the wrong type or characters outside RFC 6749's `VSCHAR`.
    InvalidField(&'static str),
}

impl fmt::Display for ResponseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson => f.write_str("the body is not a JSON object"),
            Self::TooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            Self::MissingAccessToken => f.write_str("it has no access_token"),
            Self::MissingTokenType => f.write_str("it has no token_type"),
            Self::TokenTypeNotBearer => f.write_str("its token_type is not Bearer"),
            Self::InvalidField(field) => write!(f, "its {field} field is malformed"),
        }
    }
}

impl fmt::Display for Misconfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(error) => write!(f, "the token endpoint rejected the request: {error}"),
            Self::Endpoint(reason) => write!(f, "unusable token endpoint: {reason}"),
            Self::Credential(reason) => write!(f, "unusable credential: {reason}"),
            Self::Redirect {
                status,
                location_host,
            } => {
                write!(
                    f,
                    "the token endpoint answered with a redirect (HTTP {status}"
                )?;
                if let Some(host) = location_host {
                    write!(f, " to {host}")?;
                }
                f.write_str("), which is not followed; set the final token URL")
            }
            Self::UnexpectedStatus(status) => write!(
                f,
                "the token endpoint answered HTTP {status} without an OAuth error; check the token URL"
            ),
            Self::InvalidResponse { status, problem } => {
                write!(
                    f,
                    "the token response (HTTP {status}) is unusable: {problem}"
                )
            }
        }
    }
}

/// A failure worth retrying later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransientFailure {
    /// What happened.
    pub kind: TransientKind,
    /// The server's error, when it sent one (`server_error`,
    /// `temporarily_unavailable`, or a JSON body on a 5xx).
    pub error: Option<ServerError>,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

/// The kind of a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransientKind {
    /// The connection could not be made (refused, DNS, TLS handshake).
    Connect,
    /// The request or the response took longer than the timeout.
    Timeout,
    /// The connection broke while sending or receiving (e.g. a truncated body).
    Network,
    /// The server answered with a status meaning "later": 408, 429, 5xx, or
    /// an OAuth `server_error` / `temporarily_unavailable`.
    Status(u16),
    /// Not sent: the batch's time to send had run out (or it was closed),
    /// so the record is left for the next run.
    NotSent,
}

impl fmt::Display for TransientFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TransientKind::Connect => f.write_str("could not connect to the token endpoint")?,
            TransientKind::Timeout => f.write_str("the token endpoint timed out")?,
            TransientKind::Network => f.write_str("the connection to the token endpoint broke")?,
            TransientKind::NotSent => {
                f.write_str("not sent: the run's time for token requests was up")?;
            }
            TransientKind::Status(status) => {
                write!(f, "the token endpoint is unavailable (HTTP {status})")?;
            }
        }
        if let Some(error) = &self.error {
            write!(f, ": {error}")?;
        }
        if let Some(after) = self.retry_after {
            write!(f, "; it asked to retry after {}s", after.as_secs())?;
        }
        Ok(())
    }
}

impl fmt::Display for RefreshOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refreshed(refreshed) => {
                f.write_str("refreshed")?;
                if refreshed.refresh_token.is_some() {
                    f.write_str(" (refresh token rotated)")?;
                }
                if let Some(note) = ignored_note(&refreshed.ignored) {
                    write!(f, "; {note}")?;
                }
                Ok(())
            }
            Self::Salvaged(salvaged) => write!(
                f,
                "misconfigured: {}; the new refresh token it carried was kept",
                salvaged.misconfiguration()
            ),
            Self::ReauthorizationRequired(error) => write!(
                f,
                "the grant is no longer valid, re-authorization required: {error}"
            ),
            Self::Misconfigured(problem) => write!(f, "misconfigured: {problem}"),
            Self::Transient(failure) => write!(f, "temporary failure: {failure}"),
        }
    }
}

impl RefreshOutcome {
    /// The outcome's class, as stored in the vault.
    pub fn class(&self) -> RefreshClass {
        match self {
            Self::Refreshed(_) => RefreshClass::Refreshed,
            Self::ReauthorizationRequired(_) => RefreshClass::ReauthorizationRequired,
            Self::Misconfigured(_) | Self::Salvaged(_) => RefreshClass::Misconfigured,
            Self::Transient(_) => RefreshClass::Transient,
        }
    }

    /// The server's error, whatever the class.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::Refreshed(_) => None,
            Self::ReauthorizationRequired(error) => Some(error),
            Self::Misconfigured(Misconfiguration::Rejected(error)) => Some(error),
            Self::Misconfigured(_) | Self::Salvaged(_) => None,
            Self::Transient(failure) => failure.error.as_ref(),
        }
    }

    /// Whether a later attempt could succeed without a person acting.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// The status line stored in the record's `last_refresh`.
    pub fn status_at(&self, at: u64) -> RefreshStatus {
        let error = self.server_error();
        let description = match (self, error) {
            (_, Some(error)) => error.description.clone(),
            (Self::Refreshed(refreshed), None) => {
                ignored_note(&refreshed.ignored).and_then(|n| crate::sanitize::description(&n))
            }
            // Local and protocol failures: store our own explanation.
            (other, None) => crate::sanitize::description(&other.to_string()),
        };
        RefreshStatus {
            at,
            class: self.class(),
            error_code: error.map(|e| e.code.clone()),
            error_description: description,
        }
    }

    /// Applies this outcome to `record` at time `at` (Unix seconds):
    /// - on success the access token is replaced; a rotated refresh token
    ///   replaces the old one (and resets its issue time), a response without
    ///   one keeps the old; returned scopes replace the stored ones;
    /// - on failure the tokens are left as they were;
    /// - either way `last_refresh` and `updated_at` are set.
    ///
    /// ```
    /// use vault_format::{ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString};
    /// use vault_oauth::{classify_response, TokenHttpResponse};
    ///
    /// let mut record = Record::new(
    ///     "mail",
    ///     Provider::Microsoft,
    ///     "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    ///     Credential::RefreshToken(RefreshTokenCredential {
    ///         client_id: "client".into(),
    ///         client_secret: None,
    ///         client_auth: ClientAuth::None,
    ///         refresh_token: SecretString::copy_from("old-refresh"),
    ///         refresh_token_issued_at: None,
    ///         authorization_endpoint: None,
    ///     }),
    ///     0,
    /// );
    /// let body = br#"{"access_token":"new-access","token_type":"Bearer","expires_in":3600,"refresh_token":"new-refresh"}"#;
    /// let outcome = classify_response(
    ///     TokenHttpResponse { status: 200, retry_after: None, location: None, body },
    ///     1_000,
    /// );
    /// outcome.apply_to(&mut record, 1_000);
    /// let Credential::RefreshToken(credential) = &record.credential else { unreachable!() };
    /// assert_eq!(credential.refresh_token.expose_secret(), "new-refresh");
    /// assert_eq!(record.access_token.as_ref().and_then(|a| a.expires_at), Some(4_600));
    /// ```
    pub fn apply_to(self, record: &mut Record, at: u64) {
        let before_scopes = record.scopes.clone();
        record.last_refresh = Some(self.status_at(at));
        record.updated_at = at;
        match self {
            Self::Refreshed(refreshed) => {
                record.access_token = Some(vault_format::AccessToken {
                    token: refreshed.access_token,
                    expires_at: refreshed.expires_at,
                });
                if let Some(scopes) = refreshed.scopes {
                    record.scopes = scopes;
                }
                if let Some(rotated) = refreshed.refresh_token {
                    keep_refresh_token(record, rotated, refreshed.obtained_at);
                }
            }
            Self::Salvaged(salvaged) => {
                keep_refresh_token(record, salvaged.refresh_token, salvaged.obtained_at);
            }
            _ => {}
        }
        keep_sealable(record, before_scopes);
    }
}

/// Stores a refresh token the server returned. Some servers echo the same
/// token when they do not rotate: then its issue time stays what it was.
fn keep_refresh_token(record: &mut Record, token: SecretString, obtained_at: u64) {
    if let Credential::RefreshToken(credential) = &mut record.credential
        && token.expose_secret() != credential.refresh_token.expose_secret()
    {
        credential.refresh_token = token;
        credential.refresh_token_issued_at = Some(obtained_at);
    }
}

/// Whatever a server answered, the record must still seal, or one
/// endpoint's answer would stop every other record's rotation from being
/// saved. The tokens were checked against the vault's rules when parsed;
/// what else the answer put in (status text, scopes) gives way.
fn keep_sealable(record: &mut Record, before_scopes: Vec<String>) {
    if vault_format::validate_record(record).is_ok() {
        return;
    }
    if let Some(status) = &mut record.last_refresh {
        status.error_code = None;
        status.error_description = Some("the server's error text could not be stored".to_owned());
    }
    if vault_format::validate_record(record).is_ok() {
        return;
    }
    record.scopes = before_scopes;
}

/// "ignored in the token response: its expires_in field is malformed, …".
fn ignored_note(ignored: &[ResponseProblem]) -> Option<String> {
    if ignored.is_empty() {
        return None;
    }
    let problems: Vec<String> = ignored.iter().map(ToString::to_string).collect();
    Some(format!(
        "the token response was used, but {} (ignored)",
        problems.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::{ClientAuth, Provider, RefreshTokenCredential};

    fn record() -> Record {
        Record::new(
            "mail",
            Provider::Generic,
            "https://auth.example/token",
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: "client".to_owned(),
                client_secret: None,
                client_auth: ClientAuth::None,
                refresh_token: SecretString::copy_from("old-refresh"),
                refresh_token_issued_at: Some(5),
                authorization_endpoint: None,
            }),
            0,
        )
    }

    fn refresh_token(record: &Record) -> &str {
        match &record.credential {
            Credential::RefreshToken(c) => c.refresh_token.expose_secret(),
            _ => "",
        }
    }

    #[test]
    fn a_salvaged_refresh_token_replaces_the_old_one_and_the_status_says_why() {
        let mut record = record();
        RefreshOutcome::Salvaged(Salvaged {
            refresh_token: SecretString::copy_from("new-refresh"),
            status: 200,
            problem: ResponseProblem::TokenTypeNotBearer,
            obtained_at: 100,
        })
        .apply_to(&mut record, 100);
        assert_eq!(refresh_token(&record), "new-refresh");
        assert!(record.access_token.is_none(), "no access token was usable");
        let status = record.last_refresh.as_ref().expect("a status");
        assert_eq!(status.class, RefreshClass::Misconfigured);
        let description = status.error_description.as_deref().unwrap_or_default();
        assert!(
            description.contains("not Bearer") && description.contains("was kept"),
            "{description}"
        );
        assert!(vault_format::validate_record(&record).is_ok());
    }

    #[test]
    fn a_record_always_stays_sealable_whatever_the_server_said() {
        // Built by hand, past the sanitizer: the record still seals.
        let mut record = record();
        RefreshOutcome::ReauthorizationRequired(ServerError {
            status: 400,
            code: "x".repeat(300),
            subtype: None,
            description: Some("😀".repeat(600)),
        })
        .apply_to(&mut record, 100);
        assert!(vault_format::validate_record(&record).is_ok());
        assert_eq!(refresh_token(&record), "old-refresh");
        let mut record = self::record();
        RefreshOutcome::Refreshed(Refreshed {
            access_token: SecretString::copy_from("access"),
            expires_at: None,
            refresh_token: Some(SecretString::copy_from("rotated")),
            scopes: Some(vec!["has space".to_owned()]),
            id_token: None,
            obtained_at: 100,
            ignored: Vec::new(),
        })
        .apply_to(&mut record, 100);
        assert!(vault_format::validate_record(&record).is_ok());
        assert_eq!(refresh_token(&record), "rotated", "the rotation is kept");
        assert!(record.scopes.is_empty(), "the unstorable scopes gave way");
    }
}
