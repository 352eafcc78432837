//! `tokvault list`: the records, without secrets.

use std::time::Duration;

use serde_json::json;

use crate::context::{Context, block_on};
use crate::duration::parse_duration;
use crate::error::{Exit, Result};
use crate::ui::output::{self, print};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// JSON output
    #[arg(long)]
    json: bool,
    /// Warn when a refresh token is at least this old
    #[arg(long, env = "TOKVAULT_WARN_REFRESH_AGE", value_parser = parse_duration, value_name = "DURATION")]
    warn_refresh_age: Option<Duration>,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session()?;
    let vault = block_on(session.open())??;
    let now = vault_engine::unix_now();
    vault_engine::monitor::warn_refresh_age(vault.records(), args.warn_refresh_age, now);
    if args.json {
        let records: Vec<_> = vault
            .records()
            .iter()
            .map(|r| output::record_json(r, now))
            .collect();
        return print(
            &serde_json::to_string_pretty(&json!({ "records": records })).unwrap_or_default(),
        );
    }
    if vault.records().is_empty() {
        tracing::warn!("the vault holds no records yet: add one with `tokvault import`");
        return Ok(Exit::Success);
    }
    print(&output::list_text(vault.records(), now))
}
