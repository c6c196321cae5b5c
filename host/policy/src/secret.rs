//! Bearer tokens and other secrets: what a token may look like, kept out of Debug output, and
//! scrubbed from everything that leaves the host or reaches the plugin, in every form a server
//! or proxy could echo them: exact; base64 (standard or URL-safe, any alignment, with or without
//! padding); and with any of its characters escaped, in any mix: percent-encoded (either case,
//! also twice over), JSON `\uXXXX` (behind any number of backslashes) and `\/`, HTML `&#NN;` and
//! `&#xHH;`. Everything is found in the raw bytes: whether a body parses as JSON, is cut short or
//! is plain text changes nothing. Header names, which HTTP lower-cases, are searched without
//! regard to case.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use memchr::memmem;
use std::fmt;
use std::sync::Arc;

/// RFC 6750 bearer tokens are at least this long here: shorter ones are too weak to be tokens,
/// and would make the redactor scrub unrelated text.
pub const MIN_TOKEN_CHARS: usize = 8;
/// The longest token accepted (16 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Secrets shorter than this are scrubbed only as written and percent-encoded: their base64
/// forms would be too short to tell from other text.
const MIN_BASE64_SECRET_BYTES: usize = 6;

/// A secret value; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it: the Authorization header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a token is refused, never quoting it.
pub fn token_problem(token: &str) -> Option<String> {
    let length = token.chars().count();
    if token.is_empty() {
        return Some("the token is empty; put the SCIM bearer token there".into());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Some(format!("the token is longer than {} KiB; check that this is the token", MAX_TOKEN_BYTES / 1024));
    }
    let padding = token.len() - token.trim_end_matches('=').len();
    let body = &token[..token.len() - padding];
    let b64token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/');
    if let Some((index, bad)) = body.chars().enumerate().find(|(_, c)| !b64token(*c)) {
        let what = match bad {
            '\u{feff}' => "a byte-order mark".to_string(),
            ' ' | '\t' => "white space".to_string(),
            '\n' | '\r' => "a line break (a stray newline?)".to_string(),
            c if c.is_control() => "a control character".to_string(),
            '=' => "'=' before the end".to_string(),
            c if !c.is_ascii() => "a non-ASCII character".to_string(),
            _ => "a character".to_string(),
        };
        return Some(format!(
            "the token has {what} at position {}, outside RFC 6750's token characters \
             (A-Z a-z 0-9 - . _ ~ + / and trailing =); copy the token exactly",
            index + 1
        ));
    }
    if length < MIN_TOKEN_CHARS {
        return Some(format!(
            "the token is {length} characters long; a SCIM bearer token has at least {MIN_TOKEN_CHARS}"
        ));
    }
    None
}

pub const REDACTED: &str = "<redacted>";

/// One secret and searchers for the fixed byte strings that give it away (as written, and its
/// base64 forms), built once: every response and every output line is scanned.
#[derive(Clone, Debug)]
struct Known {
    raw: Vec<u8>,
    literals: Vec<memmem::Finder<'static>>,
    /// The same, lower-cased: for text HTTP lower-cases (header names).
    raw_lowered: Vec<u8>,
    literals_lowered: Vec<memmem::Finder<'static>>,
}

/// Replaces every known secret in text and bodies; shared by everything that prints, logs or
/// returns text, and applied to every response before the plugin sees it.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<Known>,
}

/// The base64 text every encoding of `secret` contains, whatever bytes stand before and after it:
/// one run per alignment (0, 1 or 2 bytes before it in its 3-byte group), per alphabet.
fn base64_cores(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut cores = Vec::new();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(secret);
            let encoded = engine.encode(&shifted).into_bytes();
            // Leading characters mix in the bytes before; the last one, the bytes after.
            let skip = [0, 2, 3][offset];
            let drop_last = usize::from(shifted.len() % 3 != 0);
            if encoded.len() > skip + drop_last {
                cores.push(encoded[skip..encoded.len() - drop_last].to_vec());
            }
        }
    }
    cores.sort();
    cores.dedup();
    cores
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Self {
        let mut raws: Vec<Vec<u8>> =
            secrets.into_iter().map(|s| s.expose().as_bytes().to_vec()).filter(|s| !s.is_empty()).collect();
        raws.sort();
        raws.dedup();
        let secrets = raws
            .into_iter()
            .map(|raw| {
                let mut literals = vec![raw.clone()];
                if raw.len() >= MIN_BASE64_SECRET_BYTES {
                    literals.extend(base64_cores(&raw));
                }
                let finders = |literals: &[Vec<u8>]| {
                    literals.iter().map(|literal| memmem::Finder::new(literal).into_owned()).collect()
                };
                let lowered: Vec<Vec<u8>> = literals.iter().map(|literal| literal.to_ascii_lowercase()).collect();
                Known {
                    raw_lowered: raw.to_ascii_lowercase(),
                    literals: finders(&literals),
                    literals_lowered: finders(&lowered),
                    raw,
                }
            })
            .collect();
        Redactor { secrets }
    }

    /// Text with every form of every secret replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        match self.redact_bytes(text.as_bytes()) {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => text.to_string(),
        }
    }

    /// Text that HTTP may have lower-cased (a header name), with every form of every secret
    /// replaced whatever the case of its letters.
    pub fn redact_ignoring_case(&self, text: &str) -> String {
        let lowered = text.to_ascii_lowercase();
        match self.scrub(text.as_bytes(), Some(lowered.as_bytes())) {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => text.to_string(),
        }
    }

    /// A body with every form of every secret replaced, or `None` when it holds none.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        if self.secrets.is_empty() {
            return None;
        }
        self.scrub(bytes, None)
    }

    /// Replaces the spans where a secret stands in `bytes`; with `lowered` (the same bytes
    /// lower-cased), spans are looked for there, against the lower-cased secrets.
    fn scrub(&self, bytes: &[u8], lowered: Option<&[u8]>) -> Option<Vec<u8>> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for known in &self.secrets {
            let (haystack, literals, raw) = match lowered {
                Some(lowered) => (lowered, &known.literals_lowered, &known.raw_lowered),
                None => (bytes, &known.literals, &known.raw),
            };
            for literal in literals {
                let length = literal.needle().len();
                spans.extend(literal.find_iter(haystack).map(|start| (start, start + length)));
            }
            spans.extend(escaped_spans(haystack, raw, lowered.is_some()));
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort();
        let mut out = Vec::with_capacity(bytes.len());
        let mut written = 0;
        let mut index = 0;
        while index < spans.len() {
            let (start, mut end) = spans[index];
            while index + 1 < spans.len() && spans[index + 1].0 < end {
                index += 1;
                end = end.max(spans[index].1);
            }
            if start >= written {
                out.extend_from_slice(&bytes[written..start]);
                out.extend_from_slice(REDACTED.as_bytes());
                written = end;
            } else if end > written {
                written = end;
            }
            index += 1;
        }
        out.extend_from_slice(&bytes[written..]);
        Some(out)
    }
}

/// Where `secret` stands in `bytes` with at least one of its bytes escaped (see [`match_escape`]);
/// `folded`: the bytes are lower-cased, so escaped letters compare without case.
fn escaped_spans(bytes: &[u8], secret: &[u8], folded: bool) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let first = bytes[start];
        if matches!(first, b'%' | b'\\' | b'&') || first == secret[0] {
            if let Some((end, escaped)) = match_escaped(bytes, start, secret, folded) {
                if escaped {
                    spans.push((start, end));
                    start = end;
                    continue;
                }
            }
        }
        start += 1;
    }
    spans
}

/// Matches `secret` at `start`, each byte written plainly or escaped; returns the end and
/// whether any byte was escaped.
fn match_escaped(bytes: &[u8], start: usize, secret: &[u8], folded: bool) -> Option<(usize, bool)> {
    let mut at = start;
    let mut escaped = false;
    for &wanted in secret {
        if bytes.get(at) == Some(&wanted) && !matches!(wanted, b'%' | b'\\' | b'&') {
            at += 1;
            continue;
        }
        at = match_escape(bytes, at, wanted, folded)?;
        escaped = true;
    }
    Some((at, escaped))
}

/// One character `wanted` escaped at `at`: `%XX` (also `%25XX`, `%2525XX`), a JSON `\uXXXX` or
/// `\/` behind any number of backslashes (JSON inside JSON), or an HTML `&#NN;` / `&#xHH;`.
/// Returns the end.
fn match_escape(bytes: &[u8], at: usize, wanted: u8, folded: bool) -> Option<usize> {
    let is_wanted = |value: u32| {
        let Ok(byte) = u8::try_from(value) else { return false };
        if folded {
            byte.eq_ignore_ascii_case(&wanted)
        } else {
            byte == wanted
        }
    };
    let hex = |from: usize, digits: usize| -> Option<u32> {
        let text = std::str::from_utf8(bytes.get(from..from + digits)?).ok()?;
        u32::from_str_radix(text, 16).ok().filter(|_| text.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    match *bytes.get(at)? {
        b'%' => {
            let mut at = at + 1;
            for _ in 0..3 {
                let value = hex(at, 2)?;
                if is_wanted(value) {
                    return Some(at + 2);
                }
                if value != u32::from(b'%') {
                    return None;
                }
                at += 2;
            }
            None
        }
        b'\\' => {
            let mut at = at;
            while bytes.get(at) == Some(&b'\\') {
                at += 1;
            }
            match *bytes.get(at)? {
                b'/' if wanted == b'/' => Some(at + 1),
                b'u' if hex(at + 1, 4).is_some_and(is_wanted) => Some(at + 5),
                _ => None,
            }
        }
        b'&' if bytes.get(at + 1) == Some(&b'#') => {
            let (digits_at, radix) = match bytes.get(at + 2) {
                Some(b'x' | b'X') => (at + 3, 16),
                _ => (at + 2, 10),
            };
            let length =
                bytes[digits_at.min(bytes.len())..].iter().take(8).take_while(|b| b.is_ascii_hexdigit()).count();
            let digits = std::str::from_utf8(&bytes[digits_at..digits_at + length]).ok()?;
            let value = u32::from_str_radix(digits, radix).ok()?;
            (is_wanted(value) && bytes.get(digits_at + length) == Some(&b';')).then_some(digits_at + length + 1)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "tok-Abc/123+xyz=";

    fn redactor() -> Redactor {
        Redactor::new([Secret::new(TOKEN), Secret::new("another-secret-value")])
    }

    fn hides(text: &str) {
        let out = redactor().redact(text);
        assert!(out.contains(REDACTED), "{text:?} -> {out:?}");
        assert!(!out.contains("Abc/123") && !out.contains("Abc%2F123"), "{text:?} -> {out:?}");
    }

    #[test]
    fn never_shows_the_value() {
        let secret = Secret::new("tok-123-long");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let redactor = Redactor::new([secret, Secret::new("tok-123-longer")]);
        assert_eq!(redactor.redact("Bearer tok-123-longer and tok-123-long"), "Bearer <redacted> and <redacted>");
    }

    #[test]
    fn finds_the_token_however_it_is_echoed() {
        hides(&format!("Authorization: Bearer {TOKEN}"));
        hides("Bearer tok-Abc%2F123%2Bxyz%3D");
        hides("Bearer tok-Abc%2f123%2bxyz%3d");
        hides("Bearer %74%6F%6B-Abc%2F123+xyz=");
        hides("double: tok-Abc%252F123%252Bxyz%253D");
        let plain = base64::engine::general_purpose::STANDARD.encode(format!("Bearer {TOKEN}"));
        hides(&plain);
        for prefix in ["", "x", "xy"] {
            let encoded = base64::engine::general_purpose::URL_SAFE.encode(format!("{prefix}{TOKEN} trailing"));
            hides(&encoded);
            let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{prefix}{TOKEN}"));
            hides(&encoded);
        }
    }

    #[test]
    fn a_json_body_is_scrubbed_in_its_decoded_strings() {
        let body = r#"{"detail":"you sent \u0074ok-Abc\/123+xyz=","x":1}"#;
        let out = redactor().redact_bytes(body.as_bytes()).expect("found");
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["detail"], "you sent <redacted>");
        assert_eq!(value["x"], 1);
        assert!(redactor().redact_bytes(br#"{"detail":"nothing to see \u0041"}"#).is_none());
    }

    #[test]
    fn escapes_are_found_in_raw_bytes_whatever_the_body_is() {
        for body in [
            // Plain text, JSON cut short, JSON after a byte-order mark, JSON with a lone surrogate.
            "echo: \\u0074ok-Abc\\/123+xyz=",
            r#"{"detail":"you sent \u0074\u006F\u006B-Abc\/123\u002bxyz\u003D"#,
            "\u{feff}{\"detail\":\"\\u0074ok-Abc\\/123+xyz=\"}",
            r#"{"bad":"\ud800","detail":"tok-Abc\/123+xyz="}"#,
            // JSON inside a JSON string, a mix of escapes, HTML entities.
            r#"{"inner":"{\"t\":\"\\u0074ok-Abc\\/123+xyz=\"}"}"#,
            "tok-Abc%2F123\\u002Bxyz&#61;",
            "<p>&#116;&#x6F;&#X6b;-Abc&#47;123+xyz=</p>",
        ] {
            let out = redactor().redact_bytes(body.as_bytes()).unwrap_or_else(|| panic!("not found in {body:?}"));
            let out = String::from_utf8_lossy(&out);
            assert!(out.contains(REDACTED) && !out.contains("Abc"), "{body:?} -> {out:?}");
        }
    }

    #[test]
    fn a_header_name_lower_cased_by_http_still_hides_the_token() {
        let name = format!("x-{}", TOKEN.to_ascii_lowercase());
        assert_eq!(redactor().redact(&name), name, "the plain pass looks at case");
        assert_eq!(redactor().redact_ignoring_case(&name), "x-<redacted>");
        assert_eq!(redactor().redact_ignoring_case("x-tok-abc%2f123%2bxyz%3d"), "x-<redacted>");
        assert_eq!(redactor().redact_ignoring_case("content-type"), "content-type");
    }

    #[test]
    fn unrelated_text_is_left_alone() {
        let text = "user alice@corp.example: 200 OK % %% %2 %zz tok-Abc/12 AAAA==== \\u00 &#; &#x; \\\\";
        assert_eq!(redactor().redact(text), text);
        assert!(redactor().redact_bytes(b"\xff\xfe binary").is_none());
    }

    #[test]
    fn tokens_must_look_like_tokens() {
        assert_eq!(token_problem("tok-LEAKCHECK-7f3a91c2e5"), None);
        assert_eq!(token_problem("eyJhbGciOi.J9eyJzdWIiOiIx.MjM0NTY3ODkwIn0=="), None);
        for (token, says) in [
            ("", "empty"),
            ("short", "at least 8"),
            (" tok-LEAKCHECK-7f3a91c2e5", "white space at position 1"),
            ("tok-LEAKCHECK-7f3a91c2e5 ", "white space at position 25"),
            ("\u{feff}tok-LEAKCHECK-7f3a91c2e5", "byte-order mark"),
            ("tok-LEAKCHECK\n7f3a91c2e5", "line break"),
            ("tök-LEAKCHECK-7f3a91c2e5", "non-ASCII"),
            ("tok=LEAKCHECK-7f3a91c2e5", "'=' before the end"),
            ("tok\"LEAKCHECK-7f3a91c2e5", "outside RFC 6750"),
        ] {
            let problem = token_problem(token).unwrap_or_else(|| panic!("{token:?} accepted"));
            assert!(problem.contains(says), "{token:?}: {problem}");
            assert!(!problem.contains("LEAKCHECK"), "never quotes the token: {problem}");
        }
        assert!(token_problem(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap().contains("16 KiB"));
    }
}
