//! Token files and vaults given to be sealed or imported: read with a cap
//! whatever the input is, decrypted in memory when they come age-encrypted
//! (import), parsed by vault-oauth, with the caller's name and token
//! endpoint applied.

use std::path::{Path, PathBuf};

use vault_format::{Credential, Record, check_endpoint, check_record_name};
use vault_oauth::{TokenFile, TokenFileError};
use zeroize::Zeroizing;

use crate::error::{EngineError, Result};
use crate::fsio;
use crate::session::{IfWriteFails, Session};
use crate::store::Backend;
use crate::vaults::merge;

/// The most an input may hold: a vault's own limit.
const MAX_INPUT: usize = vault_format::MAX_PLAINTEXT_LEN;

/// An input read whole: a token file, an age file or a vault.
pub struct Input {
    /// Where it came from: a path, or `-` for stdin.
    pub path: PathBuf,
    /// Its bytes (maybe tokens in plaintext: wiped on drop).
    pub bytes: Zeroizing<Vec<u8>>,
    /// When it was last written (Unix seconds), when it is a regular file
    /// (a path, or stdin redirected from one).
    pub modified: Option<u64>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("modified", &self.modified)
            .finish()
    }
}

impl Input {
    /// Reads a path or stdin (`-`), capped in what is read, not in what
    /// metadata claims (a FIFO, stdin or `/dev/zero` has no size to check).
    pub fn read(path: &Path) -> Result<Self> {
        let stdin = path == Path::new("-");
        let file = if stdin {
            None
        } else {
            Some(std::fs::File::open(path).map_err(|e| EngineError::io("cannot open", path, e))?)
        };
        let metadata = match &file {
            Some(file) => file.metadata().ok(),
            None => stdin_metadata(),
        }
        .filter(std::fs::Metadata::is_file);
        let hint = metadata
            .as_ref()
            .map_or(if stdin { 64 * 1024 } else { 0 }, |m| {
                usize::try_from(m.len()).unwrap_or(0)
            });
        let read = match file {
            Some(file) => fsio::read_capped(file, MAX_INPUT, hint),
            None => fsio::read_capped(std::io::stdin().lock(), MAX_INPUT, hint),
        };
        let name = display_name(path);
        let bytes = read
            .map_err(|e| EngineError::failure(format!("cannot read {name}: {e}")))?
            .ok_or_else(|| {
                EngineError::failure(format!(
                    "{name} holds more than 64 MiB; that is no token file or vault"
                ))
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            modified: metadata.and_then(|m| unix_seconds(m.modified().ok()?)),
        })
    }

    /// Whether it is stdin.
    pub fn is_stdin(&self) -> bool {
        self.path == Path::new("-")
    }

    /// How messages name it: its path, or `stdin`.
    pub fn name(&self) -> String {
        display_name(&self.path)
    }
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// What stdin is, through a duplicate of its descriptor.
fn stdin_metadata() -> Option<std::fs::Metadata> {
    use std::os::fd::AsFd as _;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    std::fs::File::from(fd).metadata().ok()
}

fn unix_seconds(time: std::time::SystemTime) -> Option<u64> {
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
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

/// Parses a token file with the record name, or the error to give when a
/// JSON input needs one; `token_uri` replaces the file's token endpoint.
fn parse_named(bytes: &[u8], name: Result<String>, token_uri: Option<&str>) -> Result<TokenFile> {
    let (name, no_name) = match name {
        Ok(name) => (Some(name), None),
        Err(error) => (None, Some(error)),
    };
    let parsed =
        vault_oauth::parse_token_file(bytes, name.as_deref(), crate::unix_now()).map_err(|e| {
            match e {
                TokenFileError::NameRequired => {
                    no_name.unwrap_or_else(|| EngineError::usage(e.to_string()))
                }
                TokenFileError::InvalidName(e) => EngineError::usage(format!("--name: {e}")),
                e => EngineError::failure(e.to_string()),
            }
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

/// The record of a token file to seal into a new vault, made as `import`
/// makes it (named, its endpoint replaced and its refresh token dated by
/// `options`); a vault is refused.
pub fn record_to_seal(input: &Input, options: &RecordOptions<'_>) -> Result<Record> {
    match json_record(&input.bytes, input, options)? {
        TokenFile::Record(record) => Ok(*record),
        TokenFile::Vault => Err(EngineError::usage(
            "seal takes a token file, not a vault (use `tokvault rekey` to change a vault's recipients)",
        )),
    }
}

/// The record of a JSON input (`bytes`, the plaintext of `input`), named,
/// its endpoint replaced and its refresh token dated by `options`; or
/// [`TokenFile::Vault`].
fn json_record(bytes: &[u8], input: &Input, options: &RecordOptions<'_>) -> Result<TokenFile> {
    let name = record_name(options.name, input);
    let mut parsed = parse_named(bytes, name, options.token_uri)?;
    if let TokenFile::Record(record) = &mut parsed {
        date_refresh_token(
            record,
            options.refresh_token_issued_at,
            input.modified,
            crate::unix_now(),
        )?;
    }
    Ok(parsed)
}

/// The record name a token file's name suggests: `token_gmail.json`,
/// `gmail.json`, `gmail.json.age` and `token_gmail.json.age` all give
/// `gmail`. `None` for stdin, a name that is not UTF-8, and `token.json`
/// (google-auth's usual name, which says nothing of the account). The
/// name is not checked here.
pub fn name_from_file(path: &Path) -> Option<String> {
    if path == Path::new("-") {
        return None;
    }
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(".age").unwrap_or(file);
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    let stem = stem
        .strip_prefix("token_")
        .or_else(|| stem.strip_prefix("token-"))
        .unwrap_or(stem);
    (!stem.is_empty() && stem != "token").then(|| stem.to_owned())
}

/// The name of an imported JSON record: `--name`, else the one the file's
/// name gives when it is a valid record name; else the usage error that
/// says why there is none.
fn record_name(given: Option<&str>, input: &Input) -> Result<String> {
    if let Some(name) = given {
        return Ok(name.to_owned());
    }
    if input.is_stdin() {
        return Err(EngineError::usage(
            "a JSON input on stdin needs --name NAME (from a file, the file's name gives it: \
             token_gmail.json gives the record name gmail)",
        ));
    }
    let file = input
        .path
        .file_name()
        .map_or_else(|| input.name(), |file| file.to_string_lossy().into_owned());
    let Some(name) = name_from_file(&input.path) else {
        return Err(EngineError::usage(format!(
            "cannot tell a record name from the file name {file}: give --name NAME (a file \
             named token_gmail.json or gmail.json gives the record name gmail)"
        )));
    };
    check_record_name(&name).map_err(|e| {
        EngineError::usage(format!(
            "the file name {file} gives the record name {name:?}, which is not valid ({e}): \
             give --name NAME"
        ))
    })?;
    Ok(name)
}

/// Sets when an imported record's refresh token was issued: `issued` when
/// the caller knows it; else the time the input carries (a tokvault JSON
/// record); else no later than `modified`, when the file was last written
/// (a token cannot be in a file before it was issued), and never after
/// `now`. Without any of these the record's creation time stands in, as
/// before. A service-account key has no refresh token to date.
fn date_refresh_token(
    record: &mut Record,
    issued: Option<u64>,
    modified: Option<u64>,
    now: u64,
) -> Result<()> {
    match &mut record.credential {
        Credential::RefreshToken(credential) => {
            if issued.is_some() {
                credential.refresh_token_issued_at = issued;
            } else if credential.refresh_token_issued_at.is_none() {
                credential.refresh_token_issued_at = modified.map(|at| at.min(now));
            }
            Ok(())
        }
        _ if issued.is_some() => Err(EngineError::usage(
            "--refresh-token-issued applies to refresh tokens; the input holds a service-account key",
        )),
        _ => Ok(()),
    }
}

/// How the record of a JSON input is made (`import`, `seal`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordOptions<'a> {
    /// Its name; else the input's file name gives one
    /// ([`name_from_file`]).
    pub name: Option<&'a str>,
    /// A token endpoint to use instead of the input's.
    pub token_uri: Option<&'a str>,
    /// When its refresh token was issued (Unix seconds), when the caller
    /// knows; else no later than the file was last written.
    pub refresh_token_issued_at: Option<u64>,
}

/// How to import.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions<'a> {
    /// How a JSON input's record is made.
    pub record: RecordOptions<'a>,
    /// Replace records of the same name.
    pub replace: bool,
}

/// What an import added.
#[derive(Debug)]
pub struct Imported {
    /// The names of the records, in input order.
    pub names: Vec<String>,
    /// Those of them that replaced a record of the same name.
    pub replaced: Vec<String>,
    /// How many records the vault holds now.
    pub records: usize,
    /// The input was a token file in plaintext (not a vault, not
    /// age-encrypted).
    pub plaintext: bool,
    /// The input was age-encrypted.
    pub age: bool,
}

impl<B: Backend> Session<B> {
    /// Adds the records of `input`: a token file (named by `options` or
    /// its file name, its token endpoint replaced when `options` say so),
    /// the same age-encrypted to an identity of this session, or another
    /// vault that this session's keys open. A record of the same name is
    /// replaced only when `options.replace`.
    pub async fn import(&self, input: &Input, options: &ImportOptions<'_>) -> Result<Imported> {
        if !self.exists().await? {
            return Err(self.no_vault());
        }
        let age = crate::age_input::is_age_file(&input.bytes);
        let decrypted;
        let bytes: &[u8] = if age {
            decrypted = self.decrypt_age_input(&input.bytes, &input.name())?;
            &decrypted
        } else {
            &input.bytes
        };
        let (records, json) = self.records_to_import(bytes, input, options)?;
        let names: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
        let replace = options.replace;
        let (replaced, count) = self
            .update(IfWriteFails::Fail, |vault| {
                let mut replaced = Vec::new();
                for record in records {
                    if vault.record(&record.name).is_some() {
                        replaced.push(record.name.clone());
                    }
                    merge(vault, record, replace)?;
                }
                Ok::<_, EngineError>((replaced, vault.records().len()))
            })
            .await?;
        Ok(Imported {
            names,
            replaced,
            records: count,
            plaintext: json && !age,
            age,
        })
    }

    /// The records `bytes` (the plaintext of `input`) hold, and whether
    /// they came from JSON.
    fn records_to_import(
        &self,
        bytes: &[u8],
        input: &Input,
        options: &ImportOptions<'_>,
    ) -> Result<(Vec<Record>, bool)> {
        match json_record(bytes, input, &options.record)? {
            TokenFile::Record(record) => Ok((vec![*record], true)),
            TokenFile::Vault => {
                let given = &options.record;
                if given.name.is_some()
                    || given.token_uri.is_some()
                    || given.refresh_token_issued_at.is_some()
                {
                    return Err(EngineError::usage(
                        "--name, --token-uri and --refresh-token-issued apply to JSON inputs; a \
                         vault's records keep their own",
                    ));
                }
                let vault = self.open_other(bytes, &input.name())?;
                Ok((vault.records().to_vec(), false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const TOKEN_FILE: &[u8] = br#"{"client_id":"id","client_secret":"s","refresh_token":"rt","token_uri":"https://oauth2.googleapis.com/token"}"#;

    fn input(path: &str, bytes: &[u8], modified: Option<u64>) -> Input {
        Input {
            path: PathBuf::from(path),
            bytes: Zeroizing::new(bytes.to_vec()),
            modified,
        }
    }

    fn named<'a>(name: &'a str, token_uri: Option<&'a str>) -> RecordOptions<'a> {
        RecordOptions {
            name: Some(name),
            token_uri,
            refresh_token_issued_at: None,
        }
    }

    fn parse(options: &RecordOptions<'_>) -> Result<TokenFile> {
        json_record(TOKEN_FILE, &input("-", TOKEN_FILE, None), options)
    }

    #[test]
    fn a_token_uri_replaces_the_file_s_and_is_checked() {
        let parsed = parse(&named("mail", Some("https://auth.example/token"))).expect("parsed");
        let TokenFile::Record(record) = parsed else {
            panic!("a record");
        };
        assert_eq!(record.name, "mail");
        assert_eq!(record.token_endpoint, "https://auth.example/token");
        let error = parse(&named("mail", Some("ftp://x"))).expect_err("bad");
        assert!(error.to_string().starts_with("--token-uri: "), "{error}");
    }

    #[test]
    fn seal_makes_the_record_as_import_does_and_refuses_a_vault() {
        let file = input("laptop/token_gmail.json", TOKEN_FILE, Some(900));
        let record = record_to_seal(&file, &RecordOptions::default()).expect("a record");
        assert_eq!(record.name, "gmail", "named by the file");
        let Credential::RefreshToken(credential) = &record.credential else {
            panic!("a refresh token");
        };
        assert_eq!(
            credential.refresh_token_issued_at,
            Some(900),
            "dated by the file"
        );
        let record = record_to_seal(&file, &named("mail", None)).expect("a record");
        assert_eq!(record.name, "mail");
        let vault = input("v.tokvault", &vault_format::MAGIC, None);
        let error = record_to_seal(&vault, &named("mail", None)).expect_err("a vault");
        assert_eq!(error.kind(), ErrorKind::Usage);
        assert!(error.to_string().contains("tokvault rekey"), "{error}");
    }

    #[test]
    fn a_json_input_needs_a_usable_name() {
        let missing = parse(&RecordOptions::default()).expect_err("no name");
        assert_eq!(missing.kind(), ErrorKind::Usage);
        let bad = parse(&named("bad name/", None)).expect_err("bad name");
        assert_eq!(bad.kind(), ErrorKind::Usage);
        assert!(bad.to_string().starts_with("--name: "), "{bad}");
    }

    #[test]
    fn an_input_is_read_whole_and_a_missing_one_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token.json");
        std::fs::write(&path, TOKEN_FILE).expect("write");
        let input = Input::read(&path).expect("read");
        assert_eq!(&input.bytes[..], TOKEN_FILE);
        let written = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(unix_seconds);
        assert_eq!((input.modified, written.is_some()), (written, true));
        assert!(
            !format!("{input:?}").contains("refresh"),
            "no bytes in Debug"
        );
        let error = Input::read(&dir.path().join("gone")).expect_err("missing");
        assert!(error.to_string().starts_with("cannot open "), "{error}");
    }

    #[test]
    fn a_file_s_name_gives_the_record_name() {
        for file in [
            "token_gmail.json",
            "gmail.json",
            "gmail.json.age",
            "token_gmail.json.age",
            "laptop/token-gmail.json",
            "gmail",
        ] {
            assert_eq!(
                name_from_file(Path::new(file)).as_deref(),
                Some("gmail"),
                "{file}"
            );
        }
        for file in ["-", "token.json", "token.json.age", ".json", "token_.json"] {
            assert_eq!(name_from_file(Path::new(file)), None, "{file}");
        }
        let input = |path: &str| Input {
            path: PathBuf::from(path),
            bytes: Zeroizing::new(Vec::new()),
            modified: None,
        };
        assert_eq!(
            record_name(None, &input("in/token_gmail.json")).expect("named"),
            "gmail"
        );
        assert_eq!(
            record_name(Some("given"), &input("-")).expect("named"),
            "given"
        );
        for (path, says) in [
            ("-", "stdin needs --name"),
            ("token.json", "cannot tell a record name"),
            ("token_my mail.json", "is not valid"),
        ] {
            let error = record_name(None, &input(path)).expect_err(path);
            assert_eq!(error.kind(), ErrorKind::Usage);
            let text = error.to_string();
            assert!(
                text.contains(says) && text.contains("--name NAME"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_refresh_token_is_dated_by_the_caller_the_input_or_the_file_never_the_future() {
        let dated = |issued, in_file, modified| {
            let mut record = match parse(&named("m", None)) {
                Ok(TokenFile::Record(record)) => *record,
                _ => panic!("a record"),
            };
            if let Credential::RefreshToken(c) = &mut record.credential {
                c.refresh_token_issued_at = in_file;
            }
            date_refresh_token(&mut record, issued, modified, 1_000).expect("dated");
            match record.credential {
                Credential::RefreshToken(c) => c.refresh_token_issued_at,
                _ => panic!("a refresh token"),
            }
        };
        assert_eq!(dated(Some(5), Some(7), Some(9)), Some(5), "the caller's");
        assert_eq!(dated(None, Some(7), Some(9)), Some(7), "the input's own");
        assert_eq!(dated(None, None, Some(9)), Some(9), "the file's time");
        assert_eq!(
            dated(None, None, Some(5_000)),
            Some(1_000),
            "never the future"
        );
        assert_eq!(dated(None, None, None), None, "the record's creation");
    }
}
