//! The connector's own limits on a request's head, checked before anything
//! else reads the request (the access gate included), so that a request
//! over them gets a JSON answer: 414 for a long target, 431 for too many or
//! too large header fields, 400 for a target that is not valid
//! percent-encoded UTF-8.
//!
//! hyper reads the head before Rocket sees it, and answers some requests
//! itself, with an empty body and no hook to change that (docs/api.md,
//! "Errors that are not JSON", lists them): a target of 64 KiB or more
//! (414), more than 100 header fields or a head over its 408 KiB buffer
//! (431), a head it cannot parse (400). These limits sit well below
//! hyper's, so every request that goes a little over them learns why.

use rocket::http::Status;
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request};

use crate::error::ErrorReply;

/// The longest request target (path and query) served, in bytes. The API
/// needs a few hundred at most (a name is at most 63 characters). nginx in
/// front (docs/operations.md has an example) refuses request lines over
/// 8 KiB by default (`large_client_header_buffers 4 8k`), so no client
/// that works through a proxy loses anything here.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// The most header fields a request may carry. A client of the connector
/// sends about ten (Host, Authorization, Content-Type, Accept, a
/// User-Agent, a proxy's Forwarded headers); 64 leaves room for any proxy
/// chain while staying below hyper's 100, past which it answers itself.
pub const MAX_HEADER_FIELDS: usize = 64;

/// The most bytes the header fields may take together, counted as they
/// travel (`name: value` and the line end). 16 KiB: a bearer token is well
/// under 1 KiB, and the largest heads seen from real clients (browsers with
/// many cookies) stay under 8 KiB; hyper's own limit is its 408 KiB buffer.
/// A bound on the total, not per field, because what costs the connector is
/// the whole head it keeps for the request's life.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Makes each of `routes` check the limits before its own handler runs.
/// Meant for the access gate's routes, which every request meets first.
pub(super) fn checked_first(routes: Vec<Route>) -> Vec<Route> {
    routes
        .into_iter()
        .map(|mut route| {
            route.handler = Box::new(WithinLimits(route.handler));
            route
        })
        .collect()
}

/// A route handler that runs only for requests within the limits.
#[derive(Clone)]
struct WithinLimits(Box<dyn Handler>);

#[rocket::async_trait]
impl Handler for WithinLimits {
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        match check(request) {
            Ok(()) => self.0.handle(request, data).await,
            Err(refusal) => Outcome::from(request, refusal),
        }
    }
}

/// The answer to a request over a limit, if it is.
fn check(request: &Request<'_>) -> Result<(), ErrorReply> {
    let uri = request.uri();
    let path = uri.path().as_str();
    let query = uri.query().map(|query| query.as_str());
    let target = path.len() + query.map_or(0, |query| query.len() + 1);
    if target > MAX_TARGET_BYTES {
        return Err(ErrorReply::new(
            Status::UriTooLong,
            format!(
                "the request target is {target} bytes, more than the {MAX_TARGET_BYTES} \
                 the connector accepts"
            ),
        ));
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADER_FIELDS {
        return Err(ErrorReply::new(
            Status::RequestHeaderFieldsTooLarge,
            format!(
                "the request has {} header fields, more than the {MAX_HEADER_FIELDS} the \
                 connector accepts",
                headers.len()
            ),
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|header| header.name().len() + header.value().len() + ": \r\n".len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ErrorReply::new(
            Status::RequestHeaderFieldsTooLarge,
            format!(
                "the request's header fields take {header_bytes} bytes, more than the \
                 {MAX_HEADER_BYTES} the connector accepts"
            ),
        ));
    }
    for (part, text) in [("path", Some(path)), ("query", query)] {
        if let Some(why) = text.and_then(bad_encoding) {
            return Err(ErrorReply::new(
                Status::BadRequest,
                format!("the request's {part} {why}"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with the percent-encoding of `text`, if anything: a `%`
/// not followed by two hex digits, or escapes that decode to bytes that
/// are not UTF-8. Rocket would otherwise take the first as literal text
/// and replace the second with U+FFFD, so a name would silently change.
fn bad_encoding(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'%' {
            decoded.push(bytes[at]);
            at += 1;
            continue;
        }
        let escape = bytes.get(at + 1..at + 3).and_then(|hex| {
            let hex = std::str::from_utf8(hex).ok()?;
            u8::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        match escape {
            Some(byte) => decoded.push(byte),
            None => {
                let shown: String = text[at..].chars().take(3).collect();
                return Some(format!(
                    "has '%' not followed by two hex digits (at byte {at}: {shown:?})"
                ));
            }
        }
        at += 3;
    }
    std::str::from_utf8(&decoded)
        .err()
        .map(|_| "does not decode to UTF-8 text".to_owned())
}
