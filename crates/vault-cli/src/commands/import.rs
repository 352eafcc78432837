//! `tokvault import`: records from a token file (in plaintext or
//! age-encrypted to the server), a service-account key or another vault,
//! added under the lock.

use std::path::PathBuf;

use crate::context::{Context, block_on};
use crate::error::{Exit, Result};
use crate::ui::output::plural;
use vault_engine::input::{ImportOptions, Imported, Input, RecordOptions, warn_plaintext_input};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    record: RecordArgs,
    /// Replace records with the same name
    #[arg(long)]
    replace: bool,
    /// Input file, or - for stdin: google-auth JSON, a service-account key,
    /// tokvault JSON, any of these encrypted with `age -r` (binary or -a)
    /// to this server's recipient, or a vault
    input: PathBuf,
}

/// How the record of a token file is made (`import` and `seal`).
#[derive(Debug, clap::Args)]
pub(crate) struct RecordArgs {
    /// Record name for a JSON input [default: from the file's name:
    /// token_gmail.json, gmail.json and gmail.json.age give gmail; stdin
    /// needs --name]
    #[arg(long)]
    name: Option<String>,
    /// Token endpoint to use instead of the file's
    #[arg(long, value_name = "URL")]
    token_uri: Option<String>,
    /// When the refresh token was issued: a UTC time (2026-11-24T07:59:59Z)
    /// or how long ago (6d) [default: no later than the input file was
    /// last written]
    #[arg(long, value_name = "WHEN", value_parser = parse_issued)]
    refresh_token_issued: Option<u64>,
}

impl RecordArgs {
    pub(crate) fn options(&self) -> RecordOptions<'_> {
        RecordOptions {
            name: self.name.as_deref(),
            token_uri: self.token_uri.as_deref(),
            refresh_token_issued_at: self.refresh_token_issued,
        }
    }
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let input = Input::read(&args.input)?;
    let session = ctx.session()?;
    let imported = block_on(session.import(
        &input,
        &ImportOptions {
            record: args.record.options(),
            replace: args.replace,
        },
    ))??;
    ctx.report.done(&summary(&imported, session.location()));
    if imported.plaintext {
        warn_plaintext_input(&args.input);
    }
    Ok(Exit::Success)
}

/// The line printed on success, e.g. `imported gmail into
/// /var/lib/tokvault/vault.tokvault (2 records)`: what was done, to which
/// records, where, and how many records the vault holds now.
fn summary(imported: &Imported, location: &str) -> String {
    let added: Vec<&str> = imported
        .names
        .iter()
        .filter(|name| !imported.replaced.contains(name))
        .map(String::as_str)
        .collect();
    let done = match (added.is_empty(), imported.replaced.is_empty()) {
        (false, true) => format!("imported {} into {location}", added.join(", ")),
        (true, false) => format!("replaced {} in {location}", imported.replaced.join(", ")),
        (false, false) => format!(
            "imported {} and replaced {} in {location}",
            added.join(", "),
            imported.replaced.join(", ")
        ),
        (true, true) => format!("imported nothing into {location}"),
    };
    format!("{done} ({})", plural(imported.records, "record"))
}

/// `--refresh-token-issued`: an RFC 3339 UTC time, or a duration before
/// now; never in the future.
fn parse_issued(text: &str) -> std::result::Result<u64, String> {
    let now = vault_engine::unix_now();
    let at = match vault_oauth::parse_utc(text) {
        Some(at) => at,
        None => {
            let ago = crate::duration::parse_duration(text)
                .map_err(|e| format!("{e}; or give a UTC time like 2026-11-24T07:59:59Z"))?;
            now.checked_sub(ago.as_secs())
                .ok_or_else(|| format!("{text:?} reaches back before 1970"))?
        }
    };
    if at > now {
        return Err(format!("{text:?} is in the future"));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported(names: &[&str], replaced: &[&str], records: usize) -> Imported {
        Imported {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            replaced: replaced.iter().map(|n| (*n).to_owned()).collect(),
            records,
            plaintext: false,
            age: false,
        }
    }

    #[test]
    fn the_summary_says_what_was_done_where_and_how_many_records_there_are() {
        let at = "/srv/vault.tokvault";
        assert_eq!(
            summary(&imported(&["gmail"], &[], 1), at),
            "imported gmail into /srv/vault.tokvault (1 record)"
        );
        assert_eq!(
            summary(&imported(&["gmail"], &["gmail"], 2), at),
            "replaced gmail in /srv/vault.tokvault (2 records)"
        );
        assert_eq!(
            summary(&imported(&["a", "b", "c"], &["b"], 5), at),
            "imported a, c and replaced b in /srv/vault.tokvault (5 records)"
        );
    }

    #[test]
    fn issued_is_a_utc_time_or_a_duration_ago_never_the_future() {
        assert_eq!(parse_issued("2026-11-24T07:59:59Z"), Ok(1_795_507_199));
        let now = vault_engine::unix_now();
        let ago = parse_issued("6d").expect("a duration");
        assert!(
            (now - 6 * 86_400..=now + 1 - 6 * 86_400).contains(&ago),
            "{ago}"
        );
        assert!(parse_issued("9999-01-01T00:00:00Z").is_err());
        assert!(parse_issued("yesterday").is_err());
    }
}
