//! `refresh --force` stopped with SIGTERM at random points, against a server
//! that rotates refresh tokens and revokes the grant on any replay. Unlike
//! SIGKILL (crash.rs), SIGTERM is held from the first request until the
//! vault holding the answer is saved, so no stop may lose a grant: every
//! following refresh succeeds and the server never sees a replay.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Rng, env_count, figure, read};
use crate::crash::{refresh_duration, spawn_refresh};
use crate::e2e::{Story, assert_no_replay_or_error, server_stats, stat};
use crate::fault_server::{Action, FaultServer};
use crate::reliability::vault_for;

/// Signals per test: `TOKVAULT_RELIABILITY_KILLS` (scripts/reliability), else 40.
fn signal_count() -> usize {
    env_count("TOKVAULT_RELIABILITY_KILLS", 40)
}

#[test]
fn sigterm_during_a_rotating_refresh_waits_for_the_save_and_loses_nothing() {
    let Some(Story {
        server,
        rt,
        sandbox,
    }) = Story::start(true, 3600)
    else {
        return;
    };
    // The delay window adapts as in crash.rs, so that about half the
    // signals land while the process runs.
    let mut window = refresh_duration(&sandbox).mul_f64(1.2);
    let mut rng = Rng::from_clock();
    let initial_seed = rng.seed();
    let (mut hit, mut held, mut lost) = (0, 0, 0);
    let mut failure = None;
    for round in 0..signal_count() {
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64 + 1));
        let child = spawn_refresh(&sandbox, Stdio::piped());
        std::thread::sleep(delay);
        // Through kill(1): the test crate has no signal API of its own.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("run kill");
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "round {round}: {stderr}");
        if output.status.signal() == Some(15) {
            hit += 1;
            window = window.mul_f64(1.15).min(Duration::from_secs(2));
            if stderr.contains("held until the vault was saved") {
                held += 1;
            }
        } else {
            assert_eq!(
                output.status.code(),
                Some(0),
                "round {round} (seed {initial_seed:#x}): {stderr}"
            );
            window = window.mul_f64(0.85).max(Duration::from_millis(1));
        }
        let after = sandbox.run(&["refresh", "--force"]);
        if after.code != 0 {
            // The grant is gone: every later refresh would fail too.
            lost += 1;
            failure = Some(format!(
                "round {round} (seed {initial_seed:#x}, SIGTERM after {delay:?}): the next refresh\nstdout: {}\nstderr: {}",
                after.stdout, after.stderr
            ));
            break;
        }
    }
    let stats = server_stats(&rt, &server);
    figure(&format!(
        "sigterm server=rotating signals={} hit_running_refresh={hit} held_until_saved={held} \
         grants_lost={lost} replays_detected={} grants_revoked={} seed={initial_seed:#x}",
        signal_count(),
        stat(&stats, "replays_detected"),
        stat(&stats, "grants_revoked"),
    ));
    // Printed first, so that a failing run still shows its figure.
    if let Some(failure) = failure {
        panic!("{failure}");
    }
    assert_no_replay_or_error(&stats);
    // The window was exercised: some signals arrived while requests were
    // out (without the hold, those are the stops that lose grants).
    assert!(
        held > 0,
        "no SIGTERM of {hit} that hit landed while a request was out (seed {initial_seed:#x})"
    );
    sandbox.run(&["verify"]).assert_code(0);
}

/// While a request is out, a first SIGTERM is held (the process goes on
/// waiting for the answer) and a second one stops it at once with 143
/// (128 + SIGTERM), writing nothing: for a person who would rather
/// re-authorize than wait for a stalled server.
#[test]
fn a_second_sigterm_while_a_request_is_out_stops_at_once() {
    let rt = crate::e2e::runtime();
    let stalled = rt.block_on(FaultServer::scripted(vec![Action::Stall]));
    let sandbox = vault_for(&stalled.url("/token"));
    let before = read(&sandbox.vault());
    let mut child = spawn_refresh(&sandbox, Stdio::null());
    let deadline = Instant::now() + Duration::from_secs(20);
    while stalled.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the refresh request never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let term = || {
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM");
    };
    term();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the first SIGTERM was not held while the request was out"
    );
    term();
    let started = Instant::now();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(read(&sandbox.vault()), before, "nothing was written");
}
