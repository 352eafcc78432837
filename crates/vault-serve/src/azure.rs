//! The App Service managed-identity endpoint that azure-identity (through
//! MSAL) asks when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set:
//! `GET ENDPOINT?api-version=2019-08-01&resource=R` with the header
//! `X-IDENTITY-HEADER`.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq as _;
use vault_format::SecretString;

/// The path of the token endpoint (`IDENTITY_ENDPOINT`).
pub const PATH: &str = "/msi/token";

/// What the managed-identity endpoint serves.
#[derive(Debug)]
pub struct AzureConfig {
    /// The `IDENTITY_HEADER` value a request must carry.
    pub header: SecretString,
    /// Resource (an origin such as `https://graph.microsoft.com`) → record.
    pub resources: BTreeMap<String, String>,
}

impl AzureConfig {
    /// Whether `presented` is the identity header, compared in constant
    /// time.
    pub fn header_matches(&self, presented: &[u8]) -> bool {
        let expected = self.header.expose_secret().as_bytes();
        !expected.is_empty() && bool::from(expected.ct_eq(presented))
    }

    /// The record serving `resource`, or a message saying which resources
    /// are served.
    pub fn record_for(&self, resource: &str) -> Result<(&str, &str), String> {
        let served = || {
            self.resources
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        let origin = origin(resource).ok_or_else(|| {
            format!(
                "resource {resource:?} is not a URL; this server serves: {}",
                served()
            )
        })?;
        self.resources
            .get_key_value(&origin)
            .map(|(resource, record)| (resource.as_str(), record.as_str()))
            .ok_or_else(|| {
                format!(
                    "resource {resource:?} is not served here; this server serves: {}",
                    served()
                )
            })
    }
}

/// The origin of a URL (`https://graph.microsoft.com/Mail.Send` →
/// `https://graph.microsoft.com`), `None` for anything else (`openid`).
pub fn origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return None;
    }
    Some(parsed.origin().ascii_serialization())
}

/// The resources a record's scopes name: the origins of its URL-shaped
/// scopes.
pub fn resources_of_scopes<'a>(scopes: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut resources: Vec<String> = scopes.into_iter().filter_map(|s| origin(s)).collect();
    resources.sort();
    resources.dedup();
    resources
}

/// The `resource` parameter of a query string.
pub fn resource_param(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "resource")
        .map(|(_, value)| value.into_owned())
}

/// A new identity header (`exec --azure-server`): 32 random bytes in hex,
/// a secret for one run.
pub fn random_header() -> vault_engine::Result<SecretString> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(bytes.as_mut()).map_err(|e| {
        vault_engine::EngineError::failure(format!("no randomness for the identity header: {e}"))
    })?;
    Ok(SecretString::from(vault_engine::fsio::hex(bytes.as_ref())))
}

/// The identity header kept in a private file (`serve
/// --azure-header-file`): one line of printable ASCII, as a header value
/// must be.
pub fn read_header(
    path: &std::path::Path,
    policy: &vault_engine::SecretFilePolicy,
) -> vault_engine::Result<SecretString> {
    let bytes = policy.read(path, "identity header file")?;
    let text = std::str::from_utf8(&bytes)
        .map(str::trim)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            vault_engine::EngineError::usage(format!(
                "{} must hold the identity header: one line of printable ASCII, e.g. from `head -c 32 /dev/urandom | base64`",
                path.display()
            ))
        })?;
    Ok(SecretString::copy_from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AzureConfig {
        let scopes = [
            "https://graph.microsoft.com/Mail.Send".to_owned(),
            "https://graph.microsoft.com/User.Read".to_owned(),
            "offline_access".to_owned(),
            "openid".to_owned(),
        ];
        AzureConfig {
            header: SecretString::copy_from("s3cr3t"),
            resources: resources_of_scopes(&scopes)
                .into_iter()
                .map(|r| (r, "graph".to_owned()))
                .collect(),
        }
    }

    #[test]
    fn url_shaped_scopes_give_their_origins() {
        let config = config();
        assert_eq!(
            config.resources.keys().collect::<Vec<_>>(),
            ["https://graph.microsoft.com"]
        );
        assert_eq!(
            config
                .record_for("https://graph.microsoft.com")
                .map(|r| r.1),
            Ok("graph")
        );
        assert_eq!(
            config
                .record_for("https://graph.microsoft.com/")
                .map(|r| r.1),
            Ok("graph")
        );
        let refused = config
            .record_for("https://management.azure.com")
            .expect_err("not served");
        assert!(refused.contains("https://graph.microsoft.com"), "{refused}");
        assert!(config.record_for("graph").is_err());
    }

    #[test]
    fn the_header_must_match_exactly() {
        let config = config();
        assert!(config.header_matches(b"s3cr3t"));
        assert!(!config.header_matches(b"s3cr3"));
        assert!(!config.header_matches(b"s3cr3tt"));
        assert!(!config.header_matches(b""));
    }

    #[test]
    fn the_resource_parameter_is_decoded() {
        assert_eq!(
            resource_param("api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com")
                .as_deref(),
            Some("https://graph.microsoft.com")
        );
        assert_eq!(resource_param("api-version=2019-08-01"), None);
    }

    #[test]
    fn a_header_file_holds_one_line_of_printable_ascii_and_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("header");
        let policy = vault_engine::SecretFilePolicy::default();
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write("c2VjcmV0\n", 0o600);
        let header = read_header(&path, &policy).expect("a header");
        assert_eq!(header.expose_secret(), "c2VjcmV0");
        for bad in ["\n", "two words\n", "caf\u{e9}\n"] {
            write(bad, 0o600);
            let error = read_header(&path, &policy).expect_err(bad);
            assert_eq!(error.kind(), vault_engine::ErrorKind::Usage, "{bad:?}");
            assert!(error.to_string().contains("printable ASCII"), "{error}");
        }
        write("c2VjcmV0\n", 0o644);
        let error = read_header(&path, &policy).expect_err("readable by others");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn a_random_header_is_new_each_time() {
        let one = random_header().expect("randomness");
        let two = random_header().expect("randomness");
        assert_eq!(one.expose_secret().len(), 64);
        assert!(one.expose_secret().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(one.expose_secret(), two.expose_secret());
    }
}
