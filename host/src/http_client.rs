//! The host's HTTP client: one keep-alive agent per host, no redirects followed, every status
//! returned as is, bodies capped, each request bounded by the time the action has left.

use crate::egress::Authorized;
use restricted_group_plugin::host::{HttpError, Method, Response};
use std::io::ErrorKind as IoKind;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub max_response_bytes: u64,
    pub connect_timeout: Duration,
}

pub struct HttpClient {
    agent: ureq::Agent,
    settings: HttpSettings,
}

pub struct Outbound<'a> {
    pub authorized: &'a Authorized,
    pub method: Method,
    pub headers: &'a [(String, String)],
    pub body: Option<&'a [u8]>,
    /// The time the action has left; the whole exchange must fit in it.
    pub timeout: Duration,
}

impl HttpClient {
    pub fn new(settings: HttpSettings) -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .user_agent(concat!("soar-host/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(settings.connect_timeout))
            .proxy(None)
            .build();
        HttpClient {
            agent: config.new_agent(),
            settings,
        }
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    pub fn send(&self, outbound: Outbound) -> Result<Response, HttpError> {
        if outbound.timeout.is_zero() {
            return Err(HttpError::Timeout("the action's deadline has passed".into()));
        }
        let limit = self.settings.max_response_bytes;
        if outbound.body.is_some_and(|body| body.len() as u64 > limit) {
            return Err(HttpError::TooLarge(format!("the request body is larger than {limit} bytes")));
        }
        let url = outbound.authorized.url.to_string();
        let mut builder = ureq::http::Request::builder()
            .method(outbound.method.as_str())
            .uri(&url)
            .header("Authorization", format!("Bearer {}", outbound.authorized.token.expose()));
        for (name, value) in outbound.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(outbound.body.map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(|e| HttpError::ConnectionFailed(format!("cannot build the request: {e}")))?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(outbound.timeout))
            .build();
        let response = self.agent.run(request).map_err(|e| classify(e, &url, limit))?;
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
            return Err(too_large(&url, limit));
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| classify(e, &url, limit))?;
        Ok(Response { status, headers, body })
    }
}

fn too_large(url: &str, limit: u64) -> HttpError {
    HttpError::TooLarge(format!("the answer from {url} is larger than {limit} bytes (max_response_bytes)"))
}

fn classify(error: ureq::Error, url: &str, limit: u64) -> HttpError {
    match error {
        ureq::Error::Timeout(which) => HttpError::Timeout(format!("{url}: no complete answer in time ({which})")),
        ureq::Error::BodyExceedsLimit(_) => too_large(url, limit),
        ureq::Error::Tls(why) => HttpError::TlsFailed(format!("{url}: {why}")),
        ureq::Error::Rustls(why) => HttpError::TlsFailed(format!("{url}: {why}")),
        ureq::Error::Pem(why) => HttpError::TlsFailed(format!("{url}: {why}")),
        ureq::Error::Io(io) if matches!(io.kind(), IoKind::TimedOut | IoKind::WouldBlock) => {
            HttpError::Timeout(format!("{url}: {io}"))
        }
        ureq::Error::HostNotFound => HttpError::ConnectionFailed(format!("{url}: the host name does not resolve")),
        ureq::Error::ConnectionFailed => HttpError::ConnectionFailed(format!("{url}: connection refused or failed")),
        other => HttpError::ConnectionFailed(format!("{url}: {other}")),
    }
}
