//! Service accounts (RFC 7523 JWT bearer, RS256): a server that verifies the
//! signature and every claim, and equivalence with google-auth's own
//! assertion for the same key file.

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::Value;
use vault_format::{
    Credential, Provider, Record, RefreshClass, SecretString, ServiceAccountCredential,
};
use vault_oauth::{
    AssertionClaims, GOOGLE_TOKEN_ENDPOINT, RefreshOutcome, RetryPolicy, ServiceAccountKey,
    sign_assertion,
};

use crate::common::{refresher, request};
use crate::fault_server::{Action, FaultServer, Received};
use crate::peers::{peer, repo_root};

struct KeyFile {
    json: Value,
    path: std::path::PathBuf,
}

fn key_file() -> KeyFile {
    let path = repo_root().join("tests/fixtures/service_account.json");
    let json = serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("json");
    KeyFile { json, path }
}

impl KeyFile {
    fn text(&self, key: &str) -> &str {
        self.json[key].as_str().expect("key file field")
    }

    fn record(&self, token_endpoint: &str, scopes: &[&str], subject: Option<&str>) -> Record {
        let mut record = Record::new(
            "service",
            Provider::Google,
            token_endpoint,
            Credential::ServiceAccount(ServiceAccountCredential {
                client_email: self.text("client_email").to_owned(),
                private_key_id: Some(self.text("private_key_id").to_owned()),
                private_key: SecretString::copy_from(self.text("private_key")),
                subject: subject.map(str::to_owned),
            }),
            0,
        );
        record.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        record
    }

    /// The public key (DER RSAPublicKey) for verification.
    fn public_key(&self) -> Vec<u8> {
        let pem = self.text("private_key");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64");
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("rsa key");
        use ring::signature::KeyPair as _;
        pair.public_key().as_ref().to_vec()
    }
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// What the verifying server checks, as a function so that a test can show
/// it rejects a bad assertion. Returns the problem, if any.
fn verify_assertion(
    received: &Received,
    public_key: &[u8],
    expected: &(String, String, String, Option<String>, String),
) -> Result<(), String> {
    let (issuer, audience, scope, subject, kid) = expected;
    if received.form("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Err("grant_type".into());
    }
    let assertion = received.form("assertion").ok_or("no assertion")?;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not a JWS".into());
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "signature encoding")?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "bad signature")?;
    let (header, claims) = (decode_part(header), decode_part(claims));
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    check(
        header["alg"] == "RS256" && header["typ"] == "JWT",
        "header alg/typ",
    )?;
    check(header["kid"] == kid.as_str(), "kid")?;
    check(claims["iss"] == issuer.as_str(), "iss")?;
    check(claims["aud"] == audience.as_str(), "aud")?;
    check(claims["scope"] == scope.as_str(), "scope")?;
    check(
        claims.get("sub").and_then(Value::as_str) == subject.as_deref(),
        "sub",
    )?;
    let (iat, exp) = (
        claims["iat"].as_u64().ok_or("iat")?,
        claims["exp"].as_u64().ok_or("exp")?,
    );
    check(iat.abs_diff(now()) <= 60, "iat is not now")?;
    check(
        exp > iat && exp - iat <= 3600,
        "exp more than an hour after iat",
    )?;
    Ok(())
}

#[tokio::test]
async fn a_verifying_server_accepts_our_assertions_with_and_without_subject() {
    let key = key_file();
    let public_key = key.public_key();
    for subject in [None, Some("alice@example.test")] {
        let key = key_file();
        let expected_subject = subject.map(str::to_owned);
        let public_key = public_key.clone();
        let server = {
            let issuer = key.text("client_email").to_owned();
            let kid = key.text("private_key_id").to_owned();
            let port_holder = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
            let audience = port_holder.clone();
            let server = FaultServer::with(move |received| {
                let expected = (
                    issuer.clone(),
                    audience.get().cloned().unwrap_or_default(),
                    "https://www.googleapis.com/auth/gmail.readonly https://www.googleapis.com/auth/spreadsheets".to_owned(),
                    expected_subject.clone(),
                    kid.clone(),
                );
                match verify_assertion(received, &public_key, &expected) {
                    Ok(()) => Action::token("sa-access-token"),
                    Err(problem) => Action::json(400, &format!(r#"{{"error":"invalid_grant","error_description":"{problem}"}}"#)),
                }
            })
            .await;
            port_holder.set(server.url("/token")).expect("set once");
            server
        };
        let record = key.record(
            &server.url("/token"),
            &[
                "https://www.googleapis.com/auth/gmail.readonly",
                "https://www.googleapis.com/auth/spreadsheets",
            ],
            subject,
        );
        let report = refresher(RetryPolicy::none())
            .refresh(&request(&record))
            .await;
        let RefreshOutcome::Refreshed(refreshed) = report.outcome else {
            panic!("subject {subject:?}: {:?}", report.outcome);
        };
        assert_eq!(refreshed.access_token.expose_secret(), "sa-access-token");
        assert!(refreshed.refresh_token.is_none());
        assert_eq!(server.requests().len(), 1);
    }
}

#[tokio::test]
async fn the_verifier_rejects_a_tampered_or_misaddressed_assertion() {
    let key = key_file();
    let server = FaultServer::scripted(vec![Action::token("x")]).await;
    let record = key.record(&server.url("/token"), &["s"], None);
    refresher(RetryPolicy::none())
        .refresh(&request(&record))
        .await;
    let received = &server.requests()[0];
    let expected = (
        key.text("client_email").to_owned(),
        server.url("/token"),
        "s".to_owned(),
        None,
        key.text("private_key_id").to_owned(),
    );
    let public_key = key.public_key();
    assert_eq!(verify_assertion(received, &public_key, &expected), Ok(()));
    let wrong_audience = (
        expected.0.clone(),
        "https://elsewhere.example/token".to_owned(),
        expected.2.clone(),
        None,
        expected.4.clone(),
    );
    assert_eq!(
        verify_assertion(received, &public_key, &wrong_audience),
        Err("aud".to_owned())
    );
    let mut tampered = received.clone();
    let assertion = tampered.form("assertion").expect("assertion");
    let mut bytes = assertion.into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    tampered.body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
        String::from_utf8(bytes).expect("ascii")
    );
    assert_eq!(
        verify_assertion(&tampered, &public_key, &expected),
        Err("bad signature".to_owned())
    );
}

#[test]
fn claims_match_google_auth_for_the_same_key_file() {
    let Some(python) = peer("TOKVAULT_TEST_PYTHON", "the google-auth virtualenv") else {
        return;
    };
    let key = key_file();
    let scopes = [
        "https://www.googleapis.com/auth/gmail.send",
        "https://www.googleapis.com/auth/drive",
    ];
    for subject in [None, Some("bob@example.test")] {
        let mut command = Command::new(&python);
        command
            .arg(repo_root().join("tests/python/sa_claims.py"))
            .arg(&key.path)
            .args(["--token-uri", GOOGLE_TOKEN_ENDPOINT]);
        for scope in scopes {
            command.args(["--scope", scope]);
        }
        if let Some(subject) = subject {
            command.args(["--subject", subject]);
        }
        let output = command.output().expect("run sa_claims.py");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: Value = serde_json::from_slice(&output.stdout).expect("json");

        let private_key = SecretString::copy_from(key.text("private_key"));
        let ours = sign_assertion(
            &ServiceAccountKey::from_pem(&private_key).expect("key parses"),
            Some(key.text("private_key_id")),
            &AssertionClaims {
                issuer: key.text("client_email"),
                audience: GOOGLE_TOKEN_ENDPOINT,
                scope: &scopes.join(" "),
                subject,
                issued_at: now(),
                lifetime_secs: 3600,
            },
        )
        .expect("signs");
        let parts: Vec<&str> = ours.expose_secret().split('.').collect();
        let (header, claims) = (decode_part(parts[0]), decode_part(parts[1]));

        assert_eq!(header, theirs["header"], "JWS header");
        let their_claims = theirs["claims"].as_object().expect("claims");
        let our_claims = claims.as_object().expect("claims");
        let names = |m: &serde_json::Map<String, Value>| {
            m.keys().cloned().collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(names(our_claims), names(their_claims), "same claim names");
        for name in ["iss", "aud", "scope", "sub"] {
            assert_eq!(our_claims.get(name), their_claims.get(name), "{name}");
        }
        let lifetime = |m: &serde_json::Map<String, Value>| {
            m["exp"].as_u64().unwrap_or(0) - m["iat"].as_u64().unwrap_or(0)
        };
        assert_eq!(lifetime(our_claims), lifetime(their_claims), "exp - iat");
        assert!(
            our_claims["iat"]
                .as_u64()
                .unwrap_or(0)
                .abs_diff(their_claims["iat"].as_u64().unwrap_or(0))
                <= 30
        );

        // And google-auth's verifier accepts our signature (the JWT goes
        // through stdin, never argv).
        let mut child = Command::new(&python)
            .args(["-c", VERIFY_WITH_GOOGLE_AUTH])
            .arg(&key.path)
            .arg(GOOGLE_TOKEN_ENDPOINT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ours.expose_secret().as_bytes())
            .expect("write jwt");
        let verified = child.wait_with_output().expect("python finishes");
        assert!(
            verified.status.success(),
            "google-auth rejected our JWT: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
        let verified: Value = serde_json::from_slice(&verified.stdout).expect("json");
        assert_eq!(verified.as_object(), Some(our_claims));
    }
}

const VERIFY_WITH_GOOGLE_AUTH: &str = r#"
import json, sys
from cryptography.hazmat.primitives import serialization
from google.auth import jwt
info = json.load(open(sys.argv[1]))
key = serialization.load_pem_private_key(info["private_key"].encode(), None)
pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
print(json.dumps(jwt.decode(sys.stdin.read().strip(), certs=pem, audience=sys.argv[2])))
"#;

#[test]
fn bad_keys_are_refused_with_a_clear_error() {
    let not_pem = SecretString::copy_from("not a key");
    assert!(
        ServiceAccountKey::from_pem(&not_pem)
            .expect_err("not pem")
            .to_string()
            .contains("BEGIN PRIVATE KEY")
    );
    let bad_base64 =
        SecretString::copy_from("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n");
    assert!(ServiceAccountKey::from_pem(&bad_base64).is_err());
    let not_rsa =
        SecretString::copy_from("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let error = ServiceAccountKey::from_pem(&not_rsa)
        .expect_err("not rsa")
        .to_string();
    assert!(error.contains("RSA"), "{error}");
    // The record path turns it into a misconfiguration before any request.
    let mut record = key_file().record("https://oauth2.googleapis.com/token", &["s"], None);
    if let Credential::ServiceAccount(account) = &mut record.credential {
        account.private_key = not_rsa;
    }
    let error = vault_oauth::RefreshRequest::from_record(&record).expect_err("bad key");
    assert_eq!(
        RefreshOutcome::Misconfigured(error).class(),
        RefreshClass::Misconfigured
    );
}
