//! The vault side of a login (the flows are `vault_oauth::LoginPlan::authorize`):
//! the checks that make a login fail before the browser opens, and the
//! saves of its tokens; and the client files a new login reads. A person authorized those tokens, so a save that
//! cannot be written keeps them in the rescue file.

use std::path::Path;

use vault_format::{Record, SecretString};
use vault_oauth::{
    ClientFile, Flow, FlowError, FlowOptions, LoginError, LoginPlan, LoginUi, Refreshed,
};
use zeroize::Zeroizing;

use crate::error::{EngineError, Result};
use crate::session::{IfWriteFails, Session};
use crate::store::Backend;
use crate::unlock::SecretFilePolicy;
use crate::vaults::merge;

impl<B: Backend> Session<B> {
    /// Fails when a new record could not be saved here: no vault, or one
    /// that cannot be written.
    pub async fn check_login_target(&self) -> Result<()> {
        if !self.exists().await? {
            return Err(EngineError::failure(format!(
                "no vault at {}: create one with `tokvault init`, or write a new one for a server with \
                 --seal-to RECIPIENT -o FILE",
                self.location()
            )));
        }
        self.backend().check_writable().await
    }

    /// Fails when `name` is taken and not to be replaced; opening the
    /// vault also fails a wrong key now rather than after the login.
    pub async fn check_name_free(&self, name: &str, replace: bool) -> Result<()> {
        let vault = self.open().await?;
        if vault.record(name).is_some() && !replace {
            return Err(EngineError::failure(format!(
                "a record named {name:?} already exists; re-authorize it with `tokvault login {name} --again`, \
                 or pass --replace"
            )));
        }
        Ok(())
    }

    /// The plan to re-authorize record `name` with what it stores;
    /// `scopes`, `auth_url` and `device_url` override.
    pub async fn plan_for(
        &self,
        name: &str,
        scopes: &[String],
        auth_url: Option<&str>,
        device_url: Option<&str>,
    ) -> Result<LoginPlan> {
        let vault = self.open().await?;
        let record = vault.record(name).ok_or_else(|| {
            EngineError::failure(format!(
                "no record named {name:?} to re-authorize (see `tokvault list`; a new one needs the client: \
                 `tokvault login {name} --client-secrets FILE ...`)"
            ))
        })?;
        Ok(LoginPlan::for_record(record, scopes, auth_url, device_url)?)
    }

    /// Saves the record of a new login, replacing one of the same name
    /// only when `replace`.
    pub async fn save_login(&self, record: Record, replace: bool) -> Result<()> {
        self.update(IfWriteFails::Rescue, |vault| merge(vault, record, replace))
            .await
    }

    /// Saves the tokens of a re-authorization of `name` (obtained with
    /// `plan` at `now`). Returns the record as saved.
    pub async fn save_reauthorization(
        &self,
        name: &str,
        plan: &LoginPlan,
        tokens: Refreshed,
        now: u64,
    ) -> Result<Record> {
        self.update(IfWriteFails::Rescue, |vault| {
            let record = vault.record_mut(name).ok_or_else(|| {
                EngineError::failure(format!(
                    "record {name:?} was removed while the login ran; nothing was saved"
                ))
            })?;
            plan.renew(record, tokens, now)?;
            Ok(record.clone())
        })
        .await
    }
}

/// Runs `plan`'s flow with `ui` answering for the person, and classes a
/// failure: temporary when trying again later can help, usage when an
/// endpoint given is wrong; a missing refresh token gets the provider's
/// hint.
pub async fn authorize(
    plan: &LoginPlan,
    options: FlowOptions,
    ui: &impl LoginUi,
) -> Result<Refreshed> {
    let refresher = crate::refresh::refresher()?;
    plan.authorize(&refresher, options, ui)
        .await
        .map_err(|e| login_error(e, plan, options.flow))
}

/// Runs a login for a new record `name` and returns the record.
pub async fn login_record(
    plan: &LoginPlan,
    name: &str,
    options: FlowOptions,
    ui: &impl LoginUi,
) -> Result<Record> {
    let tokens = authorize(plan, options, ui).await?;
    Ok(plan.new_record(name, tokens, crate::unix_now())?)
}

/// The plan to re-authorize `record` exactly as it is stored, for a front
/// end with no `--auth-url` to take (`refresh --reauthorize`): a record
/// that stores no authorization endpoint names the `login --again` to run.
pub fn stored_plan(record: &Record) -> Result<LoginPlan> {
    let plan = LoginPlan::for_record(record, &[], None, None)?;
    if plan.authorization_endpoint.is_empty() {
        return Err(EngineError::usage(format!(
            "the record stores no authorization endpoint; run `tokvault login {} \
             --again --auth-url AUTHORIZATION_URL` (the server's authorization_endpoint)",
            record.name
        )));
    }
    Ok(plan)
}

fn login_error(error: FlowError, plan: &LoginPlan, flow: Flow) -> EngineError {
    let error = match error {
        FlowError::Plan(error) => return error.into(),
        FlowError::Login(error) => error,
    };
    let mut message = error.to_string();
    if matches!(error, LoginError::NoRefreshToken) {
        message.push_str(&plan.no_refresh_token_causes(flow));
    }
    if error.is_transient() {
        EngineError::temporary(message)
    } else if matches!(error, LoginError::Endpoint(_)) {
        EngineError::usage(message)
    } else {
        EngineError::failure(message)
    }
}

/// The OAuth client JSON of a provider's console: it holds the client
/// secret, so it is read into memory that is wiped.
pub fn read_client_file(path: &Path) -> Result<ClientFile> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| EngineError::io("cannot read the client file", path, e))?,
    );
    Ok(ClientFile::parse(
        &bytes,
        &format!("client file {}", path.display()),
    )?)
}

/// A client secret file: one line of text, private like every secret file.
pub fn read_client_secret(path: &Path) -> Result<SecretString> {
    let bytes = SecretFilePolicy::from_env().read(path, "client secret file")?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| EngineError::failure(format!("{} is not text", path.display())))?
        .trim();
    if text.is_empty() {
        return Err(EngineError::failure(format!("{} is empty", path.display())));
    }
    Ok(SecretString::copy_from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::os::unix::fs::PermissionsExt as _;
    use vault_format::{ClientAuth, Provider};
    use vault_oauth::{OAuthClient, PlanError, TransientFailure, TransientKind};

    fn plan(provider: Provider) -> LoginPlan {
        LoginPlan {
            provider,
            token_endpoint: "https://auth.example/token".to_owned(),
            authorization_endpoint: String::new(),
            device_endpoint: None,
            client: OAuthClient {
                client_id: "id".to_owned(),
                client_secret: None,
                client_auth: ClientAuth::None,
            },
            scopes: Vec::new(),
            extra_params: Vec::new(),
            fixed_redirect: None,
        }
    }

    #[test]
    fn login_failures_are_classed_and_a_missing_refresh_token_gets_the_hint() {
        let google = plan(Provider::Google);
        let none = login_error(LoginError::NoRefreshToken.into(), &google, Flow::Loopback);
        assert_eq!(none.kind(), ErrorKind::Failure);
        assert!(none.to_string().contains("access_type=offline"), "{none}");
        let transient = TransientFailure {
            kind: TransientKind::Connect,
            error: None,
            retry_after: None,
        };
        let later = login_error(
            LoginError::Transient(transient).into(),
            &google,
            Flow::Loopback,
        );
        assert_eq!(later.kind(), ErrorKind::Temporary);
        let endpoint = login_error(
            LoginError::Endpoint("bad URL".to_owned()).into(),
            &google,
            Flow::Loopback,
        );
        assert_eq!(endpoint.kind(), ErrorKind::Usage);
        let plan_usage = login_error(
            PlanError::Usage("--device-url".to_owned()).into(),
            &google,
            Flow::Loopback,
        );
        assert_eq!(plan_usage.kind(), ErrorKind::Usage);
        let denied = login_error(LoginError::DeviceExpired.into(), &google, Flow::Loopback);
        assert_eq!(denied.kind(), ErrorKind::Failure);
        assert!(!denied.to_string().contains("access_type"), "{denied}");
    }

    #[test]
    fn a_client_secret_is_one_trimmed_line_of_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "  s3cret \n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            read_client_secret(&path).expect("read").expose_secret(),
            "s3cret"
        );
        std::fs::write(&path, " \n").expect("write");
        let empty = read_client_secret(&path).expect_err("empty");
        assert!(empty.to_string().ends_with("is empty"), "{empty}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        read_client_secret(&path).expect_err("readable by others");
    }

    #[test]
    fn a_client_file_that_is_missing_or_not_a_client_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.json");
        let missing = read_client_file(&path).expect_err("missing");
        assert!(
            missing
                .to_string()
                .starts_with("cannot read the client file"),
            "{missing}"
        );
        std::fs::write(&path, "{}").expect("write");
        let wrong = read_client_file(&path).expect_err("no client");
        assert!(wrong.to_string().contains("client file"), "{wrong}");
    }

    #[test]
    fn a_stored_plan_without_an_authorization_endpoint_names_the_login_to_run() {
        let record = |authorization_endpoint: Option<&str>| {
            Record::new(
                "mail",
                Provider::Generic,
                "https://auth.example/token",
                vault_format::Credential::RefreshToken(vault_format::RefreshTokenCredential {
                    client_id: "c".to_owned(),
                    client_secret: None,
                    client_auth: ClientAuth::None,
                    refresh_token: SecretString::copy_from("rt"),
                    refresh_token_issued_at: None,
                    authorization_endpoint: authorization_endpoint.map(str::to_owned),
                }),
                0,
            )
        };
        let error = stored_plan(&record(None)).expect_err("no endpoint");
        assert_eq!(error.kind(), ErrorKind::Usage);
        assert!(
            error
                .to_string()
                .contains("`tokvault login mail --again --auth-url AUTHORIZATION_URL`"),
            "{error}"
        );
        let plan = stored_plan(&record(Some("https://auth.example/authorize"))).expect("plan");
        assert_eq!(
            plan.authorization_endpoint,
            "https://auth.example/authorize"
        );
    }
}
