//! What the controller API reads from request headers and adds to answers:
//! who changes a service (for its history), `If-Match`, `Last-Event-ID`,
//! and the `ETag` and `X-Connector-Index` of an answer.

use rocket::http::Header;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder};

use super::gate::Verdict;
use crate::auth::Grant;
use crate::domain::{entity_tag, Precondition};
use crate::error::Error;
use crate::store::Origin;

/// The header that carries a service's index in the feed.
pub const INDEX_HEADER: &str = "X-Connector-Index";

/// How much of a User-Agent a history keeps.
const LONGEST_AGENT: usize = 80;

/// Who sends a request that changes a service: its User-Agent and address,
/// as its history shows them.
pub struct Author(String);

impl Author {
    /// The origin of a change this request makes, for `reason`.
    pub fn origin(&self, reason: Option<&str>) -> Origin {
        Origin {
            caller: self.0.clone(),
            reason: reason.map(str::to_owned),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Author {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        // Whatever the client sends, the history holds one printable line.
        let agent: Option<String> = request.headers().get_one("User-Agent").map(|agent| {
            agent
                .chars()
                .filter(|c| !c.is_control())
                .take(LONGEST_AGENT)
                .collect()
        });
        let address = request
            .client_ip()
            .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        let caller = match agent.filter(|a| !a.trim().is_empty()) {
            Some(agent) => format!("{agent} at {address}"),
            None => address,
        };
        // The token's name, when tokens are set: who, not just from where.
        Outcome::Success(Author(match Verdict::of(request) {
            Verdict::Admitted(Grant {
                token: Some(token), ..
            }) => format!("{caller} (token {token})"),
            _ => caller,
        }))
    }
}

/// The `If-Match` header, as sent; read with [`IfMatch::precondition`], so
/// that a malformed one is a 400 naming it.
pub struct IfMatch(Option<String>);

impl IfMatch {
    /// # Errors
    /// [`Error::Invalid`] naming `If-Match`.
    pub fn precondition(&self) -> Result<Option<Precondition>, Error> {
        self.0.as_deref().map(Precondition::parse).transpose()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IfMatch {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let values: Vec<&str> = request.headers().get("If-Match").collect();
        // Several header lines are one comma-separated list (RFC 9110, 5.3).
        Outcome::Success(IfMatch((!values.is_empty()).then(|| values.join(","))))
    }
}

/// The `Last-Event-ID` header of a reconnecting event stream.
pub struct LastEventId(Option<String>);

impl LastEventId {
    /// The id, if one was sent.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `Last-Event-ID` when it is not one of the
    /// connector's ids (a non-negative integer).
    pub fn id(&self) -> Result<Option<u64>, Error> {
        self.0
            .as_deref()
            .map(|text| {
                text.trim().parse::<u64>().map_err(|_| {
                    Error::invalid(
                        "Last-Event-ID",
                        format!("{text:?} is not an event id of this connector"),
                    )
                })
            })
            .transpose()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventId {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let id = request
            .headers()
            .get_one("Last-Event-ID")
            .map(str::to_owned);
        Outcome::Success(LastEventId(id))
    }
}

/// An answer about a service at `revision`, with its `ETag`, and its
/// index in the feed when it is a status.
pub struct Tagged<R> {
    pub answer: R,
    pub revision: u64,
    pub index: Option<u64>,
}

impl<R> Tagged<R> {
    pub fn new(answer: R, revision: u64) -> Self {
        Tagged {
            answer,
            revision,
            index: None,
        }
    }

    pub fn indexed(mut self, index: u64) -> Self {
        self.index = Some(index);
        self
    }
}

impl<'r, 'o: 'r, R: Responder<'r, 'o>> Responder<'r, 'o> for Tagged<R> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'o> {
        let mut response = self.answer.respond_to(request)?;
        response.set_header(Header::new("ETag", entity_tag(self.revision)));
        if let Some(index) = self.index {
            response.set_header(Header::new(INDEX_HEADER, index.to_string()));
        }
        Ok(response)
    }
}
