//! What a child needs in its environment to find a server on loopback,
//! and what must go because it would send its client library elsewhere
//! (`../shared/notes/metadata-server.md`, measured against the libraries).

use std::path::PathBuf;
use std::process::Command;

use vault_format::SecretString;

/// Variables that would make Google's libraries look elsewhere than the
/// metadata server (or demand mTLS from it).
pub const GCE_SHADOWS: [&str; 3] = [
    "GOOGLE_APPLICATION_CREDENTIALS",
    "NO_GCE_CHECK",
    "GCE_METADATA_MTLS_MODE",
];

/// Variables that would make azure-identity choose another credential
/// (Service Fabric, Arc, a service principal, workload identity) or a
/// user-assigned identity.
pub const AZURE_SHADOWS: [&str; 11] = [
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
];

/// Where Google's libraries find the metadata server, and nothing that
/// would shadow it.
pub fn for_gce(command: &mut Command, port: u16) {
    let host = format!("127.0.0.1:{port}");
    for variable in ["GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"] {
        command.env(variable, &host);
    }
    command.env("METADATA_SERVER_DETECTION", "assume-present");
    for variable in GCE_SHADOWS {
        command.env_remove(variable);
    }
    bypass_proxies(command);
    if let Some(file) = gcloud_adc_file().filter(|f| f.exists()) {
        tracing::warn!(
            "{} exists: google.auth.default() and google-auth-library use it instead of the metadata server; \
             move it aside (or set CLOUDSDK_CONFIG to an empty directory) for the job to get tokvault's tokens",
            file.display()
        );
    }
}

/// gcloud's application default credentials, which Google's libraries
/// prefer over a metadata server.
fn gcloud_adc_file() -> Option<PathBuf> {
    let config = std::env::var_os("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/gcloud")))?;
    Some(config.join("application_default_credentials.json"))
}

/// App Service's managed-identity variables, and nothing that would make
/// azure-identity pick another credential.
pub fn for_azure(command: &mut Command, port: u16, header: &SecretString) {
    command.env(
        "IDENTITY_ENDPOINT",
        format!("http://127.0.0.1:{port}{}", crate::azure::PATH),
    );
    command.env("IDENTITY_HEADER", header.expose_secret());
    for variable in AZURE_SHADOWS {
        command.env_remove(variable);
    }
    bypass_proxies(command);
}

/// An inherited HTTP(S)_PROXY would send the loopback requests to the
/// proxy: loopback goes on the no-proxy lists.
fn bypass_proxies(command: &mut Command) {
    for variable in ["NO_PROXY", "no_proxy"] {
        let value = match std::env::var(variable) {
            Ok(list) if !list.trim().is_empty() => format!("{list},127.0.0.1,localhost"),
            _ => "127.0.0.1,localhost".to_owned(),
        };
        command.env(variable, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// What the command will set (`Some`) and remove (`None`).
    fn envs(command: &Command) -> BTreeMap<String, Option<String>> {
        command
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn a_gce_child_finds_the_server_and_nothing_that_shadows_it() {
        let mut command = Command::new("true");
        for_gce(&mut command, 8181);
        let envs = envs(&command);
        for variable in ["GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"] {
            assert_eq!(
                envs[variable].as_deref(),
                Some("127.0.0.1:8181"),
                "{variable}"
            );
        }
        assert_eq!(
            envs["METADATA_SERVER_DETECTION"].as_deref(),
            Some("assume-present")
        );
        for variable in GCE_SHADOWS {
            assert_eq!(envs[variable], None, "{variable} is removed");
        }
        assert!(
            envs["NO_PROXY"]
                .as_deref()
                .is_some_and(|v| v.ends_with("127.0.0.1,localhost"))
        );
    }

    #[test]
    fn an_azure_child_gets_the_endpoint_and_header_and_no_other_credential() {
        let mut command = Command::new("true");
        for_azure(&mut command, 8181, &SecretString::copy_from("secret"));
        let envs = envs(&command);
        assert_eq!(
            envs["IDENTITY_ENDPOINT"].as_deref(),
            Some("http://127.0.0.1:8181/msi/token")
        );
        assert_eq!(envs["IDENTITY_HEADER"].as_deref(), Some("secret"));
        for variable in AZURE_SHADOWS {
            assert_eq!(envs[variable], None, "{variable} is removed");
        }
    }
}
