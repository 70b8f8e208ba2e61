//! Only for bench/performance.rs until it includes tests/support/docker.rs
//! and tests/support/connector.rs itself: the tests use tests/support/.
//! Delete this file then.

#[path = "../support/docker.rs"]
mod docker;
pub use docker::*;
