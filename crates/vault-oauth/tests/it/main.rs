//! vault-oauth integration tests (one binary): fault injection against an
//! in-process server, the real oidc-provider, and service-account JWTs
//! checked by a verifying server and against google-auth.

mod common;
mod faults;
mod login;
mod login_flow;
mod oidc;
mod properties;
mod service_account;

use tokvault_test_support::{fault_server, peers};
