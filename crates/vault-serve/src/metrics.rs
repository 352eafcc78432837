//! `/metrics`: Prometheus text from the server's own counters. Nothing
//! here opens the vault, so a scrape never decrypts a refresh token.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::tokens::SlotFigures;

/// A per-record family: name, type, help, and its value for a record.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SlotFigures) -> Option<u64>,
);

/// Renders request counts by (endpoint, status) and each record's figures.
pub fn render(counts: &BTreeMap<(&'static str, u16), u64>, records: &[SlotFigures]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tokvault_serve_requests_total Requests answered, by endpoint and HTTP status.\n\
         # TYPE tokvault_serve_requests_total counter"
    );
    for ((endpoint, status), count) in counts {
        let _ = writeln!(
            out,
            "tokvault_serve_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}"
        );
    }
    let gauges: [Family; 4] = [
        (
            "tokvault_serve_token_expiry_timestamp_seconds",
            "gauge",
            "When the token served for the record expires (Unix time).",
            |f| f.expires_at,
        ),
        (
            "tokvault_serve_refreshes_total",
            "counter",
            "Refresh runs that gave the record a new token.",
            |f| Some(f.refreshes),
        ),
        (
            "tokvault_serve_refresh_failures_total",
            "counter",
            "Refresh runs that gave the record no new token.",
            |f| Some(f.failures),
        ),
        (
            "tokvault_serve_reauthorization_required",
            "gauge",
            "1 while the record's grant is rejected and a person must log in again.",
            |f| {
                Some(u64::from(
                    f.failing == Some(vault_engine::ErrorKind::Reauthorize),
                ))
            },
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for record in records {
            if let Some(value) = value(record) {
                let _ = writeln!(out, "{name}{{record=\"{}\"}} {value}", escape(&record.name));
            }
        }
    }
    out
}

/// A label value as the exposition format escapes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_engine::ErrorKind;

    #[test]
    fn counts_and_record_figures_are_rendered() {
        let counts = BTreeMap::from([(("gce_token", 200), 7), (("refused", 403), 1)]);
        let records = [SlotFigures {
            name: "ma\"il".to_owned(),
            expires_at: Some(1_900_000_000),
            refreshes: 2,
            failures: 1,
            failing: Some(ErrorKind::Reauthorize),
        }];
        let text = render(&counts, &records);
        for line in [
            "tokvault_serve_requests_total{endpoint=\"gce_token\",status=\"200\"} 7",
            "tokvault_serve_requests_total{endpoint=\"refused\",status=\"403\"} 1",
            "tokvault_serve_token_expiry_timestamp_seconds{record=\"ma\\\"il\"} 1900000000",
            "tokvault_serve_refreshes_total{record=\"ma\\\"il\"} 2",
            "tokvault_serve_refresh_failures_total{record=\"ma\\\"il\"} 1",
            "tokvault_serve_reauthorization_required{record=\"ma\\\"il\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
