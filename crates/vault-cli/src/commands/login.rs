//! `tokvault login` and `refresh --reauthorize`: obtain a refresh token in a
//! browser (loopback redirect or pasted URL) or with a device code, and
//! store it, so that nobody handles a plaintext token file.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vault_format::{ClientAuth, Record, Vault};
use vault_oauth::{
    AuthParams, Flow, FlowOptions, LoginInputs, LoginPlan, LoginProvider, Refreshed,
};

use crate::cli::{ClientAuthArg, ProviderArg, RecipientArgs};
use crate::context::{Context, VaultSession, block_on};
use crate::duration::parse_duration;
use crate::error::{CliError, Exit, Result};
use crate::keys;
use crate::ui::login::{TerminalLogin, browser_available};
use vault_engine::unix_now;

/// `tokvault login`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    pub(crate) name: String,
    /// Provider conventions [default: google with --client-secrets, else generic]
    #[arg(long, value_enum)]
    pub(crate) provider: Option<ProviderArg>,
    /// OAuth client JSON downloaded from the Google Cloud console ("installed" or "web")
    #[arg(long, value_name = "FILE")]
    pub(crate) client_secrets: Option<PathBuf>,
    /// OAuth client id (when there is no --client-secrets file)
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// File holding the client secret (mode 0600); never pass a secret as an argument
    #[arg(long, value_name = "FILE")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// How the client authenticates at the token endpoint [default: post for
    /// google and microsoft, basic for generic; none without a secret]
    #[arg(long, value_enum)]
    pub(crate) client_auth: Option<ClientAuthArg>,
    /// Scope to request (repeatable)
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// Microsoft tenant: common, organizations, consumers, a domain or a tenant id [default: common]
    #[arg(long, value_name = "TENANT")]
    pub(crate) tenant: Option<String>,
    /// Authorization endpoint (generic; overrides the preset or the stored one)
    #[arg(long, value_name = "URL")]
    pub(crate) auth_url: Option<String>,
    /// Token endpoint (generic; overrides the preset)
    #[arg(long, value_name = "URL")]
    pub(crate) token_url: Option<String>,
    /// Device authorization endpoint (generic, for --device)
    #[arg(long, value_name = "URL")]
    pub(crate) device_url: Option<String>,
    /// Add KEY=VALUE to the authorization request (repeatable; browser
    /// flows only). It replaces tokvault's parameter of that name; KEY=
    /// sends none. Refused: state, code_challenge, code_challenge_method,
    /// redirect_uri, response_type, client_id (the flow's own) and scope
    /// (use --scope)
    #[arg(long = "auth-param", value_name = "KEY=VALUE", value_parser = AuthParams::parse_pair)]
    pub(crate) auth_params: Vec<(String, String)>,
    /// OpenID Connect prompt (browser flows only): none, login, consent or
    /// select_account, several separated by spaces; "" sends none
    /// [default: consent for google, and for generic with --scope
    /// offline_access]
    #[arg(long, value_name = "PROMPT")]
    pub(crate) prompt: Option<String>,
    /// Print the URL and read the redirected URL (or the code) from stdin,
    /// for a machine without a browser
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// Use the device authorization grant (RFC 8628): enter a code on any device
    #[arg(long, conflicts_with = "no_browser")]
    pub(crate) device: bool,
    /// Loopback port for the redirect [default: a free port]
    #[arg(long, value_name = "PORT")]
    pub(crate) port: Option<u16>,
    /// How long to wait for the browser [default: 5m] or the device
    /// approval [default: until the device code expires]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Option<Duration>,
    /// Write a new vault for this recipient instead of --vault (repeatable;
    /// no private key needed)
    #[arg(long = "seal-to", value_name = "RECIPIENT", requires = "output")]
    pub(crate) seal_to: Vec<String>,
    /// The new vault file for --seal-to (never overwritten)
    #[arg(short, long, value_name = "PATH", requires = "seal_to")]
    pub(crate) output: Option<PathBuf>,
    /// Replace a record with the same name
    #[arg(long)]
    pub(crate) replace: bool,
    /// Re-authorize the existing record NAME with its stored client and endpoints
    #[arg(
        long,
        conflicts_with_all = ["provider", "client_secrets", "client_id", "client_secret_file",
                              "client_auth", "tenant", "token_url", "seal_to", "replace"]
    )]
    pub(crate) again: bool,
}

/// The plan for a new record, from the options and the files they name.
fn new_plan(args: &Args) -> Result<LoginPlan> {
    let client_file = args
        .client_secrets
        .as_deref()
        .map(vault_engine::login::read_client_file)
        .transpose()?;
    let client_secret = args
        .client_secret_file
        .as_deref()
        .map(vault_engine::login::read_client_secret)
        .transpose()?;
    let plan = LoginPlan::resolve(LoginInputs {
        provider: args.provider.map(|p| match p {
            ProviderArg::Google => LoginProvider::Google,
            ProviderArg::Microsoft => LoginProvider::Microsoft,
            ProviderArg::Generic => LoginProvider::Generic,
        }),
        client_file,
        client_id: args.client_id.clone(),
        client_secret,
        client_auth: args.client_auth.map(|a| match a {
            ClientAuthArg::Post => ClientAuth::ClientSecretPost,
            ClientAuthArg::Basic => ClientAuth::ClientSecretBasic,
            ClientAuthArg::None => ClientAuth::None,
        }),
        scopes: args.scopes.clone(),
        tenant: args.tenant.clone(),
        auth_url: args.auth_url.clone(),
        token_url: args.token_url.clone(),
        device_url: args.device_url.clone(),
        device: args.device,
    })?;
    with_auth_params(plan, args)
}

/// `--auth-param` and `--prompt` over the provider's parameters.
fn with_auth_params(plan: LoginPlan, args: &Args) -> Result<LoginPlan> {
    let given = AuthParams {
        params: args.auth_params.clone(),
        prompt: args.prompt.clone(),
    };
    Ok(plan.with_auth_params(&given, args.device)?)
}

/// Runs the flow with the person at this terminal and returns the token
/// response (with a refresh token).
fn authorize(plan: &LoginPlan, name: &str, options: FlowOptions) -> Result<Refreshed> {
    Ok(block_on(vault_engine::login::authorize(
        plan,
        options,
        &TerminalLogin { name },
    ))??)
}

/// A new record `name`, authorized by the person at this terminal.
fn login_record(plan: &LoginPlan, name: &str, options: FlowOptions) -> Result<Record> {
    let ui = TerminalLogin { name };
    Ok(block_on(vault_engine::login::login_record(
        plan, name, options, &ui,
    ))??)
}

fn flow_of(args: &Args) -> FlowOptions {
    let flow = if args.device {
        Flow::Device
    } else if args.no_browser {
        Flow::Paste
    } else {
        Flow::Loopback
    };
    FlowOptions {
        flow,
        port: args.port,
        timeout: args.timeout,
    }
}

fn account_note(record: &Record) -> String {
    record
        .account
        .as_ref()
        .map_or_else(String::new, |account| format!(" ({account})"))
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    if args.again {
        return login_again(ctx, &args.name, flow_of(args), args);
    }
    vault_format::check_record_name(&args.name)
        .map_err(|reason| CliError::usage(format!("record name: {reason}")))?;
    let plan = new_plan(args)?;
    if let Some(output) = &args.output {
        return seal_for_server(args, &plan, output);
    }
    // Unlock first, so a wrong key or a taken name fails before the browser.
    let probe = ctx.session_without_keys()?;
    block_on(probe.check_login_target())??;
    let session = ctx.session()?;
    block_on(session.check_name_free(&args.name, args.replace))??;
    let record = login_record(&plan, &args.name, flow_of(args))?;
    let note = account_note(&record);
    block_on(session.save_login(record, args.replace))??;
    eprintln!(
        "Authorized {:?}{note}; saved in {}.",
        args.name,
        session.location()
    );
    Ok(Exit::Success)
}

/// `--seal-to`: a vault for a server; no private key is needed here.
fn seal_for_server(args: &Args, plan: &LoginPlan, output: &Path) -> Result<Exit> {
    vault_engine::vaults::check_new_file(output)?;
    let recipients = keys::recipients(&RecipientArgs {
        recipients: args.seal_to.clone(),
        ..RecipientArgs::default()
    })?;
    let record = login_record(plan, &args.name, flow_of(args))?;
    let note = account_note(&record);
    vault_engine::vaults::seal_records(output, &recipients, None, vec![record])?;
    eprintln!(
        "Authorized {:?}{note}; sealed into {} for {} recipient(s). Copy it to the server; \
         nothing else holds the tokens.",
        args.name,
        output.display(),
        recipients.len()
    );
    Ok(Exit::Success)
}

fn login_again(ctx: &Context, name: &str, options: FlowOptions, args: &Args) -> Result<Exit> {
    let probe = ctx.session_without_keys()?;
    block_on(vault_engine::Backend::check_writable(probe.backend()))??;
    let session = ctx.session()?;
    let plan = block_on(session.plan_for(
        name,
        &args.scopes,
        args.auth_url.as_deref(),
        args.device_url.as_deref(),
    ))??;
    let plan = with_auth_params(plan, args)?;
    reauthorize(&session, name, &plan, options)
}

fn reauthorize(
    session: &VaultSession,
    name: &str,
    plan: &LoginPlan,
    options: FlowOptions,
) -> Result<Exit> {
    let tokens = authorize(plan, name, options)?;
    let record = block_on(session.save_reauthorization(name, plan, tokens, unix_now()))??;
    eprintln!(
        "Re-authorized {name:?}{}; saved in {}.",
        account_note(&record),
        session.location()
    );
    Ok(Exit::Success)
}

/// `refresh --reauthorize`: re-authorizes each record in `names`
/// interactively when stdin is a terminal. Returns the names that were
/// re-authorized.
pub(crate) fn reauthorize_interactively(
    session: &VaultSession,
    vault: &Vault,
    names: &[String],
) -> Vec<String> {
    if names.is_empty() {
        return Vec::new();
    }
    if !std::io::stdin().is_terminal() {
        tracing::warn!(
            "--reauthorize needs a terminal on stdin to ask a person; run `tokvault login NAME --again` where one is"
        );
        return Vec::new();
    }
    let options = FlowOptions {
        flow: if browser_available() {
            Flow::Loopback
        } else {
            Flow::Paste
        },
        port: None,
        timeout: None,
    };
    let mut done = Vec::new();
    for name in names {
        let Some(record) = vault.record(name) else {
            continue;
        };
        let plan = vault_engine::login::stored_plan(record).map_err(CliError::from);
        let result = plan.and_then(|plan| {
            eprintln!("{name}: the refresh token was rejected; re-authorizing now.");
            reauthorize(session, name, &plan, options)
        });
        match result {
            Ok(_) => done.push(name.clone()),
            Err(error) => eprintln!("{name}: re-authorization failed: {error}"),
        }
    }
    done
}
