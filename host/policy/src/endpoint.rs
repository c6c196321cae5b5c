//! The URLs of SCIM endpoints: parsed by `url` (the WHATWG parser), after rules on the raw text
//! that the parser would otherwise hide (it resolves `..` and `%2e%2e`, reads `\` as `/` and drops
//! tabs), and the rule that decides whether a request URL lies under a provider's base URL.

use percent_encoding::percent_decode;
use std::fmt;
use std::net::IpAddr;
use url::{Host, Url};

/// Why a URL is refused; the text says what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("contains {0:?}; percent-encode it")]
    Character(char),
    #[error("is not an absolute URL ({0})")]
    Parse(url::ParseError),
    #[error("has scheme '{0}'; only https (or http to loopback) is allowed")]
    Scheme(String),
    #[error("carries user info (user@host); put credentials in token_env or token_file instead")]
    UserInfo,
    #[error("has a fragment (#...); remove it")]
    Fragment,
    #[error("has no host")]
    NoHost,
    #[error("has port 0")]
    PortZero,
    #[error("has a '%' that is not followed by two hex digits")]
    Percent,
    #[error("has {0} in its path")]
    Path(PathProblem),
    #[error("is not written as it would be sent ({0}); write it in that form")]
    NotCanonical(String),
}

/// What in a raw path could mean something else to some server than it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    DotSegment,
    Backslash,
    Parameter,
    EncodedSeparator,
    Normalises,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::DotSegment => "'.' or '..' segments",
            PathProblem::Backslash => "a backslash, which some servers read as '/'",
            PathProblem::Parameter => "a ';' parameter, which some servers strip ('..;/')",
            PathProblem::EncodedSeparator => "a percent-encoded '.', '/' or '\\' (in any encoding)",
            PathProblem::Normalises => {
                "a percent-encoded character that Unicode normalisation (NFKC) turns into ASCII, as a fullwidth \
                 '．' turns into '.'; SCIM ids never hold one"
            }
        })
    }
}

/// Parses an absolute http(s) URL, refusing what the raw text hides: spaces, control and
/// non-ASCII characters, stray `%`, user info, fragments, and paths that could be read as
/// another path (see [`path_problem`]).
pub fn parse(text: &str) -> Result<Url, UrlError> {
    if let Some(bad) = text.chars().find(|&c| c.is_control() || c.is_whitespace() || !c.is_ascii() || c == '\\') {
        return Err(UrlError::Character(bad));
    }
    // The parser would read `https:///x` as host `x`.
    if text.split_once("://").is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return Err(UrlError::NoHost);
    }
    let bytes = text.as_bytes();
    let stray_percent = bytes.iter().enumerate().any(|(index, &byte)| {
        byte == b'%' && !bytes.get(index + 1..index + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if stray_percent {
        return Err(UrlError::Percent);
    }
    let url = Url::parse(text).map_err(UrlError::Parse)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::UserInfo);
    }
    if url.fragment().is_some() {
        return Err(UrlError::Fragment);
    }
    if url.host().is_none() {
        return Err(UrlError::NoHost);
    }
    if url.port() == Some(0) {
        return Err(UrlError::PortZero);
    }
    if let Some(problem) = path_problem(raw_path(text)) {
        return Err(UrlError::Path(problem));
    }
    Ok(url)
}

/// Parses a request URL, which must be written exactly as it will be sent: the client sends the
/// URL that was checked, never a reinterpretation of it.
pub fn parse_exact(text: &str) -> Result<Url, UrlError> {
    let url = parse(text)?;
    if url.as_str() != text {
        return Err(UrlError::NotCanonical(url.to_string()));
    }
    Ok(url)
}

/// The path of an absolute URL as written: after `scheme://authority`, before `?` or `#`.
fn raw_path(text: &str) -> &str {
    let after_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    let path_start = after_scheme.find(['/', '\\', '?', '#']).unwrap_or(after_scheme.len());
    let path = &after_scheme[path_start..];
    let path_end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..path_end]
}

/// Refuses what some server could read as another path: `.`/`..` segments, backslashes, `;`
/// parameters (`..;/` passes some proxies), any percent-encoded `.`, `/` or `\`, however many
/// times encoded and in overlong UTF-8 (`%c0%ae`) too, and percent-encoded characters that a server
/// applying Unicode normalisation would read as ASCII (`%EF%BC%8E`, a fullwidth full stop, is `.`).
pub fn path_problem(path: &str) -> Option<PathProblem> {
    if path.contains('\\') {
        return Some(PathProblem::Backslash);
    }
    if path.contains(';') {
        return Some(PathProblem::Parameter);
    }
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Some(PathProblem::DotSegment);
    }
    let separators = |bytes: &[u8]| bytes.iter().filter(|b| matches!(b, b'.' | b'/' | b'\\')).count();
    let mut layer = path.as_bytes().to_vec();
    // Each round undoes one layer of encoding; a separator that appears, or an overlong one,
    // was hidden in a percent-encoding.
    for _ in 0..4 {
        let decoded: Vec<u8> = percent_decode(&layer).collect();
        if decoded == layer {
            return normalises_to_ascii(&decoded).then_some(PathProblem::Normalises);
        }
        if separators(&decoded) > separators(&layer) || has_overlong_separator(&decoded) {
            return Some(PathProblem::EncodedSeparator);
        }
        layer = decoded;
    }
    Some(PathProblem::EncodedSeparator)
}

/// Why `id` cannot be a SCIM id the plugin writes into a path (`id:` users, `restricted_group_id`),
/// checked before anything is sent: the plugin's own rule (no slash, `%`, dot segment or control
/// character) and no character that Unicode normalisation reads as ASCII, which the egress rule
/// would refuse once it is percent-encoded.
pub fn id_problem(id: &str) -> Option<String> {
    soar_types::user_ref::id_problem(id)
        .map(str::to_string)
        .or_else(|| normalises_to_ascii(id.as_bytes()).then(|| format!("has {}", PathProblem::Normalises)))
}

/// Whether decoded text holds a non-ASCII character that NFKC turns into ASCII.
fn normalises_to_ascii(bytes: &[u8]) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let text = String::from_utf8_lossy(bytes);
    text.chars().filter(|c| !c.is_ascii()).any(|c| std::iter::once(c).nfkc().any(|n| n.is_ascii()))
}

/// Whether the bytes hold `.`, `/` or `\` in an overlong UTF-8 form (2 to 4 bytes), which lenient
/// decoders turn back into the character.
fn has_overlong_separator(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|start| {
        let lead = bytes[start];
        let length = match lead {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return false,
        };
        let Some(continuation) = bytes.get(start + 1..start + length) else {
            return false;
        };
        if !continuation.iter().all(|b| (0x80..0xC0).contains(b)) {
            return false;
        }
        let lead_bits = u32::from(lead) & (0x7F >> length);
        let code = continuation.iter().fold(lead_bits, |code, b| (code << 6) | (u32::from(*b) & 0x3F));
        matches!(char::from_u32(code), Some('.' | '/' | '\\'))
    })
}

/// A URL as written, fit to quote in a message: its user info, query and fragment hidden (a
/// password or an access token may stand there), and text that does not start like a URL not
/// shown at all (it may be a token pasted into the wrong key).
pub fn shown(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://").filter(|(scheme, _)| {
        !scheme.is_empty() && scheme.len() <= 10 && scheme.bytes().all(|b| b.is_ascii_alphabetic())
    }) else {
        return "(a value that is not a URL; not shown)".into();
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before, after) = rest.split_at(end);
    let authority_end = before.find(['/', '\\']).unwrap_or(before.len());
    let (authority, path) = before.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_string(),
    };
    let hidden = match after.chars().next() {
        Some('?') => "?<redacted>",
        Some(_) => "#<redacted>",
        None => "",
    };
    let shown: String = format!("{scheme}://{authority}{path}{hidden}").chars().take(300).collect();
    shown.escape_debug().to_string()
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or ::1, as written.
pub fn names_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The host of a URL as an address, when it is one.
pub fn ip_host(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    }
}

/// Whether `url` lies under `base`: same scheme, host and port, and a path inside the base path
/// on a segment boundary (`/v2` covers `/v2/Users`, not `/v2evil`).
pub fn is_under(base: &Url, url: &Url) -> bool {
    if base.scheme() != url.scheme()
        || base.host() != url.host()
        || base.port_or_known_default() != url.port_or_known_default()
    {
        return false;
    }
    let base_path = base.path().trim_end_matches('/');
    match url.path().strip_prefix(base_path) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `scheme://host:port` with the host in its canonical form ([`canonical_host`]) and the port
/// always written: the key of per-origin rules and of the shared rate limit.
pub fn origin(url: &Url) -> String {
    format!("{}://{}:{}", url.scheme(), canonical_host(url), url.port_or_known_default().unwrap_or(0))
}

/// The tenant a base URL names, however it is written: its [`origin`] and its path normalised
/// (unreserved characters percent-decoded, other escapes in capitals, letters lower-cased, repeated
/// and trailing slashes dropped). The key of the change lock, in files and in PostgreSQL. Two
/// spellings of one tenant give one key; what it cannot see is a tenant under two names that
/// resolve alike (`scim.example` and its address), which is why it never keys by address.
pub fn tenant(url: &Url) -> String {
    let mut path = String::new();
    for segment in url.path().split('/').filter(|segment| !segment.is_empty()) {
        path.push('/');
        path.push_str(&normalised_segment(segment));
    }
    format!("{}{path}", origin(url))
}

/// A host as one name: lower-cased without a trailing dot, and every loopback name and address
/// (`localhost`, `*.localhost`, 127.0.0.0/8, ::1) as `loopback`.
pub fn canonical_host(url: &Url) -> String {
    if names_loopback(url) || ip_host(url).is_some_and(|ip| crate::address::canonical(ip).is_loopback()) {
        return "loopback".into();
    }
    url.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase()
}

fn normalised_segment(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = String::new();
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                out.push(byte.to_ascii_lowercase() as char);
                index += 3;
            }
            Some(byte) => {
                out.push_str(&format!("%{byte:02X}"));
                index += 3;
            }
            None => {
                out.push(bytes[index].to_ascii_lowercase() as char);
                index += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_and_normalises() {
        let parsed = url("HTTPS://SCIM1.Private.Zscaler.com/scim/1/144118148382065427/v2");
        assert_eq!(parsed.as_str(), "https://scim1.private.zscaler.com/scim/1/144118148382065427/v2");
        assert_eq!(parsed.port_or_known_default(), Some(443));
        let parsed = url("http://127.0.0.1:8080/v2/Users?filter=a%20b");
        assert_eq!(ip_host(&parsed), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(parsed.query(), Some("filter=a%20b"));
        assert_eq!(ip_host(&url("http://[::1]:9/x")), Some("::1".parse().unwrap()));
        assert_eq!(url("https://h.example").path(), "/");
        assert_eq!(origin(&url("https://h.example/x")), "https://h.example:443");
    }

    #[test]
    fn refuses_what_a_url_must_not_have() {
        for (bad, why) in [
            ("ftp://h.example/x", "scheme"),
            ("https://user:pw@h.example/x", "user info"),
            ("https://h.example/x#frag", "fragment"),
            ("https://h.example/a b", "percent-encode"),
            ("https://h.example:0/x", "port 0"),
            ("https://h.example:99999/x", "not an absolute URL"),
            ("https:///x", "no host"),
            ("https://h.example\\@evil.example/x", "percent-encode"),
            ("https://h_.exa mple", "percent-encode"),
            ("https://h.example/%zz", "two hex digits"),
            ("h.example/x", "not an absolute URL"),
            ("https://h.example/v2\t/x", "percent-encode"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn one_tenant_written_several_ways_is_one_key() {
        let key = |text: &str| tenant(&url(text));
        let loopback = key("http://127.0.0.1:8080/scim/1/7/v2");
        for same in [
            "http://localhost:8080/scim/1/7/v2",
            "http://LOCALHOST:8080/scim/1/7/v2/",
            "http://[::1]:8080/scim/1/7/v2",
            "http://127.0.0.2:8080/scim//1/7/v2",
            "http://api.localhost:8080/SCIM/1/7/V2",
            "http://127.1:8080/scim/%31/7/v2",
        ] {
            assert_eq!(key(same), loopback, "{same}");
        }
        assert_eq!(loopback, "http://loopback:8080/scim/1/7/v2");
        let remote = key("https://scim1.private.zscaler.com/scim/1/7/v2");
        for same in
            ["https://SCIM1.Private.Zscaler.COM./scim/1/7/v2/", "https://scim1.private.zscaler.com:443/scim/1/7/v2"]
        {
            assert_eq!(key(same), remote, "{same}");
        }
        for other in [
            "https://scim1.private.zscaler.com/scim/1/8/v2",
            "https://scim1.private.zscaler.com:8443/scim/1/7/v2",
            "http://127.0.0.1:8081/scim/1/7/v2",
        ] {
            assert_ne!(key(other), remote, "{other}");
            assert_ne!(key(other), loopback, "{other}");
        }
        assert_eq!(key("https://h.example/a%7e%2b%20b"), "https://h.example:443/a~%2B%20b");
    }

    #[test]
    fn urls_are_shown_without_what_may_be_secret() {
        assert_eq!(shown("https://svc:SECRET@scim.example/v2"), "https://<redacted>@scim.example/v2");
        assert_eq!(shown("https://scim.example/v2?access_token=SECRET"), "https://scim.example/v2?<redacted>");
        assert_eq!(shown("https://scim.example/v2#SECRET"), "https://scim.example/v2#<redacted>");
        assert_eq!(shown("tok-SECRET-0123456789"), "(a value that is not a URL; not shown)");
        assert_eq!(shown("https://scim.example/v2"), "https://scim.example/v2");
    }

    #[test]
    fn request_urls_must_be_written_as_sent() {
        assert!(parse_exact("https://h.example/v2/Users?filter=a%20b").is_ok());
        for text in ["https://H.example/v2/Users", "https://h.example:443/v2/Users", "https://h.example/v2/Us\"ers"] {
            assert!(matches!(parse_exact(text), Err(UrlError::NotCanonical(_) | UrlError::Character(_))), "{text}");
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
    fn finds_paths_that_could_be_read_as_others_however_encoded() {
        for path in [
            "/v2/../admin",
            "/v2/./Users",
            "/v2/..",
            "/v2/%2e%2e/admin",
            "/v2/%2E%2e/admin",
            "/v2/.%2e/admin",
            "/v2/%252e%252e/admin",
            "/v2/a%2f..%2fb",
            "/v2/a%2Fb",
            "/v2\\..\\admin",
            "/v2/..;/admin",
            "/v2/Users;jsessionid=1",
            "/v2/%c0%ae%c0%ae/admin",
            "/v2/%C0%AF",
            "/v2/%c1%9c",
            "/v2/%e0%80%ae",
            "/v2/%f0%80%80%af",
            "/v2/%25c0%25ae",
            "/v2/%5c",
            "/v2/%25252525252e",
        ] {
            assert!(path_problem(path).is_some(), "{path}");
        }
        for path in [
            "/v2/%EF%BC%8E%EF%BC%8E/admin",
            "/v2/%ef%bc%8f",
            "/v2/%EF%BC%BC",
            "/v2/a%E2%80%A4%E2%80%A4b",
            "/v2/%EF%B9%92",
            "/v2/%25EF%25BC%258E%25EF%25BC%258E",
        ] {
            assert_eq!(path_problem(path), Some(PathProblem::Normalises), "{path}");
        }
        for path in
            ["/v2/Users/..a", "/v2/Users/a.b", "/v2/Users/7000777", "/v2/Users", "/v2/Groups/%20x", "/v2/%c3%a9"]
        {
            assert_eq!(path_problem(path), None, "{path}");
        }
    }
}
