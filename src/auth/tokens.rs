//! Named tokens: what each may do (its scopes) and to which services.
//!
//! A table entry is checked whole when the connector starts: a typo in a
//! scope or a pattern must stop the start, not quietly grant less (or more)
//! than the operator meant.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Tokens shorter than this are accepted, with a warning: they can be guessed.
const SHORT_TOKEN_CHARS: usize = 16;

/// The name under which the `auth_token` setting appears in the audit log
/// and the history; no table entry may take it.
pub const AUTH_TOKEN_NAME: &str = "auth_token";

/// One entry of the `tokens` table, as configured.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Hex SHA-256 of the token.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The token itself.
    #[serde(default)]
    pub token: Option<String>,
    /// What the token may do.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Which services it may touch; absent, all.
    #[serde(default)]
    pub services: Option<Vec<String>>,
}

impl std::fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSpec")
            .field("scopes", &self.scopes)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

/// What a request needs its token to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// GET of definitions, status, events, history, metrics.
    Read,
    /// Scale and roll back.
    Scale,
    /// Define, replace, delete.
    Write,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Scale, Scope::Write];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Scale => "scale",
            Scope::Write => "write",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Scale => 2,
            Scope::Write => 4,
        }
    }

    fn parse(raw: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == raw)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub const EVERY: Scopes = Scopes(7);

    pub fn allows(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// The services a token may touch: every one, or those matching one of
/// its patterns (a name, or a prefix ending in `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceLimit {
    Any,
    Only(Vec<ServicePattern>),
}

impl ServiceLimit {
    pub fn allows(&self, service: &str) -> bool {
        match self {
            ServiceLimit::Any => true,
            ServiceLimit::Only(patterns) => patterns.iter().any(|p| p.matches(service)),
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, ServiceLimit::Any)
    }
}

/// `name` exactly, or every name starting with `prefix*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServicePattern {
    Exact(String),
    Prefix(String),
}

impl ServicePattern {
    fn parse(raw: &str) -> Option<ServicePattern> {
        let (body, prefix) = match raw.strip_suffix('*') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        // What a service name may hold; `*` alone is every service.
        let valid = body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            && body.len() <= 63
            && (prefix || !body.is_empty());
        valid.then(|| {
            if prefix {
                ServicePattern::Prefix(body.to_owned())
            } else {
                ServicePattern::Exact(body.to_owned())
            }
        })
    }

    fn matches(&self, service: &str) -> bool {
        match self {
            ServicePattern::Exact(name) => name == service,
            ServicePattern::Prefix(prefix) => service.starts_with(prefix.as_str()),
        }
    }
}

/// A token of the table, checked: its name, the SHA-256 of its secret,
/// what it may do and where.
#[derive(Clone)]
pub struct NamedToken {
    pub name: String,
    pub digest: [u8; 32],
    pub scopes: Scopes,
    pub services: ServiceLimit,
}

impl std::fmt::Debug for NamedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedToken")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl NamedToken {
    /// The `auth_token` setting: every scope, every service.
    pub fn everything(digest: [u8; 32]) -> Self {
        NamedToken {
            name: AUTH_TOKEN_NAME.to_owned(),
            digest,
            scopes: Scopes::EVERY,
            services: ServiceLimit::Any,
        }
    }

    /// Checks one table entry.
    ///
    /// # Errors
    /// A message naming `tokens.<name>` and the key at fault.
    pub fn from_spec(name: &str, spec: &TokenSpec) -> Result<Self, String> {
        let key = format!("tokens.{name}");
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_name {
            return Err(format!(
                "{key}: a token's name is 1 to 64 letters, digits, '_', '.' or '-'"
            ));
        }
        if name == AUTH_TOKEN_NAME {
            return Err(format!(
                "{key}: the name {AUTH_TOKEN_NAME} is the auth_token setting's; choose another"
            ));
        }
        let digest = match (&spec.sha256, &spec.token) {
            (Some(hex), None) => parse_hex_digest(hex)
                .ok_or_else(|| format!("{key}.sha256 must be 64 hexadecimal digits"))?,
            (None, Some(token)) => {
                check_token_text(token).map_err(|reason| format!("{key}.token {reason}"))?;
                digest(token)
            }
            _ => {
                return Err(format!(
                    "{key} needs exactly one of sha256 (the token's hex SHA-256) or token"
                ))
            }
        };
        if spec.scopes.is_empty() {
            return Err(format!(
                "{key}.scopes is empty: give one or more of read, scale, write"
            ));
        }
        let mut scopes = 0;
        for raw in &spec.scopes {
            let scope = Scope::parse(raw).ok_or_else(|| {
                format!("{key}.scopes: {raw:?} is not a scope (read, scale or write)")
            })?;
            scopes |= scope.bit();
        }
        let services = match &spec.services {
            None => ServiceLimit::Any,
            Some(patterns) if patterns.is_empty() => {
                return Err(format!(
                    "{key}.services is empty, so the token could touch nothing; \
                     leave it out for every service"
                ))
            }
            Some(patterns) if patterns.iter().any(|p| p == "*") => ServiceLimit::Any,
            Some(patterns) => ServiceLimit::Only(
                patterns
                    .iter()
                    .map(|raw| {
                        ServicePattern::parse(raw).ok_or_else(|| {
                            format!(
                                "{key}.services: {raw:?} is neither a service name nor a \
                                 prefix ending in '*'"
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(NamedToken {
            name: name.to_owned(),
            digest,
            scopes: Scopes(scopes),
            services,
        })
    }
}

/// Whether a token can be sent in a header at all; warns when it is short.
///
/// # Errors
/// Why not, as the end of a sentence starting with the setting's name.
pub fn check_token_text(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("is empty".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces, to fit an HTTP header".into());
    }
    if token.len() < SHORT_TOKEN_CHARS {
        log::warn!(
            "a token is shorter than {} characters and could be guessed",
            SHORT_TOKEN_CHARS
        );
    }
    Ok(())
}

/// The SHA-256 of a token: what the table keeps and compares.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// The table of `tokens` and that of `tokens_file`, checked, with
/// `auth_token` first when set.
///
/// # Errors
/// A message naming the setting at fault: an unreadable file, a bad entry,
/// a name given twice, or two entries with the same secret (which would
/// make the audit log's name a guess).
pub fn token_table(
    auth_token: Option<[u8; 32]>,
    tokens: &BTreeMap<String, TokenSpec>,
    tokens_file: Option<&Path>,
) -> Result<Vec<NamedToken>, String> {
    let mut table: Vec<NamedToken> = auth_token.map(NamedToken::everything).into_iter().collect();
    let from_file = match tokens_file {
        Some(path) => read_tokens_file(path)?,
        None => BTreeMap::new(),
    };
    for (name, spec) in tokens.iter().chain(&from_file) {
        let token = NamedToken::from_spec(name, spec)?;
        if table.iter().any(|known| known.name == token.name) {
            return Err(format!(
                "tokens.{name} is given both in tokens and in tokens_file"
            ));
        }
        if let Some(twin) = table.iter().find(|known| known.digest == token.digest) {
            return Err(format!(
                "tokens.{name} has the same secret as {}; every token needs its own",
                twin.name
            ));
        }
        table.push(token);
    }
    Ok(table)
}

/// A TOML file whose top-level tables are token entries, as under
/// `[default.tokens]` in Rocket.toml.
fn read_tokens_file(path: &Path) -> Result<BTreeMap<String, TokenSpec>, String> {
    use rocket::figment::providers::{Format, Toml};
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("tokens_file {}: {e}", path.display()))?;
    rocket::figment::Figment::from(Toml::string(&text))
        .extract()
        .map_err(|e| format!("tokens_file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scopes: &[&str], services: Option<&[&str]>) -> TokenSpec {
        TokenSpec {
            sha256: None,
            token: Some("a-token-long-enough-0123".into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            services: services.map(|list| list.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn scopes_and_patterns_are_read() {
        let token = NamedToken::from_spec(
            "autoscaler",
            &spec(&["read", "scale"], Some(&["skynet_*", "db"])),
        )
        .unwrap();
        assert!(token.scopes.allows(Scope::Read));
        assert!(token.scopes.allows(Scope::Scale));
        assert!(!token.scopes.allows(Scope::Write));
        assert!(token.services.allows("skynet_web"));
        assert!(token.services.allows("skynet_"));
        assert!(token.services.allows("db"));
        assert!(!token.services.allows("db2"));
        assert!(!token.services.allows("web_skynet_"));
        let every = NamedToken::from_spec("all", &spec(&["write"], Some(&["x", "*"]))).unwrap();
        assert!(every.services.is_any());
    }

    #[test]
    fn bad_entries_are_refused_naming_the_key() {
        for (name, spec, key) in [
            ("a b", spec(&["read"], None), "tokens.a b"),
            ("auth_token", spec(&["read"], None), "auth_token"),
            ("t", spec(&[], None), "tokens.t.scopes"),
            ("t", spec(&["admin"], None), "tokens.t.scopes"),
            ("t", spec(&["read"], Some(&[])), "tokens.t.services"),
            ("t", spec(&["read"], Some(&["a*b"])), "tokens.t.services"),
            ("t", spec(&["read"], Some(&["a/b"])), "tokens.t.services"),
            (
                "t",
                TokenSpec {
                    sha256: Some("abc".into()),
                    ..spec(&["read"], None)
                },
                "tokens.t",
            ),
            (
                "t",
                TokenSpec {
                    token: None,
                    ..spec(&["read"], None)
                },
                "tokens.t",
            ),
            (
                "t",
                TokenSpec {
                    token: Some("has space".into()),
                    ..spec(&["read"], None)
                },
                "tokens.t.token",
            ),
        ] {
            let error = NamedToken::from_spec(name, &spec).unwrap_err();
            assert!(error.contains(key), "{error}");
            assert!(!error.contains("a-token-long-enough"), "{error}");
        }
    }

    #[test]
    fn a_digest_is_the_hex_sha256_of_the_token() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let token = NamedToken::from_spec(
            "t",
            &TokenSpec {
                sha256: Some(hex.to_uppercase()),
                token: None,
                ..spec(&["read"], None)
            },
        )
        .unwrap();
        assert_eq!(token.digest, digest("test"));
    }

    #[test]
    fn the_table_refuses_twins_and_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        std::fs::write(
            &file,
            "[dashboard]\ntoken = \"dashboard-token-0123456789\"\nscopes = [\"read\"]\n",
        )
        .unwrap();
        let mut tokens = BTreeMap::new();
        tokens.insert("autoscaler".to_owned(), spec(&["read", "scale"], None));
        let table = token_table(None, &tokens, Some(&file)).unwrap();
        let names: Vec<&str> = table.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["autoscaler", "dashboard"]);

        let twin =
            token_table(Some(digest("a-token-long-enough-0123")), &tokens, None).unwrap_err();
        assert!(twin.contains("same secret"), "{twin}");
        let missing = token_table(None, &tokens, Some(&dir.path().join("nope"))).unwrap_err();
        assert!(missing.contains("tokens_file"), "{missing}");
        std::fs::write(
            &file,
            "[autoscaler]\ntoken = \"other-token-0123456789\"\nscopes = [\"read\"]\n",
        )
        .unwrap();
        let twice = token_table(None, &tokens, Some(&file)).unwrap_err();
        assert!(twice.contains("both"), "{twice}");
    }
}
