//! Building token requests from vault records.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderValue;
use vault_format::{ClientAuth, Credential, Record, SecretString};
use zeroize::Zeroizing;

use crate::endpoint::{ProviderPreset, TokenEndpoint};
use crate::jwt::{AssertionClaims, MAX_ASSERTION_LIFETIME_SECS, ServiceAccountKey, sign_assertion};
use crate::outcome::Misconfiguration;

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An OAuth client as registered with the provider: its id, its secret (a
/// public client has none) and how it authenticates at the token endpoint.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`, if the client has one.
    pub client_secret: Option<SecretString>,
    /// How the secret is presented (RFC 6749 §2.3).
    pub client_auth: ClientAuth,
}

impl OAuthClient {
    /// Fails when the method needs a secret and there is none.
    pub(crate) fn check(&self, whose: &str) -> Result<(), Misconfiguration> {
        if self.client_auth != ClientAuth::None && self.client_secret.is_none() {
            return Err(Misconfiguration::Credential(format!(
                "{whose} authenticates with {} but has no client secret",
                auth_name(self.client_auth)
            )));
        }
        Ok(())
    }

    /// Adds the client's credentials to `fields`, or returns them as a
    /// Basic `Authorization` header.
    pub(crate) fn authenticate<'a>(
        &'a self,
        fields: &mut Vec<(&'a str, &'a str)>,
    ) -> Result<Option<HeaderValue>, Misconfiguration> {
        let secret = self.client_secret.as_ref().map(SecretString::expose_secret);
        match (self.client_auth, secret) {
            (ClientAuth::ClientSecretBasic, Some(secret)) => {
                return Ok(Some(basic_authorization(&self.client_id, secret)?));
            }
            (ClientAuth::ClientSecretPost, Some(secret)) => {
                fields.push(("client_id", &self.client_id));
                fields.push(("client_secret", secret));
            }
            _ => fields.push(("client_id", &self.client_id)),
        }
        Ok(None)
    }
}

/// Everything needed to obtain a new access token for one record, owned
/// (so many can run concurrently) and holding its secrets in zeroizing
/// types. Build it with [`RefreshRequest::from_record`].
#[derive(Clone, Debug)]
pub struct RefreshRequest {
    name: String,
    endpoint: TokenEndpoint,
    grant: Grant,
    scope: Option<String>,
}

#[derive(Clone, Debug)]
enum Grant {
    RefreshToken {
        client: OAuthClient,
        refresh_token: SecretString,
    },
    /// RFC 6749 §4.1.3 with RFC 7636's `code_verifier`.
    AuthorizationCode {
        client: OAuthClient,
        code: SecretString,
        redirect_uri: String,
        code_verifier: SecretString,
    },
    /// RFC 8628 §3.4.
    DeviceCode {
        client: OAuthClient,
        device_code: SecretString,
    },
    ServiceAccount {
        client_email: String,
        key_id: Option<String>,
        key: ServiceAccountKey,
        subject: Option<String>,
    },
}

/// The body and headers of one token request (built per attempt: a
/// service-account assertion gets a fresh `iat` each time).
pub(crate) struct PreparedRequest {
    pub(crate) form: Zeroizing<String>,
    pub(crate) authorization: Option<HeaderValue>,
}

impl RefreshRequest {
    /// Reads what a refresh needs from `record`. Fails, without touching
    /// the network, when the record cannot produce a valid request.
    pub fn from_record(record: &Record) -> Result<Self, Misconfiguration> {
        let endpoint =
            TokenEndpoint::parse(&record.token_endpoint).map_err(Misconfiguration::Endpoint)?;
        let scopes = record.scopes.join(" ");
        let (grant, scope) = match &record.credential {
            Credential::RefreshToken(credential) => {
                let client = OAuthClient {
                    client_id: credential.client_id.clone(),
                    client_secret: credential.client_secret.clone(),
                    client_auth: credential.client_auth,
                };
                client.check(&format!("record {:?}", record.name))?;
                let send_scope =
                    ProviderPreset::sends_scope_on_refresh(&record.provider) && !scopes.is_empty();
                let grant = Grant::RefreshToken {
                    client,
                    refresh_token: credential.refresh_token.clone(),
                };
                (grant, send_scope.then_some(scopes))
            }
            Credential::ServiceAccount(account) => {
                if scopes.is_empty() {
                    return Err(Misconfiguration::Credential(format!(
                        "service-account record {:?} has no scopes; add the scopes it needs",
                        record.name
                    )));
                }
                let key = ServiceAccountKey::from_pem(&account.private_key)
                    .map_err(|e| Misconfiguration::Credential(e.to_string()))?;
                let grant = Grant::ServiceAccount {
                    client_email: account.client_email.clone(),
                    key_id: account.private_key_id.clone(),
                    key,
                    subject: account.subject.clone(),
                };
                // The scopes travel inside the assertion.
                (grant, Some(scopes))
            }
            _ => {
                return Err(Misconfiguration::Credential(format!(
                    "record {:?} has a credential kind this version cannot refresh",
                    record.name
                )));
            }
        };
        Ok(Self {
            name: record.name.clone(),
            endpoint,
            grant,
            scope,
        })
    }

    /// Redeems an authorization code (login), sending the PKCE verifier.
    pub(crate) fn authorization_code(
        endpoint: TokenEndpoint,
        client: OAuthClient,
        code: SecretString,
        redirect_uri: String,
        code_verifier: SecretString,
    ) -> Result<Self, Misconfiguration> {
        client.check("the client")?;
        Ok(Self {
            name: "login".to_owned(),
            endpoint,
            grant: Grant::AuthorizationCode {
                client,
                code,
                redirect_uri,
                code_verifier,
            },
            scope: None,
        })
    }

    /// Polls for the tokens of a device authorization.
    pub(crate) fn device_code(
        endpoint: TokenEndpoint,
        client: OAuthClient,
        device_code: SecretString,
    ) -> Result<Self, Misconfiguration> {
        client.check("the client")?;
        Ok(Self {
            name: "login".to_owned(),
            endpoint,
            grant: Grant::DeviceCode {
                client,
                device_code,
            },
            scope: None,
        })
    }

    /// Asks for exactly `scopes` (down-scoping; for Google the only case in
    /// which `scope` is sent on a refresh).
    pub fn with_scopes(mut self, scopes: &[String]) -> Self {
        self.scope = (!scopes.is_empty()).then(|| scopes.join(" "));
        self
    }

    /// The record's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// The request body and `Authorization` header for an attempt at `now`.
    pub(crate) fn prepare(&self, now: u64) -> Result<PreparedRequest, Misconfiguration> {
        match &self.grant {
            Grant::RefreshToken {
                client,
                refresh_token,
            } => {
                let mut fields: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose_secret()),
                ];
                let authorization = client.authenticate(&mut fields)?;
                if let Some(scope) = &self.scope {
                    fields.push(("scope", scope));
                }
                Ok(PreparedRequest {
                    form: encode_form(&fields),
                    authorization,
                })
            }
            Grant::AuthorizationCode {
                client,
                code,
                redirect_uri,
                code_verifier,
            } => {
                let mut fields: Vec<(&str, &str)> = vec![
                    ("grant_type", "authorization_code"),
                    ("code", code.expose_secret()),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", code_verifier.expose_secret()),
                ];
                let authorization = client.authenticate(&mut fields)?;
                Ok(PreparedRequest {
                    form: encode_form(&fields),
                    authorization,
                })
            }
            Grant::DeviceCode {
                client,
                device_code,
            } => {
                let mut fields: Vec<(&str, &str)> = vec![
                    ("grant_type", DEVICE_CODE_GRANT),
                    ("device_code", device_code.expose_secret()),
                ];
                let authorization = client.authenticate(&mut fields)?;
                Ok(PreparedRequest {
                    form: encode_form(&fields),
                    authorization,
                })
            }
            Grant::ServiceAccount {
                client_email,
                key_id,
                key,
                subject,
            } => {
                let claims = AssertionClaims {
                    issuer: client_email,
                    audience: self.endpoint.as_str(),
                    scope: self.scope.as_deref().unwrap_or_default(),
                    subject: subject.as_deref(),
                    issued_at: now,
                    lifetime_secs: MAX_ASSERTION_LIFETIME_SECS,
                };
                let assertion = sign_assertion(key, key_id.as_deref(), &claims)
                    .map_err(|e| Misconfiguration::Credential(e.to_string()))?;
                Ok(PreparedRequest {
                    form: encode_form(&[
                        ("grant_type", JWT_BEARER_GRANT),
                        ("assertion", assertion.expose_secret()),
                    ]),
                    authorization: None,
                })
            }
        }
    }
}

fn auth_name(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::None => "no client authentication",
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::ClientSecretBasic => "client_secret_basic",
    }
}

/// `application/x-www-form-urlencoded`, into a buffer sized for the worst
/// case so it never reallocates (a reallocation would leave an unwiped copy).
pub(crate) fn encode_form(fields: &[(&str, &str)]) -> Zeroizing<String> {
    let worst = fields
        .iter()
        .map(|(k, v)| 3 * (k.len() + v.len()) + 2)
        .sum();
    let mut serializer = url::form_urlencoded::Serializer::new(String::with_capacity(worst));
    for (key, value) in fields {
        serializer.append_pair(key, value);
    }
    Zeroizing::new(serializer.finish())
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
fn basic_authorization(client_id: &str, secret: &str) -> Result<HeaderValue, Misconfiguration> {
    let encode = |s: &str| {
        Zeroizing::new(url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>())
    };
    let (id, secret) = (encode(client_id), encode(secret));
    let mut pair = Zeroizing::new(String::with_capacity(id.len() + secret.len() + 1));
    pair.push_str(&id);
    pair.push(':');
    pair.push_str(&secret);
    let mut value = Zeroizing::new(String::with_capacity(6 + pair.len() * 4 / 3 + 4));
    value.push_str("Basic ");
    STANDARD.encode_string(pair.as_bytes(), &mut value);
    HeaderValue::from_str(&value).map_err(|_| {
        Misconfiguration::Credential(
            "the client id or secret cannot be sent in a header".to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::{Provider, RefreshTokenCredential};

    fn record(auth: ClientAuth, secret: Option<&str>, provider: Provider) -> Record {
        let mut record = Record::new(
            "r",
            provider,
            "https://auth.example/token",
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: "id with space".to_owned(),
                client_secret: secret.map(SecretString::copy_from),
                client_auth: auth,
                refresh_token: SecretString::copy_from("rt/+="),
                refresh_token_issued_at: None,
                authorization_endpoint: None,
            }),
            0,
        );
        record.scopes = vec!["a".to_owned(), "b".to_owned()];
        record
    }

    fn form_of(record: &Record) -> (String, Option<String>) {
        let prepared = RefreshRequest::from_record(record)
            .expect("valid record")
            .prepare(0)
            .expect("prepared");
        let auth = prepared
            .authorization
            .map(|v| v.to_str().expect("ascii").to_owned());
        (prepared.form.as_str().to_owned(), auth)
    }

    #[test]
    fn client_auth_methods() {
        let (form, auth) = form_of(&record(
            ClientAuth::ClientSecretPost,
            Some("s&x"),
            Provider::Google,
        ));
        assert_eq!(
            form,
            "grant_type=refresh_token&refresh_token=rt%2F%2B%3D&client_id=id+with+space&client_secret=s%26x"
        );
        assert_eq!(auth, None);

        let (form, auth) = form_of(&record(
            ClientAuth::ClientSecretBasic,
            Some("s:x"),
            Provider::Generic,
        ));
        assert_eq!(form, "grant_type=refresh_token&refresh_token=rt%2F%2B%3D");
        let expected = format!("Basic {}", STANDARD.encode("id+with+space:s%3Ax"));
        assert_eq!(auth.as_deref(), Some(expected.as_str()));

        let (form, auth) = form_of(&record(ClientAuth::None, None, Provider::Generic));
        assert_eq!(
            form,
            "grant_type=refresh_token&refresh_token=rt%2F%2B%3D&client_id=id+with+space"
        );
        assert_eq!(auth, None);
    }

    #[test]
    fn scope_only_for_microsoft_or_when_asked() {
        let (form, _) = form_of(&record(
            ClientAuth::ClientSecretPost,
            Some("s"),
            Provider::Microsoft,
        ));
        assert!(form.ends_with("&scope=a+b"), "{form}");
        let google = record(ClientAuth::ClientSecretPost, Some("s"), Provider::Google);
        let request = RefreshRequest::from_record(&google)
            .expect("valid")
            .with_scopes(&["x".to_owned()]);
        let form = request.prepare(0).expect("prepared").form;
        assert!(form.ends_with("&scope=x"), "{}", form.as_str());
    }

    #[test]
    fn bad_records_fail_before_the_network() {
        let no_secret = record(ClientAuth::ClientSecretBasic, None, Provider::Generic);
        assert!(matches!(
            RefreshRequest::from_record(&no_secret),
            Err(Misconfiguration::Credential(ref m)) if m.contains("client_secret_basic")
        ));
        let mut plain_http = record(ClientAuth::None, None, Provider::Generic);
        plain_http.token_endpoint = "http://auth.example/token".to_owned();
        assert!(matches!(
            RefreshRequest::from_record(&plain_http),
            Err(Misconfiguration::Endpoint(ref m)) if m.contains("https")
        ));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let request = RefreshRequest::from_record(&record(
            ClientAuth::ClientSecretPost,
            Some("client-secret-canary"),
            Provider::Google,
        ))
        .expect("valid");
        let debug = format!("{request:?}");
        assert!(
            !debug.contains("canary") && !debug.contains("rt/+="),
            "{debug}"
        );
    }
}
