//! The reliability figures of `docs/ASSURANCE.md`: every single-bit flip
//! and every truncation of a vault made by the CLI, faults at the token
//! endpoint that must leave the vault byte-identical, and canary secrets
//! that must never reach a log. `scripts/reliability` scales the counts
//! through `TOKVAULT_RELIABILITY_*` and collects the `FIGURE` lines these
//! tests print (the kill -9 and concurrency figures come from `crash` and
//! `concurrency`). Without those variables the counts are small, so that
//! `cargo test` stays fast.
//!
//! Every token endpoint here is the in-process fault server of the
//! vault-oauth tests or a raw socket, on 127.0.0.1; no test needs a peer.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vault_format::age::x25519::Identity;
use vault_format::{Header, Record, RefreshClass, Unlock, Vault};

use crate::common::{Rng, Run, Sandbox, env_count, figure, files_named, google_token_json, read};
use crate::e2e::{runtime, utf8};
use crate::fault_server::{Action, FaultServer, Received};
use crate::peers::repo_root;

/// Every secret the canary test plants contains this (tokens the server
/// issues, client secrets, the passphrase, a device code, response bodies).
const CANARY: &str = "tkvcanary";

// ---------------------------------------------------------------------
// Shared: a token server, a vault with real records, small helpers.
// ---------------------------------------------------------------------

/// A token server on loopback, by path: `/token` answers every grant with
/// new tokens (`tkvcanary-at-N`, and a rotated `tkvcanary-rt-N` except for
/// service accounts; a device code with an odd number is answered
/// `authorization_pending` once first), `/device` starts a device
/// authorization, `/revoked` says `invalid_grant`, `/down` is a 503 with
/// `Retry-After: 3600` and `/garbage` a 200 that is not JSON (both bodies
/// carry a canary that must never be shown).
fn token_server(rt: &tokio::runtime::Runtime) -> FaultServer {
    let issued = AtomicUsize::new(0);
    let polled = Mutex::new(HashSet::new());
    rt.block_on(FaultServer::with(move |request: &Received| {
        let n = issued.fetch_add(1, Ordering::SeqCst);
        let path = request.head.split_whitespace().nth(1).unwrap_or_default();
        let grant = request.form("grant_type").unwrap_or_default();
        match path {
            "/device" => Action::json(
                200,
                &format!(
                    r#"{{"device_code":"{CANARY}-device-code-{n}","user_code":"WDJB-MJHT",
                        "verification_uri":"https://example.invalid/device",
                        "expires_in":600,"interval":1}}"#
                ),
            ),
            "/token" if grant.ends_with(":device_code") => {
                let code = request.form("device_code").unwrap_or_default();
                let odd = code.ends_with(['1', '3', '5', '7', '9']);
                if odd && polled.lock().expect("not poisoned").insert(code) {
                    Action::json(400, r#"{"error":"authorization_pending"}"#)
                } else {
                    issue(n, true)
                }
            }
            "/token" => issue(n, !grant.ends_with(":jwt-bearer")),
            "/revoked" => Action::json(
                400,
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            ),
            "/down" => Action::Respond {
                status: 503,
                headers: vec![("Retry-After".into(), "3600".into())],
                body: format!("<html>{CANARY}-body-503</html>").into_bytes(),
            },
            "/garbage" => Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body: format!("<html>{CANARY}-body-garbage</html>").into_bytes(),
            },
            _ => Action::json(404, "{}"),
        }
    }))
}

/// A token response: access token `tkvcanary-at-N`, valid an hour, and a
/// rotated refresh token when `rotate`.
fn issue(n: usize, rotate: bool) -> Action {
    let refresh = if rotate {
        format!(r#","refresh_token":"{CANARY}-rt-{n}""#)
    } else {
        String::new()
    };
    Action::json(
        200,
        &format!(
            r#"{{"access_token":"{CANARY}-at-{n}","token_type":"Bearer","expires_in":3600,"scope":"offline_access"{refresh}}}"#
        ),
    )
}

/// Google's test service-account key (tests/fixtures; not a real key).
fn service_account_fixture() -> PathBuf {
    repo_root().join("tests/fixtures/service_account.json")
}

/// The fixture key with a scope (a service account must name one), in
/// `sandbox`.
fn service_account_file(sandbox: &Sandbox) -> PathBuf {
    let mut key: serde_json::Value =
        serde_json::from_slice(&read(&service_account_fixture())).expect("fixture JSON");
    key["scopes"] = serde_json::json!(["https://www.googleapis.com/auth/cloud-platform"]);
    private_file(sandbox, "in/service_account.json", &key.to_string())
}

fn private_file(sandbox: &Sandbox, relative: &str, contents: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = sandbox.write(relative, contents);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path
}

/// A server sandbox whose vault, made by the CLI, has an age slot and a
/// passphrase slot (Argon2id at the CLI's defaults) and three records, all
/// refreshed once from `base` + `/token`: `gmail` (google-auth JSON),
/// `generic` (tokvault JSON, client_secret_basic) and `robot` (a service
/// account).
struct Stocked {
    sandbox: Sandbox,
    recipient: String,
    passphrase: PathBuf,
}

impl Stocked {
    fn new(base: &str) -> Self {
        let sandbox = Sandbox::new();
        let recipient = sandbox.keygen();
        let passphrase = private_file(
            &sandbox,
            "server/passphrase",
            &format!("{CANARY}-passphrase-0123"),
        );
        sandbox
            .run(&[
                "--passphrase-file",
                utf8(&passphrase),
                "init",
                "-r",
                &recipient,
                "--passphrase",
            ])
            .assert_code(0);
        let stocked = Self {
            sandbox,
            recipient,
            passphrase,
        };
        stocked.import_google("gmail", &format!("{base}/token"));
        let generic = stocked.sandbox.write(
            "in/generic.json",
            &serde_json::json!({
                "tokvault_record": 1,
                "kind": "refresh_token",
                "provider": "generic",
                "token_endpoint": format!("{base}/token"),
                "client_id": "generic-client",
                "client_secret": format!("{CANARY}-client-secret-generic"),
                "client_auth": "client_secret_basic",
                "refresh_token": format!("{CANARY}-rt-imported-generic"),
                "scopes": ["offline_access"],
                "account": "alice@example.com",
            })
            .to_string(),
        );
        stocked
            .sandbox
            .run(&["import", "--name", "generic", utf8(&generic)])
            .assert_code(0);
        std::fs::remove_file(&generic).expect("remove the plaintext input");
        stocked
            .sandbox
            .run(&[
                "import",
                "--name",
                "robot",
                "--token-uri",
                &format!("{base}/token"),
                utf8(&service_account_file(&stocked.sandbox)),
            ])
            .assert_code(0);
        stocked.sandbox.run(&["refresh"]).assert_code(0);
        stocked
    }

    /// Imports a google-auth record `name` whose token endpoint is `url`.
    fn import_google(&self, name: &str, url: &str) {
        let file = self.sandbox.write(
            &format!("in/{name}.json"),
            &google_token_json(
                url,
                &format!("{name}-client"),
                &format!("{CANARY}-client-secret-{name}"),
                &format!("{CANARY}-rt-imported-{name}"),
            ),
        );
        self.sandbox
            .run(&["import", "--name", name, utf8(&file)])
            .assert_code(0);
        std::fs::remove_file(&file).expect("remove the plaintext input");
    }
}

/// The age identity in `sandbox`'s identity file.
fn identity_of(sandbox: &Sandbox) -> Identity {
    let text = std::fs::read_to_string(sandbox.identity()).expect("identity file");
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("an age identity");
    Identity::from_str(line).expect("the identity parses")
}

// ---------------------------------------------------------------------
// 1. Single-bit flips and truncations of a real vault.
// ---------------------------------------------------------------------

/// Outcomes of opening damaged files in process.
#[derive(Default)]
struct Tally {
    tried: usize,
    rejected: usize,
    panicked: usize,
    /// Damaged files that opened (positions, for the failure message).
    opened: Vec<usize>,
}

impl Tally {
    fn open(&mut self, at: usize, bytes: &[u8], unlock: &Unlock<'_>) {
        self.tried += 1;
        match catch_unwind(AssertUnwindSafe(|| Vault::open(bytes, unlock).map(drop))) {
            Ok(Err(error)) => {
                assert!(!error.to_string().is_empty(), "an error without a message");
                self.rejected += 1;
            }
            Ok(Ok(())) => self.opened.push(at),
            Err(_) => self.panicked += 1,
        }
    }
}

/// Whether `vault_format::inspect` (all that `tokvault inspect` does with
/// the bytes) panics on `bytes`.
fn inspect_panics(bytes: &[u8]) -> bool {
    catch_unwind(|| vault_format::inspect(bytes).map(drop)).is_err()
}

/// One damaged copy run through a command at process level.
struct Damaged {
    what: String,
    bytes: Vec<u8>,
    /// Open with the passphrase only (an Argon2id run each), not the identity.
    by_passphrase: bool,
}

/// What the processes did with the damaged copies.
#[derive(Default)]
struct Processes {
    runs: usize,
    /// Exit 5 with a `tokvault: error:` line, no stdout, the file unchanged.
    rejected: usize,
    exit_101: usize,
    panicked: usize,
    /// Runs after which the damaged file had changed or a temporary file was left.
    wrote: usize,
    inspect_runs: usize,
    inspect_rejected: usize,
    inspect_panicked: usize,
    failures: Vec<String>,
}

impl Processes {
    fn add(&mut self, other: Self) {
        self.runs += other.runs;
        self.rejected += other.rejected;
        self.exit_101 += other.exit_101;
        self.panicked += other.panicked;
        self.wrote += other.wrote;
        self.inspect_runs += other.inspect_runs;
        self.inspect_rejected += other.inspect_rejected;
        self.inspect_panicked += other.inspect_panicked;
        self.failures.extend(other.failures);
    }
}

/// The commands that open the vault, taken in turn for the damaged copies.
const OPENING: [&[&str]; 5] = [
    &["verify"],
    &["list", "--json"],
    &["token", "gmail"],
    &["refresh", "--force"],
    &["export", "robot"],
];

/// Runs each damaged copy through one opening command (in turn) and
/// `inspect`, on `threads` threads, each with its own copy path.
fn run_damaged(stocked: &Stocked, damaged: &[Damaged], threads: usize) -> Processes {
    let sandbox = &stocked.sandbox;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let dir = sandbox.path(&format!("damaged-{t}"));
                    std::fs::create_dir_all(&dir).expect("mkdir");
                    let path = dir.join("vault.tokvault");
                    let mut seen = Processes::default();
                    for (i, case) in damaged.iter().enumerate().skip(t).step_by(threads) {
                        std::fs::write(&path, &case.bytes).expect("write the damaged copy");
                        let args = OPENING[i % OPENING.len()];
                        let mut command = sandbox.command();
                        command.arg("--vault").arg(&path);
                        if case.by_passphrase {
                            command.arg("--passphrase-file").arg(&stocked.passphrase);
                        } else {
                            command.arg("-i").arg(sandbox.identity());
                        }
                        let run: Run = command.args(args).output().expect("run tokvault").into();
                        seen.runs += 1;
                        let context = format!("{} through `{}`", case.what, args.join(" "));
                        let unchanged =
                            std::fs::read(&path).ok().as_deref() == Some(&case.bytes[..]);
                        if !unchanged || files_named(&dir, ".tmp-") > 0 {
                            seen.wrote += 1;
                            seen.failures
                                .push(format!("{context}: the file was written"));
                        }
                        if run.code == 101 {
                            seen.exit_101 += 1;
                        }
                        if run.stderr.contains("panicked") {
                            seen.panicked += 1;
                        }
                        if run.code == 5
                            && run.stdout.is_empty()
                            && run.stderr.starts_with("tokvault: error: ")
                            && !run.stderr.contains("panicked")
                        {
                            seen.rejected += 1;
                        } else {
                            // stdout is withheld: had the file opened, it
                            // could hold a token.
                            seen.failures.push(format!(
                                "{context}: exit {}, {} bytes on stdout, stderr: {}",
                                run.code,
                                run.stdout.len(),
                                run.stderr.trim()
                            ));
                        }

                        let run: Run = sandbox
                            .command()
                            .arg("--vault")
                            .arg(&path)
                            .args(["inspect", "--json"])
                            .output()
                            .expect("run tokvault inspect")
                            .into();
                        seen.inspect_runs += 1;
                        let panicked = run.code == 101 || run.stderr.contains("panicked");
                        if panicked {
                            seen.inspect_panicked += 1;
                        }
                        // The header alone cannot show damage behind the
                        // MAC: 0 (with the header) or 5 (a clear error).
                        match run.code {
                            0 if !panicked => {}
                            5 if !panicked && run.stderr.starts_with("tokvault: error: ") => {
                                seen.inspect_rejected += 1;
                            }
                            code => seen.failures.push(format!(
                                "{} through inspect: exit {code}, stderr: {}",
                                case.what,
                                run.stderr.trim()
                            )),
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all = Processes::default();
        for worker in workers {
            all.add(worker.join().expect("worker thread"));
        }
        all
    })
}

#[test]
fn every_bit_flip_and_truncation_of_a_real_vault_is_refused_without_a_panic() {
    let rt = runtime();
    let server = token_server(&rt);
    let stocked = Stocked::new(&server.url(""));
    let sandbox = &stocked.sandbox;
    let file = read(&sandbox.vault());
    let identity = identity_of(sandbox);
    let unlock = Unlock::new().identity(&identity);
    let original = Vault::open(&file, &unlock).expect("the real vault opens");
    assert_eq!(original.records().len(), 3);
    assert!(
        original.records().iter().all(|r| r.access_token.is_some()),
        "every record was refreshed"
    );
    let parsed = vault_format::parse(&file).expect("parses");
    assert_eq!(parsed.header.slots.len(), 2, "an age and a passphrase slot");
    let payload_start = file.len() - parsed.payload.len();
    let mac_start = payload_start - 32;
    // The passphrase slot is the last one: it starts where a header with
    // the age slot alone would end.
    let passphrase_slot_start = {
        let mut header: Header = parsed.header.clone();
        header.slots.truncate(1);
        header.to_bytes().len()
    };

    // In process: every bit and every length, opened with the identity;
    // and the header-only parse behind `inspect` on each.
    let started = Instant::now();
    let (mut flips, mut truncations) = (Tally::default(), Tally::default());
    let (mut inspected, mut inspect_panicked) = (0, 0);
    for bit in 0..file.len() * 8 {
        let mut flipped = file.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        flips.open(bit, &flipped, &unlock);
        inspected += 1;
        inspect_panicked += usize::from(inspect_panics(&flipped));
    }
    for len in 0..file.len() {
        truncations.open(len, &file[..len], &unlock);
        inspected += 1;
        inspect_panicked += usize::from(inspect_panics(&file[..len]));
    }
    figure(&format!(
        "tamper-in-process vault_bytes={} records={} slots=age+passphrase flips={} \
         flips_rejected={} flips_opened={} flips_panicked={} truncations={} \
         truncations_rejected={} truncations_opened={} truncations_panicked={} \
         inspect_runs={inspected} inspect_panicked={inspect_panicked} seconds={:.1}",
        file.len(),
        original.records().len(),
        flips.tried,
        flips.rejected,
        flips.opened.len(),
        flips.panicked,
        truncations.tried,
        truncations.rejected,
        truncations.opened.len(),
        truncations.panicked,
        started.elapsed().as_secs_f64()
    ));

    // As processes: a sample (all of it when the counts cover the file),
    // half of the flips in the header and slots, half in the payload, and
    // a few opened by passphrase, half of those in the passphrase slot.
    let mut rng = Rng::from_clock();
    let seed = rng.seed();
    let n_flips = env_count("TOKVAULT_RELIABILITY_FLIPS", 64);
    let n_truncations = env_count("TOKVAULT_RELIABILITY_TRUNCATIONS", 32);
    let n_passphrase = env_count("TOKVAULT_RELIABILITY_PASSPHRASE_FLIPS", 2);
    let flip = |bit: usize, by_passphrase: bool| {
        let mut bytes = file.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        Damaged {
            what: format!("bit {} of byte {}", bit % 8, bit / 8),
            bytes,
            by_passphrase,
        }
    };
    let bits: Vec<usize> = if n_flips >= file.len() * 8 {
        (0..file.len() * 8).collect()
    } else {
        let mut bits = rng.sample(0..payload_start * 8, n_flips / 2);
        bits.extend(rng.sample(payload_start * 8..file.len() * 8, n_flips - n_flips / 2));
        bits
    };
    let header_flips = bits.iter().filter(|&&bit| bit < payload_start * 8).count();
    let mut damaged: Vec<Damaged> = bits.into_iter().map(|bit| flip(bit, false)).collect();
    let process_flips = damaged.len();
    damaged.extend(
        rng.sample(0..file.len(), n_truncations)
            .into_iter()
            .map(|len| Damaged {
                what: format!("truncated to {len} bytes"),
                bytes: file[..len].to_vec(),
                by_passphrase: false,
            }),
    );
    let process_truncations = damaged.len() - process_flips;
    let mut passphrase_bits = rng.sample(
        passphrase_slot_start * 8..mac_start * 8,
        n_passphrase - n_passphrase / 2,
    );
    passphrase_bits.extend(rng.sample(0..file.len() * 8, n_passphrase / 2));
    damaged.extend(passphrase_bits.into_iter().map(|bit| flip(bit, true)));
    let process_passphrase = damaged.len() - process_flips - process_truncations;

    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let seen = run_damaged(&stocked, &damaged, threads);
    figure(&format!(
        "tamper-processes flips={process_flips} header_flips={header_flips} header_bits={} \
         truncations={process_truncations} \
         passphrase_flips={process_passphrase} runs={} rejected_exit_5={} exit_101={} \
         panicked={} file_written={} inspect_runs={} inspect_exit_5={} inspect_panicked={} \
         seconds={:.1} seed={seed:#x}",
        payload_start * 8,
        seen.runs,
        seen.rejected,
        seen.exit_101,
        seen.panicked,
        seen.wrote,
        seen.inspect_runs,
        seen.inspect_rejected,
        seen.inspect_panicked,
        started.elapsed().as_secs_f64()
    ));

    assert!(
        flips.opened.is_empty() && truncations.opened.is_empty(),
        "damaged files opened: flipped bits {:?}, truncated lengths {:?}",
        flips.opened,
        truncations.opened
    );
    assert_eq!(flips.panicked + truncations.panicked + inspect_panicked, 0);
    assert_eq!(flips.rejected, file.len() * 8);
    assert_eq!(truncations.rejected, file.len());
    assert!(
        seen.failures.is_empty(),
        "{} of {} damaged runs misbehaved (seed {seed:#x}):\n{}",
        seen.failures.len(),
        seen.runs + seen.inspect_runs,
        seen.failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(seen.rejected, damaged.len());
    // The untouched vault still opens.
    sandbox.run(&["verify"]).assert_code(0);
}

// ---------------------------------------------------------------------
// 2. Faults at the token endpoint.
// ---------------------------------------------------------------------

/// A loopback listener that does `misbehave` with each connection, on a
/// thread, until dropped.
struct RawServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    fn start(misbehave: fn(TcpStream)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).expect("blocking");
                            stream
                                .set_read_timeout(Some(Duration::from_secs(5)))
                                .expect("read timeout");
                            misbehave(stream);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => return,
                    }
                }
            })
        };
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits for the request, then closes with it unread: Linux answers with a
/// TCP RST ("connection reset by peer").
fn reset(stream: TcpStream) {
    let _ = stream.peek(&mut [0u8; 1]);
}

/// Reads the whole request, then closes without a byte of response.
fn close_silently(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Where a fault's token endpoint lives; kept alive while it is used.
enum Endpoint {
    Scripted(FaultServer),
    Raw(RawServer),
    Refused(u16),
}

impl Endpoint {
    fn url(&self) -> String {
        match self {
            Self::Scripted(server) => server.url("/token"),
            Self::Raw(server) => server.url(),
            Self::Refused(port) => format!("http://127.0.0.1:{port}/token"),
        }
    }
}

fn scripted(rt: &tokio::runtime::Runtime, action: Action) -> Endpoint {
    Endpoint::Scripted(rt.block_on(FaultServer::scripted(vec![action])))
}

fn refused() -> Endpoint {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    Endpoint::Refused(port)
}

fn respond(status: u16, headers: &[(&str, &str)], body: &str) -> Action {
    Action::Respond {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// A sandbox with a vault holding `demo` (refresh token, no access token
/// yet) whose token endpoint is `url`.
pub(crate) fn vault_for(url: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let file = sandbox.write(
        "in/demo.json",
        &google_token_json(url, "fault-client", "fault-secret", "fault-refresh-token"),
    );
    sandbox
        .run(&["import", "--name", "demo", utf8(&file)])
        .assert_code(0);
    sandbox
}

/// Runs `refresh` and `token demo` against a transient fault: both must
/// exit 4 and leave the vault byte-identical. Returns what went wrong.
fn check_transient(what: &str, endpoint: &Endpoint) -> Vec<String> {
    let sandbox = vault_for(&endpoint.url());
    let before = read(&sandbox.vault());
    let mut problems = Vec::new();
    for args in [&["refresh"][..], &["token", "demo"]] {
        let run = sandbox.run(args);
        let command = args.join(" ");
        if run.code != 4 {
            problems.push(format!(
                "{what}: `{command}` exit {} (expected 4), stderr: {}",
                run.code,
                run.stderr.trim()
            ));
        }
        if args[0] == "refresh" && !run.stdout.contains("demo: temporary failure") {
            problems.push(format!("{what}: `{command}` said {:?}", run.stdout));
        }
        if args[0] == "token" && !run.stdout.is_empty() {
            problems.push(format!("{what}: `{command}` printed on stdout"));
        }
        if run.stderr.contains("panicked") {
            problems.push(format!("{what}: `{command}` panicked"));
        }
        if read(&sandbox.vault()) != before {
            problems.push(format!("{what}: the vault changed after `{command}`"));
        }
    }
    if files_named(&sandbox.path("server"), ".tmp-") > 0 {
        problems.push(format!("{what}: a temporary file was left"));
    }
    problems
}

/// The records of `file`, without what a refresh attempt may change:
/// the outcome of the last refresh and the time of the last change.
fn records_without_outcome(file: &[u8], identity: &Identity) -> Vec<Record> {
    let vault = Vault::open(file, &Unlock::new().identity(identity)).expect("the vault opens");
    vault
        .records()
        .iter()
        .cloned()
        .map(|mut record| {
            record.last_refresh = None;
            record.updated_at = 0;
            record
        })
        .collect()
}

/// Runs `refresh` against a permanent failure: it must exit `code`, keep
/// every credential and token as it was, and record `class` as the
/// record's outcome (the one change written, by design).
fn check_permanent(what: &str, endpoint: &Endpoint, code: i32, class: RefreshClass) -> Vec<String> {
    let sandbox = vault_for(&endpoint.url());
    let identity = identity_of(&sandbox);
    let before = read(&sandbox.vault());
    let run = sandbox.run(&["refresh"]);
    let after = read(&sandbox.vault());
    let mut problems = Vec::new();
    if run.code != code {
        problems.push(format!(
            "{what}: `refresh` exit {} (expected {code}), stdout: {} stderr: {}",
            run.code,
            run.stdout.trim(),
            run.stderr.trim()
        ));
    }
    if run.stderr.contains("panicked") {
        problems.push(format!("{what}: `refresh` panicked"));
    }
    // A description that ends a sentence gets no second full stop.
    if run.stdout.contains("..") {
        problems.push(format!("{what}: `refresh` said {:?}", run.stdout.trim()));
    }
    if records_without_outcome(&before, &identity) != records_without_outcome(&after, &identity) {
        problems.push(format!(
            "{what}: a credential, token or other field changed"
        ));
    }
    let vault = Vault::open(&after, &Unlock::new().identity(&identity)).expect("opens");
    let recorded = vault
        .record("demo")
        .and_then(|r| r.last_refresh.as_ref())
        .map(|s| s.class);
    if recorded != Some(class) {
        problems.push(format!(
            "{what}: recorded outcome {recorded:?}, expected {class:?}"
        ));
    }
    if files_named(&sandbox.path("server"), ".tmp-") > 0 {
        problems.push(format!("{what}: a temporary file was left"));
    }
    problems
}

#[test]
fn faults_at_the_token_endpoint_leave_the_vault_byte_identical_or_record_only_the_outcome() {
    let rt = runtime();
    let json = ("Content-Type", "application/json");
    let transient: Vec<(&str, Endpoint)> = vec![
        ("HTTP 500, empty body", scripted(&rt, Action::json(500, ""))),
        (
            "HTTP 503 temporarily_unavailable",
            scripted(
                &rt,
                Action::json(503, r#"{"error":"temporarily_unavailable"}"#),
            ),
        ),
        (
            "HTTP 502 with an HTML body",
            scripted(&rt, respond(502, &[], "<html>bad gateway</html>")),
        ),
        (
            "HTTP 429 with Retry-After: 1 (retried)",
            scripted(&rt, respond(429, &[json, ("Retry-After", "1")], "{}")),
        ),
        (
            "HTTP 429 with Retry-After: 3600 (not waited for)",
            scripted(&rt, respond(429, &[json, ("Retry-After", "3600")], "{}")),
        ),
        (
            "HTTP 400 server_error",
            scripted(&rt, Action::json(400, r#"{"error":"server_error"}"#)),
        ),
        ("HTTP 408", scripted(&rt, Action::json(408, ""))),
        (
            "body cut short (Content-Length 200, 14 bytes sent)",
            scripted(
                &rt,
                Action::Truncate {
                    declared: 200,
                    body: br#"{"access_tok"#.to_vec(),
                },
            ),
        ),
        (
            "connection reset (TCP RST)",
            Endpoint::Raw(RawServer::start(reset)),
        ),
        (
            "connection closed without a response",
            Endpoint::Raw(RawServer::start(close_silently)),
        ),
        ("connection refused", refused()),
    ];
    let permanent: Vec<(&str, Endpoint, i32, RefreshClass)> = vec![
        (
            "invalid_grant",
            scripted(
                &rt,
                Action::json(
                    400,
                    r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
                ),
            ),
            3,
            RefreshClass::ReauthorizationRequired,
        ),
        (
            "invalid_client (HTTP 401)",
            scripted(&rt, Action::json(401, r#"{"error":"invalid_client"}"#)),
            1,
            RefreshClass::Misconfigured,
        ),
        (
            "HTTP 200 with a body that is not JSON",
            scripted(&rt, respond(200, &[], "<html>garbage</html>")),
            1,
            RefreshClass::Misconfigured,
        ),
        (
            "HTTP 200 without access_token",
            scripted(&rt, Action::json(200, r#"{"token_type":"Bearer"}"#)),
            1,
            RefreshClass::Misconfigured,
        ),
        (
            "HTTP 200 with token_type mac",
            scripted(
                &rt,
                Action::json(200, r#"{"access_token":"x","token_type":"mac"}"#),
            ),
            1,
            RefreshClass::Misconfigured,
        ),
        (
            "HTTP 200 with a 1 MiB chunked body",
            scripted(&rt, Action::ChunkedHuge { size: 1 << 20 }),
            1,
            RefreshClass::Misconfigured,
        ),
        (
            "HTTP 302 redirect",
            scripted(
                &rt,
                respond(302, &[("Location", "https://example.invalid/token")], ""),
            ),
            1,
            RefreshClass::Misconfigured,
        ),
        (
            "HTTP 404 HTML page",
            scripted(&rt, respond(404, &[], "<html>not found</html>")),
            1,
            RefreshClass::Misconfigured,
        ),
    ];

    // Each fault in its own sandbox, all at once: most of the time is
    // spent in the retries' backoff.
    let started = Instant::now();
    let (transient_found, permanent_found) = std::thread::scope(|scope| {
        let transient: Vec<_> = transient
            .iter()
            .map(|(what, endpoint)| scope.spawn(move || check_transient(what, endpoint)))
            .collect();
        let permanent: Vec<_> = permanent
            .iter()
            .map(|(what, endpoint, code, class)| {
                scope.spawn(move || check_permanent(what, endpoint, *code, *class))
            })
            .collect();
        let join = |handles: Vec<std::thread::ScopedJoinHandle<'_, Vec<String>>>| {
            handles
                .into_iter()
                .map(|h| h.join().expect("fault thread"))
                .collect::<Vec<_>>()
        };
        (join(transient), join(permanent))
    });
    let identical = transient_found.iter().filter(|f| f.is_empty()).count();
    let kept = permanent_found.iter().filter(|f| f.is_empty()).count();
    let problems: Vec<String> = transient_found
        .into_iter()
        .chain(permanent_found)
        .flatten()
        .collect();
    figure(&format!(
        "faults transient={} transient_vault_byte_identical={identical} permanent={} \
         permanent_only_outcome_recorded={kept} runs={} seconds={:.1}",
        transient.len(),
        permanent.len(),
        2 * transient.len() + permanent.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A token endpoint that never answers: the request times out (30 s),
/// is retried once, and the run gives up at the 60 s retry budget. About
/// a minute, so only `scripts/reliability` runs it (`--include-ignored`).
#[test]
#[ignore = "takes about a minute; scripts/reliability runs it"]
fn a_token_endpoint_that_never_answers_times_out_and_leaves_the_vault_byte_identical() {
    let rt = runtime();
    let endpoint = scripted(&rt, Action::Stall);
    let sandbox = vault_for(&endpoint.url());
    let before = read(&sandbox.vault());
    let started = Instant::now();
    let run = sandbox.run(&["refresh"]);
    let elapsed = started.elapsed();
    let identical = read(&sandbox.vault()) == before;
    figure(&format!(
        "faults-timeout tried=1 exit={} vault_byte_identical={} seconds={:.1}",
        run.code,
        usize::from(identical),
        elapsed.as_secs_f64()
    ));
    run.assert_code(4);
    assert!(
        run.stdout.contains("timed out"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(identical, "the vault file is byte-identical");
    assert!(elapsed < Duration::from_secs(100), "gave up in {elapsed:?}");
}

// ---------------------------------------------------------------------
// 3. Canary secrets in logs.
// ---------------------------------------------------------------------

/// Where the canary test files what the commands printed: `logs/` (must
/// hold no canary), `intended/` (stdout of `token`, `header`, `export` and
/// an `exec` child that prints its token, which show a secret by design),
/// and `patterns.txt` (the secrets to look for, one a line).
struct Logbook {
    dir: PathBuf,
    runs: usize,
    index: String,
}

impl Logbook {
    fn new(dir: PathBuf) -> Self {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("clear the canary directory");
        }
        for sub in ["logs", "intended"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        Self {
            dir,
            runs: 0,
            index: String::new(),
        }
    }

    fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn intended(&self) -> PathBuf {
        self.dir.join("intended")
    }

    /// Runs `command` (`label` for the index), expects exit `code`, and
    /// files its stdout (under `intended/` when it shows a secret by
    /// design) and stderr.
    fn run(&mut self, mut command: Command, label: &str, code: i32, intended: bool) -> Run {
        let run: Run = command.output().expect("run tokvault").into();
        let n = self.runs;
        self.runs += 1;
        let stdout_dir = if intended {
            self.intended()
        } else {
            self.logs()
        };
        std::fs::write(stdout_dir.join(format!("{n:04}.stdout")), &run.stdout).expect("write");
        std::fs::write(self.logs().join(format!("{n:04}.stderr")), &run.stderr).expect("write");
        self.index.push_str(&format!(
            "{n:04} exit={} {}{label}\n",
            run.code,
            if intended { "[stdout intended] " } else { "" }
        ));
        assert_eq!(run.code, code, "run {n}: {label}\nstderr: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "run {n}: {label}");
        run
    }
}

/// Occurrences of any of `patterns` in the files under `dir`, and the
/// files and bytes looked at; `found` gets `file: pattern number` for each.
fn count_patterns(
    dir: &Path,
    patterns: &[String],
    found: &mut Vec<String>,
) -> (usize, usize, usize) {
    let (mut hits, mut files, mut bytes) = (0, 0, 0);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            let (h, f, b) = count_patterns(&path, patterns, found);
            (hits, files, bytes) = (hits + h, files + f, bytes + b);
            continue;
        }
        let contents = std::fs::read(&path).expect("read");
        files += 1;
        bytes += contents.len();
        for (i, pattern) in patterns.iter().enumerate() {
            let n = contents
                .windows(pattern.len())
                .filter(|w| *w == pattern.as_bytes())
                .count();
            if n > 0 {
                hits += n;
                found.push(format!("{}: pattern {i} x{n}", path.display()));
            }
        }
    }
    (hits, files, bytes)
}

/// Copies every file under `from` into `to` (flattened names).
fn copy_tree(from: &Path, to: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if path.is_dir() {
            copy_tree(&path, to, &format!("{name}_"));
        } else {
            std::fs::copy(&path, to.join(name)).expect("copy");
        }
    }
}

#[test]
fn no_command_at_any_log_level_or_format_shows_a_canary_secret() {
    let rt = runtime();
    let server = token_server(&rt);
    let base = server.url("");
    let stocked = Stocked::new(&base);
    for (name, path) in [
        ("revoked", "/revoked"),
        ("down", "/down"),
        ("garbage", "/garbage"),
    ] {
        stocked.import_google(name, &format!("{base}{path}"));
    }
    let sandbox = &stocked.sandbox;
    let dir = std::env::var_os("TOKVAULT_RELIABILITY_CANARY_DIR")
        .map_or_else(|| sandbox.path("canary"), PathBuf::from);
    let mut book = Logbook::new(dir);

    // The secrets: everything with the canary marker, any age secret key,
    // and the service account's private key.
    let key: serde_json::Value =
        serde_json::from_slice(&read(&service_account_fixture())).expect("fixture JSON");
    let pem = key["private_key"].as_str().expect("private_key");
    let patterns: Vec<String> = vec![
        CANARY.to_owned(),
        "AGE-SECRET-KEY-1".to_owned(),
        "BEGIN PRIVATE KEY".to_owned(),
        pem.lines().nth(1).expect("a PEM body line").to_owned(),
        pem.lines().nth(10).expect("a PEM body line").to_owned(),
    ];
    std::fs::write(book.dir.join("patterns.txt"), patterns.join("\n") + "\n").expect("write");

    let client_secret = private_file(
        sandbox,
        "laptop/client-secret",
        &format!("{CANARY}-client-secret-device"),
    );
    let (logs, intended) = (book.logs(), book.intended());
    let metrics = logs.join("metrics.prom");
    let identity = sandbox.identity();
    let vault = sandbox.vault();
    let passphrase = stocked.passphrase.clone();
    let other = sandbox.path("server/keys/other.txt");
    let other_recipient = sandbox.run_bare(&["keygen", "-o", utf8(&other)]);
    other_recipient.assert_code(0);
    let other_recipient = other_recipient.stdout.trim().to_owned();

    let started = Instant::now();
    let mut combos = 0;
    for format in ["text", "json"] {
        for verbosity in ["-q", "", "-v", "-vv", "-vvv"] {
            combos += 1;
            let c = format!("{format}{verbosity}");
            let most = verbosity == "-vvv";
            // `tokvault --log-format F [-v…]`, and with the vault and the
            // identity, or the passphrase only.
            let bare = || {
                let mut command = sandbox.command();
                command.args(["--log-format", format]);
                if !verbosity.is_empty() {
                    command.arg(verbosity);
                }
                command
            };
            let keyed = || {
                let mut command = bare();
                command.arg("--vault").arg(&vault).arg("-i").arg(&identity);
                command
            };
            let by_passphrase = || {
                let mut command = bare();
                command
                    .arg("--vault")
                    .arg(&vault)
                    .arg("--passphrase-file")
                    .arg(&passphrase);
                command
            };
            let with = |mut command: Command, args: &[&str]| {
                command.args(args);
                command
            };
            let mut tv = |command: Command, args: &[&str], code: i32, intended: bool| {
                let label = format!("[{c}] {}", args.join(" "));
                book.run(with(command, args), &label, code, intended)
            };

            // Keys and vaults.
            let key_path = sandbox.path(&format!("server/keys/{c}.txt"));
            let recipient = tv(bare(), &["keygen", "-o", utf8(&key_path)], 0, false);
            let extra = sandbox.path(&format!("server/extra-{c}.tokvault"));
            tv(
                bare(),
                &[
                    "--vault",
                    utf8(&extra),
                    "init",
                    "-r",
                    recipient.stdout.trim(),
                ],
                0,
                false,
            );

            // Ways in: google-auth JSON, a service account, a sealed vault,
            // a device login (and --again).
            let google = sandbox.write(
                &format!("in/{c}.json"),
                &google_token_json(
                    &format!("{base}/token"),
                    "gmail-client",
                    &format!("{CANARY}-client-secret-{c}"),
                    &format!("{CANARY}-rt-imported-{c}"),
                ),
            );
            let name = format!("gmail-{c}");
            tv(
                keyed(),
                &["import", "--name", &name, utf8(&google)],
                0,
                false,
            );
            let robot = format!("robot-{c}");
            let token_url = format!("{base}/token");
            tv(
                keyed(),
                &[
                    "import",
                    "--name",
                    &robot,
                    "--token-uri",
                    &token_url,
                    utf8(&service_account_file(sandbox)),
                ],
                0,
                false,
            );
            let sealed = sandbox.path(&format!("laptop/sealed-{c}.tokvault"));
            tv(
                bare(),
                &[
                    "seal",
                    "--name",
                    "sealed",
                    "-r",
                    &stocked.recipient,
                    "-o",
                    utf8(&sealed),
                    utf8(&google),
                ],
                0,
                false,
            );
            tv(keyed(), &["import", "--replace", utf8(&sealed)], 0, false);
            let device = format!("device-{c}");
            let device_url = format!("{base}/device");
            tv(
                keyed(),
                &[
                    "login",
                    &device,
                    "--provider",
                    "generic",
                    "--device-url",
                    &device_url,
                    "--token-url",
                    &token_url,
                    "--client-id",
                    "device-client",
                    "--client-secret-file",
                    utf8(&client_secret),
                    "--scope",
                    "offline_access",
                    "--device",
                ],
                0,
                false,
            );
            if most {
                tv(
                    keyed(),
                    &[
                        "login",
                        &device,
                        "--again",
                        "--device",
                        "--device-url",
                        &device_url,
                    ],
                    0,
                    false,
                );
            }

            // Reading.
            tv(keyed(), &["list"], 0, false);
            tv(
                keyed(),
                &["list", "--json", "--warn-refresh-age", "0s"],
                0,
                false,
            );
            tv(bare(), &["--vault", utf8(&vault), "inspect"], 0, false);
            tv(
                bare(),
                &["--vault", utf8(&vault), "inspect", "--json"],
                0,
                false,
            );
            tv(keyed(), &["verify"], 0, false);
            if most {
                tv(by_passphrase(), &["verify"], 0, false);
            }

            // Refreshing: ok, rotated, service account, revoked (3 wins),
            // down (4), garbage (1); the hook's environment is logged.
            let hook = format!("env > '{}'", utf8(&logs.join(format!("hook-{c}.env"))));
            let metrics_arg = format!("--metrics-file={}", utf8(&metrics));
            tv(
                keyed(),
                &[
                    "refresh",
                    "--force",
                    &metrics_arg,
                    "--on-reauth-needed",
                    &hook,
                ],
                3,
                false,
            );
            tv(
                keyed(),
                &["refresh", "gmail", "--force", "--json"],
                0,
                false,
            );
            tv(
                keyed(),
                &["refresh", "revoked", "--reauthorize", &metrics_arg],
                3,
                false,
            );
            tv(keyed(), &["refresh", "down", "--force", "--json"], 4, false);
            tv(keyed(), &["refresh", "garbage", "--force"], 1, false);

            // Using tokens: stdout shows one by design.
            tv(keyed(), &["token", "gmail"], 0, true);
            tv(keyed(), &["token", "gmail", "--min-valid", "2h"], 0, true);
            tv(keyed(), &["token", &robot, "--min-valid", "2h"], 0, true);
            tv(
                keyed(),
                &["header", "generic", "--min-valid", "2h"],
                0,
                true,
            );
            tv(keyed(), &["token", "down", "--min-valid", "2h"], 4, false);
            tv(
                keyed(),
                &["token", "revoked", "--min-valid", "2h"],
                3,
                false,
            );
            tv(keyed(), &["exec", "gmail", "--", "true"], 0, false);
            tv(
                keyed(),
                &[
                    "exec",
                    &device,
                    "--",
                    "sh",
                    "-c",
                    r#"printf '%s\n' "$TOKVAULT_ACCESS_TOKEN""#,
                ],
                0,
                true,
            );

            // Plaintext export: stdout and the -o file by design.
            tv(keyed(), &["export", "gmail"], 0, true);
            tv(keyed(), &["export", &robot, "--format", "json"], 0, true);
            let exported = intended.join(format!("export-{c}.json"));
            tv(
                keyed(),
                &[
                    "export",
                    "generic",
                    "--format",
                    "google",
                    "-o",
                    utf8(&exported),
                ],
                0,
                false,
            );

            // Changing: rekey (keeping the passphrase slot), remove.
            if most {
                tv(
                    by_passphrase(),
                    &["-i", utf8(&identity), "rekey", "-r", &other_recipient],
                    0,
                    false,
                );
                tv(
                    by_passphrase(),
                    &[
                        "-i",
                        utf8(&identity),
                        "rekey",
                        "--remove-recipient",
                        &other_recipient,
                    ],
                    0,
                    false,
                );
            }
            for record in [&name, &robot, &device] {
                tv(keyed(), &["remove", record], 0, false);
            }

            // Failing: unknown record, wrong identity, missing vault.
            tv(keyed(), &["token", "nosuch"], 1, false);
            tv(
                bare(),
                &["--vault", utf8(&vault), "-i", utf8(&other), "verify"],
                5,
                false,
            );
            let missing = sandbox.path("server/missing.tokvault");
            tv(bare(), &["--vault", utf8(&missing), "list"], 1, false);
            std::fs::remove_file(&google).expect("remove the plaintext input");
        }
    }
    // What the commands left in files: the state directory (rollback pins,
    // refresh health), the metrics file (already in logs/), and the vault
    // files themselves (encrypted: no canary in the clear).
    copy_tree(&sandbox.path("state"), &book.logs().join("state"), "");
    let files = book.logs().join("files");
    copy_tree(&sandbox.path("server"), &files, "server_");
    copy_tree(&sandbox.path("laptop"), &files, "laptop_");
    for private in [
        "server_identity.txt",
        "server_passphrase",
        "laptop_client-secret",
    ] {
        std::fs::remove_file(files.join(private)).expect("not a log: a key or secret file");
    }
    for entry in std::fs::read_dir(&files)
        .expect("files")
        .filter_map(Result::ok)
    {
        // Other identities (keygen's output) are key files, not logs.
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("server_keys_")
        {
            std::fs::remove_file(entry.path()).expect("remove");
        }
    }
    std::fs::write(book.dir.join("index.txt"), &book.index).expect("write the index");

    let mut found = Vec::new();
    let (hits, log_files, log_bytes) = count_patterns(&book.logs(), &patterns, &mut found);
    let mut intended_found = Vec::new();
    let (intended_hits, intended_files, _) =
        count_patterns(&book.intended(), &patterns, &mut intended_found);
    figure(&format!(
        "canary runs={} combos={combos} log_files={log_files} log_bytes={log_bytes} \
         log_canaries={hits} intended_files={intended_files} intended_canaries={intended_hits} \
         patterns={} seconds={:.1}",
        book.runs,
        patterns.len(),
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(hits, 0, "secrets in the logs:\n{}", found.join("\n"));
    // The search finds what is there: the intended outputs hold the tokens.
    assert!(
        intended_hits >= book.index.matches("[stdout intended]").count(),
        "the canaries were not found where they are printed by design: {intended_found:?}"
    );
}
