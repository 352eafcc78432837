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

use crate::common::{Sandbox, google_token_json};
use crate::e2e::{Story, assert_no_replay_or_error, listed, server_stats, stat, utf8};
use crate::peers::{OidcProvider, POST_CLIENT};

const KILLS: usize = 50;

/// xorshift64*, seeded from the clock; the seed is in failure messages.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

fn spawn_refresh(sandbox: &Sandbox) -> Child {
    sandbox
        .command()
        .arg("--vault")
        .arg(sandbox.vault())
        .arg("-i")
        .arg(sandbox.identity())
        .args(["refresh", "--force"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tokvault")
}

/// How long a whole `refresh --force` takes here (the median of five): the
/// first window for kill delays.
fn refresh_duration(sandbox: &Sandbox) -> Duration {
    let mut durations: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let status = spawn_refresh(sandbox).wait().expect("wait");
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
    /// Kills that hit a running process (the others came after it exited).
    hit: usize,
    /// Rounds after which the next refresh said the grant was gone.
    lost: usize,
}

/// Kills `refresh --force` [`KILLS`] times; after each kill the vault must
/// open and the next `refresh --force` must exit 0, or (only if `may_lose`)
/// 3, in which case the record is re-authorized (a new grant imported with
/// --replace) and the loop goes on.
fn kill_loop(
    server: &OidcProvider,
    rt: &tokio::runtime::Runtime,
    sandbox: &Sandbox,
    may_lose: bool,
) -> Kills {
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    // Delays are uniform in [0, window]. The window adapts to the machine's
    // load: it shrinks when the process had already exited and grows when
    // the kill hit, so that about half the kills land during the process's
    // life, anywhere in it.
    let mut window = refresh_duration(sandbox).mul_f64(1.2);
    let (mut hit, mut lost) = (0, 0);
    for round in 0..KILLS {
        let used = window;
        let delay = Duration::from_micros(rng.below(used.as_micros() as u64 + 1));
        let mut child = spawn_refresh(sandbox);
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        if status.signal() == Some(9) {
            hit += 1;
            window = window.mul_f64(1.15).min(Duration::from_secs(2));
        } else {
            window = window.mul_f64(0.85).max(Duration::from_millis(1));
        }
        let context = format!(
            "round {round} (seed {seed:#x}, killed after {delay:?} of a {used:?} window, {status})"
        );

        assert!(
            sandbox.vault().is_file(),
            "{context}: the vault file exists"
        );
        let run = sandbox.run(&["verify"]);
        assert_eq!(
            run.code, 0,
            "{context}: the vault opens after the kill\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );

        let run = sandbox.run(&["refresh", "--force"]);
        match run.code {
            0 => assert!(
                run.stdout.contains("demo: refreshed"),
                "{context}: {}",
                run.stdout
            ),
            3 if may_lose => {
                lost += 1;
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
            _ => panic!(
                "{context}: refresh after the kill: exit {}\nstdout: {}\nstderr: {}",
                run.code, run.stdout, run.stderr
            ),
        }
    }
    let leftovers = std::fs::read_dir(sandbox.path("server"))
        .expect("server dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count();
    // A killed writer leaves at most its one temporary file behind (an
    // encrypted copy, never at the vault's own path).
    assert!(
        leftovers <= hit,
        "{leftovers} temporary files for {hit} kills"
    );
    Kills { seed, hit, lost }
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
    assert!(
        kills.hit >= KILLS / 3,
        "only {} of {KILLS} kills hit a running refresh (seed {:#x}): the delays miss the process",
        kills.hit,
        kills.seed
    );
    assert_eq!(kills.lost, 0);
    let stats = server_stats(&rt, &server);
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
    assert!(
        kills.hit >= KILLS / 3,
        "only {} of {KILLS} kills hit (seed {:#x})",
        kills.hit,
        kills.seed
    );
    // Each lost rotation is detected exactly once, as a replay of the old
    // refresh token, which revokes that grant and nothing else.
    let stats = server_stats(&rt, &server);
    assert_eq!(
        stat(&stats, "replays_detected"),
        kills.lost as u64,
        "{stats}"
    );
    assert_eq!(stat(&stats, "grants_revoked"), kills.lost as u64, "{stats}");
    sandbox.run(&["refresh", "--force"]).assert_code(0);
    sandbox.run(&["verify"]).assert_code(0);
}
