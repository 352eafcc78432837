//! Refresh 1,000 records against the oidc-provider launcher (rotation on)
//! with tokvault's concurrent refresher, next to google-auth refreshing the
//! same number of tokens sequentially in one Python process (one shared
//! requests session). Both sides use fresh tokens from the same server,
//! client (`client_secret_post`) and scope; the runs alternate, after a
//! warm-up, and the best of each is reported.
//!
//! `cargo bench -p vault-oauth --bench refresh_oidc` (needs the peers that
//! `scripts/peers.sh` sets up: TOKVAULT_TEST_NODE, TOKVAULT_TEST_PYTHON).
//! `TOKVAULT_BENCH_RECORDS` changes the count (default 1000).
//!
//! This is the library alone, in process, without the vault. `scripts/bench`
//! measures the whole `tokvault refresh` instead (open, refresh, seal and the
//! atomic write; row 3 of docs/BENCHMARKS.md) and does not run this one.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use vault_format::{
    ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString,
};
use vault_oauth::{RefreshOutcome, RefreshRequest, Refresher, RefresherConfig};

use tokvault_test_support::peers::{OidcProvider, POST_CLIENT, peer, repo_root};

const SCOPE: &str = "offline_access";

fn record(name: String, endpoint: &str, refresh_token: &str) -> Record {
    Record::new(
        name,
        Provider::Generic,
        endpoint,
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: POST_CLIENT.0.to_owned(),
            client_secret: Some(SecretString::copy_from(POST_CLIENT.1)),
            client_auth: ClientAuth::ClientSecretPost,
            refresh_token: SecretString::copy_from(refresh_token),
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        0,
    )
}

async fn tokvault_run(server: &OidcProvider, refresher: &Refresher, count: usize) -> Duration {
    let tokens = server.mint(POST_CLIENT.0, SCOPE, count).await;
    let mut records: Vec<Record> = tokens
        .iter()
        .enumerate()
        .map(|(i, rt)| record(format!("r{i}"), &server.token_endpoint, rt))
        .collect();
    let started = Instant::now();
    let requests: Vec<RefreshRequest> = records
        .iter()
        .map(|r| RefreshRequest::from_record(r).unwrap())
        .collect();
    let reports = refresher.refresh_all(&requests).await;
    for (record, report) in records.iter_mut().zip(reports) {
        assert!(
            matches!(&report.outcome, RefreshOutcome::Refreshed(r) if r.refresh_token.is_some()),
            "every refresh succeeds and rotates: {:?}",
            report.outcome
        );
        report.outcome.apply_to(record, 0);
    }
    started.elapsed()
}

async fn google_auth_run(
    server: &OidcProvider,
    python: &std::path::Path,
    count: usize,
) -> Duration {
    let tokens = server.mint(POST_CLIENT.0, SCOPE, count).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    std::fs::write(
        &file,
        serde_json::json!({ "refresh_tokens": tokens }).to_string(),
    )
    .unwrap();
    let output = Command::new(python)
        .arg(repo_root().join("tests/python/bench_refresh.py"))
        .args(["--token-uri", &server.token_endpoint])
        .args([
            "--client-id",
            POST_CLIENT.0,
            "--client-secret",
            POST_CLIENT.1,
        ])
        .arg("--tokens-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["failures"], 0, "google-auth refreshes all: {result}");
    assert_eq!(result["count"].as_u64(), Some(count as u64));
    Duration::from_secs_f64(result["seconds"].as_f64().unwrap())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass
    // nothing and must not run this.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (Some(_), Some(python)) = (
        peer("TOKVAULT_TEST_NODE", "the oidc-provider test peer"),
        peer("TOKVAULT_TEST_PYTHON", "the google-auth virtualenv"),
    ) else {
        return;
    };
    let count: usize = std::env::var("TOKVAULT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let server = OidcProvider::start(true, 3600).unwrap();
    let refresher = Refresher::new(RefresherConfig::default()).unwrap();

    // Warm the server's JIT and both clients' connections.
    tokvault_run(&server, &refresher, 200).await;
    google_auth_run(&server, &python, 200).await;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..2 {
        theirs.push(google_auth_run(&server, &python, count).await);
        ours.push(tokvault_run(&server, &refresher, count).await);
    }
    let stats = server.stats().await;
    assert_eq!(stats["replays_detected"], 0, "{stats}");
    assert_eq!(stats["refresh_errors"], 0, "{stats}");

    let best = |runs: &[Duration]| runs.iter().min().copied().unwrap();
    let (ours_best, theirs_best) = (best(&ours), best(&theirs));
    println!(
        "refresh of {count} records against oidc-provider (rotation on, client_secret_post, scope {SCOPE:?})"
    );
    println!("| client | runs (s) | best (s) | per refresh |");
    println!("|---|---|---|---|");
    for (name, runs, best) in [
        ("tokvault refresh_all (concurrency 16)", &ours, ours_best),
        ("google-auth sequential, one session", &theirs, theirs_best),
    ] {
        let runs: Vec<String> = runs
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect();
        println!(
            "| {name} | {} | {:.3} | {:.2} ms |",
            runs.join(", "),
            best.as_secs_f64(),
            best.as_secs_f64() * 1000.0 / count as f64
        );
    }
    println!(
        "ratio tokvault / google-auth: {:.2} (goal <= 0.50)",
        ours_best.as_secs_f64() / theirs_best.as_secs_f64()
    );
}
