//! Where things are when the options do not say: the XDG base directories,
//! systemd's credentials directory (`LoadCredential=`) and the AWS
//! variables. Every lookup has a form that takes the environment as a
//! function, so it is tested without changing the process's own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vault_format::SecretString;

use crate::error::{EngineError, Result};
use crate::store::{AnyBackend, FileBackend, S3Backend, S3Location, S3Settings};
use crate::unlock::{SecretFilePolicy, UnlockMaterial};

/// The variables that say where the keys are: withheld from every program
/// tokvault starts (`exec`, the alert hook), which has no business there.
pub const KEY_VARIABLES: [&str; 3] = [
    "TOKVAULT_IDENTITY",
    "TOKVAULT_PASSPHRASE_FILE",
    "CREDENTIALS_DIRECTORY",
];

/// Reads one environment variable.
type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn process_env(variable: &str) -> Option<OsString> {
    std::env::var_os(variable)
}

/// A variable that is set and not empty.
fn set(env: Env<'_>, variable: &str) -> Option<OsString> {
    env(variable).filter(|v| !v.is_empty())
}

fn xdg(env: Env<'_>, variable: &str, fallback: &str) -> Result<PathBuf> {
    if let Some(dir) = set(env, variable) {
        return Ok(PathBuf::from(dir));
    }
    let home = set(env, "HOME").ok_or_else(|| {
        EngineError::usage(format!(
            "neither {variable} nor HOME is set: pass the path explicitly"
        ))
    })?;
    Ok(PathBuf::from(home).join(fallback))
}

/// `$XDG_DATA_HOME/tokvault/vault.tokvault`.
pub fn default_vault() -> Result<PathBuf> {
    Ok(xdg(&process_env, "XDG_DATA_HOME", ".local/share")?.join("tokvault/vault.tokvault"))
}

/// `$XDG_STATE_HOME/tokvault`.
pub fn default_state_dir() -> Result<PathBuf> {
    Ok(xdg(&process_env, "XDG_STATE_HOME", ".local/state")?.join("tokvault"))
}

/// `$XDG_CONFIG_HOME/tokvault/identity.txt`.
pub fn default_identity() -> Result<PathBuf> {
    default_identity_in(&process_env)
}

fn default_identity_in(env: Env<'_>) -> Result<PathBuf> {
    Ok(xdg(env, "XDG_CONFIG_HOME", ".config")?.join("tokvault/identity.txt"))
}

/// A systemd `LoadCredential=` file.
fn credential(env: Env<'_>, name: &str) -> Option<PathBuf> {
    set(env, "CREDENTIALS_DIRECTORY").map(|dir| PathBuf::from(dir).join(name))
}

impl SecretFilePolicy {
    /// Secret files may be 0440 in systemd's credentials directory.
    pub fn from_env() -> Self {
        Self {
            credentials_dir: set(&process_env, "CREDENTIALS_DIRECTORY").map(PathBuf::from),
        }
    }
}

impl UnlockMaterial {
    /// The identities and passphrase the options name, else the systemd
    /// credentials and the XDG identity that exist. A passphrase prompt
    /// comes later, only if needed (`Callbacks`).
    pub fn locate(identities: &[PathBuf], passphrase_file: Option<&Path>) -> Result<Self> {
        Self::load(
            &identity_paths(&process_env, identities),
            passphrase_path(&process_env, passphrase_file).as_deref(),
            &SecretFilePolicy::from_env(),
        )
    }
}

/// Identity files: the given ones, else the systemd credential and the XDG
/// default when they exist.
fn identity_paths(env: Env<'_>, given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let mut found = Vec::new();
    if let Some(path) = credential(env, "tokvault-identity").filter(|p| p.exists()) {
        found.push(path);
    }
    if let Ok(path) = default_identity_in(env)
        && path.exists()
    {
        found.push(path);
    }
    found
}

fn passphrase_path(env: Env<'_>, given: Option<&Path>) -> Option<PathBuf> {
    given
        .map(Path::to_path_buf)
        .or_else(|| credential(env, "tokvault-passphrase").filter(|p| p.exists()))
}

impl AnyBackend {
    /// The vault at `vault`: an object for `s3://BUCKET/KEY`, reached with
    /// [`S3Settings::from_env`], else a file.
    pub fn locate(vault: &Path, state_dir: &Path, lease_ttl: Duration) -> Result<Self> {
        let Some(url) = vault.to_str().filter(|v| v.starts_with("s3://")) else {
            return Ok(Self::File(FileBackend::new(vault, state_dir)?));
        };
        let location = S3Location::parse(url).ok_or_else(|| {
            EngineError::usage(format!(
                "--vault {url:?}: write s3://BUCKET/KEY (a lowercase bucket name and an object key)"
            ))
        })?;
        let settings = S3Settings::from_env(lease_ttl)?;
        Ok(Self::S3(Box::new(S3Backend::new(
            &location, &settings, state_dir,
        )?)))
    }
}

impl S3Settings {
    /// The standard AWS variables, else the systemd credentials
    /// `aws-access-key-id`, `aws-secret-access-key`, `aws-session-token`.
    pub fn from_env(lease_ttl: Duration) -> Result<Self> {
        s3_settings(&process_env, &SecretFilePolicy::from_env(), lease_ttl)
    }
}

fn s3_settings(env: Env<'_>, policy: &SecretFilePolicy, lease_ttl: Duration) -> Result<S3Settings> {
    let var = |name: &str| set(env, name).and_then(|v| v.into_string().ok());
    let secret = |variable: &str, file: &str| -> Result<Option<SecretString>> {
        if let Some(value) = var(variable) {
            return Ok(Some(SecretString::from(value)));
        }
        let Some(path) = credential(env, file).filter(|p| p.exists()) else {
            return Ok(None);
        };
        let bytes = policy.read(&path, "S3 credential")?;
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        Ok(Some(SecretString::from(text)))
    };
    Ok(S3Settings {
        endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
        region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        access_key_id: secret("AWS_ACCESS_KEY_ID", "aws-access-key-id")?
            .map(|id| id.expose_secret().to_owned()),
        secret_access_key: secret("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key")?,
        session_token: secret("AWS_SESSION_TOKEN", "aws-session-token")?,
        lease_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_os_str().to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn xdg_prefers_its_variable_then_home_and_else_asks_for_a_path() {
        let env = env_of(&[("HOME", Path::new("/home/me"))]);
        assert_eq!(
            default_identity_in(&env).expect("home"),
            Path::new("/home/me/.config/tokvault/identity.txt")
        );
        let env = env_of(&[
            ("HOME", Path::new("/home/me")),
            ("XDG_CONFIG_HOME", Path::new("/cfg")),
        ]);
        assert_eq!(
            default_identity_in(&env).expect("xdg"),
            Path::new("/cfg/tokvault/identity.txt")
        );
        let env = env_of(&[("HOME", Path::new(""))]);
        let error = default_identity_in(&env).expect_err("nothing set");
        assert_eq!(error.kind(), ErrorKind::Usage);
    }

    #[test]
    fn given_identities_win_else_the_credential_and_the_default_that_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let credentials = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("tokvault")).expect("mkdir");
        std::fs::create_dir_all(&credentials).expect("mkdir");
        let env = env_of(&[
            ("CREDENTIALS_DIRECTORY", &credentials),
            ("XDG_CONFIG_HOME", &config),
        ]);
        assert!(identity_paths(&env, &[]).is_empty(), "none exists yet");
        std::fs::write(credentials.join("tokvault-identity"), "x").expect("write");
        std::fs::write(config.join("tokvault/identity.txt"), "x").expect("write");
        assert_eq!(
            identity_paths(&env, &[]),
            [
                credentials.join("tokvault-identity"),
                config.join("tokvault/identity.txt")
            ]
        );
        let given = [PathBuf::from("/given")];
        assert_eq!(identity_paths(&env, &given), given);
        assert_eq!(
            passphrase_path(&env, None),
            None,
            "no passphrase credential"
        );
        std::fs::write(credentials.join("tokvault-passphrase"), "x").expect("write");
        assert_eq!(
            passphrase_path(&env, None),
            Some(credentials.join("tokvault-passphrase"))
        );
    }

    #[test]
    fn s3_settings_take_the_aws_variables_first_then_the_credentials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let credentials = dir.path().join("credentials");
        std::fs::create_dir_all(&credentials).expect("mkdir");
        for (file, value) in [
            ("aws-access-key-id", "file-id\n"),
            ("aws-secret-access-key", "file-secret\n"),
        ] {
            std::fs::write(credentials.join(file), value).expect("write");
        }
        let policy = SecretFilePolicy {
            credentials_dir: Some(credentials.clone()),
        };
        let ttl = Duration::from_secs(60);
        let env = env_of(&[
            ("CREDENTIALS_DIRECTORY", &credentials),
            ("AWS_ENDPOINT_URL", Path::new("http://127.0.0.1:1")),
            ("AWS_ENDPOINT_URL_S3", Path::new("http://127.0.0.1:2")),
            ("AWS_DEFAULT_REGION", Path::new("eu-west-1")),
            ("AWS_SECRET_ACCESS_KEY", Path::new("variable-secret")),
        ]);
        let settings = s3_settings(&env, &policy, ttl).expect("settings");
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        assert_eq!(settings.access_key_id.as_deref(), Some("file-id"));
        let secret = settings.secret_access_key.expect("a secret");
        assert_eq!(secret.expose_secret(), "variable-secret");
        assert!(settings.session_token.is_none(), "no token anywhere");
        assert_eq!(settings.lease_ttl, ttl);
        let empty = env_of(&[
            ("CREDENTIALS_DIRECTORY", &credentials),
            ("AWS_SECRET_ACCESS_KEY", Path::new("")),
        ]);
        let settings = s3_settings(&empty, &policy, ttl).expect("settings");
        let secret = settings.secret_access_key.expect("from the credential");
        assert_eq!(
            secret.expose_secret(),
            "file-secret",
            "empty counts as unset"
        );
        let nothing = s3_settings(&env_of(&[]), &SecretFilePolicy::default(), ttl)
            .expect("no settings at all");
        assert!(nothing.endpoint.is_none() && nothing.access_key_id.is_none());
    }

    #[test]
    fn an_s3_vault_needs_a_bucket_and_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ttl = Duration::from_secs(60);
        for bad in [
            "s3://",
            "s3://bucket",
            "s3://Bucket/key",
            "s3://bucket/dir/",
        ] {
            let error = AnyBackend::locate(Path::new(bad), dir.path(), ttl)
                .expect_err("not a vault object");
            assert_eq!(error.kind(), ErrorKind::Usage, "{bad}");
            assert!(error.to_string().contains("s3://BUCKET/KEY"), "{error}");
        }
        let file =
            AnyBackend::locate(&dir.path().join("v.tokvault"), dir.path(), ttl).expect("a file");
        assert!(matches!(file, AnyBackend::File(_)));
    }
}
