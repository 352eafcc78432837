//! New vaults, their key slots and recipients, and records merged into a
//! vault: what creating, sealing, importing, logging in and rekeying share.

use std::path::{Path, PathBuf};

use vault_format::{
    KdfParams, Record, SecretString, SlotError, SlotSpec, Vault, canonical_recipient,
};

use crate::error::{EngineError, Result};
use crate::fsio;
use crate::session::{IfWriteFails, Session};
use crate::store::Backend;

/// Slot specs for recipients and an optional new passphrase.
fn slot_specs<'a>(
    recipients: &'a [String],
    passphrase: Option<&'a SecretString>,
) -> Vec<SlotSpec<'a>> {
    let mut slots: Vec<SlotSpec<'a>> = recipients.iter().map(|r| SlotSpec::Recipient(r)).collect();
    if let Some(passphrase) = passphrase {
        slots.push(SlotSpec::Passphrase {
            passphrase,
            params: KdfParams::DEFAULT,
        });
    }
    slots
}

/// A new empty vault with these slots.
pub fn create_vault(recipients: &[String], passphrase: Option<&SecretString>) -> Result<Vault> {
    Vault::create(&slot_specs(recipients, passphrase)).map_err(slot_error)
}

/// Fails when `path` exists, before anything slow or secret happens: a
/// new vault file never replaces one.
pub fn check_new_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Err(EngineError::failure(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        )));
    }
    let dir = fsio::parent_of(path);
    fsio::probe_writable_dir(&dir).map_err(|e| {
        EngineError::io(
            &format!("cannot create {} in the directory", path.display()),
            &dir,
            e,
        )
    })
}

/// Seals `records` into a new vault file at `path` with these slots (made
/// where no private key need be at hand). Returns how many slots it has.
pub fn seal_records(
    path: &Path,
    recipients: &[String],
    passphrase: Option<&SecretString>,
    records: Vec<Record>,
) -> Result<usize> {
    let mut vault = create_vault(recipients, passphrase)?;
    vault.records_mut().extend(records);
    write_new_vault(path, &mut vault)?;
    Ok(vault.slots().len())
}

/// Seals `vault` into a new file at `path`, never over an existing one.
fn write_new_vault(path: &Path, vault: &mut Vault) -> Result<()> {
    let sealed = seal_vault(vault)?;
    fsio::write_atomic(path, &sealed, false)
}

/// The sealed bytes of `vault`.
fn seal_vault(vault: &mut Vault) -> Result<Vec<u8>> {
    vault
        .seal(crate::unix_now())
        .map_err(|e| EngineError::failure(format!("cannot encrypt the vault: {e}")))
}

/// Key slots could not be built: a usage error when the slots asked for
/// are wrong, a failure when the system (its random generator, age) is.
fn slot_error(error: SlotError) -> EngineError {
    let message = format!("cannot build the key slots: {error}");
    match error {
        SlotError::Random(_) | SlotError::Age(_) => EngineError::failure(message),
        _ => EngineError::usage(message),
    }
}

/// The record `name` of `vault`.
pub fn record<'v>(vault: &'v Vault, name: &str) -> Result<&'v Record> {
    vault
        .record(name)
        .ok_or_else(|| EngineError::no_record(name))
}

/// Removes the record `name` of `vault`.
pub fn remove_record(vault: &mut Vault, name: &str) -> Result<()> {
    let before = vault.records().len();
    vault.records_mut().retain(|r| r.name != name);
    if vault.records().len() == before {
        return Err(EngineError::no_record(name));
    }
    Ok(())
}

/// Adds `record`, or replaces the one of the same name when `replace`.
pub fn merge(vault: &mut Vault, record: Record, replace: bool) -> Result<()> {
    match vault.record_mut(&record.name) {
        Some(existing) if replace => *existing = record,
        Some(_) => {
            return Err(EngineError::failure(format!(
                "a record named {:?} already exists; pass --replace to replace it, or choose another --name",
                record.name
            )));
        }
        None => vault.records_mut().push(record),
    }
    Ok(())
}

/// Recipients given one by one (`-r`) and in files (`-R`: one a line,
/// `#` comments), canonicalized, without duplicates.
pub fn recipients(given: &[String], files: &[PathBuf]) -> Result<Vec<String>> {
    let mut inputs: Vec<(String, String)> =
        given.iter().map(|r| (r.clone(), "-r".to_owned())).collect();
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::io("cannot read recipients file", path, e))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                inputs.push((
                    line.to_owned(),
                    format!("{}:{}", path.display(), number + 1),
                ));
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (input, source) in inputs {
        let (_, canonical) = canonical_recipient(&input).map_err(|reason| {
            EngineError::usage(format!("recipient from {source} is not usable: {reason}"))
        })?;
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

/// The recipients of `vault` after a rekey: `removed` (each must be
/// one) dropped, `added` appended unless already there.
fn rekeyed_recipients(
    vault: &Vault,
    removed: &[String],
    added: Vec<String>,
) -> Result<Vec<String>> {
    let current: Vec<String> = vault.recipients().map(str::to_owned).collect();
    for r in removed {
        if !current.contains(r) {
            return Err(EngineError::usage(format!(
                "{r} is not a recipient of this vault (see `tokvault inspect`)"
            )));
        }
    }
    let mut recipients: Vec<String> = current
        .into_iter()
        .filter(|r| !removed.contains(r))
        .collect();
    for r in added {
        if !recipients.contains(&r) {
            recipients.push(r);
        }
    }
    Ok(recipients)
}

impl<B: Backend> Session<B> {
    /// Creates an empty vault with these slots (in a private directory,
    /// for a file), never over an existing vault. Returns how many slots
    /// it has.
    pub async fn init(
        &self,
        recipients: &[String],
        passphrase: Option<&SecretString>,
    ) -> Result<usize> {
        self.backend().prepare_new()?;
        let mut vault = create_vault(recipients, passphrase)?;
        self.create(&mut vault).await?;
        Ok(vault.slots().len())
    }
}

impl<B: Backend> Session<B> {
    /// Fails when there is a vault already: a new one never replaces it.
    pub async fn check_absent(&self) -> Result<()> {
        if self.exists().await? {
            return Err(EngineError::failure(format!(
                "{} already exists; refusing to overwrite a vault",
                self.location()
            )));
        }
        Ok(())
    }

    /// Rebuilds the key slots under a new vault key: `removed` recipients
    /// go (each must be one), `added` ones come, and `passphrase` decides
    /// the passphrase slot from the vault and the passphrase that opened
    /// it. Returns how many recipients remain and whether a passphrase
    /// slot does.
    pub async fn rekey<E: From<EngineError>>(
        &self,
        removed: &[String],
        added: Vec<String>,
        passphrase: impl FnOnce(
            &Vault,
            Option<SecretString>,
        ) -> std::result::Result<Option<SecretString>, E>,
    ) -> std::result::Result<(usize, bool), E> {
        self.update(IfWriteFails::Fail, |vault| {
            let recipients = rekeyed_recipients(vault, removed, added)?;
            let passphrase = passphrase(vault, self.passphrase())?;
            if recipients.is_empty() && passphrase.is_none() {
                return Err(
                    EngineError::usage("refusing to leave the vault without any key slot").into(),
                );
            }
            vault
                .rekey(&slot_specs(&recipients, passphrase.as_ref()))
                .map_err(slot_error)?;
            Ok((recipients.len(), passphrase.is_some()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::store::FileBackend;
    use vault_format::{ClientAuth, Credential, Provider, RefreshTokenCredential};

    fn recipient() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    fn record(name: &str, client_id: &str) -> Record {
        Record::new(
            name,
            Provider::Generic,
            "https://auth.example/token",
            Credential::RefreshToken(RefreshTokenCredential {
                client_id: client_id.to_owned(),
                client_secret: None,
                client_auth: ClientAuth::None,
                refresh_token: SecretString::copy_from("rt"),
                refresh_token_issued_at: None,
                authorization_endpoint: None,
            }),
            1,
        )
    }

    fn client_id(vault: &Vault, name: &str) -> String {
        match &vault.record(name).expect("record").credential {
            Credential::RefreshToken(c) => c.client_id.clone(),
            _ => String::new(),
        }
    }

    #[test]
    fn merge_adds_refuses_a_taken_name_and_replaces_when_told() {
        let mut vault = create_vault(&[recipient()], None).expect("vault");
        merge(&mut vault, record("mail", "one"), false).expect("added");
        let refused = merge(&mut vault, record("mail", "two"), false).expect_err("taken");
        assert_eq!(refused.kind(), ErrorKind::Failure);
        assert!(refused.to_string().contains("--replace"), "{refused}");
        assert_eq!(client_id(&vault, "mail"), "one");
        merge(&mut vault, record("mail", "two"), true).expect("replaced");
        assert_eq!(client_id(&vault, "mail"), "two");
        assert_eq!(vault.records().len(), 1);
    }

    #[test]
    fn a_record_is_found_and_removed_by_name_and_a_missing_one_named() {
        let mut vault = create_vault(&[recipient()], None).expect("vault");
        merge(&mut vault, record("mail", "one"), false).expect("added");
        merge(&mut vault, record("drive", "two"), false).expect("added");
        assert_eq!(super::record(&vault, "drive").expect("found").name, "drive");
        remove_record(&mut vault, "mail").expect("removed");
        assert!(vault.record("mail").is_none() && vault.record("drive").is_some());
        let error = remove_record(&mut vault, "mail").expect_err("gone");
        assert_eq!(
            error.to_string(),
            "no record named \"mail\" (see `tokvault list`)"
        );
        assert!(super::record(&vault, "mail").is_err());
    }

    #[test]
    fn recipients_from_files_skip_comments_and_duplicates_and_name_a_bad_line() {
        let (one, two) = (recipient(), recipient());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("recipients");
        std::fs::write(&file, format!("# team\n{one}\n\n  {two}  \n{one}\n")).expect("write");
        let got = recipients(std::slice::from_ref(&one), std::slice::from_ref(&file))
            .expect("recipients");
        assert_eq!(got, [one.clone(), two]);
        std::fs::write(&file, format!("{one}\nnot-a-recipient\n")).expect("write");
        let error = recipients(&[], &[file]).expect_err("bad line");
        assert_eq!(error.kind(), ErrorKind::Usage);
        assert!(
            error.to_string().contains("recipients:2 is not usable"),
            "{error}"
        );
    }

    #[test]
    fn a_rekey_removes_only_current_recipients_and_adds_each_once() {
        let (one, two, three) = (recipient(), recipient(), recipient());
        let vault = create_vault(&[one.clone(), two.clone()], None).expect("vault");
        let got = rekeyed_recipients(
            &vault,
            std::slice::from_ref(&one),
            vec![two.clone(), three.clone()],
        )
        .expect("rekeyed");
        assert_eq!(got, [two, three.clone()]);
        let error = rekeyed_recipients(&vault, &[three], Vec::new()).expect_err("not one");
        assert_eq!(error.kind(), ErrorKind::Usage);
    }

    #[test]
    fn a_new_vault_file_holds_its_records_and_never_replaces_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vault");
        check_new_file(&path).expect("nothing there");
        let identity = age::x25519::Identity::generate();
        let recipients = [identity.to_public().to_string()];
        let slots =
            seal_records(&path, &recipients, None, vec![record("mail", "one")]).expect("written");
        assert_eq!(slots, 1);
        let first = std::fs::read(&path).expect("read");
        let opened =
            Vault::open(&first, &vault_format::Unlock::new().identity(&identity)).expect("opens");
        assert_eq!(client_id(&opened, "mail"), "one");
        let error = check_new_file(&path).expect_err("exists");
        assert!(
            error.to_string().contains("refusing to overwrite"),
            "{error}"
        );
        seal_records(&path, &recipients, None, Vec::new()).expect_err("exists");
        assert_eq!(std::fs::read(&path).expect("read"), first);
    }

    #[test]
    fn a_new_vault_file_needs_a_directory_it_can_be_created_in() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing/vault");
        let error = check_new_file(&missing).expect_err("no directory");
        assert!(
            error.to_string().contains("in the directory")
                && error.to_string().contains("No such file or directory"),
            "{error}"
        );
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).expect("mkdir");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        let denied = check_new_file(&locked.join("vault"));
        let root = rustix::process::geteuid().is_root();
        assert_eq!(denied.is_err(), !root, "{denied:?}");
        check_new_file(&dir.path().join("vault")).expect("writable");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["locked"], "no probe left behind");
    }

    #[tokio::test]
    async fn init_makes_one_vault_in_a_private_directory_and_never_a_second() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data/vault.tokvault");
        let backend = FileBackend::new(&path, &dir.path().join("state")).expect("backend");
        let session = Session::new(
            backend,
            dir.path().join("state"),
            crate::UnlockMaterial::default(),
            Box::new(crate::NoUi),
            crate::SessionOptions {
                accept_rollback: false,
                lock_wait: std::time::Duration::from_millis(50),
            },
        );
        session.check_absent().await.expect("nothing there yet");
        assert_eq!(
            session.init(&[recipient()], None).await.expect("created"),
            1
        );
        let mode = std::fs::metadata(dir.path().join("data"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the vault's directory is private");
        let error = session.check_absent().await.expect_err("exists");
        assert!(
            error.to_string().contains("refusing to overwrite"),
            "{error}"
        );
        let first = std::fs::read(&path).expect("read");
        session
            .init(&[recipient()], None)
            .await
            .expect_err("never over it");
        assert_eq!(std::fs::read(&path).expect("read"), first);
    }
}
