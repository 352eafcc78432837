//! Which records need a refresh now: a pure function of the record, the
//! time, the minimum remaining validity and `force`.

use std::time::Duration;

use vault_format::Record;

/// Default minimum remaining validity of an access token: 10 minutes.
pub const DEFAULT_MIN_VALIDITY: Duration = Duration::from_secs(600);

/// Whether (and why) a record's access token should be refreshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshNeed {
    /// Refresh requested regardless of validity.
    Forced,
    /// There is no access token yet.
    NoAccessToken,
    /// The server gave no lifetime, so validity cannot be known.
    UnknownExpiry,
    /// The access token has expired.
    Expired,
    /// It expires within the minimum validity.
    ExpiresSoon {
        /// Seconds left.
        remaining_secs: u64,
    },
    /// It stays valid beyond the minimum validity.
    Fresh {
        /// Seconds left.
        remaining_secs: u64,
    },
}

impl RefreshNeed {
    /// Whether a refresh should happen.
    pub fn should_refresh(self) -> bool {
        !matches!(self, Self::Fresh { .. })
    }
}

/// Decides for one record at `now` (Unix seconds).
///
/// ```
/// use vault_format::{AccessToken, ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString};
/// use vault_oauth::{refresh_need, RefreshNeed, DEFAULT_MIN_VALIDITY};
///
/// let credential = Credential::RefreshToken(RefreshTokenCredential {
///     client_id: "client".into(),
///     client_secret: None,
///     client_auth: ClientAuth::None,
///     refresh_token: SecretString::copy_from("refresh"),
///     refresh_token_issued_at: None,
///     authorization_endpoint: None,
/// });
/// let mut record = Record::new("mail", Provider::Generic, "https://auth.example/token", credential, 0);
/// let now = 1_700_000_000;
/// record.access_token = Some(AccessToken { token: SecretString::copy_from("access"), expires_at: Some(now + 300) });
/// assert_eq!(
///     refresh_need(&record, now, DEFAULT_MIN_VALIDITY, false),
///     RefreshNeed::ExpiresSoon { remaining_secs: 300 }
/// );
/// assert!(!refresh_need(&record, now, std::time::Duration::from_secs(60), false).should_refresh());
/// ```
pub fn refresh_need(record: &Record, now: u64, min_validity: Duration, force: bool) -> RefreshNeed {
    if force {
        return RefreshNeed::Forced;
    }
    let Some(access) = &record.access_token else {
        return RefreshNeed::NoAccessToken;
    };
    let Some(expires_at) = access.expires_at else {
        return RefreshNeed::UnknownExpiry;
    };
    if expires_at <= now {
        return RefreshNeed::Expired;
    }
    let remaining_secs = expires_at - now;
    if remaining_secs < min_validity.as_secs() {
        RefreshNeed::ExpiresSoon { remaining_secs }
    } else {
        RefreshNeed::Fresh { remaining_secs }
    }
}

/// Indices of the records that need a refresh, in order.
pub fn records_to_refresh(
    records: &[Record],
    now: u64,
    min_validity: Duration,
    force: bool,
) -> Vec<usize> {
    records
        .iter()
        .enumerate()
        .filter(|(_, record)| refresh_need(record, now, min_validity, force).should_refresh())
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::{
        AccessToken, ClientAuth, Credential, Provider, RefreshTokenCredential, SecretString,
    };

    fn record(expires_at: Option<Option<u64>>) -> Record {
        let mut record = Record::new(
            "r",
            Provider::Generic,
            "https://a.example/token",
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: "c".to_owned(),
                client_secret: None,
                client_auth: ClientAuth::None,
                refresh_token: SecretString::copy_from("rt"),
                refresh_token_issued_at: None,
                authorization_endpoint: None,
            }),
            0,
        );
        record.access_token = expires_at.map(|expires_at| AccessToken {
            token: SecretString::copy_from("at"),
            expires_at,
        });
        record
    }

    #[test]
    fn decisions_at_the_boundaries() {
        let min = DEFAULT_MIN_VALIDITY;
        let now = 1_000_000;
        assert_eq!(
            refresh_need(&record(None), now, min, false),
            RefreshNeed::NoAccessToken
        );
        assert_eq!(
            refresh_need(&record(Some(None)), now, min, false),
            RefreshNeed::UnknownExpiry
        );
        assert_eq!(
            refresh_need(&record(Some(Some(now))), now, min, false),
            RefreshNeed::Expired
        );
        assert_eq!(
            refresh_need(&record(Some(Some(now + 599))), now, min, false),
            RefreshNeed::ExpiresSoon {
                remaining_secs: 599
            }
        );
        assert_eq!(
            refresh_need(&record(Some(Some(now + 600))), now, min, false),
            RefreshNeed::Fresh {
                remaining_secs: 600
            }
        );
        assert_eq!(
            refresh_need(&record(Some(Some(now + 600))), now, min, true),
            RefreshNeed::Forced
        );
        let records = [
            record(Some(Some(now + 3600))),
            record(None),
            record(Some(Some(now + 10))),
        ];
        assert_eq!(records_to_refresh(&records, now, min, false), vec![1, 2]);
        assert_eq!(records_to_refresh(&records, now, min, true), vec![0, 1, 2]);
    }
}
