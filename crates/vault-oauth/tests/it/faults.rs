//! Fault injection: every misbehaviour maps to the right outcome, retries
//! stay within their bounds, permanent errors are never retried, and no
//! secret or response body reaches an error.

use std::time::Duration;

use futures_util::StreamExt as _;
use vault_format::{ClientAuth, RefreshClass};
use vault_oauth::{
    HttpConfig, Misconfiguration, RefreshOutcome, ResponseProblem, SendWindow, TransientFailure,
    TransientKind,
};

use crate::common::{fast_retry, refresh_record, refresher, refresher_with, request};
use crate::fault_server::{Action, FaultServer};

const CANARY: &str = "canary-secret-7f3a9c";

async fn refresh_against(server: &FaultServer, max_attempts: u32) -> vault_oauth::RefreshReport {
    let record = refresh_record(
        "fault",
        &server.url("/token"),
        "client",
        Some(CANARY),
        ClientAuth::ClientSecretPost,
        CANARY,
    );
    refresher(fast_retry(max_attempts))
        .refresh(&request(&record))
        .await
}

fn assert_no_canary(report: &vault_oauth::RefreshReport) {
    let shown = format!("{} {:?}", report.outcome, report.outcome);
    assert!(
        !shown.contains(CANARY),
        "secret leaked into outcome: {shown}"
    );
}

#[tokio::test]
async fn server_errors_are_transient_and_retried_up_to_the_limit() {
    for action in [
        Action::json(500, ""),
        Action::json(503, ""),
        Action::json(
            503,
            r#"{"error":"temporarily_unavailable","error_description":"busy"}"#,
        ),
        Action::json(502, "<html>bad gateway</html>"),
        Action::json(400, r#"{"error":"server_error"}"#),
        Action::json(408, ""),
    ] {
        let server = FaultServer::scripted(vec![action.clone()]).await;
        let report = refresh_against(&server, 3).await;
        assert!(
            matches!(
                report.outcome,
                RefreshOutcome::Transient(TransientFailure {
                    kind: TransientKind::Status(_),
                    ..
                })
            ),
            "{action:?}: {:?}",
            report.outcome
        );
        assert_eq!(report.attempts, 3, "{action:?}");
        assert_eq!(server.requests().len(), 3, "{action:?}");
        assert_no_canary(&report);
    }
}

#[tokio::test]
async fn a_transient_failure_then_success_refreshes() {
    let server = FaultServer::scripted(vec![Action::json(503, ""), Action::token("fresh")]).await;
    let report = refresh_against(&server, 3).await;
    let RefreshOutcome::Refreshed(refreshed) = report.outcome else {
        panic!("expected success, got {:?}", report.outcome);
    };
    assert_eq!(refreshed.access_token.expose_secret(), "fresh");
    assert_eq!(report.attempts, 2);
}

#[tokio::test]
async fn retry_after_is_honoured_and_bounded_by_the_budget() {
    let server = FaultServer::scripted(vec![
        Action::json(429, "").with_header("Retry-After", "1"),
        Action::token("after-wait"),
    ])
    .await;
    let report = refresh_against(&server, 3).await;
    assert_eq!(report.outcome.class(), RefreshClass::Refreshed);
    // The planned wait (not a wall-clock measurement) covers Retry-After.
    assert!(
        report.waited >= Duration::from_secs(1),
        "{:?}",
        report.waited
    );

    // A Retry-After beyond the time budget ends the retries at once and is
    // reported to the caller.
    let server = FaultServer::scripted(vec![
        Action::json(429, "").with_header("Retry-After", "3600"),
    ])
    .await;
    let report = refresh_against(&server, 5).await;
    assert_eq!(report.attempts, 1);
    assert_eq!(server.requests().len(), 1);
    let RefreshOutcome::Transient(failure) = report.outcome else {
        panic!("expected transient, got {:?}", report.outcome);
    };
    assert_eq!(failure.kind, TransientKind::Status(429));
    assert_eq!(failure.retry_after, Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn permanent_errors_are_never_retried() {
    let cases = [
        (
            Action::json(
                400,
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            ),
            RefreshClass::ReauthorizationRequired,
        ),
        (
            Action::json(401, r#"{"error":"invalid_client"}"#),
            RefreshClass::Misconfigured,
        ),
        (
            Action::json(400, r#"{"error":"unauthorized_client"}"#),
            RefreshClass::Misconfigured,
        ),
        (
            Action::json(400, r#"{"error":"invalid_scope"}"#),
            RefreshClass::Misconfigured,
        ),
        (
            Action::json(400, r#"{"error":"unsupported_grant_type"}"#),
            RefreshClass::Misconfigured,
        ),
        (
            Action::json(404, "<html>not found</html>"),
            RefreshClass::Misconfigured,
        ),
        (Action::json(200, "garbage{"), RefreshClass::Misconfigured),
        (
            Action::json(200, r#"{"access_token":"x","token_type":"mac"}"#),
            RefreshClass::Misconfigured,
        ),
        (
            Action::json(200, r#"{"token_type":"Bearer","expires_in":3600}"#),
            RefreshClass::Misconfigured,
        ),
    ];
    for (action, class) in cases {
        let server = FaultServer::scripted(vec![action.clone()]).await;
        let report = refresh_against(&server, 5).await;
        assert_eq!(
            report.outcome.class(),
            class,
            "{action:?}: {:?}",
            report.outcome
        );
        assert_eq!(report.attempts, 1, "{action:?}");
        assert_eq!(server.requests().len(), 1, "{action:?}");
        assert_no_canary(&report);
    }
}

#[tokio::test]
async fn token_type_and_missing_access_token_are_named() {
    let server = FaultServer::scripted(vec![Action::json(
        200,
        r#"{"access_token":"x","token_type":"mac"}"#,
    )])
    .await;
    let outcome = refresh_against(&server, 1).await.outcome;
    assert!(
        matches!(
            outcome,
            RefreshOutcome::Misconfigured(Misconfiguration::InvalidResponse {
                problem: ResponseProblem::TokenTypeNotBearer,
                ..
            })
        ),
        "{outcome:?}"
    );
    let server = FaultServer::scripted(vec![Action::json(200, r#"{"token_type":"bearer"}"#)]).await;
    let outcome = refresh_against(&server, 1).await.outcome;
    assert!(
        matches!(
            outcome,
            RefreshOutcome::Misconfigured(Misconfiguration::InvalidResponse {
                problem: ResponseProblem::MissingAccessToken,
                ..
            })
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_stalled_response_times_out_within_the_retry_bounds() {
    let server = FaultServer::scripted(vec![Action::Stall]).await;
    let record = refresh_record(
        "stall",
        &server.url("/token"),
        "c",
        Some("s"),
        ClientAuth::ClientSecretBasic,
        "rt",
    );
    let http = HttpConfig {
        request_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    };
    let report = refresher_with(fast_retry(2), http, 1)
        .refresh(&request(&record))
        .await;
    assert!(
        matches!(
            report.outcome,
            RefreshOutcome::Transient(TransientFailure {
                kind: TransientKind::Timeout,
                ..
            })
        ),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 2);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_truncated_body_is_a_network_failure() {
    let server = FaultServer::scripted(vec![Action::Truncate {
        declared: 500,
        body: format!(r#"{{"access_token":"{CANARY}","token_ty"#).into_bytes(),
    }])
    .await;
    let report = refresh_against(&server, 2).await;
    assert!(
        matches!(
            report.outcome,
            RefreshOutcome::Transient(TransientFailure {
                kind: TransientKind::Network,
                ..
            })
        ),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 2);
    assert_no_canary(&report);
}

#[tokio::test]
async fn truncated_json_with_a_matching_length_is_not_a_token() {
    let server = FaultServer::scripted(vec![Action::json(
        200,
        &format!(r#"{{"access_token":"{CANARY}","token_type":"Bea"#),
    )])
    .await;
    let report = refresh_against(&server, 3).await;
    assert!(matches!(
        report.outcome,
        RefreshOutcome::Misconfigured(Misconfiguration::InvalidResponse {
            problem: ResponseProblem::NotJson,
            ..
        })
    ));
    assert_no_canary(&report);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = FaultServer::scripted(vec![Action::token("stolen")]).await;
    let server = FaultServer::scripted(vec![
        Action::json(302, "").with_header("Location", &target.url("/collect")),
    ])
    .await;
    let report = refresh_against(&server, 3).await;
    assert!(
        matches!(
            report.outcome,
            RefreshOutcome::Misconfigured(Misconfiguration::Redirect { status: 302, .. })
        ),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 1);
    assert!(
        target.requests().is_empty(),
        "the redirect target must never see the refresh token"
    );
}

#[tokio::test]
async fn huge_bodies_are_cut_off() {
    let http = HttpConfig {
        max_response_bytes: 64 * 1024,
        ..HttpConfig::default()
    };
    let declared = FaultServer::scripted(vec![Action::json(200, &"x".repeat(1024 * 1024))]).await;
    let chunked = FaultServer::scripted(vec![Action::ChunkedHuge {
        size: 8 * 1024 * 1024,
    }])
    .await;
    for server in [&declared, &chunked] {
        let record = refresh_record(
            "huge",
            &server.url("/token"),
            "c",
            None,
            ClientAuth::None,
            "rt",
        );
        let report = refresher_with(fast_retry(3), http.clone(), 1)
            .refresh(&request(&record))
            .await;
        assert!(
            matches!(
                report.outcome,
                RefreshOutcome::Misconfigured(Misconfiguration::InvalidResponse {
                    problem: ResponseProblem::TooLarge { limit: 65_536 },
                    ..
                })
            ),
            "{:?}",
            report.outcome
        );
        assert_eq!(report.attempts, 1);
    }
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let record = refresh_record(
        "refused",
        &format!("http://127.0.0.1:{port}/token"),
        "c",
        None,
        ClientAuth::None,
        "rt",
    );
    let report = refresher(fast_retry(2)).refresh(&request(&record)).await;
    assert!(
        matches!(
            report.outcome,
            RefreshOutcome::Transient(TransientFailure {
                kind: TransientKind::Connect,
                ..
            })
        ),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 2);
}

#[tokio::test]
async fn requests_carry_the_right_client_authentication() {
    let server = FaultServer::scripted(vec![Action::token("at")]).await;
    let basic = refresh_record(
        "b",
        &server.url("/token"),
        "my client",
        Some("p@ss:word"),
        ClientAuth::ClientSecretBasic,
        "rt-basic",
    );
    let post = refresh_record(
        "p",
        &server.url("/token"),
        "cid",
        Some("sec"),
        ClientAuth::ClientSecretPost,
        "rt-post",
    );
    let public = refresh_record(
        "n",
        &server.url("/token"),
        "pub",
        None,
        ClientAuth::None,
        "rt-none",
    );
    let refresher = refresher(fast_retry(1));
    for record in [&basic, &post, &public] {
        assert_eq!(
            refresher.refresh(&request(record)).await.outcome.class(),
            RefreshClass::Refreshed
        );
    }
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    for received in &seen {
        assert!(
            received.head.starts_with("POST /token HTTP/1.1"),
            "{}",
            received.head
        );
        assert_eq!(
            received.header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            received.form("grant_type").as_deref(),
            Some("refresh_token")
        );
        assert_eq!(
            received.form("scope"),
            None,
            "scope is sent only when asked"
        );
    }
    // Basic: form-urlencoded id and secret (RFC 6749 §2.3.1), nothing in the body.
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("my+client:p%40ss%3Aword");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Basic {expected}"))
    );
    assert_eq!(seen[0].form("client_id"), None);
    assert_eq!(seen[0].form("client_secret"), None);
    assert_eq!(seen[0].form("refresh_token").as_deref(), Some("rt-basic"));
    // Post: both in the body, no header.
    assert_eq!(seen[1].header("authorization"), None);
    assert_eq!(seen[1].form("client_id").as_deref(), Some("cid"));
    assert_eq!(seen[1].form("client_secret").as_deref(), Some("sec"));
    // Public: only the id.
    assert_eq!(seen[2].header("authorization"), None);
    assert_eq!(seen[2].form("client_id").as_deref(), Some("pub"));
    assert_eq!(seen[2].form("client_secret"), None);
}

#[tokio::test]
async fn many_records_share_a_pool_with_bounded_concurrency_and_keep_their_order() {
    // The server answers each refresh token with an access token derived
    // from it, after a pause, so that requests overlap.
    let server = FaultServer::with(|received| {
        let rt = received.form("refresh_token").unwrap_or_default();
        Action::Delayed(
            Duration::from_millis(20),
            Box::new(Action::token(&format!("at-for-{rt}"))),
        )
    })
    .await;
    let records: Vec<_> = (0..40)
        .map(|i| {
            refresh_record(
                &format!("r{i}"),
                &server.url("/token"),
                "c",
                None,
                ClientAuth::None,
                &format!("rt{i}"),
            )
        })
        .collect();
    let requests: Vec<_> = records.iter().map(request).collect();
    let refresher = refresher_with(
        fast_retry(1),
        HttpConfig {
            max_idle_per_host: 4,
            ..HttpConfig::default()
        },
        4,
    );
    let reports = refresher.refresh_all(&requests).await;
    assert_eq!(reports.len(), 40);
    for (i, report) in reports.iter().enumerate() {
        let RefreshOutcome::Refreshed(refreshed) = &report.outcome else {
            panic!("record {i}: {:?}", report.outcome);
        };
        assert_eq!(
            refreshed.access_token.expose_secret(),
            format!("at-for-rt{i}")
        );
    }
    let max_in_flight = server
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=4).contains(&max_in_flight),
        "in flight: {max_in_flight}"
    );
    let connections = server.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        connections <= 6,
        "connections are pooled and reused, saw {connections} for 40 requests"
    );
}

/// Two records: index 0 at a path that never answers, index 1 at one that
/// answers at once.
fn slow_and_fast(server: &FaultServer) -> Vec<vault_format::Record> {
    ["/slow", "/fast"]
        .iter()
        .enumerate()
        .map(|(i, path)| {
            refresh_record(
                &format!("r{i}"),
                &server.url(path),
                "c",
                None,
                ClientAuth::None,
                &format!("rt{i}"),
            )
        })
        .collect()
}

async fn stall_slow_answer_fast() -> FaultServer {
    FaultServer::with(|received| {
        if received.head.starts_with("POST /slow") {
            Action::Stall
        } else {
            Action::token("fast")
        }
    })
    .await
}

#[tokio::test]
async fn each_report_comes_when_its_refresh_ends_not_after_the_slowest() {
    let server = stall_slow_answer_fast().await;
    let records = slow_and_fast(&server);
    let requests: Vec<_> = records.iter().map(request).collect();
    let refresher = refresher(fast_retry(1));
    let window = SendWindow::for_duration(Duration::from_secs(2));
    let reports: Vec<_> = refresher.refresh_each(&requests, &window).collect().await;
    let order: Vec<usize> = reports.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, [1, 0], "the fast record's report came first");
    assert!(matches!(reports[0].1.outcome, RefreshOutcome::Refreshed(_)));
    // The window (2 s) is shorter than the request timeout (30 s): the
    // stalled attempt was cut at the window's end, and not retried.
    let (_, slow) = &reports[1];
    assert!(
        matches!(
            slow.outcome,
            RefreshOutcome::Transient(TransientFailure {
                kind: TransientKind::Timeout,
                ..
            })
        ),
        "{:?}",
        slow.outcome
    );
    assert_eq!(slow.attempts, 1);
}

#[tokio::test]
async fn a_closed_window_sends_nothing_and_says_so() {
    let server = stall_slow_answer_fast().await;
    let records = slow_and_fast(&server);
    let requests: Vec<_> = records.iter().map(request).collect();
    let refresher = refresher(fast_retry(3));
    let window = SendWindow::unbounded();
    window.close();
    let reports: Vec<_> = refresher.refresh_each(&requests, &window).collect().await;
    assert_eq!(reports.len(), 2);
    for (_, report) in &reports {
        assert_eq!(report.attempts, 0);
        assert!(
            matches!(
                report.outcome,
                RefreshOutcome::Transient(TransientFailure {
                    kind: TransientKind::NotSent,
                    ..
                })
            ),
            "{:?}",
            report.outcome
        );
        assert_eq!(report.outcome.class(), RefreshClass::Transient);
    }
    assert!(server.requests().is_empty(), "a request was sent");
}

#[tokio::test]
async fn no_retry_starts_that_would_not_fit_in_the_window() {
    // 503 at once, every time. Without a window this policy tries 3 times;
    // in a 1.3 s window with a 1 s request timeout, a retry after a
    // backoff of at least 0.4 s no longer fits, so the first answer stands.
    let server = FaultServer::scripted(vec![Action::json(503, "")]).await;
    let record = refresh_record(
        "r",
        &server.url("/token"),
        "c",
        None,
        ClientAuth::None,
        "rt",
    );
    let refresher = refresher_with(
        vault_oauth::RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(800),
            max_backoff: Duration::from_millis(800),
            max_elapsed: Duration::from_secs(20),
        },
        HttpConfig {
            request_timeout: Duration::from_secs(1),
            ..HttpConfig::default()
        },
        16,
    );
    let window = SendWindow::for_duration(Duration::from_millis(1300));
    let report = refresher.refresh_within(&request(&record), &window).await;
    assert!(report.outcome.is_transient());
    assert_eq!(report.attempts, 1, "{:?}", report.outcome);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(report.waited, Duration::ZERO, "it slept for nothing");
}
