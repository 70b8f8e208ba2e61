//! Named tokens: what each may do (its scopes) and to which services.

use serde::Deserialize;

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
