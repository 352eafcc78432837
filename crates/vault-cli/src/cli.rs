//! The command line, as clap derive definitions. Names, flags and exit codes
//! are a contract that scripts and monitoring depend on.

use std::path::PathBuf;
use std::time::Duration;

use clap::{
    ArgAction, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum,
};

use crate::commands;
use crate::duration::parse_duration;

/// An encrypted OAuth token vault for jobs that run on servers.
#[derive(Debug, Parser)]
#[command(
    name = "tokvault",
    version,
    about,
    after_help = crate::error::Exit::help()
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Parses the command line. An empty variable (`TOKVAULT_IDENTITY=`)
    /// counts as unset, as in most tools, instead of clap's "a value is
    /// required" for a value nobody typed.
    pub(crate) fn parse_args() -> Result<Self, clap::Error> {
        let command = ignore_empty_env(Self::command());
        Self::from_arg_matches_mut(&mut command.try_get_matches()?)
    }
}

fn ignore_empty_env(command: clap::Command) -> clap::Command {
    // Rebuilding the tree costs more than parsing it: only when some
    // variable is set and empty.
    if has_empty_env(&command) {
        drop_empty_env(command)
    } else {
        command
    }
}

fn has_empty_env(command: &clap::Command) -> bool {
    command.get_arguments().any(is_empty_env) || command.get_subcommands().any(has_empty_env)
}

fn is_empty_env(arg: &clap::Arg) -> bool {
    arg.get_env()
        .and_then(std::env::var_os)
        .is_some_and(|value| value.is_empty())
}

fn drop_empty_env(mut command: clap::Command) -> clap::Command {
    let empty: Vec<clap::Id> = command
        .get_arguments()
        .filter(|arg| is_empty_env(arg))
        .map(|arg| arg.get_id().clone())
        .collect();
    for id in empty {
        command = command.mut_arg(id, |arg| arg.env(None));
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, drop_empty_env);
    }
    command
}

/// Options every command accepts, shown after each command's own.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Vault file, or s3://BUCKET/KEY (endpoint and credentials from the
    /// AWS_* variables) [default: $XDG_DATA_HOME/tokvault/vault.tokvault]
    #[arg(long, env = "TOKVAULT_VAULT", global = true, value_name = "PATH")]
    pub(crate) vault: Option<PathBuf>,
    /// age identity file or unencrypted SSH private key (repeatable). Also
    /// used: $CREDENTIALS_DIRECTORY/tokvault-identity and
    /// $XDG_CONFIG_HOME/tokvault/identity.txt
    #[arg(
        short = 'i',
        long = "identity",
        env = "TOKVAULT_IDENTITY",
        global = true,
        value_name = "PATH"
    )]
    pub(crate) identities: Vec<PathBuf>,
    /// File holding the passphrase (mode 0600). Also used:
    /// $CREDENTIALS_DIRECTORY/tokvault-passphrase; else a TTY prompt
    #[arg(
        long,
        env = "TOKVAULT_PASSPHRASE_FILE",
        global = true,
        value_name = "PATH"
    )]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Where rollback pins live [default: $XDG_STATE_HOME/tokvault]
    #[arg(long, env = "TOKVAULT_STATE_DIR", global = true, value_name = "PATH")]
    pub(crate) state_dir: Option<PathBuf>,
    /// How long to wait for another tokvault holding the vault lock
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) lock_timeout: Duration,
    /// With --vault s3://BUCKET/KEY: how long the vault stays leased to a
    /// writer that stopped answering (more than the longest refresh run)
    #[arg(long, global = true, default_value = "2m", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) lease_ttl: Duration,
    /// Accept a vault that does not match the rollback pin (an older backup
    /// restored on purpose, or another vault at this path); the pin moves to it
    #[arg(long, global = true)]
    pub(crate) accept_rollback: bool,
    /// More output (repeatable)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Format of log lines on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// google-auth's authorized_user JSON
    Google,
    /// tokvault's own JSON record format
    Json,
}

/// Where the recipients of new key slots come from.
#[derive(Debug, Args, Default)]
pub(crate) struct RecipientArgs {
    /// Recipient: age1…, ssh-ed25519 …, ssh-rsa … (repeatable)
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub(crate) recipients: Vec<String>,
    /// File with one recipient per line, # comments (repeatable)
    #[arg(short = 'R', long = "recipients-file", value_name = "PATH")]
    pub(crate) recipients_files: Vec<PathBuf>,
    /// Also add a passphrase slot (read from --passphrase-file, or prompted
    /// twice). Unlocking with it takes 256 MiB of memory and under a second
    /// (Argon2id); the machine that unlocks must have that memory free
    #[arg(long)]
    pub(crate) passphrase: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProviderArg {
    /// Google (client JSON from the Cloud console; access_type=offline, prompt=consent)
    Google,
    /// Microsoft identity platform v2 (--tenant; offline_access added)
    Microsoft,
    /// Any OAuth 2.0 server (--auth-url and --token-url)
    Generic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientAuthArg {
    /// client_id and client_secret in the request body
    Post,
    /// HTTP Basic authentication
    Basic,
    /// Public client: no secret
    None,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create an age X25519 identity (0600) and print its recipient
    #[command(after_help = "Example: tokvault keygen -o /etc/tokvault/identity.txt")]
    Keygen(commands::keygen::Args),
    /// Create an empty vault with at least one key slot
    #[command(after_help = "Example: tokvault init -r age1... --passphrase")]
    Init(commands::init::Args),
    /// Encrypt one token file into a new vault for recipients (no private key needed)
    #[command(
        after_help = "Example: tokvault seal -r age1... -o gmail.tokvault token_gmail.json\n(the record is named gmail, after the file)"
    )]
    Seal(commands::seal::Args),
    /// Authorize in a browser (or with a device code) and store the tokens
    #[command(after_help = "Examples:\n  \
        tokvault login gmail --client-secrets client_secret.json --scope https://www.googleapis.com/auth/gmail.send\n  \
        tokvault login gmail --client-secrets client_secret.json --scope ... --seal-to age1... -o gmail.tokvault\n  \
        tokvault login graph --provider microsoft --client-id ID --scope Mail.Send --device\n  \
        tokvault login gmail --again --no-browser")]
    Login(Box<commands::login::Args>),
    /// Add records from a token file (plaintext or age-encrypted), a service-account key or another vault
    #[command(
        after_help = "Example: tokvault import token_gmail.json.age   (laptop: age -r age1... -o token_gmail.json.age token_gmail.json)\n\
        Example: tokvault import --name gmail token.json\n\
        Example: cat token_gmail.json.age | tokvault import --name gmail -"
    )]
    Import(commands::import::Args),
    /// List records (no secrets)
    #[command(after_help = "Example: tokvault list --json --warn-refresh-age 6d")]
    List(commands::list::Args),
    /// Refresh records whose access token expires soon (the server job)
    #[command(
        after_help = "Example: tokvault refresh --metrics-file /var/lib/node_exporter/tokvault.prom \\\n           --on-reauth-needed 'notify-admins \"$TOKVAULT_RECORD needs login\"'"
    )]
    Refresh(commands::refresh::Args),
    /// Print a valid access token, refreshing first when needed
    #[command(
        after_help = "Example: curl -H \"Authorization: Bearer $(tokvault token gmail)\" ..."
    )]
    Token(commands::token::Args),
    /// Print an Authorization header line
    #[command(after_help = "Example: tokvault header gmail")]
    Header(commands::token::Args),
    /// Run a command with a valid access token in its environment, or with
    /// a local metadata server its Google/Microsoft libraries use
    #[command(
        after_help = "Example: tokvault exec gmail -- python3 send_report.py\n\
        Example: tokvault exec gmail --gce-server -- python3 job_using_google_auth_default.py\n\
        Example: tokvault exec graph --azure-server -- python3 job_using_azure_identity.py"
    )]
    Exec(commands::exec::Args),
    /// Serve access tokens to unmodified Google and Microsoft client
    /// libraries on loopback (Compute Engine metadata, App Service
    /// managed identity), long-running
    #[command(
        after_help = "Example: tokvault serve --listen 127.0.0.1:8181 --gce gmail\n\
        Then, in the job's environment: GCE_METADATA_HOST=127.0.0.1:8181 GCE_METADATA_IP=127.0.0.1:8181"
    )]
    Serve(commands::serve::Args),
    /// Write a record in plaintext (google-auth or tokvault JSON)
    #[command(
        after_help = "Not for a live job: a job that loads this file refreshes on its own, \
        and with a provider that rotates refresh tokens the vault's copy is revoked at its next \
        refresh. Give jobs tokens with `tokvault exec`, `tokvault token --json` or `tokvault serve`; \
        export to leave tokvault, or to keep a plaintext copy offline.\n\
        Example: tokvault export gmail --format google -o token_gmail.json   # leaving tokvault"
    )]
    Export(commands::export::Args),
    /// Remove a record
    #[command(after_help = "Example: tokvault remove old-gmail")]
    Remove(commands::remove::Args),
    /// Change key slots and rotate the vault key
    #[command(after_help = "Example: tokvault rekey -r age1new... --remove-recipient age1old...")]
    Rekey(commands::rekey::Args),
    /// Show the header (no key needed)
    #[command(after_help = "Example: tokvault inspect --json")]
    Inspect(commands::inspect::Args),
    /// Open the vault and check every record; exit 0 or 5
    #[command(after_help = "Example: tokvault verify && echo ok")]
    Verify,
    /// Print shell completions
    #[command(
        after_help = "Examples:\n  tokvault completions bash > ~/.local/share/bash-completion/completions/tokvault\n  \
                      tokvault completions zsh > ~/.zfunc/_tokvault\n  \
                      tokvault completions fish > ~/.config/fish/completions/tokvault.fish"
    )]
    Completions(commands::completions::Args),
    /// Print the man page (roff) of tokvault or of one command
    #[command(
        after_help = "Examples:\n  tokvault man | man -l -\n  tokvault man login > tokvault-login.1"
    )]
    Man(commands::man::Args),
}
