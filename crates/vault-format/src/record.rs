//! The token records a vault holds. Every secret is a [`SecretString`] or
//! [`SecretBytes`]; these types have no `Serialize` impl, so records only
//! reach bytes through the payload encoder.

use crate::secret::{SecretBytes, SecretString};

/// Which provider's conventions a record follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Google (`https://oauth2.googleapis.com/token`, `client_secret_post`).
    Google,
    /// Microsoft identity platform.
    Microsoft,
    /// Any OAuth 2.0 token endpoint.
    Generic,
    /// A provider label a later version defines (`[a-z0-9-]`, 1..32 bytes),
    /// kept as written so that an older tokvault does not drop it.
    Other(String),
}

impl Provider {
    /// The stored label: `google`, `microsoft`, `generic` or the other label.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Google => "google",
            Self::Microsoft => "microsoft",
            Self::Generic => "generic",
            Self::Other(label) => label,
        }
    }

    /// Maps a stored label back (unknown labels become [`Provider::Other`]).
    pub fn from_label(label: &str) -> Self {
        match label {
            "google" => Self::Google,
            "microsoft" => Self::Microsoft,
            "generic" => Self::Generic,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// Public client: only `client_id` in the body.
    None,
    /// `client_id` and `client_secret` in the request body (Google).
    ClientSecretPost,
    /// HTTP Basic with `client_id:client_secret`.
    ClientSecretBasic,
}

/// An access token and when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token.
    pub token: SecretString,
    /// Unix seconds; `None` when the server gave no lifetime.
    pub expires_at: Option<u64>,
}

/// An OAuth 2.0 refresh-token credential (authorized user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokenCredential {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (none for public clients).
    pub client_secret: Option<SecretString>,
    /// Client authentication method.
    pub client_auth: ClientAuth,
    /// The refresh token.
    pub refresh_token: SecretString,
    /// Unix seconds when this refresh token was issued or last rotated.
    pub refresh_token_issued_at: Option<u64>,
    /// Authorization endpoint, kept so a later re-authorization can reuse it.
    pub authorization_endpoint: Option<String>,
}

/// A Google service-account key (RFC 7523 JWT bearer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountCredential {
    /// `client_email`, the JWT issuer.
    pub client_email: String,
    /// `private_key_id`, sent as the JWT `kid`.
    pub private_key_id: Option<String>,
    /// PKCS#8 PEM private key.
    pub private_key: SecretString,
    /// Subject for domain-wide delegation.
    pub subject: Option<String>,
}

/// The long-lived credential of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// A refresh token.
    RefreshToken(RefreshTokenCredential),
    /// A service-account private key.
    ServiceAccount(ServiceAccountCredential),
}

/// The class of the last refresh attempt's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefreshClass {
    /// A new access token was obtained.
    Refreshed,
    /// The grant was rejected (`invalid_grant`): a person must re-authorize.
    ReauthorizationRequired,
    /// Client or endpoint configuration is wrong.
    Misconfigured,
    /// Network trouble, 5xx, 429: retry later.
    Transient,
}

impl RefreshClass {
    /// Every class, in the order they are listed.
    pub const ALL: [Self; 4] = [
        Self::Refreshed,
        Self::ReauthorizationRequired,
        Self::Misconfigured,
        Self::Transient,
    ];

    /// The stable label used in output, metrics and state files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refreshed => "refreshed",
            Self::ReauthorizationRequired => "reauthorization-required",
            Self::Misconfigured => "misconfigured",
            Self::Transient => "transient",
        }
    }

    /// The class whose [`RefreshClass::as_str`] is `label`.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == label)
    }
}

/// The last refresh attempt of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshStatus {
    /// Unix seconds of the attempt.
    pub at: u64,
    /// Outcome class.
    pub class: RefreshClass,
    /// OAuth `error` code from the server, if any.
    pub error_code: Option<String>,
    /// Sanitized `error_description` from the server, if any.
    pub error_description: Option<String>,
}

/// Data a later tokvault version attaches to a record or to the vault.
///
/// An older reader keeps unknown non-critical extensions byte for byte when
/// it rewrites the vault, and refuses to open a vault with an unknown
/// critical one (see `docs/FORMAT.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// Registered tag (none are defined in v1).
    pub tag: u32,
    /// Whether a reader that does not know `tag` must refuse the vault.
    pub critical: bool,
    /// Opaque data, treated as secret.
    pub data: SecretBytes,
}

/// One named credential and its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Unique name: 1 to 128 of `A-Z a-z 0-9 . _ - @ + :`.
    pub name: String,
    /// Provider conventions.
    pub provider: Provider,
    /// Token endpoint: `https://`, or `http://` on loopback only.
    pub token_endpoint: String,
    /// Granted or requested scopes.
    pub scopes: Vec<String>,
    /// Account label (e-mail address or user name), informational.
    pub account: Option<String>,
    /// The long-lived credential.
    pub credential: Credential,
    /// The current access token, if any.
    pub access_token: Option<AccessToken>,
    /// Unix seconds when the record was created.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// The last refresh attempt.
    pub last_refresh: Option<RefreshStatus>,
    /// Extensions from a later version, kept as found.
    pub extensions: Vec<Extension>,
}

impl Record {
    /// A record with no access token, no refresh history and no extensions.
    pub fn new(
        name: impl Into<String>,
        provider: Provider,
        token_endpoint: impl Into<String>,
        credential: Credential,
        now: u64,
    ) -> Self {
        Self {
            name: name.into(),
            provider,
            token_endpoint: token_endpoint.into(),
            scopes: Vec::new(),
            account: None,
            credential,
            access_token: None,
            created_at: now,
            updated_at: now,
            last_refresh: None,
            extensions: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_labels_are_stable_and_round_trip() {
        let labels: Vec<_> = RefreshClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            labels,
            [
                "refreshed",
                "reauthorization-required",
                "misconfigured",
                "transient"
            ]
        );
        for class in RefreshClass::ALL {
            assert_eq!(RefreshClass::from_label(class.as_str()), Some(class));
        }
        assert_eq!(RefreshClass::from_label("fresh"), None);
    }
}
