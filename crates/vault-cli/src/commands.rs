//! One function per command. Each returns the exit code or a [`CliError`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use vault_format::{
    KdfParams, Record, RefreshClass, SecretString, Slot, SlotSpec, Vault, check_endpoint,
};
use vault_oauth::{GoogleExportError, RefreshRequest, TokenFile, TokenFileError, refresh_need};
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, ExportFormat, Global, RecipientArgs};
use crate::error::{CliError, Exit, Result};
use crate::fsio;
use crate::keys::{self, Keys};
use crate::output;
use crate::refresh::{self, unix_now};
use crate::store::{IfWriteFails, Locked, Store};

pub(crate) fn run(cli: Cli) -> Result<Exit> {
    let global = &cli.global;
    match cli.command {
        Command::Keygen { output } => keygen(output),
        Command::Init { recipients } => init(global, &recipients),
        Command::Seal {
            name,
            recipients,
            output,
            token_uri,
            input,
        } => seal(
            global,
            &name,
            &recipients,
            &output,
            token_uri.as_deref(),
            &input,
        ),
        Command::Login(args) => crate::login::login(global, &args),
        Command::Import {
            name,
            token_uri,
            replace,
            input,
        } => import(
            global,
            name.as_deref(),
            token_uri.as_deref(),
            replace,
            &input,
        ),
        Command::List {
            json,
            warn_refresh_age,
        } => list(global, json, warn_refresh_age),
        Command::Refresh {
            names,
            min_valid,
            force,
            max_run_time,
            reauthorize,
            monitor,
            json,
        } => refresh_command(
            global,
            &refresh::RunOptions {
                names: &names,
                min_valid,
                force,
                max_run_time,
            },
            reauthorize,
            &monitor,
            json,
        ),
        Command::Token { name, min_valid } => {
            let token = valid_token(global, &name, min_valid)?;
            print_secret_line(token.expose_secret())
        }
        Command::Header { name, min_valid } => {
            let token = valid_token(global, &name, min_valid)?;
            let mut line = Zeroizing::new(String::with_capacity(token.len() + 32));
            line.push_str("Authorization: Bearer ");
            line.push_str(token.expose_secret());
            print_secret_line(&line)
        }
        Command::Exec {
            name,
            env,
            min_valid,
            command,
        } => exec(global, &name, &env, min_valid, &command),
        Command::Export {
            name,
            format,
            output,
        } => export(global, &name, format, output.as_deref()),
        Command::Remove { name } => remove(global, &name),
        Command::Rekey {
            recipients,
            remove_recipient,
            remove_passphrase,
        } => rekey(global, &recipients, &remove_recipient, remove_passphrase),
        Command::Inspect { json } => inspect(global, json),
        Command::Verify => verify(global),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::with_capacity(64 * 1024);
            clap_complete::generate(shell, &mut command, "tokvault", &mut out);
            write_stdout(&out)
        }
        Command::Man { command } => man(command.as_deref()),
    }
}

pub(crate) fn store(global: &Global) -> Result<Store> {
    Store::new(
        &crate::paths::vault(global)?,
        crate::paths::state_dir(global)?,
        global.accept_rollback,
        global.lock_timeout,
    )
}

fn print_secret_line(text: &str) -> Result<Exit> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::failure(format!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}

fn write_stdout(bytes: &[u8]) -> Result<Exit> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::failure(format!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}

/// The man page of tokvault, or of one command as `tokvault-COMMAND`.
fn man(command: Option<&str>) -> Result<Exit> {
    let top = <Cli as clap::CommandFactory>::command();
    let page = match command {
        None => clap_mangen::Man::new(top),
        Some(name) => {
            let sub = top.find_subcommand(name).cloned().ok_or_else(|| {
                CliError::usage(format!("no command {name:?}; see `tokvault --help`"))
            })?;
            let title = format!("tokvault-{}", sub.get_name());
            let sub = sub.bin_name(format!("tokvault {name}"));
            clap_mangen::Man::new(sub).title(title)
        }
    };
    let mut out = Vec::with_capacity(64 * 1024);
    page.render(&mut out)
        .map_err(|e| CliError::failure(format!("cannot render the man page: {e}")))?;
    write_stdout(&out)
}

fn print(text: &str) -> Result<Exit> {
    print_secret_line(text.trim_end_matches('\n'))
}

/// The most `seal` and `import` read: a vault's own limit.
const MAX_INPUT: usize = vault_format::MAX_PLAINTEXT_LEN;

/// A token file or vault from a path or stdin (`-`), capped in what is
/// read, not in what metadata claims (a FIFO, stdin or `/dev/zero` has no
/// size to check).
fn read_input(input: &Path) -> Result<Zeroizing<Vec<u8>>> {
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

fn warn_plaintext_input(input: &Path) {
    if input != Path::new("-") {
        tracing::warn!(
            "{} holds tokens in plaintext; now that they are encrypted, delete it (e.g. shred -u {})",
            input.display(),
            input.display()
        );
    }
}

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

fn new_vault(global: &Global, args: &RecipientArgs) -> Result<(Vec<String>, Option<SecretString>)> {
    let recipients = keys::recipients(args)?;
    let passphrase = if args.passphrase {
        Some(keys::new_passphrase(global)?)
    } else {
        None
    };
    if recipients.is_empty() && passphrase.is_none() {
        return Err(CliError::usage(
            "a vault needs at least one key slot: give -r RECIPIENT, -R FILE or --passphrase",
        ));
    }
    Ok((recipients, passphrase))
}

pub(crate) fn create_vault(
    recipients: &[String],
    passphrase: Option<&SecretString>,
) -> Result<Vault> {
    Vault::create(&slot_specs(recipients, passphrase)).map_err(slot_error)
}

pub(crate) fn seal_vault(vault: &mut Vault) -> Result<Vec<u8>> {
    vault
        .seal(unix_now())
        .map_err(|e| CliError::failure(format!("cannot encrypt the vault: {e}")))
}

fn keygen(output: Option<PathBuf>) -> Result<Exit> {
    let path = match output {
        Some(path) => path,
        None => crate::paths::default_identity()?,
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
            vault_oauth::rfc3339(unix_now())
        ));
        text.push_str(secret.expose_secret());
        text.push('\n');
        text
    };
    fsio::write_new_private(&path, secret.as_bytes())?;
    tracing::info!("identity written to {} (mode 0600)", path.display());
    print(&recipient)
}

fn init(global: &Global, args: &RecipientArgs) -> Result<Exit> {
    let store = store(global)?;
    if store.exists() {
        return Err(CliError::failure(format!(
            "{} already exists; refusing to overwrite a vault",
            store.path.display()
        )));
    }
    let (recipients, passphrase) = new_vault(global, args)?;
    if let Some(parent) = store.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsio::ensure_private_dir(parent)?;
    }
    let mut vault = create_vault(&recipients, passphrase.as_ref())?;
    let bytes = seal_vault(&mut vault)?;
    let guard = store.lock()?;
    store.create(&guard, &bytes, &vault)?;
    tracing::info!(
        "created {} with {} key slot(s)",
        store.path.display(),
        vault.slots().len()
    );
    Ok(Exit::Success)
}

fn seal(
    global: &Global,
    name: &str,
    args: &RecipientArgs,
    output: &Path,
    token_uri: Option<&str>,
    input: &Path,
) -> Result<Exit> {
    if output.exists() {
        return Err(CliError::failure(format!(
            "{} already exists; refusing to overwrite it",
            output.display()
        )));
    }
    let bytes = read_input(input)?;
    let record = match parse_token_file(&bytes, Some(name), token_uri)? {
        TokenFile::Record(record) => record,
        TokenFile::Vault => {
            return Err(CliError::usage(
                "seal takes a token file, not a vault (use `tokvault rekey` to change a vault's recipients)",
            ));
        }
    };
    let (recipients, passphrase) = new_vault(global, args)?;
    let mut vault = create_vault(&recipients, passphrase.as_ref())?;
    vault.records_mut().push(*record);
    let sealed = seal_vault(&mut vault)?;
    fsio::write_atomic(output, &sealed, false)?;
    tracing::info!(
        "sealed record {name:?} into {} for {} key slot(s)",
        output.display(),
        vault.slots().len()
    );
    warn_plaintext_input(input);
    Ok(Exit::Success)
}

/// Parses a token file (`seal`, `import`): a bad `--name` is a usage
/// error; `--token-uri` replaces the file's token endpoint.
fn parse_token_file(
    bytes: &[u8],
    name: Option<&str>,
    token_uri: Option<&str>,
) -> Result<TokenFile> {
    let parsed = vault_oauth::parse_token_file(bytes, name, unix_now()).map_err(|e| match e {
        TokenFileError::NameRequired => CliError::usage("--name NAME is required for a JSON input"),
        TokenFileError::InvalidName(e) => CliError::usage(format!("--name: {e}")),
        e => CliError::failure(e.to_string()),
    })?;
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

pub(crate) fn merge(vault: &mut Vault, record: Record, replace: bool) -> Result<()> {
    match vault.record_mut(&record.name) {
        Some(existing) if replace => *existing = record,
        Some(_) => {
            return Err(CliError::failure(format!(
                "a record named {:?} already exists; pass --replace to replace it, or choose another --name",
                record.name
            )));
        }
        None => vault.records_mut().push(record),
    }
    Ok(())
}

fn import(
    global: &Global,
    name: Option<&str>,
    token_uri: Option<&str>,
    replace: bool,
    input: &Path,
) -> Result<Exit> {
    let store = store(global)?;
    let bytes = read_input(input)?;
    let mut keys = Keys::load(global)?;
    let parsed = parse_token_file(&bytes, name, token_uri)?;
    let plaintext_input = matches!(parsed, TokenFile::Record(_));
    let records = match parsed {
        TokenFile::Record(record) => vec![*record],
        TokenFile::Vault => {
            if name.is_some() || token_uri.is_some() {
                return Err(CliError::usage(
                    "--name and --token-uri apply to JSON inputs; a vault's records keep their own",
                ));
            }
            Vault::open(&bytes, &keys.unlock())
                .map_err(|e| CliError::untrusted(format!("{}: {e}", input.display())))?
                .records()
                .to_vec()
        }
    };
    let imported: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
    if !store.exists() {
        return Err(no_vault_to_add_to(&store));
    }
    store.update(&mut keys, IfWriteFails::Fail, |vault| {
        records
            .into_iter()
            .try_for_each(|record| merge(vault, record, replace))
    })?;
    tracing::info!(
        "imported {} into {}",
        imported.join(", "),
        store.path.display()
    );
    if plaintext_input {
        warn_plaintext_input(input);
    }
    Ok(Exit::Success)
}

/// A command that adds to a vault found none.
pub(crate) fn no_vault_to_add_to(store: &Store) -> CliError {
    CliError::failure(format!(
        "no vault at {}: create one with `tokvault init -r RECIPIENT` first, or pass --vault",
        store.path.display()
    ))
}

fn open_read_only(global: &Global) -> Result<(Store, Keys, Vault)> {
    let store = store(global)?;
    let mut keys = Keys::load(global)?;
    let vault = store.read_and_open_unlocked(&mut keys)?;
    Ok((store, keys, vault))
}

fn list(global: &Global, json: bool, warn_refresh_age: Option<Duration>) -> Result<Exit> {
    let (_, _, vault) = open_read_only(global)?;
    let now = unix_now();
    crate::monitor::warn_refresh_age(vault.records(), warn_refresh_age, now);
    if json {
        let records: Vec<_> = vault
            .records()
            .iter()
            .map(|r| output::record_json(r, now))
            .collect();
        return print(
            &serde_json::to_string_pretty(&json!({ "records": records })).unwrap_or_default(),
        );
    }
    if vault.records().is_empty() {
        tracing::warn!("the vault holds no records yet: add one with `tokvault import`");
        return Ok(Exit::Success);
    }
    print(&output::list_text(vault.records(), now))
}

fn refresh_command(
    global: &Global,
    options: &refresh::RunOptions<'_>,
    reauthorize: bool,
    monitor: &crate::cli::MonitorArgs,
    json: bool,
) -> Result<Exit> {
    let names = options.names;
    let store = store(global)?;
    let mut keys = Keys::load(global)?;
    let mut run = match store
        .lock()
        .and_then(|guard| refresh::run(&store, &guard, &mut keys, options))
    {
        Ok(run) => run,
        Err(error) => {
            // Monitoring must see a run that could not even start.
            if let Some(path) = &monitor.metrics_file {
                let text = crate::monitor::render_failed_run(error.exit, unix_now());
                if let Err(e) = crate::monitor::write_metrics(path, &text) {
                    tracing::error!("metrics not written: {e}");
                }
            }
            return Err(error);
        }
    };
    if reauthorize {
        let rejected: Vec<String> = run
            .results
            .iter()
            .filter(|r| r.class == Some(vault_format::RefreshClass::ReauthorizationRequired))
            .map(|r| r.name.clone())
            .collect();
        let renewed =
            crate::login::reauthorize_interactively(&store, &mut keys, &run.vault, &rejected);
        for result in &mut run.results {
            if renewed.contains(&result.name) {
                result.class = Some(vault_format::RefreshClass::Refreshed);
                result.error_code = None;
                result.message = "re-authorized, new tokens saved".to_owned();
            }
        }
    }
    let exit = run.exit();
    if let Some(rescue) = &run.rescued {
        eprintln!(
            "tokvault: error: {}",
            crate::store::rescued_error(&store, rescue)
        );
    }
    let now = unix_now();
    let (health, newly_rejected) =
        crate::monitor::update_health(&store, &run.vault, &run.results, now);
    let selected = run
        .vault
        .records()
        .iter()
        .filter(|r| names.is_empty() || names.contains(&r.name));
    crate::monitor::warn_refresh_age(selected, monitor.warn_refresh_age, now);
    crate::monitor::warn_transient_streaks(&health, monitor.warn_transient_failures, now);
    if let Some(command) = &monitor.on_reauth_needed {
        crate::monitor::run_reauth_hook(
            command,
            monitor.on_reauth_needed_timeout,
            &store,
            &run.vault,
            &run.results,
            &newly_rejected,
        );
    }
    if let Some(path) = &monitor.metrics_file {
        let text = crate::monitor::render_metrics(&run.vault, &health, exit, now);
        if let Err(error) = crate::monitor::write_metrics(path, &text) {
            tracing::error!("metrics not written: {error}");
        }
    }
    if json {
        let results: Vec<_> = run
            .results
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "outcome": r.class.map_or("fresh", RefreshClass::as_str),
                    "error_code": r.error_code,
                    "message": r.message,
                    "attempts": r.attempts,
                })
            })
            .collect();
        print(
            &serde_json::to_string_pretty(
                &json!({ "records": results, "saved": run.wrote, "exit_code": exit as u8 }),
            )
            .unwrap_or_default(),
        )?;
    } else {
        for result in &run.results {
            print(&format!("{}: {}", result.name, result.message))?;
        }
    }
    Ok(exit)
}

/// A valid access token for `name`: the stored one when it stays valid for
/// `min_valid` (no lock, no write), else refresh and persist first.
fn valid_token(global: &Global, name: &str, min_valid: Duration) -> Result<SecretString> {
    let store = store(global)?;
    let mut keys = Keys::load(global)?;
    if let Some(token) = stored_token(&store, &mut keys, name, min_valid)? {
        return Ok(token);
    }
    // While another process refreshes, it saves each answer as it comes:
    // the token may be there before the lock is free.
    let guard = match store.lock_or(|| stored_token(&store, &mut keys, name, min_valid).ok()?)? {
        Locked::Guard(guard) => guard,
        Locked::Ready(token) => return Ok(token),
    };
    let names = [name.to_owned()];
    let run = refresh::run(
        &store,
        &guard,
        &mut keys,
        &refresh::RunOptions {
            names: &names,
            min_valid,
            force: false,
            max_run_time: refresh::DEFAULT_MAX_RUN_TIME,
        },
    )?;
    drop(guard);
    if let Some(rescue) = &run.rescued {
        // Saved, but not where the next reader looks first: say so, and
        // still hand out the token (it is valid).
        tracing::error!("{}", crate::store::rescued_error(&store, rescue));
    }
    let record = run.vault.record(name).ok_or_else(|| {
        CliError::failure(format!("record {name:?} disappeared while refreshing"))
    })?;
    let result = run.results.iter().find(|r| r.name == name);
    let now = unix_now();
    // Fresh from the server (or from a writer that got the lock first):
    // any remaining validity will do. After a failed refresh, an older
    // token is used only with a margin left.
    let unexpired = |margin: u64| {
        record
            .access_token
            .as_ref()
            .filter(move |a| a.expires_at.is_none_or(|at| at > now + margin))
    };
    match (result.and_then(|r| r.class), unexpired(0), unexpired(30)) {
        (Some(vault_format::RefreshClass::Refreshed) | None, Some(access), _) => {
            Ok(access.token.clone())
        }
        (Some(vault_format::RefreshClass::Transient), _, Some(access)) => {
            tracing::warn!(record = %name, "refresh failed for now; the current token is still valid and is used: {}", result.map_or("", |r| r.message.as_str()));
            Ok(access.token.clone())
        }
        _ => {
            let message =
                result.map_or_else(|| "no valid access token".to_owned(), |r| r.message.clone());
            let exit = match result.and_then(|r| r.class) {
                Some(vault_format::RefreshClass::ReauthorizationRequired) => Exit::Reauthorize,
                Some(vault_format::RefreshClass::Transient) => Exit::Temporary,
                _ => Exit::Failure,
            };
            Err(CliError::new(exit, format!("{name}: {message}")))
        }
    }
}

/// The stored access token of `name` when it stays valid for `min_valid`
/// (read without the lock).
fn stored_token(
    store: &Store,
    keys: &mut Keys,
    name: &str,
    min_valid: Duration,
) -> Result<Option<SecretString>> {
    let vault = store.read_and_open_unlocked(keys)?;
    let record = vault.record(name).ok_or_else(|| {
        CliError::failure(format!("no record named {name:?} (see `tokvault list`)"))
    })?;
    Ok(record
        .access_token
        .as_ref()
        .filter(|_| !refresh_need(record, unix_now(), min_valid, false).should_refresh())
        .map(|access| access.token.clone()))
}

fn exec(
    global: &Global,
    name: &str,
    env: &str,
    min_valid: Duration,
    command: &[String],
) -> Result<Exit> {
    if env.is_empty() || env.contains('=') || env.contains('\0') {
        return Err(CliError::usage(format!(
            "--env {env:?} is not a valid environment variable name"
        )));
    }
    let token = valid_token(global, name, min_valid)?;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| CliError::usage("exec needs a command after --"))?;
    use std::os::unix::process::CommandExt as _;
    // exec replaces this process: the child's exit status is ours, and no
    // decrypted state outlives the switch.
    // The job gets the token and nothing that unlocks the vault: where
    // the identity and passphrase are is none of its business.
    let error = std::process::Command::new(program)
        .args(args)
        .env_remove("TOKVAULT_IDENTITY")
        .env_remove("TOKVAULT_PASSPHRASE_FILE")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env(env, token.expose_secret())
        .exec();
    Err(CliError::failure(format!(
        "cannot run {program:?}: {error}"
    )))
}

fn export(
    global: &Global,
    name: &str,
    format: ExportFormat,
    output: Option<&Path>,
) -> Result<Exit> {
    let (_, _, vault) = open_read_only(global)?;
    let record = vault.record(name).ok_or_else(|| {
        CliError::failure(format!("no record named {name:?} (see `tokvault list`)"))
    })?;
    let text = match format {
        ExportFormat::Google => vault_oauth::to_google_json(record).map_err(|e| match e {
            GoogleExportError::ServiceAccount { .. } => {
                CliError::failure(format!("{e} (use --format json)"))
            }
            _ => CliError::failure(e.to_string()),
        })?,
        ExportFormat::Json => vault_oauth::to_tokvault_json(record),
    };
    match output {
        Some(path) => {
            fsio::write_new_private(path, text.as_bytes())?;
            tracing::warn!(
                "{} holds the record in PLAINTEXT (mode 0600); delete it when done",
                path.display()
            );
        }
        None => {
            tracing::warn!("the output is PLAINTEXT: it holds the refresh token");
            print_secret_line(&text)?;
        }
    }
    Ok(Exit::Success)
}

fn remove(global: &Global, name: &str) -> Result<Exit> {
    let store = store(global)?;
    let mut keys = Keys::load(global)?;
    store.update(&mut keys, IfWriteFails::Fail, |vault| {
        let before = vault.records().len();
        vault.records_mut().retain(|r| r.name != name);
        if vault.records().len() == before {
            return Err(CliError::failure(format!(
                "no record named {name:?} (see `tokvault list`)"
            )));
        }
        Ok(())
    })?;
    tracing::info!("removed {name:?}");
    Ok(Exit::Success)
}

fn rekey(
    global: &Global,
    args: &RecipientArgs,
    remove: &[String],
    remove_passphrase: bool,
) -> Result<Exit> {
    let store = store(global)?;
    let mut keys = Keys::load(global)?;
    let added = keys::recipients(args)?;
    let mut removed = Vec::new();
    for r in remove {
        let (_, canonical) = vault_format::canonical_recipient(r)
            .map_err(|reason| CliError::usage(format!("--remove-recipient {r:?}: {reason}")))?;
        removed.push(canonical);
    }
    let current_passphrase = keys.passphrase.clone();
    let (count, with_passphrase) = store.update(&mut keys, IfWriteFails::Fail, |vault| {
        let current: Vec<String> = vault.recipients().map(str::to_owned).collect();
        for r in &removed {
            if !current.contains(r) {
                return Err(CliError::usage(format!(
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
        let had_passphrase = vault.has_passphrase_slot();
        let passphrase = if args.passphrase {
            Some(keys::new_passphrase(global)?)
        } else if had_passphrase && !remove_passphrase {
            Some(current_passphrase.ok_or_else(|| {
                CliError::usage(
                    "the vault has a passphrase slot, which a rekey must rebuild: give the current passphrase \
                     (--passphrase-file), set a new one (--passphrase) or drop it (--remove-passphrase)",
                )
            })?)
        } else {
            None
        };
        if recipients.is_empty() && passphrase.is_none() {
            return Err(CliError::usage(
                "refusing to leave the vault without any key slot",
            ));
        }
        vault
            .rekey(&slot_specs(&recipients, passphrase.as_ref()))
            .map_err(slot_error)?;
        Ok((recipients.len(), passphrase.is_some()))
    })?;
    tracing::info!(
        "rekeyed {}: {count} recipient(s){}",
        store.path.display(),
        if with_passphrase {
            " and a passphrase"
        } else {
            ""
        }
    );
    Ok(Exit::Success)
}

/// Key slots could not be built: a usage error when the slots asked for
/// are wrong, a failure when the system (its random generator, age) is.
fn slot_error(error: vault_format::SlotError) -> CliError {
    let message = format!("cannot build the key slots: {error}");
    match error {
        vault_format::SlotError::Random(_) | vault_format::SlotError::Age(_) => {
            CliError::failure(message)
        }
        _ => CliError::usage(message),
    }
}

fn inspect(global: &Global, json: bool) -> Result<Exit> {
    let store = store(global)?;
    let bytes = store.read()?;
    let (header, mac) = vault_format::inspect(&bytes)
        .map_err(|e| CliError::untrusted(format!("{}: {e}", store.path.display())))?;
    let slots: Vec<serde_json::Value> = header
        .slots
        .iter()
        .map(|slot| match slot {
            Slot::Age(age) => json!({"kind": "age", "recipient": age.recipient}),
            Slot::Passphrase(p) => json!({"kind": "passphrase", "kdf": "argon2id", "memory_kib": p.params.memory_kib, "iterations": p.params.iterations, "parallelism": p.params.parallelism}),
            _ => json!({"kind": "unknown"}),
        })
        .collect();
    let pin = store.pin_status_without_key(&header, &mac)?;
    if json {
        return print(
            &serde_json::to_string_pretty(&json!({
                "format_version": vault_format::FORMAT_VERSION,
                "vault_id": header.vault_id.to_string(),
                "generation": header.generation,
                "written_at": header.written_at,
                "file_size": bytes.len(),
                "payload_size": header.payload_len,
                "slots": slots,
                "pin": pin,
            }))
            .unwrap_or_default(),
        );
    }
    let mut out = format!(
        "file:        {}\nformat:      tokvault v{}\nvault id:    {}\ngeneration:  {}\nwritten at:  {}\nsize:        {} bytes (payload {} bytes)\npin:         {pin}\nslots:\n",
        store.path.display(),
        vault_format::FORMAT_VERSION,
        header.vault_id,
        header.generation,
        vault_oauth::rfc3339(header.written_at),
        bytes.len(),
        header.payload_len,
    );
    for slot in &header.slots {
        match slot {
            Slot::Age(age) => out.push_str(&format!("  age         {}\n", age.recipient)),
            Slot::Passphrase(p) => out.push_str(&format!("  passphrase  {}\n", p.params)),
            _ => out.push_str("  unknown\n"),
        }
    }
    print(&out)
}

fn verify(global: &Global) -> Result<Exit> {
    let (store, _, vault) = open_read_only(global)?;
    let mut problems = Vec::new();
    for record in vault.records() {
        if let Err(problem) = RefreshRequest::from_record(record) {
            problems.push(format!("{}: {problem}", record.name));
        }
    }
    if problems.is_empty() {
        print(&format!(
            "{}: ok, {} record(s), generation {}",
            store.path.display(),
            vault.records().len(),
            vault.generation()
        ))?;
        Ok(Exit::Success)
    } else {
        Err(CliError::untrusted(format!(
            "{}: {}",
            store.path.display(),
            problems.join("; ")
        )))
    }
}
