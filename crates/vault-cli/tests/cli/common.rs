//! A sandbox per test: its own XDG dirs, state dir and vault path, and a
//! runner for the real `tokvault` binary with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub(crate) const TOKVAULT: &str = env!("CARGO_BIN_EXE_tokvault");

pub(crate) struct Sandbox {
    pub(crate) dir: tempfile::TempDir,
}

/// The result of one run.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn vault(&self) -> PathBuf {
        self.path("server/vault.tokvault")
    }

    pub(crate) fn identity(&self) -> PathBuf {
        self.path("server/identity.txt")
    }

    /// `tokvault` with only this sandbox's environment (no inherited
    /// TOKVAULT_*, XDG_* or CREDENTIALS_DIRECTORY) and stdin closed.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(TOKVAULT);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_STATE_HOME", self.path("state"))
            .stdin(Stdio::null());
        command
    }

    /// `sh -c SCRIPT` with this sandbox's environment, plus `$TOKVAULT`
    /// (the binary) and the vault and identity in `TOKVAULT_VAULT` and
    /// `TOKVAULT_IDENTITY`.
    pub(crate) fn shell(&self, script: &str) -> Command {
        let mut command = self.command();
        let envs: Vec<_> = command
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        command = Command::new("sh");
        command
            .env_clear()
            .envs(envs)
            .env("TOKVAULT", TOKVAULT)
            .env("TOKVAULT_VAULT", self.vault())
            .env("TOKVAULT_IDENTITY", self.identity())
            .args(["-c", script])
            .stdin(Stdio::null());
        command
    }

    /// `tokvault --vault VAULT -i <identity>`, in this sandbox's
    /// environment.
    pub(crate) fn command_at(&self, vault: &Path) -> Command {
        let mut command = self.command();
        command
            .arg("--vault")
            .arg(vault)
            .arg("-i")
            .arg(self.identity());
        command
    }

    /// Runs `tokvault --vault <sandbox vault> -i <identity> ARGS`.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.command_at(&self.vault())
            .args(args)
            .output()
            .expect("run tokvault")
            .into()
    }

    /// Runs `tokvault ARGS` with no implicit options.
    pub(crate) fn run_bare(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .output()
            .expect("run tokvault")
            .into()
    }

    /// keygen into server/identity.txt; returns the recipient.
    pub(crate) fn keygen(&self) -> String {
        let run = self.run_bare(&[
            "keygen",
            "-o",
            self.identity().to_str().expect("utf-8 path"),
        ]);
        run.assert_code(0);
        run.stdout.trim().to_owned()
    }

    /// keygen + init: an empty vault for the server identity.
    pub(crate) fn init_server(&self) -> String {
        let recipient = self.keygen();
        self.run(&["init", "-r", &recipient]).assert_code(0);
        recipient
    }

    pub(crate) fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
        path
    }
}

/// google-auth's authorized_user JSON for a refresh token.
pub(crate) fn google_token_json(
    token_uri: &str,
    client_id: &str,
    secret: &str,
    refresh_token: &str,
) -> String {
    serde_json::json!({
        "token": null,
        "refresh_token": refresh_token,
        "token_uri": token_uri,
        "client_id": client_id,
        "client_secret": secret,
        "scopes": ["offline_access"],
        "universe_domain": "googleapis.com",
        "account": "",
    })
    .to_string()
}

pub(crate) fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file")
}

/// A count for the reliability figures: `variable` from the environment
/// (`scripts/reliability` scales them), or `default`, which keeps a plain
/// `cargo test` fast.
pub(crate) fn env_count(variable: &str, default: usize) -> usize {
    match std::env::var(variable) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{variable}={value:?} is not a count")),
        Err(_) => default,
    }
}

/// Prints `FIGURE LINE` on stdout: `scripts/reliability` runs the tests
/// with `--nocapture` and collects these lines for docs/ASSURANCE.md.
/// Never put a secret in `line`.
#[allow(clippy::print_stdout)]
pub(crate) fn figure(line: &str) {
    println!("FIGURE {line}");
}

/// xorshift64*, seeded from the clock; print [`Rng::seed`] with a failure
/// or a figure so that a run can be told apart.
pub(crate) struct Rng {
    state: u64,
    seed: u64,
}

impl Rng {
    pub(crate) fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Self {
            state: nanos | 1,
            seed: nanos | 1,
        }
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }

    /// `n` positions spread evenly over `range` (one at random in each of
    /// `n` equal strata), or all of it when `n` covers it.
    pub(crate) fn sample(&mut self, range: std::ops::Range<usize>, n: usize) -> Vec<usize> {
        let len = range.len();
        if n >= len {
            return range.collect();
        }
        (0..n)
            .map(|k| {
                let (from, to) = (k * len / n, (k + 1) * len / n);
                range.start + from + self.below((to - from) as u64) as usize
            })
            .collect()
    }
}

/// Files below `dir` (recursively) whose name contains `pattern`; 0 when
/// `dir` does not exist.
pub(crate) fn files_named(dir: &Path, pattern: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                if e.path().is_dir() {
                    files_named(&e.path(), pattern)
                } else {
                    usize::from(e.file_name().to_string_lossy().contains(pattern))
                }
            })
            .sum()
    })
}
