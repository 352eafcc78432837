//! `tokvault token NAME` and `tokvault header NAME`: a valid access token,
//! refreshed and saved first when needed.

use std::time::Duration;

use futures_util::FutureExt as _;
use vault_format::SecretString;
use zeroize::Zeroizing;

use crate::context::{Context, block_on};
use crate::duration::parse_duration;
use crate::error::{Exit, Result};
use crate::signals::HeldStopSignals;
use crate::ui::output::print_line;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    name: String,
    /// Refresh when less than this validity remains
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    min_valid: Duration,
}

pub(crate) fn exec_token(ctx: &Context, args: &Args) -> Result<Exit> {
    let token = valid_token(ctx, &args.name, args.min_valid)?;
    print_line(token.expose_secret())
}

pub(crate) fn exec_header(ctx: &Context, args: &Args) -> Result<Exit> {
    let token = valid_token(ctx, &args.name, args.min_valid)?;
    let mut line = Zeroizing::new(String::with_capacity(token.len() + 32));
    line.push_str("Authorization: Bearer ");
    line.push_str(token.expose_secret());
    print_line(&line)
}

/// A valid access token for `name`: the stored one when it stays valid for
/// `min_valid` (no lock, no write), else refreshed and saved first, with
/// stop signals held while a request is out.
pub(crate) fn valid_token(ctx: &Context, name: &str, min_valid: Duration) -> Result<SecretString> {
    let session = ctx.session()?;
    let refresher = vault_engine::refresher;
    let max_run_time = crate::commands::refresh::DEFAULT_MAX_RUN_TIME;
    // A file backend answers without waiting: a still-valid token needs no
    // async runtime, and the vault is opened once.
    let (issued, run) = match session.stored_token(name, min_valid).now_or_never() {
        Some(Ok(Some(issued))) => return Ok(issued.token),
        Some(Err(error)) => return Err(error.into()),
        Some(Ok(None)) => block_on(session.refreshed_token(
            name,
            min_valid,
            refresher,
            max_run_time,
            HeldStopSignals::hold,
        ))??,
        None => block_on(session.access_token(
            name,
            min_valid,
            refresher,
            max_run_time,
            HeldStopSignals::hold,
        ))??,
    };
    if let Some(rescue) = run.as_ref().and_then(|r| r.rescued.as_ref()) {
        // Saved, but not where the next reader looks first: say so, and
        // still hand out the token (it is valid).
        tracing::error!(
            "{}",
            vault_engine::rescued_error(session.location(), rescue)
        );
    }
    if let Some(reason) = &issued.stale_because {
        tracing::warn!(record = %name, "refresh failed for now; the current token is still valid and is used: {reason}");
    }
    Ok(issued.token)
}
