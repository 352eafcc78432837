//! What a server serves, from the options and the vault's records: the
//! Compute Engine accounts and the App Service resources, checked before
//! anything is bound.

use std::collections::BTreeMap;

use vault_engine::{EngineError, ErrorKind, Result};
use vault_format::{SecretString, Vault};

use crate::azure::AzureConfig;
use crate::gce::{GceAccount, GceConfig};
use crate::server::ServerConfig;

fn usage(message: impl Into<String>) -> EngineError {
    EngineError::new(ErrorKind::Usage, message.into())
}

/// The endpoints asked for.
#[derive(Debug, Default)]
pub struct Endpoints {
    /// Compute Engine accounts: (email, record); the first is `default`,
    /// and without an email it is the record's account.
    pub gce: Vec<(Option<String>, String)>,
    /// `project/project-id`.
    pub project_id: Option<String>,
    /// Records served as managed identities.
    pub azure: Vec<String>,
    /// Resources served besides the origins of the records' scopes.
    pub azure_resources: Vec<String>,
    /// The `IDENTITY_HEADER` requests must carry.
    pub azure_header: Option<SecretString>,
    /// Uids besides ours that may ask.
    pub allowed_uids: Vec<u32>,
}

/// The endpoints' configuration, checked against the vault's records.
pub fn server_config(vault: &Vault, endpoints: Endpoints) -> Result<ServerConfig> {
    let record = |name: &str| {
        vault
            .record(name)
            .ok_or_else(|| EngineError::no_record(name))
    };
    let mut accounts = Vec::new();
    for (email, name) in &endpoints.gce {
        let record = record(name)?;
        let email = email
            .clone()
            .or_else(|| record.account.clone())
            .unwrap_or_else(|| format!("{name}@tokvault.invalid"));
        if accounts.iter().any(|a: &GceAccount| a.email == email) {
            return Err(usage(format!(
                "two records are served as {email}; give each its own email"
            )));
        }
        accounts.push(GceAccount {
            email,
            record: name.clone(),
            scopes: record.scopes.clone(),
        });
    }
    let gce = (!accounts.is_empty()).then(|| GceConfig {
        accounts,
        project_id: endpoints.project_id.clone(),
    });
    let azure = match endpoints.azure_header {
        Some(header) if !endpoints.azure.is_empty() => Some(azure_config(
            vault,
            &endpoints.azure,
            &endpoints.azure_resources,
            header,
        )?),
        _ => None,
    };
    Ok(ServerConfig {
        gce,
        azure,
        allowed_uids: endpoints.allowed_uids,
    })
}

/// Each Azure record serves the origins of its URL-shaped scopes and the
/// `--azure-resource`s; no resource may point at two records.
fn azure_config(
    vault: &Vault,
    names: &[String],
    extra: &[String],
    header: SecretString,
) -> Result<AzureConfig> {
    let mut extra_origins = Vec::new();
    for resource in extra {
        extra_origins.push(crate::azure::origin(resource).ok_or_else(|| {
            usage(format!(
                "--azure-resource {resource:?} is not an http(s) URL (e.g. https://graph.microsoft.com)"
            ))
        })?);
    }
    let mut resources = BTreeMap::new();
    for name in names {
        let record = vault
            .record(name)
            .ok_or_else(|| EngineError::no_record(name))?;
        let mut served = crate::azure::resources_of_scopes(&record.scopes);
        served.extend(extra_origins.iter().cloned());
        if served.is_empty() {
            return Err(usage(format!(
                "record {name:?} has no URL-shaped scope to derive a resource from; name one with --azure-resource URL"
            )));
        }
        for resource in served {
            if let Some(other) = resources.insert(resource.clone(), name.clone())
                && other != *name
            {
                return Err(usage(format!(
                    "resource {resource} would be served by both {other:?} and {name:?}; serve them from separate servers"
                )));
            }
        }
    }
    Ok(AzureConfig { header, resources })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::{
        ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SlotSpec,
    };

    fn vault() -> Vault {
        let identity = age::x25519::Identity::generate();
        let mut vault = Vault::create(&[SlotSpec::Recipient(&identity.to_public().to_string())])
            .expect("vault");
        for (name, scope) in [
            ("graph", "https://graph.microsoft.com/Mail.Send"),
            ("graph2", "https://graph.microsoft.com/User.Read"),
            ("gmail", "https://www.googleapis.com/auth/gmail.send"),
            ("plain", "offline_access"),
        ] {
            let mut record = Record::new(
                name,
                Provider::Generic,
                "https://auth.example/token",
                Credential::RefreshToken(RefreshTokenCredential {
                    client_id: "c".to_owned(),
                    client_secret: None,
                    client_auth: ClientAuth::None,
                    refresh_token: SecretString::copy_from("r"),
                    refresh_token_issued_at: None,
                    authorization_endpoint: None,
                }),
                0,
            );
            record.scopes = vec![scope.to_owned()];
            vault.records_mut().push(record);
        }
        vault
    }

    fn azure(records: &[&str], extra: &[&str]) -> Result<ServerConfig> {
        server_config(
            &vault(),
            Endpoints {
                azure: records.iter().map(|r| (*r).to_owned()).collect(),
                azure_resources: extra.iter().map(|r| (*r).to_owned()).collect(),
                azure_header: Some(SecretString::copy_from("h")),
                ..Endpoints::default()
            },
        )
    }

    #[test]
    fn azure_resources_come_from_scopes_and_never_point_at_two_records() {
        let config = azure(&["graph", "gmail"], &[]).expect("config");
        let resources = config.azure.expect("azure").resources;
        assert_eq!(resources["https://graph.microsoft.com"], "graph");
        assert_eq!(resources["https://www.googleapis.com"], "gmail");
        let clash = azure(&["graph", "graph2"], &[]).expect_err("one resource, two records");
        assert_eq!(clash.kind(), ErrorKind::Usage);
        let none = azure(&["plain"], &[]).expect_err("no URL-shaped scope");
        assert!(none.to_string().contains("--azure-resource"), "{none}");
        let named = azure(&["plain"], &["https://graph.microsoft.com/"]).expect("named");
        assert_eq!(
            named.azure.expect("azure").resources["https://graph.microsoft.com"],
            "plain"
        );
        assert!(azure(&["missing"], &[]).is_err());
    }

    #[test]
    fn gce_accounts_default_to_the_record_and_emails_stay_unique() {
        let endpoints = |gce: Vec<(Option<String>, String)>| Endpoints {
            gce,
            ..Endpoints::default()
        };
        let config = server_config(
            &vault(),
            endpoints(vec![
                (None, "gmail".to_owned()),
                (Some("sheets@example.com".to_owned()), "plain".to_owned()),
            ]),
        )
        .expect("config");
        let accounts = config.gce.expect("gce").accounts;
        assert_eq!(accounts[0].email, "gmail@tokvault.invalid");
        assert_eq!(accounts[1].email, "sheets@example.com");
        let twice = server_config(
            &vault(),
            endpoints(vec![(None, "gmail".to_owned()), (None, "gmail".to_owned())]),
        )
        .expect_err("one email twice");
        assert_eq!(twice.kind(), ErrorKind::Usage);
    }

    #[test]
    fn the_records_served_are_listed_once_each() {
        let config = server_config(
            &vault(),
            Endpoints {
                gce: vec![
                    (None, "plain".to_owned()),
                    (Some("mail@example.com".to_owned()), "gmail".to_owned()),
                ],
                azure: vec!["graph".to_owned(), "gmail".to_owned()],
                azure_header: Some(SecretString::copy_from("h")),
                ..Endpoints::default()
            },
        )
        .expect("config");
        assert_eq!(config.records(), ["gmail", "graph", "plain"]);
    }
}
