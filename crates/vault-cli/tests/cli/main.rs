//! tokvault CLI integration tests (one binary, a module per topic; every
//! test in its own temporary directory, running the real binary).

mod basics;
mod browser;
mod common;
mod concurrency;
mod contrib;
mod crash;
mod e2e;
mod interop;
mod login;
mod monitoring;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../vault-oauth/tests/it/peers.rs"]
mod peers;
