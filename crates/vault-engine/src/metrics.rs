//! The refresh metrics in Prometheus' text exposition format, for
//! node_exporter's textfile collector: pure, from the vault, its health and
//! the run's exit code. Never a secret: names, times, classes and counts.

use std::fmt::Write as _;

use vault_format::{Credential, Record, RefreshClass, Vault};

use crate::health::{Health, RecordHealth};

/// The run being reported.
#[derive(Clone, Copy, Debug)]
pub struct RunMetrics<'a> {
    /// Unix time of the run.
    pub now: u64,
    /// The front end's exit code for the run.
    pub exit_code: u8,
    /// What the exit codes mean, for the metric's help text.
    pub exit_codes: &'a str,
}

/// One metric family: name, type, help text.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

/// A family and its samples (labels, value).
type Samples = (Family, Vec<(String, f64)>);

/// When the record's refresh token was issued (or the record created).
pub fn refresh_token_issued_at(record: &Record) -> Option<u64> {
    match &record.credential {
        Credential::RefreshToken(c) => c.refresh_token_issued_at.or(Some(record.created_at)),
        _ => None,
    }
}

/// A Prometheus label value (text format escaping).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_family(out: &mut String, family: &Family, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
    let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
    for (labels, value) in samples {
        let _ = writeln!(out, "{}{labels} {value}", family.name);
    }
}

/// The run-level families: when the run was, and how it ended.
fn run_families(run: &RunMetrics<'_>) -> String {
    let mut out = String::with_capacity(512);
    write_family(
        &mut out,
        &Family {
            name: "tokvault_last_run_timestamp_seconds",
            kind: "gauge",
            help: "Unix time of the last tokvault refresh run.",
        },
        &[(String::new(), run.now as f64)],
    );
    let help = format!("Exit code of the last refresh run ({}).", run.exit_codes);
    let _ = writeln!(out, "# HELP tokvault_last_run_exit_code {help}");
    let _ = writeln!(out, "# TYPE tokvault_last_run_exit_code gauge");
    let _ = writeln!(out, "tokvault_last_run_exit_code {}", run.exit_code);
    out
}

/// The metrics of a run that stopped before it could read the vault (it
/// cannot be trusted, the lease stays busy, there is no room).
pub fn render_failed_run(run: &RunMetrics<'_>) -> String {
    run_families(run)
}

/// Every family, for a run that read the vault.
pub fn render(vault: &Vault, health: &Health, run: &RunMetrics<'_>) -> String {
    let mut out = run_families(run);
    write_family(
        &mut out,
        &Family {
            name: "tokvault_records",
            kind: "gauge",
            help: "Records in the vault.",
        },
        &[(String::new(), vault.records().len() as f64)],
    );
    for (family, samples) in record_families(vault, health, run.now) {
        write_family(&mut out, &family, &samples);
    }
    out
}

fn record_families(vault: &Vault, health: &Health, now: u64) -> [Samples; 6] {
    let mut families = [
        (
            Family {
                name: "tokvault_last_refresh_timestamp_seconds",
                kind: "gauge",
                help: "Unix time of the record's last refresh attempt.",
            },
            Vec::new(),
        ),
        (
            Family {
                name: "tokvault_last_refresh_outcome",
                kind: "gauge",
                help: "1 for the outcome of the record's last refresh attempt, 0 for the others.",
            },
            Vec::new(),
        ),
        (
            Family {
                name: "tokvault_access_token_expiry_timestamp_seconds",
                kind: "gauge",
                help: "Unix time at which the record's access token expires.",
            },
            Vec::new(),
        ),
        (
            Family {
                name: "tokvault_refresh_token_age_seconds",
                kind: "gauge",
                help: "Age of the record's refresh token.",
            },
            Vec::new(),
        ),
        (
            Family {
                name: "tokvault_transient_failures_in_a_row",
                kind: "gauge",
                help: "Consecutive temporary failures of the record's token endpoint.",
            },
            Vec::new(),
        ),
        (
            Family {
                name: "tokvault_refresh_outcomes_total",
                kind: "counter",
                help: "Refresh attempts of the record by outcome, since the health file was created.",
            },
            Vec::new(),
        ),
    ];
    for record in vault.records() {
        let h = health
            .records
            .get(&record.name)
            .cloned()
            .unwrap_or_default();
        for (samples, sample) in families
            .iter_mut()
            .map(|(_, s)| s)
            .zip(record_samples(record, &h, now))
        {
            samples.extend(sample);
        }
    }
    families
}

/// One record's samples of each family, in the order of
/// [`record_families`].
fn record_samples(record: &Record, h: &RecordHealth, now: u64) -> [Vec<(String, f64)>; 6] {
    let name = label(&record.name);
    let of = || format!("{{record=\"{name}\"}}");
    let by_outcome =
        |class: RefreshClass| format!("{{record=\"{name}\",outcome=\"{}\"}}", class.as_str());
    let status = record.last_refresh.as_ref();
    let attempt = h.last_attempt_at.or(status.map(|s| s.at));
    let last_class = h.last_outcome.or(status.map(|s| s.class));
    let expiry = record.access_token.as_ref().and_then(|a| a.expires_at);
    let age = refresh_token_issued_at(record).map(|at| now.saturating_sub(at));
    [
        attempt.map(|at| (of(), at as f64)).into_iter().collect(),
        last_class.map_or_else(Vec::new, |last| {
            RefreshClass::ALL
                .into_iter()
                .map(|class| (by_outcome(class), if class == last { 1.0 } else { 0.0 }))
                .collect()
        }),
        expiry.map(|at| (of(), at as f64)).into_iter().collect(),
        age.map(|age| (of(), age as f64)).into_iter().collect(),
        vec![(of(), h.transient_in_a_row as f64)],
        RefreshClass::ALL
            .into_iter()
            .map(|class| {
                let count = h.outcomes.get(class.as_str()).copied().unwrap_or(0);
                (by_outcome(class), count as f64)
            })
            .collect(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }

    fn vault() -> Vault {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let mut vault =
            Vault::create(&[vault_format::SlotSpec::Recipient(&recipient)]).expect("vault");
        let mut record = Record::new(
            "mail \"x\"",
            vault_format::Provider::Generic,
            "https://auth.example/token",
            Credential::RefreshToken(vault_format::RefreshTokenCredential {
                client_id: "c".to_owned(),
                client_secret: None,
                client_auth: vault_format::ClientAuth::None,
                refresh_token: vault_format::SecretString::copy_from("rt"),
                refresh_token_issued_at: Some(400),
                authorization_endpoint: None,
            }),
            0,
        );
        record.access_token = Some(vault_format::AccessToken {
            token: vault_format::SecretString::copy_from("at"),
            expires_at: Some(4_000),
        });
        vault.records_mut().push(record);
        vault
    }

    #[test]
    fn every_family_is_rendered_with_its_samples() {
        let mut health = Health::default();
        health.records.insert(
            "mail \"x\"".to_owned(),
            RecordHealth {
                last_attempt_at: Some(900),
                last_outcome: Some(RefreshClass::Transient),
                transient_in_a_row: 2,
                outcomes: BTreeMap::from([("transient", 2), ("refreshed", 5)]),
                ..RecordHealth::default()
            },
        );
        let run = RunMetrics {
            now: 1_000,
            exit_code: 4,
            exit_codes: "0 ok, 4 temporary failure",
        };
        let text = render(&vault(), &health, &run);
        for line in [
            "# HELP tokvault_last_run_exit_code Exit code of the last refresh run (0 ok, 4 temporary failure).",
            "tokvault_last_run_timestamp_seconds 1000",
            "tokvault_last_run_exit_code 4",
            "tokvault_records 1",
            r#"tokvault_last_refresh_timestamp_seconds{record="mail \"x\""} 900"#,
            r#"tokvault_last_refresh_outcome{record="mail \"x\"",outcome="transient"} 1"#,
            r#"tokvault_last_refresh_outcome{record="mail \"x\"",outcome="refreshed"} 0"#,
            r#"tokvault_access_token_expiry_timestamp_seconds{record="mail \"x\""} 4000"#,
            r#"tokvault_refresh_token_age_seconds{record="mail \"x\""} 600"#,
            r#"tokvault_transient_failures_in_a_row{record="mail \"x\""} 2"#,
            r#"tokvault_refresh_outcomes_total{record="mail \"x\"",outcome="refreshed"} 5"#,
            r#"tokvault_refresh_outcomes_total{record="mail \"x\"",outcome="misconfigured"} 0"#,
            "# TYPE tokvault_refresh_outcomes_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(text.matches("# TYPE").count(), 9);
        let failed = render_failed_run(&run);
        assert_eq!(failed.matches("# TYPE").count(), 2);
        assert!(failed.ends_with("tokvault_last_run_exit_code 4\n"));
    }
}
