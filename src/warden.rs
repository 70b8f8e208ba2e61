//! The connection warden: ends connections that never deliver a request.
//! (Skeleton: filled in by the slow-clients work of issue 18.)

use std::time::Duration;

use rocket::fairing::{Fairing, Info, Kind};

/// What the warden enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WardenSettings {
    /// How long a new connection has to deliver its first request's headers.
    pub header_timeout: Duration,
    /// Connections one remote address may hold at once.
    pub per_address: usize,
}

pub(crate) struct Warden {
    #[allow(dead_code)]
    settings: WardenSettings,
}

impl Warden {
    pub fn new(settings: WardenSettings) -> Self {
        Warden { settings }
    }
}

#[rocket::async_trait]
impl Fairing for Warden {
    fn info(&self) -> Info {
        Info {
            name: "connection warden",
            kind: Kind::Liftoff | Kind::Request,
        }
    }
}
