//! Integration tests: the real binary, over real HTTP, against the real
//! Docker engine, with a locally built image. One test binary, so the
//! support module (tests/support/, shared with tests/swarm) compiles once.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod auth;
mod browser_rules;
mod cli;
mod concurrency;
mod contract;
mod controller;
mod data_files;
mod definitions;
mod delete;
mod durability;
mod events;
mod faults;
mod freshness;
mod health;
mod http_errors;
mod image_refs;
mod injection;
mod observability;
mod ports;
mod readme;
mod reconcile;
mod restart;
mod rollback;
mod scale;
mod service;
mod slow_clients;
mod stop;
mod tls;
mod validation;
mod workloads;
