//! Token files and vaults given to `seal` and `import`: read with a cap
//! whatever the input is, parsed by vault-oauth, with the CLI's options
//! applied.

use std::path::Path;

use vault_engine::fsio;
use vault_format::check_endpoint;
use vault_oauth::{TokenFile, TokenFileError};
use zeroize::Zeroizing;

use crate::error::{CliError, Result};

/// The most `seal` and `import` read: a vault's own limit.
const MAX_INPUT: usize = vault_format::MAX_PLAINTEXT_LEN;

/// A token file or vault from a path or stdin (`-`), capped in what is
/// read, not in what metadata claims (a FIFO, stdin or `/dev/zero` has no
/// size to check).
pub(crate) fn read_input(input: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let (read, name) = if input == Path::new("-") {
        (
            fsio::read_capped(std::io::stdin().lock(), MAX_INPUT, 64 * 1024),
            "stdin".to_owned(),
        )
    } else {
        let file =
            std::fs::File::open(input).map_err(|e| CliError::io("cannot open", input, &e))?;
        let hint = file.metadata().map_or(0, |m| m.len() as usize);
        (
            fsio::read_capped(file, MAX_INPUT, hint),
            input.display().to_string(),
        )
    };
    read.map_err(|e| CliError::failure(format!("cannot read {name}: {e}")))?
        .ok_or_else(|| {
            CliError::failure(format!(
                "{name} holds more than 64 MiB; that is no token file or vault"
            ))
        })
}

/// Reminds that the plaintext input should go once its tokens are sealed.
pub(crate) fn warn_plaintext_input(input: &Path) {
    if input != Path::new("-") {
        tracing::warn!(
            "{} holds tokens in plaintext; now that they are encrypted, delete it (e.g. shred -u {})",
            input.display(),
            input.display()
        );
    }
}

/// Parses a token file (`seal`, `import`): a bad `--name` is a usage
/// error; `--token-uri` replaces the file's token endpoint.
pub(crate) fn parse_token_file(
    bytes: &[u8],
    name: Option<&str>,
    token_uri: Option<&str>,
) -> Result<TokenFile> {
    let parsed = vault_oauth::parse_token_file(bytes, name, vault_engine::unix_now()).map_err(
        |e| match e {
            TokenFileError::NameRequired => {
                CliError::usage("--name NAME is required for a JSON input")
            }
            TokenFileError::InvalidName(e) => CliError::usage(format!("--name: {e}")),
            e => CliError::failure(e.to_string()),
        },
    )?;
    match (parsed, token_uri) {
        (TokenFile::Record(mut record), Some(uri)) => {
            check_endpoint(uri).map_err(|reason| {
                CliError::failure(format!("--token-uri: the token URI {reason}"))
            })?;
            record.token_endpoint = uri.to_owned();
            Ok(TokenFile::Record(record))
        }
        (parsed, _) => Ok(parsed),
    }
}
