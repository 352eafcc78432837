//! The re-authorization alert hook: a shell command run once per record a
//! refresh run found rejected, with what a person needs to act in its
//! environment (never a secret). A failing or hanging hook is logged, not
//! fatal: the run's outcome is already decided.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use vault_format::{Record, RefreshClass};

use crate::paths::KEY_VARIABLES;
use crate::refresh::{RecordResult, RunSummary};

/// `--on-reauth-needed`: the command and how long it may run.
#[derive(Clone, Debug)]
pub struct ReauthHook {
    /// Run with `sh -c`.
    pub command: String,
    /// Then it is killed with everything it started (its process group).
    pub timeout: Duration,
}

impl ReauthHook {
    /// Runs the hook once per record of `summary` that needs
    /// re-authorization; `newly` names those that needed none before this
    /// run (`TOKVAULT_FIRST_ALERT=1`).
    pub fn run(&self, location: &str, summary: &RunSummary, newly: &[String]) {
        for result in &summary.results {
            if result.class != Some(RefreshClass::ReauthorizationRequired) {
                continue;
            }
            let env = hook_env(result, summary.vault.record(&result.name), newly, location);
            match run_with_timeout(&self.command, &env, self.timeout) {
                Err(e) => {
                    tracing::error!(record = %result.name, "the --on-reauth-needed hook could not start: {e}");
                }
                Ok(Some(status)) if status.success() => {
                    tracing::info!(record = %result.name, "ran the --on-reauth-needed hook");
                }
                Ok(Some(status)) => {
                    tracing::error!(record = %result.name, "the --on-reauth-needed hook failed ({status})");
                }
                Ok(None) => tracing::error!(
                    record = %result.name,
                    "the --on-reauth-needed hook ran longer than {} s and was killed \
                     (--on-reauth-needed-timeout)",
                    self.timeout.as_secs()
                ),
            }
        }
    }
}

/// What the hook learns about one rejected record.
fn hook_env(
    result: &RecordResult,
    record: Option<&Record>,
    newly: &[String],
    location: &str,
) -> Vec<(&'static str, String)> {
    let description = record
        .and_then(|r| r.last_refresh.as_ref())
        .and_then(|s| s.error_description.clone());
    vec![
        ("TOKVAULT_RECORD", result.name.clone()),
        (
            "TOKVAULT_ACCOUNT",
            record.and_then(|r| r.account.clone()).unwrap_or_default(),
        ),
        (
            "TOKVAULT_PROVIDER",
            record.map_or("", |r| r.provider.as_str()).to_owned(),
        ),
        (
            "TOKVAULT_ERROR",
            result.error_code.clone().unwrap_or_default(),
        ),
        (
            "TOKVAULT_ERROR_DESCRIPTION",
            description.unwrap_or_default(),
        ),
        ("TOKVAULT_MESSAGE", result.message.clone()),
        (
            "TOKVAULT_FIRST_ALERT",
            if newly.contains(&result.name) {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        ),
        ("TOKVAULT_VAULT", location.to_owned()),
    ]
}

/// `sh -c command` with `env` added, stdin closed, stdout to our stderr
/// (never into the front end's stdout), in its own process group, killed
/// whole after `timeout` (`Ok(None)`).
fn run_with_timeout(
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let mut hook = Command::new("sh");
    for variable in KEY_VARIABLES {
        hook.env_remove(variable);
    }
    let mut child = hook
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        // A grandchild would keep our stderr open: the whole group goes.
        .process_group(0)
        .spawn()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                kill_group(&child);
                let _ = child.wait();
                return Ok(None);
            }
        }
    }
}

/// SIGKILL to the hook's process group (its pid: it leads the group).
fn kill_group(child: &std::process::Child) {
    let group = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::{ClientAuth, Credential, Provider, RefreshTokenCredential, SecretString};

    fn rejected(name: &str) -> RecordResult {
        RecordResult {
            name: name.to_owned(),
            class: Some(RefreshClass::ReauthorizationRequired),
            message: "refused".to_owned(),
            error_code: Some("invalid_grant".to_owned()),
            attempts: 1,
        }
    }

    fn record(name: &str) -> Record {
        let mut record = Record::new(
            name,
            Provider::Google,
            "https://oauth2.googleapis.com/token",
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: "id".to_owned(),
                client_secret: Some(SecretString::copy_from("client-secret")),
                client_auth: ClientAuth::ClientSecretPost,
                refresh_token: SecretString::copy_from("refresh-token"),
                refresh_token_issued_at: None,
                authorization_endpoint: None,
            }),
            1,
        );
        record.account = Some("me@example.com".to_owned());
        record
    }

    #[test]
    fn the_environment_names_the_record_and_its_error_and_no_secret() {
        let record = record("mail");
        let env = hook_env(&rejected("mail"), Some(&record), &["mail".to_owned()], "/v");
        let get = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("TOKVAULT_RECORD"), Some("mail"));
        assert_eq!(get("TOKVAULT_ACCOUNT"), Some("me@example.com"));
        assert_eq!(get("TOKVAULT_PROVIDER"), Some("google"));
        assert_eq!(get("TOKVAULT_ERROR"), Some("invalid_grant"));
        assert_eq!(get("TOKVAULT_FIRST_ALERT"), Some("1"));
        assert_eq!(get("TOKVAULT_VAULT"), Some("/v"));
        assert!(
            !env.iter()
                .any(|(_, v)| v.contains("secret") || v.contains("token"))
        );
        let again = hook_env(&rejected("mail"), Some(&record), &[], "/v");
        assert!(again.contains(&("TOKVAULT_FIRST_ALERT", "0".to_owned())));
    }

    #[test]
    fn a_hook_sees_its_environment_and_its_status_is_returned() {
        let env = [("TOKVAULT_RECORD", "mail".to_owned())];
        let status = run_with_timeout(
            "test \"$TOKVAULT_RECORD\" = mail && exit 3",
            &env,
            Duration::from_secs(10),
        )
        .expect("sh runs");
        assert_eq!(status.and_then(|s| s.code()), Some(3));
    }

    #[test]
    fn a_hanging_hook_is_killed_after_its_timeout() {
        let started = Instant::now();
        let status =
            run_with_timeout("sleep 30", &[], Duration::from_millis(200)).expect("sh runs");
        assert!(status.is_none(), "killed, no status");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
