"""The config file, with the keys, defaults, bounds and refusals of the Rust host (README,
"Config file"): unknown and repeated keys are refused by path, every problem is one line that
names the key, and nothing is sent until the whole file is valid."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import files, urls
from .secrets import MAX_TOKEN_BYTES, Secret, token_problem
from .users import InvalidUser, UserRef, id_problem, parse_user_ref

DEFAULT_DEADLINE_MS = 60_000
DEFAULT_MEMORY_LIMIT_MIB = 64
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT_MS = 10_000
DEFAULT_MAX_RETRIES = 4
DEFAULT_RETRY_AFTER_CAP_MS = 60_000
DEFAULT_MAX_USERS_PER_ACTION = 100
DEFAULT_MAX_CONCURRENT_REQUESTS = 4
ZIA_REQUESTS_PER_SECOND = 5.0
MAX_REQUESTS_PER_SECOND = 10_000.0
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Bound:
    key: str
    low: int
    high: int

    def check(self, name: str, value: int) -> int:
        if not self.low <= value <= self.high:
            raise ConfigError(f"{name} is {value}; give a whole number from {self.low} to {self.high}")
        return value


DEADLINE_MS = Bound("deadline_ms", 1, 3_600_000)
RETRY_AFTER_CAP_MS = Bound("retry_after_cap_ms", 0, 3_600_000)
CONNECT_TIMEOUT_MS = Bound("connect_timeout_ms", 1, 600_000)
MAX_RETRIES = Bound("max_retries", 0, 100)
MAX_USERS_PER_ACTION = Bound("max_users_per_action", 1, 100_000)
MEMORY_LIMIT_MIB = Bound("memory_limit_mib", 1, 4_096)
MAX_RESPONSE_BYTES = Bound("max_response_bytes", 1, 1 << 30)
MAX_CONCURRENT_REQUESTS = Bound("max_concurrent_requests", 1, 32)


class ConfigError(ValueError):
    """Why a config cannot be used: one line that names the key."""


@dataclass
class Limits:
    deadline_ms: int = DEFAULT_DEADLINE_MS
    memory_limit_mib: int = DEFAULT_MEMORY_LIMIT_MIB
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    connect_timeout_ms: int = DEFAULT_CONNECT_TIMEOUT_MS


@dataclass
class ProviderConfig:
    name: str
    base_url: urls.Url
    restricted_group: Optional[str]
    restricted_group_id: Optional[str]
    token: Secret
    profile: str
    max_retries: int
    requests_per_second: Optional[float]
    allow_private_network: bool
    max_concurrent_requests: int


@dataclass
class ProxyConfig:
    url: Secret
    shown: str
    credentials: Optional[Secret]


@dataclass
class Config:
    providers: list[ProviderConfig]
    allow_http: bool
    limits: Limits
    retry_after_cap_ms: int
    max_users_per_action: int
    cache_dir: Optional[str]
    plugin_sha256: Optional[str]
    protected_users: list[UserRef]
    audit_log: Optional[str]
    ca_file: Optional[str]
    ca_pem: Optional[str]
    proxy: Optional[ProxyConfig]
    warnings: list[str] = field(default_factory=list)

    def select(self, idp: Optional[str]) -> list[ProviderConfig]:
        """The providers an action runs on: all, or the one `--idp` names."""
        if idp is None:
            return list(self.providers)
        for provider in self.providers:
            if provider.name == idp:
                return [provider]
        configured = ", ".join(p.name for p in self.providers)
        raise LookupError(f"--idp {idp}: no identity provider has that name; configured: {configured}")


# Key: (type, required). Types: "bool", "u64", "u32", "f64", "str", "strs", "profile", "providers".
_TOP_KEYS = {
    "identity_providers": ("providers", True),
    "allow_http": ("bool", False),
    "deadline_ms": ("u64", False),
    "memory_limit_mib": ("u64", False),
    "max_response_bytes": ("u64", False),
    "connect_timeout_ms": ("u64", False),
    "max_retries": ("u32", False),
    "max_concurrent_requests": ("u64", False),
    "retry_after_cap_ms": ("u64", False),
    "max_users_per_action": ("u64", False),
    "cache_dir": ("str", False),
    "plugin_sha256": ("str", False),
    "protected_users": ("strs", False),
    "audit_log": ("str", False),
    "ca_file": ("str", False),
    "proxy": ("str", False),
}
_PROVIDER_KEYS = {
    "name": ("str", True),
    "base_url": ("str", True),
    "restricted_group": ("str", False),
    "restricted_group_id": ("str", False),
    "token_env": ("str", False),
    "token_file": ("str", False),
    "profile": ("profile", False),
    "max_retries": ("u32", False),
    "requests_per_second": ("f64", False),
    "max_concurrent_requests": ("u64", False),
    "allow_private_network": ("bool", False),
}
# Keys whose absence and `null` mean the default (serde's `#[serde(default)]` refuses null).
_NOT_NULLABLE = {"allow_http", "protected_users", "allow_private_network", "identity_providers", "name", "base_url"}


class _Repeated(dict):
    """A JSON object that remembers keys given twice."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out = _Repeated()
    out.repeated = []
    for key, value in pairs:
        if key in out:
            out.repeated.append(key)
        out[key] = value
    return out


def _typed(path: str, kind: str, value: Any) -> Any:
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{path}: invalid type: {_json_kind(value)}, expected {expected}")

    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong("a boolean")
    elif kind in ("u64", "u32"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("u64" if kind == "u64" else "u32")
        limit = (1 << 64) - 1 if kind == "u64" else (1 << 32) - 1
        if not 0 <= value <= limit:
            raise ConfigError(f"{path}: invalid value: integer `{value}`, expected {kind}")
    elif kind == "f64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("f64")
        value = float(value)
    elif kind == "str":
        if not isinstance(value, str):
            raise wrong("a string")
    elif kind == "strs":
        if not isinstance(value, list):
            raise wrong("a sequence")
        for index, item in enumerate(value):
            _typed(f"{path}[{index}]", "str", item)
    elif kind == "profile":
        if value not in ("zpa", "zia", "generic"):
            raise ConfigError(f"{path}: unknown variant `{value}`, expected one of `zpa`, `zia`, `generic`")
    elif kind == "providers":
        if not isinstance(value, list):
            raise wrong("a sequence")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _checked_object(path: str, value: dict, keys: dict) -> dict:
    """The typed keys of an object: unknown, repeated and missing keys refused by path."""
    within = (lambda key: key) if path == "" else (lambda key: f"{path}.{key}")
    for key in value:
        if key not in keys:
            known = ", ".join(keys)
            raise ConfigError(f'unknown key "{within(key)}"; remove it or fix its spelling (known keys: {known})')
    for key in getattr(value, "repeated", []):
        raise ConfigError(f"{within(key)} is given twice; keep one")
    out = {}
    for key, (kind, required) in keys.items():
        if key not in value or (value[key] is None and key not in _NOT_NULLABLE):
            if required:
                raise ConfigError(f"{within(key)} is missing")
            continue
        out[key] = _typed(within(key), kind, value[key])
    return out


Environment = Callable[[str], Optional[str]]


def load(path: str, env: Environment = os.environ.get) -> Config:
    """Reads and checks a config file; relative paths in it resolve against its folder."""
    try:
        data, _ = files.read_regular(path, MAX_CONFIG_BYTES)
    except files.FileProblem as problem:
        raise ConfigError(f"cannot read config file {path}: {problem}; pass an existing file with --config") from None
    try:
        value = json.loads(data.decode("utf-8", "replace"), object_pairs_hook=_pairs)
    except ValueError as error:
        raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    try:
        return from_value(value, os.path.dirname(path) or ".", env)
    except ConfigError as error:
        raise ConfigError(f"config file {path}: {error}") from None


def from_value(value: Any, folder: str, env: Environment) -> Config:
    """Checks a config given as a JSON value (relative paths resolve against `folder`)."""
    if not isinstance(value, dict):
        raise ConfigError("the config must be a JSON object")
    providers_value = value.get("identity_providers")
    if isinstance(providers_value, list):
        for index, entry in enumerate(providers_value):
            if not isinstance(entry, dict):
                raise ConfigError(f"identity_providers[{index}] must be an object")
    top = _checked_object("", value, _TOP_KEYS)
    entries = [
        _checked_object(f"identity_providers[{index}]", entry, _PROVIDER_KEYS)
        for index, entry in enumerate(top["identity_providers"])
    ]
    if not entries:
        raise ConfigError("identity_providers is empty; list at least one provider")
    optional = lambda bound: None if top.get(bound.key) is None else bound.check(bound.key, top[bound.key])  # noqa: E731
    max_retries = optional(MAX_RETRIES)
    max_retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
    max_concurrent = optional(MAX_CONCURRENT_REQUESTS) or DEFAULT_MAX_CONCURRENT_REQUESTS
    allow_http = top.get("allow_http", False)
    warnings: list[str] = []
    providers: list[ProviderConfig] = []
    for index, entry in enumerate(entries):
        provider = _check_provider(entry, index, allow_http, max_retries, max_concurrent, folder, env, warnings)
        if any(p.name == provider.name for p in providers):
            raise ConfigError(f'identity_providers[{index}].name "{provider.name}" is used twice; names must be unique')
        providers.append(provider)
    limits = Limits(
        deadline_ms=optional(DEADLINE_MS) or DEFAULT_DEADLINE_MS,
        memory_limit_mib=optional(MEMORY_LIMIT_MIB) or DEFAULT_MEMORY_LIMIT_MIB,
        max_response_bytes=optional(MAX_RESPONSE_BYTES) or DEFAULT_MAX_RESPONSE_BYTES,
        connect_timeout_ms=optional(CONNECT_TIMEOUT_MS) or DEFAULT_CONNECT_TIMEOUT_MS,
    )
    plugin_sha256 = top.get("plugin_sha256")
    if plugin_sha256 is not None:
        plugin_sha256 = plugin_sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{64}", plugin_sha256):
            raise ConfigError("plugin_sha256 must be 64 hex digits (sha256sum of the .wasm file)")
    protected = []
    for index, text in enumerate(top.get("protected_users", [])):
        try:
            protected.append(parse_user_ref(text.strip()))
        except InvalidUser as why:
            raise ConfigError(f"protected_users[{index}]: {why}") from None
    ca_file = _in_folder(folder, _non_empty("ca_file", top.get("ca_file")))
    ca_pem = _read_certificates(ca_file) if ca_file else None
    proxy_text = _non_empty("proxy", top.get("proxy"))
    retry_cap = optional(RETRY_AFTER_CAP_MS)
    max_users = optional(MAX_USERS_PER_ACTION)
    return Config(
        providers=providers,
        allow_http=allow_http,
        limits=limits,
        retry_after_cap_ms=DEFAULT_RETRY_AFTER_CAP_MS if retry_cap is None else retry_cap,
        max_users_per_action=max_users or DEFAULT_MAX_USERS_PER_ACTION,
        cache_dir=_in_folder(folder, _non_empty("cache_dir", top.get("cache_dir"))),
        plugin_sha256=plugin_sha256,
        protected_users=protected,
        audit_log=_in_folder(folder, _non_empty("audit_log", top.get("audit_log"))),
        ca_file=ca_file,
        ca_pem=ca_pem,
        proxy=_parse_proxy(proxy_text) if proxy_text else None,
        warnings=warnings,
    )


def _in_folder(folder: str, path: Optional[str]) -> Optional[str]:
    return None if path is None else os.path.join(folder, path)


def _non_empty(key: str, value: Optional[str]) -> Optional[str]:
    if value is not None and value.strip() == "":
        raise ConfigError(f"{key} is empty")
    return value


def _read_certificates(path: str) -> str:
    try:
        data, _ = files.read_regular(path, MAX_CONFIG_BYTES)
    except files.FileProblem as problem:
        raise ConfigError(f"ca_file {path}: {problem}; give a PEM file of CA certificates") from None
    text = data.decode("ascii", "replace")
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    if not blocks:
        raise ConfigError(f"ca_file {path} holds no PEM certificate; give the CA's certificate in PEM")
    try:
        for block in blocks:
            base64.b64decode("".join(block.split()), validate=True)
        ssl.create_default_context().load_verify_locations(cadata=text)
    except (ValueError, ssl.SSLError) as error:
        raise ConfigError(f"ca_file {path} is not valid PEM: {error}") from None
    return text


def _parse_proxy(text: str) -> ProxyConfig:
    if "://" not in text:
        raise ConfigError("proxy is not a URL (no scheme://)")
    scheme, rest = text.split("://", 1)
    authority_end = rest.find("/") if "/" in rest else len(rest)
    authority = rest[:authority_end]
    credentials, host = authority.rsplit("@", 1) if "@" in authority else (None, authority)
    shown = f"{scheme}://{'<redacted>@' if credentials is not None else ''}{host}"
    try:
        urls.parse(f"{scheme}://{host}")
    except urls.UrlError as why:
        raise ConfigError(f'proxy "{shown}" {why}') from None
    if rest[authority_end:].strip("/"):
        raise ConfigError(f'proxy "{shown}" has a path; give scheme://host:port')
    return ProxyConfig(Secret(text.rstrip("/")), shown, Secret(credentials) if credentials else None)


def _check_base_url(text: str, allow_http: bool) -> urls.Url:
    try:
        parsed = urls.parse(text)
    except urls.UrlError as why:
        raise ConfigError(f'"{text}" {why}') from None
    if parsed.query is not None:
        raise ConfigError(f'"{text}" has a query (?...); give the SCIM endpoint without it')
    if parsed.scheme == "http":
        if not urls.names_loopback(parsed):
            raise ConfigError(f'"{text}" uses plain http to a host that is not loopback; use https')
        if not allow_http:
            raise ConfigError(f'"{text}" uses plain http; set "allow_http": true (loopback only) or use https')
    return parsed


def _check_provider(entry, index, allow_http, max_retries, max_concurrent, folder, env, warnings) -> ProviderConfig:
    name = entry["name"]
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ConfigError(f'identity_providers[{index}].name "{name}" may hold only a-z, 0-9, \'-\' and \'_\'')
    at = f"identity_providers[{index}] ({name}): "

    def in_provider(key: str) -> Optional[str]:
        try:
            return _non_empty(key, entry.get(key))
        except ConfigError as error:
            raise ConfigError(f"{at}{error}") from None

    try:
        base_url = _check_base_url(entry["base_url"], allow_http)
    except ConfigError as why:
        raise ConfigError(f"{at}base_url {why}") from None
    group, group_id = in_provider("restricted_group"), in_provider("restricted_group_id")
    problem = id_problem(group_id) if group_id is not None else None
    if problem:
        raise ConfigError(f"{at}restricted_group_id {problem}; SCIM ids never do: check the id")
    if group is None and group_id is None:
        raise ConfigError(f"{at}give restricted_group (the group's displayName) or restricted_group_id (its SCIM id)")
    token_env, token_file = in_provider("token_env"), in_provider("token_file")
    if token_env is not None and token_file is not None:
        raise ConfigError(f"{at}give token_env or token_file, not both")
    if token_env is None and token_file is None:
        raise ConfigError(
            f"{at}no token: set token_env (an environment variable holding the SCIM bearer token) or token_file"
        )
    token = _load_token(token_env, _in_folder(folder, token_file), env, warnings, at)
    profile = entry.get("profile") or detect_profile(base_url)
    rate = entry.get("requests_per_second")
    if rate is None:
        rate = ZIA_REQUESTS_PER_SECOND if profile == "zia" else None
    elif not 0.0 < rate <= MAX_REQUESTS_PER_SECOND:
        shown = int(rate) if rate == int(rate) else rate
        raise ConfigError(
            f"{at}requests_per_second is {shown}; give a number above 0 and at most {int(MAX_REQUESTS_PER_SECOND)}"
        )
    retries = entry.get("max_retries")
    concurrent = entry.get("max_concurrent_requests")
    try:
        retries = max_retries if retries is None else MAX_RETRIES.check("max_retries", retries)
        concurrent = max_concurrent if concurrent is None else MAX_CONCURRENT_REQUESTS.check(
            "max_concurrent_requests", concurrent
        )
    except ConfigError as why:
        raise ConfigError(f"{at}{why}") from None
    return ProviderConfig(
        name=name,
        base_url=base_url,
        restricted_group=group,
        restricted_group_id=group_id,
        token=token,
        profile=profile,
        max_retries=retries,
        requests_per_second=rate,
        allow_private_network=entry.get("allow_private_network", False),
        max_concurrent_requests=concurrent,
    )


def _load_token(token_env, token_file, env, warnings, at) -> Secret:
    if token_env is not None:
        token = env(token_env)
        if token is None:
            raise ConfigError(f"{at}token_env names {token_env}, which is not set; export the SCIM bearer token in {token_env}")
    else:
        try:
            data, info = files.read_regular(token_file, MAX_TOKEN_BYTES + 2)
        except files.FileProblem as problem:
            raise ConfigError(f"{at}cannot read token_file {token_file}: {problem}") from None
        if files.shared_with_others(info):
            warnings.append(f"token_file {token_file} can be read by other users than its owner: chmod 600 it")
        try:
            token = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{at}token_file {token_file} is not text") from None
        token = token[:-1] if token.endswith("\n") else token
        token = token[:-1] if token.endswith("\r") else token
    problem = token_problem(token)
    if problem:
        raise ConfigError(f"{at}{problem}")
    return Secret(token)


def detect_profile(base_url: urls.Url) -> str:
    """`*.private.zscaler.com`, `*.zpa*.net`, `*.zpagov.*` → zpa; `scim.*` on a Zscaler cloud → zia."""
    if base_url.ip() is not None:
        return "generic"
    name = base_url.host
    labels = name.split(".")
    n = len(labels)
    if (
        name.endswith(".private.zscaler.com")
        or (n >= 3 and labels[-1] == "net" and labels[-2].startswith("zpa"))
        or (n >= 3 and labels[-2] == "zpagov")
    ):
        return "zpa"
    zscaler_cloud = n >= 3 and (labels[-2].startswith("zscaler") or labels[-2] == "zscloud")
    if labels[0] == "scim" and zscaler_cloud:
        return "zia"
    return "generic"
