//! Who may call the API and what it may do: tokens (`auth_token`, which
//! may do everything, and the named, scoped ones of `tokens`), sent as a
//! bearer token or as the password of HTTP Basic auth and compared in
//! constant time; a bounded slow-down of guessing; no web page in a browser
//! (refused by `Host`, `Origin` and `Sec-Fetch-Site`); and the rule that a
//! connector reachable from other hosts needs a token and TLS.

mod throttle;
mod tokens;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use throttle::Throttle;
use tokens::{check_token_text, digest, token_table, NamedToken};
pub use tokens::{Scope, ServiceLimit, TokenSpec};

/// Paths anyone may call, token or not: monitoring must work without the
/// secret that lets a caller run containers.
pub const OPEN_PATHS: [&str; 1] = ["/health"];

/// The configured `auth_token`. It never appears in `Debug` output or logs.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct AuthToken(String);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

impl From<String> for AuthToken {
    fn from(token: String) -> Self {
        AuthToken(token)
    }
}

impl AuthToken {
    /// Checks the token can be sent in an `Authorization` header at all.
    ///
    /// # Errors
    /// A message naming `auth_token` (never showing its value).
    pub fn check(&self) -> Result<(), String> {
        if self.0.is_empty() {
            return Err("auth_token is empty; leave it unset to disable authentication".into());
        }
        check_token_text(&self.0).map_err(|reason| format!("auth_token {reason}"))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token, neither as a bearer token nor as a Basic password.
    Missing,
    /// A token that is none of the configured ones.
    WrongToken,
    /// Too many failed attempts from this address: try again after this long.
    Throttled(Duration),
    /// The token is known, but lacks the scope this request needs.
    MissingScope { scope: Scope, request: String },
    /// The token is known, but may not touch this service.
    ServiceNotAllowed(String),
    /// The token may touch only some services, and this answer (named)
    /// covers them all.
    CoversEveryService(String),
    /// A web page on another site (its `Origin`, its `Sec-Fetch-Site`) or
    /// reached through a rebound DNS name (its `Host`): a browser, not a
    /// client of this API.
    Browser(String),
    /// No `Host` header (nor HTTP/2's `:authority`): HTTP/1.1 requires one,
    /// and without it the browser rules could not be applied.
    NoHost,
}

/// A refused request: why, and which token it presented, if a known one
/// (a token that lacks a scope is still someone, for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub failure: AuthFailure,
    pub token: Option<String>,
}

impl From<AuthFailure> for Refusal {
    fn from(failure: AuthFailure) -> Self {
        Refusal {
            failure,
            token: None,
        }
    }
}

/// What the access check reads from a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The host the request target names, where the server keeps it apart
    /// from `Host`: HTTP/2's `:authority`. (An HTTP/1.1 absolute-form
    /// target's host never gets here: Rocket 0.5.2 keeps only its path and
    /// query, and answers for the `Host` header.)
    pub target_host: Option<&'a str>,
    /// `Sec-Fetch-Site`, which browsers send on every request.
    pub fetch_site: Option<&'a str>,
    /// Whether `Host` or `Origin` came more than once: no browser does
    /// that, and which one counts would be anyone's guess.
    pub repeated_headers: bool,
    /// The TCP peer (never a header a client could set), for the slow-down.
    pub remote: Option<IpAddr>,
}

/// What an admitted request may do: who it is (the token's name, none
/// without authentication) and on which services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token: Option<String>,
    pub services: ServiceLimit,
}

impl Grant {
    /// A connector without tokens: anyone may do anything.
    fn anyone() -> Self {
        Grant {
            token: None,
            services: ServiceLimit::Any,
        }
    }

    /// Whether this caller may touch `service`.
    ///
    /// # Errors
    /// [`AuthFailure::ServiceNotAllowed`] naming it.
    pub fn check_service(&self, service: &str) -> Result<(), AuthFailure> {
        if self.services.allows(service) {
            Ok(())
        } else {
            Err(AuthFailure::ServiceNotAllowed(service.to_owned()))
        }
    }
}

/// Whether requests need a token, and which.
pub struct AccessPolicy {
    /// `auth_token` (first) and the named tokens. Only the SHA-256 of each
    /// is kept: comparing fixed-length digests in constant time reveals
    /// neither a token's bytes nor its length through timing.
    tokens: Vec<NamedToken>,
    throttle: Throttle,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl AccessPolicy {
    /// The policy for a connector with `auth_token`, if any, and no table.
    #[cfg(test)]
    pub fn new(token: Option<&AuthToken>) -> Self {
        Self::from_settings(token, &Default::default(), None, 10).expect("a valid token")
    }

    /// The policy of `auth_token`, `tokens` and `tokens_file`.
    ///
    /// # Errors
    /// A message naming the setting at fault.
    pub fn from_settings(
        auth_token: Option<&AuthToken>,
        tokens: &std::collections::BTreeMap<String, TokenSpec>,
        tokens_file: Option<&std::path::Path>,
        failures_per_minute: u32,
    ) -> Result<Self, String> {
        let table = token_table(auth_token.map(|t| digest(&t.0)), tokens, tokens_file)?;
        Ok(AccessPolicy {
            tokens: table,
            throttle: Throttle::new(failures_per_minute),
        })
    }

    /// Whether a token is required at all.
    pub fn requires_token(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// How many tokens are configured, `auth_token` included.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Checks one request: that it names a host, the browser rules, then its
    /// token, its scope and the service its path names.
    ///
    /// # Errors
    /// Why the request must be refused.
    pub fn check(&self, request: &Credentials<'_>) -> Result<Grant, Refusal> {
        // HTTP/1.1 requires a Host on every request, the open paths too.
        if request.host.is_none() && request.target_host.is_none() {
            return Err(AuthFailure::NoHost.into());
        }
        if OPEN_PATHS.contains(&request.path) {
            return Ok(Grant::anyone());
        }
        self.check_browser(request)?;
        let token = match self.authenticate(request)? {
            Some(token) => token,
            None => return Ok(Grant::anyone()),
        };
        let refused = |failure| Refusal {
            failure,
            token: Some(token.name.clone()),
        };
        let scope = required_scope(request.method, request.path);
        if !token.scopes.allows(scope) {
            return Err(refused(AuthFailure::MissingScope {
                scope,
                request: format!("{} {}", request.method, request.path),
            }));
        }
        let grant = Grant {
            token: Some(token.name.clone()),
            services: token.services.clone(),
        };
        if let Some(service) = service_in_path(request.path) {
            grant.check_service(service).map_err(refused)?;
        }
        Ok(grant)
    }

    /// Whether the caller is one the API trusts with details: no web page,
    /// and a token that may read every service, if tokens are set. Unlike
    /// [`AccessPolicy::check`], this holds for the open paths too.
    pub fn trusts(&self, request: &Credentials<'_>) -> bool {
        self.check_browser(request).is_ok()
            && match self.authenticate(request) {
                Ok(None) => true,
                Ok(Some(token)) => token.scopes.allows(Scope::Read) && token.services.is_any(),
                Err(_) => false,
            }
    }

    /// The token the request presents, none when no token is configured.
    /// Counts a failure against the caller's address, and refuses an
    /// address that failed too often without looking at its token.
    fn authenticate(&self, request: &Credentials<'_>) -> Result<Option<&NamedToken>, AuthFailure> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        if let Some(wait) = request.remote.and_then(|ip| self.throttle.wait_for(ip)) {
            return Err(AuthFailure::Throttled(wait));
        }
        let found = match presented_token(request.authorization) {
            None => Err(AuthFailure::Missing),
            Some(presented) => {
                let presented = digest(&presented);
                // Every entry is compared, so the time taken does not tell
                // which one (if any) matched.
                let mut found = None;
                for token in &self.tokens {
                    if bool::from(presented.ct_eq(&token.digest)) {
                        found = Some(token);
                    }
                }
                found.ok_or(AuthFailure::WrongToken)
            }
        };
        // Only a wrong token is a guess; a missing one is a client that
        // was not told the token yet.
        if matches!(found, Err(AuthFailure::WrongToken)) {
            if let Some(ip) = request.remote {
                self.throttle.record_failure(ip);
            }
        }
        found.map(Some)
    }

    /// A page on another site can make a browser send simple requests here
    /// (a form's POST needs no permission), and a page whose DNS name is
    /// rebound to 127.0.0.1 can even read the answers. Clients of this API
    /// (curl, httpie, the autoscaler) send no `Origin` and no
    /// `Sec-Fetch-Site`; browsers label every request with `Sec-Fetch-Site`
    /// and a cross-site one with `Origin`, and a rebound page still names
    /// its own host.
    fn check_browser(&self, request: &Credentials<'_>) -> Result<(), AuthFailure> {
        if request.repeated_headers {
            return Err(AuthFailure::Browser(
                "Host or Origin is given more than once".into(),
            ));
        }
        let host = match (request.host, request.target_host) {
            (None, None) => return Err(AuthFailure::NoHost),
            (Some(host), Some(target)) if !host.eq_ignore_ascii_case(target) => {
                return Err(AuthFailure::Browser(format!(
                    "the request target names the host {target:?} and Host names {host:?}; \
                     they must agree"
                )));
            }
            (Some(host), _) | (None, Some(host)) => host,
        };
        // "none" is a navigation the user made (a typed URL, a bookmark),
        // which browsers make only with GET: a page to look at, never a
        // change.
        if let Some(site) = request.fetch_site {
            let allowed = match site {
                "same-origin" => true,
                "none" => matches!(request.method, "GET" | "HEAD"),
                _ => false,
            };
            if !allowed {
                return Err(AuthFailure::Browser(if site == "none" {
                    format!(
                        "a {} request a browser made by itself (Sec-Fetch-Site: none) is \
                         refused; only GET and HEAD may come that way",
                        request.method
                    )
                } else {
                    format!(
                        "requests from web pages of another site (Sec-Fetch-Site: {site}) \
                         are refused"
                    )
                }));
            }
        }
        if let Some(origin) = request.origin {
            let same_origin = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host));
            if !same_origin {
                return Err(AuthFailure::Browser(format!(
                    "requests from web pages of another origin ({origin}) are refused"
                )));
            }
        }
        // Without a token, Host must be an IP address or localhost: no DNS
        // rebinding can produce those.
        if !self.requires_token() && !is_literal_host(host) {
            return Err(AuthFailure::Browser(format!(
                "Host {host:?} is a DNS name, and without a token only an IP \
                 address or localhost is accepted, so that no DNS name pointed at \
                 this machine (DNS rebinding) can reach the API"
            )));
        }
        Ok(())
    }
}

/// The scope a request needs: changing a count (scale, rollback) is
/// `scale`, any other change `write`, reading `read`.
pub fn required_scope(method: &str, path: &str) -> Scope {
    match method {
        "GET" | "HEAD" => Scope::Read,
        "POST" if path.ends_with("/scale") || path.ends_with("/rollback") => Scope::Scale,
        _ => Scope::Write,
    }
}

/// The service a `/service/<name>...` path names.
pub fn service_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/service/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .filter(|name| !name.is_empty())
}

/// The token of an `Authorization` value: a bearer token, or the password
/// of HTTP Basic auth (whatever the user name), which is what a client
/// sends for a URL like `http://user:TOKEN@host:7051`.
fn presented_token(authorization: Option<&str>) -> Option<String> {
    let (scheme, value) = authorization?.trim().split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.to_owned()).filter(|token| !token.is_empty());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        let (_user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        return Some(password.to_owned()).filter(|token| !token.is_empty());
    }
    None
}

/// Whether a `Host` header (with or without a port) is an IPv4 address, an
/// IPv6 address in brackets, or `localhost`: names no DNS answer can point
/// elsewhere. `localhost.` (with the root's dot) is a DNS query, and
/// `*.localhost` is resolved by some systems and not others, so neither is.
fn is_literal_host(host: &str) -> bool {
    if let Some(bracketed) = host.strip_prefix('[') {
        return match bracketed.split_once(']') {
            Some((address, rest)) if is_port_suffix(rest) => {
                address.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => false,
        };
    }
    let name = match host.split_once(':') {
        Some((name, port)) if is_port_suffix(&format!(":{port}")) => name,
        Some(_) => return false,
        None => host,
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Nothing, or `:` and a port number.
fn is_port_suffix(rest: &str) -> bool {
    rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses to serve other hosts without a token, or over plain HTTP:
/// anyone who can call this API can run containers here, and whoever reads
/// one request on the wire has the token.
///
/// # Errors
/// A message naming the settings that would allow it.
pub fn check_exposure(
    address: IpAddr,
    policy: &AccessPolicy,
    allow_unauthenticated: bool,
    tls: bool,
    allow_plain_http: bool,
) -> Result<(), String> {
    if address.is_loopback() {
        return Ok(());
    }
    if !policy.requires_token() {
        if !allow_unauthenticated {
            return Err(format!(
                "refusing to listen on {address} without a token: anyone who can reach it \
                 could run containers on this host. Set auth_token or tokens, bind to \
                 127.0.0.1, or set allow_unauthenticated = true to accept the risk"
            ));
        }
        log::warn!(
            "listening on {address} without a token because allow_unauthenticated = true: \
             anyone who can reach this port can run containers on this host"
        );
    }
    if !tls {
        if !allow_plain_http {
            return Err(format!(
                "refusing to listen on {address} over plain HTTP: tokens and definitions \
                 would cross the network in clear text. Set tls.certs and tls.key, bind to \
                 127.0.0.1, or set allow_plain_http = true (for a TLS proxy in front) to \
                 accept the risk"
            ));
        }
        log::warn!(
            "listening on {address} over plain HTTP because allow_plain_http = true: \
             tokens cross the network in clear text unless a TLS proxy stands in front"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl AccessPolicy {
        fn admits(&self, request: &Credentials<'_>) -> Result<(), AuthFailure> {
            self.check(request).map(|_| ()).map_err(|r| r.failure)
        }
    }

    fn policy(token: &str) -> AccessPolicy {
        AccessPolicy::new(Some(&AuthToken(token.to_owned())))
    }

    fn request<'a>(path: &'a str, authorization: Option<&'a str>) -> Credentials<'a> {
        Credentials {
            method: "GET",
            path,
            authorization,
            host: Some("127.0.0.1:7051"),
            ..Credentials::default()
        }
    }

    #[test]
    fn without_a_token_clients_are_allowed() {
        let open = AccessPolicy::new(None);
        assert_eq!(open.admits(&request("/service", None)), Ok(()));
        // Addresses and localhost, which no DNS answer can redirect; any
        // address, since a connector on 0.0.0.0 is reached by several.
        for host in [
            "localhost:7051",
            "LOCALHOST",
            "127.0.0.2",
            "[::1]:7051",
            "[::ffff:127.0.0.1]",
            "10.0.0.1:7051",
        ] {
            let req = Credentials {
                host: Some(host),
                ..request("/service", None)
            };
            assert_eq!(open.admits(&req), Ok(()), "{host}");
        }
    }

    #[test]
    fn without_a_token_only_literal_hosts_pass() {
        let open = AccessPolicy::new(None);
        for host in [
            "localhost.",
            "localhost.:7051",
            "a.localhost",
            "evil.localhost:7051",
            "::1",
            "::1:7051",
            "[::1",
            "127.0.0.1:",
            "127.0.0.1:80:80",
            "",
        ] {
            let req = Credentials {
                host: Some(host),
                ..request("/service", None)
            };
            match open.admits(&req) {
                Err(AuthFailure::Browser(reason)) => assert!(reason.contains("Host"), "{reason}"),
                other => panic!("{host:?}: {other:?}"),
            }
        }
        // A token makes a DNS name fine: a rebound page has no token.
        let guarded = policy("s3cret-token-0123456789");
        let by_name = Credentials {
            host: Some("evil.localhost"),
            ..request("/service", Some("Bearer s3cret-token-0123456789"))
        };
        assert_eq!(guarded.admits(&by_name), Ok(()));
    }

    #[test]
    fn a_request_without_a_host_is_a_bad_request_token_or_not() {
        let guarded = policy("s3cret-token-0123456789");
        for (policy, authorization) in [
            (AccessPolicy::new(None), None),
            (guarded, Some("Bearer s3cret-token-0123456789")),
        ] {
            for path in ["/service", "/health"] {
                let req = Credentials {
                    host: None,
                    ..request(path, authorization)
                };
                assert_eq!(policy.admits(&req), Err(AuthFailure::NoHost), "{path}");
            }
        }
        // HTTP/2 names the host in :authority and may send no Host.
        let http2 = Credentials {
            host: None,
            target_host: Some("127.0.0.1:7051"),
            ..request("/service", None)
        };
        assert_eq!(AccessPolicy::new(None).admits(&http2), Ok(()));
    }

    #[test]
    fn a_target_host_must_agree_with_host_and_be_literal_without_a_token() {
        let open = AccessPolicy::new(None);
        let guarded = policy("s3cret-token-0123456789");
        let with = |host, target, authorization| Credentials {
            host,
            target_host: Some(target),
            ..request("/service", authorization)
        };
        let token = Some("Bearer s3cret-token-0123456789");
        assert_eq!(
            open.admits(&with(Some("127.0.0.1:7051"), "127.0.0.1:7051", None)),
            Ok(())
        );
        assert_eq!(
            open.admits(&with(Some("LOCALHOST"), "localhost", None)),
            Ok(())
        );
        for refused in [
            open.admits(&with(Some("127.0.0.1:7051"), "evil.example:7051", None)),
            open.admits(&with(None, "evil.example:7051", None)),
            guarded.admits(&with(Some("box.internal"), "evil.example", token)),
        ] {
            assert!(
                matches!(refused, Err(AuthFailure::Browser(_))),
                "{refused:?}"
            );
        }
        assert_eq!(guarded.admits(&with(None, "box.internal", token)), Ok(()));
    }

    #[test]
    fn a_navigation_the_user_made_may_only_read() {
        let open = AccessPolicy::new(None);
        let navigation = |method| Credentials {
            method,
            fetch_site: Some("none"),
            ..request("/service", None)
        };
        for method in ["GET", "HEAD"] {
            assert_eq!(open.admits(&navigation(method)), Ok(()), "{method}");
        }
        for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            match open.admits(&navigation(method)) {
                Err(AuthFailure::Browser(reason)) => {
                    assert!(reason.contains("Sec-Fetch-Site: none"), "{reason}")
                }
                other => panic!("{method}: {other:?}"),
            }
        }
    }

    #[test]
    fn web_pages_of_other_origins_and_rebound_names_are_refused() {
        let open = AccessPolicy::new(None);
        let refused =
            |req: Credentials<'_>| matches!(open.admits(&req), Err(AuthFailure::Browser(_)));
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:7052",
            "file://",
        ] {
            let req = Credentials {
                origin: Some(origin),
                ..request("/service", None)
            };
            assert!(refused(req), "{origin}");
        }
        let same_origin = Credentials {
            origin: Some("http://127.0.0.1:7051"),
            ..request("/service", None)
        };
        assert_eq!(open.admits(&same_origin), Ok(()));
        for host in [
            "evil.example:7051",
            "127.0.0.1.evil.example",
            "localhost.evil",
            "[::1]evil.example",
            "127.0.0.1:80x",
            "box.internal",
        ] {
            let origin = format!("http://{host}");
            let req = Credentials {
                host: Some(host),
                origin: Some(&origin),
                ..request("/service", None)
            };
            assert!(refused(req), "{host}");
        }
        // With a token a rebound page cannot get in anyway, and a connector
        // serving other hosts is reached by their names.
        let guarded = policy("s3cret-token-0123456789");
        let by_name = Credentials {
            host: Some("box.internal:7051"),
            ..request("/service", Some("Bearer s3cret-token-0123456789"))
        };
        assert_eq!(guarded.admits(&by_name), Ok(()));

        for browser_only in [
            Credentials {
                fetch_site: Some("cross-site"),
                ..request("/service", None)
            },
            Credentials {
                fetch_site: Some("same-site"),
                ..request("/service", None)
            },
            Credentials {
                repeated_headers: true,
                ..request("/service", None)
            },
        ] {
            assert!(refused(browser_only), "{browser_only:?}");
        }
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let req = Credentials {
                method,
                fetch_site: Some("same-origin"),
                ..request("/service", None)
            };
            assert_eq!(open.admits(&req), Ok(()), "{method}");
        }
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let policy = policy("s3cret-token-0123456789");
        let check = |header: Option<&str>| policy.admits(&request("/service", header));
        assert_eq!(check(Some("Bearer s3cret-token-0123456789")), Ok(()));
        assert_eq!(check(Some("bearer s3cret-token-0123456789")), Ok(()));
        assert_eq!(check(None), Err(AuthFailure::Missing));
        assert_eq!(
            check(Some("Basic s3cret-token-0123456789")),
            Err(AuthFailure::Missing)
        );
        // base64 of "x:s3cret-token-0123456789" and of "s3cret-token-0123456789:" etc.
        let basic = |user_password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_password)
            )
        };
        assert_eq!(check(Some(&basic("x:s3cret-token-0123456789"))), Ok(()));
        assert_eq!(check(Some(&basic(":s3cret-token-0123456789"))), Ok(()));
        assert_eq!(
            check(Some(&basic("x:s3cret-token-012345678"))),
            Err(AuthFailure::WrongToken)
        );
        assert_eq!(
            check(Some(&basic("s3cret-token-0123456789:"))),
            Err(AuthFailure::Missing)
        );
        assert_eq!(check(Some("Bearer")), Err(AuthFailure::Missing));
        assert_eq!(check(Some("Bearer ")), Err(AuthFailure::Missing));
        for wrong in [
            "Bearer s3cret-token-012345678",
            "Bearer s3cret-token-01234567890",
            "Bearer S3cret-token-0123456789",
        ] {
            assert_eq!(check(Some(wrong)), Err(AuthFailure::WrongToken), "{wrong}");
        }
    }

    #[test]
    fn health_is_open_even_with_a_token() {
        let policy = policy("s3cret-token-0123456789");
        assert_eq!(policy.admits(&request("/health", None)), Ok(()));
        for path in ["/health/", "/health/x", "/%68ealth", "//health"] {
            assert_eq!(
                policy.admits(&request(path, None)),
                Err(AuthFailure::Missing),
                "{path}"
            );
        }
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let token = AuthToken("s3cret-token-0123456789".to_owned());
        assert!(!format!("{token:?} {:?}", policy("s3cret-token-0123456789")).contains("s3cret"));
    }

    #[test]
    fn tokens_that_cannot_be_sent_are_refused() {
        assert!(AuthToken(String::new())
            .check()
            .unwrap_err()
            .contains("auth_token"));
        assert!(AuthToken("a b".into())
            .check()
            .unwrap_err()
            .contains("auth_token"));
        assert!(AuthToken("ok-token-0123456789".into()).check().is_ok());
    }

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let open = AccessPolicy::new(None);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let guarded = policy("s3cret-token-0123456789");
        assert!(check_exposure(loopback, &open, false, false, false).is_ok());
        assert!(check_exposure("::1".parse().unwrap(), &open, false, false, false).is_ok());
        let refused = check_exposure(any, &open, false, true, false).unwrap_err();
        assert!(refused.contains("auth_token"), "{refused}");
        assert!(check_exposure(any, &open, true, true, false).is_ok());
        assert!(check_exposure(any, &guarded, false, true, false).is_ok());
        // Off loopback, plain HTTP needs its own consent.
        let plain = check_exposure(any, &guarded, false, false, false).unwrap_err();
        assert!(
            plain.contains("allow_plain_http") && plain.contains("tls.certs"),
            "{plain}"
        );
        assert!(check_exposure(any, &guarded, false, false, true).is_ok());
    }

    #[test]
    fn scopes_and_services_decide_after_the_token() {
        let mut tokens = std::collections::BTreeMap::new();
        tokens.insert(
            "autoscaler".to_owned(),
            TokenSpec {
                sha256: None,
                token: Some("autoscaler-token-0123456789".into()),
                scopes: vec!["read".into(), "scale".into()],
                services: Some(vec!["skynet_*".into()]),
            },
        );
        let policy = AccessPolicy::from_settings(None, &tokens, None, 10).unwrap();
        let ask = |method: &'static str, path: &'static str| {
            policy.check(&Credentials {
                method,
                ..request(path, Some("Bearer autoscaler-token-0123456789"))
            })
        };
        let grant = ask("POST", "/service/skynet_web/scale").unwrap();
        assert_eq!(grant.token.as_deref(), Some("autoscaler"));
        assert!(ask("GET", "/service/skynet_web/status").is_ok());
        assert!(ask("POST", "/service/skynet_web/rollback").is_ok());
        let refusal = ask("POST", "/service/other/scale").unwrap_err();
        assert_eq!(
            refusal.failure,
            AuthFailure::ServiceNotAllowed("other".into())
        );
        assert_eq!(refusal.token.as_deref(), Some("autoscaler"));
        for (method, path) in [
            ("PUT", "/service/skynet_web"),
            ("DELETE", "/service/skynet_web"),
            ("POST", "/service"),
        ] {
            assert_eq!(
                ask(method, path).map_err(|r| r.failure),
                Err(AuthFailure::MissingScope {
                    scope: Scope::Write,
                    request: format!("{method} {path}"),
                })
            );
        }
        // A limited token is not trusted with /health's details.
        assert!(!policy.trusts(&request(
            "/health",
            Some("Bearer autoscaler-token-0123456789")
        )));
    }

    #[test]
    fn an_address_that_keeps_failing_is_slowed_before_its_token_is_read() {
        let policy = policy("s3cret-token-0123456789");
        let from = |address: &str, authorization: &'static str| Credentials {
            remote: Some(address.parse().unwrap()),
            ..request("/service", Some(authorization))
        };
        let mut refused = 0;
        for _ in 0..20 {
            match policy.admits(&from("10.0.0.1", "Bearer wrong-token-0123456789")) {
                Err(AuthFailure::WrongToken) => {}
                Err(AuthFailure::Throttled(_)) => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(refused >= 9, "{refused}");
        assert!(matches!(
            policy.admits(&from("10.0.0.1", "Bearer s3cret-token-0123456789")),
            Err(AuthFailure::Throttled(_))
        ));
        assert!(policy
            .check(&from("10.0.0.2", "Bearer s3cret-token-0123456789"))
            .is_ok());
    }
}
