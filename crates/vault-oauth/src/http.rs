//! The HTTP clients (one pool for remote endpoints, one unproxied pool for
//! loopback): rustls, no redirects, timeouts, a response size cap.
//! Request and response bodies carry secrets, so they live in zeroizing
//! buffers on our side; reqwest and hyper errors are mapped to kinds and
//! never formatted (they can include URLs and bodies).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use zeroize::Zeroizing;

use crate::outcome::TransientKind;

/// Transport settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Limit for TCP + TLS connection setup (default 10 s).
    pub connect_timeout: Duration,
    /// Limit for one whole request, response body included (default 30 s).
    pub request_timeout: Duration,
    /// Largest response body read (default 256 KiB); larger is an error.
    pub max_response_bytes: usize,
    /// Idle connections kept per host (default 16, the default concurrency).
    pub max_idle_per_host: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 256 * 1024,
            max_idle_per_host: 16,
        }
    }
}

/// The client could not be built (TLS roots unavailable, for example).
#[derive(Debug, thiserror::Error)]
#[error("could not set up the HTTPS client (TLS configuration failed)")]
pub struct HttpSetupError;

#[derive(Clone, Debug)]
pub(crate) struct Http {
    /// For remote endpoints: honours the proxy environment (`HTTPS_PROXY`,
    /// `ALL_PROXY`, `NO_PROXY`), as deployments behind a corporate proxy
    /// need. Only the environment: no OS proxy settings are read.
    client: reqwest::Client,
    /// For loopback endpoints: never proxied, so a plain-http loopback
    /// request cannot be sent to a proxy named in the environment.
    direct: reqwest::Client,
    max_response_bytes: usize,
}

/// What came back from one POST.
pub(crate) enum Exchange {
    Response {
        status: u16,
        retry_after: Option<String>,
        location: Option<String>,
        body: Zeroizing<Vec<u8>>,
    },
    TooLarge {
        status: u16,
    },
    Failed(TransientKind),
}

impl Http {
    pub(crate) fn new(config: &HttpConfig) -> Result<Self, HttpSetupError> {
        Ok(Self {
            client: Self::builder(config).build().map_err(|_| HttpSetupError)?,
            // Loopback needs no system trust store: loading it once (for
            // the remote client) is enough.
            direct: Self::builder(config)
                .no_proxy()
                .tls_built_in_native_certs(false)
                .build()
                .map_err(|_| HttpSetupError)?,
            max_response_bytes: config.max_response_bytes,
        })
    }

    fn builder(config: &HttpConfig) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(false) // http is allowed on loopback; TokenEndpoint checks the rest
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .user_agent(concat!("tokvault/", env!("CARGO_PKG_VERSION")))
    }

    pub(crate) fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// POSTs a form body, with an optional `Authorization` header (marked
    /// sensitive so it is never printed by the HTTP stack's `Debug`).
    pub(crate) async fn post_form(
        &self,
        url: &url::Url,
        form: Zeroizing<String>,
        authorization: Option<HeaderValue>,
    ) -> Exchange {
        let client = if vault_format::is_loopback(url) {
            &self.direct
        } else {
            &self.client
        };
        let mut request = client
            .post(url.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(
                reqwest::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
        if let Some(mut value) = authorization {
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        // The buffer moves into reqwest (no copy); hyper does not wipe it
        // when done (documented in SECURITY.md).
        let mut form = form;
        let body = std::mem::take(&mut *form).into_bytes();
        let mut response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => return Exchange::Failed(kind_of(&error)),
        };
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header(RETRY_AFTER);
        let location = header(LOCATION);
        let limit = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Exchange::TooLarge { status };
        }
        let capacity = response.content_length().map_or(8 * 1024, |n| n as usize);
        let mut body = Zeroizing::new(Vec::with_capacity(capacity.min(limit)));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Exchange::TooLarge { status };
                    }
                    if body.len() + chunk.len() > body.capacity() {
                        // Grow by copying into a zeroizing buffer ourselves,
                        // so no reallocation leaves an unwiped copy behind.
                        let mut bigger = Zeroizing::new(Vec::with_capacity(
                            (body.capacity() * 2)
                                .max(body.len() + chunk.len())
                                .min(limit),
                        ));
                        bigger.extend_from_slice(&body);
                        body = bigger;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return Exchange::Failed(kind_of(&error)),
            }
        }
        Exchange::Response {
            status,
            retry_after,
            location,
            body,
        }
    }
}

fn kind_of(error: &reqwest::Error) -> TransientKind {
    if error.is_timeout() {
        TransientKind::Timeout
    } else if error.is_connect() {
        TransientKind::Connect
    } else {
        TransientKind::Network
    }
}
