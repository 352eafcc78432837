//! A vault in an S3 bucket (`--vault s3://BUCKET/KEY`), against a real
//! Ceph radosgw and moto: every command works, several hosts share one
//! grant with rotation on and no replay, a dead holder's lease is taken
//! over after its TTL, a holder without enough lease left sends nothing,
//! and a store that ignores conditional writes is refused.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Run, Sandbox};
use crate::e2e::{assert_no_replay_or_error, assert_secret_code, server_stats, stat, utf8};
use crate::peers::{OidcProvider, POST_CLIENT};
use tokvault_test_support::s3::S3Server;

/// `s3_bucket.py put`: stores `bytes` at `key`, unconditionally.
fn put_object(server: &S3Server, bucket: &str, key: &str, bytes: &[u8]) {
    let mut child = server
        .s3_bucket_py("put", bucket)
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run s3_bucket.py");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), bytes).expect("write");
    assert!(child.wait().expect("wait").success(), "put {key}");
}

/// `s3_bucket.py get`: the object at `key`.
fn get_object(server: &S3Server, bucket: &str, key: &str) -> Vec<u8> {
    let output = server
        .s3_bucket_py("get", bucket)
        .arg(key)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run s3_bucket.py");
    assert!(output.status.success(), "get {key}");
    output.stdout
}

/// One host: a sandbox (its own HOME, state dir and identity) whose
/// tokvault reaches `server` for `url`.
struct Host<'a> {
    sandbox: Sandbox,
    server: &'a S3Server,
    url: String,
    /// The recipient of its identity, when it made one.
    recipient: String,
}

impl<'a> Host<'a> {
    fn new(server: &'a S3Server, url: &str, identity: Option<&Sandbox>) -> Self {
        let sandbox = Sandbox::new();
        let recipient = match identity {
            // Another host of the same deployment: the same identity.
            Some(first) => {
                std::fs::create_dir_all(sandbox.path("server")).expect("server dir");
                std::fs::copy(first.identity(), sandbox.identity()).expect("copy identity");
                String::new()
            }
            None => sandbox.keygen(),
        };
        Self {
            sandbox,
            server,
            url: url.to_owned(),
            recipient,
        }
    }

    /// The bucket of its vault's URL.
    fn bucket(&self) -> &str {
        self.url
            .trim_start_matches("s3://")
            .split('/')
            .next()
            .expect("bucket")
    }

    fn command(&self) -> Command {
        let mut command = self.sandbox.command();
        command
            .env("AWS_ENDPOINT_URL", &self.server.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.server.secret_key)
            .env("AWS_REGION", &self.server.region)
            .arg("--vault")
            .arg(&self.url)
            .arg("-i")
            .arg(self.sandbox.identity());
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .output()
            .expect("run tokvault")
            .into()
    }
}

/// A vault in a fresh bucket of `server` with one record, `demo`, minted
/// at `provider`.
fn vault_with_record<'a>(
    server: &'a S3Server,
    provider: &OidcProvider,
    rt: &tokio::runtime::Runtime,
) -> Host<'a> {
    vault_with_record_at(server, provider, rt, &provider.token_endpoint)
}

/// [`vault_with_record`] whose record's token endpoint is `token_uri` (a
/// proxy in front of the provider).
fn vault_with_record_at<'a>(
    server: &'a S3Server,
    provider: &OidcProvider,
    rt: &tokio::runtime::Runtime,
    token_uri: &str,
) -> Host<'a> {
    let bucket = server.unique_bucket("vault");
    let host = Host::new(server, &format!("s3://{bucket}/team/vault.tokvault"), None);
    host.run(&["init", "-r", &host.recipient]).assert_code(0);
    let minted = rt.block_on(provider.mint(POST_CLIENT.0, "offline_access", 1));
    let file = host.sandbox.write(
        "in/demo.json",
        &crate::common::google_token_json(token_uri, POST_CLIENT.0, POST_CLIENT.1, &minted[0]),
    );
    host.run(&["import", "--name", "demo", utf8(&file)])
        .assert_code(0);
    host
}

fn every_command_works(server: &S3Server) {
    let Some(provider) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = crate::e2e::runtime();
    let host = vault_with_record(server, &provider, &rt);
    let run = host.run(&["list", "--json"]);
    run.assert_code(0);
    assert!(run.stdout.contains("\"demo\""), "{}", run.stdout);
    let run = host.run(&["token", "demo"]);
    assert_secret_code(&run, 0);
    let token = run.stdout.trim().to_owned();
    assert!(rt.block_on(provider.is_active(crate::peers::BASIC_CLIENT, &token)));
    // Valid now: the same token, no refresh.
    let again = host.run(&["token", "demo"]);
    assert_secret_code(&again, 0);
    assert_eq!(again.stdout.trim(), token);
    host.run(&["refresh", "--force"]).assert_code(0);
    host.run(&["verify"]).assert_code(0);
    let run = host.run(&["inspect"]);
    run.assert_code(0);
    assert!(run.stdout.contains("pin:         agrees"), "{}", run.stdout);
    host.run(&["remove", "demo"]).assert_code(0);
    let run = host.run(&["token", "demo"]);
    assert_ne!(run.code, 0);
    let stats = server_stats(&rt, &provider);
    assert_no_replay_or_error(&stats);
    assert_eq!(stat(&stats, "refreshes_ok"), 2, "{stats}");
}

#[test]
fn every_command_works_on_a_vault_in_ceph() {
    if let Some(server) = S3Server::ceph() {
        every_command_works(&server);
    }
}

#[test]
fn every_command_works_on_a_vault_in_moto() {
    if let Some(server) = S3Server::moto() {
        every_command_works(&server);
    }
}

/// Three hosts (own HOME, state and pins; one identity) force refreshes
/// of one grant at the same time and ask for its tokens, with 2-second
/// access tokens and rotation on: no call fails and the provider sees no
/// replay.
#[test]
fn three_hosts_share_one_grant_without_a_replay() {
    let Some(server) = S3Server::ceph() else {
        return;
    };
    let Some(provider) = OidcProvider::start(true, 2) else {
        return;
    };
    let rt = crate::e2e::runtime();
    let first = vault_with_record(&server, &provider, &rt);
    let others: Vec<Host<'_>> = (0..2)
        .map(|_| Host::new(&server, &first.url, Some(&first.sandbox)))
        .collect();
    let hosts: Vec<&Host<'_>> = std::iter::once(&first).chain(others.iter()).collect();
    let rounds = crate::common::env_count("TOKVAULT_S3_HOST_ROUNDS", 20);
    std::thread::scope(|scope| {
        for host in &hosts {
            scope.spawn(move || {
                for round in 0..rounds {
                    // Forced refreshes race for the lease; the tokens
                    // between them mostly read.
                    let args: &[&str] = if round % 2 == 0 {
                        &["refresh", "--force", "demo"]
                    } else {
                        &["token", "demo", "--min-valid", "1s"]
                    };
                    let run = host.run(args);
                    assert_secret_code(&run, 0);
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    let stats = server_stats(&rt, &provider);
    crate::common::figure(&format!(
        "s3-hosts hosts=3 calls={} refreshes={} replays={}",
        3 * rounds,
        stat(&stats, "refreshes_ok"),
        stat(&stats, "replays_detected")
    ));
    assert_no_replay_or_error(&stats);
    assert!(stat(&stats, "refreshes_ok") >= 2, "{stats}");
}

/// A lease left by a host that died is taken over once it has stayed the
/// same for its TTL plus the margin; before that, writers wait.
#[test]
fn a_dead_holders_lease_is_taken_over_after_its_ttl() {
    let Some(server) = S3Server::moto() else {
        return;
    };
    let Some(provider) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = crate::e2e::runtime();
    let host = vault_with_record(&server, &provider, &rt);
    let bucket = host.bucket();
    put_object(
        &server,
        bucket,
        "team/vault.tokvault.lease",
        br#"{"writer":"dead","host":"gone","pid":1,"acquired_at":0,"ttl_ms":2000,"released":false}"#,
    );
    let busy = host.run(&["--lock-timeout", "1s", "refresh", "--force"]);
    busy.assert_code(4);
    assert!(busy.stderr.contains("s3://"), "{}", busy.stderr);
    let started = Instant::now();
    let run = host.run(&["--lock-timeout", "30s", "refresh", "--force"]);
    run.assert_code(0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "took over after {waited:?}, before the TTL"
    );
    assert!(
        run.stderr.contains("taking over the lease"),
        "{}",
        run.stderr
    );
    assert_no_replay_or_error(&server_stats(&rt, &provider));
}

/// A lease shorter than a token request's timeout plus the margin: the
/// holder sends nothing and says so (exit 4); the grant is untouched.
#[test]
fn a_holder_without_enough_lease_left_sends_nothing() {
    let Some(server) = S3Server::moto() else {
        return;
    };
    let Some(provider) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = crate::e2e::runtime();
    let host = vault_with_record(&server, &provider, &rt);
    let before = stat(&server_stats(&rt, &provider), "token_requests");
    let run = host.run(&["--lease-ttl", "5s", "refresh", "--force"]);
    run.assert_code(4);
    assert_eq!(
        stat(&server_stats(&rt, &provider), "token_requests"),
        before,
        "a request went out without enough lease left"
    );
    host.run(&["refresh", "--force"]).assert_code(0);
    assert_no_replay_or_error(&server_stats(&rt, &provider));
}

/// s3rver answers 200 to a second create-only PUT: refused before anything
/// is written.
#[test]
fn a_store_that_ignores_conditional_writes_is_refused() {
    let Some(server) = S3Server::s3rver() else {
        return;
    };
    let bucket = server.unique_bucket("ignores");
    let host = Host::new(&server, &format!("s3://{bucket}/vault.tokvault"), None);
    let run = host.run(&["init", "-r", &host.recipient]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("does not honour conditional writes"),
        "{}",
        run.stderr
    );
    let run = host.run(&["list"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no vault"), "{}", run.stderr);
}

/// An older copy of the object put back (a replayed backup) or a tampered
/// one is refused with exit 5, as such a file is.
#[test]
fn a_rolled_back_object_is_refused() {
    let Some(server) = S3Server::moto() else {
        return;
    };
    let Some(provider) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = crate::e2e::runtime();
    let host = vault_with_record(&server, &provider, &rt);
    let bucket = host.bucket();
    let old = get_object(&server, bucket, "team/vault.tokvault");
    host.run(&["refresh", "--force"]).assert_code(0);
    let current = get_object(&server, bucket, "team/vault.tokvault");
    put_object(&server, bucket, "team/vault.tokvault", &old);
    let run = host.run(&["list"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("older than generation"),
        "{}",
        run.stderr
    );
    // A tampered object (its last byte flipped) is refused too.
    let mut tampered = current;
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    put_object(&server, bucket, "team/vault.tokvault", &tampered);
    host.run(&["list"]).assert_code(5);
}

/// Configuration the environment gets wrong is exit 1 with what to set;
/// a malformed `--vault` is a usage error (2); an unreachable store is a
/// temporary failure (4); wrong keys and a missing bucket say so (1). No
/// vault is written in any of them.
#[test]
fn bad_settings_and_unreachable_stores_fail_clearly() {
    let sandbox = Sandbox::new();
    let run: Run = sandbox
        .command()
        .args(["--vault", "s3://bucket/vault.tokvault", "list"])
        .output()
        .expect("run")
        .into();
    run.assert_code(1);
    assert!(run.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", run.stderr);
    let with_keys = |endpoint: &str, secret: &str, url: &str, args: &[&str]| -> Run {
        sandbox
            .command()
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "tokvault-test")
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .args(["--vault", url])
            .args(args)
            .output()
            .expect("run")
            .into()
    };
    let run = with_keys("http://s3.example.com", "s", "s3://bucket/v", &["list"]);
    run.assert_code(1);
    assert!(run.stderr.contains("must use https"), "{}", run.stderr);
    let run = sandbox.run_bare(&["--vault", "s3://Bucket/", "list"]);
    run.assert_code(2);
    assert!(run.stderr.contains("s3://BUCKET/KEY"), "{}", run.stderr);
    // Nothing listens on port 1: retried, then a temporary failure.
    let run = with_keys("http://127.0.0.1:1", "s", "s3://bucket/v", &["list"]);
    run.assert_code(4);
    assert!(run.stderr.contains("s3://bucket/v"), "{}", run.stderr);
    let Some(server) = S3Server::ceph() else {
        return;
    };
    let bucket = server.unique_bucket("settings");
    let url = format!("s3://{bucket}/vault.tokvault");
    let run = with_keys(&server.endpoint, "wrong-secret", &url, &["list"]);
    run.assert_code(1);
    let recipient = sandbox.keygen();
    let url = format!("s3://no-such-bucket-{bucket}/vault.tokvault");
    let run = with_keys(
        &server.endpoint,
        &server.secret_key,
        &url,
        &["init", "-r", &recipient],
    );
    run.assert_code(1);
    assert!(run.stderr.contains("no-such-bucket"), "{}", run.stderr);
}

/// A holder killed with SIGKILL while its token request is out: another
/// host goes on once the lease has expired, the vault still opens, and the
/// loss is at most that one rotation (the provider may have rotated the
/// token the dead host never saved: then the other host's refresh is
/// rejected, exit 3, and a person logs in again).
#[test]
fn a_holder_killed_mid_refresh_stops_nobody_for_longer_than_its_lease() {
    let Some(server) = S3Server::moto() else {
        return;
    };
    let Some(provider) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = crate::e2e::runtime();
    let upstream = provider.token_endpoint.clone();
    let slow = rt.block_on(crate::fault_server::FaultServer::with(move |_| {
        crate::fault_server::Action::Delayed(
            Duration::from_secs(2),
            Box::new(crate::fault_server::Action::Forward {
                url: upstream.clone(),
                rewrite: str::to_owned,
            }),
        )
    }));
    let a = vault_with_record_at(&server, &provider, &rt, &slow.url("/token"));
    let b = Host::new(&server, &a.url, Some(&a.sandbox));
    let mut holder = a
        .command()
        .args(["--lease-ttl", "20s", "refresh", "--force"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.requests().is_empty() {
        assert!(Instant::now() < deadline, "no token request was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.kill().expect("SIGKILL");
    let _ = holder.wait();
    let started = Instant::now();
    let run = b.run(&["--lock-timeout", "60s", "refresh", "--force"]);
    let waited = started.elapsed();
    assert!(
        run.code == 0 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    assert!(
        waited >= Duration::from_secs(18),
        "went on after {waited:?}, before the dead holder's lease expired"
    );
    b.run(&["list"]).assert_code(0);
    let stats = server_stats(&rt, &provider);
    crate::common::figure(&format!(
        "s3-sigkill waited_s={} exit={} replays={} grants_revoked={}",
        waited.as_secs(),
        run.code,
        stat(&stats, "replays_detected"),
        stat(&stats, "grants_revoked")
    ));
    assert!(stat(&stats, "grants_revoked") <= 1, "{stats}");
}
