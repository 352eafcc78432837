//! Integration tests of vault format v1, one binary, a module per topic.

mod age_interop;
mod attacks;
mod common;
mod roundtrip;
mod vectors;
