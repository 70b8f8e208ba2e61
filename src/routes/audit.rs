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
        let acted_on = ActedOn::of(request);
        // Refused by the gate, or by a route for the service in its body.
        let refusal = match (verdict, &acted_on.refused) {
            (Verdict::Refused(refusal), _) => Some(&refusal.failure),
            (_, Some(failure)) => Some(failure),
            _ => None,
        }
        .map(|failure| Error::AccessDenied(failure.clone()).to_string());
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
        log.record(&AuditEntry {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            token: match verdict {
                Verdict::Admitted(grant) => grant.token.as_deref(),
                Verdict::Refused(refusal) => refusal.token.as_deref(),
                Verdict::Unchecked => None,
            },
            remote: request.remote().map(|address| address.ip().to_string()),
            method: request.method().as_str(),
            path,
            service: service_in_path(path).or(acted_on.service.as_deref()),
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
