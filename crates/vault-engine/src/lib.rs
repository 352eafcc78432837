//! tokvault's library layer between the pure crates (`vault-format`,
//! `vault-oauth`) and a front end (the `tokvault` binary, later a server):
//! vault storage behind a trait ([`store::Backend`]), the one
//! read-modify-write transaction ([`Session::update`]), local state (pins,
//! health, rescue files), the monitoring after a run ([`Monitoring`]: warnings,
//! the alert hook, metrics) and unlock material. It never prints, prompts
//! (it asks through [`Callbacks`]) or exits; errors carry a class
//! ([`ErrorKind`]) that the front end maps to what it speaks.

pub mod age_input;
pub mod callbacks;
pub mod error;
pub mod fsio;
pub mod health;
pub mod hook;
pub mod input;
pub mod inspect;
pub mod login;
pub mod metrics;
pub mod monitor;
pub mod paths;
pub mod refresh;
pub mod session;
pub mod state;
pub mod store;
pub mod token;
pub mod unlock;
pub mod vaults;

pub use callbacks::{Callbacks, NoUi};
pub use error::{EngineError, ErrorKind, Result};
pub use hook::ReauthHook;
pub use monitor::Monitoring;
pub use refresh::{RecordResult, RefreshRun, RunSummary, Selection, human_duration, refresher};
pub use session::{
    IfWriteFails, Locked, Opened, Saved, Saver, Session, SessionOptions, rescued_error, unix_now,
};
pub use state::StateDir;
pub use store::{
    AnyBackend, Backend, FileBackend, Lease, MemoryBackend, S3Backend, S3Location, S3Settings,
    Snapshot, Version,
};
pub use token::{IssuedToken, TokenRun, choose_token, stored_token};
pub use unlock::{SecretFilePolicy, UnlockMaterial};
