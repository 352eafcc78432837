//! S3-compatible servers on loopback for the S3 vault-store tests:
//!
//! * [`S3Server::ceph`]: a real server, Ceph radosgw, started once by
//!   `scripts/test` (`scripts/ceph-rgw start`, exported as
//!   `TOKVAULT_TEST_S3_ENDPOINT`, `TOKVAULT_TEST_S3_ACCESS_KEY` and
//!   `TOKVAULT_TEST_S3_SECRET_KEY`) and shared by all tests;
//! * [`S3Server::moto`]: moto's S3 emulator (AWS-faithful conditional writes,
//!   404 for `If-Match` on a missing key, conditional DELETE), one per test;
//! * [`S3Server::s3rver`]: s3rver, which *ignores* `If-None-Match` and
//!   `If-Match`: the store tokvault must refuse to share a vault on.
//!
//! Buckets are made with boto3 (`tests/python/s3_bucket.py`, run by
//! `TOKVAULT_TEST_PYTHON`), so every constructor also needs that peer. Like
//! [`peer`], a constructor returns `None` (the test skips) when a peer is not
//! set up, and panics instead when `CI` is set.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::peers::{peer, repo_root};

/// The region every test server is addressed with.
pub const REGION: &str = "us-east-1";

/// The credentials s3rver accepts (its built-in dummy account).
pub const S3RVER_KEY: (&str, &str) = ("S3RVER", "S3RVER");

/// Credentials for moto, which accepts any.
pub const MOTO_KEY: (&str, &str) = ("tokvault-moto", "tokvault-moto-secret");

/// How long a spawned server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// An S3-compatible server on loopback. A server this process spawned
/// (moto, s3rver) is killed on drop; the shared Ceph one is not.
pub struct S3Server {
    /// Base URL, `http://127.0.0.1:PORT` (path-style addressing).
    pub endpoint: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Region to sign with ([`REGION`]).
    pub region: String,
    child: Option<Child>,
    python: PathBuf,
    /// s3rver's data directory, removed on drop.
    scratch: Option<PathBuf>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A missing piece of a peer that the environment variables name: fatal
/// under CI, else the test skips with a message (as [`peer`] does).
#[allow(clippy::print_stderr)] // a skipped test says why
fn missing(what: &str) -> Option<std::convert::Infallible> {
    if std::env::var_os("CI").is_some() {
        panic!("{what}, and CI is set: run the tests through scripts/test");
    }
    eprintln!("skipping: {what}; run scripts/test to set it up");
    None
}

/// Whether an HTTP server answers at `endpoint` (`http://host:port`), with
/// any status.
pub fn answers(endpoint: &str) -> bool {
    let Some(authority) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let authority = authority.trim_end_matches('/');
    let Ok(address) = authority.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("HEAD / HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// Reads a child's `output` line by line until one contains `marker`, and
/// returns what follows the marker on that line; a thread keeps draining
/// the rest so that the child never blocks on a full pipe. Panics when the
/// child exits first or stays silent for [`START_TIMEOUT`].
fn read_until<R: Read + Send + 'static>(output: R, marker: &str, child: &mut Child) -> String {
    let (found, wait) = std::sync::mpsc::channel();
    let marker = marker.to_owned();
    std::thread::spawn(move || {
        let verbose = std::env::var_os("TOKVAULT_TEST_VERBOSE").is_some();
        let mut reader = BufReader::new(output);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Some(index) = line.find(&marker) {
                        let _ = found.send(line[index + marker.len()..].trim().to_owned());
                        break;
                    }
                    if verbose {
                        #[allow(clippy::print_stderr)] // asked for
                        {
                            eprint!("{line}");
                        }
                    }
                }
            }
        }
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    match wait.recv_timeout(START_TIMEOUT) {
        Ok(rest) => rest,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait().ok();
            panic!(
                "the server exited before it listened ({status:?}; set TOKVAULT_TEST_VERBOSE=1 to see why)"
            )
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not say where it listens within {START_TIMEOUT:?}")
        }
    }
}

/// Waits until `endpoint` answers, or panics after [`START_TIMEOUT`].
fn wait_until_answers(endpoint: &str, child: &mut Child) {
    let start = Instant::now();
    while !answers(endpoint) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the S3 server at {endpoint} exited: {status}");
        }
        assert!(
            start.elapsed() < START_TIMEOUT,
            "the S3 server at {endpoint} does not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The venv's python, or `None` (skip) when it is not set up.
fn python() -> Option<PathBuf> {
    peer(
        "TOKVAULT_TEST_PYTHON",
        "the Python test venv (boto3 makes the S3 test buckets)",
    )
}

/// Where the log output of a spawned server goes.
fn server_log() -> Stdio {
    if std::env::var_os("TOKVAULT_TEST_VERBOSE").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

impl S3Server {
    /// The shared Ceph radosgw that `scripts/test` started (see
    /// `scripts/ceph-rgw`), or `None` when it is not set up.
    pub fn ceph() -> Option<Self> {
        let endpoint = peer("TOKVAULT_TEST_S3_ENDPOINT", "the Ceph radosgw test peer")?;
        let access_key = peer("TOKVAULT_TEST_S3_ACCESS_KEY", "the Ceph radosgw test peer")?;
        let secret_key = peer("TOKVAULT_TEST_S3_SECRET_KEY", "the Ceph radosgw test peer")?;
        let python = python()?;
        let endpoint = endpoint.to_string_lossy().trim_end_matches('/').to_owned();
        assert!(
            answers(&endpoint),
            "TOKVAULT_TEST_S3_ENDPOINT={endpoint} does not answer: run scripts/ceph-rgw start"
        );
        Some(Self {
            endpoint,
            access_key: access_key.to_string_lossy().into_owned(),
            secret_key: secret_key.to_string_lossy().into_owned(),
            region: REGION.to_owned(),
            child: None,
            python,
            scratch: None,
        })
    }

    /// A fresh moto S3 emulator (`moto_server` from the Python test venv) on
    /// a free loopback port, or `None` when the venv is not set up.
    pub fn moto() -> Option<Self> {
        let python = python()?;
        // The venv is the parent of the directory holding its python.
        let bin = python.parent().unwrap_or(Path::new("."));
        let moto_server = bin.join("moto_server");
        if !moto_server.is_file() {
            missing(&format!(
                "{} is missing (an older target/test-venv?)",
                moto_server.display()
            ))?;
        }
        // Port 0: the kernel picks a free port, which werkzeug then prints.
        let mut child = Command::new(&moto_server)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(server_log())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", moto_server.display()));
        let stderr: ChildStderr = child.stderr.take().expect("piped stderr");
        let url = read_until(stderr, "Running on ", &mut child);
        let endpoint = url.trim_end_matches('/').to_owned();
        wait_until_answers(&endpoint, &mut child);
        Some(Self {
            endpoint,
            access_key: MOTO_KEY.0.to_owned(),
            secret_key: MOTO_KEY.1.to_owned(),
            region: REGION.to_owned(),
            child: Some(child),
            python,
            scratch: None,
        })
    }

    /// A fresh s3rver (Node, `tests/node-clients`) on a free loopback port
    /// with its data in a new temporary directory, or `None` when node or
    /// the Python venv is not set up. It ignores conditional headers.
    pub fn s3rver() -> Option<Self> {
        let node = peer("TOKVAULT_TEST_NODE", "the s3rver test peer")?;
        let python = python()?;
        let script = repo_root().join("tests/node-clients/node_modules/s3rver/bin/s3rver.js");
        if !script.is_file() {
            missing(&format!(
                "{} is missing (npm ci in tests/node-clients)",
                script.display()
            ))?;
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let scratch = std::env::temp_dir().join(format!(
            "tokvault-s3rver-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .unwrap_or_else(|e| panic!("create {}: {e}", scratch.display()));
        let mut child = Command::new(node)
            .arg(&script)
            .arg("-d")
            .arg(&scratch)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                "0",
                "--silent",
                "--no-vhost-buckets",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(server_log())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node {}: {e}", script.display()));
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let address = read_until(stdout, "S3rver listening on ", &mut child);
        let endpoint = format!("http://{address}");
        wait_until_answers(&endpoint, &mut child);
        Some(Self {
            endpoint,
            access_key: S3RVER_KEY.0.to_owned(),
            secret_key: S3RVER_KEY.1.to_owned(),
            region: REGION.to_owned(),
            child: Some(child),
            python,
            scratch: Some(scratch),
        })
    }

    /// `tests/python/s3_bucket.py SUBCOMMAND ENDPOINT KEY SECRET BUCKET`
    /// against this server, ready for more arguments (`put`/`get` take the
    /// object key; `put` reads the body from stdin, and exits 3 when the
    /// server answers 412 and 4 when it answers 409).
    pub fn s3_bucket_py(&self, subcommand: &str, bucket: &str) -> Command {
        let mut command = Command::new(&self.python);
        command
            .arg(repo_root().join("tests/python/s3_bucket.py"))
            .args([
                subcommand,
                &self.endpoint,
                &self.access_key,
                &self.secret_key,
                bucket,
            ])
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE");
        command
    }

    /// Creates bucket `name`; panics with the server's error on failure.
    pub fn create_bucket(&self, name: &str) {
        let output = self
            .s3_bucket_py("create", name)
            .stdin(Stdio::null())
            .output()
            .expect("run tests/python/s3_bucket.py");
        assert!(
            output.status.success(),
            "creating bucket {name} at {}: {}",
            self.endpoint,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Creates a fresh bucket whose name starts with `prefix` (lowercased,
    /// other characters than `a-z0-9-` turned into `-`), and returns it.
    pub fn unique_bucket(&self, prefix: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let suffix = format!(
            "{:x}-{:x}-{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut head: String = prefix
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .take(63 - 1 - suffix.len())
            .collect();
        // Bucket names start with a letter or digit.
        if !head.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            head.insert(0, 't');
            head.truncate(63 - 1 - suffix.len());
        }
        let name = format!("{head}-{suffix}");
        self.create_bucket(&name);
        name
    }
}
