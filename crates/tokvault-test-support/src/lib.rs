//! What the tokvault test suites share (cargo's `cargo-test-support`):
//! an in-process HTTP server for faults that a real server will not make
//! on demand, panva's oidc-provider started on loopback, and S3-compatible
//! servers (Ceph radosgw, moto, s3rver) for the S3 vault store.

pub mod fault_server;
pub mod peers;
pub mod s3;
