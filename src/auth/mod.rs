//! Who may call the API: an optional bearer token (`auth_token`), compared in
//! constant time; no web page in a browser (refused by `Origin` and `Host`);
//! and the rule that a connector reachable from other hosts needs a token.

mod tokens;

use std::net::IpAddr;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use tokens::TokenSpec;

/// Paths anyone may call, token or not: monitoring must work without the
/// secret that lets a caller run containers.
pub const OPEN_PATHS: [&str; 1] = ["/health"];

/// Tokens shorter than this are accepted, with a warning: they can be guessed.
const SHORT_TOKEN_CHARS: usize = 16;

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
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "auth_token must be printable ASCII without spaces, to fit an HTTP header".into(),
            );
        }
        if self.0.len() < SHORT_TOKEN_CHARS {
            log::warn!(
                "auth_token is shorter than {SHORT_TOKEN_CHARS} characters and could be guessed"
            );
        }
        Ok(())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// A bearer token that is not the configured one.
    WrongToken,
    /// A web page on another site (its `Origin`) or reached through a
    /// rebound DNS name (its `Host`): a browser, not a client of this API.
    Browser(String),
}

/// What the access check reads from a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub host: Option<&'a str>,
    /// `Sec-Fetch-Site`, which browsers send on every request.
    pub fetch_site: Option<&'a str>,
    /// Whether `Host` or `Origin` came more than once: no browser does
    /// that, and which one counts would be anyone's guess.
    pub repeated_headers: bool,
}

/// Whether requests need a token, and which.
#[derive(Clone)]
pub struct AccessPolicy {
    /// SHA-256 of the token. Comparing fixed-length digests in constant time
    /// reveals neither the token's bytes nor its length through timing.
    token_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("requires_token", &self.requires_token())
            .finish()
    }
}

impl AccessPolicy {
    /// The policy for a connector with `token`, if any.
    pub fn new(token: Option<&AuthToken>) -> Self {
        AccessPolicy {
            token_digest: token.map(|t| digest(&t.0)),
        }
    }

    /// Whether a token is required at all.
    pub fn requires_token(&self) -> bool {
        self.token_digest.is_some()
    }

    /// Checks one request.
    ///
    /// # Errors
    /// Why the request must be refused.
    pub fn check(&self, request: &Credentials<'_>) -> Result<(), AuthFailure> {
        if OPEN_PATHS.contains(&request.path) {
            return Ok(());
        }
        self.check_browser(request)?;
        self.check_token(request.authorization)
    }

    /// Whether the caller is one the API trusts with details: no web page,
    /// and the token if one is set. Unlike [`AccessPolicy::check`], this
    /// holds for the open paths too.
    pub fn trusts(&self, request: &Credentials<'_>) -> bool {
        self.check_browser(request).is_ok() && self.check_token(request.authorization).is_ok()
    }

    /// Checks an `Authorization` header's value against the token, if one
    /// is required.
    fn check_token(&self, authorization: Option<&str>) -> Result<(), AuthFailure> {
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        let presented = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(AuthFailure::Missing)?;
        if bool::from(digest(presented).ct_eq(expected)) {
            Ok(())
        } else {
            Err(AuthFailure::WrongToken)
        }
    }

    /// A page on another site can make a browser send simple requests here
    /// (a form's POST needs no permission), and a page whose DNS name is
    /// rebound to 127.0.0.1 can even read the answers. Clients of this API
    /// (curl, httpie, the autoscaler) send no `Origin`; browsers always do on
    /// a cross-site request, and a rebound page still names its own host.
    fn check_browser(&self, request: &Credentials<'_>) -> Result<(), AuthFailure> {
        if request.repeated_headers {
            return Err(AuthFailure::Browser(
                "Host or Origin is given more than once".into(),
            ));
        }
        // Browsers label every request with it, also those that carry no
        // Origin (a cross-site GET from a link or an image); "none" is a user
        // typing the URL.
        if let Some(site) = request
            .fetch_site
            .filter(|site| !matches!(*site, "same-origin" | "none"))
        {
            return Err(AuthFailure::Browser(format!(
                "requests from web pages of another site (Sec-Fetch-Site: {site}) are refused"
            )));
        }
        if let Some(origin) = request.origin {
            let same_origin = request.host.is_some_and(|host| {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
            });
            if !same_origin {
                return Err(AuthFailure::Browser(format!(
                    "requests from web pages of another origin ({origin}) are refused"
                )));
            }
        }
        // Without a token, Host must be an IP address or a localhost name:
        // no DNS rebinding can produce those.
        if !self.requires_token() {
            if let Some(host) = request.host.filter(|host| !is_literal_host(host)) {
                return Err(AuthFailure::Browser(format!(
                    "Host {host:?} is a DNS name, and without auth_token only an IP \
                     address or localhost is accepted, so that no DNS name pointed at \
                     this machine (DNS rebinding) can reach the API"
                )));
            }
        }
        Ok(())
    }
}

/// Whether a `Host` header (with or without a port) is an IP address or a
/// localhost name (`localhost`, `*.localhost`), which resolve without DNS.
fn is_literal_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, rest)) if is_port_suffix(rest) => {
                return address.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port_suffix(&format!(":{port}")) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok()
}

/// Nothing, or `:` and a port number.
fn is_port_suffix(rest: &str) -> bool {
    rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Refuses to serve other hosts without a token: anyone who can call this API
/// can run containers here.
///
/// # Errors
/// A message naming `auth_token` and `allow_unauthenticated`.
pub fn check_exposure(
    address: IpAddr,
    policy: &AccessPolicy,
    allow_unauthenticated: bool,
) -> Result<(), String> {
    if address.is_loopback() || policy.requires_token() {
        return Ok(());
    }
    if allow_unauthenticated {
        log::warn!(
            "listening on {address} without auth_token because allow_unauthenticated = true: \
             anyone who can reach this port can run containers on this host"
        );
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {address} without auth_token: anyone who can reach it could \
         run containers on this host. Set auth_token (or ROCKET_AUTH_TOKEN), bind to 127.0.0.1, \
         or set allow_unauthenticated = true to accept the risk"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(token: &str) -> AccessPolicy {
        AccessPolicy::new(Some(&AuthToken(token.to_owned())))
    }

    fn request<'a>(path: &'a str, authorization: Option<&'a str>) -> Credentials<'a> {
        Credentials {
            path,
            authorization,
            host: Some("127.0.0.1:7051"),
            ..Credentials::default()
        }
    }

    #[test]
    fn without_a_token_clients_are_allowed() {
        let open = AccessPolicy::new(None);
        assert_eq!(open.check(&request("/service", None)), Ok(()));
        // Addresses and localhost names, which no DNS answer can redirect;
        // any address, since a connector on 0.0.0.0 is reached by several.
        for host in [
            "localhost:7051",
            "LOCALHOST",
            "localhost.",
            "127.0.0.2",
            "[::1]:7051",
            "[::ffff:127.0.0.1]",
            "a.localhost",
            "10.0.0.1:7051",
        ] {
            let req = Credentials {
                host: Some(host),
                ..request("/service", None)
            };
            assert_eq!(open.check(&req), Ok(()), "{host}");
        }
        let no_host = Credentials {
            host: None,
            ..request("/service", None)
        };
        assert_eq!(open.check(&no_host), Ok(()));
    }

    #[test]
    fn web_pages_of_other_origins_and_rebound_names_are_refused() {
        let open = AccessPolicy::new(None);
        let refused =
            |req: Credentials<'_>| matches!(open.check(&req), Err(AuthFailure::Browser(_)));
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
        assert_eq!(open.check(&same_origin), Ok(()));
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
        assert_eq!(guarded.check(&by_name), Ok(()));

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
        for typed_or_same in ["none", "same-origin"] {
            let req = Credentials {
                fetch_site: Some(typed_or_same),
                ..request("/service", None)
            };
            assert_eq!(open.check(&req), Ok(()), "{typed_or_same}");
        }
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let policy = policy("s3cret-token-0123456789");
        let check = |header: Option<&str>| policy.check(&request("/service", header));
        assert_eq!(check(Some("Bearer s3cret-token-0123456789")), Ok(()));
        assert_eq!(check(Some("bearer s3cret-token-0123456789")), Ok(()));
        assert_eq!(check(None), Err(AuthFailure::Missing));
        assert_eq!(
            check(Some("Basic s3cret-token-0123456789")),
            Err(AuthFailure::Missing)
        );
        assert_eq!(check(Some("Bearer")), Err(AuthFailure::Missing));
        for wrong in [
            "Bearer s3cret-token-012345678",
            "Bearer s3cret-token-01234567890",
            "Bearer S3cret-token-0123456789",
            "Bearer ",
        ] {
            assert_eq!(check(Some(wrong)), Err(AuthFailure::WrongToken), "{wrong}");
        }
    }

    #[test]
    fn health_is_open_even_with_a_token() {
        let policy = policy("s3cret-token-0123456789");
        assert_eq!(policy.check(&request("/health", None)), Ok(()));
        for path in ["/health/", "/health/x", "/%68ealth", "//health"] {
            assert_eq!(
                policy.check(&request(path, None)),
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
        assert!(check_exposure(loopback, &open, false).is_ok());
        assert!(check_exposure("::1".parse().unwrap(), &open, false).is_ok());
        let refused = check_exposure(any, &open, false).unwrap_err();
        assert!(refused.contains("auth_token"), "{refused}");
        assert!(check_exposure(any, &open, true).is_ok());
        assert!(check_exposure(any, &policy("s3cret-token-0123456789"), false).is_ok());
    }
}
