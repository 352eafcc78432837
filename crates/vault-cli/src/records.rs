//! Token files in and out: google-auth's authorized_user JSON, Google
//! service-account keys, and tokvault's own JSON record format.

use serde_json::{Map, Value, json};
use vault_format::{
    AccessToken, ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString,
    ServiceAccountCredential, check_endpoint, check_record_name,
};
use vault_oauth::GOOGLE_TOKEN_ENDPOINT;
use zeroize::Zeroizing;

use crate::error::{CliError, Result};
use crate::timefmt;

/// Version tag of tokvault's JSON record format.
pub(crate) const RECORD_FORMAT: u64 = 1;

const EXPECTED: &str = "expected google-auth's authorized_user JSON (refresh_token, client_id, client_secret, …), \
     a Google service-account key (\"type\": \"service_account\"), a tokvault JSON record \
     (\"tokvault_record\": 1) or a tokvault vault";

/// What an input file holds.
pub(crate) enum Input {
    Record(Box<Record>),
    Vault,
}

fn text(object: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CliError::failure(format!(
            "{what}: \"{key}\" must be a string"
        ))),
    }
}

fn required(object: &Map<String, Value>, key: &str, what: &str) -> Result<String> {
    text(object, key, what)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CliError::failure(format!("{what}: \"{key}\" is missing")))
}

/// Moves a secret string out of the JSON tree without copying it.
fn take_secret(
    object: &mut Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<SecretString>> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(SecretString::new(s))),
        Some(_) => Err(CliError::failure(format!(
            "{what}: \"{key}\" must be a string"
        ))),
    }
}

fn scopes(object: &Map<String, Value>, what: &str) -> Result<Vec<String>> {
    match object.get("scopes").or_else(|| object.get("scope")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| CliError::failure(format!("{what}: scopes must be strings")))
            })
            .collect(),
        Some(_) => Err(CliError::failure(format!(
            "{what}: \"scopes\" must be a list of strings"
        ))),
    }
}

fn endpoint(value: String, what: &str) -> Result<String> {
    check_endpoint(&value)
        .map_err(|reason| CliError::failure(format!("{what}: the token URI {reason}")))?;
    Ok(value)
}

/// Classifies and parses an input file's bytes.
pub(crate) fn parse_input(
    bytes: &[u8],
    name: Option<&str>,
    token_uri: Option<&str>,
    now: u64,
) -> Result<Input> {
    if bytes.starts_with(&vault_format::MAGIC) {
        return Ok(Input::Vault);
    }
    let what = "the input";
    // serde_json's error text can quote the input: only its position is used.
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        CliError::failure(format!(
            "the input is not valid JSON (line {}, column {}): {EXPECTED}",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut object) = value else {
        return Err(CliError::failure(format!(
            "the input is a JSON {}: {EXPECTED}",
            kind_of(&value)
        )));
    };
    let name = name.ok_or_else(|| CliError::usage("--name NAME is required for a JSON input"))?;
    check_record_name(name).map_err(|e| CliError::usage(format!("--name: {e}")))?;
    let record = if object.contains_key("tokvault_record") {
        tokvault_record(&mut object, name, now)?
    } else if object.get("type").and_then(Value::as_str) == Some("service_account") {
        service_account(&mut object, name, now)?
    } else if object.contains_key("refresh_token") {
        authorized_user(&mut object, name, now)?
    } else {
        return Err(CliError::failure(format!(
            "{what} is JSON but not a token file: {EXPECTED}"
        )));
    };
    let mut record = record;
    if let Some(uri) = token_uri {
        record.token_endpoint = endpoint(uri.to_owned(), "--token-uri")?;
    }
    Ok(Input::Record(Box::new(record)))
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
        return Err(CliError::failure(format!(
            "{what}: unsupported \"type\": {kind:?}"
        )));
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
            CliError::failure(format!(
                "{what}: \"expiry\" {expiry:?} is not a UTC time like 2026-11-24T07:59:59Z"
            ))
        })?),
        None => None,
    };
    let refresh_token = take_secret(object, "refresh_token", what)?
        .ok_or_else(|| CliError::failure(format!("{what}: \"refresh_token\" is missing")))?;
    let client_secret = take_secret(object, "client_secret", what)?
        .ok_or_else(|| CliError::failure(format!("{what}: \"client_secret\" is missing")))?;
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
        .ok_or_else(|| CliError::failure(format!("{what}: \"private_key\" is missing")))?;
    vault_oauth::ServiceAccountKey::from_pem(&private_key)
        .map_err(|e| CliError::failure(format!("{what}: {e}")))?;
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
        other => Err(CliError::failure(format!(
            "tokvault JSON record: \"client_auth\" {other:?} is not client_secret_post, client_secret_basic or none"
        ))),
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
        return Err(CliError::failure(format!(
            "{what}: \"tokvault_record\" must be {RECORD_FORMAT}"
        )));
    }
    let provider = Provider::from_label(
        &text(object, "provider", what)?.unwrap_or_else(|| "generic".to_owned()),
    );
    let token_endpoint = endpoint(required(object, "token_endpoint", what)?, what)?;
    let scopes = scopes(object, what)?;
    let account = text(object, "account", what)?;
    let expires_at = object
        .get("access_token_expires_at")
        .and_then(Value::as_u64);
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
                check_endpoint(url).map_err(|r| {
                    CliError::failure(format!("{what}: authorization_endpoint {r}"))
                })?;
            }
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: required(object, "client_id", what)?,
                refresh_token_issued_at: object
                    .get("refresh_token_issued_at")
                    .and_then(Value::as_u64),
                client_secret: take_secret(object, "client_secret", what)?,
                client_auth,
                refresh_token: take_secret(object, "refresh_token", what)?.ok_or_else(|| {
                    CliError::failure(format!("{what}: \"refresh_token\" is missing"))
                })?,
                authorization_endpoint,
            })
        }
        "service_account" => Credential::ServiceAccount(ServiceAccountCredential {
            client_email: required(object, "client_email", what)?,
            private_key_id: text(object, "private_key_id", what)?,
            subject: text(object, "subject", what)?,
            private_key: take_secret(object, "private_key", what)?
                .ok_or_else(|| CliError::failure(format!("{what}: \"private_key\" is missing")))?,
        }),
        other => {
            return Err(CliError::failure(format!(
                "{what}: \"kind\" {other:?} is not refresh_token or service_account"
            )));
        }
    };
    let mut record = Record::new(name, provider, token_endpoint, credential, now);
    record.scopes = scopes;
    record.account = account;
    record.access_token =
        take_secret(object, "access_token", what)?.map(|token| AccessToken { token, expires_at });
    Ok(record)
}

/// tokvault's JSON record format (plaintext: the caller warns).
pub(crate) fn to_tokvault_json(record: &Record) -> Zeroizing<String> {
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
pub(crate) fn to_google_json(record: &Record) -> Result<Zeroizing<String>> {
    let Credential::RefreshToken(c) = &record.credential else {
        return Err(CliError::failure(format!(
            "record {:?} is a service account; google format covers refresh tokens only (use --format json)",
            record.name
        )));
    };
    let secret = c.client_secret.as_ref().ok_or_else(|| {
        CliError::failure(format!(
            "record {:?} has no client secret, which google-auth requires",
            record.name
        ))
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
