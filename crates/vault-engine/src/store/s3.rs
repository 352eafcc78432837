//! A vault in an S3-compatible bucket, shared by several hosts.
//!
//! Correctness rests on conditional writes to the vault object: every write
//! is `If-Match: <ETag read under the lease>` (`If-None-Match: *` for a new
//! vault), and every write's bytes are unique (generation and nonce), so a
//! stale writer always loses and ABA cannot happen. The lease object
//! `KEY.lease` only decides whose turn it is to call the token endpoint: it
//! is created with `If-None-Match: *`, taken over with `If-Match` only after
//! its ETag was seen unchanged for its TTL plus a margin on our own
//! monotonic clock (never another machine's wall clock), and released by a
//! conditional overwrite (Ceph ignores a conditional DELETE). ETags are sent
//! unquoted (Ceph rejects quoted ones).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::client::{ClientOptions, HttpClient, HttpConnector};
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use serde_json::json;

use super::{Backend, Lease, Snapshot, Version};
use crate::error::{EngineError, ErrorKind, Result};
use crate::fsio;

/// Largest vault object read (as `import` reads at most 64 MiB).
const MAX_OBJECT: u64 = 64 << 20;
/// Added to a lease's TTL before a contender takes it over: clocks run at
/// slightly different rates, and the holder checks its time left before
/// each request with its own margin.
const TAKEOVER_MARGIN: Duration = Duration::from_secs(5);
/// How often a contender looks at a busy lease.
const POLL: Duration = Duration::from_millis(500);
/// How long releasing a lease may hold up the end of a command.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Where a vault in a bucket is and how to reach it.
#[derive(Clone, Debug)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The vault object's key.
    pub key: String,
}

impl S3Location {
    /// Parses `s3://BUCKET/KEY`.
    pub fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        let valid_bucket = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        (valid_bucket && !key.is_empty() && !key.ends_with('/')).then(|| Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// `s3://BUCKET/KEY`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// The S3 client settings: endpoint and credentials.
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`; `None`: AWS.
    pub endpoint: Option<String>,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION` (default us-east-1).
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<vault_format::SecretString>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<vault_format::SecretString>,
    /// How long a lease lasts without its holder.
    pub lease_ttl: Duration,
}

/// A reqwest client as the rest of tokvault uses one: rustls, no
/// redirects, timeouts set.
#[derive(Debug)]
struct Connector;

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(client))
    }
}

/// Makes another client of the same store.
pub type Fresh = Arc<dyn Fn() -> object_store::Result<Arc<dyn ObjectStore>> + Send + Sync>;

/// A vault object in a bucket.
pub struct S3Backend {
    location: String,
    key: Path,
    lease_key: Path,
    store: Arc<dyn ObjectStore>,
    /// A client of its own for the release on drop (this one's pooled
    /// connections belong to the runtime that may be blocked there).
    fresh: Fresh,
    state_dir: PathBuf,
    lease_ttl: Duration,
    /// Who we are in lease objects.
    writer: String,
    /// The ETag of another holder's lease and since when we have seen it
    /// unchanged, kept across acquire calls (a reader polls with short
    /// ones).
    watch: std::sync::Mutex<Option<(String, Instant)>>,
    takeover_margin: Duration,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.location)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

/// The https rule: plain http only to a loopback endpoint.
fn check_endpoint(endpoint: &str) -> Result<bool> {
    let url = url::Url::parse(endpoint).map_err(|e| {
        EngineError::new(
            ErrorKind::Failure,
            format!("AWS_ENDPOINT_URL {endpoint:?} is not a URL: {e}"),
        )
    })?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(false),
        "http" if loopback => Ok(true),
        _ => Err(EngineError::new(
            ErrorKind::Failure,
            format!("the S3 endpoint {endpoint} must use https (plain http only on loopback)"),
        )),
    }
}

impl S3Backend {
    /// A backend for `location`, its local state (the conditional-write
    /// probe's result) in `state_dir`.
    pub fn new(location: &S3Location, settings: &S3Settings, state_dir: &FsPath) -> Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"))
            .with_virtual_hosted_style_request(false)
            .with_http_connector(Connector)
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..object_store::RetryConfig::default()
            });
        if let Some(endpoint) = &settings.endpoint {
            let http = check_endpoint(endpoint)?;
            builder = builder.with_endpoint(endpoint).with_allow_http(http);
        }
        // Explicit keys only: without them the client would ask an instance
        // metadata service, which no test and few servers have.
        let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key)
        else {
            return Err(EngineError::new(
                ErrorKind::Failure,
                format!(
                    "no S3 credentials for {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                     or give systemd credentials aws-access-key-id and aws-secret-access-key",
                    location.url()
                ),
            ));
        };
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret.expose_secret());
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(token.expose_secret());
        }
        let store = builder.clone().build().map_err(|e| {
            EngineError::new(
                ErrorKind::Failure,
                format!("cannot use {}: {e}", location.url()),
            )
        })?;
        let fresh: Fresh = Arc::new(move || {
            let store: Arc<dyn ObjectStore> = Arc::new(builder.clone().build()?);
            Ok(store)
        });
        Self::with_store(
            location,
            Arc::new(store),
            fresh,
            state_dir,
            settings.lease_ttl,
        )
    }

    /// A backend on any object store with conditional writes (tests use an
    /// in-memory one); `fresh` makes another client of the same store.
    pub fn with_store(
        location: &S3Location,
        store: Arc<dyn ObjectStore>,
        fresh: Fresh,
        state_dir: &FsPath,
        lease_ttl: Duration,
    ) -> Result<Self> {
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random)
            .map_err(|e| EngineError::failure(format!("no randomness for a writer id: {e}")))?;
        Ok(Self {
            location: location.url(),
            key: Path::from(location.key.as_str()),
            lease_key: Path::from(format!("{}.lease", location.key)),
            store,
            fresh,
            state_dir: state_dir.to_path_buf(),
            lease_ttl,
            writer: fsio::hex(&random),
            watch: std::sync::Mutex::default(),
            takeover_margin: TAKEOVER_MARGIN,
        })
    }

    fn error(&self, what: &str, error: &object_store::Error) -> EngineError {
        let (kind, hint) = match error {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => (
                ErrorKind::Failure,
                "; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy",
            ),
            object_store::Error::Generic { .. } => (
                ErrorKind::Temporary,
                "; the store did not answer (nothing was changed): try again later",
            ),
            _ => (ErrorKind::Failure, ""),
        };
        EngineError::new(kind, format!("{what} {}: {error}{hint}", self.location))
    }

    /// The object at `key` and its unquoted ETag, `None` when missing.
    async fn get(&self, key: &Path) -> Result<Option<(Vec<u8>, String)>> {
        tracing::debug!("S3 request: GET {key}");
        let result = match self.store.get(key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("cannot read", &e)),
        };
        if result.meta.size > MAX_OBJECT {
            return Err(EngineError::untrusted(format!(
                "{key} in {} is {} bytes, larger than any vault",
                self.location, result.meta.size
            )));
        }
        let etag = result.meta.e_tag.clone().map(unquote).unwrap_or_default();
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.error("cannot read", &e))?;
        Ok(Some((bytes.to_vec(), etag)))
    }

    /// A conditional PUT; `Ok(None)` when the condition failed.
    async fn put(
        &self,
        key: &Path,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<Option<String>> {
        let mode = match expected {
            None => PutMode::Create,
            Some(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.to_owned()),
                version: None,
            }),
        };
        tracing::debug!(
            "S3 request: PUT {key} ({})",
            match &mode {
                PutMode::Create => "If-None-Match: *",
                _ => "If-Match",
            }
        );
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(key, PutPayload::from(bytes.to_vec()), options)
            .await
        {
            Ok(result) => Ok(Some(result.e_tag.map(unquote).unwrap_or_default())),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Ok(None),
            Err(e) => Err(self.error("cannot write", &e)),
        }
    }

    /// Refuses a store that ignores conditional writes (s3rver, Incus, B2
    /// answer 200 to a second create-only PUT), once per bucket and host.
    async fn probe_conditional_writes(&self) -> Result<()> {
        let marker = self
            .state_dir
            .join("s3-probe")
            .join(fsio::hex(&sha2_16(self.location.as_bytes())));
        if marker.exists() {
            return Ok(());
        }
        let probe = Path::from(format!("{}.probe-{}", self.key, self.writer));
        let first = self.put(&probe, b"probe", None).await?;
        let second = self.put(&probe, b"probe", None).await;
        tracing::debug!("S3 request: DELETE {probe}");
        let _ = self.store.delete(&probe).await;
        match (first, second?) {
            (Some(_), None) => {}
            _ => {
                return Err(EngineError::new(
                    ErrorKind::Failure,
                    format!(
                        "the bucket of {} does not honour conditional writes (a second create-only PUT succeeded): \
                         two hosts could overwrite each other's rotated tokens, so nothing is written there",
                        self.location
                    ),
                ));
            }
        }
        fsio::ensure_private_dir(marker.parent().unwrap_or(&self.state_dir))?;
        let _ = std::fs::write(&marker, b"conditional writes honoured\n");
        Ok(())
    }

    fn lease_body(&self, released: bool) -> Vec<u8> {
        json!({
            "writer": self.writer,
            "host": hostname(),
            "pid": std::process::id(),
            "acquired_at": crate::session::unix_now(),
            "ttl_ms": u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX),
            "released": released,
        })
        .to_string()
        .into_bytes()
    }

    /// One attempt to take the lease; `Ok(None)` while someone holds it.
    async fn try_take(&self) -> Result<Option<String>> {
        // The lease this host released last, if nobody has touched it
        // since: taken with one conditional PUT instead of a GET and a PUT.
        if let Some(released) = self.released_here() {
            let body = self.lease_body(false);
            if let Some(etag) = self.put(&self.lease_key, &body, Some(&released)).await? {
                return Ok(Some(etag));
            }
        }
        let current = self.get(&self.lease_key).await?;
        let Some((body, etag)) = current else {
            return self
                .put(&self.lease_key, &self.lease_body(false), None)
                .await;
        };
        let lease: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let released = lease["released"].as_bool().unwrap_or(false);
        let ttl = Duration::from_millis(lease["ttl_ms"].as_u64().unwrap_or(0));
        let expired = {
            let mut watch = self
                .watch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*watch {
                Some((seen, since)) if *seen == etag => {
                    since.elapsed() >= ttl + self.takeover_margin
                }
                _ => {
                    *watch = Some((etag.clone(), Instant::now()));
                    false
                }
            }
        };
        if !released && !expired {
            return Ok(None);
        }
        if expired {
            tracing::warn!(
                "taking over the lease of {}: held by {} (pid {}) and unchanged for {} s",
                self.location,
                lease["host"].as_str().unwrap_or("?"),
                lease["pid"],
                ttl.as_secs() + self.takeover_margin.as_secs()
            );
        }
        self.put(&self.lease_key, &self.lease_body(false), Some(&etag))
            .await
    }
}

impl S3Backend {
    /// Where this host keeps the ETag of the lease it released last.
    fn released_path(&self) -> PathBuf {
        self.state_dir
            .join("s3-lease")
            .join(fsio::hex(&sha2_16(self.location.as_bytes())))
    }

    fn released_here(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.released_path()).ok()?;
        Some(text.trim().to_owned()).filter(|etag| !etag.is_empty())
    }

    /// Remembers (or forgets, with `None`) the ETag of the lease this host
    /// just released; a failure only costs a request next time.
    fn remember_released(&self, etag: Option<&str>) {
        let path = self.released_path();
        let remembered = match etag {
            Some(etag) => fsio::ensure_private_dir(&fsio::parent_of(&path))
                .and_then(|()| fsio::write_atomic(&path, etag.as_bytes(), true)),
            None => Ok(()),
        };
        if etag.is_none() || remembered.is_err() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// SHA-256 of `bytes`, first 16 bytes.
fn sha2_16(bytes: &[u8]) -> [u8; 16] {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Ceph rejects the quoted form RFC 9110 gives ETags; AWS takes both.
fn unquote(etag: String) -> String {
    etag.trim_matches('"').to_owned()
}

/// The lease on a vault object; released (if still ours) on drop.
#[derive(Debug)]
pub struct S3Lease<'a> {
    backend: &'a S3Backend,
    etag: String,
    /// When the request that took it was sent: the TTL runs from there.
    taken: Instant,
}

impl Backend for S3Backend {
    type Lease<'a> = S3Lease<'a>;

    fn location(&self) -> &str {
        &self.location
    }

    async fn read(&self) -> Result<Option<Snapshot>> {
        Ok(self.get(&self.key).await?.map(|(bytes, etag)| Snapshot {
            bytes,
            version: Version(etag),
        }))
    }

    async fn acquire(&self, wait: Duration) -> Result<S3Lease<'_>> {
        self.probe_conditional_writes().await?;
        let started = Instant::now();
        loop {
            let taken = Instant::now();
            if let Some(etag) = self.try_take().await? {
                return Ok(S3Lease {
                    backend: self,
                    etag,
                    taken,
                });
            }
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(EngineError::Busy {
                    location: self.location.clone(),
                    waited: wait,
                });
            }
            tokio::time::sleep(left.min(POLL)).await;
        }
    }

    async fn check_writable(&self) -> Result<()> {
        self.probe_conditional_writes().await
    }
}

impl Lease for S3Lease<'_> {
    async fn reserve(&mut self, _size: u64) -> Result<()> {
        // A bucket has no disk to fill; a quota shows at the PUT, and the
        // rescue file catches it.
        Ok(())
    }

    async fn commit(&mut self, expected: Option<&Version>, bytes: &[u8]) -> Result<Version> {
        let backend = self.backend;
        let written = backend
            .put(&backend.key, bytes, expected.map(|v| v.0.as_str()))
            .await?;
        if let Some(etag) = written {
            return Ok(Version(etag));
        }
        // A 5xx that was retried may have landed our own write: the second
        // attempt then finds its own ETag gone. Only the same bytes (unique
        // per write) mean it is ours.
        match backend.get(&backend.key).await? {
            Some((stored, etag)) if stored == bytes => Ok(Version(etag)),
            _ => Err(EngineError::Conflict {
                location: backend.location.clone(),
            }),
        }
    }

    fn has_room(&self) -> bool {
        true
    }

    fn remaining(&self) -> Option<Duration> {
        Some(self.backend.lease_ttl.saturating_sub(self.taken.elapsed()))
    }
}

impl Drop for S3Lease<'_> {
    fn drop(&mut self) {
        // On a thread with its own runtime and client: this one's runtime
        // may be blocked right here, with the pooled connections on it.
        let fresh = Arc::clone(&self.backend.fresh);
        let key = self.backend.lease_key.clone();
        let etag = self.etag.clone();
        let body = self.backend.lease_body(true);
        let (done, finished) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("tokvault-lease-release".to_owned())
            .spawn(move || {
                let released = release(&fresh, &key, etag, body);
                let _ = done.send(released);
            });
        let outcome = match spawned {
            Ok(_) => finished
                .recv_timeout(RELEASE_WAIT)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(Ok(released)) => self.backend.remember_released(released.as_deref()),
            Err(error) | Ok(Err(error)) => {
                self.backend.remember_released(None);
                tracing::warn!(
                    "the lease of {} was not released ({error}); other hosts wait for it to expire",
                    self.backend.location
                );
            }
        }
    }
}

/// Overwrites our lease with a released one, only if it is still ours;
/// the released lease's ETag, `None` when it was no longer ours.
fn release(
    fresh: &Fresh,
    key: &Path,
    etag: String,
    body: Vec<u8>,
) -> std::result::Result<Option<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let store = fresh().map_err(|e| e.to_string())?;
        let options = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: Some(etag),
                version: None,
            }),
            ..PutOptions::default()
        };
        tracing::debug!("S3 request: PUT {key} (If-Match, release)");
        match store.put_opts(key, PutPayload::from(body), options).await {
            Ok(put) => Ok(put.e_tag.map(unquote)),
            // Taken over meanwhile: not ours to release.
            Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s3_urls_with_a_bucket_and_a_key_parse() {
        let parsed = S3Location::parse("s3://team-vaults/prod/gmail.tokvault").expect("parses");
        assert_eq!(parsed.bucket, "team-vaults");
        assert_eq!(parsed.key, "prod/gmail.tokvault");
        assert_eq!(parsed.url(), "s3://team-vaults/prod/gmail.tokvault");
        for bad in [
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://Bucket/key",
            "s3://bucket/dir/",
            "https://bucket/key",
            "/var/lib/vault",
        ] {
            assert!(S3Location::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        assert_eq!(check_endpoint("https://s3.example.com").ok(), Some(false));
        assert_eq!(check_endpoint("http://127.0.0.1:7480").ok(), Some(true));
        assert_eq!(check_endpoint("http://[::1]:9000").ok(), Some(true));
        assert_eq!(check_endpoint("http://localhost:9000").ok(), Some(true));
        let refused = check_endpoint("http://s3.example.com").expect_err("plain http");
        assert_eq!(refused.kind(), ErrorKind::Failure);
        assert!(check_endpoint("ftp://127.0.0.1").is_err());
    }

    use object_store::memory::InMemory;

    fn backend(store: &Arc<InMemory>, state: &FsPath, ttl: Duration) -> S3Backend {
        let same = Arc::clone(store);
        let fresh: Fresh = Arc::new(move || {
            let store: Arc<dyn ObjectStore> = same.clone();
            Ok(store)
        });
        let location = S3Location::parse("s3://bucket/team/vault").expect("location");
        let mut backend =
            S3Backend::with_store(&location, store.clone(), fresh, state, ttl).expect("backend");
        backend.takeover_margin = Duration::ZERO;
        backend
    }

    #[tokio::test]
    async fn one_writer_at_a_time_and_every_write_is_conditional() {
        let store = Arc::new(InMemory::new());
        let state = tempfile::tempdir().expect("state");
        let (a, b) = (
            backend(&store, state.path(), Duration::from_secs(60)),
            backend(&store, state.path(), Duration::from_secs(60)),
        );
        let mut lease = a.acquire(Duration::ZERO).await.expect("free");
        let v1 = lease.commit(None, b"vault 1").await.expect("created");
        assert!(
            lease.commit(None, b"vault 1b").await.is_err(),
            "create-only over an existing vault"
        );
        let busy = b.acquire(Duration::ZERO).await.expect_err("held by a");
        assert!(matches!(busy, EngineError::Busy { .. }), "{busy}");
        let v2 = lease
            .commit(Some(&v1), b"vault 2")
            .await
            .expect("a's update");
        drop(lease);
        let mut lease = b.acquire(Duration::ZERO).await.expect("released by a");
        let stale = lease
            .commit(Some(&v1), b"vault 3")
            .await
            .expect_err("stale ETag");
        assert!(matches!(stale, EngineError::Conflict { .. }), "{stale}");
        lease
            .commit(Some(&v2), b"vault 3")
            .await
            .expect("b's update");
        assert_eq!(
            b.read().await.expect("read").expect("vault").bytes,
            b"vault 3"
        );
    }

    #[tokio::test]
    async fn the_lease_this_host_released_is_retaken_only_while_untouched() {
        let store = Arc::new(InMemory::new());
        let (here, there) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let a = backend(&store, here.path(), Duration::from_secs(60));
        let b = backend(&store, there.path(), Duration::from_secs(60));
        drop(a.acquire(Duration::ZERO).await.expect("free"));
        let remembered = a.released_here().expect("a remembers its release");
        let (_, etag) = a.get(&a.lease_key).await.expect("get").expect("lease");
        assert_eq!(remembered, etag);
        // Another host uses the lease meanwhile: the memo is stale, and
        // taking the lease falls back to reading it.
        drop(b.acquire(Duration::ZERO).await.expect("released by a"));
        let lease = a.acquire(Duration::ZERO).await.expect("released by b");
        // Held now: nobody else gets it, whatever they remember.
        assert!(b.acquire(Duration::ZERO).await.is_err(), "held by a");
        drop(lease);
    }

    #[tokio::test]
    async fn a_retried_write_that_landed_is_recognised_by_its_bytes() {
        let store = Arc::new(InMemory::new());
        let state = tempfile::tempdir().expect("state");
        let a = backend(&store, state.path(), Duration::from_secs(60));
        let mut lease = a.acquire(Duration::ZERO).await.expect("free");
        let v1 = lease.commit(None, b"vault 1").await.expect("created");
        // What a 5xx whose write landed leaves: our bytes under a new ETag,
        // and the retry's If-Match on the old ETag failing.
        store
            .put(&a.key, PutPayload::from(b"vault 2".to_vec()))
            .await
            .expect("landed");
        let landed = lease.commit(Some(&v1), b"vault 2").await.expect("ours");
        assert_ne!(landed, v1);
        let other = lease
            .commit(Some(&v1), b"vault 3")
            .await
            .expect_err("not ours");
        assert!(matches!(other, EngineError::Conflict { .. }), "{other}");
    }

    #[tokio::test]
    async fn a_dead_holders_lease_is_taken_over_only_after_its_ttl_unchanged() {
        let store = Arc::new(InMemory::new());
        let state = tempfile::tempdir().expect("state");
        let dead = backend(&store, state.path(), Duration::from_millis(300));
        let b = backend(&store, state.path(), Duration::from_secs(60));
        // A holder that died: its lease is never released.
        std::mem::forget(dead.acquire(Duration::ZERO).await.expect("free"));
        assert!(b.acquire(Duration::ZERO).await.is_err(), "first sight");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(b.acquire(Duration::ZERO).await.is_err(), "before the TTL");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let lease = b.acquire(Duration::ZERO).await.expect("taken over");
        assert!(lease.remaining().expect("a TTL") <= Duration::from_secs(60));
        drop(lease);
        let (body, _) = b.get(&b.lease_key).await.expect("get").expect("lease");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["released"], true, "{body}");
        assert_eq!(body["writer"], b.writer.as_str());
    }

    #[test]
    fn etags_are_sent_unquoted() {
        assert_eq!(unquote("\"abc\"".to_owned()), "abc");
        assert_eq!(unquote("abc".to_owned()), "abc");
    }
}
