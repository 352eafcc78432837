//! The terminal side of a login ([`TerminalLogin`]): it opens the browser,
//! prints the prompts on stderr and reads the pasted line from stdin for
//! the flows of `vault_oauth::LoginPlan::authorize`.

use std::io::BufRead as _;

use url::Url;
use vault_oauth::{LoginError, LoginPrompt, LoginUi};
use zeroize::Zeroizing;

use crate::ui::output::human_duration;

/// The person at this terminal, authorizing record `name`.
pub(crate) struct TerminalLogin<'a> {
    pub(crate) name: &'a str,
}

impl LoginUi for TerminalLogin<'_> {
    fn open_browser(&self, url: &Url) -> bool {
        open_browser(url.as_str())
    }

    fn show(&self, prompt: LoginPrompt<'_>) {
        let name = self.name;
        match prompt {
            LoginPrompt::Device(device) => {
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
                    human_duration(device.expires_in.as_secs())
                );
            }
            LoginPrompt::Paste { url, redirect_uri } => eprintln!(
                "Open this URL in a browser on any machine and approve access for {name:?}:\n\n    {url}\n\n\
                 The browser then goes to {redirect_uri}... which fails to load (it points at the\n\
                 machine the browser runs on). Copy the whole address from the address bar and paste it\n\
                 here (or just the value of code=), then press Enter:"
            ),
            LoginPrompt::Browser {
                url,
                redirect_uri,
                opened,
                timeout,
            } => eprintln!(
                "{} this URL to approve access for {name:?}:\n\n    {url}\n\n\
                 Waiting up to {} for the browser to come back to {redirect_uri} ...",
                if opened {
                    "Your browser should open; if it does not, open"
                } else {
                    "Open"
                },
                human_duration(timeout.as_secs())
            ),
            _ => {}
        }
    }

    async fn read_pasted_line(&self) -> Result<Zeroizing<String>, LoginError> {
        tokio::task::spawn_blocking(read_pasted_line)
            .await
            .map_err(|_| LoginError::NoAnswer("cannot read stdin".to_owned()))?
    }
}

fn read_pasted_line() -> Result<Zeroizing<String>, LoginError> {
    // Sized for any redirect URL, so reading never reallocates (which
    // would leave an unwiped copy of the code behind).
    let mut line = Zeroizing::new(String::with_capacity(64 * 1024));
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| LoginError::NoAnswer(format!("cannot read stdin: {e}")))?;
    if read == 0 {
        return Err(LoginError::NoAnswer(
            "stdin ended before the redirected URL was pasted; nothing was saved".to_owned(),
        ));
    }
    Ok(line)
}

/// Whether a browser can be opened here (else a login pastes the URL).
pub(crate) fn browser_available() -> bool {
    browser_program().is_some()
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
