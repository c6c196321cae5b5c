//! A strict parser for the http(s) URLs the host deals with, and the rule that decides whether a
//! request URL lies under a provider's base URL. Deliberately small: anything unusual is
//! refused rather than interpreted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlHost {
    /// A DNS name, lower-cased.
    Domain(String),
    Ip(IpAddr),
}

impl UrlHost {
    /// Loopback: `localhost`, 127.0.0.0/8, ::1.
    pub fn is_loopback(&self) -> bool {
        match self {
            UrlHost::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
            UrlHost::Ip(ip) => ip.is_loopback(),
        }
    }
}

impl fmt::Display for UrlHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlHost::Domain(name) => f.write_str(name),
            UrlHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            UrlHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub scheme: Scheme,
    pub host: UrlHost,
    pub port: u16,
    /// The path as written (percent-encoding kept), never empty.
    pub path: String,
    pub query: Option<String>,
}

impl HttpUrl {
    /// `scheme://host:port`, the port always written.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

/// Parses an absolute http or https URL. Refuses user info, fragments, spaces, control and
/// non-ASCII characters, and malformed percent-encoding; the message says which.
pub fn parse(text: &str) -> Result<HttpUrl, String> {
    if let Some(bad) = text.chars().find(|c| c.is_control() || c.is_whitespace() || !c.is_ascii()) {
        return Err(format!("contains {:?}; percent-encode it", bad));
    }
    let (scheme, rest) = text.split_once("://").ok_or("is not an absolute URL (no scheme://)")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(format!("has scheme '{other}'; only https (or http to loopback) is allowed")),
    };
    if rest.contains('#') {
        return Err("has a fragment (#...); remove it".into());
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err("carries user info (user@host); put credentials in token_env or token_file instead".into());
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => scheme.default_port(),
        Some(port) => port,
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (rest, None),
    };
    let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
    check_percent_encoding(&path)?;
    if let Some(query) = &query {
        check_percent_encoding(query)?;
    }
    Ok(HttpUrl { scheme, host, port, path, query })
}

fn split_host_port(authority: &str) -> Result<(UrlHost, Option<u16>), String> {
    if authority.is_empty() {
        return Err("has no host".into());
    }
    let (host_text, port_text) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("has an unclosed '[' in its host")?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| format!("has an invalid IPv6 host [{inside}]"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("has junk after its IPv6 host")?),
        };
        return Ok((UrlHost::Ip(IpAddr::V6(ip)), port.map(parse_port).transpose()?));
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = port_text.map(parse_port).transpose()?;
    if host_text.is_empty() {
        return Err("has no host".into());
    }
    let host_lower = host_text.to_ascii_lowercase();
    if host_lower.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let ip: Ipv4Addr = host_lower.parse().map_err(|_| format!("has an invalid IPv4 host {host_text}"))?;
        return Ok((UrlHost::Ip(IpAddr::V4(ip)), port));
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let name = host_lower.strip_suffix('.').unwrap_or(&host_lower);
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("has an invalid host name '{host_text}'"));
    }
    Ok((UrlHost::Domain(name.to_string()), port))
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!("has an invalid port '{text}'")),
    }
}

fn check_percent_encoding(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    for (index, &byte) in bytes.iter().enumerate() {
        if byte == b'%' {
            let valid = bytes.get(index + 1..index + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return Err("has a '%' that is not followed by two hex digits".into());
            }
        }
    }
    Ok(())
}

/// Decodes %XX escapes; a `%` not followed by two hex digits stays as it is, and bytes that are
/// not UTF-8 become U+FFFD.
pub fn percent_decode(text: &str) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                out.push(high * 16 + low);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a path holds a `.` or `..` segment, written raw or percent-encoded (even several
/// times over), or a backslash that some servers read as a slash.
pub fn has_dot_segments(path: &str) -> bool {
    let mut current = path.to_string();
    for _ in 0..4 {
        if current.split(['/', '\\']).any(|segment| segment == "." || segment == "..") {
            return true;
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            return false;
        }
        current = decoded;
    }
    true
}

/// Whether `url` lies under `base`: same scheme, host and port, and a path inside the base
/// path on a segment boundary (`/v2` covers `/v2/Users`, not `/v2evil`).
pub fn is_under(base: &HttpUrl, url: &HttpUrl) -> bool {
    if base.scheme != url.scheme || base.host != url.host || base.port != url.port {
        return false;
    }
    let base_path = base.path.trim_end_matches('/');
    match url.path.strip_prefix(base_path) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> HttpUrl {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_and_normalises() {
        let parsed = url("HTTPS://SCIM1.Private.Zscaler.com/scim/1/144118148382065427/v2");
        assert_eq!(parsed.scheme, Scheme::Https);
        assert_eq!(parsed.host, UrlHost::Domain("scim1.private.zscaler.com".into()));
        assert_eq!(parsed.port, 443);
        assert_eq!(parsed.path, "/scim/1/144118148382065427/v2");
        let parsed = url("http://127.0.0.1:8080/v2/Users?filter=a%20b");
        assert_eq!(parsed.host, UrlHost::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(parsed.query.as_deref(), Some("filter=a%20b"));
        assert_eq!(url("http://[::1]:9/x").host, UrlHost::Ip("::1".parse().unwrap()));
        assert_eq!(url("https://h.example").path, "/");
    }

    #[test]
    fn refuses_what_a_base_url_must_not_have() {
        for (bad, why) in [
            ("ftp://h.example/x", "scheme"),
            ("https://user:pw@h.example/x", "user info"),
            ("https://h.example/x#frag", "fragment"),
            ("https://h.example/a b", "percent-encode"),
            ("https://h.example:0/x", "port"),
            ("https://h.example:99999/x", "port"),
            ("https:///x", "no host"),
            ("https://h_.exa mple", "percent-encode"),
            ("https://h.example/%zz", "two hex digits"),
            ("h.example/x", "no scheme"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn under_the_base_on_a_segment_boundary_only() {
        let base = url("https://h.example/scim/v2");
        assert!(is_under(&base, &url("https://h.example/scim/v2/Users?x=1")));
        assert!(is_under(&base, &url("https://h.example:443/scim/v2")));
        assert!(is_under(&url("https://h.example/scim/v2/"), &url("https://h.example/scim/v2/Groups")));
        assert!(!is_under(&base, &url("https://h.example/scim/v2evil")));
        assert!(!is_under(&base, &url("https://h.example/scim")));
        assert!(!is_under(&base, &url("http://h.example/scim/v2/Users")));
        assert!(!is_under(&base, &url("https://h.example:8443/scim/v2/Users")));
        assert!(!is_under(&base, &url("https://other.example/scim/v2/Users")));
    }

    #[test]
    fn finds_dot_segments_however_encoded() {
        for path in [
            "/v2/../admin",
            "/v2/./Users",
            "/v2/%2e%2e/admin",
            "/v2/%2E%2e/admin",
            "/v2/.%2e/admin",
            "/v2/%252e%252e/admin",
            "/v2/a%2f..%2fb",
            "/v2\\..\\admin",
            "/v2/..",
        ] {
            assert!(has_dot_segments(path), "{path}");
        }
        for path in ["/v2/Users/..a", "/v2/Users/a.b", "/v2/Users/%2e%2e%2e", "/v2/Users"] {
            assert!(!has_dot_segments(path), "{path}");
        }
        assert_eq!(percent_decode("a%2Fb%zz%é%41"), "a/b%zz%éA");
    }
}
