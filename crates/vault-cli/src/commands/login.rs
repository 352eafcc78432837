//! `tokvault login` and `refresh --reauthorize`: obtain a refresh token in a
//! browser (loopback redirect or pasted URL) or with a device code, and
//! store it, so that nobody handles a plaintext token file.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use vault_format::{
    AccessToken, ClientAuth, Credential, Provider, Record, RefreshClass, RefreshStatus,
    RefreshTokenCredential, SecretString, Vault,
};
use vault_oauth::{
    AuthorizationRequest, GOOGLE_AUTHORIZATION_ENDPOINT, GOOGLE_TOKEN_ENDPOINT, LoginError,
    LoopbackListener, OAuthClient, PendingAuthorization, ProviderPreset, Refreshed, Refresher,
    RefresherConfig, TokenEndpoint, id_token_account,
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

/// Everything a login needs to know about the provider and the client.
struct Plan {
    provider: Provider,
    token_endpoint: String,
    authorization_endpoint: String,
    device_endpoint: Option<String>,
    client: OAuthClient,
    scopes: Vec<String>,
    extra_params: Vec<(String, String)>,
    /// A registered redirect URI to use as is (Google "web" clients), with
    /// its port and path; else any free loopback port.
    fixed_redirect: Option<(String, u16, String)>,
}

/// The fields of a Google Cloud console client JSON.
struct ClientFile {
    client_id: String,
    client_secret: Option<SecretString>,
    auth_uri: Option<String>,
    token_uri: Option<String>,
    /// A loopback redirect URI with a port, required for "web" clients.
    web_redirect: Option<(String, u16, String)>,
}

fn read_client_file(path: &Path) -> Result<ClientFile> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| CliError::io("cannot read the client file", path, &e))?,
    );
    let what = format!("client file {}", path.display());
    let mut top: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => object,
        _ => {
            return Err(CliError::failure(format!(
                "{what} is not the JSON object the Google Cloud console downloads"
            )));
        }
    };
    let (kind, mut object) = match (top.remove("installed"), top.remove("web")) {
        (Some(Value::Object(o)), _) => ("installed", o),
        (None, Some(Value::Object(o))) => ("web", o),
        _ => {
            return Err(CliError::failure(format!(
                "{what} has neither an \"installed\" nor a \"web\" client; download the JSON of an \
                 OAuth client of type Desktop app (APIs & Services > Credentials)"
            )));
        }
    };
    let text = |object: &Map<String, Value>, key: &str| {
        object.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    let client_id = text(&object, "client_id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| CliError::failure(format!("{what} has no client_id")))?;
    let client_secret = match object.remove("client_secret") {
        Some(Value::String(secret)) if !secret.is_empty() => Some(SecretString::new(secret)),
        _ => None,
    };
    let web_redirect = if kind == "web" {
        let uris: Vec<String> = object
            .get("redirect_uris")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let found = uris.iter().find_map(|uri| loopback_redirect(uri));
        Some(found.ok_or_else(|| {
            CliError::failure(format!(
                "{what} is a \"web\" client without a loopback redirect URI with a port (e.g. \
                 http://127.0.0.1:8085/); add one in the Cloud console, or create a Desktop app client"
            ))
        })?)
    } else {
        None
    };
    Ok(ClientFile {
        client_id,
        client_secret,
        auth_uri: text(&object, "auth_uri"),
        token_uri: text(&object, "token_uri"),
        web_redirect,
    })
}

/// `http://127.0.0.1:PORT/path` or `http://localhost:PORT/path`.
fn loopback_redirect(uri: &str) -> Option<(String, u16, String)> {
    let url = url::Url::parse(uri).ok()?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost"));
    (url.scheme() == "http" && loopback)
        .then(|| url.port())
        .flatten()
        .map(|port| (uri.to_owned(), port, url.path().to_owned()))
}

fn provider_arg(args: &Args) -> ProviderArg {
    args.provider.unwrap_or(if args.client_secrets.is_some() {
        ProviderArg::Google
    } else {
        ProviderArg::Generic
    })
}

fn client_auth(
    arg: Option<ClientAuthArg>,
    provider: ProviderArg,
    has_secret: bool,
) -> Result<ClientAuth> {
    let auth = match (arg, has_secret) {
        (Some(ClientAuthArg::Post), _) => ClientAuth::ClientSecretPost,
        (Some(ClientAuthArg::Basic), _) => ClientAuth::ClientSecretBasic,
        (Some(ClientAuthArg::None), _) | (None, false) => ClientAuth::None,
        (None, true) if provider == ProviderArg::Generic => ClientAuth::ClientSecretBasic,
        (None, true) => ClientAuth::ClientSecretPost,
    };
    if auth != ClientAuth::None && !has_secret {
        return Err(CliError::usage(
            "--client-auth post or basic needs a client secret: give --client-secret-file or --client-secrets",
        ));
    }
    Ok(auth)
}

fn has_scope(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

/// Google: a refresh token only with `access_type=offline`, and again
/// after an earlier consent only with `prompt=consent`.
fn google_params() -> Vec<(String, String)> {
    vec![
        ("access_type".to_owned(), "offline".to_owned()),
        ("prompt".to_owned(), "consent".to_owned()),
    ]
}

fn microsoft_device_url(token_endpoint: &str) -> Option<String> {
    token_endpoint
        .strip_suffix("/token")
        .map(|base| format!("{base}/devicecode"))
}

/// The plan for a new record, from flags and the client file.
fn new_plan(args: &Args) -> Result<Plan> {
    let provider = provider_arg(args);
    let file = args
        .client_secrets
        .as_deref()
        .map(read_client_file)
        .transpose()?;
    let client_secret = match (&args.client_secret_file, &file) {
        (Some(path), _) => {
            let bytes = keys::secret_file_policy().read(path, "client secret file")?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| CliError::failure(format!("{} is not text", path.display())))?
                .trim();
            if text.is_empty() {
                return Err(CliError::failure(format!("{} is empty", path.display())));
            }
            Some(SecretString::copy_from(text))
        }
        (None, Some(file)) => file.client_secret.clone(),
        (None, None) => None,
    };
    let client_id = match (&args.client_id, &file) {
        (Some(id), _) => id.clone(),
        (None, Some(file)) => file.client_id.clone(),
        (None, None) => {
            return Err(CliError::usage(
                "give the OAuth client: --client-secrets FILE (Google) or --client-id ID",
            ));
        }
    };
    let auth = client_auth(args.client_auth, provider, client_secret.is_some())?;
    let client = OAuthClient {
        client_id,
        client_secret,
        client_auth: auth,
    };
    if args.tenant.is_some() && provider != ProviderArg::Microsoft {
        return Err(CliError::usage("--tenant applies to --provider microsoft"));
    }
    let mut scopes = args.scopes.clone();
    let file_auth = file.as_ref().and_then(|f| f.auth_uri.clone());
    let file_token = file.as_ref().and_then(|f| f.token_uri.clone());
    let (provider_label, token_endpoint, authorization_endpoint, device_endpoint, extra_params) =
        match provider {
            ProviderArg::Google => {
                if scopes.is_empty() {
                    return Err(CliError::usage(
                        "give the scopes the job needs, e.g. --scope https://www.googleapis.com/auth/gmail.send \
                         (Google issues no token without one)",
                    ));
                }
                (
                    Provider::Google,
                    args.token_url
                        .clone()
                        .or(file_token)
                        .unwrap_or_else(|| GOOGLE_TOKEN_ENDPOINT.to_owned()),
                    args.auth_url
                        .clone()
                        .or(file_auth)
                        .unwrap_or_else(|| GOOGLE_AUTHORIZATION_ENDPOINT.to_owned()),
                    None,
                    google_params(),
                )
            }
            ProviderArg::Microsoft => {
                let preset = ProviderPreset::microsoft(args.tenant.as_deref().unwrap_or("common"))
                    .map_err(CliError::usage)?;
                if !has_scope(&scopes, "offline_access") {
                    scopes.push("offline_access".to_owned());
                }
                let token = args.token_url.clone().unwrap_or(preset.token_endpoint);
                (
                    Provider::Microsoft,
                    token.clone(),
                    args.auth_url
                        .clone()
                        .or(preset.authorization_endpoint)
                        .unwrap_or_default(),
                    args.device_url
                        .clone()
                        .or_else(|| microsoft_device_url(&token)),
                    Vec::new(),
                )
            }
            ProviderArg::Generic => {
                let token = args.token_url.clone().or(file_token).ok_or_else(|| {
                    CliError::usage("--provider generic needs --token-url URL (and --auth-url URL, or --device-url URL with --device)")
                })?;
                let authorization = args.auth_url.clone().or(file_auth);
                if authorization.is_none() && !args.device {
                    return Err(CliError::usage(
                        "--provider generic needs --auth-url URL (or --device with --device-url URL)",
                    ));
                }
                (
                    Provider::Generic,
                    token,
                    authorization.unwrap_or_default(),
                    args.device_url.clone(),
                    Vec::new(),
                )
            }
        };
    TokenEndpoint::parse(&token_endpoint).map_err(CliError::usage)?;
    Ok(Plan {
        provider: provider_label,
        token_endpoint,
        authorization_endpoint,
        device_endpoint,
        client,
        scopes,
        extra_params,
        fixed_redirect: file.and_then(|f| f.web_redirect),
    })
}

/// The plan to re-authorize `record` with what it stores.
fn plan_for_record(
    record: &Record,
    scopes: &[String],
    auth_url: Option<&str>,
    device_url: Option<&str>,
) -> Result<Plan> {
    let Credential::RefreshToken(credential) = &record.credential else {
        return Err(CliError::failure(format!(
            "record {:?} is not a refresh-token record (service accounts need no login)",
            record.name
        )));
    };
    let authorization_endpoint = auth_url
        .map(str::to_owned)
        .or_else(|| credential.authorization_endpoint.clone())
        .or_else(|| match record.provider {
            Provider::Google => Some(GOOGLE_AUTHORIZATION_ENDPOINT.to_owned()),
            Provider::Microsoft => record
                .token_endpoint
                .strip_suffix("/token")
                .map(|base| format!("{base}/authorize")),
            _ => None,
        })
        .unwrap_or_default();
    let device_endpoint = device_url.map(str::to_owned).or_else(|| {
        (record.provider == Provider::Microsoft)
            .then(|| microsoft_device_url(&record.token_endpoint))
            .flatten()
    });
    let scopes = if scopes.is_empty() {
        record.scopes.clone()
    } else {
        scopes.to_vec()
    };
    let extra_params = match record.provider {
        Provider::Google => google_params(),
        _ => Vec::new(),
    };
    Ok(Plan {
        provider: record.provider.clone(),
        token_endpoint: record.token_endpoint.clone(),
        authorization_endpoint,
        device_endpoint,
        client: OAuthClient {
            client_id: credential.client_id.clone(),
            client_secret: credential.client_secret.clone(),
            client_auth: credential.client_auth,
        },
        scopes,
        extra_params,
        fixed_redirect: None,
    })
}

fn login_error(error: LoginError, plan: &Plan) -> CliError {
    let mut message = error.to_string();
    if matches!(error, LoginError::NoRefreshToken) {
        message.push_str(match plan.provider {
            Provider::Google => {
                "; Google issues one only with access_type=offline and, after an earlier consent, \
                 prompt=consent (tokvault sends both): check that the client is a Desktop app client"
            }
            Provider::Microsoft => "; Microsoft issues one only when offline_access is granted",
            _ => "; ask for the scope that grants one (often offline_access)",
        });
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
    plan: &Plan,
    name: &str,
    flow: Flow,
    port: Option<u16>,
    timeout: Option<Duration>,
) -> Result<Refreshed> {
    let refresher =
        Refresher::new(RefresherConfig::default()).map_err(|e| CliError::failure(e.to_string()))?;
    let token_endpoint = TokenEndpoint::parse(&plan.token_endpoint).map_err(CliError::failure)?;
    if flow == Flow::Device {
        let device_url = match (&plan.device_endpoint, &plan.provider) {
            (Some(url), _) => url.clone(),
            (None, Provider::Google) => {
                return Err(CliError::usage(
                    "Google does not allow Gmail, Sheets or Drive scopes on the device flow; \
                     use --no-browser instead (open the URL on any machine, paste the result here)",
                ));
            }
            (None, _) => {
                return Err(CliError::usage(
                    "--device needs the provider's device authorization endpoint: --device-url URL",
                ));
            }
        };
        return run(async {
            let device = refresher
                .start_device_authorization(&device_url, &plan.client, &plan.scopes)
                .await
                .map_err(|e| login_error(e, plan))?;
            eprintln!(
                "To authorize {name:?}, open\n\n    {}\n\nand enter the code\n\n    {}\n",
                device.verification_uri, device.user_code
            );
            if let Some(complete) = &device.verification_uri_complete {
                eprintln!(
                    "(or open this address, which has the code filled in:\n\n    {complete}\n)"
                );
            }
            eprintln!(
                "Waiting for approval (the code expires in {})...",
                crate::output::human_duration(device.expires_in.as_secs())
            );
            refresher
                .poll_device_authorization(
                    &token_endpoint,
                    plan.client.clone(),
                    &device,
                    // Until the code expires, unless told otherwise.
                    timeout.unwrap_or(device.expires_in),
                )
                .await
                .map_err(|e| login_error(e, plan))
        });
    }
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
    let timeout = timeout.unwrap_or(DEFAULT_BROWSER_TIMEOUT);
    let (port, path) = match (&plan.fixed_redirect, port) {
        (Some((_, fixed, path)), _) => (*fixed, path.clone()),
        (None, port) => (port.unwrap_or(0), "/".to_owned()),
    };
    run(async {
        let listener = LoopbackListener::bind(port, &path)
            .await
            .map_err(|e| login_error(e, plan))?;
        let redirect_uri = plan.fixed_redirect.as_ref().map_or_else(
            || listener.redirect_uri().to_owned(),
            |(uri, _, _)| uri.clone(),
        );
        let pending =
            PendingAuthorization::new(&request, &redirect_uri).map_err(|e| login_error(e, plan))?;
        let code = if flow == Flow::Paste {
            // Nobody will connect: close the port now.
            drop(listener);
            eprintln!(
                "Open this URL in a browser on any machine and approve access for {name:?}:\n\n    {}\n\n\
                 The browser then goes to {redirect_uri}... which fails to load (it points at the\n\
                 machine the browser runs on). Copy the whole address from the address bar and paste it\n\
                 here (or just the value of code=), then press Enter:",
                pending.url()
            );
            let line = tokio::task::spawn_blocking(read_pasted_line)
                .await
                .map_err(|_| CliError::failure("cannot read stdin"))??;
            pending
                .accept_pasted(&line)
                .map_err(|e| login_error(e, plan))?
        } else {
            let opened = open_browser(pending.url().as_str());
            eprintln!(
                "{} this URL to approve access for {name:?}:\n\n    {}\n\n\
                 Waiting up to {} for the browser to come back to {redirect_uri} ...",
                if opened {
                    "Your browser should open; if it does not, open"
                } else {
                    "Open"
                },
                pending.url(),
                crate::output::human_duration(timeout.as_secs())
            );
            listener
                .wait_for_code(&pending, timeout)
                .await
                .map_err(|e| login_error(e, plan))?
        };
        refresher
            .exchange_code(&token_endpoint, plan.client.clone(), &pending, code)
            .await
            .map_err(|e| login_error(e, plan))
    })
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

/// A new record from a login's token response.
fn new_record(name: &str, plan: &Plan, tokens: Refreshed, now: u64) -> Result<Record> {
    let refresh_token = tokens
        .refresh_token
        .ok_or_else(|| CliError::failure("the provider issued no refresh token"))?;
    let mut record = Record::new(
        name,
        plan.provider.clone(),
        plan.token_endpoint.clone(),
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: plan.client.client_id.clone(),
            client_secret: plan.client.client_secret.clone(),
            client_auth: plan.client.client_auth,
            refresh_token,
            refresh_token_issued_at: Some(tokens.obtained_at),
            authorization_endpoint: (!plan.authorization_endpoint.is_empty())
                .then(|| plan.authorization_endpoint.clone()),
        }),
        now,
    );
    record.scopes = tokens.scopes.unwrap_or_else(|| plan.scopes.clone());
    record.account = tokens.id_token.as_ref().and_then(id_token_account);
    record.access_token = Some(AccessToken {
        token: tokens.access_token,
        expires_at: tokens.expires_at,
    });
    record.last_refresh = Some(authorized_status(now));
    Ok(record)
}

fn authorized_status(now: u64) -> RefreshStatus {
    RefreshStatus {
        at: now,
        class: RefreshClass::Refreshed,
        error_code: None,
        error_description: None,
    }
}

/// Puts a re-authorization's tokens into the existing `record`.
fn renew_record(record: &mut Record, plan: &Plan, tokens: Refreshed, now: u64) -> Result<()> {
    let Credential::RefreshToken(credential) = &mut record.credential else {
        return Err(CliError::failure(format!(
            "record {:?} changed kind while the login ran; nothing was saved",
            record.name
        )));
    };
    credential.refresh_token = tokens
        .refresh_token
        .ok_or_else(|| CliError::failure("the provider issued no refresh token"))?;
    credential.refresh_token_issued_at = Some(tokens.obtained_at);
    if !plan.authorization_endpoint.is_empty() {
        credential.authorization_endpoint = Some(plan.authorization_endpoint.clone());
    }
    // What the server granted, else what was asked for.
    record.scopes = tokens.scopes.unwrap_or_else(|| plan.scopes.clone());
    if let Some(account) = tokens.id_token.as_ref().and_then(id_token_account) {
        record.account = Some(account);
    }
    record.access_token = Some(AccessToken {
        token: tokens.access_token,
        expires_at: tokens.expires_at,
    });
    record.last_refresh = Some(authorized_status(now));
    record.updated_at = now;
    Ok(())
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
        let record = new_record(&args.name, &plan, tokens, unix_now())?;
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
    let record = new_record(&args.name, &plan, tokens, unix_now())?;
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
    let plan = plan_for_record(
        record,
        &args.scopes,
        args.auth_url.as_deref(),
        args.device_url.as_deref(),
    )?;
    drop(vault);
    reauthorize(&session, name, &plan, flow, args.port, args.timeout)
}

fn reauthorize(
    session: &VaultSession,
    name: &str,
    plan: &Plan,
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
        renew_record(record, plan, tokens, now)?;
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
    // A browser on this machine if one can be opened, else the paste flow.
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
        let result = plan_for_record(record, &[], None, None).and_then(|plan| {
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
