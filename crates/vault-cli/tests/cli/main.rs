//! tokvault CLI integration tests (one binary, a module per topic; every
//! test in its own temporary directory, running the real binary).

mod basics;
mod browser;
mod common;
mod concurrency;
mod contrib;
mod crash;
mod e2e;
mod grants;
mod import;
mod interop;
mod login;
mod monitoring;
mod newuser;
mod reliability;
mod s3;
mod servers;
mod signals;

use tokvault_test_support::{fault_server, peers};
