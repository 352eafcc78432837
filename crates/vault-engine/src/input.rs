//! Token files and vaults given to be sealed or imported: read with a cap
//! whatever the input is, parsed by vault-oauth, with the caller's name and
//! token endpoint applied.

use std::path::Path;

use vault_format::{Record, check_endpoint};
use vault_oauth::{TokenFile, TokenFileError};
use zeroize::Zeroizing;

use crate::error::{EngineError, Result};
use crate::fsio;
use crate::session::{IfWriteFails, Session};
use crate::store::Backend;
use crate::vaults::merge;

/// The most an input may hold: a vault's own limit.
const MAX_INPUT: usize = vault_format::MAX_PLAINTEXT_LEN;

/// A token file or vault from a path or stdin (`-`), capped in what is
/// read, not in what metadata claims (a FIFO, stdin or `/dev/zero` has no
/// size to check).
pub fn read_input(input: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let (read, name) = if input == Path::new("-") {
        (
            fsio::read_capped(std::io::stdin().lock(), MAX_INPUT, 64 * 1024),
            "stdin".to_owned(),
        )
    } else {
        let file =
            std::fs::File::open(input).map_err(|e| EngineError::io("cannot open", input, e))?;
        let hint = file.metadata().map_or(0, |m| m.len() as usize);
        (
            fsio::read_capped(file, MAX_INPUT, hint),
            input.display().to_string(),
        )
    };
    read.map_err(|e| EngineError::failure(format!("cannot read {name}: {e}")))?
        .ok_or_else(|| {
            EngineError::failure(format!(
                "{name} holds more than 64 MiB; that is no token file or vault"
            ))
        })
}

/// Reminds that the plaintext input should go once its tokens are sealed.
pub fn warn_plaintext_input(input: &Path) {
    if input != Path::new("-") {
        tracing::warn!(
            "{} holds tokens in plaintext; now that they are encrypted, delete it (e.g. shred -u {})",
            input.display(),
            input.display()
        );
    }
}

/// Parses a token file: a bad `name` is a usage error; `token_uri`
/// replaces the file's token endpoint.
pub fn parse_token_file(
    bytes: &[u8],
    name: Option<&str>,
    token_uri: Option<&str>,
) -> Result<TokenFile> {
    let parsed =
        vault_oauth::parse_token_file(bytes, name, crate::unix_now()).map_err(|e| match e {
            TokenFileError::NameRequired => {
                EngineError::usage("--name NAME is required for a JSON input")
            }
            TokenFileError::InvalidName(e) => EngineError::usage(format!("--name: {e}")),
            e => EngineError::failure(e.to_string()),
        })?;
    match (parsed, token_uri) {
        (TokenFile::Record(mut record), Some(uri)) => {
            check_endpoint(uri).map_err(|reason| {
                EngineError::failure(format!("--token-uri: the token URI {reason}"))
            })?;
            record.token_endpoint = uri.to_owned();
            Ok(TokenFile::Record(record))
        }
        (parsed, _) => Ok(parsed),
    }
}

/// The record of a token file to seal into a new vault (named `name`,
/// its token endpoint replaced by `token_uri`); a vault is refused.
pub fn record_to_seal(bytes: &[u8], name: &str, token_uri: Option<&str>) -> Result<Record> {
    match parse_token_file(bytes, Some(name), token_uri)? {
        TokenFile::Record(record) => Ok(*record),
        TokenFile::Vault => Err(EngineError::usage(
            "seal takes a token file, not a vault (use `tokvault rekey` to change a vault's recipients)",
        )),
    }
}

/// What an import added.
#[derive(Debug)]
pub struct Imported {
    /// The names of the records, in input order.
    pub names: Vec<String>,
    /// The input was a plaintext token file (not a vault).
    pub plaintext: bool,
}

impl<B: Backend> Session<B> {
    /// Adds the records of `bytes`, read from `input`: a token file (named
    /// `name`, its token endpoint replaced by `token_uri`) or another vault
    /// that this session's keys open. A record of the same name is
    /// replaced only when `replace`.
    pub async fn import(
        &self,
        bytes: &[u8],
        input: &Path,
        name: Option<&str>,
        token_uri: Option<&str>,
        replace: bool,
    ) -> Result<Imported> {
        let parsed = parse_token_file(bytes, name, token_uri)?;
        let plaintext = matches!(parsed, TokenFile::Record(_));
        let records = match parsed {
            TokenFile::Record(record) => vec![*record],
            TokenFile::Vault => {
                if name.is_some() || token_uri.is_some() {
                    return Err(EngineError::usage(
                        "--name and --token-uri apply to JSON inputs; a vault's records keep their own",
                    ));
                }
                let input = input.display().to_string();
                self.open_other(bytes, &input)?.records().to_vec()
            }
        };
        let names = records.iter().map(|r| r.name.clone()).collect();
        if !self.exists().await? {
            return Err(EngineError::failure(format!(
                "no vault at {}: create one with `tokvault init -r RECIPIENT` first, or pass --vault",
                self.location()
            )));
        }
        self.update(IfWriteFails::Fail, |vault| {
            records
                .into_iter()
                .try_for_each(|record| merge(vault, record, replace))
        })
        .await?;
        Ok(Imported { names, plaintext })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const TOKEN_FILE: &[u8] = br#"{"client_id":"id","client_secret":"s","refresh_token":"rt","token_uri":"https://oauth2.googleapis.com/token"}"#;

    #[test]
    fn a_token_uri_replaces_the_file_s_and_is_checked() {
        let parsed = parse_token_file(TOKEN_FILE, Some("mail"), Some("https://auth.example/token"))
            .expect("parsed");
        let TokenFile::Record(record) = parsed else {
            panic!("a record");
        };
        assert_eq!(record.name, "mail");
        assert_eq!(record.token_endpoint, "https://auth.example/token");
        let error = parse_token_file(TOKEN_FILE, Some("mail"), Some("ftp://x")).expect_err("bad");
        assert!(error.to_string().starts_with("--token-uri: "), "{error}");
    }

    #[test]
    fn seal_takes_a_token_file_and_refuses_a_vault() {
        let record = record_to_seal(TOKEN_FILE, "mail", None).expect("a record");
        assert_eq!(record.name, "mail");
        let error = record_to_seal(&vault_format::MAGIC, "mail", None).expect_err("a vault");
        assert_eq!(error.kind(), ErrorKind::Usage);
        assert!(error.to_string().contains("tokvault rekey"), "{error}");
    }

    #[test]
    fn a_json_input_needs_a_usable_name() {
        let missing = parse_token_file(TOKEN_FILE, None, None).expect_err("no name");
        assert_eq!(missing.kind(), ErrorKind::Usage);
        let bad = parse_token_file(TOKEN_FILE, Some("bad name/"), None).expect_err("bad name");
        assert_eq!(bad.kind(), ErrorKind::Usage);
        assert!(bad.to_string().starts_with("--name: "), "{bad}");
    }

    #[test]
    fn an_input_is_read_whole_and_a_missing_one_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token.json");
        std::fs::write(&path, TOKEN_FILE).expect("write");
        assert_eq!(&read_input(&path).expect("read")[..], TOKEN_FILE);
        let error = read_input(&dir.path().join("gone")).expect_err("missing");
        assert!(error.to_string().starts_with("cannot open "), "{error}");
    }
}
