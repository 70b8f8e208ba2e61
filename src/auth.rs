//! Who may call the API: an optional bearer token (`auth_token`), compared in
//! constant time, and the rule that a connector reachable from other hosts
//! needs one.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Paths anyone may call, token or not: monitoring must work without the
/// secret that lets a caller run containers.
pub const OPEN_PATHS: [&str; 1] = ["/health"];

/// Tokens shorter than this are accepted, with a warning: they can be guessed.
const SHORT_TOKEN_CHARS: usize = 16;

/// The configured `auth_token`. It never appears in `Debug` output or logs.
#[derive(Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// A bearer token that is not the configured one.
    WrongToken,
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
            .field("requires_token", &self.token_digest.is_some())
            .finish()
    }
}

impl AccessPolicy {
    pub fn new(token: Option<&AuthToken>) -> Self {
        AccessPolicy {
            token_digest: token.map(|t| digest(&t.0)),
        }
    }

    /// Whether a token is required at all.
    pub fn requires_token(&self) -> bool {
        self.token_digest.is_some()
    }

    /// Checks a request to `path` carrying `authorization` (the header's value).
    ///
    /// # Errors
    /// Why the request must be refused.
    pub fn check(&self, path: &str, authorization: Option<&str>) -> Result<(), AuthFailure> {
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        if OPEN_PATHS.contains(&path) {
            return Ok(());
        }
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

    #[test]
    fn without_a_token_everything_is_allowed() {
        assert_eq!(AccessPolicy::new(None).check("/service", None), Ok(()));
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let policy = policy("s3cret-token-0123456789");
        let check = |header: Option<&str>| policy.check("/service", header);
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
        assert_eq!(
            policy("s3cret-token-0123456789").check("/health", None),
            Ok(())
        );
        assert_eq!(
            policy("s3cret-token-0123456789").check("/health/x", None),
            Err(AuthFailure::Missing)
        );
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
