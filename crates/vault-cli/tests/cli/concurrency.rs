//! Many tokvault processes on one vault at once, against a server that
//! rotates refresh tokens and revokes the grant on any replay: the lock and
//! the re-read under it must make every process see the latest refresh
//! token, so the server never sees a used one again; and commands that read
//! without the lock must not mistake a concurrent write for a rollback.

use std::time::{Duration, Instant};

use crate::common::{Run, Sandbox, env_count, figure};
use crate::e2e::{Story, assert_no_replay_or_error, server_stats, stat};

const WORKERS: usize = 8;

/// How long the racing processes run: `TOKVAULT_RELIABILITY_SECONDS`
/// (scripts/reliability), else 6 s (three access-token lifetimes).
fn race_seconds() -> u64 {
    env_count("TOKVAULT_RELIABILITY_SECONDS", 6) as u64
}

/// Rounds per worker in the readers-and-writers test:
/// `TOKVAULT_RELIABILITY_ROUNDS` (scripts/reliability), else 40.
fn reader_rounds() -> usize {
    env_count("TOKVAULT_RELIABILITY_ROUNDS", 40)
}

/// The figure of one concurrency run; stats are the server's counters.
fn concurrency_figure(
    test: &str,
    runs: usize,
    failures: usize,
    elapsed: Duration,
    stats: &serde_json::Value,
) {
    figure(&format!(
        "concurrency test={test} workers={WORKERS} runs={runs} failed_runs={failures} seconds={:.1} \
         refreshes_ok={} replays_detected={} refresh_errors={} grants_revoked={}",
        elapsed.as_secs_f64(),
        stat(stats, "refreshes_ok"),
        stat(stats, "replays_detected"),
        stat(stats, "refresh_errors"),
        stat(stats, "grants_revoked"),
    ));
}

/// Runs `WORKERS` threads, each spawning tokvault processes one after the
/// other with the arguments `pick(worker, round)` while `more(round)`.
/// Returns how many ran and a line per failed run (exit code not 0, or
/// `token` not printing one line), without stdout, where a token may be.
fn run_workers(
    sandbox: &Sandbox,
    pick: fn(usize, usize) -> &'static [&'static str],
    more: &(dyn Fn(usize) -> bool + Sync),
) -> (usize, Vec<String>) {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    let mut round = 0;
                    while more(round) {
                        let args = pick(worker, round);
                        let run: Run = sandbox
                            .command()
                            .arg("--vault")
                            .arg(sandbox.vault())
                            .arg("-i")
                            .arg(sandbox.identity())
                            .args(args)
                            .output()
                            .expect("run tokvault")
                            .into();
                        let printed_a_token = args[0] != "token" || {
                            let lines: Vec<&str> = run.stdout.lines().collect();
                            lines.len() == 1 && !lines[0].is_empty()
                        };
                        if run.code != 0 || !printed_a_token {
                            failures.push(format!(
                                "worker {worker} round {round} `{}`: exit {}: {}",
                                args.join(" "),
                                run.code,
                                run.stderr.trim()
                            ));
                        }
                        round += 1;
                    }
                    (round, failures)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker thread"))
            .fold((0, Vec::new()), |(runs, mut all), (rounds, failures)| {
                all.extend(failures);
                (runs + rounds, all)
            })
    })
}

/// The first failures, for an assertion message.
fn first(failures: &[String]) -> String {
    let mut text = failures
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if failures.len() > 20 {
        text.push_str(&format!("\n... and {} more", failures.len() - 20));
    }
    text
}

#[test]
fn eight_processes_in_parallel_never_replay_a_rotated_refresh_token() {
    // Access tokens live 2 s: with --min-valid 1s they keep expiring during
    // the run, so `token` and `refresh` processes keep racing to refresh.
    let Some(Story {
        server,
        rt,
        sandbox,
    }) = Story::start(true, 2)
    else {
        return;
    };

    // Each worker runs at least 13 rounds (8 x 13 >= 100 processes), and
    // goes on for 6 s by default (three access-token lifetimes): on two
    // cores that is about 3000 processes.
    let started = Instant::now();
    let seconds = Duration::from_secs(race_seconds());
    let more = |round: usize| round < 13 || started.elapsed() < seconds;
    let pick = |worker: usize, round: usize| -> &'static [&'static str] {
        if (worker + round).is_multiple_of(2) {
            &["token", "demo", "--min-valid", "1s"]
        } else {
            &["refresh", "--min-valid", "1s"]
        }
    };
    let (runs, failures) = run_workers(&sandbox, pick, &more);
    let elapsed = started.elapsed();

    let stats = server_stats(&rt, &server);
    concurrency_figure("racing-refreshers", runs, failures.len(), elapsed, &stats);
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed in {elapsed:?} (server stats {stats}):\n{}",
        failures.len(),
        first(&failures)
    );
    assert!(runs >= 100, "{runs} runs");
    assert_no_replay_or_error(&stats);
    // The first run refreshes (no access token yet), then about one per
    // lifetime: each time, eight processes race for it.
    assert!(
        stat(&stats, "refreshes_ok") >= 3,
        "several refreshes raced: {stats}"
    );

    sandbox.run(&["verify"]).assert_code(0);
    let run = sandbox.run(&["refresh", "--force"]);
    run.assert_code(0);
    assert!(run.stdout.contains("demo: refreshed"), "{}", run.stdout);
    let stats = server_stats(&rt, &server);
    assert_eq!(stat(&stats, "replays_detected"), 0, "{stats}");
    assert_eq!(stat(&stats, "refresh_errors"), 0, "{stats}");
}

#[test]
fn readers_without_the_lock_are_not_confused_by_concurrent_writers() {
    // Access tokens live an hour: `token` never refreshes here, it only
    // reads (no lock), like `list` and `verify`, while two workers keep
    // rewriting the vault with `refresh --force`.
    let Some(Story {
        server,
        rt,
        sandbox,
    }) = Story::start(true, 3600)
    else {
        return;
    };
    sandbox.run(&["refresh"]).assert_code(0);

    let started = Instant::now();
    let pick = |worker: usize, _round: usize| -> &'static [&'static str] {
        match worker {
            0 | 1 => &["refresh", "--force"],
            2 => &["list"],
            3 => &["verify"],
            _ => &["token", "demo"],
        }
    };
    let rounds = reader_rounds();
    let (runs, failures) = run_workers(&sandbox, pick, &|round| round < rounds);
    let stats = server_stats(&rt, &server);
    concurrency_figure(
        "readers-and-writers",
        runs,
        failures.len(),
        started.elapsed(),
        &stats,
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed in {:?} ({stats}):\n{}",
        failures.len(),
        started.elapsed(),
        first(&failures)
    );
    assert_eq!(
        stat(&stats, "refreshes_ok"),
        1 + 2 * rounds as u64,
        "every forced refresh ran: {stats}"
    );
    assert_no_replay_or_error(&stats);
    sandbox.run(&["verify"]).assert_code(0);
}
