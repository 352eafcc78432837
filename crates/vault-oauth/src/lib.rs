//! OAuth 2.0 refresh for tokvault: obtain fresh access tokens for vault
//! records, keep rotated refresh tokens, and classify every failure so that
//! a person is alerted exactly when they must re-authorize.
//!
//! This crate does no vault file I/O: it reads [`vault_format::Record`]s and
//! tells the caller how to update them ([`RefreshOutcome::apply_to`]).
//!
//! - [`refresh_need`] / [`records_to_refresh`]: which records need a new
//!   access token at `now` (pure).
//! - [`RefreshRequest::from_record`]: a refresh-token grant (client
//!   authentication `client_secret_post`, `client_secret_basic` or none) or
//!   a service-account JWT bearer grant (RFC 7523, RS256).
//! - [`Refresher`]: pooled HTTPS connections, loopback never proxied (rustls, redirects off,
//!   timeouts, response size cap); [`Refresher::refresh`] retries transient
//!   failures with jittered exponential backoff within a count and a time
//!   budget; [`Refresher::refresh_all`] runs many with bounded concurrency.
//! - [`RefreshOutcome`]: a closed enum, `Refreshed`,
//!   `ReauthorizationRequired`, `Misconfigured` or `Transient`.
//! - [`classify_response`]: the pure classifier of token endpoint answers.
//! - Login: [`PendingAuthorization`] (authorization code with PKCE S256 and
//!   `state`), [`LoopbackListener`] (the RFC 8252 redirect on 127.0.0.1),
//!   [`Refresher::exchange_code`], and the device flow
//!   ([`Refresher::start_device_authorization`],
//!   [`Refresher::poll_device_authorization`]); [`LoginPlan::authorize`]
//!   runs a whole flow, asking a [`LoginUi`] to show and read.
//!
//! Secrets stay in [`vault_format::SecretString`]; no error or log line
//! carries a token, a secret or a response body. Server error descriptions
//! are kept, sanitized and capped.
//!
//! ```no_run
//! use vault_oauth::{RefreshOutcome, Refresher, RefresherConfig, RefreshRequest, DEFAULT_MIN_VALIDITY};
//! # async fn example(records: &mut [vault_format::Record], now: u64) -> Result<(), Box<dyn std::error::Error>> {
//! let refresher = Refresher::new(RefresherConfig::default())?;
//! let due = vault_oauth::records_to_refresh(records, now, DEFAULT_MIN_VALIDITY, false);
//! let mut requests = Vec::new();
//! for &i in &due {
//!     match RefreshRequest::from_record(&records[i]) {
//!         Ok(request) => requests.push(request),
//!         // A record that cannot even make a request is recorded as such.
//!         Err(problem) => RefreshOutcome::Misconfigured(problem).apply_to(&mut records[i], now),
//!     }
//! }
//! let reports = refresher.refresh_all(&requests).await;
//! for (request, report) in requests.iter().zip(reports) {
//!     let record = records
//!         .iter_mut()
//!         .find(|r| r.name == request.name())
//!         .expect("requested records exist");
//!     // Seal and write the vault before handing out the access token: with
//!     // rotation the old refresh token is now dead.
//!     report.outcome.apply_to(record, now);
//! }
//! # Ok(()) }
//! ```

mod auth_params;
mod endpoint;
mod http;
mod jwt;
mod login;
mod login_flow;
mod outcome;
mod plan;
mod policy;
mod refresher;
mod request;
mod response;
mod sanitize;
mod timefmt;
mod token_file;

pub use auth_params::{AuthParams, PROMPT_VALUES, check_prompt};
pub use endpoint::{
    GOOGLE_AUTHORIZATION_ENDPOINT, GOOGLE_TOKEN_ENDPOINT, ProviderPreset, TokenEndpoint,
};
pub use http::{HttpConfig, HttpSetupError};
pub use jwt::{
    AssertionClaims, KeyError, MAX_ASSERTION_LIFETIME_SECS, ServiceAccountKey, sign_assertion,
};
pub use login::{
    AuthorizationError, AuthorizationRequest, DeviceAuthorization, LoginError, LoopbackListener,
    PendingAuthorization, id_token_account, parse_device_response,
};
pub use login_flow::{DEFAULT_BROWSER_TIMEOUT, Flow, FlowError, FlowOptions, LoginPrompt, LoginUi};
pub use outcome::{
    Misconfiguration, RefreshOutcome, Refreshed, ResponseProblem, Salvaged, ServerError,
    TransientFailure, TransientKind,
};
pub use plan::{ClientFile, FixedRedirect, LoginInputs, LoginPlan, LoginProvider, PlanError};
pub use policy::{DEFAULT_MIN_VALIDITY, RefreshNeed, records_to_refresh, refresh_need};
pub use refresher::{RefreshReport, Refresher, RefresherConfig, RetryPolicy, SendWindow};
pub use request::{OAuthClient, RefreshRequest};
pub use response::{TokenHttpResponse, classify_response};
pub use sanitize::{MAX_DESCRIPTION_BYTES, MAX_DESCRIPTION_CHARS, MAX_ERROR_CODE_CHARS};
pub use timefmt::{MAX_UTC_SECONDS, parse_utc, rfc3339};
pub use token_file::{
    GoogleExportError, RECORD_FORMAT, TokenFile, TokenFileError, parse_token_file, to_google_json,
    to_tokvault_json,
};
