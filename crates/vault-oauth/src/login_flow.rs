//! One login from the plan to the tokens: the browser flows (a loopback
//! redirect, or the redirected URL pasted back) and the device flow. The
//! person is reached only through a [`LoginUi`] (age's `Callbacks`): this
//! module never prints, reads a terminal or starts a browser itself, so a
//! terminal, a test or a daemon can answer.

use std::future::Future;
use std::time::Duration;

use url::Url;
use vault_format::SecretString;
use zeroize::Zeroizing;

use crate::endpoint::TokenEndpoint;
use crate::login::{
    AuthorizationRequest, DeviceAuthorization, LoginError, LoopbackListener, PendingAuthorization,
};
use crate::outcome::Refreshed;
use crate::plan::{LoginPlan, PlanError};
use crate::refresher::Refresher;

/// How long the loopback listener waits for the browser by default.
pub const DEFAULT_BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// How the person proves consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// A browser on this machine, redirected to a loopback listener.
    Loopback,
    /// A browser anywhere; the redirected URL (or the code) is pasted back.
    Paste,
    /// RFC 8628 device code.
    Device,
}

/// A login's choices besides its plan.
#[derive(Clone, Copy, Debug)]
pub struct FlowOptions {
    /// Which flow.
    pub flow: Flow,
    /// The loopback port (`None`: a free one); a registered redirect URI
    /// of the plan wins.
    pub port: Option<u16>,
    /// How long to wait for the browser ([`DEFAULT_BROWSER_TIMEOUT`]) or
    /// the device approval (until the device code expires).
    pub timeout: Option<Duration>,
}

/// What the person must see to give consent.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginPrompt<'a> {
    /// Enter `user_code` at `verification_uri`; polling follows until
    /// the code expires.
    Device(&'a DeviceAuthorization),
    /// Open `url` in any browser, then paste the address it lands on
    /// (`redirect_uri`…, which fails to load there).
    Paste {
        /// The authorization URL.
        url: &'a Url,
        /// Where the browser goes afterwards.
        redirect_uri: &'a str,
    },
    /// Approve in the browser (`opened`: one was started); the listener
    /// waits up to `timeout` for the redirect to `redirect_uri`.
    Browser {
        /// The authorization URL.
        url: &'a Url,
        /// The loopback listener's address.
        redirect_uri: &'a str,
        /// Whether [`LoginUi::open_browser`] started a browser.
        opened: bool,
        /// How long the listener waits.
        timeout: Duration,
    },
}

/// The front end of a login: it shows, opens and reads what the flow asks
/// for. URLs carry no secret (`state` and the PKCE challenge are public);
/// the pasted line may hold the code, so it comes back zeroizing.
pub trait LoginUi {
    /// Opens `url` in a browser on this machine; `false` when none could
    /// be started (the prompt then says to open it by hand).
    fn open_browser(&self, url: &Url) -> bool;

    /// Shows the person what to do.
    fn show(&self, prompt: LoginPrompt<'_>);

    /// Reads the line the person pasted: the redirected URL, its query or
    /// the bare code. An input that ended or failed is a
    /// [`LoginError::NoAnswer`].
    fn read_pasted_line(
        &self,
    ) -> impl Future<Output = Result<Zeroizing<String>, LoginError>> + Send;
}

/// Why a login flow produced no tokens.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The plan cannot run this flow (an endpoint is missing or unusable).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The flow ran and failed.
    #[error(transparent)]
    Login(#[from] LoginError),
}

impl LoginPlan {
    /// Runs `options.flow` to its end with `ui` and returns the token
    /// response, which carries a refresh token. Nothing is stored.
    pub async fn authorize(
        &self,
        refresher: &Refresher,
        options: FlowOptions,
        ui: &impl LoginUi,
    ) -> Result<Refreshed, FlowError> {
        let login = Login {
            plan: self,
            refresher,
            token_endpoint: TokenEndpoint::parse(&self.token_endpoint)
                .map_err(PlanError::Invalid)?,
            ui,
        };
        match options.flow {
            Flow::Device => login.device(options.timeout).await,
            Flow::Paste | Flow::Loopback => {
                let timeout = options.timeout.unwrap_or(DEFAULT_BROWSER_TIMEOUT);
                login.browser(options.flow, options.port, timeout).await
            }
        }
    }

    /// The authorization endpoint, or why the browser flows cannot run.
    fn authorization_endpoint(&self) -> Result<&str, PlanError> {
        if self.authorization_endpoint.is_empty() {
            return Err(PlanError::Usage(
                "the authorization endpoint is unknown: give the server's authorization endpoint \
                 with --auth-url AUTHORIZATION_URL (authorization_endpoint in its \
                 /.well-known/openid-configuration, or its documentation)"
                    .to_owned(),
            ));
        }
        Ok(&self.authorization_endpoint)
    }
}

/// One login's protocol.
struct Login<'a, U> {
    plan: &'a LoginPlan,
    refresher: &'a Refresher,
    token_endpoint: TokenEndpoint,
    ui: &'a U,
}

impl<U: LoginUi> Login<'_, U> {
    /// RFC 8628: show the code, poll until approved (by default until the
    /// code expires).
    async fn device(&self, timeout: Option<Duration>) -> Result<Refreshed, FlowError> {
        let plan = self.plan;
        let device = self
            .refresher
            .start_device_authorization(plan.device_endpoint()?, &plan.client, &plan.scopes)
            .await?;
        self.ui.show(LoginPrompt::Device(&device));
        Ok(self
            .refresher
            .poll_device_authorization(
                &self.token_endpoint,
                plan.client.clone(),
                &device,
                timeout.unwrap_or(device.expires_in),
            )
            .await?)
    }

    /// The browser flows: the redirect comes to a loopback listener or is
    /// pasted; then the code is exchanged, once.
    async fn browser(
        &self,
        flow: Flow,
        port: Option<u16>,
        timeout: Duration,
    ) -> Result<Refreshed, FlowError> {
        let plan = self.plan;
        let request = AuthorizationRequest {
            authorization_endpoint: plan.authorization_endpoint()?.to_owned(),
            client_id: plan.client.client_id.clone(),
            scopes: plan.scopes.clone(),
            extra_params: plan.extra_params.clone(),
        };
        let (port, path) = match (&plan.fixed_redirect, port) {
            (Some(fixed), _) => (fixed.port, fixed.path.clone()),
            (None, port) => (port.unwrap_or(0), "/".to_owned()),
        };
        // A paste needs a redirect URI as well; binding picks its port.
        let listener = LoopbackListener::bind(port, &path).await?;
        let redirect_uri = plan.fixed_redirect.as_ref().map_or_else(
            || listener.redirect_uri().to_owned(),
            |fixed| fixed.uri.clone(),
        );
        let pending = PendingAuthorization::new(&request, &redirect_uri)?;
        let code = if flow == Flow::Paste {
            // Nobody will connect: close the port now.
            drop(listener);
            self.pasted_code(&pending).await?
        } else {
            self.redirected_code(listener, &pending, timeout).await?
        };
        Ok(self
            .refresher
            .exchange_code(&self.token_endpoint, plan.client.clone(), &pending, code)
            .await?)
    }

    async fn pasted_code(
        &self,
        pending: &PendingAuthorization,
    ) -> Result<SecretString, LoginError> {
        self.ui.show(LoginPrompt::Paste {
            url: pending.url(),
            redirect_uri: pending.redirect_uri(),
        });
        let line = self.ui.read_pasted_line().await?;
        pending.accept_pasted(&line)
    }

    async fn redirected_code(
        &self,
        listener: LoopbackListener,
        pending: &PendingAuthorization,
        timeout: Duration,
    ) -> Result<SecretString, LoginError> {
        let opened = self.ui.open_browser(pending.url());
        self.ui.show(LoginPrompt::Browser {
            url: pending.url(),
            redirect_uri: pending.redirect_uri(),
            opened,
            timeout,
        });
        listener.wait_for_code(pending, timeout).await
    }
}
