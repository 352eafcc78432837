//! RFC 7523 JWT bearer assertions for Google service accounts, signed RS256
//! with ring (already in the tree as rustls' crypto provider).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use vault_format::{SecretBytes, SecretString};
use zeroize::Zeroizing;

/// The longest assertion lifetime Google accepts, and the default.
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 3600;

/// A service-account private key, kept as DER in a zeroizing buffer. The
/// ring key pair is built for each signature and dropped at once (ring does
/// not zeroize its own copy; see SECURITY.md).
#[derive(Clone)]
pub struct ServiceAccountKey {
    der: SecretBytes,
    pkcs8: bool,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountKey(<redacted>)")
    }
}

/// Why a private key could not be used. Never contains key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not a PEM `PRIVATE KEY` / `RSA PRIVATE KEY` block.
    #[error(
        "the service-account private_key is not a PEM private key (expected -----BEGIN PRIVATE KEY-----)"
    )]
    NotPem,
    /// The PEM body is not valid base64.
    #[error("the service-account private_key's PEM body is not valid base64")]
    Base64,
    /// ring rejected the key (not RSA, too small, inconsistent).
    #[error("the service-account private_key is not a usable RSA key (2048 to 4096 bits): {0}")]
    Rejected(String),
}

impl ServiceAccountKey {
    /// Parses a PKCS#8 (`BEGIN PRIVATE KEY`, as Google issues) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) PEM and checks that ring accepts it.
    pub fn from_pem(pem: &SecretString) -> Result<Self, KeyError> {
        let text = pem.expose_secret();
        let (pkcs8, body) = if let Some(body) = pem_body(text, "PRIVATE KEY") {
            (true, body)
        } else if let Some(body) = pem_body(text, "RSA PRIVATE KEY") {
            (false, body)
        } else {
            return Err(KeyError::NotPem);
        };
        let mut base64_text = Zeroizing::new(String::with_capacity(body.len()));
        base64_text.extend(body.chars().filter(|c| !c.is_ascii_whitespace()));
        let mut der = Zeroizing::new(Vec::with_capacity(base64_text.len() / 4 * 3 + 3));
        STANDARD
            .decode_vec(base64_text.as_bytes(), &mut der)
            .map_err(|_| KeyError::Base64)?;
        let key = Self {
            der: SecretBytes::copy_from(&der),
            pkcs8,
        };
        key.key_pair()?;
        Ok(key)
    }

    fn key_pair(&self) -> Result<RsaKeyPair, KeyError> {
        let der = self.der.expose_secret();
        let parsed = if self.pkcs8 {
            RsaKeyPair::from_pkcs8(der)
        } else {
            RsaKeyPair::from_der(der)
        };
        parsed.map_err(|e| KeyError::Rejected(e.to_string()))
    }
}

fn pem_body<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    Some(&text[start..stop])
}

/// The claims of a service-account assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionClaims<'a> {
    /// `iss`: the service account's `client_email`.
    pub issuer: &'a str,
    /// `aud`: the token endpoint.
    pub audience: &'a str,
    /// `scope`: space-separated scopes.
    pub scope: &'a str,
    /// `sub`: the user to impersonate (domain-wide delegation).
    pub subject: Option<&'a str>,
    /// `iat`, Unix seconds.
    pub issued_at: u64,
    /// Lifetime in seconds, at most [`MAX_ASSERTION_LIFETIME_SECS`].
    pub lifetime_secs: u64,
}

/// Signs a compact JWS: header `{"alg":"RS256","typ":"JWT","kid":…}`.
/// The assertion authenticates as the service account for up to an hour,
/// so it is returned as a secret.
pub fn sign_assertion(
    key: &ServiceAccountKey,
    key_id: Option<&str>,
    claims: &AssertionClaims<'_>,
) -> Result<SecretString, KeyError> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = key_id {
        header["kid"] = kid.into();
    }
    let lifetime = claims.lifetime_secs.min(MAX_ASSERTION_LIFETIME_SECS);
    let mut body = serde_json::json!({
        "iss": claims.issuer,
        "aud": claims.audience,
        "scope": claims.scope,
        "iat": claims.issued_at,
        "exp": claims.issued_at + lifetime,
    });
    if let Some(subject) = claims.subject {
        body["sub"] = subject.into();
    }
    let key_pair = key.key_pair()?;
    let modulus_len = key_pair.public().modulus_len();
    let (header, body) = (header.to_string(), body.to_string());
    // Sized for the whole JWS so that it never reallocates (the finished
    // assertion is a bearer credential).
    let capacity = (header.len() + body.len() + modulus_len) * 4 / 3 + 8;
    let mut signing_input = Zeroizing::new(String::with_capacity(capacity));
    URL_SAFE_NO_PAD.encode_string(header, &mut signing_input);
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(body, &mut signing_input);

    let mut signature = Zeroizing::new(vec![0; modulus_len]);
    key_pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| KeyError::Rejected("signing failed".to_owned()))?;
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(&*signature, &mut signing_input);
    Ok(SecretString::new(std::mem::take(&mut *signing_input)))
}
