//! The audit trail: hands every request that changes something, and every
//! one the access check refused, to the audit log, once it is answered.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Method;
use rocket::{Request, Response};

use super::gate::{ActedOn, Verdict};
use crate::audit::{AuditEntry, AuditLog};
use crate::auth::service_in_path;
use crate::error::Error;

pub struct AuditTrail;

#[rocket::async_trait]
impl Fairing for AuditTrail {
    fn info(&self) -> Info {
        Info {
            name: "audit log",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let verdict = Verdict::of(request);
        let refusal = match verdict {
            Verdict::Refused(failure) => Some(Error::AccessDenied(failure.clone()).to_string()),
            _ => None,
        };
        let changes = !matches!(
            request.method(),
            Method::Get | Method::Head | Method::Options
        );
        if refusal.is_none() && !changes {
            return;
        }
        let Some(log) = request.rocket().state::<AuditLog>() else {
            return;
        };
        let path = request.uri().path().as_str();
        let status = response.status().code;
        let acted_on = request.local_cache(|| ActedOn(None));
        log.record(&AuditEntry {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            token: match verdict {
                Verdict::Admitted(grant) => grant.token.as_deref(),
                _ => None,
            },
            remote: request.remote().map(|address| address.ip().to_string()),
            method: request.method().as_str(),
            path,
            service: service_in_path(path).or(acted_on.0.as_deref()),
            outcome: match (&refusal, status) {
                (Some(_), _) => "refused",
                (None, 100..=399) => "done",
                (None, _) => "failed",
            },
            status,
            reason: refusal,
        });
    }
}
