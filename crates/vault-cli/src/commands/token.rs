//! `tokvault token NAME` and `tokvault header NAME`: a valid access token,
//! refreshed and saved first when needed.

use std::time::Duration;

use futures_util::FutureExt as _;
use vault_engine::IssuedToken;
use zeroize::Zeroizing;

use crate::context::{Context, block_on};
use crate::duration::parse_duration;
use crate::error::{Exit, Result};
use crate::signals::HeldStopSignals;
use crate::ui::output::print_line;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    #[arg(add = crate::completion::record_names())]
    name: String,
    /// Refresh when less than this validity remains
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    min_valid: Duration,
    /// One JSON object: access_token, expires_at (RFC 3339), expires_in,
    /// token_type, scopes (`token` only)
    #[arg(long)]
    json: bool,
}

pub(crate) fn exec_token(ctx: &Context, args: &Args) -> Result<Exit> {
    let issued = valid_token(ctx, &args.name, args.min_valid)?;
    if !args.json {
        return print_line(issued.token.expose_secret());
    }
    let expires_at = issued.expires_at;
    let now = vault_engine::unix_now();
    let object = serde_json::json!({
        "access_token": issued.token.expose_secret(),
        "expires_at": expires_at.map(vault_oauth::rfc3339),
        "expires_in": expires_at.map(|at| at.saturating_sub(now)),
        "token_type": "Bearer",
        "scopes": issued.scopes,
    });
    print_line(&Zeroizing::new(object.to_string()))
}

pub(crate) fn exec_header(ctx: &Context, args: &Args) -> Result<Exit> {
    if args.json {
        return Err(crate::error::CliError::usage(
            "header prints one line; for JSON use `tokvault token --json`",
        ));
    }
    let token = valid_token(ctx, &args.name, args.min_valid)?.token;
    let mut line = Zeroizing::new(String::with_capacity(token.len() + 32));
    line.push_str("Authorization: Bearer ");
    line.push_str(token.expose_secret());
    print_line(&line)
}

/// A valid access token for `name`: the stored one when it stays valid for
/// `min_valid` (no lock, no write), else refreshed and saved first, with
/// stop signals held while a request is out.
pub(crate) fn valid_token(ctx: &Context, name: &str, min_valid: Duration) -> Result<IssuedToken> {
    let session = ctx.session()?;
    let refresher = vault_engine::refresher;
    let max_run_time = crate::commands::refresh::DEFAULT_MAX_RUN_TIME;
    // A file backend answers without waiting: a still-valid token needs no
    // async runtime, and the vault is opened once.
    let local = matches!(session.backend(), vault_engine::AnyBackend::File(_));
    let fast = if local {
        session.stored_token(name, min_valid).now_or_never()
    } else {
        // A remote store needs the runtime's reactor even for one GET.
        None
    };
    let (issued, run) = match fast {
        Some(Ok(Some(issued))) => return Ok(issued),
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
    warn_if_shorter_than(name, &issued, run.is_some(), min_valid);
    Ok(issued)
}

/// A fresh token that lasts less than `--min-valid` makes every call
/// refresh: say so.
fn warn_if_shorter_than(name: &str, issued: &IssuedToken, fresh: bool, min_valid: Duration) {
    let Some(expires_at) = issued.expires_at.filter(|_| fresh) else {
        return;
    };
    let lifetime = expires_at.saturating_sub(vault_engine::unix_now());
    if lifetime < min_valid.as_secs() {
        tracing::warn!(
            record = %name,
            "the provider's tokens last {} s, less than --min-valid ({} s): every call refreshes; give a shorter --min-valid",
            lifetime,
            min_valid.as_secs()
        );
    }
}
