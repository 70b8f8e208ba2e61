//! Gives each request one docker deadline (`docker_timeout`) that all its
//! docker calls share; `docker::deadline` keeps the account.

use std::time::Duration;

use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request};

use crate::docker::deadline;

/// Makes each of `routes` run with `docker_timeout` as the docker time its
/// calls share.
pub(super) fn shared_by_each_request(routes: Vec<Route>, docker_timeout: Duration) -> Vec<Route> {
    routes
        .into_iter()
        .map(|mut route| {
            route.handler = Box::new(WithinBudget {
                handler: route.handler,
                docker_timeout,
            });
            route
        })
        .collect()
}

/// A route handler whose docker calls share one budget.
#[derive(Clone)]
struct WithinBudget {
    handler: Box<dyn Handler>,
    docker_timeout: Duration,
}

#[rocket::async_trait]
impl Handler for WithinBudget {
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        deadline::within_budget(self.docker_timeout, self.handler.handle(request, data)).await
    }
}
