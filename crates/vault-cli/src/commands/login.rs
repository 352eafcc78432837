//! `tokvault login` and `refresh --reauthorize`: obtain a refresh token in a
//! browser (loopback redirect or pasted URL) or with a device code, and
//! store it, so that nobody handles a plaintext token file.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vault_format::{ClientAuth, Record, SecretString, Vault};
use vault_oauth::{
    AuthorizationRequest, ClientFile, LoginError, LoginInputs, LoginPlan, LoginProvider,
    LoopbackListener, PendingAuthorization, PlanError, Refreshed, Refresher, RefresherConfig,
    TokenEndpoint,
};
use zeroize::Zeroizing;

use crate::cli::{ClientAuthArg, ProviderArg, RecipientArgs};
use crate::context::{Context, VaultSession, block_on};
use crate::duration::parse_duration;
use crate::error::{CliError, Exit, Result};
use crate::keys;
use crate::vaults::{create_vault, merge, seal_vault};
use vault_engine::{IfWriteFails, unix_now};

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

/// How long the loopback listener waits for the browser by default.
const DEFAULT_BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// How the user proves consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Browser on this machine, redirect to a loopback listener.
    Loopback,
    /// Browser anywhere; the redirected URL is pasted on stdin.
    Paste,
    /// RFC 8628 device code.
    Device,
}

/// The plan for a new record, from the options and the files they name.
fn new_plan(args: &Args) -> Result<LoginPlan> {
    let client_file = args
        .client_secrets
        .as_deref()
        .map(|path| {
            let bytes = Zeroizing::new(
                std::fs::read(path)
                    .map_err(|e| CliError::io("cannot read the client file", path, &e))?,
            );
            ClientFile::parse(&bytes, &format!("client file {}", path.display()))
                .map_err(plan_error)
        })
        .transpose()?;
    let client_secret = args
        .client_secret_file
        .as_deref()
        .map(read_client_secret)
        .transpose()?;
    LoginPlan::resolve(LoginInputs {
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
    })
    .map_err(plan_error)
}

/// `--client-secret-file`: one line of text, 0600.
fn read_client_secret(path: &Path) -> Result<SecretString> {
    let bytes = keys::secret_file_policy().read(path, "client secret file")?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::failure(format!("{} is not text", path.display())))?
        .trim();
    if text.is_empty() {
        return Err(CliError::failure(format!("{} is empty", path.display())));
    }
    Ok(SecretString::copy_from(text))
}

fn plan_error(error: PlanError) -> CliError {
    match error {
        PlanError::Usage(message) => CliError::usage(message),
        PlanError::Invalid(message) => CliError::failure(message),
    }
}

fn login_error(error: LoginError, plan: &LoginPlan) -> CliError {
    let mut message = error.to_string();
    if matches!(error, LoginError::NoRefreshToken) {
        message.push_str(plan.no_refresh_token_hint());
    }
    if error.is_transient() {
        CliError::temporary(message)
    } else if matches!(error, LoginError::Endpoint(_)) {
        CliError::usage(message)
    } else {
        CliError::failure(message)
    }
}

/// The program that opens URLs here: `$BROWSER` if set (empty: none), else
/// the desktop's opener when there is a desktop.
fn browser_program() -> Option<String> {
    match std::env::var("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => Some(browser),
        Ok(_) => None,
        Err(_) if cfg!(target_os = "macos") => Some("open".to_owned()),
        Err(_)
            if std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some() =>
        {
            Some("xdg-open".to_owned())
        }
        Err(_) => None,
    }
}

/// Opens `url` in a browser: `$BROWSER` if set, else the desktop's opener
/// when there is a desktop. The URL carries no secret (state and the PKCE
/// challenge are public), so passing it as an argument is fine.
fn open_browser(url: &str) -> bool {
    let Some(program) = browser_program() else {
        return false;
    };
    // $BROWSER may list several, separated by ':'; take the first.
    let program = program
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let spawned = std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            // Reap it in the background; the login does not wait for it.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

/// Runs the flow and returns the token response (with a refresh token).
fn authorize(
    plan: &LoginPlan,
    name: &str,
    flow: Flow,
    port: Option<u16>,
    timeout: Option<Duration>,
) -> Result<Refreshed> {
    let login = Authorizer {
        plan,
        name,
        refresher: Refresher::new(RefresherConfig::default())
            .map_err(|e| CliError::failure(e.to_string()))?,
        token_endpoint: TokenEndpoint::parse(&plan.token_endpoint).map_err(CliError::failure)?,
    };
    match flow {
        Flow::Device => run(login.device(timeout)),
        Flow::Paste | Flow::Loopback => {
            run(login.browser(flow, port, timeout.unwrap_or(DEFAULT_BROWSER_TIMEOUT)))
        }
    }
}

/// One login's protocol, talking to the person on stderr.
struct Authorizer<'a> {
    plan: &'a LoginPlan,
    name: &'a str,
    refresher: Refresher,
    token_endpoint: TokenEndpoint,
}

impl Authorizer<'_> {
    fn error(&self, error: LoginError) -> CliError {
        login_error(error, self.plan)
    }

    /// RFC 8628: show the code, poll until approved (by default until the
    /// code expires).
    async fn device(&self, timeout: Option<Duration>) -> Result<Refreshed> {
        let (plan, name) = (self.plan, self.name);
        let device_url = plan.device_endpoint().map_err(plan_error)?;
        let device = self
            .refresher
            .start_device_authorization(device_url, &plan.client, &plan.scopes)
            .await
            .map_err(|e| self.error(e))?;
        eprintln!(
            "To authorize {name:?}, open\n\n    {}\n\nand enter the code\n\n    {}\n",
            device.verification_uri, device.user_code
        );
        if let Some(complete) = &device.verification_uri_complete {
            eprintln!("(or open this address, which has the code filled in:\n\n    {complete}\n)");
        }
        eprintln!(
            "Waiting for approval (the code expires in {})...",
            crate::output::human_duration(device.expires_in.as_secs())
        );
        self.refresher
            .poll_device_authorization(
                &self.token_endpoint,
                plan.client.clone(),
                &device,
                timeout.unwrap_or(device.expires_in),
            )
            .await
            .map_err(|e| self.error(e))
    }

    /// A browser flow: the redirect comes to a loopback listener, or (paste)
    /// the person pastes it; then the code is exchanged.
    async fn browser(&self, flow: Flow, port: Option<u16>, timeout: Duration) -> Result<Refreshed> {
        let plan = self.plan;
        if plan.authorization_endpoint.is_empty() {
            return Err(CliError::usage(
                "the authorization endpoint is unknown: pass --auth-url URL",
            ));
        }
        let request = AuthorizationRequest {
            authorization_endpoint: plan.authorization_endpoint.clone(),
            client_id: plan.client.client_id.clone(),
            scopes: plan.scopes.clone(),
            extra_params: plan.extra_params.clone(),
        };
        let (port, path) = match (&plan.fixed_redirect, port) {
            (Some(fixed), _) => (fixed.port, fixed.path.clone()),
            (None, port) => (port.unwrap_or(0), "/".to_owned()),
        };
        let listener = LoopbackListener::bind(port, &path)
            .await
            .map_err(|e| self.error(e))?;
        let redirect_uri = plan.fixed_redirect.as_ref().map_or_else(
            || listener.redirect_uri().to_owned(),
            |fixed| fixed.uri.clone(),
        );
        let pending =
            PendingAuthorization::new(&request, &redirect_uri).map_err(|e| self.error(e))?;
        let code = if flow == Flow::Paste {
            // Nobody will connect: close the port now.
            drop(listener);
            self.pasted_code(&pending, &redirect_uri).await?
        } else {
            self.redirected_code(listener, &pending, &redirect_uri, timeout)
                .await?
        };
        self.refresher
            .exchange_code(&self.token_endpoint, plan.client.clone(), &pending, code)
            .await
            .map_err(|e| self.error(e))
    }

    async fn pasted_code(
        &self,
        pending: &PendingAuthorization,
        redirect_uri: &str,
    ) -> Result<SecretString> {
        eprintln!(
            "Open this URL in a browser on any machine and approve access for {:?}:\n\n    {}\n\n\
             The browser then goes to {redirect_uri}... which fails to load (it points at the\n\
             machine the browser runs on). Copy the whole address from the address bar and paste it\n\
             here (or just the value of code=), then press Enter:",
            self.name,
            pending.url()
        );
        let line = tokio::task::spawn_blocking(read_pasted_line)
            .await
            .map_err(|_| CliError::failure("cannot read stdin"))??;
        pending.accept_pasted(&line).map_err(|e| self.error(e))
    }

    async fn redirected_code(
        &self,
        listener: LoopbackListener,
        pending: &PendingAuthorization,
        redirect_uri: &str,
        timeout: Duration,
    ) -> Result<SecretString> {
        let opened = open_browser(pending.url().as_str());
        eprintln!(
            "{} this URL to approve access for {:?}:\n\n    {}\n\n\
             Waiting up to {} for the browser to come back to {redirect_uri} ...",
            if opened {
                "Your browser should open; if it does not, open"
            } else {
                "Open"
            },
            self.name,
            pending.url(),
            crate::output::human_duration(timeout.as_secs())
        );
        listener
            .wait_for_code(pending, timeout)
            .await
            .map_err(|e| self.error(e))
    }
}

/// Runs the flow's network part to its end.
fn run<T>(flow: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    block_on(flow)?
}

fn read_pasted_line() -> Result<Zeroizing<String>> {
    // Sized for any redirect URL, so reading never reallocates (which
    // would leave an unwiped copy of the code behind).
    let mut line = Zeroizing::new(String::with_capacity(64 * 1024));
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::failure(format!("cannot read stdin: {e}")))?;
    if read == 0 {
        return Err(CliError::failure(
            "stdin ended before the redirected URL was pasted; nothing was saved",
        ));
    }
    Ok(line)
}

fn flow_of(args: &Args) -> Flow {
    if args.device {
        Flow::Device
    } else if args.no_browser {
        Flow::Paste
    } else {
        Flow::Loopback
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
        // A vault for a server: no private key is needed here.
        if output.exists() {
            return Err(CliError::failure(format!(
                "{} already exists; refusing to overwrite it",
                output.display()
            )));
        }
        let recipients = keys::recipients(&RecipientArgs {
            recipients: args.seal_to.clone(),
            ..RecipientArgs::default()
        })?;
        let tokens = authorize(&plan, &args.name, flow_of(args), args.port, args.timeout)?;
        let record = plan
            .new_record(&args.name, tokens, unix_now())
            .map_err(plan_error)?;
        let note = account_note(&record);
        let mut vault = create_vault(&recipients, None)?;
        vault.records_mut().push(record);
        let sealed = seal_vault(&mut vault)?;
        vault_engine::fsio::write_atomic(output, &sealed, false)?;
        eprintln!(
            "Authorized {:?}{note}; sealed into {} for {} recipient(s). Copy it to the server; \
             nothing else holds the tokens.",
            args.name,
            output.display(),
            recipients.len()
        );
        return Ok(Exit::Success);
    }
    // Unlock first, so a wrong key or a taken name fails before the browser.
    let probe = ctx.session_without_keys()?;
    if !block_on(probe.exists())?? {
        return Err(CliError::failure(format!(
            "no vault at {}: create one with `tokvault init`, or write a new one for a server with \
             --seal-to RECIPIENT -o FILE",
            probe.location()
        )));
    }
    block_on(vault_engine::Backend::check_writable(probe.backend()))??;
    let session = ctx.session()?;
    let vault = block_on(session.open())??;
    if vault.record(&args.name).is_some() && !args.replace {
        return Err(CliError::failure(format!(
            "a record named {:?} already exists; re-authorize it with `tokvault login {} --again`, \
             or pass --replace",
            args.name, args.name
        )));
    }
    drop(vault);
    let tokens = authorize(&plan, &args.name, flow_of(args), args.port, args.timeout)?;
    let record = plan
        .new_record(&args.name, tokens, unix_now())
        .map_err(plan_error)?;
    let note = account_note(&record);
    save(&session, |vault| merge(vault, record, args.replace))?;
    eprintln!(
        "Authorized {:?}{note}; saved in {}.",
        args.name,
        session.location()
    );
    Ok(Exit::Success)
}

/// Lock, re-read, change, seal, write: the tokens are new and a person
/// authorized them, so a failed write keeps them in the rescue file.
fn save(session: &VaultSession, change: impl FnOnce(&mut Vault) -> Result<()>) -> Result<()> {
    block_on(session.update(IfWriteFails::Rescue, change))?
}

fn login_again(ctx: &Context, name: &str, flow: Flow, args: &Args) -> Result<Exit> {
    let probe = ctx.session_without_keys()?;
    block_on(vault_engine::Backend::check_writable(probe.backend()))??;
    let session = ctx.session()?;
    let vault = block_on(session.open())??;
    let record = vault.record(name).ok_or_else(|| {
        CliError::failure(format!(
            "no record named {name:?} to re-authorize (see `tokvault list`; a new one needs the client: \
             `tokvault login {name} --client-secrets FILE ...`)"
        ))
    })?;
    let plan = LoginPlan::for_record(
        record,
        &args.scopes,
        args.auth_url.as_deref(),
        args.device_url.as_deref(),
    )
    .map_err(plan_error)?;
    drop(vault);
    reauthorize(&session, name, &plan, flow, args.port, args.timeout)
}

fn reauthorize(
    session: &VaultSession,
    name: &str,
    plan: &LoginPlan,
    flow: Flow,
    port: Option<u16>,
    timeout: Option<Duration>,
) -> Result<Exit> {
    let tokens = authorize(plan, name, flow, port, timeout)?;
    let now = unix_now();
    let mut note = String::new();
    save(session, |vault| {
        let record = vault.record_mut(name).ok_or_else(|| {
            CliError::failure(format!(
                "record {name:?} was removed while the login ran; nothing was saved"
            ))
        })?;
        plan.renew(record, tokens, now).map_err(plan_error)?;
        note = account_note(record);
        Ok(())
    })?;
    eprintln!(
        "Re-authorized {name:?}{note}; saved in {}.",
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
    let flow = if browser_program().is_some() {
        Flow::Loopback
    } else {
        Flow::Paste
    };
    let mut done = Vec::new();
    for name in names {
        let Some(record) = vault.record(name) else {
            continue;
        };
        let plan = LoginPlan::for_record(record, &[], None, None).map_err(plan_error);
        let result = plan.and_then(|plan| {
            eprintln!("{name}: the refresh token was rejected; re-authorizing now.");
            reauthorize(session, name, &plan, flow, None, None)
        });
        match result {
            Ok(_) => done.push(name.clone()),
            Err(error) => eprintln!("{name}: re-authorization failed: {error}"),
        }
    }
    done
}
