//! The egress rule: a request from the plugin reaches the network only when it names a
//! configured provider and its URL lies under that provider's base URL; only then does it get
//! that provider's token. Anything else is denied before a byte is sent.

use crate::config::ProviderConfig;
use crate::endpoint::{self, UrlError};
use crate::secret::{Redactor, Secret};
use url::Url;

/// The headers the plugin may set: what a SCIM client needs to say what it sends and accepts, and
/// RFC 7644's version preconditions. Everything else is the host's (authentication, framing, the
/// connection, encodings) or could make a server or proxy serve another path, method or host than
/// the one the egress rule checked (`X-Original-URL`, `X-HTTP-Method-Override`, `Forwarded`, ...).
pub const ALLOWED_HEADERS: &[&str] = &["accept", "content-type", "if-match", "if-none-match"];

/// Why a request was refused before anything was sent (never with a secret in it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    #[error("no identity provider named \"{}\" is configured", .0.escape_debug())]
    UnknownProvider(String),
    #[error("the URL {0}")]
    Url(#[from] UrlError),
    #[error("{url} is not under the base URL of \"{provider}\" ({base})")]
    NotUnder { url: String, provider: String, base: String },
    #[error("the plugin may not set the {} header; it may set only Accept, Content-Type, If-Match and If-None-Match", .0.escape_debug())]
    HeaderNotAllowed(String),
    #[error("the header {} is malformed", .0.escape_debug())]
    MalformedHeader(String),
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub base: Url,
    pub token: Secret,
    /// Requests one action may have in flight to this provider at once.
    pub max_concurrent_requests: usize,
}

#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    endpoints: Vec<Endpoint>,
    /// Scrubs every secret the policy knows (tokens, proxy credentials) from text.
    redactor: Redactor,
}

/// A request the policy let through, with the token it may carry.
#[derive(Clone, Debug)]
pub struct Authorized {
    pub url: Url,
    pub token: Secret,
}

impl EgressPolicy {
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        let redactor = Redactor::new(endpoints.iter().map(|e| e.token.clone()));
        EgressPolicy { endpoints, redactor }
    }

    /// Also keeps these secrets (proxy credentials) out of every output.
    pub fn with_other_secrets(mut self, secrets: impl IntoIterator<Item = Secret>) -> Self {
        let all: Vec<Secret> = self.endpoints.iter().map(|e| e.token.clone()).chain(secrets).collect();
        self.redactor = Redactor::new(all);
        self
    }

    pub fn for_providers<'a>(providers: impl IntoIterator<Item = &'a ProviderConfig>) -> Self {
        EgressPolicy::new(
            providers
                .into_iter()
                .map(|p| Endpoint {
                    name: p.name.clone(),
                    base: p.base_url.clone(),
                    token: p.token.clone(),
                    max_concurrent_requests: p.max_concurrent_requests,
                })
                .collect(),
        )
    }

    /// Requests one action may have in flight to provider `idp` at once (1 for an unknown one).
    pub fn max_concurrent_requests(&self, idp: &str) -> usize {
        self.endpoints.iter().find(|e| e.name == idp).map_or(1, |e| e.max_concurrent_requests.max(1))
    }

    /// Scrubs the tokens and proxy credentials from text.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Checks one request: a configured provider, a URL written exactly as it will be sent and
    /// lying under that provider's base URL, and only headers of [`ALLOWED_HEADERS`].
    pub fn authorize(&self, idp: &str, url_text: &str, headers: &[(String, String)]) -> Result<Authorized, Denied> {
        let endpoint =
            self.endpoints.iter().find(|e| e.name == idp).ok_or_else(|| Denied::UnknownProvider(idp.to_string()))?;
        let url = endpoint::parse_exact(url_text)?;
        if !endpoint::is_under(&endpoint.base, &url) {
            return Err(Denied::NotUnder {
                url: url.to_string(),
                provider: endpoint.name.clone(),
                base: endpoint.base.to_string(),
            });
        }
        for (name, value) in headers {
            if !ALLOWED_HEADERS.iter().any(|allowed| name.eq_ignore_ascii_case(allowed)) {
                return Err(Denied::HeaderNotAllowed(name.clone()));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(Denied::MalformedHeader(name.clone()));
            }
        }
        Ok(Authorized { url, token: endpoint.token.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EgressPolicy {
        EgressPolicy::new(vec![
            Endpoint {
                name: "a".into(),
                base: endpoint::parse("https://scim.a.example/scim/1/7/v2").unwrap(),
                token: Secret::new("token-a"),
                max_concurrent_requests: 4,
            },
            Endpoint {
                name: "b".into(),
                base: endpoint::parse("https://scim.b.example/v2").unwrap(),
                token: Secret::new("token-b"),
                max_concurrent_requests: 4,
            },
        ])
    }

    #[test]
    fn lets_through_requests_under_the_named_base_with_that_token() {
        let ok = policy().authorize("a", "https://scim.a.example/scim/1/7/v2/Users?filter=x", &[]).unwrap();
        assert_eq!(ok.token.expose(), "token-a");
        let ok = policy().authorize("b", "https://scim.b.example/v2/Groups/1", &[]).unwrap();
        assert_eq!(ok.token.expose(), "token-b");
    }

    #[test]
    fn denies_everything_else() {
        for (idp, url, why) in [
            ("c", "https://scim.a.example/scim/1/7/v2/Users", "no identity provider"),
            ("a", "https://scim.b.example/v2/Users", "not under the base URL"),
            ("b", "https://scim.a.example/scim/1/7/v2/Users", "not under the base URL"),
            ("a", "https://scim.a.example/scim/1/7/v2evil", "not under"),
            ("a", "https://scim.a.example:8443/scim/1/7/v2/Users", "not under"),
            ("a", "http://scim.a.example/scim/1/7/v2/Users", "not under"),
            ("a", "https://169.254.169.254/latest/meta-data", "not under"),
            ("a", "https://scim.a.example/scim/1/7/v2/../../admin", "segments"),
            ("a", "https://scim.a.example/scim/1/7/v2/%2e%2e/x", "percent-encoded"),
            ("a", "https://user@scim.a.example/scim/1/7/v2/Users", "user info"),
            ("b", "https://SCIM.B.example:443/v2/Groups/1", "as it would be sent"),
        ] {
            let err = policy().authorize(idp, url, &[]).unwrap_err().to_string();
            assert!(err.contains(why), "{idp} {url}: {err}");
            assert!(!err.contains("token-"), "{err}");
        }
    }

    #[test]
    fn the_plugin_sets_only_the_headers_a_scim_client_needs() {
        for name in ["Accept", "content-type", "If-Match", "IF-NONE-MATCH"] {
            let headers = vec![(name.to_string(), "x".to_string())];
            assert!(policy().authorize("b", "https://scim.b.example/v2/Users", &headers).is_ok(), "{name}");
        }
        for name in [
            "Authorization",
            "host",
            "Content-Length",
            "Transfer-Encoding",
            "Cookie",
            "Proxy-Authorization",
            "Connection",
            "Upgrade",
            "EXPECT",
            "TE",
            "Keep-Alive",
            "Accept-Encoding",
            "X-Original-URL",
            "X-Rewrite-URL",
            "X-HTTP-Method-Override",
            "X-HTTP-Method",
            "X-Method-Override",
            "X-Forwarded-Host",
            "X-Forwarded-For",
            "X-Forwarded-Proto",
            "X-Forwarded-Prefix",
            "Forwarded",
            "X-Real-IP",
            "Via",
            "X-Anything",
            "",
        ] {
            let headers = vec![(name.to_string(), "x".to_string())];
            let err = policy().authorize("b", "https://scim.b.example/v2/Users", &headers).unwrap_err();
            assert!(err.to_string().contains("may set only Accept"), "{name}: {err}");
        }
        let injected = vec![("Accept".to_string(), "a\r\nX-Evil: 1".to_string())];
        assert!(policy().authorize("b", "https://scim.b.example/v2/Users", &injected).is_err());
    }
}
