//! tokvault CLI integration tests (one binary, a module per topic; every
//! test in its own temporary directory, running the real binary).

mod basics;
mod browser;
mod common;
mod concurrency;
mod contrib;
mod crash;
mod e2e;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../vault-oauth/tests/it/fault_server.rs"]
mod fault_server;
mod grants;
mod interop;
mod login;
mod monitoring;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../vault-oauth/tests/it/peers.rs"]
mod peers;
mod reliability;
mod signals;
