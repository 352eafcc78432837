//! Smoke test of the S3 test servers: each one makes a bucket and stores
//! and returns an object (boto3, `tests/python/s3_bucket.py`); Ceph and moto
//! refuse a second create-only PUT (`If-None-Match: *`) with 412, s3rver
//! does not (which is why it is a test peer at all).

use std::io::Write;
use std::process::Stdio;

use tokvault_test_support::s3::S3Server;

/// PUTs `body` at `key` and returns the helper's exit code (0 stored,
/// 3 refused with 412, 4 refused with 409) and its stderr.
fn put(
    server: &S3Server,
    bucket: &str,
    key: &str,
    body: &[u8],
    create_only: bool,
) -> (i32, String) {
    let mut command = server.s3_bucket_py("put", bucket);
    command.arg(key);
    if create_only {
        command.arg("--if-none-match");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run s3_bucket.py put");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(body)
        .expect("write the body");
    let output = child.wait_with_output().expect("s3_bucket.py put ends");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

/// GETs the object at `key`.
fn get(server: &S3Server, bucket: &str, key: &str) -> Vec<u8> {
    let output = server
        .s3_bucket_py("get", bucket)
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .expect("run s3_bucket.py get");
    assert!(
        output.status.success(),
        "GET {bucket}/{key} at {}: {}",
        server.endpoint,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Bucket, PUT, GET, then a second create-only PUT, which the server must
/// refuse with 412 when `honours_conditions`, and must store otherwise.
fn exercise(server: &S3Server, honours_conditions: bool) {
    let bucket = server.unique_bucket("smoke");
    let other = server.unique_bucket("smoke");
    assert_ne!(bucket, other, "unique_bucket repeats itself");

    let (code, stderr) = put(server, &bucket, "vault", b"first", false);
    assert_eq!(code, 0, "PUT at {}: {stderr}", server.endpoint);
    assert_eq!(get(server, &bucket, "vault"), b"first");

    let (code, stderr) = put(server, &bucket, "lease", b"mine", true);
    assert_eq!(
        code, 0,
        "first create-only PUT at {}: {stderr}",
        server.endpoint
    );
    let (code, stderr) = put(server, &bucket, "lease", b"theirs", true);
    if honours_conditions {
        assert_eq!(
            code, 3,
            "a second If-None-Match: * PUT at {} was not refused with 412: {stderr}",
            server.endpoint
        );
        assert_eq!(get(server, &bucket, "lease"), b"mine");
    } else {
        assert_eq!(
            code, 0,
            "{} refused a second If-None-Match: * PUT (so it now honours it?): {stderr}",
            server.endpoint
        );
        assert_eq!(get(server, &bucket, "lease"), b"theirs");
    }

    // The bucket next door is untouched.
    let (code, stderr) = put(server, &other, "vault", b"other", true);
    assert_eq!(code, 0, "create-only PUT in a fresh bucket: {stderr}");
    assert_eq!(get(server, &other, "vault"), b"other");
}

#[test]
fn ceph_radosgw_stores_and_refuses_a_second_create() {
    let Some(server) = S3Server::ceph() else {
        return;
    };
    exercise(&server, true);
}

#[test]
fn moto_stores_and_refuses_a_second_create() {
    let Some(server) = S3Server::moto() else {
        return;
    };
    exercise(&server, true);
}

#[test]
fn s3rver_stores_and_ignores_if_none_match() {
    let Some(server) = S3Server::s3rver() else {
        return;
    };
    exercise(&server, false);
}

#[test]
fn dropping_a_spawned_server_stops_it() {
    let Some(server) = S3Server::moto() else {
        return;
    };
    let endpoint = server.endpoint.clone();
    assert!(tokvault_test_support::s3::answers(&endpoint));
    drop(server);
    assert!(
        !tokvault_test_support::s3::answers(&endpoint),
        "moto at {endpoint} still answers after drop"
    );
}
