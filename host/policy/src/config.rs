//! The config file: deserialised into typed keys (unknown and repeated keys refused), then
//! checked, tokens loaded. Every problem is one line that names the key and says what to do;
//! nothing is sent until the whole file is valid.

use crate::endpoint;
use crate::files::{self, FileError};
use crate::secret::{self, Secret, MAX_TOKEN_BYTES};
use crate::state::{self, StateSpec};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use soar_types::model::{Profile, UserRef};
use soar_types::user_ref::parse_user_ref;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use url::Url;

pub const DEFAULT_DEADLINE_MS: u64 = 60_000;
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 64;
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_RETRIES: u32 = 4;
pub const DEFAULT_RETRY_AFTER_CAP_MS: u64 = 60_000;
pub const DEFAULT_MAX_USERS_PER_ACTION: u64 = 100;
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u64 = 4;
/// ZIA documents a limit of 5 requests per second.
pub const ZIA_REQUESTS_PER_SECOND: f64 = 5.0;
/// ZIdentity documents a limit of 50 requests per second.
pub const ZIDENTITY_REQUESTS_PER_SECOND: f64 = 50.0;

/// Which SCIM service a provider is (config `profile`). The plugin speaks three dialects
/// ([`Profile`]); ZIdentity speaks plain SCIM and differs in its rate limit, which the host keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Zpa,
    Zia,
    Zidentity,
    Generic,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::Zpa, Service::Zia, Service::Zidentity, Service::Generic];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Zpa => "zpa",
            Service::Zia => "zia",
            Service::Zidentity => "zidentity",
            Service::Generic => "generic",
        }
    }

    /// The dialect the plugin speaks to it.
    pub fn plugin_profile(self) -> Profile {
        match self {
            Service::Zpa => Profile::Zpa,
            Service::Zia => Profile::Zia,
            Service::Zidentity | Service::Generic => Profile::Generic,
        }
    }

    /// The documented rate limit, when there is one.
    pub fn requests_per_second(self) -> Option<f64> {
        match self {
            Service::Zia => Some(ZIA_REQUESTS_PER_SECOND),
            Service::Zidentity => Some(ZIDENTITY_REQUESTS_PER_SECOND),
            Service::Zpa | Service::Generic => None,
        }
    }
}

impl<'de> Deserialize<'de> for Service {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Service::ALL.into_iter().find(|service| service.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = Service::ALL.iter().map(|service| service.as_str()).collect();
            serde::de::Error::custom(format!("\"{}\" is not one of {}", text.escape_debug(), known.join(", ")))
        })
    }
}
pub use crate::rate::{MAX_REQUESTS_PER_SECOND, MIN_REQUESTS_PER_SECOND};
/// The largest config, CA or users file read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The range a number setting (config key or command-line flag) must lie in: nothing beyond it
/// is accepted, so no arithmetic on it can wrap.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
}

pub const DEADLINE_MS: Bound = Bound { key: "deadline_ms", min: 1, max: 3_600_000 };
pub const RETRY_AFTER_CAP_MS: Bound = Bound { key: "retry_after_cap_ms", min: 0, max: 3_600_000 };
pub const CONNECT_TIMEOUT_MS: Bound = Bound { key: "connect_timeout_ms", min: 1, max: 600_000 };
pub const MAX_RETRIES: Bound = Bound { key: "max_retries", min: 0, max: 100 };
pub const MAX_USERS_PER_ACTION: Bound = Bound { key: "max_users_per_action", min: 1, max: 100_000 };
pub const MEMORY_LIMIT_MIB: Bound = Bound { key: "memory_limit_mib", min: 1, max: 4_096 };
pub const MAX_RESPONSE_BYTES: Bound = Bound { key: "max_response_bytes", min: 1, max: 1 << 30 };
pub const MAX_CONCURRENT_REQUESTS: Bound = Bound { key: "max_concurrent_requests", min: 1, max: 32 };

impl Bound {
    /// The value when it lies in the range; else one line that names `name` (the key, or the
    /// flag that set it) and the range.
    pub fn check(&self, name: &str, value: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(format!("{name} is {value}; give a whole number from {} to {}", self.min, self.max))
        }
    }

    fn optional(&self, value: Option<u64>) -> Result<Option<u64>, ConfigError> {
        value.map(|value| self.check(self.key, value).map_err(invalid)).transpose()
    }
}

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; pass an existing file with --config", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("config file {} is not valid JSON: {source}", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A key's value is wrong; the text names the key.
    #[error("{0}")]
    Invalid(String),
    #[error("config file {}: {error}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        error: Box<ConfigError>,
    },
}

/// `--idp` names no configured provider.
#[derive(Debug, thiserror::Error)]
#[error("--idp {name}: no identity provider has that name; configured: {}", configured.join(", "))]
pub struct UnknownProvider {
    pub name: String,
    pub configured: Vec<String>,
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// Limits that bound one invocation of the plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub deadline_ms: u64,
    pub memory_limit_mib: u64,
    pub max_response_bytes: u64,
    pub connect_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: DEFAULT_DEADLINE_MS,
            memory_limit_mib: DEFAULT_MEMORY_LIMIT_MIB,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub name: String,
    pub base_url: Url,
    pub restricted_group: Option<String>,
    pub restricted_group_id: Option<String>,
    pub token: Secret,
    /// The service, from `profile` or detected from the host.
    pub service: Service,
    /// The dialect the plugin speaks to it.
    pub profile: Profile,
    pub max_retries: u32,
    /// Host-side rate limit for this provider's origin (zia: 5 by default).
    pub requests_per_second: Option<f64>,
    /// Whether the base URL may resolve to a private (RFC 1918, ULA) address.
    pub allow_private_network: bool,
    /// Requests one action may have in flight to this provider at once.
    pub max_concurrent_requests: usize,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub providers: Vec<ProviderConfig>,
    pub allow_http: bool,
    pub limits: Limits,
    pub retry_after_cap_ms: u64,
    pub max_users_per_action: u64,
    pub cache_dir: Option<PathBuf>,
    pub plugin_sha256: Option<String>,
    /// Never added to the restricted group.
    pub protected_users: Vec<UserRef>,
    pub audit_log: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file` (DER), read and parsed when the config is loaded.
    pub ca_certificates: Vec<Vec<u8>>,
    /// From `proxy`; else the host falls back to `HTTPS_PROXY` / `NO_PROXY`.
    pub proxy: Option<ProxyConfig>,
    /// What of the proxy in use (configured or from the environment) must never be shown.
    pub proxy_secrets: Vec<Secret>,
    /// The restriction ledger; `None` when it names none and the user has no data folder.
    pub state: Option<StateSpec>,
    /// What is allowed but unwise (a token file others can read); the host logs them.
    pub warnings: Vec<String>,
}

/// The soar-host config file (README, "Config file"): the identity providers whose SCIM endpoints
/// hold the restricted group, and the host's limits. Unknown and repeated keys are refused;
/// relative paths resolve against the file's folder.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "soar-host config")]
struct ConfigFile {
    /// The identity providers whose SCIM endpoints hold the restricted group.
    #[schemars(length(min = 1))]
    #[schemars(example = providers_example())]
    identity_providers: Vec<ProviderEntry>,
    /// Plain http allowed, and only to loopback (127.0.0.0/8, ::1, localhost): for tests and local gateways.
    #[serde(default)]
    #[schemars(example = false)]
    allow_http: bool,
    /// The wall-clock limit of one action, in milliseconds.
    #[schemars(range(min = DEADLINE_MS.min, max = DEADLINE_MS.max), extend("default" = DEFAULT_DEADLINE_MS), example = 60_000)]
    deadline_ms: Option<u64>,
    /// The plugin's memory limit, in MiB.
    #[schemars(range(min = MEMORY_LIMIT_MIB.min, max = MEMORY_LIMIT_MIB.max), extend("default" = DEFAULT_MEMORY_LIMIT_MIB), example = 64)]
    memory_limit_mib: Option<u64>,
    /// The largest response (and request) body, in bytes.
    #[schemars(range(min = MAX_RESPONSE_BYTES.min, max = MAX_RESPONSE_BYTES.max), extend("default" = DEFAULT_MAX_RESPONSE_BYTES), example = 8_388_608)]
    max_response_bytes: Option<u64>,
    /// The TCP (and proxy) connect limit, in milliseconds.
    #[schemars(range(min = CONNECT_TIMEOUT_MS.min, max = CONNECT_TIMEOUT_MS.max), extend("default" = DEFAULT_CONNECT_TIMEOUT_MS), example = 10_000)]
    connect_timeout_ms: Option<u64>,
    /// Retries of 429, 502, 503, 504 and connection failures, with backoff and Retry-After (every provider's default).
    #[schemars(range(min = MAX_RETRIES.min, max = MAX_RETRIES.max), extend("default" = DEFAULT_MAX_RETRIES), example = 4)]
    max_retries: Option<u32>,
    /// Requests one action may have in flight to a provider at once (every provider's default).
    #[schemars(range(min = MAX_CONCURRENT_REQUESTS.min, max = MAX_CONCURRENT_REQUESTS.max), extend("default" = DEFAULT_MAX_CONCURRENT_REQUESTS), example = 4)]
    max_concurrent_requests: Option<u64>,
    /// The longest Retry-After wait honoured, in milliseconds.
    #[schemars(range(min = RETRY_AFTER_CAP_MS.min, max = RETRY_AFTER_CAP_MS.max), extend("default" = DEFAULT_RETRY_AFTER_CAP_MS), example = 60_000)]
    retry_after_cap_ms: Option<u64>,
    /// Calls naming more users are refused before anything is sent.
    #[schemars(range(min = MAX_USERS_PER_ACTION.min, max = MAX_USERS_PER_ACTION.max), extend("default" = DEFAULT_MAX_USERS_PER_ACTION), example = 100)]
    max_users_per_action: Option<u64>,
    /// The compiled-component cache and the lock and rate-limit files shared with other host processes (default: the user's cache folder).
    #[schemars(length(min = 1), example = "/var/cache/soar-host")]
    cache_dir: Option<String>,
    /// Refuse a plugin with another SHA-256 (64 hex digits).
    #[schemars(regex(pattern = r"^[0-9A-Fa-f]{64}$"), example = "<sha256sum of the .wasm file>")]
    plugin_sha256: Option<String>,
    /// Users never added to the restricted group (break-glass and administrator accounts): emails, id:SCIM_ID or external:EXTERNAL_ID.
    #[serde(default)]
    #[schemars(example = protected_users_example())]
    protected_users: Vec<String>,
    /// A JSON-lines audit trail of every change and dry-run decision.
    #[schemars(length(min = 1), example = "/var/log/soar-host/audit.jsonl")]
    audit_log: Option<String>,
    /// Extra trusted CA certificates (PEM), added to the system's roots.
    #[schemars(length(min = 1), example = "/etc/soar-host/corp-ca.pem")]
    ca_file: Option<String>,
    /// An HTTPS proxy, http://[user:password@]host:port (else HTTPS_PROXY / NO_PROXY).
    #[schemars(length(min = 1), example = "http://proxy.corp.example:3128")]
    proxy: Option<String>,
    /// The restriction ledger: sqlite:PATH (default: restrictions.sqlite3 under the user's data folder) or postgres://USER@HOST:PORT/DB (no password here; PostgreSQL then also carries the change lock and the rate limit).
    #[schemars(length(min = 1), example = "postgres://soar@db.corp.example:5432/soar")]
    state: Option<String>,
    /// The environment variable holding the PostgreSQL password of state (else PGPASSWORD, else ~/.pgpass).
    #[schemars(length(min = 1), example = &"SOAR_STATE_PASSWORD")]
    state_password_env: Option<String>,
}

/// One identity provider: its SCIM endpoint, restricted group and where its token is.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct ProviderEntry {
    /// A unique name for the identity provider.
    #[schemars(regex(pattern = r"^[a-z0-9_-]+$"), example = "entra-prod")]
    name: String,
    /// The SCIM Service Provider Endpoint shown in the ZPA admin portal (https; no query, fragment or user info).
    #[schemars(url, example = "https://scim1.private.zscaler.com/scim/1/144118148382065427/v2")]
    base_url: String,
    /// The restricted group's displayName (give this or restricted_group_id).
    #[schemars(length(min = 1), example = "ZPA Restricted Users")]
    restricted_group: Option<String>,
    /// The restricted group's SCIM id (give this or restricted_group).
    #[schemars(length(min = 1), example = "9100001")]
    restricted_group_id: Option<String>,
    /// The environment variable holding the SCIM bearer token (give this or token_file).
    #[schemars(length(min = 1), example = &"ZPA_SCIM_TOKEN")]
    token_env: Option<String>,
    /// A file holding the SCIM bearer token, owner-only (give this or token_env).
    #[schemars(length(min = 1), example = "/etc/soar-host/zpa.token")]
    token_file: Option<String>,
    /// The kind of SCIM service; detected from base_url when not given.
    #[schemars(schema_with = "profile_schema", example = &"zpa")]
    profile: Option<Service>,
    /// Retries of retryable failures for this provider (overrides the top-level max_retries).
    #[schemars(range(min = MAX_RETRIES.min, max = MAX_RETRIES.max), extend("default" = DEFAULT_MAX_RETRIES), example = 4)]
    max_retries: Option<u32>,
    /// Requests to the provider's origin are spaced at this rate, shared by every host process on the machine (zia: 5 by default).
    #[schemars(extend("minimum" = MIN_REQUESTS_PER_SECOND, "maximum" = MAX_REQUESTS_PER_SECOND), example = 5)]
    requests_per_second: Option<f64>,
    /// Requests one action may have in flight to this provider at once.
    #[schemars(range(min = MAX_CONCURRENT_REQUESTS.min, max = MAX_CONCURRENT_REQUESTS.max), extend("default" = DEFAULT_MAX_CONCURRENT_REQUESTS), example = 4)]
    max_concurrent_requests: Option<u64>,
    /// Allow a base URL that resolves to a private (RFC 1918, ULA) address: on-premises SCIM gateways.
    #[serde(default)]
    #[schemars(example = false)]
    allow_private_network: bool,
}

fn providers_example() -> Value {
    json!([{"name": "entra-prod", "base_url": "https://scim1.private.zscaler.com/scim/1/144118148382065427/v2",
            "restricted_group": "ZPA Restricted Users", "token_env": "ZPA_SCIM_TOKEN"}])
}

fn protected_users_example() -> Value {
    json!(["breakglass@corp.example"])
}

/// `profile`'s schema, from the profiles the types name.
fn profile_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Service::ALL.iter().map(|service| service.as_str()).collect();
    schemars::json_schema!({"type": ["string", "null"], "enum": names})
}

/// The config file's JSON Schema (`config.schema.json` is this, committed).
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(ConfigFile)).expect("a schema serialises")
}

/// Where tokens named by `token_env` come from (the process environment, or a test's map).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// A deserialisation error as one line that names the key.
fn describe(error: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let text = inner.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    let within = |key: &str| if path == "." { key.to_string() } else { format!("{path}.{key}") };
    let quoted = |text: &str| text.split('`').nth(1).unwrap_or_default().to_string();
    let message = if let Some(rest) = text.strip_prefix("unknown field ") {
        let expected = rest.split_once(", expected ").map(|(_, known)| known.replace('`', "")).unwrap_or_default();
        format!(
            "unknown key \"{path}\"; remove it or fix its spelling (known keys: {})",
            expected.trim_start_matches("one of ")
        )
    } else if text.starts_with("missing field ") {
        format!("{} is missing", within(&quoted(text)))
    } else if text.starts_with("duplicate field ") {
        format!("{} is given twice; keep one", within(&quoted(text)))
    } else {
        format!("{path}: {}", without_the_value(text))
    };
    invalid(message)
}

/// serde's "invalid type: string \"...\", expected ..." without the value, which may be a secret
/// pasted into the wrong key: "invalid type: a string, expected ...".
fn without_the_value(text: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = text.strip_prefix(prefix) else { continue };
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let kind = ["string", "integer", "floating point", "boolean", "character", "byte array", "map", "sequence"]
            .into_iter()
            .find(|kind| found.starts_with(kind))
            .map(|kind| match kind {
                "integer" | "floating point" => "a number".to_string(),
                "map" => "an object".to_string(),
                "sequence" => "a list".to_string(),
                other => format!("a {other}"),
            })
            .unwrap_or_else(|| "a value".into());
        let expected = if expected.is_empty() { String::new() } else { format!(", expected {expected}") };
        return format!("{prefix}{kind}{expected}");
    }
    text.to_string()
}

impl Config {
    /// Reads and checks a config file; relative paths in it resolve against its folder.
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let (text, _) = files::read_text(path, MAX_CONFIG_BYTES)
            .map_err(|source| ConfigError::Unreadable { path: path.to_path_buf(), source })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let value: Value =
            serde_json::from_str(&text).map_err(|source| ConfigError::Syntax { path: path.to_path_buf(), source })?;
        // The value shows the shape; the text, read again, shows repeated keys.
        let checked = check_shape(&value)
            .and_then(|()| {
                serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text)).map_err(describe)
            })
            .and_then(|file| Config::check(file, folder, &TokenSources { env, given: &BTreeMap::new() }));
        checked.map_err(|error| ConfigError::InFile { path: path.to_path_buf(), error: Box::new(error) })
    }

    /// Checks a config given as a JSON value (relative paths resolve against `folder`).
    pub fn from_value(value: &Value, folder: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        Config::from_value_with_tokens(value, folder, env, &BTreeMap::new())
    }

    /// [`Config::from_value`], with the tokens of some providers given by the caller (a
    /// platform's vault) instead of read from `token_env` or `token_file`: such a provider names
    /// neither.
    pub fn from_value_with_tokens(
        value: &Value,
        folder: &Path,
        env: &dyn Environment,
        tokens: &BTreeMap<String, Secret>,
    ) -> Result<Config, ConfigError> {
        check_shape(value)?;
        let file: ConfigFile = serde_path_to_error::deserialize(value).map_err(describe)?;
        if let Some(unknown) = tokens.keys().find(|name| !file.identity_providers.iter().any(|p| &p.name == *name)) {
            return Err(invalid(format!(
                "tokens names \"{}\", but no identity provider has that name",
                unknown.escape_debug()
            )));
        }
        Config::check(file, folder, &TokenSources { env, given: tokens })
    }

    fn check(file: ConfigFile, folder: &Path, tokens: &TokenSources) -> Result<Config, ConfigError> {
        if file.identity_providers.is_empty() {
            return Err(invalid("identity_providers is empty; list at least one provider"));
        }
        let max_retries = MAX_RETRIES.optional(file.max_retries.map(u64::from))?.unwrap_or(DEFAULT_MAX_RETRIES.into());
        let mut warnings = Vec::new();
        let mut providers: Vec<ProviderConfig> = Vec::new();
        for (index, entry) in file.identity_providers.into_iter().enumerate() {
            let max_concurrent_requests = MAX_CONCURRENT_REQUESTS
                .optional(file.max_concurrent_requests)?
                .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS);
            let defaults = ProviderDefaults {
                allow_http: file.allow_http,
                max_retries: max_retries as u32,
                max_concurrent_requests,
            };
            let provider = check_provider(entry, index, defaults, folder, tokens, &mut warnings)?;
            if providers.iter().any(|p| p.name == provider.name) {
                return Err(invalid(format!(
                    "identity_providers[{index}].name \"{}\" is used twice; names must be unique",
                    provider.name
                )));
            }
            providers.push(provider);
        }
        let limits = Limits {
            deadline_ms: DEADLINE_MS.optional(file.deadline_ms)?.unwrap_or(DEFAULT_DEADLINE_MS),
            memory_limit_mib: MEMORY_LIMIT_MIB.optional(file.memory_limit_mib)?.unwrap_or(DEFAULT_MEMORY_LIMIT_MIB),
            max_response_bytes: MAX_RESPONSE_BYTES
                .optional(file.max_response_bytes)?
                .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            connect_timeout_ms: CONNECT_TIMEOUT_MS
                .optional(file.connect_timeout_ms)?
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
        };
        let plugin_sha256 = file
            .plugin_sha256
            .map(|hash| {
                let hash = hash.to_ascii_lowercase();
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(hash)
                } else {
                    Err(invalid("plugin_sha256 must be 64 hex digits (sha256sum of the .wasm file)"))
                }
            })
            .transpose()?;
        let protected_users = file
            .protected_users
            .iter()
            .enumerate()
            .map(|(index, text)| {
                parse_user_ref(text.trim()).map_err(|why| invalid(format!("protected_users[{index}]: {why}")))
            })
            .collect::<Result<_, _>>()?;
        let ca_file = non_empty("ca_file", file.ca_file)?.map(|file| folder.join(file));
        let ca_certificates = ca_file.as_deref().map(read_certificates).transpose()?.unwrap_or_default();
        let proxy = non_empty("proxy", file.proxy)?.map(|text| parse_proxy(&text)).transpose()?;
        let proxy_secrets = proxy_secrets(proxy.as_ref(), tokens.env);
        let password_env = non_empty("state_password_env", file.state_password_env)?;
        let state = match non_empty("state", file.state)? {
            Some(text) => Some(state::parse(&text, folder, password_env).map_err(invalid)?),
            None if password_env.is_some() => {
                return Err(invalid("state_password_env is set but state names no PostgreSQL server; give state"))
            }
            None => state::default_sqlite(tokens.env).map(StateSpec::Sqlite),
        };
        Ok(Config {
            providers,
            allow_http: file.allow_http,
            limits,
            retry_after_cap_ms: RETRY_AFTER_CAP_MS
                .optional(file.retry_after_cap_ms)?
                .unwrap_or(DEFAULT_RETRY_AFTER_CAP_MS),
            max_users_per_action: MAX_USERS_PER_ACTION
                .optional(file.max_users_per_action)?
                .unwrap_or(DEFAULT_MAX_USERS_PER_ACTION),
            cache_dir: non_empty("cache_dir", file.cache_dir)?.map(|dir| folder.join(dir)),
            plugin_sha256,
            protected_users,
            audit_log: non_empty("audit_log", file.audit_log)?.map(|path| folder.join(path)),
            ca_file,
            ca_certificates,
            proxy,
            proxy_secrets,
            state,
            warnings,
        })
    }

    /// The providers an action runs on: all, or the one `--idp` names.
    pub fn select(&self, idp: Option<&str>) -> Result<Vec<&ProviderConfig>, UnknownProvider> {
        match idp {
            None => Ok(self.providers.iter().collect()),
            Some(name) => match self.providers.iter().find(|p| p.name == name) {
                Some(provider) => Ok(vec![provider]),
                None => Err(UnknownProvider {
                    name: name.to_string(),
                    configured: self.providers.iter().map(|p| p.name.clone()).collect(),
                }),
            },
        }
    }
}

/// Objects where objects belong (serde would also read a list into a struct, field by field).
fn check_shape(value: &Value) -> Result<(), ConfigError> {
    if !value.is_object() {
        return Err(invalid("the config must be a JSON object"));
    }
    if let Some(Value::Array(providers)) = value.get("identity_providers") {
        if let Some(index) = providers.iter().position(|entry| !entry.is_object()) {
            return Err(invalid(format!("identity_providers[{index}] must be an object")));
        }
    }
    Ok(())
}

/// The certificates of a PEM file; a file with none is refused now, not at the first request.
fn read_certificates(path: &Path) -> Result<Vec<Vec<u8>>, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let shown = path.display();
    let (pem, _) = files::read_regular(path, MAX_CONFIG_BYTES)
        .map_err(|e| invalid(format!("ca_file {shown}: {e}; give a PEM file of CA certificates")))?;
    let certificates: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("ca_file {shown} is not valid PEM: {e}")))?
        .into_iter()
        .map(|der| der.to_vec())
        .collect();
    if certificates.is_empty() {
        return Err(invalid(format!("ca_file {shown} holds no PEM certificate; give the CA's certificate in PEM")));
    }
    Ok(certificates)
}

/// A string setting that, when given, must hold something.
fn non_empty(key: &str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(text) if text.trim().is_empty() => Err(invalid(format!("{key} is empty"))),
        other => Ok(other),
    }
}

/// What providers inherit from the top of the config.
#[derive(Clone, Copy)]
struct ProviderDefaults {
    allow_http: bool,
    max_retries: u32,
    max_concurrent_requests: u64,
}

/// Where providers' tokens come from: the caller's own for some, the environment or a file for
/// the others.
struct TokenSources<'a> {
    env: &'a dyn Environment,
    given: &'a BTreeMap<String, Secret>,
}

fn check_provider(
    entry: ProviderEntry,
    index: usize,
    defaults: ProviderDefaults,
    folder: &Path,
    tokens: &TokenSources,
    warnings: &mut Vec<String>,
) -> Result<ProviderConfig, ConfigError> {
    let name = entry.name;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(invalid(format!(
            "identity_providers[{index}].name \"{name}\" may hold only a-z, 0-9, '-' and '_'"
        )));
    }
    let at = format!("identity_providers[{index}] ({name}): ");
    let in_provider = |key: &str, value: Option<String>| non_empty(key, value).map_err(|e| invalid(format!("{at}{e}")));
    let base_url =
        check_base_url(&entry.base_url, defaults.allow_http).map_err(|why| invalid(format!("{at}base_url {why}")))?;
    let restricted_group = in_provider("restricted_group", entry.restricted_group)?;
    let restricted_group_id = in_provider("restricted_group_id", entry.restricted_group_id)?;
    if let Some(problem) = restricted_group_id.as_deref().and_then(endpoint::id_problem) {
        return Err(invalid(format!("{at}restricted_group_id {problem}; SCIM ids never do: check the id")));
    }
    if restricted_group.is_none() && restricted_group_id.is_none() {
        return Err(invalid(format!(
            "{at}give restricted_group (the group's displayName) or restricted_group_id (its SCIM id)"
        )));
    }
    let token_env = in_provider("token_env", entry.token_env)?;
    let token_file = in_provider("token_file", entry.token_file)?;
    let token = match (tokens.given.get(&name), token_env, token_file) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(invalid(format!(
                "{at}its token is given by the caller; remove token_env and token_file from this provider"
            )))
        }
        (Some(given), None, None) => match secret::token_problem(given.expose()) {
            Some(problem) => Err(problem),
            None => Ok(given.clone()),
        },
        (None, Some(_), Some(_)) => return Err(invalid(format!("{at}give token_env or token_file, not both"))),
        (None, None, None) => {
            return Err(invalid(format!(
                "{at}no token: set token_env (an environment variable holding the SCIM bearer token) or token_file"
            )))
        }
        (None, Some(name), None) => load_token(&TokenSource::Env(name), tokens.env, warnings),
        (None, None, Some(file)) => load_token(&TokenSource::File(folder.join(file)), tokens.env, warnings),
    }
    .map_err(|why| invalid(format!("{at}{why}")))?;
    let service = entry.profile.unwrap_or_else(|| detect_profile(&base_url));
    let requests_per_second = match entry.requests_per_second {
        None => service.requests_per_second(),
        Some(rate) if (MIN_REQUESTS_PER_SECOND..=MAX_REQUESTS_PER_SECOND).contains(&rate) => Some(rate),
        Some(rate) => {
            return Err(invalid(format!(
                "{at}requests_per_second is {rate}; give a number from {MIN_REQUESTS_PER_SECOND} to \
                 {MAX_REQUESTS_PER_SECOND} (a SCIM tenant that takes fewer than one request a second serves no playbook)"
            )))
        }
    };
    let max_retries = match entry.max_retries {
        Some(retries) => {
            MAX_RETRIES.check("max_retries", retries.into()).map_err(|why| invalid(format!("{at}{why}")))? as u32
        }
        None => defaults.max_retries,
    };
    Ok(ProviderConfig {
        name,
        base_url,
        restricted_group,
        restricted_group_id,
        token,
        service,
        profile: service.plugin_profile(),
        max_retries,
        requests_per_second,
        allow_private_network: entry.allow_private_network,
        max_concurrent_requests: match entry.max_concurrent_requests {
            Some(limit) => MAX_CONCURRENT_REQUESTS
                .check("max_concurrent_requests", limit)
                .map_err(|why| invalid(format!("{at}{why}")))?,
            None => defaults.max_concurrent_requests,
        } as usize,
    })
}

/// An HTTPS proxy: its full URL for the HTTP client (credentials included, so kept secret) and
/// the same URL with the credentials hidden, for messages. `credentials` is `user:password`;
/// the password alone is kept out of every output too ([`ProxyConfig::secrets`]).
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub url: Secret,
    pub shown: String,
    pub credentials: Option<Secret>,
}

impl ProxyConfig {
    /// What of the proxy is secret: `user:password`, and the password alone.
    pub fn secrets(&self) -> Vec<Secret> {
        let Some(credentials) = &self.credentials else { return Vec::new() };
        let password = credentials.expose().split_once(':').map(|(_, password)| password).unwrap_or_default();
        let mut secrets = vec![credentials.clone()];
        if !password.is_empty() {
            secrets.push(Secret::new(password));
        }
        secrets
    }
}

/// The variables a proxy may come from when the config names none (the HTTP client reads them).
const PROXY_VARIABLES: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"];

/// The secrets of every proxy the host may use: the configured one, else those the environment
/// names (whose credentials a proxy's error could otherwise echo).
fn proxy_secrets(configured: Option<&ProxyConfig>, env: &dyn Environment) -> Vec<Secret> {
    match configured {
        Some(proxy) => proxy.secrets(),
        None => PROXY_VARIABLES
            .iter()
            .filter_map(|name| env.var(name))
            .filter_map(|text| parse_proxy(&text).ok())
            .flat_map(|proxy| proxy.secrets())
            .collect(),
    }
}

/// `http://[user:password@]host:port` (or https); credentials are kept as secrets.
fn parse_proxy(text: &str) -> Result<ProxyConfig, ConfigError> {
    let (scheme, rest) = text.split_once("://").ok_or_else(|| invalid("proxy is not a URL (no scheme://)"))?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (credentials, host) = match rest[..authority_end].rsplit_once('@') {
        Some((credentials, host)) => (Some(credentials), host),
        None => (None, &rest[..authority_end]),
    };
    let shown = format!("{scheme}://{}{host}", if credentials.is_some() { "<redacted>@" } else { "" });
    endpoint::parse(&format!("{scheme}://{host}")).map_err(|why| invalid(format!("proxy \"{shown}\" {why}")))?;
    if !rest[authority_end..].trim_matches('/').is_empty() {
        return Err(invalid(format!("proxy \"{shown}\" has a path; give scheme://host:port")));
    }
    Ok(ProxyConfig {
        url: Secret::new(text.trim_end_matches('/')),
        shown,
        credentials: credentials.filter(|c| !c.is_empty()).map(Secret::new),
    })
}

/// A base URL: https (or http to loopback with `allow_http`), no query, fragment, user info or
/// path that could be read as another. The error is the problem, for the caller to prefix.
fn check_base_url(text: &str, allow_http: bool) -> Result<Url, String> {
    // Shown without user info, query or fragment: a password or an access token pasted there
    // must not come back in the refusal.
    let shown = endpoint::shown(text);
    let parsed = endpoint::parse(text).map_err(|why| format!("\"{shown}\" {why}"))?;
    if parsed.query().is_some() {
        return Err(format!("\"{shown}\" has a query (?...); give the SCIM endpoint without it"));
    }
    if parsed.scheme() == "http" {
        if !endpoint::names_loopback(&parsed) {
            return Err(format!("\"{shown}\" uses plain http to a host that is not loopback; use https"));
        }
        if !allow_http {
            return Err(format!("\"{shown}\" uses plain http; set \"allow_http\": true (loopback only) or use https"));
        }
    }
    Ok(parsed)
}

/// Where a provider's token is read.
enum TokenSource {
    Env(String),
    File(PathBuf),
}

/// The token, checked as RFC 6750 allows it. A token file must be a regular file (a link to
/// one is fine: secrets are mounted that way); its trailing line break is trimmed.
fn load_token(source: &TokenSource, env: &dyn Environment, warnings: &mut Vec<String>) -> Result<Secret, String> {
    // Neither value is ever quoted: an operator may have pasted the token itself there.
    let token = match source {
        TokenSource::Env(name) if !is_variable_name(name) => {
            return Err("token_env must name an environment variable (letters, digits and '_'); what it holds \
                        looks like a value instead, perhaps the token itself: export the token in a variable and \
                        name that variable here"
                .into())
        }
        TokenSource::Env(name) => env.var(name).ok_or_else(|| {
            "token_env names an environment variable that is not set; export the SCIM bearer token in the \
             variable it names"
                .to_string()
        })?,
        TokenSource::File(path) => {
            // Room for the line break a text editor adds.
            let (text, metadata) = files::read_text(path, MAX_TOKEN_BYTES as u64 + 2).map_err(|e| {
                format!("cannot read the file token_file names: it {e}; name a readable file holding the token")
            })?;
            if files::shared_with_others(&metadata) {
                warnings.push(format!(
                    "token_file {} can be read by other users than its owner: chmod 600 it",
                    path.display()
                ));
            }
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_string()
        }
    };
    if let Some(problem) = secret::token_problem(&token) {
        return Err(problem);
    }
    Ok(Secret::new(token))
}

/// Whether `name` can be an environment variable's name as shells write them.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `*.private.zscaler.com`, `*.zpa*.net`, `*.zpagov.*` → zpa; `scim.*` on a Zscaler cloud → zia;
/// `*.zslogin.net` → zidentity.
pub fn detect_profile(base_url: &Url) -> Service {
    let Some(url::Host::Domain(name)) = base_url.host() else {
        return Service::Generic;
    };
    let name = name.trim_end_matches('.');
    let labels: Vec<&str> = name.split('.').collect();
    let n = labels.len();
    let zpa = name.ends_with(".private.zscaler.com")
        || (n >= 3 && labels[n - 1] == "net" && labels[n - 2].starts_with("zpa"))
        || (n >= 3 && labels[n - 2] == "zpagov");
    if zpa {
        return Service::Zpa;
    }
    if n >= 3 && labels[n - 2] == "zslogin" && labels[n - 1] == "net" {
        return Service::Zidentity;
    }
    let zscaler_cloud = n >= 3 && (labels[n - 2].starts_with("zscaler") || labels[n - 2] == "zscloud");
    if labels[0] == "scim" && zscaler_cloud {
        return Service::Zia;
    }
    Service::Generic
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "secret-token".to_string())
    }

    fn load(value: Value) -> Result<Config, String> {
        Config::from_value(&value, Path::new("."), &env).map_err(|e| e.to_string())
    }

    fn provider(extra: Value) -> Value {
        let mut base = json!({"name": "p", "base_url": "https://scim1.private.zscaler.com/scim/1/1/v2",
                              "restricted_group": "G", "token_env": "TOKEN"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    #[test]
    fn loads_a_minimal_config_with_defaults() {
        let config = load(json!({"identity_providers": [provider(json!({}))]})).unwrap();
        let p = &config.providers[0];
        assert_eq!((p.service, p.profile), (Service::Zpa, Profile::Zpa));
        assert_eq!(p.token.expose(), "secret-token");
        assert_eq!(p.max_retries, DEFAULT_MAX_RETRIES);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn names_what_is_wrong() {
        for (value, why) in [
            (json!({"identity_providers": [provider(json!({}))], "colour": 1}), "unknown key \"colour\""),
            (
                json!({"identity_providers": [provider(json!({"tokenenv": "X"}))]}),
                "unknown key \"identity_providers[0].tokenenv\"",
            ),
            (json!({"identity_providers": []}), "identity_providers is empty"),
            (json!({}), "identity_providers is missing"),
            (json!({"identity_providers": [provider(json!({"name": null}))]}), "identity_providers[0].name is missing"),
            (json!({"identity_providers": [provider(json!({"name": "Bad Name"}))]}), "may hold only"),
            (json!({"identity_providers": [provider(json!({})), provider(json!({}))]}), "used twice"),
            (json!({"identity_providers": [provider(json!({"base_url": "https://h.example/v2?x=1"}))]}), "has a query"),
            (json!({"identity_providers": [provider(json!({"base_url": "http://h.example/v2"}))]}), "not loopback"),
            (json!({"identity_providers": [provider(json!({"base_url": "http://127.0.0.1:1/v2"}))]}), "allow_http"),
            (
                json!({"identity_providers": [provider(json!({"token_env": "MISSING"}))]}),
                "token_env names an environment variable that is not set",
            ),
            (json!({"identity_providers": [provider(json!({"token_env": null}))]}), "no token"),
            (json!({"identity_providers": [provider(json!({"token_file": "t"}))]}), "not both"),
            (json!({"identity_providers": [provider(json!({"restricted_group": null}))]}), "restricted_group_id"),
            (json!({"identity_providers": [provider(json!({"profile": "okta"}))]}), "not one of"),
            (
                json!({"identity_providers": [provider(json!({}))], "deadline_ms": 0}),
                "deadline_ms is 0; give a whole number from 1 to 3600000",
            ),
            (json!({"identity_providers": [provider(json!({}))], "deadline_ms": 3_600_001}), "deadline_ms is 3600001"),
            (json!({"identity_providers": [provider(json!({}))], "deadline_ms": u64::MAX}), "from 1 to 3600000"),
            (
                json!({"identity_providers": [provider(json!({}))], "retry_after_cap_ms": 3_600_001}),
                "retry_after_cap_ms is 3600001",
            ),
            (
                json!({"identity_providers": [provider(json!({}))], "connect_timeout_ms": 600_001}),
                "connect_timeout_ms is 600001",
            ),
            (json!({"identity_providers": [provider(json!({}))], "max_retries": 101}), "max_retries is 101"),
            (json!({"identity_providers": [provider(json!({"max_retries": 101}))]}), "max_retries is 101"),
            (
                json!({"identity_providers": [provider(json!({}))], "max_users_per_action": 100_001}),
                "max_users_per_action is 100001",
            ),
            (
                json!({"identity_providers": [provider(json!({}))], "memory_limit_mib": 4097}),
                "memory_limit_mib is 4097",
            ),
            (
                json!({"identity_providers": [provider(json!({}))], "max_concurrent_requests": 0}),
                "max_concurrent_requests is 0; give a whole number from 1 to 32",
            ),
            (
                json!({"identity_providers": [provider(json!({"max_concurrent_requests": 33}))]}),
                "max_concurrent_requests is 33",
            ),
            (
                json!({"identity_providers": [provider(json!({}))], "max_response_bytes": 1_073_741_825u64}),
                "max_response_bytes is 1073741825",
            ),
            (
                json!({"identity_providers": [provider(json!({"requests_per_second": 10_001}))]}),
                "requests_per_second is 10001",
            ),
            (json!({"identity_providers": [provider(json!({"requests_per_second": 0}))]}), "requests_per_second is 0"),
            (
                json!({"identity_providers": [provider(json!({"requests_per_second": 1e-6}))]}),
                "requests_per_second is 0.000001; give a number from 1 to 10000",
            ),
            (json!({"identity_providers": [provider(json!({"requests_per_second": 1e-300}))]}), "give a number from 1"),
            (
                json!({"identity_providers": [provider(json!({"restricted_group_id": "../x"}))]}),
                "restricted_group_id contains a slash",
            ),
            (json!({"identity_providers": [provider(json!({}))], "deadline_ms": "soon"}), "deadline_ms: invalid type"),
            (
                json!({"identity_providers": [provider(json!({"max_retries": -1}))]}),
                "identity_providers[0].max_retries",
            ),
            (json!([1]), "must be a JSON object"),
        ] {
            let err = load(value).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn repeated_keys_in_a_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("soar-config-dup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let entry = provider(json!({})).to_string();
        std::fs::write(&path, format!("{{\"identity_providers\": [{entry}], \"deadline_ms\": 1, \"deadline_ms\": 2}}"))
            .unwrap();
        let err = Config::load(&path, &env).unwrap_err().to_string();
        assert!(err.contains("deadline_ms is given twice"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn plain_http_only_to_loopback_and_only_when_allowed() {
        let value = json!({"allow_http": true, "identity_providers": [provider(json!({"base_url": "http://127.0.0.1:8080/scim/v2"}))]});
        assert_eq!(load(value).unwrap().providers[0].service, Service::Generic);
    }

    #[test]
    fn detects_profiles_from_the_host() {
        let profile = |host: &str| detect_profile(&Url::parse(&format!("https://{host}/v2")).unwrap());
        assert_eq!(profile("scim1.private.zscaler.com"), Service::Zpa);
        assert_eq!(profile("scim1.zpatwo.net"), Service::Zpa);
        assert_eq!(profile("scim1.zpabeta.net"), Service::Zpa);
        assert_eq!(profile("scim1.zpagov.us"), Service::Zpa);
        assert_eq!(profile("scim.zscalertwo.net"), Service::Zia);
        assert_eq!(profile("scim.zscloud.net"), Service::Zia);
        assert_eq!(profile("acme.zslogin.net"), Service::Zidentity);
        assert_eq!(profile("scim.example.com"), Service::Generic);
        assert_eq!(profile("zscaler.example.com"), Service::Generic);
        assert_eq!(profile("zslogin.net.example.com"), Service::Generic);
    }

    #[test]
    fn a_zidentity_tenant_is_spaced_at_its_documented_rate_and_spoken_to_as_plain_scim() {
        let base_url = "https://acme.zslogin.net/scim/24326813";
        let loaded = load(json!({"identity_providers": [provider(json!({"base_url": base_url}))]})).unwrap();
        let zidentity = &loaded.providers[0];
        assert_eq!((zidentity.service, zidentity.service.plugin_profile()), (Service::Zidentity, Profile::Generic));
        assert_eq!(zidentity.requests_per_second, Some(50.0));
        let chosen =
            json!({"identity_providers": [provider(json!({"base_url": base_url, "requests_per_second": 20}))]});
        assert_eq!(load(chosen).unwrap().providers[0].requests_per_second, Some(20.0));
        let named = json!({"identity_providers": [provider(json!({"base_url": "https://scim.example.com/v2", "profile": "zidentity"}))]});
        assert_eq!(load(named).unwrap().providers[0].requests_per_second, Some(50.0));
    }

    #[test]
    fn the_committed_config_schema_is_the_one_the_types_generate() {
        let committed_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.schema.json");
        let generated = format!("{}\n", serde_json::to_string_pretty(&json_schema()).unwrap());
        if std::env::var_os("SOAR_WRITE_SCHEMA").is_some() {
            std::fs::write(&committed_path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
        assert!(
            committed == generated,
            "config.schema.json differs from the config types: regenerate it with \
             SOAR_WRITE_SCHEMA=1 cargo test -p soar-host-policy the_committed_config_schema"
        );
    }
}
