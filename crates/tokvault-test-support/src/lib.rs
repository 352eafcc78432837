//! What the tokvault test suites share (cargo's `cargo-test-support`):
//! an in-process HTTP server for faults that a real server will not make
//! on demand, and panva's oidc-provider started on loopback.

pub mod fault_server;
pub mod peers;
