//! The config file: read, checked key by key, tokens loaded. Every problem is one line that
//! names the key and says what to do; nothing is sent until the whole file is valid.

use crate::secret::Secret;
use crate::url::{self, HttpUrl, Scheme, UrlHost};
use soar_types::model::{Profile, UserRef};
use soar_types::user_ref::parse_user_ref;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub const DEFAULT_DEADLINE_MS: u64 = 60_000;
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 64;
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_RETRIES: u32 = 4;
pub const DEFAULT_RETRY_AFTER_CAP_MS: u64 = 60_000;
pub const DEFAULT_MAX_USERS_PER_ACTION: u64 = 100;
/// ZIA documents a limit of 5 requests per second.
pub const ZIA_REQUESTS_PER_SECOND: f64 = 5.0;

const TOP_KEYS: &[&str] = &[
    "identity_providers",
    "allow_http",
    "deadline_ms",
    "memory_limit_mib",
    "max_response_bytes",
    "connect_timeout_ms",
    "max_retries",
    "retry_after_cap_ms",
    "max_users_per_action",
    "cache_dir",
    "plugin_sha256",
    "protected_users",
    "audit_log",
    "ca_file",
    "proxy",
];
const PROVIDER_KEYS: &[&str] = &[
    "name",
    "base_url",
    "restricted_group",
    "restricted_group_id",
    "token_env",
    "token_file",
    "profile",
    "max_retries",
    "requests_per_second",
    "allow_private_network",
];

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
    pub base_url: HttpUrl,
    pub restricted_group: Option<String>,
    pub restricted_group_id: Option<String>,
    pub token: Secret,
    pub profile: Profile,
    pub max_retries: u32,
    /// Host-side rate limit for this provider's origin (zia: 5 by default).
    pub requests_per_second: Option<f64>,
    /// Whether the base URL may resolve to a private (RFC 1918, ULA) address.
    pub allow_private_network: bool,
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
    /// From `proxy`; else the host falls back to `HTTPS_PROXY` / `NO_PROXY`.
    pub proxy: Option<ProxyConfig>,
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

impl Config {
    /// Reads and checks a config file; relative paths in it resolve against its folder.
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {shown}: {e}; pass an existing file with --config"))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("config file {shown} is not valid JSON: {e}"))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        Config::from_value(&value, folder, env).map_err(|e| format!("config file {shown}: {e}"))
    }

    pub fn from_value(value: &Value, folder: &Path, env: &dyn Environment) -> Result<Config, String> {
        let top = value.as_object().ok_or("the config must be a JSON object")?;
        check_keys(top, TOP_KEYS, "")?;
        let max_retries = optional_u32(top, "max_retries", "")?.unwrap_or(DEFAULT_MAX_RETRIES);
        let allow_http = optional_bool(top, "allow_http", "")?.unwrap_or(false);
        let list = match top.get("identity_providers") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            Some(Value::Array(_)) => return Err("identity_providers is empty; list at least one provider".into()),
            Some(_) => return Err("identity_providers must be a list of providers".into()),
            None => return Err("identity_providers is missing; list at least one provider".into()),
        };
        let mut providers: Vec<ProviderConfig> = Vec::new();
        for (index, entry) in list.iter().enumerate() {
            let provider = parse_provider(entry, index, allow_http, max_retries, folder, env)?;
            if providers.iter().any(|p| p.name == provider.name) {
                return Err(format!(
                    "identity_providers[{index}].name \"{}\" is used twice; names must be unique",
                    provider.name
                ));
            }
            providers.push(provider);
        }
        let limits = Limits {
            deadline_ms: positive(top, "deadline_ms")?.unwrap_or(DEFAULT_DEADLINE_MS),
            memory_limit_mib: positive(top, "memory_limit_mib")?.unwrap_or(DEFAULT_MEMORY_LIMIT_MIB),
            max_response_bytes: positive(top, "max_response_bytes")?.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            connect_timeout_ms: positive(top, "connect_timeout_ms")?.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
        };
        let plugin_sha256 = optional_string(top, "plugin_sha256", "")?
            .map(|hash| {
                let hash = hash.to_ascii_lowercase();
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(hash)
                } else {
                    Err("plugin_sha256 must be 64 hex digits (sha256sum of the .wasm file)".to_string())
                }
            })
            .transpose()?;
        let protected_users = match top.get("protected_users") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let text = item.as_str().ok_or_else(|| format!("protected_users[{index}] must be a string"))?;
                    parse_user_ref(text.trim()).map_err(|why| format!("protected_users[{index}]: {why}"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("protected_users must be a list of emails, id:SCIM_ID or external:EXTERNAL_ID".into()),
        };
        let ca_file = optional_string(top, "ca_file", "")?.map(|file| folder.join(file));
        if let Some(path) = &ca_file {
            if !path.is_file() {
                return Err(format!("ca_file {} does not exist; give a PEM file of CA certificates", path.display()));
            }
        }
        let proxy = optional_string(top, "proxy", "")?
            .map(|text| parse_proxy(&text).map_err(|why| format!("proxy {why}")))
            .transpose()?;
        Ok(Config {
            providers,
            allow_http,
            limits,
            retry_after_cap_ms: optional_u64(top, "retry_after_cap_ms", "")?.unwrap_or(DEFAULT_RETRY_AFTER_CAP_MS),
            max_users_per_action: positive(top, "max_users_per_action")?.unwrap_or(DEFAULT_MAX_USERS_PER_ACTION),
            cache_dir: optional_string(top, "cache_dir", "")?.map(|dir| folder.join(dir)),
            plugin_sha256,
            protected_users,
            audit_log: optional_string(top, "audit_log", "")?.map(|file| folder.join(file)),
            ca_file,
            proxy,
        })
    }

    /// The providers an action runs on: all, or the one `--idp` names.
    pub fn select(&self, idp: Option<&str>) -> Result<Vec<&ProviderConfig>, String> {
        match idp {
            None => Ok(self.providers.iter().collect()),
            Some(name) => match self.providers.iter().find(|p| p.name == name) {
                Some(provider) => Ok(vec![provider]),
                None => Err(format!(
                    "--idp {name}: no identity provider has that name; configured: {}",
                    self.providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            },
        }
    }
}

fn check_keys(object: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), String> {
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            return Err(format!(
                "unknown key \"{at}{key}\"; remove it or fix its spelling (known keys: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

fn optional_bool(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<bool>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{at}{key} must be true or false")),
    }
}

fn optional_u64(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<u64>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{at}{key} must be a whole number of 0 or more")),
    }
}

fn optional_u32(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<u32>, String> {
    optional_u64(object, key, at)?
        .map(|n| u32::try_from(n).map_err(|_| format!("{at}{key} is too large")))
        .transpose()
}

fn positive(object: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match optional_u64(object, key, "")? {
        Some(0) => Err(format!("{key} must be greater than 0")),
        other => Ok(other),
    }
}

fn optional_string(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Err(format!("{at}{key} is empty")),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("{at}{key} must be a string")),
    }
}

fn parse_provider(
    entry: &Value,
    index: usize,
    allow_http: bool,
    default_retries: u32,
    folder: &Path,
    env: &dyn Environment,
) -> Result<ProviderConfig, String> {
    let at = format!("identity_providers[{index}].");
    let object = entry
        .as_object()
        .ok_or_else(|| format!("identity_providers[{index}] must be an object"))?;
    check_keys(object, PROVIDER_KEYS, &at)?;
    let name = optional_string(object, "name", &at)?.ok_or_else(|| format!("{at}name is missing"))?;
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(format!("{at}name \"{name}\" may hold only a-z, 0-9, '-' and '_'"));
    }
    let at = format!("identity_providers[{index}] ({name}): ");
    let base_text = optional_string(object, "base_url", &at)?.ok_or_else(|| format!("{at}base_url is missing"))?;
    let base_url = check_base_url(&base_text, allow_http).map_err(|why| format!("{at}base_url {why}"))?;
    let restricted_group = optional_string(object, "restricted_group", &at)?;
    let restricted_group_id = optional_string(object, "restricted_group_id", &at)?;
    if restricted_group.is_none() && restricted_group_id.is_none() {
        return Err(format!(
            "{at}give restricted_group (the group's displayName) or restricted_group_id (its SCIM id)"
        ));
    }
    let token = load_token(object, &at, folder, env)?;
    let profile = match optional_string(object, "profile", &at)?.as_deref() {
        None => detect_profile(&base_url.host),
        Some("zpa") => Profile::Zpa,
        Some("zia") => Profile::Zia,
        Some("generic") => Profile::Generic,
        Some(other) => return Err(format!("{at}profile \"{other}\" is not one of zpa, zia, generic")),
    };
    let max_retries = optional_u32(object, "max_retries", &at)?.unwrap_or(default_retries);
    let requests_per_second = match object.get("requests_per_second") {
        None => (profile == Profile::Zia).then_some(ZIA_REQUESTS_PER_SECOND),
        Some(value) => match value.as_f64() {
            Some(rate) if rate > 0.0 && rate.is_finite() => Some(rate),
            _ => return Err(format!("{at}requests_per_second must be a number greater than 0")),
        },
    };
    let allow_private_network = optional_bool(object, "allow_private_network", &at)?.unwrap_or(false);
    Ok(ProviderConfig {
        name,
        base_url,
        restricted_group,
        restricted_group_id,
        token,
        profile,
        max_retries,
        requests_per_second,
        allow_private_network,
    })
}

/// An HTTPS proxy: its full URL for the HTTP client (credentials included, so kept secret) and
/// the same URL with the credentials hidden, for messages.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub url: Secret,
    pub shown: String,
    pub credentials: Option<Secret>,
}

/// `http://[user:password@]host:port` (or https); credentials are kept as secrets.
pub fn parse_proxy(text: &str) -> Result<ProxyConfig, String> {
    let (scheme, rest) = text.split_once("://").ok_or("is not a URL (no scheme://)")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (credentials, host) = match rest[..authority_end].rsplit_once('@') {
        Some((credentials, host)) => (Some(credentials), host),
        None => (None, &rest[..authority_end]),
    };
    let shown = format!("{scheme}://{}{host}", if credentials.is_some() { "<redacted>@" } else { "" });
    url::parse(&format!("{scheme}://{host}")).map_err(|why| format!("\"{shown}\" {why}"))?;
    if !rest[authority_end..].trim_matches('/').is_empty() {
        return Err(format!("\"{shown}\" has a path; give scheme://host:port"));
    }
    Ok(ProxyConfig {
        url: Secret::new(text.trim_end_matches('/')),
        shown,
        credentials: credentials.filter(|c| !c.is_empty()).map(Secret::new),
    })
}

/// A base URL: https (or http to loopback with `allow_http`), no query, fragment, user info or
/// dot segments.
pub fn check_base_url(text: &str, allow_http: bool) -> Result<HttpUrl, String> {
    let parsed = url::parse(text).map_err(|why| format!("\"{text}\" {why}"))?;
    if parsed.query.is_some() {
        return Err(format!("\"{text}\" has a query (?...); give the SCIM endpoint without it"));
    }
    if url::has_dot_segments(&parsed.path) {
        return Err(format!("\"{text}\" has '.' or '..' path segments; give the endpoint's plain path"));
    }
    if parsed.scheme == Scheme::Http {
        if !parsed.host.is_loopback() {
            return Err(format!("\"{text}\" uses plain http to a host that is not loopback; use https"));
        }
        if !allow_http {
            return Err(format!("\"{text}\" uses plain http; set \"allow_http\": true (loopback only) or use https"));
        }
    }
    Ok(parsed)
}

fn load_token(object: &Map<String, Value>, at: &str, folder: &Path, env: &dyn Environment) -> Result<Secret, String> {
    let from_env = optional_string(object, "token_env", at)?;
    let from_file = optional_string(object, "token_file", at)?;
    let token = match (from_env, from_file) {
        (Some(_), Some(_)) => return Err(format!("{at}give token_env or token_file, not both")),
        (None, None) => {
            return Err(format!(
                "{at}no token: set token_env (an environment variable holding the SCIM bearer token) or token_file"
            ))
        }
        (Some(name), None) => env.var(&name).ok_or_else(|| {
            format!("{at}token_env names {name}, which is not set; export the SCIM bearer token in {name}")
        })?,
        (None, Some(file)) => {
            let path = folder.join(&file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{at}cannot read token_file {}: {e}", path.display()))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_string()
        }
    };
    if token.is_empty() {
        return Err(format!("{at}the token is empty; put the SCIM bearer token there"));
    }
    if token.chars().any(|c| c.is_control()) {
        return Err(format!("{at}the token contains a control character (a stray newline?); remove it"));
    }
    Ok(Secret::new(token))
}

/// `*.private.zscaler.com`, `*.zpa*.net`, `*.zpagov.*` → zpa; `scim.*` on a Zscaler cloud → zia.
pub fn detect_profile(host: &UrlHost) -> Profile {
    let UrlHost::Domain(name) = host else {
        return Profile::Generic;
    };
    let labels: Vec<&str> = name.split('.').collect();
    let n = labels.len();
    let zpa = name.ends_with(".private.zscaler.com")
        || (n >= 3 && labels[n - 1] == "net" && labels[n - 2].starts_with("zpa"))
        || (n >= 3 && labels[n - 2] == "zpagov");
    if zpa {
        return Profile::Zpa;
    }
    let zscaler_cloud = n >= 3 && (labels[n - 2].starts_with("zscaler") || labels[n - 2] == "zscloud");
    if labels[0] == "scim" && zscaler_cloud {
        return Profile::Zia;
    }
    Profile::Generic
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "secret-token".to_string())
    }

    fn load(value: Value) -> Result<Config, String> {
        Config::from_value(&value, Path::new("."), &env)
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
        assert_eq!(p.profile, Profile::Zpa);
        assert_eq!(p.token.expose(), "secret-token");
        assert_eq!(p.max_retries, DEFAULT_MAX_RETRIES);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn names_what_is_wrong() {
        for (value, why) in [
            (json!({"identity_providers": [provider(json!({}))], "colour": 1}), "unknown key \"colour\""),
            (json!({"identity_providers": [provider(json!({"tokenenv": "X"}))]}), "unknown key \"identity_providers[0].tokenenv\""),
            (json!({"identity_providers": []}), "identity_providers is empty"),
            (json!({}), "identity_providers is missing"),
            (json!({"identity_providers": [provider(json!({"name": "Bad Name"}))]}), "may hold only"),
            (json!({"identity_providers": [provider(json!({})), provider(json!({}))]}), "used twice"),
            (json!({"identity_providers": [provider(json!({"base_url": "https://h.example/v2?x=1"}))]}), "has a query"),
            (json!({"identity_providers": [provider(json!({"base_url": "http://h.example/v2"}))]}), "not loopback"),
            (json!({"identity_providers": [provider(json!({"base_url": "http://127.0.0.1:1/v2"}))]}), "allow_http"),
            (json!({"identity_providers": [provider(json!({"token_env": "MISSING"}))]}), "MISSING, which is not set"),
            (json!({"identity_providers": [provider(json!({"token_env": null}))]}), "no token"),
            (json!({"identity_providers": [provider(json!({"token_file": "t"}))]}), "not both"),
            (json!({"identity_providers": [provider(json!({"restricted_group": null}))]}), "restricted_group_id"),
            (json!({"identity_providers": [provider(json!({"profile": "okta"}))]}), "not one of"),
            (json!({"identity_providers": [provider(json!({}))], "deadline_ms": 0}), "greater than 0"),
        ] {
            let err = load(value).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback_and_only_when_allowed() {
        let value = json!({"allow_http": true, "identity_providers": [provider(json!({"base_url": "http://127.0.0.1:8080/scim/v2"}))]});
        assert_eq!(load(value).unwrap().providers[0].profile, Profile::Generic);
    }

    #[test]
    fn detects_profiles_from_the_host() {
        let host = |h: &str| UrlHost::Domain(h.into());
        assert_eq!(detect_profile(&host("scim1.private.zscaler.com")), Profile::Zpa);
        assert_eq!(detect_profile(&host("scim1.zpatwo.net")), Profile::Zpa);
        assert_eq!(detect_profile(&host("scim1.zpabeta.net")), Profile::Zpa);
        assert_eq!(detect_profile(&host("scim1.zpagov.us")), Profile::Zpa);
        assert_eq!(detect_profile(&host("scim.zscalertwo.net")), Profile::Zia);
        assert_eq!(detect_profile(&host("scim.zscloud.net")), Profile::Zia);
        assert_eq!(detect_profile(&host("scim.example.com")), Profile::Generic);
        assert_eq!(detect_profile(&host("zscaler.example.com")), Profile::Generic);
    }
}
