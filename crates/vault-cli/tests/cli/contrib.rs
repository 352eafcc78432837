//! The systemd units in contrib/systemd: `systemd-analyze verify` accepts
//! both without a single diagnostic about them (where systemd-analyze is
//! installed), the service keeps the hardening and settings its README
//! promises, and its command line works with nothing but what the unit
//! provides: its environment and the identity as a credential.
//!
//! `systemd-analyze verify` only warns about an unknown key or a bad value
//! ("ignoring") and still exits 0, so any diagnostic that names our units
//! fails the test, not just the exit code.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Run, TOKVAULT};

const SERVICE: &str = "tokvault-refresh.service";
const TIMER: &str = "tokvault-refresh.timer";
const SERVE: &str = "tokvault-serve.service";
/// Where the units expect the binary: where the Debian package puts it, and
/// where the source install in contrib/systemd/README.md copies it.
const INSTALLED_TOKVAULT: &str = "/usr/bin/tokvault";

fn contrib_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd")
}

fn read_unit(name: &str) -> String {
    let path = contrib_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A unit file's `Key=value` settings with their sections, in file order.
/// Our units use no line continuations, which keeps this parser exact.
struct Unit {
    settings: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Self {
        let mut section = String::new();
        let mut settings = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "no continuation lines, please: {line}"
            );
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                name.clone_into(&mut section);
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a Key=value line: {line}"));
            settings.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
        Self { settings }
    }

    /// Every value of `key` in `section`, in order.
    fn values(&self, section: &str, key: &str) -> Vec<&str> {
        self.settings
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The one value of `key` in `section`.
    fn value(&self, section: &str, key: &str) -> &str {
        match self.values(section, key)[..] {
            [value] => value,
            ref values => panic!("[{section}] {key}= once, found {values:?}"),
        }
    }

    /// `Environment=` assignments (`NAME=value` words).
    fn environment(&self) -> Vec<(&str, &str)> {
        self.values("Service", "Environment")
            .into_iter()
            .flat_map(str::split_whitespace)
            .map(|word| {
                word.split_once('=')
                    .unwrap_or_else(|| panic!("Environment= word without '=': {word}"))
            })
            .collect()
    }

    fn env(&self, name: &str) -> &str {
        self.environment()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("Environment={name}=... is set"))
            .1
    }
}

/// `systemd-analyze`, or `None` (skip, with a note) where it is not
/// installed: containers often lack systemd, so CI skips too.
#[allow(
    clippy::print_stderr,
    reason = "a skipped test must say so in the test output"
)]
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "skipping: systemd-analyze is not installed, so the units in contrib/systemd are not verified"
        );
        return None;
    }
    Some("systemd-analyze")
}

/// Both units copied into a temporary directory, with `edit(file name,
/// text)` applied, and the service's ExecStart= pointed at the binary under
/// test (verify refuses a command that does not exist).
fn prepared_units(edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [SERVICE, TIMER, SERVE] {
        let mut text = read_unit(name);
        if name != TIMER {
            let from = format!("ExecStart={INSTALLED_TOKVAULT} ");
            assert!(
                text.contains(&from),
                "the service runs {INSTALLED_TOKVAULT}"
            );
            text = text.replace(&from, &format!("ExecStart=\"{TOKVAULT}\" "));
        }
        let text = edit(name, text);
        std::fs::write(dir.path().join(name), text).expect("write unit");
    }
    dir
}

/// Runs `systemd-analyze verify` on both units in `dir`. `Err` holds its
/// output when it failed or said anything about our units.
fn verify(systemd_analyze: &str, dir: &Path) -> Result<(), String> {
    let output = Command::new(systemd_analyze)
        .args(["verify", "--man=no"])
        .arg(dir.join(SERVICE))
        .arg(dir.join(TIMER))
        .arg(dir.join(SERVE))
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "")
        .env("LC_ALL", "C")
        .output()
        .expect("run systemd-analyze verify");
    let run = Run::from(output);
    let text = format!("{}{}", run.stdout, run.stderr);
    let about_ours = text.lines().any(|line| {
        line.contains(SERVICE)
            || line.contains(TIMER)
            || line.contains(SERVE)
            || line.contains(&*dir.to_string_lossy())
    });
    if run.code == 0 && !about_ours {
        Ok(())
    } else {
        Err(format!("exit {}:\n{text}", run.code))
    }
}

#[test]
fn systemd_analyze_verify_accepts_both_units() {
    let Some(systemd_analyze) = systemd_analyze() else {
        return;
    };
    let dir = prepared_units(|_, text| text);
    if let Err(output) = verify(systemd_analyze, dir.path()) {
        panic!("systemd-analyze verify: {output}");
    }
}

/// The check above would notice a typo: each of these alone fails it.
#[test]
fn systemd_analyze_verify_catches_typos() {
    let Some(systemd_analyze) = systemd_analyze() else {
        return;
    };
    let typos = [
        (SERVICE, "\nProtectHome=yes\n", "\nProtectHom=yes\n"),
        (
            SERVICE,
            "\nProtectSystem=strict\n",
            "\nProtectSystem=strikt\n",
        ),
        (SERVICE, "\n[Service]\n", "\n[Servise]\n"),
        (SERVE, "\nProcSubset=pid\n", "\nProcSubset=pids\n"),
        (
            TIMER,
            "\nOnUnitActiveSec=10min\n",
            "\nOnUnitActiveSec=10minn\n",
        ),
    ];
    for (file, from, to) in typos {
        let dir = prepared_units(|name, text| {
            if name != file {
                return text;
            }
            assert!(text.contains(from), "{file} contains {from:?}");
            text.replace(from, to)
        });
        assert!(
            verify(systemd_analyze, dir.path()).is_err(),
            "systemd-analyze verify did not notice {to:?} in {file}"
        );
    }
}

#[test]
fn service_keeps_the_documented_settings_and_hardening() {
    let unit = Unit::parse(&read_unit(SERVICE));
    let service = |key| unit.value("Service", key);

    assert_eq!(service("Type"), "oneshot");
    let exec_start = service("ExecStart");
    assert!(
        exec_start.starts_with(&format!("{INSTALLED_TOKVAULT} refresh")),
        "{exec_start}"
    );
    // Exit 3 (re-authorize) and 4 (temporary) must fail the unit visibly.
    assert!(
        unit.values("Service", "SuccessExitStatus").is_empty(),
        "no exit code is remapped to success"
    );
    assert_eq!(service("User"), "tokvault");
    assert!(unit.values("Service", "DynamicUser").is_empty());

    // The identity as a credential under the name tokvault reads by itself.
    assert_eq!(
        service("LoadCredential"),
        "tokvault-identity:/etc/tokvault/identity.txt"
    );
    let help = Command::new(TOKVAULT)
        .arg("--help")
        .output()
        .expect("run tokvault --help");
    let help = Run::from(help);
    help.assert_code(0);
    for promise in [
        "$CREDENTIALS_DIRECTORY/tokvault-identity",
        "[env: TOKVAULT_VAULT=",
        "[env: TOKVAULT_STATE_DIR=",
    ] {
        assert!(help.stdout.contains(promise), "--help mentions {promise}");
    }

    // Writable: exactly the vault's directory and the state directory.
    let vault = Path::new(unit.env("TOKVAULT_VAULT"));
    let state = unit.env("TOKVAULT_STATE_DIR");
    assert_eq!(vault, Path::new("/var/lib/tokvault/vault.tokvault"));
    assert_eq!(state, "/var/lib/tokvault/state");
    let vault_dir = vault.parent().expect("vault directory");
    let mut writable: Vec<&str> = unit
        .values("Service", "ReadWritePaths")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    writable.sort_unstable();
    assert_eq!(
        writable,
        [vault_dir.to_str().expect("utf-8"), state],
        "ReadWritePaths= names only the vault directory and the state directory"
    );
    assert_eq!(service("StateDirectory"), "tokvault tokvault/state");

    for (key, expected) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("UMask", "0077"),
        ("CapabilityBoundingSet", ""),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("RestrictRealtime", "yes"),
    ] {
        assert_eq!(service(key), expected, "[Service] {key}=");
    }
    let filters = unit.values("Service", "SystemCallFilter");
    assert_eq!(filters.first(), Some(&"@system-service"), "{filters:?}");

    let timer = Unit::parse(&read_unit(TIMER));
    assert_eq!(timer.value("Timer", "OnUnitActiveSec"), "10min");
    for key in ["OnBootSec", "RandomizedDelaySec"] {
        assert!(!timer.value("Timer", key).is_empty(), "[Timer] {key}=");
    }
    assert_eq!(timer.value("Install", "WantedBy"), "timers.target");
}

/// What the service runs, with only what the unit gives it: its
/// Environment= (paths moved under a temporary root), the directories
/// StateDirectory= creates, and the identity in $CREDENTIALS_DIRECTORY
/// (0400, as systemd writes it). No -i option, no HOME config.
#[test]
fn service_command_runs_with_only_what_the_unit_provides() {
    let unit = Unit::parse(&read_unit(SERVICE));
    let root = tempfile::tempdir().expect("temp dir");
    let rooted = |path: &str| root.path().join(path.trim_start_matches('/'));

    for dir in unit.value("Service", "StateDirectory").split_whitespace() {
        let path = rooted(&format!("/var/lib/{dir}"));
        std::fs::create_dir_all(&path).expect("state directory");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let credentials = rooted("/run/credentials/tokvault-refresh.service");
    std::fs::create_dir_all(&credentials).expect("credentials directory");
    let (name, _) = unit
        .value("Service", "LoadCredential")
        .split_once(':')
        .expect("LoadCredential=NAME:PATH");
    let identity = credentials.join(name);
    let keygen = Command::new(TOKVAULT)
        .arg("keygen")
        .arg("-o")
        .arg(&identity)
        .env_clear()
        .output()
        .expect("run tokvault keygen");
    let keygen = Run::from(keygen);
    keygen.assert_code(0);
    let recipient = keygen.stdout.trim().to_owned();
    std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o400)).expect("chmod");

    let command = |with_credentials: bool, args: &[&str]| -> Run {
        let mut command = Command::new(TOKVAULT);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.path().join("home"));
        for (name, value) in unit.environment() {
            command.env(name, rooted(value));
        }
        if with_credentials {
            command.env("CREDENTIALS_DIRECTORY", &credentials);
        }
        command.args(args).output().expect("run tokvault").into()
    };
    // The administrator's init (README: `tv init -r ...`).
    command(true, &["init", "-r", &recipient]).assert_code(0);

    let exec_start = unit.value("Service", "ExecStart");
    let mut words = exec_start.split_whitespace();
    assert_eq!(words.next(), Some(INSTALLED_TOKVAULT));
    let args: Vec<&str> = words.collect();
    assert!(
        args.iter().all(|a| !a.contains(['"', '\'', '$', '%'])),
        "plain words only: {exec_start}"
    );
    command(true, &args).assert_code(0);
    let verified = command(true, &["verify"]);
    verified.assert_code(0);
    assert!(
        verified
            .stdout
            .contains(&*rooted(unit.env("TOKVAULT_VAULT")).to_string_lossy()),
        "the unit's vault: {}",
        verified.stdout
    );
    assert!(
        std::fs::read_dir(rooted(unit.env("TOKVAULT_STATE_DIR")))
            .expect("state directory")
            .next()
            .is_some(),
        "the pins live in the unit's state directory"
    );
    // Without the credential the same command cannot open the vault.
    command(false, &args).assert_code(5);
}

/// The lines of `text` that put or run the tokvault binary anywhere but
/// where the units run it: a path ending in `bin/tokvault` other than
/// [`INSTALLED_TOKVAULT`], an `install` of the built binary to another
/// place, a `cargo install --root` other than `/usr`.
fn wrong_binary_paths(text: &str) -> Vec<String> {
    let installed_dir = INSTALLED_TOKVAULT.trim_end_matches("tokvault");
    let mut wrong = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || "\"'`()=,[]".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        let runs_elsewhere = words
            .iter()
            .any(|w| w.ends_with("bin/tokvault") && *w != INSTALLED_TOKVAULT);
        let installs_elsewhere = words.contains(&"install")
            && words.iter().any(|w| w.ends_with("release/tokvault"))
            && !matches!(words.last(), Some(&d) if d == INSTALLED_TOKVAULT || d == installed_dir);
        let root_elsewhere = words
            .windows(2)
            .any(|w| w[0] == "--root" && w[1] != installed_dir.trim_end_matches("/bin/"));
        if runs_elsewhere || installs_elsewhere || root_elsewhere {
            wrong.push(line.to_owned());
        }
    }
    wrong
}

/// Every install the READMEs describe (the Debian package, the source
/// install, the `tv` function, the unit and drop-in examples) puts or runs
/// the binary at the path the units' ExecStart= names, and so does the
/// package (`[package.metadata.deb]`); scripts/package-test checks the
/// installed package itself.
#[test]
fn every_documented_install_puts_the_binary_where_the_units_run_it() {
    for name in [SERVICE, SERVE] {
        let unit = Unit::parse(&read_unit(name));
        let exec_start = unit.value("Service", "ExecStart");
        assert_eq!(
            exec_start.split_whitespace().next(),
            Some(INSTALLED_TOKVAULT),
            "{name}: ExecStart={exec_start}"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for file in [
        "README.md",
        "contrib/systemd/README.md",
        "contrib/systemd/tokvault-refresh.service",
        "contrib/systemd/tokvault-serve.service",
        "contrib/systemd/tokvault.sysusers",
        "scripts/man",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("read file");
        let wrong = wrong_binary_paths(&text);
        assert!(
            wrong.is_empty(),
            "{file} puts or runs tokvault elsewhere than {INSTALLED_TOKVAULT}: {wrong:#?}"
        );
    }
    let manifest =
        std::fs::read_to_string(root.join("crates/vault-cli/Cargo.toml")).expect("read Cargo.toml");
    assert!(
        manifest.contains(r#"["target/release/tokvault", "usr/bin/", "755"]"#),
        "the Debian package installs the binary as {INSTALLED_TOKVAULT}"
    );

    // The check above notices each way an install used to miss the units.
    for bad in [
        "ExecStart=/usr/local/bin/tokvault refresh --min-valid 15m",
        "cargo install --locked --path crates/vault-cli --root /usr/local",
        "sudo install -m 0755 target/release/tokvault /usr/local/bin/",
        "        /usr/local/bin/tokvault \"$@\"",
        "tokvault is in ~/.cargo/bin/tokvault",
    ] {
        assert_eq!(wrong_binary_paths(bad), [bad], "not noticed: {bad}");
    }
}
