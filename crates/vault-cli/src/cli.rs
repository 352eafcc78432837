//! The command line, as clap derive definitions. Names, flags and exit codes
//! are a contract that scripts and monitoring depend on.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::duration::{parse_duration, parse_positive_duration};

/// An encrypted OAuth token vault for jobs that run on servers.
#[derive(Debug, Parser)]
#[command(
    name = "tokvault",
    version,
    about,
    after_help = "Exit codes: 0 success, 1 error, 2 usage, 3 re-authorization required, \
                  4 temporary failure (retry later), 5 vault cannot be opened or trusted, \
                  6 new tokens kept in a rescue file (the vault could not be written)."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Vault file [default: $XDG_DATA_HOME/tokvault/vault.tokvault]
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
    /// Also add a passphrase slot (read from --passphrase-file, or prompted twice)
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

/// Monitoring options of `refresh`.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Write Prometheus metrics here after each run, atomically (for
    /// node_exporter's textfile collector)
    #[arg(long, env = "TOKVAULT_METRICS_FILE", value_name = "PATH")]
    pub(crate) metrics_file: Option<PathBuf>,
    /// Run this shell command once per record that needs re-authorization,
    /// with TOKVAULT_RECORD, TOKVAULT_ACCOUNT, TOKVAULT_ERROR... in its
    /// environment (no secrets); its failure is logged, not fatal
    #[arg(long, env = "TOKVAULT_ON_REAUTH_NEEDED", value_name = "CMD")]
    pub(crate) on_reauth_needed: Option<String>,
    /// How long the hook may run; then it is killed with everything it
    /// started (its process group)
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub(crate) on_reauth_needed_timeout: Duration,
    /// Warn when a refresh token is at least this old (e.g. 6d for Google
    /// apps in Testing mode, whose refresh tokens die after 7 days)
    #[arg(long, env = "TOKVAULT_WARN_REFRESH_AGE", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) warn_refresh_age: Option<Duration>,
    /// Warn when a token endpoint failed temporarily this many runs in a row (0: never)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) warn_transient_failures: u64,
}

/// `tokvault login`.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
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

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create an age X25519 identity (0600) and print its recipient
    #[command(after_help = "Example: tokvault keygen -o /etc/tokvault/identity.txt")]
    Keygen {
        /// Where to write it [default: $XDG_CONFIG_HOME/tokvault/identity.txt]
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Create an empty vault with at least one key slot
    #[command(after_help = "Example: tokvault init -r age1... --passphrase")]
    Init {
        #[command(flatten)]
        recipients: RecipientArgs,
    },
    /// Encrypt one token file into a new vault for recipients (no private key needed)
    #[command(
        after_help = "Example: tokvault seal --name gmail -r age1... -o gmail.tokvault token_gmail.json"
    )]
    Seal {
        /// Record name
        #[arg(long)]
        name: String,
        #[command(flatten)]
        recipients: RecipientArgs,
        /// New vault file (never overwritten)
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
        /// Token endpoint to use instead of the file's
        #[arg(long, value_name = "URL")]
        token_uri: Option<String>,
        /// Token file (google-auth JSON or tokvault JSON), or - for stdin
        input: PathBuf,
    },
    /// Authorize in a browser (or with a device code) and store the tokens
    #[command(after_help = "Examples:\n  \
        tokvault login gmail --client-secrets client_secret.json --scope https://www.googleapis.com/auth/gmail.send\n  \
        tokvault login gmail --client-secrets client_secret.json --scope ... --seal-to age1... -o gmail.tokvault\n  \
        tokvault login graph --provider microsoft --client-id ID --scope Mail.Send --device\n  \
        tokvault login gmail --again --no-browser")]
    Login(Box<LoginArgs>),
    /// Add records from a token file, a service-account key or another vault
    #[command(after_help = "Example: tokvault import --name gmail token_gmail.json")]
    Import {
        /// Record name (required for JSON inputs)
        #[arg(long)]
        name: Option<String>,
        /// Token endpoint to use instead of the file's
        #[arg(long, value_name = "URL")]
        token_uri: Option<String>,
        /// Replace records with the same name
        #[arg(long)]
        replace: bool,
        /// Input file, or - for stdin
        input: PathBuf,
    },
    /// List records (no secrets)
    #[command(after_help = "Example: tokvault list --json --warn-refresh-age 6d")]
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
        /// Warn when a refresh token is at least this old
        #[arg(long, env = "TOKVAULT_WARN_REFRESH_AGE", value_parser = parse_duration, value_name = "DURATION")]
        warn_refresh_age: Option<Duration>,
    },
    /// Refresh records whose access token expires soon (the server job)
    #[command(
        after_help = "Example: tokvault refresh --metrics-file /var/lib/node_exporter/tokvault.prom \\\n           --on-reauth-needed 'notify-admins \"$TOKVAULT_RECORD needs login\"'"
    )]
    Refresh {
        /// Only these records
        names: Vec<String>,
        /// Refresh when less than this validity remains
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        min_valid: Duration,
        /// Refresh even valid tokens
        #[arg(long)]
        force: bool,
        /// Longest time token requests may take, from the first one: none
        /// starts later than this minus the 30 s request timeout (a shorter
        /// limit shortens that timeout instead). The default keeps a run,
        /// and the stop signals it holds, inside systemd's 90 s TimeoutStopSec
        #[arg(long, default_value = "75s", value_parser = parse_positive_duration, value_name = "DURATION")]
        max_run_time: Duration,
        /// When a record needs re-authorization and stdin is a terminal, run
        /// `login --again` for it, then go on (without a terminal: exit 3 as usual)
        #[arg(long)]
        reauthorize: bool,
        #[command(flatten)]
        monitor: MonitorArgs,
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Print a valid access token, refreshing first when needed
    #[command(
        after_help = "Example: curl -H \"Authorization: Bearer $(tokvault token gmail)\" ..."
    )]
    Token {
        /// Record name
        name: String,
        /// Refresh when less than this validity remains
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        min_valid: Duration,
    },
    /// Print an Authorization header line
    #[command(after_help = "Example: tokvault header gmail")]
    Header {
        /// Record name
        name: String,
        /// Refresh when less than this validity remains
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        min_valid: Duration,
    },
    /// Run a command with a valid access token in its environment
    #[command(after_help = "Example: tokvault exec gmail -- python3 send_report.py")]
    Exec {
        /// Record name
        name: String,
        /// Environment variable for the token
        #[arg(long, default_value = "TOKVAULT_ACCESS_TOKEN", value_name = "VAR")]
        env: String,
        /// Refresh when less than this validity remains
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        min_valid: Duration,
        /// The command and its arguments
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Write a record in plaintext (google-auth or tokvault JSON)
    #[command(after_help = "Example: tokvault export gmail --format google -o token_gmail.json")]
    Export {
        /// Record name
        name: String,
        /// Output format
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Output file (created 0600, never overwritten) [default: stdout]
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Remove a record
    #[command(after_help = "Example: tokvault remove old-gmail")]
    Remove {
        /// Record name
        name: String,
    },
    /// Change key slots and rotate the vault key
    #[command(after_help = "Example: tokvault rekey -r age1new... --remove-recipient age1old...")]
    Rekey {
        #[command(flatten)]
        recipients: RecipientArgs,
        /// Drop this recipient's slot (repeatable)
        #[arg(long, value_name = "RECIPIENT")]
        remove_recipient: Vec<String>,
        /// Drop the passphrase slots
        #[arg(long, conflicts_with = "passphrase")]
        remove_passphrase: bool,
    },
    /// Show the header (no key needed)
    #[command(after_help = "Example: tokvault inspect --json")]
    Inspect {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Open the vault and check every record; exit 0 or 5
    #[command(after_help = "Example: tokvault verify && echo ok")]
    Verify,
    /// Print shell completions
    #[command(
        after_help = "Examples:\n  tokvault completions bash > ~/.local/share/bash-completion/completions/tokvault\n  \
                      tokvault completions zsh > ~/.zfunc/_tokvault\n  \
                      tokvault completions fish > ~/.config/fish/completions/tokvault.fish"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of tokvault or of one command
    #[command(
        after_help = "Examples:\n  tokvault man | man -l -\n  tokvault man login > tokvault-login.1"
    )]
    Man {
        /// A command, for its own page (tokvault-COMMAND.1)
        command: Option<String>,
    },
}
