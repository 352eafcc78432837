//! Refresh health kept between runs, per record: the last attempt and its
//! outcome, streaks of temporary failures (which never change the vault,
//! so they live here), when re-authorization was first needed, and
//! counters by outcome. Never a secret: names, times and classes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use vault_format::{RefreshClass, Vault};

use crate::error::Result;
use crate::refresh::RecordResult;
use crate::state::StateDir;

/// One record's history across runs. Transient failures never change the
/// vault (it stays byte-identical), so their streak lives here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordHealth {
    /// Unix seconds of the last refresh attempt.
    pub last_attempt_at: Option<u64>,
    /// Its outcome.
    pub last_outcome: Option<RefreshClass>,
    /// Temporary failures in a row, up to now.
    pub transient_in_a_row: u64,
    /// When the current streak of temporary failures began.
    pub failing_since: Option<u64>,
    /// When re-authorization was first found needed, until a refresh succeeds.
    pub reauthorization_needed_since: Option<u64>,
    /// Attempts by outcome label, since the health file was created.
    pub outcomes: BTreeMap<&'static str, u64>,
}

/// Health of every record of one vault, in `state_dir/health/`.
#[derive(Debug, Default)]
pub struct Health {
    /// By record name.
    pub records: BTreeMap<String, RecordHealth>,
}

impl Health {
    /// Reads the health file's text; anything unreadable counts as empty.
    pub fn parse(text: &str) -> Self {
        let mut health = Self::default();
        let Ok(Value::Object(top)) = serde_json::from_str::<Value>(text) else {
            return health;
        };
        let Some(Value::Object(records)) = top.get("records") else {
            return health;
        };
        for (name, entry) in records {
            let number = |key: &str| entry.get(key).and_then(Value::as_u64);
            let mut outcomes = BTreeMap::new();
            for class in RefreshClass::ALL {
                let label = class.as_str();
                if let Some(n) = entry["outcomes"].get(label).and_then(Value::as_u64) {
                    outcomes.insert(label, n);
                }
            }
            health.records.insert(
                name.clone(),
                RecordHealth {
                    last_attempt_at: number("last_attempt_at"),
                    last_outcome: entry["last_outcome"]
                        .as_str()
                        .and_then(RefreshClass::from_label),
                    transient_in_a_row: number("transient_in_a_row").unwrap_or(0),
                    failing_since: number("failing_since"),
                    reauthorization_needed_since: number("reauthorization_needed_since"),
                    outcomes,
                },
            );
        }
        health
    }

    /// The health file's text.
    pub fn to_json(&self) -> String {
        let records: serde_json::Map<String, Value> = self
            .records
            .iter()
            .map(|(name, h)| {
                (
                    name.clone(),
                    json!({
                        "last_attempt_at": h.last_attempt_at,
                        "last_outcome": h.last_outcome.map(RefreshClass::as_str),
                        "transient_in_a_row": h.transient_in_a_row,
                        "failing_since": h.failing_since,
                        "reauthorization_needed_since": h.reauthorization_needed_since,
                        "outcomes": h.outcomes,
                    }),
                )
            })
            .collect();
        serde_json::to_string_pretty(&json!({ "version": 1, "records": records }))
            .unwrap_or_default()
    }

    /// Folds one run's results in. Returns the names whose need for
    /// re-authorization is new in this run.
    pub fn record_run(&mut self, vault: &Vault, results: &[RecordResult], now: u64) -> Vec<String> {
        let mut newly_rejected = Vec::new();
        for result in results {
            let Some(class) = result.class else {
                continue;
            };
            let entry = self.records.entry(result.name.clone()).or_default();
            entry.last_attempt_at = Some(now);
            entry.last_outcome = Some(class);
            *entry.outcomes.entry(class.as_str()).or_insert(0) += 1;
            if class == RefreshClass::Transient {
                entry.transient_in_a_row += 1;
                entry.failing_since.get_or_insert(now);
            } else {
                entry.transient_in_a_row = 0;
                entry.failing_since = None;
            }
            match class {
                RefreshClass::ReauthorizationRequired
                    if entry.reauthorization_needed_since.is_none() =>
                {
                    entry.reauthorization_needed_since = Some(now);
                    newly_rejected.push(result.name.clone());
                }
                RefreshClass::Refreshed => entry.reauthorization_needed_since = None,
                _ => {}
            }
        }
        self.records.retain(|name, _| vault.record(name).is_some());
        newly_rejected
    }
}

/// Loads, updates and saves the health of the vault of `state` under its
/// own lock (two refreshes at once must not lose a count), waiting at most
/// `lock_wait`. A health file that cannot be kept only costs the streaks
/// and counters: warn and go on. Returns the health and the names whose
/// need for re-authorization is new in this run.
pub fn update(
    state: &StateDir,
    vault: &Vault,
    results: &[RecordResult],
    now: u64,
    lock_wait: Duration,
) -> (Health, Vec<String>) {
    let result = (|| -> Result<(Health, Vec<String>)> {
        let lock = state.lock_health(lock_wait)?;
        let mut health = state.read_health()?.map_or_else(Health::default, |bytes| {
            Health::parse(&String::from_utf8_lossy(&bytes))
        });
        let newly = health.record_run(vault, results, now);
        state.write_health(&lock, health.to_json().as_bytes())?;
        Ok((health, newly))
    })();
    result.unwrap_or_else(|error| {
        tracing::warn!(
            "refresh health is not kept ({error}); failure streaks and counters start again"
        );
        let mut health = Health::default();
        let newly = health.record_run(vault, results, now);
        (health, newly)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_round_trips_and_tolerates_garbage() {
        let mut health = Health::default();
        health.records.insert(
            "mail".to_owned(),
            RecordHealth {
                last_attempt_at: Some(5),
                last_outcome: Some(RefreshClass::Transient),
                transient_in_a_row: 3,
                failing_since: Some(1),
                reauthorization_needed_since: None,
                outcomes: BTreeMap::from([("transient", 3), ("refreshed", 7)]),
            },
        );
        let parsed = Health::parse(&health.to_json());
        assert_eq!(parsed.records, health.records);
        assert!(Health::parse("not json").records.is_empty());
        assert!(Health::parse("{\"records\": 5}").records.is_empty());
    }

    fn result(name: &str, class: Option<RefreshClass>) -> RecordResult {
        RecordResult {
            name: name.to_owned(),
            class,
            message: String::new(),
            error_code: None,
            attempts: 1,
        }
    }

    fn vault_with(names: &[&str]) -> Vault {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let mut vault =
            Vault::create(&[vault_format::SlotSpec::Recipient(&recipient)]).expect("vault");
        for name in names {
            vault.records_mut().push(vault_format::Record::new(
                *name,
                vault_format::Provider::Generic,
                "https://auth.example/token",
                vault_format::Credential::RefreshToken(vault_format::RefreshTokenCredential {
                    client_id: "c".to_owned(),
                    client_secret: None,
                    client_auth: vault_format::ClientAuth::None,
                    refresh_token: vault_format::SecretString::copy_from("rt"),
                    refresh_token_issued_at: None,
                    authorization_endpoint: None,
                }),
                0,
            ));
        }
        vault
    }

    #[test]
    fn streaks_and_first_rejections_are_folded_in() {
        let vault = vault_with(&["mail"]);
        let mut health = Health::default();
        let transient = [result("mail", Some(RefreshClass::Transient))];
        health.record_run(&vault, &transient, 10);
        health.record_run(&vault, &transient, 20);
        let mail = &health.records["mail"];
        assert_eq!((mail.transient_in_a_row, mail.failing_since), (2, Some(10)));
        // Still valid: no attempt, nothing changes.
        health.record_run(&vault, &[result("mail", None)], 25);
        assert_eq!(health.records["mail"].transient_in_a_row, 2);
        let rejected = [result("mail", Some(RefreshClass::ReauthorizationRequired))];
        assert_eq!(health.record_run(&vault, &rejected, 30), ["mail"]);
        assert!(
            health.record_run(&vault, &rejected, 40).is_empty(),
            "only the first time"
        );
        let mail = &health.records["mail"];
        assert_eq!(
            mail.transient_in_a_row, 0,
            "a permanent outcome ends the streak"
        );
        assert_eq!(mail.reauthorization_needed_since, Some(30));
        health.record_run(&vault, &[result("mail", Some(RefreshClass::Refreshed))], 50);
        assert_eq!(health.records["mail"].reauthorization_needed_since, None);
        assert_eq!(health.records["mail"].outcomes.values().sum::<u64>(), 5);
        // A record no longer in the vault is forgotten.
        health.record_run(&vault_with(&[]), &[], 60);
        assert!(health.records.is_empty());
    }
}
