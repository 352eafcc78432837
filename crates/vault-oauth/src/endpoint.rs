//! Token endpoints and provider presets.

use url::Url;
use vault_format::{ClientAuth, Provider};

/// Google's OAuth 2.0 token endpoint.
pub const GOOGLE_TOKEN_ENDPOINT: &str = "https://oauth2.googleapis.com/token";
/// Google's authorization endpoint.
pub const GOOGLE_AUTHORIZATION_ENDPOINT: &str = "https://accounts.google.com/o/oauth2/v2/auth";

/// A token endpoint that may receive secrets: `https://`, or `http://` on a
/// loopback address (`127.0.0.0/8`, `[::1]`, `localhost`), without
/// credentials or a fragment in the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEndpoint(Url);

impl TokenEndpoint {
    /// Checks and parses `value`; the error says what is wrong.
    pub fn parse(value: &str) -> Result<Self, String> {
        vault_format::check_endpoint(value).map_err(|reason| format!("the token URL {reason}"))?;
        let url = Url::parse(value).map_err(|_| "the token URL is not a valid URL".to_owned())?;
        Ok(Self(url))
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL as text (also the `aud` of service-account assertions).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// How a provider is talked to: where, how the client authenticates, and
/// whether refresh requests carry `scope`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderPreset {
    /// The provider label stored in records.
    pub provider: Provider,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The authorization endpoint, for login.
    pub authorization_endpoint: Option<String>,
    /// Client authentication at the token endpoint.
    pub client_auth: ClientAuth,
    /// Whether a refresh request sends the record's scopes. Google: only
    /// when asked (omitting `scope` keeps the original grant); Microsoft's
    /// v2 endpoint expects them.
    pub send_scope_on_refresh: bool,
    /// Whether the provider is known to rotate refresh tokens on every use.
    pub rotates_refresh_tokens: bool,
}

impl ProviderPreset {
    /// Google: `client_secret_post`, no rotation in practice (a rotated token
    /// is still accepted and kept).
    pub fn google() -> Self {
        Self {
            provider: Provider::Google,
            token_endpoint: GOOGLE_TOKEN_ENDPOINT.to_owned(),
            authorization_endpoint: Some(GOOGLE_AUTHORIZATION_ENDPOINT.to_owned()),
            client_auth: ClientAuth::ClientSecretPost,
            send_scope_on_refresh: false,
            rotates_refresh_tokens: false,
        }
    }

    /// Microsoft identity platform v2 for `tenant` (`common`,
    /// `organizations`, `consumers`, a domain or a tenant GUID). Refresh
    /// tokens rotate on every use.
    pub fn microsoft(tenant: &str) -> Result<Self, String> {
        let valid = !tenant.is_empty()
            && tenant.len() <= 128
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!(
                "the Microsoft tenant must be `common`, `organizations`, `consumers`, a domain or a tenant id, not {tenant:?}"
            ));
        }
        let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
        Ok(Self {
            provider: Provider::Microsoft,
            token_endpoint: format!("{base}/token"),
            authorization_endpoint: Some(format!("{base}/authorize")),
            client_auth: ClientAuth::ClientSecretPost,
            send_scope_on_refresh: true,
            rotates_refresh_tokens: true,
        })
    }

    /// Any OAuth 2.0 server: endpoint and authentication method as given.
    pub fn generic(token_endpoint: &str, client_auth: ClientAuth) -> Result<Self, String> {
        TokenEndpoint::parse(token_endpoint)?;
        Ok(Self {
            provider: Provider::Generic,
            token_endpoint: token_endpoint.to_owned(),
            authorization_endpoint: None,
            client_auth,
            send_scope_on_refresh: false,
            rotates_refresh_tokens: false,
        })
    }

    /// Whether a refresh for a record of `provider` sends its stored scopes
    /// by default.
    pub fn sends_scope_on_refresh(provider: &Provider) -> bool {
        matches!(provider, Provider::Microsoft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_https_off_loopback() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "http://127.0.0.1:8080/token",
            "http://127.3.2.1/token",
            "http://[::1]:9/token",
            "http://localhost:1/token",
        ] {
            assert!(TokenEndpoint::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/token",
            "http://10.0.0.1/token",
            "ftp://127.0.0.1/token",
            "https://user:pw@example.com/token",
            "https://example.com/token#frag",
            "not a url",
        ] {
            let error = TokenEndpoint::parse(bad).expect_err(bad);
            assert!(error.starts_with("the token URL "), "{error}");
        }
    }

    #[test]
    fn presets() {
        let google = ProviderPreset::google();
        assert_eq!(google.token_endpoint, GOOGLE_TOKEN_ENDPOINT);
        assert_eq!(google.client_auth, ClientAuth::ClientSecretPost);
        assert!(!google.send_scope_on_refresh);
        let microsoft = ProviderPreset::microsoft("contoso.onmicrosoft.com").expect("valid tenant");
        assert_eq!(
            microsoft.token_endpoint,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(microsoft.rotates_refresh_tokens && microsoft.send_scope_on_refresh);
        assert!(ProviderPreset::microsoft("common/../evil").is_err());
        assert!(ProviderPreset::generic("http://example.com/t", ClientAuth::None).is_err());
    }
}
