//! The host's HTTP client: keep-alive agents shared by every invocation, no redirects followed,
//! every status returned as is, bodies capped, each request bounded by the time the action has
//! left, a rate limit per provider origin, and every resolved address checked before connecting.

use crate::config::ProxyConfig;
use crate::egress::Authorized;
use crate::endpoint;
use crate::rate_limit::RateLimiter;
use soar_host_policy::address::{address_refusal, AddressRules};
use soar_types::host::{HttpError, Method, Response};

use std::io::ErrorKind as IoKind;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use url::Url;

/// A name that resolves only to addresses its provider may not reach; it travels inside the
/// client's I/O error and comes back as `denied`, not as a connection failure.
#[derive(Debug, thiserror::Error)]
#[error("egress policy: {host} resolves only to refused addresses: {}", refused.join(", "))]
pub struct AddressRefused {
    pub host: String,
    pub refused: Vec<String>,
}

/// What the host allows for one provider's origin.
#[derive(Clone, Debug)]
pub struct OriginRules {
    pub base: Url,
    pub allow_private_network: bool,
    pub requests_per_second: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub max_response_bytes: u64,
    pub connect_timeout: Duration,
    /// Certificates (DER) trusted besides the system's roots: the config's `ca_file`.
    pub extra_roots: Vec<Vec<u8>>,
    /// The configured proxy; without one, `HTTPS_PROXY` / `NO_PROXY` from the environment.
    pub proxy: Option<ProxyConfig>,
    pub origins: Vec<OriginRules>,
    /// Where the rate limits shared with other processes live (see `rate_limit`); `None` keeps
    /// them within this process.
    pub rate_dir: Option<PathBuf>,
    /// A shared rate-limit slot further ahead than this is not trusted (`retry_after_cap_ms`).
    pub rate_horizon: Duration,
    /// The most requests any provider may have in flight at once (`max_concurrent_requests`):
    /// the size of the thread pool that carries them (the thread that asks carries one).
    pub max_concurrent_requests: usize,
}

impl HttpSettings {
    pub fn new(max_response_bytes: u64, connect_timeout: Duration) -> Self {
        HttpSettings {
            max_response_bytes,
            connect_timeout,
            extra_roots: Vec::new(),
            proxy: None,
            origins: Vec::new(),
            rate_dir: None,
            rate_horizon: Duration::from_millis(crate::config::DEFAULT_RETRY_AFTER_CAP_MS),
            max_concurrent_requests: crate::config::DEFAULT_MAX_CONCURRENT_REQUESTS as usize,
        }
    }
}

pub struct HttpClient {
    settings: HttpSettings,
    plain: OnceLock<Result<ureq::Agent, String>>,
    tls: OnceLock<Result<ureq::Agent, String>>,
    limiter: RateLimiter,
    /// How long each origin has been taking to answer (a moving average).
    answer_times: std::sync::Mutex<std::collections::HashMap<String, Duration>>,
    /// Threads that carry concurrent requests, kept between batches and actions (starting a
    /// thread per batch costs more than a loopback round trip); made on first need.
    workers: OnceLock<Option<rayon::ThreadPool>>,
}

/// Answers faster than this are not worth overlapping: handing a request to another thread
/// costs about as much as the exchange itself (a server on the same machine or network).
pub const QUICK_ANSWER: Duration = Duration::from_millis(2);

/// One request's end, and whether it went out at all.
pub struct Attempt {
    pub outcome: Result<Response, HttpError>,
    pub reached_network: bool,
}

pub struct Outbound<'a> {
    pub authorized: &'a Authorized,
    pub method: Method,
    pub headers: &'a [(String, String)],
    pub body: Option<&'a [u8]>,
    /// The time the action has left; the whole exchange, rate-limit wait included, must fit.
    pub timeout: Duration,
    /// Hears what the operator should know (a rate-limit folder that cannot be used).
    pub warn: &'a dyn Fn(String),
    /// When a rate-limit slot was reserved for it already ([`HttpClient::reserve`]), the time it
    /// may go; else one is reserved as it is sent.
    pub slot: Option<Instant>,
}

impl HttpClient {
    pub fn new(settings: HttpSettings) -> Self {
        let limiter = RateLimiter::new(settings.rate_dir.clone(), settings.rate_horizon);
        HttpClient {
            settings,
            plain: OnceLock::new(),
            tls: OnceLock::new(),
            limiter,
            answer_times: Default::default(),
            workers: OnceLock::new(),
        }
    }

    /// The threads that carry concurrent requests besides the asking thread; `None` when none
    /// could be started (the requests then go one after another).
    pub fn workers(&self) -> Option<&rayon::ThreadPool> {
        self.workers
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.settings.max_concurrent_requests.saturating_sub(1).max(1))
                    .thread_name(|n| format!("soar-host-request-{n}"))
                    .build()
                    .ok()
            })
            .as_ref()
    }

    /// Notes how long an exchange with `url`'s origin took.
    pub fn note_answer_time(&self, url: &Url, took: Duration) {
        let mut times = self.answer_times.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let average = times.entry(endpoint::origin(url)).or_insert(took);
        *average = (*average * 3 + took) / 4;
    }

    /// Whether `url`'s origin has been answering within [`QUICK_ANSWER`] (false until it has
    /// answered once: a tenant far away is the case to be quick for).
    pub fn answers_quickly(&self, url: &Url) -> bool {
        let times = self.answer_times.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        times.get(&endpoint::origin(url)).is_some_and(|average| *average < QUICK_ANSWER)
    }

    /// Spaces requests through this shared ledger's rate limit (PostgreSQL) from now on.
    pub fn share_rate_limit(&self, ledger: std::sync::Arc<crate::ledger::Ledger>) {
        self.limiter.share_through(ledger);
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// The agent for a scheme, built on first use (TLS roots are read only when an https
    /// request needs them).
    fn agent(&self, https: bool) -> Result<&ureq::Agent, HttpError> {
        let slot = if https { &self.tls } else { &self.plain };
        slot.get_or_init(|| build_agent(&self.settings, https))
            .as_ref()
            .map_err(|why| HttpError::TlsFailed(why.clone()))
    }

    /// Sends one request. Requests refused before a connection is attempted (resolved address,
    /// rate-limit wait past the deadline, oversized body) are marked as not sent.
    pub fn send(&self, outbound: Outbound) -> Attempt {
        let mut reached_network = false;
        let outcome = self.exchange(outbound, &mut reached_network);
        if matches!(outcome, Err(HttpError::Denied(_))) {
            reached_network = false;
        }
        Attempt { outcome, reached_network }
    }

    fn exchange(&self, outbound: Outbound, reached_network: &mut bool) -> Result<Response, HttpError> {
        let started = Instant::now();
        if outbound.timeout.is_zero() {
            return Err(HttpError::Timeout("the action's deadline has passed".into()));
        }
        let limit = self.settings.max_response_bytes;
        if outbound.body.is_some_and(|body| body.len() as u64 > limit) {
            return Err(HttpError::TooLarge(format!(
                "the request body is larger than {limit} bytes (max_response_bytes)"
            )));
        }
        let url = &outbound.authorized.url;
        let wait = match outbound.slot {
            Some(slot) => slot.saturating_duration_since(Instant::now()),
            None => self.reserve(url, outbound.timeout, outbound.warn)?,
        };
        std::thread::sleep(wait);
        let timeout = outbound.timeout.saturating_sub(started.elapsed());
        if timeout.is_zero() {
            return Err(HttpError::Timeout("the action's deadline passed while waiting for the rate limit".into()));
        }
        let agent = self.agent(url.scheme() == "https")?;
        let url_text = url.to_string();
        let mut builder = ureq::http::Request::builder()
            .method(outbound.method.as_str())
            .uri(&url_text)
            .header("Authorization", format!("Bearer {}", outbound.authorized.token.expose()));
        for (name, value) in outbound.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(outbound.body.map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(|e| HttpError::ConnectionFailed(format!("cannot build the request: {e}")))?;
        let request = agent.configure_request(request).timeout_global(Some(timeout)).build();
        let response = agent.run(request).map_err(|error| {
            *reached_network = reached_a_server(&error);
            classify(error, &url_text, limit)
        })?;
        *reached_network = true;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(too_large(&url_text, limit));
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| classify(e, &url_text, limit))?;
        // The host asks for no content encoding; an answer encoded anyway cannot be read, and its
        // bytes go nowhere (not to the plugin, a message or a trace). The plugin sees the header.
        if let Some(encoding) = unrequested_encoding(&headers) {
            (outbound.warn)(format!(
                "{url_text} answered with Content-Encoding: {}, which was not asked for; its body is not passed on",
                crate::text::printable(&encoding)
            ));
            return Ok(Response { status, headers, body: Vec::new() });
        }
        Ok(Response { status, headers, body })
    }

    /// The wait before a request to `url` may go, reserved now: the provider's rate limit spaces
    /// requests in the order they are reserved. A wait past `budget` reserves nothing and is a
    /// timeout.
    pub fn reserve(&self, url: &Url, budget: Duration, warn: &dyn Fn(String)) -> Result<Duration, HttpError> {
        let Some(rate) = self.rate_for(url) else {
            return Ok(Duration::ZERO);
        };
        let origin = endpoint::origin(url);
        self.limiter.reserve(&origin, rate, budget, warn).map_err(|late| {
            HttpError::Timeout(format!(
                "the rate limit for {origin} ({rate} requests per second) needs a wait of {} ms, past the action's deadline",
                late.wait.as_millis()
            ))
        })
    }

    fn rate_for(&self, url: &Url) -> Option<f64> {
        let origin = endpoint::origin(url);
        self.settings
            .origins
            .iter()
            .filter(|rules| endpoint::origin(&rules.base) == origin)
            .filter_map(|rules| rules.requests_per_second)
            .reduce(f64::min)
    }
}

fn build_agent(settings: &HttpSettings, https: bool) -> Result<ureq::Agent, String> {
    // Plain http goes to loopback only, and never through a proxy, which would read the token.
    let proxy = match &settings.proxy {
        _ if !https => None,
        Some(proxy) => Some(
            ureq::Proxy::new(proxy.url.expose())
                .map_err(|e| format!("the proxy {} is not usable: {e}", proxy.shown))?,
        ),
        None => ureq::Proxy::try_from_env(),
    };
    let mut builder = ureq::Agent::config_builder()
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .user_agent(concat!("soar-host/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(settings.connect_timeout))
        .proxy(proxy);
    if https {
        builder = builder
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(trusted_roots(&settings.extra_roots)).build());
    }
    let resolver = PolicyResolver { origins: Arc::new(settings.origins.clone()) };
    Ok(ureq::Agent::with_parts(builder.build(), DefaultConnector::new(), resolver))
}

/// The system's trusted roots plus `extra_roots`; Mozilla's bundled roots when the system has
/// none and no extra root is given.
fn trusted_roots(extra_roots: &[Vec<u8>]) -> ureq::tls::RootCerts {
    let mut roots: Vec<ureq::tls::Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if roots.is_empty() && extra_roots.is_empty() {
        return ureq::tls::RootCerts::WebPki;
    }
    roots.extend(extra_roots.iter().map(|der| ureq::tls::Certificate::from_der(der).to_owned()));
    ureq::tls::RootCerts::new_with_certs(&roots)
}

/// Resolves names and refuses the addresses a provider may not reach
/// ([`soar_host_policy::address`]). Hosts that are no provider's (a proxy) resolve as usual.
#[derive(Debug)]
struct PolicyResolver {
    origins: Arc<Vec<OriginRules>>,
}

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        // An address needs no lookup (and no lookup thread, which the client spawns per request).
        let literal = host.parse::<IpAddr>().ok().map(|ip| {
            let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
            let mut one = self.empty();
            one.push(SocketAddr::new(ip, uri.port_u16().unwrap_or(default_port)));
            one
        });
        let resolved = match literal {
            Some(address) => address,
            None => DefaultResolver::default().resolve(uri, config, timeout)?,
        };
        let rules: Vec<&OriginRules> = self
            .origins
            .iter()
            .filter(|rules| match endpoint::ip_host(&rules.base) {
                Some(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == ip),
                None => rules.base.host_str() == Some(host.as_str()),
            })
            .collect();
        let plain = uri.scheme_str() == Some("http");
        if rules.is_empty() && !plain {
            return Ok(resolved);
        }
        let (allowed_list, refused) = sort_addresses(plain, &rules, resolved.iter().copied());
        if allowed_list.is_empty() {
            return Err(ureq::Error::Io(std::io::Error::new(
                IoKind::PermissionDenied,
                AddressRefused { host, refused },
            )));
        }
        let mut allowed = self.empty();
        for address in allowed_list {
            allowed.push(address);
        }
        Ok(allowed)
    }
}

/// The addresses a request may go to, and why the others may not (the rule is
/// [`soar_host_policy::address`]'s).
fn sort_addresses(
    plain: bool,
    rules: &[&OriginRules],
    resolved: impl Iterator<Item = SocketAddr>,
) -> (Vec<SocketAddr>, Vec<String>) {
    let address_rules = AddressRules {
        loopback_base: rules.iter().all(|r| endpoint::names_loopback(&r.base)),
        allow_private_network: rules.iter().all(|r| r.allow_private_network),
        plain_http: plain,
    };
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for address in resolved {
        match address_refusal(address.ip(), address_rules) {
            None => allowed.push(address),
            Some(why) => refused.push(format!("{} ({why})", address.ip())),
        }
    }
    (allowed, refused)
}

/// A `Content-Encoding` other than `identity` (the host never asks for one).
fn unrequested_encoding(headers: &[(String, String)]) -> Option<String> {
    let (_, value) = headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-encoding"))?;
    let value: String = value.trim().chars().take(40).collect();
    (!value.is_empty() && !value.eq_ignore_ascii_case("identity")).then_some(value)
}

fn too_large(url: &str, limit: u64) -> HttpError {
    HttpError::TooLarge(format!("the answer from {url} is larger than {limit} bytes (max_response_bytes)"))
}

/// Whether a failed exchange got as far as a connection to the server: failures to resolve,
/// connect or shake hands (TLS, proxy) mean the request never left this machine.
fn reached_a_server(error: &ureq::Error) -> bool {
    use ureq::Timeout;
    match error {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => false,
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => false,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => false,
        ureq::Error::Io(io) => {
            let refused = matches!(
                io.kind(),
                IoKind::ConnectionRefused
                    | IoKind::AddrNotAvailable
                    | IoKind::NetworkUnreachable
                    | IoKind::HostUnreachable
                    | IoKind::PermissionDenied
            );
            !refused && !io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
        }
        _ => true,
    }
}

fn classify(error: ureq::Error, url: &str, limit: u64) -> HttpError {
    match error {
        ureq::Error::Timeout(which) => HttpError::Timeout(format!("{url}: no complete answer in time ({which})")),
        ureq::Error::BodyExceedsLimit(_) => too_large(url, limit),
        ureq::Error::Tls(why) => HttpError::TlsFailed(format!("{url}: {why}")),
        ureq::Error::Rustls(why) => HttpError::TlsFailed(format!("{url}: {why}")),
        ureq::Error::Pem(why) => HttpError::TlsFailed(format!("{url}: {why}")),
        ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<AddressRefused>()) => {
            HttpError::Denied(io.to_string())
        }
        ureq::Error::Io(io) if matches!(io.kind(), IoKind::TimedOut | IoKind::WouldBlock) => {
            HttpError::Timeout(format!("{url}: {io}"))
        }
        ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            HttpError::TlsFailed(format!("{url}: {io}"))
        }
        ureq::Error::HostNotFound => HttpError::ConnectionFailed(format!("{url}: the host name does not resolve")),
        ureq::Error::ConnectionFailed => HttpError::ConnectionFailed(format!("{url}: connection refused or failed")),
        other => HttpError::ConnectionFailed(format!("{url}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(base: &str) -> OriginRules {
        OriginRules { base: endpoint::parse(base).unwrap(), allow_private_network: false, requests_per_second: None }
    }

    #[test]
    fn a_plain_http_name_reaches_only_loopback_addresses_whatever_it_resolves_to() {
        let localhost = rules("http://evil.localhost:8080/scim/v2");
        let resolved =
            ["10.1.2.3:8080", "203.0.113.7:8080", "127.0.0.1:8080", "[::1]:8080"].map(|a| a.parse().unwrap());
        let (allowed, refused) = sort_addresses(true, &[&localhost], resolved.into_iter());
        assert_eq!(allowed, [resolved[2], resolved[3]]);
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().all(|why| why.contains("plain http")), "{refused:?}");
        let (allowed, _) = sort_addresses(true, &[&localhost], resolved[..2].iter().copied());
        assert!(allowed.is_empty(), "nothing to send to: the request is denied");
    }

    #[test]
    fn link_local_private_and_loopback_addresses_need_a_base_url_that_allows_them() {
        let public = rules("https://scim.example/v2");
        let resolved =
            ["169.254.169.254:443", "10.0.0.1:443", "127.0.0.1:443", "104.129.192.1:443"].map(|a| a.parse().unwrap());
        let (allowed, refused) = sort_addresses(false, &[&public], resolved.into_iter());
        assert_eq!(allowed, [resolved[3]]);
        assert_eq!(refused.len(), 3, "{refused:?}");
    }
}
