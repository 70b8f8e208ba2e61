//! What the test binaries (tests/api, tests/swarm) share, one file per job:
//!
//! - `app`: the connector under test ([`app::TestApp`]), its options, its
//!   answers, and the suites that run on either backend;
//! - `connector`: the one launcher of the connector binary, shared with the
//!   performance bench;
//! - `docker`: the docker CLI behind the connector's back: the test image,
//!   foreign containers and Swarm services, host ports, instance labels;
//! - `process`: processes as `/proc` shows them, and fake docker CLIs;
//! - `openapi`: the OpenAPI document and the checks of values and answers
//!   against it;
//! - `sse`: a client of the connector's event stream (`GET /events`);
//! - `tls`: a test CA made with the `openssl` CLI, shared with the
//!   performance bench, and the `ROCKET_TLS` value that serves its certificate;
//! - `store`: the store's files (data file and journal) read back;
//! - `figures`: figures for the summary `scripts/test` prints;
//! - `rng`: reproducible randomness for the randomized tests.

pub mod app;
#[allow(dead_code)] // the bench's half of the launcher goes unused here
pub mod connector;
pub mod docker;
pub mod figures;
pub mod openapi;
pub mod process;
pub mod rng;
pub mod sse;
pub mod store;
pub mod tls;
