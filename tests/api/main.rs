//! Integration tests: the real binary, over real HTTP, against the real
//! Docker engine, with a locally built image. One test binary, so the
//! helpers compile once.

mod auth;
mod cli;
mod concurrency;
mod contract;
mod durability;
mod faults;
mod freshness;
mod helpers;
mod injection;
mod observability;
mod readme;
mod reconcile;
mod restart;
mod scale;
mod service;
mod validation;
