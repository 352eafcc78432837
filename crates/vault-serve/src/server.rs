//! The loopback HTTP server: who may ask, which Host, which endpoint, and
//! one log line per request (never a token).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use vault_engine::{Backend, ErrorKind, unix_now};

use crate::azure::{self, AzureConfig};
use crate::gce::{self, GceConfig, GceRoute};
use crate::tokens::{Failure, Tokens};

/// What a server serves and to whom.
#[derive(Debug)]
pub struct ServerConfig {
    /// Compute Engine metadata, if served.
    pub gce: Option<GceConfig>,
    /// App Service managed identity, if served.
    pub azure: Option<AzureConfig>,
    /// Uids besides our own whose processes may ask.
    pub allowed_uids: Vec<u32>,
}

impl ServerConfig {
    /// Every record served, once each, sorted.
    pub fn records(&self) -> Vec<String> {
        let gce = self.gce.iter().flat_map(|g| &g.accounts).map(|a| &a.record);
        let azure = self.azure.iter().flat_map(|a| a.resources.values());
        let mut records: Vec<String> = gce.chain(azure).cloned().collect();
        records.sort();
        records.dedup();
        records
    }
}

type Reply = Response<Full<Bytes>>;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A bound server, not yet accepting.
pub struct Server<B: Backend + 'static> {
    listener: TcpListener,
    app: Arc<App<B>>,
}

struct App<B: Backend + 'static> {
    config: ServerConfig,
    tokens: Arc<Tokens<B>>,
    /// The hosts a request may name: the listening address and
    /// `localhost:PORT` (DNS rebinding sends any other name).
    hosts: [String; 2],
    own_uid: u32,
    counts: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

/// Why an address cannot be listened on.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Not a loopback address.
    #[error("{0} is not a loopback address: the token endpoints listen on 127.0.0.1 or ::1 only")]
    NotLoopback(SocketAddr),
    /// The socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Io {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl<B: Backend + 'static> Server<B> {
    /// Binds `address` (loopback only).
    pub async fn bind(
        address: SocketAddr,
        config: ServerConfig,
        tokens: Arc<Tokens<B>>,
    ) -> Result<Self, BindError> {
        if !address.ip().is_loopback() {
            return Err(BindError::NotLoopback(address));
        }
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| BindError::Io { address, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| BindError::Io { address, source })?;
        let app = App {
            config,
            tokens,
            hosts: [local.to_string(), format!("localhost:{}", local.port())],
            own_uid: rustix::process::geteuid().as_raw(),
            counts: Mutex::default(),
        };
        Ok(Self {
            listener,
            app: Arc::new(app),
        })
    }

    /// The address accepted on (the port, when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, refreshing ahead meanwhile; then
    /// stops accepting and waits for any refresh in flight and its save.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let tokens = Arc::clone(&self.app.tokens);
        let keepers: Vec<_> = tokens
            .records()
            .map(|name| tokio::spawn(Arc::clone(&tokens).keep_fresh(name.to_owned())))
            .collect();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(Arc::clone(&self.app).connection(stream, peer));
                    }
                    Err(error) => tracing::warn!("accept failed: {error}"),
                },
            }
        }
        drop(self.listener);
        for keeper in keepers {
            keeper.abort();
        }
        tokens.drain().await;
    }
}

impl<B: Backend + 'static> App<B> {
    /// Serves one connection; whether its peer may ask is decided once.
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let allowed = self.peer_allowed(&stream, peer);
        let service = hyper::service::service_fn(move |request| {
            let app = Arc::clone(&self);
            async move { Ok::<_, Infallible>(app.handle(request, allowed).await) }
        });
        // A client that never finishes its headers is dropped; one that
        // may not ask gets its 403 and the connection closes.
        let served = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(allowed)
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(error) = served {
            tracing::debug!("connection from {peer}: {error}");
        }
    }

    /// The peer is on loopback and its socket belongs to us or to an
    /// allowed uid.
    fn peer_allowed(&self, stream: &TcpStream, peer: SocketAddr) -> bool {
        if !peer.ip().is_loopback() {
            return false;
        }
        let owner = stream
            .local_addr()
            .and_then(|ours| crate::peer::peer_uid(ours, peer));
        match owner {
            Ok(Some(uid)) if uid == self.own_uid || self.config.allowed_uids.contains(&uid) => true,
            Ok(Some(uid)) => {
                tracing::warn!("refused a connection from uid {uid} (not ours; see --allow-uid)");
                false
            }
            Ok(None) => {
                tracing::warn!(
                    "refused a connection from {peer}: its owner is not listed in /proc/net"
                );
                false
            }
            Err(error) => {
                tracing::error!("refused a connection: cannot read /proc/net/tcp: {error}");
                false
            }
        }
    }

    async fn handle(&self, request: Request<Incoming>, allowed: bool) -> Reply {
        let started = Instant::now();
        let (endpoint, record, reply) = self.respond(&request, allowed).await;
        let status = reply.status().as_u16();
        tracing::info!(
            method = %request.method(),
            path = request.uri().path(),
            record = record.unwrap_or(""),
            status,
            latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((endpoint, status))
            .or_default() += 1;
        reply
    }

    /// The endpoint's name (for metrics), the record asked for, the reply.
    async fn respond(
        &self,
        request: &Request<Incoming>,
        allowed: bool,
    ) -> (&'static str, Option<&str>, Reply) {
        let gce_flavor = self.config.gce.is_some();
        if let Some(refusal) = self.refusal(request, allowed) {
            return ("refused", None, with_flavor(refusal, gce_flavor));
        }
        let path = request.uri().path();
        if path == "/metrics" {
            return ("metrics", None, with_flavor(self.metrics(), gce_flavor));
        }
        if let Some(azure) = &self.config.azure
            && path == azure::PATH
        {
            let (record, reply) = self.azure(azure, request).await;
            return ("azure_token", record, reply);
        }
        if let Some(gce) = &self.config.gce {
            let (endpoint, record, reply) = self.gce(gce, request).await;
            return (endpoint, record, with_flavor(reply, true));
        }
        (
            "not_found",
            None,
            text(StatusCode::NOT_FOUND, "not found\n"),
        )
    }

    /// Requests refused whatever they ask.
    fn refusal(&self, request: &Request<Incoming>, allowed: bool) -> Option<Reply> {
        if !allowed {
            return Some(text(
                StatusCode::FORBIDDEN,
                "forbidden: this server answers only processes of its own user and of --allow-uid\n",
            ));
        }
        let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| self.hosts.iter().any(|ours| ours.eq_ignore_ascii_case(h))) {
            return Some(text(
                StatusCode::FORBIDDEN,
                &format!("forbidden: the Host header must be {}\n", self.hosts[0]),
            ));
        }
        if request.headers().contains_key("x-forwarded-for") {
            return Some(text(
                StatusCode::FORBIDDEN,
                "forbidden: requests relayed by a proxy (X-Forwarded-For) are refused\n",
            ));
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD | Method::POST) {
            return Some(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"));
        }
        None
    }

    async fn gce<'c>(
        &self,
        config: &'c GceConfig,
        request: &Request<Incoming>,
    ) -> (&'static str, Option<&'c str>, Reply) {
        let path = request.uri().path();
        let recursive = request.uri().query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "recursive" && v == "true")
        });
        let route = config.route(path, recursive);
        let flavored = request
            .headers()
            .get("metadata-flavor")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"google"));
        if route != GceRoute::Root && !flavored {
            let reply = text(
                StatusCode::FORBIDDEN,
                "forbidden: metadata requests must carry the header Metadata-Flavor: Google\n",
            );
            return ("refused", None, reply);
        }
        let ok = |body: &str| text(StatusCode::OK, body);
        let reply = match route {
            GceRoute::Token(account) => {
                if let Some(query) = request.uri().query() {
                    // Ignored, as Compute Engine ignores them.
                    tracing::debug!(record = %account.record, "requested scopes ignored: {query}");
                }
                let reply = self.gce_token(&account.record).await;
                return ("gce_token", Some(&account.record), reply);
            }
            GceRoute::Identity(account) => text(
                StatusCode::NOT_FOUND,
                &format!(
                    "ID tokens are not served: {:?} holds a user's grant, which cannot mint an ID token for an arbitrary audience\n",
                    account.record
                ),
            ),
            GceRoute::Root => ok("computeMetadata/\n"),
            GceRoute::Instance => ok("attributes/\nservice-accounts/\n"),
            GceRoute::ProjectId => match &config.project_id {
                Some(id) => ok(id),
                None => text(StatusCode::NOT_FOUND, "no project id (see --project-id)\n"),
            },
            GceRoute::UniverseDomain => ok("googleapis.com"),
            GceRoute::Accounts => ok(&config.account_list()),
            GceRoute::AccountInfo {
                account,
                recursive: true,
            } => json(StatusCode::OK, &config.account_json(account)),
            GceRoute::AccountInfo {
                recursive: false, ..
            } => ok(gce::ACCOUNT_ENTRIES),
            GceRoute::Email(account) => ok(&account.email),
            GceRoute::Scopes(account) => ok(&lines(&account.scopes)),
            GceRoute::Aliases(account) => ok(&lines(&config.aliases(account))),
            GceRoute::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
        };
        ("gce_metadata", None, reply)
    }

    /// `{"access_token","expires_in","token_type":"Bearer"}`; requested
    /// scopes are ignored, as Compute Engine ignores them.
    async fn gce_token(&self, record: &str) -> Reply {
        match self.tokens.get(record).await {
            Ok(served) => {
                let expires_in = served.expires_at.saturating_sub(unix_now()).max(1);
                let body = serde_json::json!({
                    "access_token": served.token.expose_secret(),
                    "expires_in": expires_in,
                    "token_type": "Bearer",
                });
                no_store(json(StatusCode::OK, &body))
            }
            Err(failure) => text(status_of(&failure), &format!("{}\n", failure.message)),
        }
    }

    async fn azure<'c>(
        &self,
        config: &'c AzureConfig,
        request: &Request<Incoming>,
    ) -> (Option<&'c str>, Reply) {
        let presented = request
            .headers()
            .get("x-identity-header")
            .map_or(&b""[..], HeaderValue::as_bytes);
        if !config.header_matches(presented) {
            let reply = azure_error(
                StatusCode::FORBIDDEN,
                "the X-IDENTITY-HEADER is missing or wrong",
            );
            return (None, reply);
        }
        let Some(resource) = request.uri().query().and_then(azure::resource_param) else {
            let reply = azure_error(StatusCode::BAD_REQUEST, "the resource parameter is missing");
            return (None, reply);
        };
        let (resource, record) = match config.record_for(&resource) {
            Ok(found) => found,
            Err(message) => return (None, azure_error(StatusCode::BAD_REQUEST, &message)),
        };
        match self.tokens.get(record).await {
            Ok(served) => {
                let body = serde_json::json!({
                    "access_token": served.token.expose_secret(),
                    "expires_on": served.expires_at.to_string(),
                    "expires_in": served.expires_at.saturating_sub(unix_now()).max(1),
                    "resource": resource,
                    "token_type": "Bearer",
                });
                (Some(record), no_store(json(StatusCode::OK, &body)))
            }
            Err(failure) => (
                Some(record),
                azure_error(status_of(&failure), &failure.message),
            ),
        }
    }

    /// Prometheus text: requests by endpoint and status, and each record's
    /// token expiry and refresh counts.
    fn metrics(&self) -> Reply {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let body = crate::metrics::render(&counts, &self.tokens.figures());
        let mut reply = text(StatusCode::OK, &body);
        reply.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        reply
    }
}

/// The HTTP status a failure is served with.
fn status_of(failure: &Failure) -> StatusCode {
    match failure.kind {
        // A person must log in again: not the client's fault, not transient.
        ErrorKind::Reauthorize => StatusCode::BAD_GATEWAY,
        ErrorKind::Temporary => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn lines<S: AsRef<str>>(items: &[S]) -> String {
    items.iter().map(|s| format!("{}\n", s.as_ref())).collect()
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

fn text(status: StatusCode, body: &str) -> Reply {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
    reply(status, "application/json", body.to_string().into_bytes())
}

/// MSAL reads `statusCode` and `message` from an error.
fn azure_error(status: StatusCode, message: &str) -> Reply {
    json(
        status,
        &serde_json::json!({ "statusCode": status.as_u16(), "message": message }),
    )
}

fn no_store(mut reply: Reply) -> Reply {
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// Google's clients check `Metadata-Flavor: Google` on every response.
fn with_flavor(mut reply: Reply, gce: bool) -> Reply {
    if gce {
        reply
            .headers_mut()
            .insert("metadata-flavor", HeaderValue::from_static("Google"));
    }
    reply
}
