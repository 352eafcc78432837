//! Token files in and out: google-auth's authorized_user JSON, Google
//! service-account keys, and tokvault's own JSON record format.
//!
//! Pure: bytes in, a [`Record`] out (and back). Secrets move out of the
//! JSON tree into [`SecretString`]s without a copy, and no error quotes the
//! input: serde_json's own messages can, so only its position is kept.

use serde_json::{Map, Value, json};
use vault_format::{
    AccessToken, ClientAuth, Credential, PayloadError, Provider, Record, RefreshTokenCredential,
    SecretString, ServiceAccountCredential, check_endpoint, check_record_name,
};
use zeroize::Zeroizing;

use crate::endpoint::GOOGLE_TOKEN_ENDPOINT;
use crate::jwt::ServiceAccountKey;
use crate::timefmt::{self, MAX_UTC_SECONDS};

/// Version tag of tokvault's JSON record format.
pub const RECORD_FORMAT: u64 = 1;

const EXPECTED: &str = "expected google-auth's authorized_user JSON (refresh_token, client_id, client_secret, …), \
     a Google service-account key (\"type\": \"service_account\"), a tokvault JSON record \
     (\"tokvault_record\": 1) or a tokvault vault";

/// What a token file holds.
#[derive(Debug)]
pub enum TokenFile {
    /// One record, parsed from JSON.
    Record(Box<Record>),
    /// A tokvault vault (it starts with [`vault_format::MAGIC`]); the caller
    /// opens it.
    Vault,
}

/// Why bytes are not a token file [`parse_token_file`] understands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// Not JSON at all; where the parser stopped.
    #[error(
        "the input is not valid JSON (line {line}, column {column}): {}",
        EXPECTED
    )]
    NotJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but not an object.
    #[error("the input is a JSON {kind}: {}", EXPECTED)]
    NotAnObject {
        /// `array`, `string`, …
        kind: &'static str,
    },
    /// A JSON object none of the formats recognise.
    #[error("the input is JSON but not a token file: {}", EXPECTED)]
    NotATokenFile,
    /// A JSON record needs a name, and none was given.
    #[error("a record name is required for a JSON input")]
    NameRequired,
    /// The given record name is not allowed.
    #[error("{0}")]
    InvalidName(PayloadError),
    /// A recognised format with a missing or malformed field.
    #[error("{format}: {problem}")]
    Invalid {
        /// Which format, e.g. `google-auth authorized_user JSON`.
        format: &'static str,
        /// What is wrong, naming the field.
        problem: String,
    },
}

type Result<T> = std::result::Result<T, TokenFileError>;

/// Longest rejected value an error quotes, in characters: the values these
/// fields expect ("refresh_token", a UTC time) are shorter.
const MAX_QUOTED_CHARS: usize = 32;

/// A rejected value as an error shows it: quoted with control characters
/// escaped when short, else only its length. A long value in the wrong
/// field may be a secret (a key pasted into "kind"), and errors reach
/// terminals and logs; even its first characters are not shown.
fn shown(value: &str) -> String {
    let chars = value.chars().count();
    if chars <= MAX_QUOTED_CHARS {
        format!("{value:?}")
    } else {
        format!("(a value of {chars} characters, not shown)")
    }
}

fn invalid(format: &'static str, problem: impl Into<String>) -> TokenFileError {
    TokenFileError::Invalid {
        format,
        problem: problem.into(),
    }
}

fn text(object: &Map<String, Value>, key: &str, what: &'static str) -> Result<Option<String>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(what, format!("\"{key}\" must be a string"))),
    }
}

fn required(object: &Map<String, Value>, key: &str, what: &'static str) -> Result<String> {
    text(object, key, what)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(what, format!("\"{key}\" is missing")))
}

/// Moves a secret string out of the JSON tree without copying it.
fn take_secret(
    object: &mut Map<String, Value>,
    key: &str,
    what: &'static str,
) -> Result<Option<SecretString>> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(SecretString::new(s))),
        Some(_) => Err(invalid(what, format!("\"{key}\" must be a string"))),
    }
}

fn scopes(object: &Map<String, Value>, what: &'static str) -> Result<Vec<String>> {
    match object.get("scopes").or_else(|| object.get("scope")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(what, "scopes must be strings"))
            })
            .collect(),
        Some(_) => Err(invalid(what, "\"scopes\" must be a list of strings")),
    }
}

/// A Unix time in seconds, at most [`MAX_UTC_SECONDS`] so that it always
/// has an RFC 3339 form (google-auth's `expiry`).
fn timestamp(object: &Map<String, Value>, key: &str, what: &'static str) -> Result<Option<u64>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(seconds) if seconds <= MAX_UTC_SECONDS => Ok(Some(seconds)),
            _ => Err(invalid(
                what,
                format!("\"{key}\" must be Unix seconds (a whole number up to year 9999)"),
            )),
        },
    }
}

fn endpoint(value: String, what: &'static str) -> Result<String> {
    check_endpoint(&value).map_err(|reason| invalid(what, format!("the token URI {reason}")))?;
    Ok(value)
}

/// Classifies and parses a token file's bytes: a vault (left to the
/// caller), google-auth's authorized_user JSON, a Google service-account
/// key, or a tokvault JSON record. A JSON record is named `name` (required
/// for JSON, checked like every record name); `now` stamps its creation.
pub fn parse_token_file(bytes: &[u8], name: Option<&str>, now: u64) -> Result<TokenFile> {
    if bytes.starts_with(&vault_format::MAGIC) {
        return Ok(TokenFile::Vault);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| TokenFileError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(mut object) = value else {
        return Err(TokenFileError::NotAnObject {
            kind: kind_of(&value),
        });
    };
    let name = name.ok_or(TokenFileError::NameRequired)?;
    check_record_name(name).map_err(TokenFileError::InvalidName)?;
    let record = if object.contains_key("tokvault_record") {
        tokvault_record(&mut object, name, now)?
    } else if object.get("type").and_then(Value::as_str) == Some("service_account") {
        service_account(&mut object, name, now)?
    } else if object.contains_key("refresh_token") {
        authorized_user(&mut object, name, now)?
    } else {
        return Err(TokenFileError::NotATokenFile);
    };
    Ok(TokenFile::Record(Box::new(record)))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// google-auth's `Credentials.to_json()` (and gcloud's ADC file).
fn authorized_user(object: &mut Map<String, Value>, name: &str, now: u64) -> Result<Record> {
    let what = "google-auth authorized_user JSON";
    if let Some(kind) = text(object, "type", what)?
        && kind != "authorized_user"
    {
        return Err(invalid(
            what,
            format!("unsupported \"type\": {}", shown(&kind)),
        ));
    }
    let client_id = required(object, "client_id", what)?;
    let token_uri =
        text(object, "token_uri", what)?.unwrap_or_else(|| GOOGLE_TOKEN_ENDPOINT.to_owned());
    let token_uri = endpoint(token_uri, what)?;
    let scopes = scopes(object, what)?;
    let account = text(object, "account", what)?.filter(|a| !a.is_empty());
    let expiry = text(object, "expiry", what)?;
    let expires_at = match expiry {
        Some(expiry) => Some(timefmt::parse_utc(&expiry).ok_or_else(|| {
            invalid(
                what,
                format!(
                    "\"expiry\" {} is not a UTC time like 2026-11-24T07:59:59Z",
                    shown(&expiry)
                ),
            )
        })?),
        None => None,
    };
    let refresh_token = take_secret(object, "refresh_token", what)?
        .ok_or_else(|| invalid(what, "\"refresh_token\" is missing"))?;
    let client_secret = take_secret(object, "client_secret", what)?
        .ok_or_else(|| invalid(what, "\"client_secret\" is missing"))?;
    let access_token = take_secret(object, "token", what)?;
    let provider = if token_uri == GOOGLE_TOKEN_ENDPOINT {
        Provider::Google
    } else {
        Provider::Generic
    };
    let mut record = Record::new(
        name,
        provider,
        token_uri,
        Credential::RefreshToken(RefreshTokenCredential {
            client_id,
            client_secret: Some(client_secret),
            client_auth: ClientAuth::ClientSecretPost,
            refresh_token,
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        now,
    );
    record.scopes = scopes;
    record.account = account;
    record.access_token = access_token.map(|token| AccessToken { token, expires_at });
    Ok(record)
}

/// A Google service-account key file.
fn service_account(object: &mut Map<String, Value>, name: &str, now: u64) -> Result<Record> {
    let what = "service-account key";
    let client_email = required(object, "client_email", what)?;
    let private_key_id = text(object, "private_key_id", what)?;
    let token_uri =
        text(object, "token_uri", what)?.unwrap_or_else(|| GOOGLE_TOKEN_ENDPOINT.to_owned());
    let token_uri = endpoint(token_uri, what)?;
    let scopes = scopes(object, what)?;
    let subject = text(object, "subject", what)?;
    let private_key = take_secret(object, "private_key", what)?
        .ok_or_else(|| invalid(what, "\"private_key\" is missing"))?;
    ServiceAccountKey::from_pem(&private_key).map_err(|e| invalid(what, e.to_string()))?;
    let mut record = Record::new(
        name,
        Provider::Google,
        token_uri,
        Credential::ServiceAccount(ServiceAccountCredential {
            client_email: client_email.clone(),
            private_key_id,
            private_key,
            subject,
        }),
        now,
    );
    record.scopes = scopes;
    record.account = Some(client_email);
    Ok(record)
}

fn client_auth_from(label: &str) -> Result<ClientAuth> {
    match label {
        "client_secret_post" => Ok(ClientAuth::ClientSecretPost),
        "client_secret_basic" => Ok(ClientAuth::ClientSecretBasic),
        "none" => Ok(ClientAuth::None),
        other => Err(invalid(
            "tokvault JSON record",
            format!(
                "\"client_auth\" {} is not client_secret_post, client_secret_basic or none",
                shown(other)
            ),
        )),
    }
}

fn client_auth_label(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::None => "none",
    }
}

/// tokvault's own JSON record format (README, "JSON record format").
fn tokvault_record(object: &mut Map<String, Value>, name: &str, now: u64) -> Result<Record> {
    let what = "tokvault JSON record";
    if object.get("tokvault_record").and_then(Value::as_u64) != Some(RECORD_FORMAT) {
        return Err(invalid(
            what,
            format!("\"tokvault_record\" must be {RECORD_FORMAT}"),
        ));
    }
    let provider = Provider::from_label(
        &text(object, "provider", what)?.unwrap_or_else(|| "generic".to_owned()),
    );
    let token_endpoint = endpoint(required(object, "token_endpoint", what)?, what)?;
    let scopes = scopes(object, what)?;
    let account = text(object, "account", what)?;
    let expires_at = timestamp(object, "access_token_expires_at", what)?;
    let credential = match text(object, "kind", what)?
        .as_deref()
        .unwrap_or("refresh_token")
    {
        "refresh_token" => {
            let client_auth = client_auth_from(
                &text(object, "client_auth", what)?
                    .unwrap_or_else(|| "client_secret_post".to_owned()),
            )?;
            let authorization_endpoint = text(object, "authorization_endpoint", what)?;
            if let Some(url) = &authorization_endpoint {
                check_endpoint(url)
                    .map_err(|r| invalid(what, format!("authorization_endpoint {r}")))?;
            }
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: required(object, "client_id", what)?,
                refresh_token_issued_at: timestamp(object, "refresh_token_issued_at", what)?,
                client_secret: take_secret(object, "client_secret", what)?,
                client_auth,
                refresh_token: take_secret(object, "refresh_token", what)?
                    .ok_or_else(|| invalid(what, "\"refresh_token\" is missing"))?,
                authorization_endpoint,
            })
        }
        "service_account" => Credential::ServiceAccount(ServiceAccountCredential {
            client_email: required(object, "client_email", what)?,
            private_key_id: text(object, "private_key_id", what)?,
            subject: text(object, "subject", what)?,
            private_key: take_secret(object, "private_key", what)?
                .ok_or_else(|| invalid(what, "\"private_key\" is missing"))?,
        }),
        other => {
            return Err(invalid(
                what,
                format!(
                    "\"kind\" {} is not refresh_token or service_account",
                    shown(other)
                ),
            ));
        }
    };
    let mut record = Record::new(name, provider, token_endpoint, credential, now);
    record.scopes = scopes;
    record.account = account;
    record.access_token =
        take_secret(object, "access_token", what)?.map(|token| AccessToken { token, expires_at });
    Ok(record)
}

/// Why a record cannot be written as google-auth JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoogleExportError {
    /// google-auth's authorized_user file holds a refresh token only.
    #[error("record {name:?} is a service account; google format covers refresh tokens only")]
    ServiceAccount {
        /// The record.
        name: String,
    },
    /// google-auth requires `client_secret`.
    #[error("record {name:?} has no client secret, which google-auth requires")]
    NoClientSecret {
        /// The record.
        name: String,
    },
}

/// tokvault's JSON record format (plaintext: the caller warns).
pub fn to_tokvault_json(record: &Record) -> Zeroizing<String> {
    let mut out = json!({
        "tokvault_record": RECORD_FORMAT,
        "name": record.name,
        "provider": record.provider.as_str(),
        "token_endpoint": record.token_endpoint,
        "scopes": record.scopes,
        "account": record.account,
    });
    match &record.credential {
        Credential::RefreshToken(c) => {
            out["kind"] = "refresh_token".into();
            out["client_id"] = c.client_id.clone().into();
            out["client_secret"] = c.client_secret.as_ref().map(|s| s.expose_secret()).into();
            out["client_auth"] = client_auth_label(c.client_auth).into();
            out["refresh_token"] = c.refresh_token.expose_secret().into();
            out["refresh_token_issued_at"] = c.refresh_token_issued_at.into();
            out["authorization_endpoint"] = c.authorization_endpoint.clone().into();
        }
        Credential::ServiceAccount(c) => {
            out["kind"] = "service_account".into();
            out["client_email"] = c.client_email.clone().into();
            out["private_key_id"] = c.private_key_id.clone().into();
            out["private_key"] = c.private_key.expose_secret().into();
            out["subject"] = c.subject.clone().into();
        }
        _ => {}
    }
    if let Some(access) = &record.access_token {
        out["access_token"] = access.token.expose_secret().into();
        out["access_token_expires_at"] = access.expires_at.into();
    }
    Zeroizing::new(serde_json::to_string_pretty(&out).unwrap_or_default())
}

/// google-auth's authorized_user JSON, as `Credentials.to_json()` writes it.
pub fn to_google_json(
    record: &Record,
) -> std::result::Result<Zeroizing<String>, GoogleExportError> {
    let Credential::RefreshToken(c) = &record.credential else {
        return Err(GoogleExportError::ServiceAccount {
            name: record.name.clone(),
        });
    };
    let secret = c
        .client_secret
        .as_ref()
        .ok_or_else(|| GoogleExportError::NoClientSecret {
            name: record.name.clone(),
        })?;
    let out = json!({
        "token": record.access_token.as_ref().map(|a| a.token.expose_secret()),
        "refresh_token": c.refresh_token.expose_secret(),
        "token_uri": record.token_endpoint,
        "client_id": c.client_id,
        "client_secret": secret.expose_secret(),
        "scopes": record.scopes,
        "universe_domain": "googleapis.com",
        "account": record.account.clone().unwrap_or_default(),
        "expiry": record.access_token.as_ref().and_then(|a| a.expires_at).map(timefmt::rfc3339),
    });
    Ok(Zeroizing::new(
        serde_json::to_string(&out).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_quote_a_long_rejected_value() {
        // Fuzz finding (token_file): a private key pasted into "kind" came
        // back whole in the error, on the terminal and in logs.
        let key = format!(
            "-----BEGIN PRIVATE KEY-----\n{}",
            "MIIEvQIBADANBgkqhkiG".repeat(60)
        );
        for field in ["kind", "client_auth", "type", "expiry"] {
            let json = match field {
                "type" | "expiry" => json!({
                    "refresh_token": "r", "client_id": "c", "client_secret": "s",
                    field: key,
                }),
                _ => json!({
                    "tokvault_record": 1, "token_endpoint": "https://a.example/t",
                    "client_id": "c", "refresh_token": "r", field: key,
                }),
            };
            let error =
                parse_token_file(json.to_string().as_bytes(), Some("n"), 0).expect_err("refused");
            let text = error.to_string();
            assert!(text.len() < 200, "{field}: {} characters", text.len());
            assert!(
                text.contains("a value of 1228 characters, not shown"),
                "{field}: {text}"
            );
            assert!(!text.contains("PRIVATE KEY"), "{field}: {text}");
        }
        assert_eq!(shown("ok"), "\"ok\"");
        assert_eq!(shown(&"x".repeat(32)), format!("{:?}", "x".repeat(32)));
    }
}
