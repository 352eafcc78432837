//! The command line, as clap derive definitions. Names, flags and exit codes
//! are a contract that scripts and monitoring depend on.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;

/// An encrypted OAuth token vault for jobs that run on servers.
#[derive(Debug, Parser)]
#[command(
    name = "tokvault",
    version,
    about,
    after_help = "Exit codes: 0 success, 1 error, 2 usage, 3 re-authorization required, \
                  4 temporary failure (retry later), 5 vault cannot be opened or trusted."
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
    /// Accept an older or diverged vault than the pin remembers (restoring a
    /// backup on purpose); the next write moves past the pin
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
    #[command(after_help = "Example: tokvault list --json")]
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Refresh records whose access token expires soon (the server job)
    #[command(after_help = "Example: tokvault refresh --min-valid 15m")]
    Refresh {
        /// Only these records
        names: Vec<String>,
        /// Refresh when less than this validity remains
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        min_valid: Duration,
        /// Refresh even valid tokens
        #[arg(long)]
        force: bool,
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
}
