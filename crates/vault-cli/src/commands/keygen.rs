//! `tokvault keygen [-o PATH]`: a new age identity, 0600, never over an
//! existing file; prints its recipient.

use std::path::PathBuf;

use vault_engine::fsio;
use zeroize::Zeroizing;

use crate::error::{CliError, Exit, Result};
use crate::ui::output::print;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write it [default: $XDG_CONFIG_HOME/tokvault/identity.txt]
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
}

pub(crate) fn exec(args: &Args) -> Result<Exit> {
    let path = match &args.output {
        Some(path) => path.clone(),
        None => vault_engine::paths::default_identity()?,
    };
    if path.exists() {
        return Err(CliError::failure(format!(
            "{} already exists; refusing to overwrite an identity",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsio::ensure_private_dir(parent)?;
    }
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = {
        use age::secrecy::ExposeSecret as _;
        let secret = identity.to_string();
        let mut text = Zeroizing::new(String::with_capacity(200));
        text.push_str(&format!(
            "# created: {}\n# public key: {recipient}\n",
            vault_oauth::rfc3339(vault_engine::unix_now())
        ));
        text.push_str(secret.expose_secret());
        text.push('\n');
        text
    };
    fsio::write_new_private(&path, secret.as_bytes())?;
    tracing::info!("identity written to {} (mode 0600)", path.display());
    print(&recipient)
}
