//! First authorization ("login"): the authorization code grant with PKCE
//! and a loopback redirect (RFC 6749 §4.1, RFC 7636, RFC 8252), the same
//! with a pasted redirect URL for machines without a browser, and the
//! device authorization grant (RFC 8628).
//!
//! Like the rest of the crate this does no vault file I/O: a successful
//! login returns a [`Refreshed`] that carries a refresh token, and the
//! caller stores it.

use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use url::Url;
use vault_format::SecretString;
use zeroize::Zeroizing;

use crate::endpoint::TokenEndpoint;
use crate::http::Exchange;
use crate::outcome::{Misconfiguration, RefreshOutcome, Refreshed, ServerError, TransientFailure};
use crate::refresher::Refresher;
use crate::request::{OAuthClient, RefreshRequest, encode_form};
use crate::sanitize;

/// How long one browser connection to the loopback listener may take to
/// send its request line and headers.
const CALLBACK_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head the loopback listener reads.
const MAX_CALLBACK_BYTES: usize = 16 * 1024;
/// Longest authorization code accepted from a paste or a redirect.
const MAX_CODE_CHARS: usize = 4096;
/// RFC 8628 §3.5: `slow_down` adds 5 seconds to the polling interval.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// RFC 8628 §3.2: the interval when the server gives none.
const DEFAULT_DEVICE_INTERVAL: Duration = Duration::from_secs(5);
/// The longest interval we wait between polls, whatever the server says.
const MAX_DEVICE_INTERVAL: Duration = Duration::from_secs(60);

/// Why a login did not produce a refresh token. Never carries a token, a
/// code or a secret; server text is sanitized and capped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The authorization or device endpoint URL is not usable.
    #[error("{0}")]
    Endpoint(String),
    /// The loopback listener could not be opened.
    #[error("cannot listen on 127.0.0.1 for the browser's redirect: {0}")]
    Listen(#[source] std::io::Error),
    /// No callback arrived in time.
    #[error(
        "no authorization arrived within {} s; nothing was saved. Run the login again (--timeout gives more time)",
        .0.as_secs()
    )]
    TimedOut(Duration),
    /// The redirect's `state` is missing or is not this login's.
    #[error(
        "the redirect's state {0}: it belongs to another (stale or forged) authorization request. \
         Nothing was saved; run the login again and use the URL it prints"
    )]
    StateMismatch(&'static str),
    /// The authorization server refused (e.g. the user clicked "deny").
    #[error("the authorization server refused: {0}")]
    Denied(AuthorizationError),
    /// The pasted text or the redirect has no usable code.
    #[error("no authorization code: {0}")]
    NoCode(&'static str),
    /// The token response had no refresh token.
    #[error("the provider issued no refresh token")]
    NoRefreshToken,
    /// The token endpoint refused the code or device code (`invalid_grant`:
    /// expired, already used, or the PKCE verifier did not match).
    #[error("the token endpoint refused the authorization: {0}")]
    GrantRefused(ServerError),
    /// The client, the endpoint or the response is wrong.
    #[error("misconfigured: {0}")]
    Misconfigured(Misconfiguration),
    /// The token or device endpoint could not be reached or was busy.
    #[error("temporary failure, try again: {0}")]
    Transient(TransientFailure),
    /// The device authorization response is not usable.
    #[error("the device authorization response is unusable: {0}")]
    DeviceResponse(String),
    /// The person's answer could not be read (the input ended or failed);
    /// the front end says which.
    #[error("{0}")]
    NoAnswer(String),
    /// The user did not approve the device code before it expired.
    #[error(
        "the device code expired before it was approved; nothing was saved. Run the login again"
    )]
    DeviceExpired,
}

impl LoginError {
    /// Whether trying again later, unchanged, could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// An `error` in an authorization response (RFC 6749 §4.1.2.1) or a
/// device-flow denial, sanitized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationError {
    /// The OAuth error code, e.g. `access_denied`.
    pub code: String,
    /// The sanitized `error_description`, if any.
    pub description: Option<String>,
}

impl fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)?;
        if let Some(description) = &self.description {
            write!(f, " ({description})")?;
        }
        Ok(())
    }
}

/// What an authorization request asks for.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// The provider's authorization endpoint (`https://`, or `http://` on
    /// loopback).
    pub authorization_endpoint: String,
    /// The client's id.
    pub client_id: String,
    /// Scopes to request (may be empty).
    pub scopes: Vec<String>,
    /// Provider-specific parameters, e.g. Google's `access_type=offline`
    /// and `prompt=consent`.
    pub extra_params: Vec<(String, String)>,
}

/// An authorization request in flight: the URL to open, and the `state`
/// and PKCE verifier that the answer must match.
pub struct PendingAuthorization {
    url: Url,
    redirect_uri: String,
    state: String,
    code_verifier: SecretString,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

fn random_base64url(bytes: usize) -> Result<String, LoginError> {
    let mut buffer = Zeroizing::new(vec![0u8; bytes]);
    getrandom::getrandom(&mut buffer).map_err(|e| {
        LoginError::Listen(std::io::Error::other(format!(
            "the system random generator failed: {e}"
        )))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(&*buffer))
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(verifier))`.
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// Checks an authorization, device or verification URL like a token
/// endpoint: `https://`, or `http://` on loopback.
fn checked_url(value: &str, what: &str) -> Result<Url, LoginError> {
    vault_format::check_endpoint(value)
        .map_err(|reason| LoginError::Endpoint(format!("the {what} {reason}")))?;
    Url::parse(value).map_err(|_| LoginError::Endpoint(format!("the {what} is not a valid URL")))
}

impl PendingAuthorization {
    /// A new request with a fresh `state` (128 bits) and PKCE verifier
    /// (256 bits, S256), redirecting to `redirect_uri`.
    pub fn new(request: &AuthorizationRequest, redirect_uri: &str) -> Result<Self, LoginError> {
        let mut url = checked_url(&request.authorization_endpoint, "authorization URL")?;
        let state = random_base64url(16)?;
        let code_verifier = SecretString::new(random_base64url(32)?);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &request.client_id)
                .append_pair("redirect_uri", redirect_uri);
            if !request.scopes.is_empty() {
                query.append_pair("scope", &request.scopes.join(" "));
            }
            query
                .append_pair("state", &state)
                .append_pair(
                    "code_challenge",
                    &pkce_challenge(code_verifier.expose_secret()),
                )
                .append_pair("code_challenge_method", "S256");
            for (key, value) in &request.extra_params {
                query.append_pair(key, value);
            }
        }
        Ok(Self {
            url,
            redirect_uri: redirect_uri.to_owned(),
            state,
            code_verifier,
        })
    }

    /// The URL the user opens.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The `redirect_uri` sent (and sent again with the code).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Reads what the user pasted: the whole redirect URL (checked against
    /// `state`), its query string, or just the code. A bare code cannot be
    /// checked against `state`; PKCE still binds it to this login, because
    /// a code issued to anyone else's request does not redeem with this
    /// request's verifier.
    pub fn accept_pasted(&self, input: &str) -> Result<SecretString, LoginError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(LoginError::NoCode("nothing was pasted"));
        }
        let lower = input.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let url = Url::parse(input)
                .map_err(|_| LoginError::NoCode("the pasted URL does not parse"))?;
            return self.accept_query(url.query().unwrap_or_default());
        }
        let looks_like_query = ["code=", "state=", "error="].iter().any(|key| {
            input.trim_start_matches('?').starts_with(key) || input.contains(&format!("&{key}"))
        });
        if looks_like_query {
            return self.accept_query(input.trim_start_matches('?'));
        }
        bare_code(input)
    }

    /// Reads a redirect's query string (RFC 6749 §4.1.2): `state` must be
    /// this request's, then either `error` or `code`.
    pub fn accept_query(&self, query: &str) -> Result<SecretString, LoginError> {
        let mut state = None;
        let mut code: Option<Zeroizing<String>> = None;
        let mut error = None;
        let mut description = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot_taken = match key.as_ref() {
                "state" => state.replace(value.into_owned()).is_some(),
                "code" => code.replace(Zeroizing::new(value.into_owned())).is_some(),
                "error" => error.replace(value.into_owned()).is_some(),
                "error_description" => description.replace(value.into_owned()).is_some(),
                _ => false,
            };
            if slot_taken {
                // Duplicated parameters are a known mix-up trick: refuse.
                return Err(LoginError::NoCode(
                    "a parameter of the redirect appears twice",
                ));
            }
        }
        match state {
            None => return Err(LoginError::StateMismatch("is missing")),
            Some(state) if state != self.state => {
                return Err(LoginError::StateMismatch("does not match"));
            }
            Some(_) => {}
        }
        if let Some(error) = error {
            return Err(LoginError::Denied(AuthorizationError {
                code: sanitize::error_code(&error),
                description: description.as_deref().and_then(sanitize::description),
            }));
        }
        match code {
            Some(code) => bare_code(&code),
            None => Err(LoginError::NoCode(
                "the redirect has neither a code nor an error",
            )),
        }
    }
}

/// An authorization code: RFC 6749's VSCHAR, bounded.
fn bare_code(code: &str) -> Result<SecretString, LoginError> {
    if code.is_empty() || code.len() > MAX_CODE_CHARS {
        return Err(LoginError::NoCode("the code is empty or too long"));
    }
    if !code
        .bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && b != b' ')
    {
        return Err(LoginError::NoCode(
            "the code has characters an authorization code cannot have (paste the whole URL from the browser's address bar)",
        ));
    }
    Ok(SecretString::copy_from(code))
}

/// A one-shot HTTP listener on `127.0.0.1` for the browser's redirect
/// (RFC 8252 §7.3). It answers other requests (a favicon, a pre-connect)
/// without ending, ends at the first redirect that carries this login's
/// answer, and closes its socket when it ends.
#[derive(Debug)]
pub struct LoopbackListener {
    listener: TcpListener,
    redirect_uri: String,
    path: String,
}

impl LoopbackListener {
    /// Listens on `127.0.0.1:port` (`0`: a free port the system picks) for
    /// requests to `path` (`/` unless a registered redirect URI says
    /// otherwise).
    pub async fn bind(port: u16, path: &str) -> Result<Self, LoginError> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(LoginError::Listen)?;
        let port = listener.local_addr().map_err(LoginError::Listen)?.port();
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}{path}"),
            path,
        })
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits up to `timeout` for the redirect of `pending` and returns its
    /// code. A redirect with a wrong `state` or an `error` ends the wait
    /// with that error: it is answered, and nothing is retried.
    pub async fn wait_for_code(
        self,
        pending: &PendingAuthorization,
        timeout: Duration,
    ) -> Result<SecretString, LoginError> {
        let path = self.path.as_str();
        let serve = async {
            let mut connections = FuturesUnordered::new();
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        // A failed accept (e.g. out of descriptors) is not
                        // the browser's fault: keep listening.
                        if let Ok((stream, _)) = accepted {
                            connections.push(serve_connection(stream, pending, path));
                        }
                    }
                    Some(result) = connections.next(), if !connections.is_empty() => {
                        if let Some(result) = result {
                            return result;
                        }
                    }
                }
            }
        };
        let result = tokio::time::timeout(timeout, serve)
            .await
            .unwrap_or(Err(LoginError::TimedOut(timeout)));
        // `self` (the socket) is dropped here: the port closes.
        result
    }
}

const PAGE_DONE: &str =
    "tokvault: authorization received. You can close this tab and return to the terminal.";
const PAGE_REFUSED: &str = "tokvault: the authorization was not completed. The terminal says why.";
const PAGE_NOT_HERE: &str = "tokvault is waiting for an authorization redirect; this is not one.";

/// Reads one request; `Some` when it was the redirect this login waits for.
async fn serve_connection(
    mut stream: TcpStream,
    pending: &PendingAuthorization,
    path: &str,
) -> Option<Result<SecretString, LoginError>> {
    let mut head = Zeroizing::new(Vec::with_capacity(MAX_CALLBACK_BYTES));
    let read = tokio::time::timeout(CALLBACK_READ_TIMEOUT, async {
        let mut chunk = Zeroizing::new([0u8; 2048]);
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk[..]).await.ok()?;
            if n == 0 || head.len() + n > MAX_CALLBACK_BYTES {
                return None;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Some(())
    })
    .await;
    if !matches!(read, Ok(Some(()))) {
        return None;
    }
    let line_end = head.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    if method != "GET" {
        respond(&mut stream, "405 Method Not Allowed", PAGE_NOT_HERE).await;
        return None;
    }
    let (request_path, query) = target.split_once('?').unwrap_or((target, ""));
    let is_answer = url::form_urlencoded::parse(query.as_bytes())
        .any(|(key, _)| matches!(key.as_ref(), "code" | "state" | "error"));
    if request_path != path || !is_answer {
        respond(&mut stream, "404 Not Found", PAGE_NOT_HERE).await;
        return None;
    }
    let result = pending.accept_query(query);
    match &result {
        Ok(_) => respond(&mut stream, "200 OK", PAGE_DONE).await,
        Err(_) => respond(&mut stream, "400 Bad Request", PAGE_REFUSED).await,
    }
    Some(result)
}

async fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tokvault</title></head>\
         <body><p>{text}</p></body></html>\n"
    );
    // The page carries no secret, but the URL that led here does: no
    // caching and no Referer to anything the page might load.
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser may already be gone; the outcome is decided either way.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A device authorization in progress (RFC 8628 §3.2): show the user
/// `verification_uri` and `user_code`, then poll.
pub struct DeviceAuthorization {
    device_code: SecretString,
    /// The code the user types in.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same with the code filled in, if the server offers one.
    pub verification_uri_complete: Option<String>,
    /// How long the codes are valid.
    pub expires_in: Duration,
    /// The polling interval the server asked for.
    pub interval: Duration,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// Parses a device authorization response body (pure; the server's text is
/// hostile input that reaches the terminal, so it is checked, not cleaned).
pub fn parse_device_response(body: &[u8]) -> Result<DeviceAuthorization, LoginError> {
    let bad = |what: &str| LoginError::DeviceResponse(what.to_owned());
    let mut object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        _ => return Err(bad("not a JSON object")),
    };
    let device_code = match object.remove("device_code") {
        Some(Value::String(code)) if !code.is_empty() => SecretString::new(code),
        _ => return Err(bad("no device_code")),
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let user_code = text("user_code").ok_or_else(|| bad("no user_code"))?;
    if user_code.is_empty()
        || user_code.len() > 64
        || !user_code.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(bad("the user_code is not short printable text"));
    }
    // Google's older endpoint says `verification_url`.
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| bad("no verification_uri"))?;
    let verification_uri = checked_url(verification_uri, "verification URI")
        .map_err(|e| LoginError::DeviceResponse(e.to_string()))?;
    let verification_uri_complete = match text("verification_uri_complete") {
        Some(uri) => Some(
            checked_url(uri, "verification_uri_complete")
                .map_err(|e| LoginError::DeviceResponse(e.to_string()))?
                .to_string(),
        ),
        None => None,
    };
    let seconds = |key: &str| match object.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(|n| Some(Duration::from_secs(n)))
            .ok_or_else(|| bad(&format!("{key} is not a whole number of seconds"))),
    };
    let expires_in = seconds("expires_in")?.ok_or_else(|| bad("no expires_in"))?;
    let interval = seconds("interval")?
        .unwrap_or(DEFAULT_DEVICE_INTERVAL)
        .clamp(Duration::from_secs(1), MAX_DEVICE_INTERVAL);
    Ok(DeviceAuthorization {
        device_code,
        user_code: user_code.to_owned(),
        verification_uri: verification_uri.to_string(),
        verification_uri_complete,
        expires_in,
        interval,
    })
}

/// What to do after one device-flow poll.
pub(crate) enum PollStep {
    /// Wait this long, then poll again.
    Wait(Duration),
    /// The user approved: here are the tokens.
    Done(Box<Refreshed>),
    /// Give up.
    Fail(LoginError),
}

/// RFC 8628 §3.5: `authorization_pending` keeps the interval, `slow_down`
/// adds 5 s, a network failure or busy server doubles it, `access_denied`
/// and `expired_token` end the flow.
pub(crate) fn poll_step(outcome: RefreshOutcome, interval: Duration) -> PollStep {
    let code = outcome.server_error().map(|e| e.code.clone());
    match code.as_deref() {
        Some("authorization_pending") => return PollStep::Wait(interval),
        Some("slow_down") => {
            return PollStep::Wait((interval + SLOW_DOWN_STEP).min(MAX_DEVICE_INTERVAL));
        }
        Some("expired_token") => return PollStep::Fail(LoginError::DeviceExpired),
        Some("access_denied") => {
            let description = outcome.server_error().and_then(|e| e.description.clone());
            return PollStep::Fail(LoginError::Denied(AuthorizationError {
                code: "access_denied".to_owned(),
                description,
            }));
        }
        _ => {}
    }
    match outcome {
        RefreshOutcome::Transient(_) => PollStep::Wait((interval * 2).min(MAX_DEVICE_INTERVAL)),
        other => match login_result(other) {
            Ok(refreshed) => PollStep::Done(Box::new(refreshed)),
            Err(error) => PollStep::Fail(error),
        },
    }
}

/// A token response to a login: it must carry a refresh token.
fn login_result(outcome: RefreshOutcome) -> Result<Refreshed, LoginError> {
    match outcome {
        RefreshOutcome::Refreshed(refreshed) if refreshed.refresh_token.is_some() => Ok(refreshed),
        RefreshOutcome::Refreshed(_) => Err(LoginError::NoRefreshToken),
        RefreshOutcome::ReauthorizationRequired(error) => Err(LoginError::GrantRefused(error)),
        RefreshOutcome::Misconfigured(problem) => Err(LoginError::Misconfigured(problem)),
        // A new grant: nothing older is at stake, so refuse the answer whole.
        RefreshOutcome::Salvaged(salvaged) => {
            Err(LoginError::Misconfigured(salvaged.misconfiguration()))
        }
        RefreshOutcome::Transient(failure) => Err(LoginError::Transient(failure)),
    }
}

impl Refresher {
    /// Redeems the code of `pending` at `token_endpoint`, once (a code is
    /// single-use, so a retry could only fail). The answer must carry a
    /// refresh token.
    pub async fn exchange_code(
        &self,
        token_endpoint: &TokenEndpoint,
        client: OAuthClient,
        pending: &PendingAuthorization,
        code: SecretString,
    ) -> Result<Refreshed, LoginError> {
        let request = RefreshRequest::authorization_code(
            token_endpoint.clone(),
            client,
            code,
            pending.redirect_uri.clone(),
            pending.code_verifier.clone(),
        )
        .map_err(LoginError::Misconfigured)?;
        login_result(self.attempt(&request).await)
    }

    /// Starts a device authorization (RFC 8628 §3.1) for `scopes`.
    pub async fn start_device_authorization(
        &self,
        device_endpoint: &str,
        client: &OAuthClient,
        scopes: &[String],
    ) -> Result<DeviceAuthorization, LoginError> {
        client
            .check("the client")
            .map_err(LoginError::Misconfigured)?;
        let url = checked_url(device_endpoint, "device authorization URL")?;
        let scope = scopes.join(" ");
        let mut fields: Vec<(&str, &str)> = Vec::new();
        let authorization = client
            .authenticate(&mut fields)
            .map_err(LoginError::Misconfigured)?;
        if !scope.is_empty() {
            fields.push(("scope", &scope));
        }
        let sent_at = crate::refresher::unix_now();
        let exchange = self
            .http()
            .post_form(&url, encode_form(&fields), authorization)
            .await;
        if let Exchange::Response { status, body, .. } = &exchange
            && (200..300).contains(status)
        {
            return parse_device_response(body);
        }
        // Not a 2xx: the same classes as a token endpoint's answer.
        match login_result(self.outcome_of(exchange, sent_at)) {
            Err(error) => Err(error),
            Ok(_) => Err(LoginError::DeviceResponse(
                "tokens instead of a device authorization".to_owned(),
            )),
        }
    }

    /// Polls `token_endpoint` until the user approves `device`, it expires,
    /// or `timeout` passes, honouring the interval and `slow_down`.
    pub async fn poll_device_authorization(
        &self,
        token_endpoint: &TokenEndpoint,
        client: OAuthClient,
        device: &DeviceAuthorization,
        timeout: Duration,
    ) -> Result<Refreshed, LoginError> {
        let request =
            RefreshRequest::device_code(token_endpoint.clone(), client, device.device_code.clone())
                .map_err(LoginError::Misconfigured)?;
        let started = Instant::now();
        let expires = device.expires_in;
        let mut interval = device.interval;
        let mut last_transient = None;
        loop {
            let elapsed = started.elapsed();
            if elapsed + interval > expires.min(timeout) {
                return Err(match last_transient {
                    Some(failure) => LoginError::Transient(failure),
                    None if expires <= timeout => LoginError::DeviceExpired,
                    None => LoginError::TimedOut(timeout),
                });
            }
            tokio::time::sleep(interval).await;
            let outcome = self.attempt(&request).await;
            last_transient = match &outcome {
                RefreshOutcome::Transient(failure) => Some(failure.clone()),
                _ => None,
            };
            match poll_step(outcome, interval) {
                PollStep::Wait(next) => {
                    if next > interval {
                        tracing::debug!(interval_s = next.as_secs(), "device flow: polling slower");
                    }
                    interval = next;
                }
                PollStep::Done(refreshed) => return Ok(*refreshed),
                PollStep::Fail(error) => return Err(error),
            }
        }
    }
}

/// The account an ID token names (`email`, else `preferred_username`), for
/// the record's informational `account` label. The token came straight
/// from the token endpoint over TLS, so its signature is not checked
/// (OpenID Connect Core §3.1.3.7); nothing but the label depends on it.
pub fn id_token_account(id_token: &SecretString) -> Option<String> {
    let payload = id_token.expose_secret().split('.').nth(1)?;
    let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?);
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let account = ["email", "preferred_username", "upn"]
        .iter()
        .find_map(|key| claims.get(*key).and_then(Value::as_str))?;
    let clean = !account.is_empty()
        && account.chars().count() <= 256
        && !account.chars().any(vault_format::is_unsafe_to_display);
    clean.then(|| account.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::TransientKind;
    use crate::response::{TokenHttpResponse, classify_response};

    fn request() -> AuthorizationRequest {
        AuthorizationRequest {
            authorization_endpoint: "https://auth.example/authorize?tenant=x".to_owned(),
            client_id: "client id".to_owned(),
            scopes: vec!["openid".to_owned(), "offline_access".to_owned()],
            extra_params: vec![("access_type".to_owned(), "offline".to_owned())],
        }
    }

    fn pending() -> PendingAuthorization {
        PendingAuthorization::new(&request(), "http://127.0.0.1:4711/").expect("valid request")
    }

    fn param(url: &Url, key: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn authorization_url_carries_pkce_state_and_extras() {
        let pending = pending();
        let url = pending.url();
        assert_eq!(url.host_str(), Some("auth.example"));
        assert_eq!(param(url, "tenant").as_deref(), Some("x"));
        assert_eq!(param(url, "response_type").as_deref(), Some("code"));
        assert_eq!(param(url, "client_id").as_deref(), Some("client id"));
        assert_eq!(
            param(url, "redirect_uri").as_deref(),
            Some("http://127.0.0.1:4711/")
        );
        assert_eq!(
            param(url, "scope").as_deref(),
            Some("openid offline_access")
        );
        assert_eq!(param(url, "access_type").as_deref(), Some("offline"));
        assert_eq!(param(url, "code_challenge_method").as_deref(), Some("S256"));
        let challenge = param(url, "code_challenge").expect("challenge");
        assert_eq!(
            challenge,
            pkce_challenge(pending.code_verifier.expose_secret())
        );
        assert_eq!(pending.code_verifier.expose_secret().len(), 43);
        assert_eq!(param(url, "state").as_deref(), Some(pending.state.as_str()));
        assert_eq!(pending.state.len(), 22);
        // Every login gets its own state and verifier.
        let other = self::pending();
        assert_ne!(other.state, pending.state);
        assert_ne!(
            other.code_verifier.expose_secret(),
            pending.code_verifier.expose_secret()
        );
        // The verifier never appears in the URL or in Debug.
        assert!(!url.as_str().contains(pending.code_verifier.expose_secret()));
        assert!(!format!("{pending:?}").contains(pending.code_verifier.expose_secret()));
    }

    #[test]
    fn authorization_endpoint_must_be_https_off_loopback() {
        let mut bad = request();
        bad.authorization_endpoint = "http://auth.example/authorize".to_owned();
        let error = PendingAuthorization::new(&bad, "http://127.0.0.1:1/").expect_err("http");
        assert!(
            error.to_string().starts_with("the authorization URL"),
            "{error}"
        );
        bad.authorization_endpoint = "http://127.0.0.1:9/authorize".to_owned();
        assert!(PendingAuthorization::new(&bad, "http://127.0.0.1:1/").is_ok());
    }

    #[test]
    fn callbacks_check_state_before_anything_else() {
        let pending = pending();
        let state = pending.state.clone();
        let ok = pending
            .accept_query(&format!("code=abc.DEF-123&state={state}&scope=x"))
            .expect("valid");
        assert_eq!(ok.expose_secret(), "abc.DEF-123");
        for (query, expected) in [
            ("code=abc".to_owned(), "is missing"),
            ("code=abc&state=other".to_owned(), "does not match"),
            (
                "error=access_denied&state=forged".to_owned(),
                "does not match",
            ),
        ] {
            match pending.accept_query(&query) {
                Err(LoginError::StateMismatch(why)) => assert_eq!(why, expected, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
        match pending.accept_query(&format!(
            "error=access_denied&error_description=End-User%20aborted%1B%5B31m&state={state}"
        )) {
            Err(LoginError::Denied(error)) => {
                assert_eq!(error.code, "access_denied");
                let description = error.description.expect("description");
                assert!(description.starts_with("End-User aborted"), "{description}");
                assert!(!description.contains('\x1b'), "{description:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            pending.accept_query(&format!("code=a&code=b&state={state}")),
            Err(LoginError::NoCode(_))
        ));
        assert!(matches!(
            pending.accept_query(&format!("state={state}")),
            Err(LoginError::NoCode(_))
        ));
    }

    #[test]
    fn pasted_input_forms() {
        let pending = pending();
        let state = pending.state.clone();
        let url = format!("http://127.0.0.1:4711/?state={state}&code=4%2F0Ab-x");
        for input in [
            url.clone(),
            format!("  {url}\n"),
            format!("?state={state}&code=4%2F0Ab-x"),
            format!("state={state}&code=4%2F0Ab-x"),
            "4/0Ab-x".to_owned(),
        ] {
            let code = pending.accept_pasted(&input).expect(&input);
            assert_eq!(code.expose_secret(), "4/0Ab-x", "{input}");
        }
        assert!(matches!(
            pending.accept_pasted("http://127.0.0.1:4711/?code=x&state=wrong"),
            Err(LoginError::StateMismatch(_))
        ));
        for bad in ["", "   ", "two words", "caf\u{e9}"] {
            assert!(
                matches!(pending.accept_pasted(bad), Err(LoginError::NoCode(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn device_responses() {
        let device = parse_device_response(
            br#"{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"https://example.com/device",
                "verification_uri_complete":"https://example.com/device?user_code=ABCD-EFGH","expires_in":600}"#,
        )
        .expect("valid");
        assert_eq!(device.device_code.expose_secret(), "dc");
        assert_eq!(device.user_code, "ABCD-EFGH");
        assert_eq!(device.interval, DEFAULT_DEVICE_INTERVAL);
        assert_eq!(device.expires_in, Duration::from_secs(600));
        assert!(!format!("{device:?}").contains("\"dc\""));
        let google = parse_device_response(
            br#"{"device_code":"d","user_code":"X","verification_url":"https://www.google.com/device","expires_in":1800,"interval":0}"#,
        )
        .expect("google's field name");
        assert_eq!(google.verification_uri, "https://www.google.com/device");
        assert_eq!(google.interval, Duration::from_secs(1));
        for bad in [
            &br#"[]"#[..],
            br#"{"user_code":"X","verification_uri":"https://e.x/","expires_in":1}"#,
            br#"{"device_code":"d","user_code":"X\u001b[2J","verification_uri":"https://e.x/","expires_in":1}"#,
            br#"{"device_code":"d","user_code":"X","verification_uri":"http://evil.example/","expires_in":1}"#,
            br#"{"device_code":"d","user_code":"X","verification_uri":"https://e.x/","expires_in":"soon"}"#,
            br#"{"device_code":"d","user_code":"X","verification_uri":"https://e.x/"}"#,
        ] {
            assert!(
                matches!(parse_device_response(bad), Err(LoginError::DeviceResponse(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn rejected(code: &str) -> RefreshOutcome {
        RefreshOutcome::Misconfigured(Misconfiguration::Rejected(ServerError {
            status: 400,
            code: code.to_owned(),
            subtype: None,
            description: None,
        }))
    }

    #[test]
    fn device_polling_follows_rfc_8628() {
        let five = Duration::from_secs(5);
        let wait = |step| match step {
            PollStep::Wait(d) => d,
            PollStep::Done(_) => panic!("done"),
            PollStep::Fail(e) => panic!("{e}"),
        };
        assert_eq!(
            wait(poll_step(rejected("authorization_pending"), five)),
            five
        );
        assert_eq!(
            wait(poll_step(rejected("slow_down"), five)),
            Duration::from_secs(10)
        );
        assert_eq!(
            wait(poll_step(rejected("slow_down"), MAX_DEVICE_INTERVAL)),
            MAX_DEVICE_INTERVAL
        );
        let busy = RefreshOutcome::Transient(TransientFailure {
            kind: TransientKind::Timeout,
            error: None,
            retry_after: None,
        });
        assert_eq!(wait(poll_step(busy, five)), Duration::from_secs(10));
        assert!(matches!(
            poll_step(rejected("access_denied"), five),
            PollStep::Fail(LoginError::Denied(_))
        ));
        assert!(matches!(
            poll_step(rejected("expired_token"), five),
            PollStep::Fail(LoginError::DeviceExpired)
        ));
        assert!(matches!(
            poll_step(rejected("invalid_client"), five),
            PollStep::Fail(LoginError::Misconfigured(_))
        ));
        let body = br#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#;
        let no_refresh = classify_response(
            TokenHttpResponse {
                status: 200,
                retry_after: None,
                location: None,
                body,
            },
            0,
        );
        assert!(matches!(
            poll_step(no_refresh, five),
            PollStep::Fail(LoginError::NoRefreshToken)
        ));
    }

    #[test]
    fn account_from_id_token() {
        let token = |claims: &str| {
            SecretString::new(format!(
                "eyJhbGciOiJSUzI1NiJ9.{}.sig",
                URL_SAFE_NO_PAD.encode(claims)
            ))
        };
        assert_eq!(
            id_token_account(&token(r#"{"sub":"1","email":"a@example.com"}"#)).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            id_token_account(&token(r#"{"preferred_username":"b@contoso.com"}"#)).as_deref(),
            Some("b@contoso.com")
        );
        assert_eq!(id_token_account(&token(r#"{"sub":"1"}"#)), None);
        assert_eq!(id_token_account(&token("{\"email\":\"x\\u202e\"}")), None);
        assert_eq!(
            id_token_account(&SecretString::copy_from("not-a-jwt")),
            None
        );
    }
}
