//! Standard output (the one place that writes to it) and the human and
//! JSON renderings of records (never a secret).

use std::io::Write as _;

use serde_json::{Value, json};
use vault_format::{Credential, Record};

use crate::error::{CliError, Exit, Result};

pub(crate) use vault_engine::human_duration;
use vault_engine::metrics::refresh_token_issued_at;

/// Where a command's one-line account of what it changed goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// Text logs: on stderr, so stdout stays for data.
    Stderr,
    /// JSON logs: an info event, like every other line on stderr.
    Log,
    /// `--quiet`.
    Silent,
}

impl Report {
    pub(crate) fn new(quiet: bool, log_format: crate::cli::LogFormat) -> Self {
        match (quiet, log_format) {
            (true, _) => Self::Silent,
            (false, crate::cli::LogFormat::Text) => Self::Stderr,
            (false, crate::cli::LogFormat::Json) => Self::Log,
        }
    }

    /// Tells what a command changed (`created …`, `removed …`).
    pub(crate) fn done(self, message: &str) {
        match self {
            Self::Stderr => eprintln!("{message}"),
            Self::Log => tracing::info!("{message}"),
            Self::Silent => {}
        }
    }

    /// A record a refresh run could not refresh, on stderr beside the
    /// result line on stdout: an error even with `--quiet`, a temporary
    /// failure as a warning. JSON logs already carry it as the run's event.
    pub(crate) fn record_failed(self, name: &str, message: &str, temporary: bool) {
        match (self, temporary) {
            (Self::Log, _) | (Self::Silent, true) => {}
            (_, false) => eprintln!("tokvault: error: {name}: {message}"),
            (Self::Stderr, true) => eprintln!("tokvault: warning: {name}: {message}"),
        }
    }
}

/// `1 key slot`, `2 key slots`.
pub(crate) fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Writes `text` and a newline to stdout, flushed.
pub(crate) fn print_line(text: &str) -> Result<Exit> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::failure(format!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}

/// Writes `text` without its final newlines, then one.
pub(crate) fn print(text: &str) -> Result<Exit> {
    print_line(text.trim_end_matches('\n'))
}

/// Writes `bytes` to stdout as they are.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<Exit> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::failure(format!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}

fn kind(record: &Record) -> &'static str {
    match record.credential {
        Credential::RefreshToken(_) => "refresh-token",
        Credential::ServiceAccount(_) => "service-account",
        _ => "unknown",
    }
}

fn expiry_text(record: &Record, now: u64) -> String {
    match record.access_token.as_ref().map(|a| a.expires_at) {
        None => "none".to_owned(),
        Some(None) => "unknown".to_owned(),
        Some(Some(at)) if at > now => format!("in {}", human_duration(at - now)),
        Some(Some(at)) => format!("expired {} ago", human_duration(now - at)),
    }
}

pub(crate) fn record_json(record: &Record, now: u64) -> Value {
    json!({
        "name": record.name,
        "kind": kind(record),
        "provider": record.provider.as_str(),
        "account": record.account,
        "scopes": record.scopes,
        "token_endpoint": record.token_endpoint,
        "access_token_expires_at": record.access_token.as_ref().and_then(|a| a.expires_at),
        "access_token_valid": record.access_token.as_ref().and_then(|a| a.expires_at).is_some_and(|at| at > now),
        "refresh_token_issued_at": refresh_token_issued_at(record),
        "refresh_token_age_seconds": refresh_token_issued_at(record).map(|at| now.saturating_sub(at)),
        "last_refresh": record.last_refresh.as_ref().map(|s| json!({
            "at": s.at,
            "outcome": s.class.as_str(),
            "error_code": s.error_code,
            "error_description": s.error_description,
        })),
    })
}

pub(crate) fn list_text(records: &[Record], now: u64) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "KIND".to_owned(),
        "ACCOUNT".to_owned(),
        "ACCESS TOKEN".to_owned(),
        "REFRESH TOKEN AGE".to_owned(),
        "LAST REFRESH".to_owned(),
        "SCOPES".to_owned(),
    ]];
    for record in records {
        let last = record.last_refresh.as_ref().map_or_else(
            || "never".to_owned(),
            |s| {
                format!(
                    "{} {} ago",
                    s.class.as_str(),
                    human_duration(now.saturating_sub(s.at))
                )
            },
        );
        rows.push([
            record.name.clone(),
            kind(record).to_owned(),
            record.account.clone().unwrap_or_else(|| "-".to_owned()),
            expiry_text(record, now),
            refresh_token_issued_at(record).map_or_else(
                || "-".to_owned(),
                |at| human_duration(now.saturating_sub(at)),
            ),
            last,
            if record.scopes.is_empty() {
                "-".to_owned()
            } else {
                record.scopes.join(" ")
            },
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i == 6 {
                    cell.clone()
                } else {
                    format!("{cell:width$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
