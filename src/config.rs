//! The connector's own configuration keys, read from the same figment as
//! Rocket's (`Rocket.toml`, then `ROCKET_*` environment variables).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthToken, TokenSpec};
use crate::domain::ServiceName;
use crate::logging::LogFormat;

/// Where the connector listens unless told otherwise.
pub(crate) const DEFAULT_PORT: u16 = 7051;

/// Seconds in-flight requests get to finish after SIGTERM (Rocket's
/// `shutdown.grace`): as long as one docker command may take by default,
/// enough for a typical scale under way when systemd stops the connector.
/// A scale of many containers can take several docker commands' time; the
/// README says to raise it with `docker_timeout`.
pub(crate) const SHUTDOWN_GRACE_SECONDS: u32 = 30;

/// Seconds after the grace for connections to close (Rocket's
/// `shutdown.mercy`).
pub(crate) const SHUTDOWN_MERCY_SECONDS: u32 = 5;

/// The keys the connector adds to Rocket's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct AppConfig {
    /// The JSON file holding the service definitions.
    #[serde(deserialize_with = "text")]
    pub data_file: PathBuf,
    /// Bytes the journal beside the data file may hold, and more than the
    /// data file, before it is folded into it.
    pub journal_compaction_bytes: u64,
    /// Value of the `docker-connector.instance` label: connectors with
    /// different instances share an engine without touching each other.
    #[serde(deserialize_with = "text")]
    pub instance: String,
    /// The docker CLI to run: a path, or a name looked up on `PATH`.
    #[serde(deserialize_with = "text")]
    pub docker: String,
    /// Seconds one docker command may take before it is killed.
    pub docker_timeout: u64,
    /// The largest `number` a scale accepts.
    pub max_replicas: u32,
    /// How many `docker run` one scale may have in flight at once.
    pub scale_concurrency: usize,
    /// When set, every endpoint but `/health` needs
    /// `Authorization: Bearer <auth_token>`.
    /// Never serialized, so no dump of the configuration can show it.
    #[serde(deserialize_with = "optional_text", skip_serializing)]
    pub auth_token: Option<AuthToken>,
    /// Lets the connector listen beyond loopback without `auth_token`.
    pub allow_unauthenticated: bool,
    /// Named tokens with scopes and services (`[default.tokens.<name>]`).
    /// Never serialized: a table entry may hold a token in clear.
    #[serde(skip_serializing)]
    pub tokens: BTreeMap<String, TokenSpec>,
    /// A TOML file holding more named tokens (systemd's `LoadCredential=`).
    #[serde(deserialize_with = "optional_text")]
    pub tokens_file: Option<PathBuf>,
    /// Wrong tokens one address may present in a row, and then per minute.
    pub auth_failures_per_minute: u32,
    /// Lets the connector listen beyond loopback without TLS.
    pub allow_plain_http: bool,
    /// The JSON-lines file of changes and refusals; unset, they go to the log.
    #[serde(deserialize_with = "optional_text")]
    pub audit_log: Option<PathBuf>,
    /// Seconds a new connection has to deliver its first request's headers.
    pub header_timeout: u64,
    /// Connections one remote address may hold at once.
    pub max_connections_per_address: usize,
    /// Text lines or JSON lines.
    pub log_format: LogFormat,
    /// Whether the connector keeps every service at its desired count on
    /// its own (replacing containers that die or vanish, rolling definition
    /// changes); when off, it acts only when called, as the original did.
    pub reconcile: bool,
    /// How many containers a roll replaces at once.
    pub update_parallelism: usize,
    /// Seconds a new container must keep running in a roll before an old
    /// one is removed.
    pub update_settle: f64,
    /// What runs the services: containers on this engine, or Swarm services.
    pub backend: BackendKind,
    /// Swarm: how ports are published.
    pub swarm_publish_mode: SwarmPublishMode,
    /// Swarm: whether `docker service create`/`update` ask a registry for
    /// the image's digest (docker's default). Off (`--no-resolve-image`) for
    /// hosts without a registry, where each node uses its local image.
    pub swarm_resolve_image: bool,
    /// Swarm: seconds a scale waits for the running tasks to reach the
    /// target before answering 504 with what runs.
    pub swarm_scale_timeout: u64,
    /// Host directories under which definitions may bind-mount host paths;
    /// empty (the default) refuses every host path, since mounting one is
    /// root on the host for whoever may define services.
    pub allowed_bind_paths: Vec<PathBuf>,
    /// How many events `GET /events` keeps for clients that reconnect
    /// with `Last-Event-ID`; one that missed more is told to reset.
    pub event_ring: usize,
}

/// The value of `backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackendKind {
    /// The connector's own containers on the engine the docker CLI reaches.
    Containers,
    /// One Swarm service per service, on the Swarm the engine manages.
    Swarm,
}

/// The value of `swarm_publish_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SwarmPublishMode {
    /// Each task publishes its ports on an ephemeral port of its own node,
    /// as the containers backend does.
    Host,
    /// Swarm's routing mesh: one port per service, on every node.
    Ingress,
}

impl SwarmPublishMode {
    /// The `mode=` of `--publish`.
    pub fn as_str(self) -> &'static str {
        match self {
            SwarmPublishMode::Host => "host",
            SwarmPublishMode::Ingress => "ingress",
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            data_file: PathBuf::from("data/services.json"),
            journal_compaction_bytes: 4 * 1024 * 1024,
            instance: "default".to_owned(),
            docker: "docker".to_owned(),
            docker_timeout: 30,
            max_replicas: 100,
            scale_concurrency: 8,
            auth_token: None,
            allow_unauthenticated: false,
            tokens: BTreeMap::new(),
            tokens_file: None,
            auth_failures_per_minute: 10,
            allow_plain_http: false,
            audit_log: None,
            header_timeout: 5,
            max_connections_per_address: 256,
            log_format: LogFormat::Text,
            reconcile: true,
            update_parallelism: 1,
            update_settle: 2.0,
            backend: BackendKind::Containers,
            swarm_publish_mode: SwarmPublishMode::Host,
            swarm_resolve_image: true,
            swarm_scale_timeout: 60,
            allowed_bind_paths: Vec::new(),
            event_ring: crate::feed::DEFAULT_RING_LEN,
        }
    }
}

impl AppConfig {
    /// Extracts and checks the connector's keys.
    ///
    /// # Errors
    /// A message naming the key that is missing its type or breaks its rule.
    pub fn from_figment(figment: &Figment) -> Result<Self, String> {
        let config: AppConfig = figment
            .extract()
            .map_err(|e| format!("configuration: {e}"))?;
        ServiceName::parse_field("instance", &config.instance)
            .map_err(|e| format!("configuration: {e}"))?;
        if config.docker_timeout == 0 {
            return Err("configuration: docker_timeout must be at least 1 second".into());
        }
        if config.scale_concurrency == 0 {
            return Err("configuration: scale_concurrency must be at least 1".into());
        }
        if config.update_parallelism == 0 {
            return Err("configuration: update_parallelism must be at least 1".into());
        }
        if !(0.0..=3600.0).contains(&config.update_settle) {
            return Err("configuration: update_settle must be between 0 and 3600 seconds".into());
        }
        if !(1..=3600).contains(&config.swarm_scale_timeout) {
            return Err(
                "configuration: swarm_scale_timeout must be between 1 and 3600 seconds".into(),
            );
        }
        if !(16..=1_000_000).contains(&config.event_ring) {
            return Err("configuration: event_ring must be between 16 and 1000000 events".into());
        }
        if !(4096..=1 << 30).contains(&config.journal_compaction_bytes) {
            return Err(
                "configuration: journal_compaction_bytes must be between 4096 and 1073741824"
                    .into(),
            );
        }
        if !(1..=300).contains(&config.header_timeout) {
            return Err("configuration: header_timeout must be between 1 and 300 seconds".into());
        }
        if !(1..=100_000).contains(&config.auth_failures_per_minute) {
            return Err(
                "configuration: auth_failures_per_minute must be between 1 and 100000".into(),
            );
        }
        if config.max_connections_per_address == 0 {
            return Err("configuration: max_connections_per_address must be at least 1".into());
        }
        if let Some(token) = &config.auth_token {
            token.check().map_err(|e| format!("configuration: {e}"))?;
        }
        Ok(config)
    }
}

/// A setting as written: figment parses `ROCKET_INSTANCE=123` as an integer
/// and `ROCKET_AUTH_TOKEN=true` as a boolean, but both are text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Signed(n) => n.to_string(),
            Scalar::Unsigned(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Reads a setting that is text even when it looks like a number or a boolean.
fn text<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    Ok(T::from(Scalar::deserialize(deserializer)?.into_text()))
}

/// [`text`] for a setting that may be absent.
fn optional_text<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    Ok(Option::<Scalar>::deserialize(deserializer)?.map(|s| T::from(s.into_text())))
}

/// Rocket's configuration sources with the connector's defaults underneath:
/// Rocket's defaults, then ours (port 7051, `log_level` normal even in
/// release builds, where Rocket's is critical; a shutdown grace long enough
/// for a scale), then the TOML file (`config_file`,
/// else `ROCKET_CONFIG`, else `Rocket.toml`), then `ROCKET_*` variables.
pub fn figment(config_file: Option<&Path>) -> Figment {
    let toml_file = match config_file {
        Some(path) => path.to_path_buf(),
        None => PathBuf::from(Env::var_or("ROCKET_CONFIG", "Rocket.toml")),
    };
    let profile = Profile::from_env_or("ROCKET_PROFILE", rocket::Config::DEFAULT_PROFILE);
    Figment::from(rocket::Config::default())
        .merge(Serialized::defaults(AppConfig::default()))
        // In the default profile, under the file's: a bare (key, value)
        // pair would be figment's global profile, which beats every
        // profile of the file, so `port` in Rocket.toml was ignored.
        .merge(Serialized::default("port", DEFAULT_PORT))
        .merge(Serialized::default(
            "log_level",
            rocket::config::LogLevel::Normal,
        ))
        .merge(Serialized::default(
            "shutdown.grace",
            SHUTDOWN_GRACE_SECONDS,
        ))
        .merge(Serialized::default(
            "shutdown.mercy",
            SHUTDOWN_MERCY_SECONDS,
        ))
        .merge(Toml::file(toml_file).nested())
        .merge(
            Env::prefixed("ROCKET_")
                .ignore(&["PROFILE", "CONFIG"])
                .global(),
        )
        .select(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_looking_text_settings_stay_text() {
        let figment = Figment::from(Serialized::defaults(AppConfig::default()))
            .merge(("instance", 123))
            .merge(("docker", true))
            .merge(("data_file", 1.5))
            .merge(("auth_token", 1234567890123456789_u64));
        let config = AppConfig::from_figment(&figment).unwrap();
        assert!(config.auth_token.is_some());
        assert_eq!(config.instance, "123");
        assert_eq!(config.docker, "true");
        assert_eq!(config.data_file, PathBuf::from("1.5"));
    }

    #[test]
    fn the_file_overrides_the_connectors_own_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Rocket.toml");
        std::fs::write(
            &file,
            "[default]\nport = 17446\nlog_level = \"critical\"\n\
             [default.shutdown]\ngrace = 3\nmercy = 1\n",
        )
        .unwrap();
        let rocket: rocket::Config = figment(Some(&file)).extract().unwrap();
        assert_eq!(rocket.port, 17446);
        assert_eq!(rocket.log_level, rocket::config::LogLevel::Critical);
        assert_eq!((rocket.shutdown.grace, rocket.shutdown.mercy), (3, 1));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let figment = figment(Some(Path::new("/nonexistent/Rocket.toml")));
        let rocket: rocket::Config = figment.extract().unwrap();
        assert_eq!(rocket.port, DEFAULT_PORT);
        assert_eq!(rocket.log_level, rocket::config::LogLevel::Normal);
        assert_eq!(rocket.shutdown.grace, SHUTDOWN_GRACE_SECONDS);
        assert_eq!(rocket.shutdown.mercy, SHUTDOWN_MERCY_SECONDS);
        let config = AppConfig::from_figment(&figment).unwrap();
        assert_eq!(config.instance, "default");
        assert_eq!(config.data_file, PathBuf::from("data/services.json"));
        assert!(config.auth_token.is_none());
        assert!(!config.allow_unauthenticated);
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.reconcile);
        assert_eq!(config.update_parallelism, 1);
        assert_eq!(config.update_settle, 2.0);
        assert_eq!(config.backend, BackendKind::Containers);
        assert_eq!(config.swarm_publish_mode, SwarmPublishMode::Host);
        assert!(config.swarm_resolve_image);
        assert_eq!(config.swarm_scale_timeout, 60);
    }

    #[test]
    fn backend_settings_are_read_and_bad_ones_refused_naming_the_key() {
        let defaults = || Figment::from(Serialized::defaults(AppConfig::default()));
        let config = AppConfig::from_figment(
            &defaults()
                .merge(("backend", "swarm"))
                .merge(("swarm_publish_mode", "ingress")),
        )
        .unwrap();
        assert_eq!(config.backend, BackendKind::Swarm);
        assert_eq!(config.swarm_publish_mode, SwarmPublishMode::Ingress);
        for (figment, key) in [
            (defaults().merge(("backend", "kubernetes")), "backend"),
            (
                defaults().merge(("swarm_publish_mode", "dnsrr")),
                "swarm_publish_mode",
            ),
            (
                defaults().merge(("swarm_scale_timeout", 0)),
                "swarm_scale_timeout",
            ),
        ] {
            let error = AppConfig::from_figment(&figment).unwrap_err();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn update_settings_out_of_range_are_refused_naming_the_key() {
        let defaults = || Figment::from(Serialized::defaults(AppConfig::default()));
        let refusals = [
            defaults().merge(("update_parallelism", 0)),
            defaults().merge(("update_settle", -1.0)),
            defaults().merge(("update_settle", f64::NAN)),
        ];
        for (figment, key) in
            refusals
                .iter()
                .zip(["update_parallelism", "update_settle", "update_settle"])
        {
            let error = AppConfig::from_figment(figment).unwrap_err();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn an_unknown_log_format_is_refused_naming_the_key() {
        let figment =
            Figment::from(Serialized::defaults(AppConfig::default())).merge(("log_format", "xml"));
        let error = AppConfig::from_figment(&figment).unwrap_err();
        assert!(
            error.contains("log_format") && error.contains("xml"),
            "{error}"
        );
    }
}
