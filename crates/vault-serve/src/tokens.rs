//! The access tokens a server hands out: cached per record, refreshed
//! through the engine's transaction (so a timer's `tokvault refresh` and a
//! server coexist without a replay) in a task that a dropped client cannot
//! cancel, one refresh at a time per record, and ahead of expiry in the
//! background so that requests rarely wait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, LocalBoxFuture, Shared};
use vault_engine::{Backend, ErrorKind, IssuedToken, RunSummary, Session, Version, unix_now};
use vault_format::{RefreshClass, SecretString};
use vault_oauth::Refresher;

/// How far before the `min_valid` mark the background refresh starts, so
/// that a request finds a token that lasts long enough.
const LEAD: u64 = 60;
/// Lifetime assumed for a token whose provider gave none.
const ASSUMED_LIFETIME: u64 = 300;
/// Validity an older token must still have to be served while refreshing
/// fails for now.
const STALE_MARGIN: u64 = 30;
/// After a rejected grant, how long before asking the provider again when
/// the vault has not changed meanwhile (a `tokvault login --again` changes
/// it, and is picked up at the next request).
const REJECTED_RETRY: Duration = Duration::from_secs(600);

/// How tokens are kept fresh.
#[derive(Clone, Copy, Debug)]
pub struct TokenSettings {
    /// Validity a served token has at least, when the provider's lifetime
    /// allows; else half that lifetime.
    pub min_valid: Duration,
    /// The longest a refresh run may take (its window for requests).
    pub max_run_time: Duration,
    /// After a failed refresh, how long requests get the failure (or a
    /// still valid older token) before another refresh is tried.
    pub retry_after: Duration,
}

/// Told about every refresh run that was needed (health, hook, metrics
/// file); called on a blocking thread.
pub type RunReport = Arc<dyn Fn(&RunSummary) + Send + Sync>;

/// Why no token can be served.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Its class (the HTTP status follows from it).
    pub kind: ErrorKind,
    /// What went wrong and what to do; never a secret.
    pub message: String,
}

/// A token ready to serve.
pub struct Served {
    /// The access token.
    pub token: SecretString,
    /// Unix seconds when it expires.
    pub expires_at: u64,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

type Pending = Shared<BoxFuture<'static, Result<Arc<Served>, Failure>>>;

/// One record's cache.
#[derive(Default)]
struct SlotState {
    cached: Option<Arc<Served>>,
    /// The lifetime of the last token the provider issued, in seconds.
    lifetime: Option<u64>,
    inflight: Option<Pending>,
    failure: Option<(Instant, Failure)>,
    /// The vault's version when the grant was found rejected.
    rejected_at: Option<Version>,
    refreshes: u64,
    failures: u64,
}

impl SlotState {
    /// Caches a token the engine handed out; one that is older than the
    /// refresh asked for also starts the retry interval.
    fn issued(
        &mut self,
        name: &str,
        issued: IssuedToken,
        issued_now: bool,
        now: u64,
    ) -> Arc<Served> {
        let stale_because = issued.stale_because.clone();
        let served = Arc::new(served(issued, now));
        if issued_now {
            self.lifetime = Some(served.expires_at.saturating_sub(now));
            self.refreshes += 1;
        }
        self.cached = Some(Arc::clone(&served));
        self.failure = stale_because.map(|message| {
            tracing::warn!(record = %name, "refresh failed for now; the current token is still valid and is served: {message}");
            self.failures += 1;
            let failure = Failure {
                kind: ErrorKind::Temporary,
                message: format!("{name}: {message}"),
            };
            (Instant::now(), failure)
        });
        served
    }

    /// Records why no token can be served.
    fn failed(&mut self, name: &str, error: &vault_engine::EngineError) -> Failure {
        let failure = Failure {
            kind: error.kind(),
            message: error.to_string(),
        };
        tracing::error!(record = %name, "no token to serve: {}", failure.message);
        self.failures += 1;
        self.failure = Some((Instant::now(), failure.clone()));
        failure
    }
}

/// A record's figures for `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotFigures {
    /// The record.
    pub name: String,
    /// When the cached token expires (Unix seconds).
    pub expires_at: Option<u64>,
    /// Refresh runs that gave a token.
    pub refreshes: u64,
    /// Refresh runs that did not.
    pub failures: u64,
    /// The class of the last failure still in effect.
    pub failing: Option<ErrorKind>,
}

/// A refresh to run on the worker thread.
type Job = Box<dyn FnOnce() -> LocalBoxFuture<'static, ()> + Send>;

/// The tokens of the records a server serves.
pub struct Tokens<B: Backend + 'static> {
    session: Arc<Session<B>>,
    refresher: Refresher,
    settings: TokenSettings,
    slots: BTreeMap<String, Mutex<SlotState>>,
    report: RunReport,
    worker: tokio::sync::mpsc::UnboundedSender<Job>,
    /// Set by [`Tokens::drain`]: no refresh starts any more, so none can
    /// be cut short by the process ending after the drain.
    closing: std::sync::atomic::AtomicBool,
}

/// Runs refreshes on a thread of their own, each as a local task: the
/// engine's refresh future is not `Send` (rustc cannot prove it for its
/// async closures), and a task there outlives any client that hangs up.
fn start_worker() -> std::io::Result<tokio::sync::mpsc::UnboundedSender<Job>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (sender, mut jobs) = tokio::sync::mpsc::unbounded_channel::<Job>();
    std::thread::Builder::new()
        .name("tokvault-refresh".to_owned())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let mut running = tokio::task::JoinSet::new();
                while let Some(job) = jobs.recv().await {
                    running.spawn_local(job());
                    while running.try_join_next().is_some() {}
                }
                while running.join_next().await.is_some() {}
            });
        })?;
    Ok(sender)
}

fn lock(slot: &Mutex<SlotState>) -> MutexGuard<'_, SlotState> {
    // The state stays consistent between statements: a panic elsewhere
    // must not stop serving.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Backend + 'static> Tokens<B> {
    /// Tokens for `records` of the vault behind `session`.
    pub fn new(
        session: Arc<Session<B>>,
        refresher: Refresher,
        settings: TokenSettings,
        records: impl IntoIterator<Item = String>,
        report: RunReport,
    ) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            worker: start_worker()?,
            closing: std::sync::atomic::AtomicBool::new(false),
            session,
            refresher,
            settings,
            slots: records
                .into_iter()
                .map(|name| (name, Mutex::default()))
                .collect(),
            report,
        }))
    }

    /// The records served.
    pub fn records(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// Validity a served token must have: `min_valid`, or half the
    /// provider's lifetime when that is shorter (so that a server never
    /// refreshes more often than once per half lifetime).
    fn needed(&self, lifetime: Option<u64>) -> u64 {
        let min_valid = self.settings.min_valid.as_secs();
        lifetime.map_or(min_valid, |l| min_valid.min(l / 2))
    }

    /// When the background refresh of a token starts.
    fn refresh_at(&self, served: &Served, lifetime: Option<u64>) -> u64 {
        let ahead = self.settings.min_valid.as_secs() + LEAD;
        let ahead = lifetime.map_or(ahead, |l| ahead.min(l / 2));
        served.expires_at.saturating_sub(ahead)
    }

    /// A token for `name` with at least the needed validity: the cached
    /// one, or one from a refresh (shared with concurrent callers).
    pub async fn get(self: &Arc<Self>, name: &str) -> Result<Arc<Served>, Failure> {
        let slot = self.slot(name)?;
        let now = unix_now();
        let (rejected_at, needed) = {
            let state = lock(slot);
            let needed = self.needed(state.lifetime);
            if let Some(served) = state
                .cached
                .as_ref()
                .filter(|s| s.expires_at >= now + needed)
            {
                return Ok(Arc::clone(served));
            }
            if let Some((at, failure)) = &state.failure
                && at.elapsed() < self.settings.retry_after
                && failure.kind != ErrorKind::Reauthorize
            {
                return stale_or(&state, failure.clone(), now);
            }
            (state.rejected_at.clone(), Duration::from_secs(needed))
        };
        if let Some(failure) = self.still_rejected(slot, rejected_at).await {
            return Err(failure);
        }
        let pending = self.pending(&mut lock(slot), name, needed);
        match pending.await {
            Ok(served) => Ok(served),
            Err(failure) => stale_or(&lock(slot), failure, unix_now()),
        }
    }

    /// After a rejected grant: the failure again, unless the vault changed
    /// (a new login) or [`REJECTED_RETRY`] passed.
    async fn still_rejected(
        &self,
        slot: &Mutex<SlotState>,
        rejected_at: Option<Version>,
    ) -> Option<Failure> {
        let rejected_at = rejected_at?;
        let current = self.session.backend().read().await.ok().flatten()?.version;
        let state = lock(slot);
        let (at, failure) = state.failure.as_ref()?;
        (current == rejected_at && at.elapsed() < REJECTED_RETRY).then(|| failure.clone())
    }

    fn slot(&self, name: &str) -> Result<&Mutex<SlotState>, Failure> {
        self.slots.get(name).ok_or_else(|| Failure {
            kind: ErrorKind::Failure,
            message: format!("{name:?} is not served here"),
        })
    }

    /// The refresh in flight, or a new one.
    fn pending(
        self: &Arc<Self>,
        state: &mut SlotState,
        name: &str,
        min_valid: Duration,
    ) -> Pending {
        // A finished one whose task died left no outcome: start anew.
        if let Some(pending) = state.inflight.as_ref().filter(|p| p.peek().is_none()) {
            return pending.clone();
        }
        // Checked under the slot's lock, which drain() also takes after
        // setting the flag: a refresh either starts before it looks, or not.
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            let failure = Failure {
                kind: ErrorKind::Temporary,
                message: "the server is stopping; ask again".to_owned(),
            };
            return async move { Err(failure) }.boxed().shared();
        }
        let this = Arc::clone(self);
        let name = name.to_owned();
        let (done, outcome) = tokio::sync::oneshot::channel();
        // On the worker: a client that hangs up must not cancel a refresh
        // whose answer (a rotated refresh token) is not saved yet.
        let job: Job = Box::new(move || {
            async move {
                let _ = done.send(this.refresh(name, min_valid).await);
            }
            .boxed_local()
        });
        let sent = self.worker.send(job);
        let pending = async move {
            if sent.is_err() {
                return Err(Failure {
                    kind: ErrorKind::Failure,
                    message: "the refresh worker has stopped".to_owned(),
                });
            }
            outcome.await.unwrap_or_else(|_| {
                Err(Failure {
                    kind: ErrorKind::Failure,
                    message: "the refresh ended abnormally".to_owned(),
                })
            })
        }
        .boxed()
        .shared();
        state.inflight = Some(pending.clone());
        pending
    }

    /// One refresh through the engine; its outcome goes into the cache.
    async fn refresh(
        self: Arc<Self>,
        name: String,
        min_valid: Duration,
    ) -> Result<Arc<Served>, Failure> {
        let refresher = self.refresher.clone();
        let run = self
            .session
            .token_run(
                &name,
                min_valid,
                move || Ok(refresher),
                self.settings.max_run_time,
                || (),
            )
            .await;
        let now = unix_now();
        let (token, summary) = match run {
            Ok(run) => (run.token, run.summary),
            Err(error) => (Err(error), None),
        };
        let issued_now = summary
            .as_ref()
            .and_then(|s| s.result(&name))
            .is_some_and(|r| r.class == Some(RefreshClass::Refreshed));
        let rejected_at = match &token {
            Err(error) if error.kind() == ErrorKind::Reauthorize => self
                .session
                .backend()
                .read()
                .await
                .ok()
                .flatten()
                .map(|s| s.version),
            _ => None,
        };
        if let Some(summary) = summary {
            let report = Arc::clone(&self.report);
            if let Err(error) = tokio::task::spawn_blocking(move || report(&summary)).await {
                tracing::error!(record = %name, "reporting the refresh failed: {error}");
            }
        }
        let mut state = lock(self.slot(&name)?);
        state.inflight = None;
        state.rejected_at = rejected_at;
        match token {
            Ok(issued) => Ok(state.issued(&name, issued, issued_now, now)),
            Err(error) => Err(state.failed(&name, &error)),
        }
    }

    /// Refreshes `name` ahead of expiry, for as long as the task runs.
    pub async fn keep_fresh(self: Arc<Self>, name: String) {
        let Ok(slot) = self.slot(&name) else { return };
        loop {
            let (wait, min_valid) = {
                let state = lock(slot);
                let now = unix_now();
                let retry = state
                    .failure
                    .as_ref()
                    .map(|(at, _)| self.settings.retry_after.saturating_sub(at.elapsed()));
                let due = state.cached.as_ref().map(|s| {
                    Duration::from_secs(self.refresh_at(s, state.lifetime).saturating_sub(now))
                });
                let ahead = self.settings.min_valid.as_secs() + LEAD;
                let ahead = state.lifetime.map_or(ahead, |l| ahead.min(l / 2));
                let wait = match (retry, due) {
                    (Some(retry), due) => retry.max(due.unwrap_or_default()),
                    (None, due) => due.unwrap_or_default(),
                };
                (wait.max(Duration::from_secs(1)), Duration::from_secs(ahead))
            };
            tokio::time::sleep(wait).await;
            let rejected_at = lock(slot).rejected_at.clone();
            if self.still_rejected(slot, rejected_at).await.is_some() {
                continue;
            }
            let pending = {
                let mut state = lock(slot);
                let fresh = state
                    .cached
                    .as_ref()
                    .is_some_and(|s| unix_now() < self.refresh_at(s, state.lifetime));
                if fresh {
                    continue;
                }
                self.pending(&mut state, &name, min_valid)
            };
            // The outcome is in the cache and the log.
            let _ = pending.await;
        }
    }

    /// Starts no more refreshes, and waits for every one in flight (and
    /// its save) to end.
    pub async fn drain(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let pending: Vec<Pending> = self
            .slots
            .values()
            .filter_map(|slot| lock(slot).inflight.clone())
            .collect();
        for refresh in pending {
            let _ = refresh.await;
        }
    }

    /// Each record's figures, for `/metrics`.
    pub fn figures(&self) -> Vec<SlotFigures> {
        self.slots
            .iter()
            .map(|(name, slot)| {
                let state = lock(slot);
                SlotFigures {
                    name: name.clone(),
                    expires_at: state.cached.as_ref().map(|s| s.expires_at),
                    refreshes: state.refreshes,
                    failures: state.failures,
                    failing: state
                        .failure
                        .as_ref()
                        .filter(|(at, _)| at.elapsed() < self.settings.retry_after)
                        .map(|(_, f)| f.kind),
                }
            })
            .collect()
    }
}

fn served(issued: IssuedToken, now: u64) -> Served {
    Served {
        token: issued.token,
        expires_at: issued.expires_at.unwrap_or(now + ASSUMED_LIFETIME),
    }
}

/// After a temporary failure, the cached token while it has
/// [`STALE_MARGIN`] left; otherwise the failure.
fn stale_or(state: &SlotState, failure: Failure, now: u64) -> Result<Arc<Served>, Failure> {
    match &state.cached {
        Some(served)
            if failure.kind == ErrorKind::Temporary && served.expires_at > now + STALE_MARGIN =>
        {
            Ok(Arc::clone(served))
        }
        _ => Err(failure),
    }
}
