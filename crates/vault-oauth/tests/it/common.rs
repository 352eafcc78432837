//! Shared helpers: records and refreshers for tests.

use std::time::Duration;

use vault_format::{
    ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString,
};
use vault_oauth::{HttpConfig, RefreshRequest, Refresher, RefresherConfig, RetryPolicy};

pub(crate) fn refresh_record(
    name: &str,
    token_endpoint: &str,
    client_id: &str,
    client_secret: Option<&str>,
    client_auth: ClientAuth,
    refresh_token: &str,
) -> Record {
    Record::new(
        name,
        Provider::Generic,
        token_endpoint,
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(SecretString::copy_from),
            client_auth,
            refresh_token: SecretString::copy_from(refresh_token),
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        1,
    )
}

pub(crate) fn request(record: &Record) -> RefreshRequest {
    RefreshRequest::from_record(record).expect("record makes a valid request")
}

/// Fast retries so that fault tests take milliseconds, not seconds.
pub(crate) fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(20),
    }
}

pub(crate) fn refresher(retry: RetryPolicy) -> Refresher {
    refresher_with(retry, HttpConfig::default(), 16)
}

pub(crate) fn refresher_with(
    retry: RetryPolicy,
    http: HttpConfig,
    concurrency: usize,
) -> Refresher {
    Refresher::new(RefresherConfig {
        http,
        retry,
        concurrency,
    })
    .expect("client builds")
}

pub(crate) fn refresh_token_of(record: &Record) -> &str {
    match &record.credential {
        Credential::RefreshToken(credential) => credential.refresh_token.expose_secret(),
        _ => panic!("not a refresh-token record"),
    }
}
