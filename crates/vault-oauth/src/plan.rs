//! What a login needs: the provider's endpoints and conventions, the
//! client, the scopes. Resolved from the options and a Google Cloud console
//! client file for a new record, or from what a record stores for a
//! re-authorization. Pure: the caller reads the files; all provider
//! knowledge a login uses is here.

use std::fmt;

use serde_json::{Map, Value};
use vault_format::{
    AccessToken, ClientAuth, Credential, Provider, Record, RefreshClass, RefreshStatus,
    RefreshTokenCredential, SecretString,
};

use crate::endpoint::{GOOGLE_AUTHORIZATION_ENDPOINT, ProviderPreset, TokenEndpoint};
use crate::login::id_token_account;
use crate::login_flow::Flow;
use crate::outcome::Refreshed;
use crate::request::OAuthClient;

/// The conventions a new login follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginProvider {
    /// Google: client file from the Cloud console; `access_type=offline`
    /// and `prompt=consent`.
    Google,
    /// Microsoft identity platform v2: a tenant; `offline_access` added.
    Microsoft,
    /// Any OAuth 2.0 server: endpoints as given.
    Generic,
}

/// Why a plan cannot be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The options are wrong or incomplete.
    Usage(String),
    /// A file or a record is unusable.
    Invalid(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) | Self::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for PlanError {}

/// A registered redirect URI to use as is (Google "web" clients).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedRedirect {
    /// The URI as registered.
    pub uri: String,
    /// Its port.
    pub port: u16,
    /// Its path.
    pub path: String,
}

/// The fields of a Google Cloud console client JSON.
#[derive(Clone, Debug)]
pub struct ClientFile {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`, when there is one.
    pub client_secret: Option<SecretString>,
    /// `auth_uri`.
    pub auth_uri: Option<String>,
    /// `token_uri`.
    pub token_uri: Option<String>,
    /// A loopback redirect URI with a port, required for "web" clients.
    pub web_redirect: Option<FixedRedirect>,
}

impl ClientFile {
    /// Parses a client JSON; `what` names it in errors ("client file X").
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, PlanError> {
        let invalid = |m: String| PlanError::Invalid(m);
        let mut top: Map<String, Value> = match serde_json::from_slice(bytes) {
            Ok(Value::Object(object)) => object,
            _ => {
                return Err(invalid(format!(
                    "{what} is not the JSON object the Google Cloud console downloads"
                )));
            }
        };
        let (web, mut object) = match (top.remove("installed"), top.remove("web")) {
            (Some(Value::Object(o)), _) => (false, o),
            (None, Some(Value::Object(o))) => (true, o),
            _ => {
                return Err(invalid(format!(
                    "{what} has neither an \"installed\" nor a \"web\" client; download the JSON of an \
                     OAuth client of type Desktop app (APIs & Services > Credentials)"
                )));
            }
        };
        let text = |object: &Map<String, Value>, key: &str| {
            object.get(key).and_then(Value::as_str).map(str::to_owned)
        };
        let client_id = text(&object, "client_id")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| invalid(format!("{what} has no client_id")))?;
        let client_secret = match object.remove("client_secret") {
            Some(Value::String(secret)) if !secret.is_empty() => Some(SecretString::new(secret)),
            _ => None,
        };
        let web_redirect = web
            .then(|| {
                loopback_redirect_of(&object).ok_or_else(|| {
                    invalid(format!(
                        "{what} is a \"web\" client without a loopback redirect URI with a port (e.g. \
                         http://127.0.0.1:8085/); add one in the Cloud console, or create a Desktop app client"
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            client_id,
            client_secret,
            auth_uri: text(&object, "auth_uri"),
            token_uri: text(&object, "token_uri"),
            web_redirect,
        })
    }
}

/// The first `http://127.0.0.1:PORT/…` or `http://localhost:PORT/…` of a
/// client's `redirect_uris`.
fn loopback_redirect_of(client: &Map<String, Value>) -> Option<FixedRedirect> {
    client
        .get("redirect_uris")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|uri| {
            let url = url::Url::parse(uri).ok()?;
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost"));
            (url.scheme() == "http" && loopback)
                .then(|| url.port())
                .flatten()
                .map(|port| FixedRedirect {
                    uri: uri.to_owned(),
                    port,
                    path: url.path().to_owned(),
                })
        })
}

/// What a new login is given (files already read).
#[derive(Clone, Debug, Default)]
pub struct LoginInputs {
    /// The conventions [default: Google with a client file, else generic].
    pub provider: Option<LoginProvider>,
    /// A Google Cloud console client file.
    pub client_file: Option<ClientFile>,
    /// The client id, over the file's.
    pub client_id: Option<String>,
    /// The client secret, over the file's.
    pub client_secret: Option<SecretString>,
    /// Client authentication [default: post for Google and Microsoft,
    /// basic for generic; none without a secret].
    pub client_auth: Option<ClientAuth>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Microsoft tenant [default: common].
    pub tenant: Option<String>,
    /// Authorization endpoint, over the preset's and the file's.
    pub auth_url: Option<String>,
    /// Token endpoint, over the preset's and the file's.
    pub token_url: Option<String>,
    /// Device authorization endpoint.
    pub device_url: Option<String>,
    /// The device flow will be used.
    pub device: bool,
}

/// Everything a login needs to know about the provider and the client.
#[derive(Clone, Debug)]
pub struct LoginPlan {
    /// The provider label stored in the record.
    pub provider: Provider,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The authorization endpoint (empty: unknown).
    pub authorization_endpoint: String,
    /// The device authorization endpoint, when known.
    pub device_endpoint: Option<String>,
    /// The client.
    pub client: OAuthClient,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Extra authorization request parameters.
    pub extra_params: Vec<(String, String)>,
    /// A registered redirect URI to use as is; else any loopback port.
    pub fixed_redirect: Option<FixedRedirect>,
}

/// Endpoints and parameters of a provider for a new login.
struct Endpoints {
    token: String,
    authorization: String,
    device: Option<String>,
    extra_params: Vec<(String, String)>,
}

/// Google: a refresh token only with `access_type=offline`, and again
/// after an earlier consent only with `prompt=consent`.
fn google_params() -> Vec<(String, String)> {
    vec![
        ("access_type".to_owned(), "offline".to_owned()),
        ("prompt".to_owned(), "consent".to_owned()),
    ]
}

/// OpenID Connect Core §11: an `offline_access` request is honoured only
/// with `prompt=consent`; spec-strict servers drop the scope without it and
/// issue no refresh token. Sent for generic servers when `offline_access`
/// is asked for (`--prompt` or `--auth-param prompt=` override it).
fn offline_access_params(scopes: &[String]) -> Vec<(String, String)> {
    if scopes.iter().any(|s| s == "offline_access") {
        vec![("prompt".to_owned(), "consent".to_owned())]
    } else {
        Vec::new()
    }
}

/// Microsoft's device and authorization endpoints sit beside its token
/// endpoint (`…/oauth2/v2.0/token`).
fn microsoft_sibling(token_endpoint: &str, leaf: &str) -> Option<String> {
    token_endpoint
        .strip_suffix("/token")
        .map(|base| format!("{base}/{leaf}"))
}

fn usage(message: &str) -> PlanError {
    PlanError::Usage(message.to_owned())
}

/// Microsoft issues a refresh token only for the scope `offline_access`,
/// which its logins therefore always ask for.
fn with_offline_access(scopes: &mut Vec<String>) {
    if !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".to_owned());
    }
}

impl LoginPlan {
    /// The plan for a new record.
    pub fn resolve(inputs: LoginInputs) -> Result<Self, PlanError> {
        let provider = inputs.provider.unwrap_or(if inputs.client_file.is_some() {
            LoginProvider::Google
        } else {
            LoginProvider::Generic
        });
        let client = client_of(&inputs, provider)?;
        if inputs.tenant.is_some() && provider != LoginProvider::Microsoft {
            return Err(usage("--tenant applies to --provider microsoft"));
        }
        let mut scopes = inputs.scopes.clone();
        let (label, endpoints) = match provider {
            LoginProvider::Google => (Provider::Google, google_endpoints(&inputs)?),
            LoginProvider::Microsoft => {
                with_offline_access(&mut scopes);
                (Provider::Microsoft, microsoft_endpoints(&inputs)?)
            }
            LoginProvider::Generic => (Provider::Generic, generic_endpoints(&inputs)?),
        };
        TokenEndpoint::parse(&endpoints.token).map_err(PlanError::Usage)?;
        Ok(Self {
            provider: label,
            token_endpoint: endpoints.token,
            authorization_endpoint: endpoints.authorization,
            device_endpoint: endpoints.device,
            client,
            scopes,
            extra_params: endpoints.extra_params,
            fixed_redirect: inputs.client_file.and_then(|f| f.web_redirect),
        })
    }

    /// The plan to re-authorize `record` with what it stores; `scopes`,
    /// `auth_url` and `device_url` override.
    pub fn for_record(
        record: &Record,
        scopes: &[String],
        auth_url: Option<&str>,
        device_url: Option<&str>,
    ) -> Result<Self, PlanError> {
        let Credential::RefreshToken(credential) = &record.credential else {
            return Err(PlanError::Invalid(format!(
                "record {:?} is not a refresh-token record (service accounts need no login)",
                record.name
            )));
        };
        let microsoft = record.provider == Provider::Microsoft;
        let authorization_endpoint = auth_url
            .map(str::to_owned)
            .or_else(|| credential.authorization_endpoint.clone())
            .or_else(|| match record.provider {
                Provider::Google => Some(GOOGLE_AUTHORIZATION_ENDPOINT.to_owned()),
                Provider::Microsoft => microsoft_sibling(&record.token_endpoint, "authorize"),
                _ => None,
            })
            .unwrap_or_default();
        let device_endpoint = device_url.map(str::to_owned).or_else(|| {
            microsoft
                .then(|| microsoft_sibling(&record.token_endpoint, "devicecode"))
                .flatten()
        });
        let mut scopes = if scopes.is_empty() {
            record.scopes.clone()
        } else {
            scopes.to_vec()
        };
        if microsoft {
            with_offline_access(&mut scopes);
        }
        Ok(Self {
            provider: record.provider.clone(),
            token_endpoint: record.token_endpoint.clone(),
            authorization_endpoint,
            device_endpoint,
            client: OAuthClient {
                client_id: credential.client_id.clone(),
                client_secret: credential.client_secret.clone(),
                client_auth: credential.client_auth,
            },
            extra_params: match record.provider {
                Provider::Google => google_params(),
                Provider::Generic => offline_access_params(&scopes),
                _ => Vec::new(),
            },
            scopes,
            fixed_redirect: None,
        })
    }

    /// The device authorization endpoint, or why the device flow cannot be
    /// used with this plan.
    pub fn device_endpoint(&self) -> Result<&str, PlanError> {
        match (&self.device_endpoint, &self.provider) {
            (Some(url), _) => Ok(url),
            (None, Provider::Google) => Err(usage(
                "Google does not allow Gmail, Sheets or Drive scopes on the device flow; \
                 use --no-browser instead (open the URL on any machine, paste the result here)",
            )),
            (None, _) => Err(usage(
                "--device needs the provider's device authorization endpoint: --device-url URL",
            )),
        }
    }

    /// What to add to "the provider issued no refresh token": the likely
    /// causes, most likely first (consent, scope, client), for this
    /// provider and what this login sent with `flow`.
    pub fn no_refresh_token_causes(&self, flow: Flow) -> String {
        let causes = [
            self.consent_cause(flow),
            self.scope_cause(),
            self.client_cause().to_owned(),
        ];
        let listed: Vec<String> = causes
            .iter()
            .enumerate()
            .map(|(i, cause)| format!("({}) {cause}", i + 1))
            .collect();
        format!(". Likely causes, most likely first: {}", listed.join("; "))
    }

    fn sent(&self, key: &str) -> Option<&str> {
        self.extra_params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn consent_cause(&self, flow: Flow) -> String {
        if flow == Flow::Device {
            return "consent: the device flow has no prompt; the server's consent page decides, so \
                    approve everything it lists (offline access included)"
                .to_owned();
        }
        let prompt = self.sent("prompt");
        let consented = prompt.is_some_and(|p| p.split(' ').any(|v| v == "consent"));
        let sent = match prompt {
            Some(prompt) => format!("this login sent prompt={prompt}"),
            None => "this login sent no prompt".to_owned(),
        };
        match (&self.provider, consented) {
            (Provider::Google, _) if self.sent("access_type") != Some("offline") || !consented => {
                format!(
                    "consent was not prompted: Google issues one only with access_type=offline and \
                     prompt=consent, which tokvault sends unless --prompt or --auth-param replace them \
                     ({sent}, access_type={})",
                    self.sent("access_type").unwrap_or("unset")
                )
            }
            (_, true) => format!(
                "consent: {sent}, so the server was asked to prompt for it; unlikely unless it \
                 ignores prompt"
            ),
            (Provider::Microsoft, false) => format!(
                "consent was not prompted: Microsoft issues one when offline_access is consented; \
                 {sent}: add --prompt consent to see the consent page again"
            ),
            (_, false) => format!(
                "consent was not prompted: {sent}, and an OpenID Connect server honours \
                 offline_access only with prompt=consent: add --prompt consent"
            ),
        }
    }

    fn scope_cause(&self) -> String {
        let asked = self.scopes.iter().any(|s| s == "offline_access");
        match (&self.provider, asked) {
            (Provider::Google, _) => "scope: none is needed at Google (access_type=offline asks \
                                      for the refresh token)"
                .to_owned(),
            (_, true) => {
                "scope: this login asked for offline_access; a server that is not OpenID Connect \
                 may name another scope for it (see its documentation)"
                    .to_owned()
            }
            (_, false) => "the scope that grants one was not asked for: add --scope \
                           offline_access (OpenID Connect and Microsoft), or the scope the \
                           server's documentation names"
                .to_owned(),
        }
    }

    fn client_cause(&self) -> &'static str {
        match self.provider {
            Provider::Google => {
                "the client: use an OAuth client of type Desktop app (a web client needs its \
                 loopback redirect URI registered)"
            }
            Provider::Microsoft => {
                "the client: the app registration or a tenant policy does not allow refresh \
                 tokens for it"
            }
            _ => {
                "the client: its registration must allow the refresh_token grant (grant_types), \
                 and some servers issue none to public clients"
            }
        }
    }

    /// A new record `name` from a login's token response.
    pub fn new_record(&self, name: &str, tokens: Refreshed, now: u64) -> Result<Record, PlanError> {
        let refresh_token = tokens.refresh_token.ok_or_else(no_refresh_token)?;
        let mut record = Record::new(
            name,
            self.provider.clone(),
            self.token_endpoint.clone(),
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: self.client.client_id.clone(),
                client_secret: self.client.client_secret.clone(),
                client_auth: self.client.client_auth,
                refresh_token,
                refresh_token_issued_at: Some(tokens.obtained_at),
                authorization_endpoint: (!self.authorization_endpoint.is_empty())
                    .then(|| self.authorization_endpoint.clone()),
            }),
            now,
        );
        record.scopes = tokens.scopes.unwrap_or_else(|| self.scopes.clone());
        record.account = tokens.id_token.as_ref().and_then(id_token_account);
        record.access_token = Some(AccessToken {
            token: tokens.access_token,
            expires_at: tokens.expires_at,
        });
        record.last_refresh = Some(authorized_status(now));
        Ok(record)
    }

    /// Puts a re-authorization's tokens into the existing `record`.
    pub fn renew(&self, record: &mut Record, tokens: Refreshed, now: u64) -> Result<(), PlanError> {
        let Credential::RefreshToken(credential) = &mut record.credential else {
            return Err(PlanError::Invalid(format!(
                "record {:?} changed kind while the login ran; nothing was saved",
                record.name
            )));
        };
        credential.refresh_token = tokens.refresh_token.ok_or_else(no_refresh_token)?;
        credential.refresh_token_issued_at = Some(tokens.obtained_at);
        if !self.authorization_endpoint.is_empty() {
            credential.authorization_endpoint = Some(self.authorization_endpoint.clone());
        }
        record.scopes = tokens.scopes.unwrap_or_else(|| self.scopes.clone());
        if let Some(account) = tokens.id_token.as_ref().and_then(id_token_account) {
            record.account = Some(account);
        }
        record.access_token = Some(AccessToken {
            token: tokens.access_token,
            expires_at: tokens.expires_at,
        });
        record.last_refresh = Some(authorized_status(now));
        record.updated_at = now;
        Ok(())
    }
}

fn no_refresh_token() -> PlanError {
    PlanError::Invalid("the provider issued no refresh token".to_owned())
}

fn authorized_status(now: u64) -> RefreshStatus {
    RefreshStatus {
        at: now,
        class: RefreshClass::Refreshed,
        error_code: None,
        error_description: None,
    }
}

/// The client: id and secret from the options over the file's, and how it
/// authenticates.
fn client_of(inputs: &LoginInputs, provider: LoginProvider) -> Result<OAuthClient, PlanError> {
    let file = inputs.client_file.as_ref();
    let client_secret = inputs
        .client_secret
        .clone()
        .or_else(|| file.and_then(|f| f.client_secret.clone()));
    let client_id = inputs
        .client_id
        .clone()
        .or_else(|| file.map(|f| f.client_id.clone()))
        .ok_or_else(|| {
            usage("give the OAuth client: --client-secrets FILE (Google) or --client-id ID")
        })?;
    let has_secret = client_secret.is_some();
    let client_auth = match (inputs.client_auth, has_secret) {
        (Some(auth), _) => auth,
        (None, false) => ClientAuth::None,
        (None, true) if provider == LoginProvider::Generic => ClientAuth::ClientSecretBasic,
        (None, true) => ClientAuth::ClientSecretPost,
    };
    if client_auth != ClientAuth::None && !has_secret {
        return Err(usage(
            "--client-auth post or basic needs a client secret: give --client-secret-file or --client-secrets",
        ));
    }
    Ok(OAuthClient {
        client_id,
        client_secret,
        client_auth,
    })
}

fn google_endpoints(inputs: &LoginInputs) -> Result<Endpoints, PlanError> {
    if inputs.scopes.is_empty() {
        return Err(usage(
            "give the scopes the job needs, e.g. --scope https://www.googleapis.com/auth/gmail.send \
             (Google issues no token without one)",
        ));
    }
    let file = inputs.client_file.as_ref();
    let preset = ProviderPreset::google();
    Ok(Endpoints {
        token: inputs
            .token_url
            .clone()
            .or_else(|| file.and_then(|f| f.token_uri.clone()))
            .unwrap_or(preset.token_endpoint),
        authorization: inputs
            .auth_url
            .clone()
            .or_else(|| file.and_then(|f| f.auth_uri.clone()))
            .or(preset.authorization_endpoint)
            .unwrap_or_default(),
        device: None,
        extra_params: google_params(),
    })
}

fn microsoft_endpoints(inputs: &LoginInputs) -> Result<Endpoints, PlanError> {
    let preset = ProviderPreset::microsoft(inputs.tenant.as_deref().unwrap_or("common"))
        .map_err(PlanError::Usage)?;
    let token = inputs.token_url.clone().unwrap_or(preset.token_endpoint);
    Ok(Endpoints {
        authorization: inputs
            .auth_url
            .clone()
            .or(preset.authorization_endpoint)
            .unwrap_or_default(),
        device: inputs
            .device_url
            .clone()
            .or_else(|| microsoft_sibling(&token, "devicecode")),
        token,
        extra_params: Vec::new(),
    })
}

fn generic_endpoints(inputs: &LoginInputs) -> Result<Endpoints, PlanError> {
    let file = inputs.client_file.as_ref();
    let token = inputs
        .token_url
        .clone()
        .or_else(|| file.and_then(|f| f.token_uri.clone()))
        .ok_or_else(|| {
            usage("--provider generic needs --token-url URL (and --auth-url URL, or --device-url URL with --device)")
        })?;
    let authorization = inputs
        .auth_url
        .clone()
        .or_else(|| file.and_then(|f| f.auth_uri.clone()));
    if authorization.is_none() && !inputs.device {
        return Err(usage(
            "--provider generic needs --auth-url URL (or --device with --device-url URL)",
        ));
    }
    Ok(Endpoints {
        token,
        authorization: authorization.unwrap_or_default(),
        device: inputs.device_url.clone(),
        extra_params: offline_access_params(&inputs.scopes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth_params::AuthParams;
    use crate::endpoint::GOOGLE_TOKEN_ENDPOINT;

    /// A stored refresh-token record of a public client.
    fn stored(
        provider: Provider,
        token_endpoint: &str,
        authorization_endpoint: Option<&str>,
    ) -> Record {
        Record::new(
            "mail",
            provider,
            token_endpoint,
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: "c".to_owned(),
                client_secret: None,
                client_auth: ClientAuth::None,
                refresh_token: SecretString::copy_from("rt"),
                refresh_token_issued_at: None,
                authorization_endpoint: authorization_endpoint.map(str::to_owned),
            }),
            0,
        )
    }

    fn inputs(provider: LoginProvider) -> LoginInputs {
        LoginInputs {
            provider: Some(provider),
            client_id: Some("client".to_owned()),
            scopes: vec!["mail".to_owned()],
            ..LoginInputs::default()
        }
    }

    #[test]
    fn google_defaults_ask_for_offline_access_and_consent() {
        let plan = LoginPlan::resolve(inputs(LoginProvider::Google)).expect("plan");
        assert_eq!(plan.token_endpoint, GOOGLE_TOKEN_ENDPOINT);
        assert_eq!(plan.authorization_endpoint, GOOGLE_AUTHORIZATION_ENDPOINT);
        assert_eq!(plan.extra_params, google_params());
        assert!(plan.device_endpoint().is_err(), "no device flow for Google");
        let mut none = inputs(LoginProvider::Google);
        none.scopes.clear();
        assert!(matches!(LoginPlan::resolve(none), Err(PlanError::Usage(_))));
    }

    #[test]
    fn microsoft_adds_offline_access_and_derives_its_endpoints_from_the_tenant() {
        let mut given = inputs(LoginProvider::Microsoft);
        given.tenant = Some("contoso.example".to_owned());
        let plan = LoginPlan::resolve(given).expect("plan");
        let base = "https://login.microsoftonline.com/contoso.example/oauth2/v2.0";
        assert_eq!(plan.token_endpoint, format!("{base}/token"));
        assert_eq!(plan.authorization_endpoint, format!("{base}/authorize"));
        assert_eq!(
            plan.device_endpoint(),
            Ok(format!("{base}/devicecode").as_str())
        );
        assert_eq!(plan.scopes, ["mail", "offline_access"]);
        let mut bad = inputs(LoginProvider::Microsoft);
        bad.tenant = Some("a/b".to_owned());
        assert!(matches!(LoginPlan::resolve(bad), Err(PlanError::Usage(_))));
    }

    #[test]
    fn generic_needs_its_endpoints_and_authenticates_with_basic_by_default() {
        assert!(LoginPlan::resolve(inputs(LoginProvider::Generic)).is_err());
        let mut given = inputs(LoginProvider::Generic);
        given.token_url = Some("https://auth.example/token".to_owned());
        given.auth_url = Some("https://auth.example/authorize".to_owned());
        given.client_secret = Some(SecretString::copy_from("s"));
        let plan = LoginPlan::resolve(given.clone()).expect("plan");
        assert_eq!(plan.client.client_auth, ClientAuth::ClientSecretBasic);
        given.token_url = Some("http://auth.example/token".to_owned());
        assert!(
            LoginPlan::resolve(given).is_err(),
            "plain http off loopback"
        );
    }

    #[test]
    fn client_authentication_needs_a_secret_and_defaults_by_provider() {
        let mut google = inputs(LoginProvider::Google);
        assert_eq!(
            LoginPlan::resolve(google.clone())
                .expect("plan")
                .client
                .client_auth,
            ClientAuth::None
        );
        google.client_auth = Some(ClientAuth::ClientSecretPost);
        assert!(matches!(
            LoginPlan::resolve(google.clone()),
            Err(PlanError::Usage(_))
        ));
        google.client_secret = Some(SecretString::copy_from("s"));
        google.client_auth = None;
        assert_eq!(
            LoginPlan::resolve(google).expect("plan").client.client_auth,
            ClientAuth::ClientSecretPost
        );
        let mut tenant_elsewhere = inputs(LoginProvider::Google);
        tenant_elsewhere.tenant = Some("common".to_owned());
        assert!(LoginPlan::resolve(tenant_elsewhere).is_err());
    }

    #[test]
    fn a_client_file_gives_the_client_and_a_web_client_its_redirect() {
        let installed = br#"{"installed":{"client_id":"id","client_secret":"sec","token_uri":"https://oauth2.googleapis.com/token"}}"#;
        let file = ClientFile::parse(installed, "client file x").expect("parse");
        let plan = LoginPlan::resolve(LoginInputs {
            client_file: Some(file),
            scopes: vec!["mail".to_owned()],
            ..LoginInputs::default()
        })
        .expect("plan");
        assert_eq!(
            plan.provider,
            Provider::Google,
            "Google by default with a file"
        );
        assert_eq!(plan.client.client_id, "id");
        assert_eq!(plan.client.client_auth, ClientAuth::ClientSecretPost);
        let web = br#"{"web":{"client_id":"id","redirect_uris":["https://x.example/cb","http://127.0.0.1:8085/cb"]}}"#;
        let file = ClientFile::parse(web, "client file x").expect("parse");
        let redirect = file.web_redirect.expect("a loopback redirect");
        assert_eq!((redirect.port, redirect.path.as_str()), (8085, "/cb"));
        let no_loopback = br#"{"web":{"client_id":"id","redirect_uris":["https://x.example/cb"]}}"#;
        assert!(ClientFile::parse(no_loopback, "client file x").is_err());
        assert!(ClientFile::parse(b"[]", "client file x").is_err());
    }

    fn generic(scopes: &[&str]) -> LoginInputs {
        LoginInputs {
            provider: Some(LoginProvider::Generic),
            client_id: Some("client".to_owned()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            auth_url: Some("https://auth.example/authorize".to_owned()),
            token_url: Some("https://auth.example/token".to_owned()),
            ..LoginInputs::default()
        }
    }

    fn prompt_of(plan: &LoginPlan) -> Option<&str> {
        plan.sent("prompt")
    }

    #[test]
    fn generic_asks_for_consent_with_offline_access_as_openid_connect_requires() {
        let plan = LoginPlan::resolve(generic(&["openid", "offline_access"])).expect("plan");
        assert_eq!(prompt_of(&plan), Some("consent"));
        let plan = LoginPlan::resolve(generic(&["openid"])).expect("plan");
        assert_eq!(prompt_of(&plan), None, "no offline_access, no prompt");
        let microsoft = LoginPlan::resolve(inputs(LoginProvider::Microsoft)).expect("plan");
        assert_eq!(
            prompt_of(&microsoft),
            None,
            "Microsoft needs no consent prompt"
        );

        let mut record = stored(
            Provider::Generic,
            "https://auth.example/token",
            Some("https://auth.example/authorize"),
        );
        record.scopes = vec!["openid".to_owned(), "offline_access".to_owned()];
        let again = LoginPlan::for_record(&record, &[], None, None).expect("plan");
        assert_eq!(prompt_of(&again), Some("consent"));
        let narrower = LoginPlan::for_record(&record, &["openid".to_owned()], None, None);
        assert_eq!(prompt_of(&narrower.expect("plan")), None);
    }

    /// The causes in the order they are listed, as `(n) ` prefixes.
    fn causes(plan: &LoginPlan, flow: Flow) -> Vec<String> {
        let text = plan.no_refresh_token_causes(flow);
        assert!(
            text.starts_with(". Likely causes, most likely first: (1) "),
            "{text}"
        );
        let (_, list) = text.split_once(": ").expect("list");
        let items: Vec<String> = list.split("; (").map(str::to_owned).collect();
        assert_eq!(items.len(), 3, "{text}");
        assert!(
            items[0].starts_with("(1) ") && items[1].starts_with("2) "),
            "{text}"
        );
        assert!(items[2].starts_with("3) the client"), "{text}");
        items
    }

    #[test]
    fn no_refresh_token_lists_consent_then_scope_then_client_for_a_generic_server() {
        let given = AuthParams {
            params: Vec::new(),
            prompt: Some("login".to_owned()),
        };
        let plan = LoginPlan::resolve(generic(&["openid"]))
            .expect("plan")
            .with_auth_params(&given, false)
            .expect("plan");
        let items = causes(&plan, Flow::Loopback);
        assert!(
            items[0].contains("consent was not prompted: this login sent prompt=login")
                && items[0].contains("add --prompt consent"),
            "{items:?}"
        );
        assert!(
            items[1].contains("not asked for: add --scope offline_access"),
            "{items:?}"
        );
        assert!(items[2].contains("refresh_token grant"), "{items:?}");

        let plan = LoginPlan::resolve(generic(&["offline_access"])).expect("plan");
        let items = causes(&plan, Flow::Paste);
        assert!(
            items[0].contains("this login sent prompt=consent"),
            "{items:?}"
        );
        assert!(
            items[1].contains("this login asked for offline_access"),
            "{items:?}"
        );
        let items = causes(&plan, Flow::Device);
        assert!(
            items[0].contains("the device flow has no prompt"),
            "{items:?}"
        );
    }

    #[test]
    fn no_refresh_token_causes_follow_google_and_microsoft() {
        let google = LoginPlan::resolve(inputs(LoginProvider::Google)).expect("plan");
        let items = causes(&google, Flow::Loopback);
        assert!(items[0].contains("sent prompt=consent"), "{items:?}");
        assert!(items[1].contains("none is needed at Google"), "{items:?}");
        assert!(items[2].contains("Desktop app"), "{items:?}");
        let given = AuthParams {
            params: Vec::new(),
            prompt: Some("select_account".to_owned()),
        };
        let google = google.with_auth_params(&given, false).expect("plan");
        let items = causes(&google, Flow::Loopback);
        assert!(
            items[0].contains("consent was not prompted: Google")
                && items[0].contains("prompt=select_account, access_type=offline"),
            "{items:?}"
        );

        let microsoft = LoginPlan::resolve(inputs(LoginProvider::Microsoft)).expect("plan");
        let items = causes(&microsoft, Flow::Loopback);
        assert!(
            items[0].contains("Microsoft") && items[0].contains("--prompt consent"),
            "{items:?}"
        );
        assert!(items[1].contains("asked for offline_access"), "{items:?}");
        assert!(items[2].contains("app registration"), "{items:?}");
    }

    #[test]
    fn a_stored_microsoft_record_finds_its_authorization_and_device_endpoints() {
        let record = stored(
            Provider::Microsoft,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            None,
        );
        let plan = LoginPlan::for_record(&record, &[], None, None).expect("plan");
        assert!(plan.authorization_endpoint.ends_with("/v2.0/authorize"));
        assert_eq!(plan.scopes, ["offline_access"], "none stored");
        let narrower = ["https://graph.microsoft.com/Mail.Send".to_owned()];
        let plan = LoginPlan::for_record(&record, &narrower, None, None).expect("plan");
        assert_eq!(
            plan.scopes,
            ["https://graph.microsoft.com/Mail.Send", "offline_access"],
            "--again --scope still gets a refresh token"
        );
        assert!(
            plan.device_endpoint()
                .expect("device")
                .ends_with("/v2.0/devicecode")
        );
    }
}
