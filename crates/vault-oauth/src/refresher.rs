//! Refreshing: one attempt, retries with backoff for transient failures,
//! and many records at once over pooled connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{Stream, StreamExt as _};

use crate::http::{Exchange, Http, HttpConfig, HttpSetupError};
use crate::outcome::{Misconfiguration, RefreshOutcome, ResponseProblem, TransientFailure};
use crate::request::RefreshRequest;
use crate::response::{TokenHttpResponse, classify_response};

/// Retries of transient failures: exponential backoff with jitter, bounded
/// in count and in total time. Permanent outcomes are never retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3; 1 disables retries).
    pub max_attempts: u32,
    /// Backoff before the second attempt (default 500 ms); doubles each time.
    pub initial_backoff: Duration,
    /// Largest backoff between two attempts (default 8 s).
    pub max_backoff: Duration,
    /// No retry starts once this much time has passed since the first
    /// attempt, nor a wait that would end after it (default 60 s). A
    /// `Retry-After` longer than what is left ends the retries at once.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff before attempt `next` (2, 3, …): half of the doubled
    /// base plus a random part up to the other half ("equal jitter"), so
    /// that many clients do not retry in step.
    fn backoff(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let half = base / 2;
        let mut random = [0u8; 4];
        // Without randomness the jitter is zero; the bound still holds.
        let _ = getrandom::getrandom(&mut random);
        let fraction = f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX);
        half + half.mul_f64(fraction)
    }
}

/// When a batch may still send token requests: until a deadline (so that a
/// run, and the stop signals its caller holds meanwhile, end in a known
/// time), and until its caller closes it (say, when the answers can no
/// longer be saved). A request is never cut short by the window: an attempt
/// starts only when its whole timeout fits before the deadline.
#[derive(Clone, Debug)]
pub struct SendWindow {
    deadline: Option<(Instant, Duration)>,
    closed: Arc<AtomicBool>,
}

impl SendWindow {
    /// No deadline; open until closed.
    pub fn unbounded() -> Self {
        Self {
            deadline: None,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Open for `length` from now. A window shorter than the request
    /// timeout shortens the timeout of the attempts it admits instead.
    pub fn for_duration(length: Duration) -> Self {
        Self {
            deadline: Some((Instant::now() + length, length)),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// No attempt starts after this (attempts under way go on).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Whether the window was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The time limit of an attempt starting now, or `None` when no attempt
    /// may start ([`SendWindow::admit_after`]).
    fn admit(&self, timeout: Duration) -> Option<Duration> {
        self.admit_after(Duration::ZERO, timeout)
    }

    /// The time limit of an attempt that would start after `delay`: its
    /// whole `timeout` when that fits before the deadline; in a window
    /// shorter than `timeout`, whatever is left of it; else `None` (as when
    /// closed).
    fn admit_after(&self, delay: Duration, timeout: Duration) -> Option<Duration> {
        if self.is_closed() {
            return None;
        }
        let Some((deadline, length)) = self.deadline else {
            return Some(timeout);
        };
        let left = deadline.saturating_duration_since(Instant::now() + delay);
        if left >= timeout {
            Some(timeout)
        } else if length < timeout && !left.is_zero() {
            Some(left)
        } else {
            None
        }
    }
}

/// Settings of a [`Refresher`].
#[derive(Clone, Debug)]
pub struct RefresherConfig {
    /// Transport settings.
    pub http: HttpConfig,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
    /// Requests in flight at once in [`Refresher::refresh_all`] (default 16).
    pub concurrency: usize,
}

impl Default for RefresherConfig {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            retry: RetryPolicy::default(),
            concurrency: 16,
        }
    }
}

/// The outcome of a refresh and how it got there.
#[derive(Debug)]
pub struct RefreshReport {
    /// Final outcome (the last attempt's).
    pub outcome: RefreshOutcome,
    /// Attempts made (1 when the first one settled it).
    pub attempts: u32,
    /// Time spent waiting between attempts (as planned; excludes requests).
    pub waited: Duration,
}

/// Obtains access tokens. Cheap to clone; clones share the connection pools.
#[derive(Clone, Debug)]
pub struct Refresher {
    http: Http,
    retry: RetryPolicy,
    concurrency: usize,
    request_timeout: Duration,
}

impl Refresher {
    /// A refresher with its own pooled HTTPS client.
    pub fn new(config: RefresherConfig) -> Result<Self, HttpSetupError> {
        Ok(Self {
            http: Http::new(&config.http)?,
            retry: config.retry,
            concurrency: config.concurrency.max(1),
            request_timeout: config.http.request_timeout,
        })
    }

    /// The HTTP clients (for login's device authorization request).
    pub(crate) fn http(&self) -> &Http {
        &self.http
    }

    /// One token request, no retry.
    pub async fn attempt(&self, request: &RefreshRequest) -> RefreshOutcome {
        let sent_at = unix_now();
        let prepared = match request.prepare(sent_at) {
            Ok(prepared) => prepared,
            Err(problem) => return RefreshOutcome::Misconfigured(problem),
        };
        let exchange = self
            .http
            .post_form(
                request.endpoint().url(),
                prepared.form,
                prepared.authorization,
            )
            .await;
        self.outcome_of(exchange, sent_at)
    }

    /// What one exchange with a token endpoint means.
    pub(crate) fn outcome_of(&self, exchange: Exchange, sent_at: u64) -> RefreshOutcome {
        match exchange {
            Exchange::Response {
                status,
                retry_after,
                location,
                body,
            } => classify_response(
                TokenHttpResponse {
                    status,
                    retry_after: retry_after.as_deref(),
                    location: location.as_deref(),
                    body: &body,
                },
                sent_at,
            ),
            Exchange::TooLarge { status } => {
                RefreshOutcome::Misconfigured(Misconfiguration::InvalidResponse {
                    status,
                    problem: ResponseProblem::TooLarge {
                        limit: self.http.max_response_bytes(),
                    },
                })
            }
            Exchange::Failed(kind) => RefreshOutcome::Transient(TransientFailure {
                kind,
                error: None,
                retry_after: None,
            }),
        }
    }

    /// Refreshes one record, retrying transient failures per the policy.
    ///
    /// With a rotating provider a retry after a lost response presents the
    /// same refresh token again; that is the only token there is, and
    /// servers with a reuse grace period accept it, so retrying never makes
    /// things worse than not retrying.
    pub async fn refresh(&self, request: &RefreshRequest) -> RefreshReport {
        self.refresh_within(request, &SendWindow::unbounded()).await
    }

    /// [`Refresher::refresh`], starting attempts only while `window` admits
    /// them. Not sent at all: a transient [`TransientKind::NotSent`] with
    /// no attempt.
    ///
    /// [`TransientKind::NotSent`]: crate::TransientKind::NotSent
    pub async fn refresh_within(
        &self,
        request: &RefreshRequest,
        window: &SendWindow,
    ) -> RefreshReport {
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let mut attempts = 0;
        let mut last = None;
        loop {
            let Some(limit) = window.admit(self.request_timeout) else {
                return RefreshReport {
                    outcome: last.unwrap_or_else(|| {
                        RefreshOutcome::Transient(TransientFailure {
                            kind: crate::TransientKind::NotSent,
                            error: None,
                            retry_after: None,
                        })
                    }),
                    attempts,
                    waited,
                };
            };
            attempts += 1;
            let outcome = match tokio::time::timeout(limit, self.attempt(request)).await {
                Ok(outcome) => outcome,
                Err(_) => RefreshOutcome::Transient(TransientFailure {
                    kind: crate::TransientKind::Timeout,
                    error: None,
                    retry_after: None,
                }),
            };
            tracing::debug!(
                record = request.name(),
                attempt = attempts,
                class = ?outcome.class(),
                "token request"
            );
            let RefreshOutcome::Transient(failure) = &outcome else {
                return RefreshReport {
                    outcome,
                    attempts,
                    waited,
                };
            };
            if attempts >= self.retry.max_attempts {
                return RefreshReport {
                    outcome,
                    attempts,
                    waited,
                };
            }
            let delay = self
                .retry
                .backoff(attempts + 1)
                .max(failure.retry_after.unwrap_or_default());
            if started.elapsed() + delay > self.retry.max_elapsed
                || window.admit_after(delay, self.request_timeout).is_none()
            {
                return RefreshReport {
                    outcome,
                    attempts,
                    waited,
                };
            }
            tracing::debug!(
                record = request.name(),
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(delay).await;
            waited += delay;
            last = Some(outcome);
        }
    }

    /// Refreshes many records, at most `concurrency` at a time over one
    /// connection pool, within `window`. Each report comes as soon as its
    /// refresh ends, with the index of its request, so that the caller can
    /// save a rotated refresh token without waiting for the slowest record.
    pub fn refresh_each<'a>(
        &'a self,
        requests: &'a [RefreshRequest],
        window: &'a SendWindow,
    ) -> impl Stream<Item = (usize, RefreshReport)> + 'a {
        futures_util::stream::iter(requests.iter().enumerate())
            .map(move |(index, request)| async move {
                (index, self.refresh_within(request, window).await)
            })
            .buffer_unordered(self.concurrency)
    }

    /// Refreshes many records, at most `concurrency` at a time over one
    /// connection pool. Reports come back in the order of `requests`.
    pub async fn refresh_all(&self, requests: &[RefreshRequest]) -> Vec<RefreshReport> {
        let mut indexed: Vec<(usize, RefreshReport)> =
            futures_util::stream::iter(requests.iter().enumerate())
                .map(|(index, request)| async move { (index, self.refresh(request).await) })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        indexed.sort_unstable_by_key(|(index, _)| *index);
        indexed.into_iter().map(|(_, report)| report).collect()
    }
}

/// Unix seconds now (0 if the clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            max_elapsed: Duration::from_secs(60),
        };
        for _ in 0..200 {
            let second = policy.backoff(2);
            assert!(second >= Duration::from_millis(50) && second <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(100) && third <= Duration::from_millis(200));
            let late = policy.backoff(40);
            assert!(late >= Duration::from_millis(175) && late <= Duration::from_millis(350));
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(3)).collect();
        assert!(spread.len() > 10, "jitter should vary the delay");
    }
}
