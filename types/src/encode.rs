//! Turning caller-supplied values into filter expressions and URLs safely (RFC 7644 §3.4.2.2,
//! RFC 3986).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// A SCIM filter string value: the JSON string literal of `value`, quotes included.
pub fn filter_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `attribute eq "value"`, the value escaped.
pub fn eq_filter(attribute: &str, value: &str) -> String {
    format!("{attribute} eq {}", filter_string(value))
}

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters: safe in a query value and
/// in a path segment alike.
pub fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, NOT_UNRESERVED).collect()
}

/// A path segment for an opaque id; `.` and `..` would change the path, so they are encoded too.
pub fn path_segment(value: &str) -> String {
    match value {
        "." => "%2E".to_string(),
        ".." => "%2E%2E".to_string(),
        _ => percent_encode(value),
    }
}

/// `name=value&...`, each value percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(name, value)| format!("{name}={}", percent_encode(value))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_control_characters() {
        assert_eq!(filter_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(filter_string("a\u{1}b\n"), "\"a\\u0001b\\n\"");
        assert_eq!(filter_string("jörg"), "\"jörg\"");
    }

    #[test]
    fn injection_stays_inside_the_string() {
        let filter = eq_filter("userName", "x\" or userName pr \"@example.com");
        assert_eq!(filter, r#"userName eq "x\" or userName pr \"@example.com""#);
    }

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(percent_encode("userName eq \"a+b@c.d\""), "userName%20eq%20%22a%2Bb%40c.d%22");
        assert_eq!(percent_encode("ö/?#&="), "%C3%B6%2F%3F%23%26%3D");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("a/../b"), "a%2F..%2Fb");
    }
}
