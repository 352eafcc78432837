//! `refresh --force` killed with SIGKILL at random points: the vault file is
//! replaced atomically, so it always opens, whole, at the old or the new
//! generation.
//!
//! Against a server that does not rotate refresh tokens every kill is
//! harmless: the stored refresh token still works. Against one that rotates
//! and revokes on replay (oidc-provider with rotation on), a kill after the
//! server rotated but before the new vault was renamed into place loses the
//! new refresh token: the vault still holds the used one, and presenting it
//! revokes the grant. No client can close that window (SIGKILL cannot be
//! caught, and the new token exists only in the response); what must hold is
//! that the loss is reported as "re-authorize" (exit 3), never as an
//! unreadable vault, and that nothing else is lost.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Rng, Sandbox, env_count, figure, files_named, google_token_json};
use crate::e2e::{Story, assert_no_replay_or_error, listed, server_stats, stat, utf8};
use crate::peers::{OidcProvider, POST_CLIENT};

/// Kills per test: `TOKVAULT_RELIABILITY_KILLS` (scripts/reliability), else 50.
fn kill_count() -> usize {
    env_count("TOKVAULT_RELIABILITY_KILLS", 50)
}

/// `refresh --force` in the background, stdout discarded.
pub(crate) fn spawn_refresh(sandbox: &Sandbox, stderr: Stdio) -> Child {
    sandbox
        .command_at(&sandbox.vault())
        .args(["refresh", "--force"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn tokvault")
}

/// How long a whole `refresh --force` takes here (the median of five): the
/// first window for kill delays.
pub(crate) fn refresh_duration(sandbox: &Sandbox) -> Duration {
    let mut durations: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let status = spawn_refresh(sandbox, Stdio::null()).wait().expect("wait");
            assert_eq!(status.code(), Some(0), "a warm-up refresh succeeds");
            started.elapsed()
        })
        .collect();
    durations.sort();
    durations[2]
}

/// What the kill loop saw.
struct Kills {
    seed: u64,
    /// Kills tried.
    tried: usize,
    /// Kills that hit a running process (the others came after it exited).
    hit: usize,
    /// Of those, kills after which the vault was still at the generation
    /// before the kill, and kills after which it was at the next one (the
    /// rename had happened): never anything else.
    old_generation: usize,
    new_generation: usize,
    /// Rounds after which the vault was missing or did not open (then the
    /// loop stops, and the test fails after printing its figure).
    unreadable: usize,
    /// Rounds after which the next refresh said the grant was gone.
    lost: usize,
    /// Kills after which there was one more temporary file than before.
    leaving_temp: usize,
    /// Temporary files left at the end.
    leftovers: Temps,
    /// What went wrong first, for the failure message.
    failure: Option<String>,
}

/// Temporary files of writers left by kills.
#[derive(Clone, Copy, Default)]
struct Temps {
    /// `.vault.tokvault.tmp-*` next to the vault (the next writer removes
    /// them under the lock).
    vault: usize,
    /// `.tokvault-probe-*`: the writability check of `refresh`.
    probe: usize,
    /// `*.tmp-*` in the state directory (rollback pins, refresh health).
    state: usize,
}

impl Temps {
    fn total(self) -> usize {
        self.vault + self.probe + self.state
    }
}

fn temp_files(sandbox: &Sandbox) -> Temps {
    let server = sandbox.path("server");
    Temps {
        vault: files_named(&server, ".tmp-"),
        probe: files_named(&server, "-probe-"),
        state: files_named(&sandbox.path("state"), ".tmp-"),
    }
}

/// The generation in the vault's header (no key needed).
fn generation(sandbox: &Sandbox) -> Option<u64> {
    let bytes = std::fs::read(sandbox.vault()).ok()?;
    vault_format::inspect(&bytes)
        .ok()
        .map(|(header, _)| header.generation)
}

/// Kills `refresh --force` [`kill_count`] times; after each kill the vault must
/// open at the generation before the kill or the next one, and the next
/// `refresh --force` must exit 0, or (only if `may_lose`) 3, in which case
/// the record is re-authorized (a new grant imported with --replace) and
/// the loop goes on.
fn kill_loop(
    server: &OidcProvider,
    rt: &tokio::runtime::Runtime,
    sandbox: &Sandbox,
    may_lose: bool,
) -> Kills {
    let mut rng = Rng::from_clock();
    let mut kills = Kills {
        seed: rng.seed(),
        tried: 0,
        hit: 0,
        old_generation: 0,
        new_generation: 0,
        unreadable: 0,
        lost: 0,
        leaving_temp: 0,
        leftovers: Temps::default(),
        failure: None,
    };
    let seed = kills.seed;
    // Delays are uniform in [0, window]. The window adapts to the machine's
    // load: it shrinks when the process had already exited and grows when
    // the kill hit, so that about half the kills land during the process's
    // life, anywhere in it.
    let mut window = refresh_duration(sandbox).mul_f64(1.2);
    for round in 0..kill_count() {
        let used = window;
        let delay = Duration::from_micros(rng.below(used.as_micros() as u64 + 1));
        let before = generation(sandbox).expect("the vault has a header before the kill");
        let temp_before = temp_files(sandbox);
        let mut child = spawn_refresh(sandbox, Stdio::null());
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        kills.tried += 1;
        let temp_after = temp_files(sandbox);
        if temp_after.total() > temp_before.total() {
            kills.leaving_temp += 1;
        }
        let hit = status.signal() == Some(9);
        if hit {
            kills.hit += 1;
            window = window.mul_f64(1.15).min(Duration::from_secs(2));
        } else {
            window = window.mul_f64(0.85).max(Duration::from_millis(1));
        }
        let context = format!(
            "round {round} (seed {seed:#x}, killed after {delay:?} of a {used:?} window, {status})"
        );

        let run = sandbox.run(&["verify"]);
        if !sandbox.vault().is_file() || run.code != 0 {
            kills.unreadable += 1;
            kills.failure = Some(format!(
                "{context}: the vault does not open after the kill\nstdout: {}\nstderr: {}",
                run.stdout, run.stderr
            ));
            break;
        }
        let after = generation(sandbox).expect("the vault has a header after the kill");
        if hit {
            if after == before {
                kills.old_generation += 1;
            } else if after == before + 1 {
                kills.new_generation += 1;
            } else {
                kills.failure = Some(format!(
                    "{context}: generation {before} became {after} in one refresh"
                ));
                break;
            }
        }

        let run = sandbox.run(&["refresh", "--force"]);
        match run.code {
            0 => assert!(
                run.stdout.contains("demo: refreshed"),
                "{context}: {}",
                run.stdout
            ),
            3 if may_lose => {
                kills.lost += 1;
                assert!(
                    run.stdout.contains("re-authoriz"),
                    "{context}: {}",
                    run.stdout
                );
                let record = listed(sandbox, "demo");
                assert_eq!(
                    record["last_refresh"]["outcome"], "reauthorization-required",
                    "{context}: {record}"
                );
                // Re-authorize: a new grant replaces the record.
                let minted = rt.block_on(server.mint(POST_CLIENT.0, "offline_access", 1));
                let file = sandbox.write(
                    "in/reauthorized.json",
                    &google_token_json(
                        &server.token_endpoint,
                        POST_CLIENT.0,
                        POST_CLIENT.1,
                        &minted[0],
                    ),
                );
                sandbox
                    .run(&["import", "--name", "demo", "--replace", utf8(&file)])
                    .assert_code(0);
                std::fs::remove_file(&file).expect("remove the plaintext token file");
                sandbox.run(&["refresh", "--force"]).assert_code(0);
            }
            _ => {
                kills.failure = Some(format!(
                    "{context}: refresh after the kill: exit {}\nstdout: {}\nstderr: {}",
                    run.code, run.stdout, run.stderr
                ));
                break;
            }
        }
    }
    kills.leftovers = temp_files(sandbox);
    kills
}

/// The checks every kill loop must pass, after its figure is printed.
fn assert_kills(kills: &Kills) {
    if let Some(failure) = &kills.failure {
        panic!("{failure}");
    }
    assert_eq!(kills.unreadable, 0);
    assert_eq!(kills.tried, kill_count());
    assert!(
        kills.hit >= kills.tried / 3,
        "only {} of {} kills hit a running refresh (seed {:#x}): the delays miss the process",
        kills.hit,
        kills.tried,
        kills.seed
    );
    assert_eq!(kills.old_generation + kills.new_generation, kills.hit);
    // A killed writer leaves at most its one temporary file behind (an
    // encrypted copy, a pin or refresh health; never at the real path).
    assert!(
        kills.leftovers.total() <= kills.hit,
        "{} temporary files for {} kills",
        kills.leftovers.total(),
        kills.hit
    );
}

fn kills_figure(server: &str, kills: &Kills, stats: &serde_json::Value) {
    figure(&format!(
        "crash server={server} kills={} hit_running_refresh={} vault_at_old_generation={} \
         vault_at_new_generation={} vault_unreadable={} kills_leaving_a_tmp_file={} \
         tmp_files_left_vault_dir={} probe_files_left_vault_dir={} tmp_files_left_state_dir={} \
         grants_lost={} \
         replays_detected={} grants_revoked={} seed={:#x}",
        kills.tried,
        kills.hit,
        kills.old_generation,
        kills.new_generation,
        kills.unreadable,
        kills.leaving_temp,
        kills.leftovers.vault,
        kills.leftovers.probe,
        kills.leftovers.state,
        kills.lost,
        stat(stats, "replays_detected"),
        stat(stats, "grants_revoked"),
        kills.seed
    ));
}

#[test]
fn sigkill_during_refresh_never_damages_the_vault_nor_loses_a_non_rotating_grant() {
    let Some(Story {
        server,
        rt,
        sandbox,
    }) = Story::start(false, 3600)
    else {
        return;
    };

    let kills = kill_loop(&server, &rt, &sandbox, false);
    let stats = server_stats(&rt, &server);
    kills_figure("non-rotating", &kills, &stats);
    assert_kills(&kills);
    assert_eq!(kills.lost, 0);
    assert_no_replay_or_error(&stats);
    sandbox.run(&["refresh", "--force"]).assert_code(0);
    sandbox.run(&["verify"]).assert_code(0);
}

#[test]
fn sigkill_during_a_rotating_refresh_loses_at_most_that_grant_and_says_so() {
    let Some(Story {
        server,
        rt,
        sandbox,
    }) = Story::start(true, 3600)
    else {
        return;
    };

    let kills = kill_loop(&server, &rt, &sandbox, true);
    let stats = server_stats(&rt, &server);
    kills_figure("rotating", &kills, &stats);
    assert_kills(&kills);
    // A grant is lost only by a kill that left the old generation (the
    // server had rotated, the new vault was not renamed into place yet).
    assert!(
        kills.lost <= kills.old_generation,
        "{} grants lost, but only {} kills left the old generation",
        kills.lost,
        kills.old_generation
    );
    // Each lost rotation is detected exactly once, as a replay of the old
    // refresh token, which revokes that grant and nothing else.
    assert_eq!(
        stat(&stats, "replays_detected"),
        kills.lost as u64,
        "{stats}"
    );
    assert_eq!(stat(&stats, "grants_revoked"), kills.lost as u64, "{stats}");
    sandbox.run(&["refresh", "--force"]).assert_code(0);
    sandbox.run(&["verify"]).assert_code(0);
}
