//! Bearer tokens and other secrets: what a token may look like, kept out of Debug output, and
//! scrubbed from everything that leaves the host or reaches the plugin, in every form a server
//! or proxy could echo them: exact, percent-encoded (any byte, either case, also twice over),
//! base64 (standard or URL-safe, any alignment, with or without padding) and inside JSON strings
//! however their characters are escaped.

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
                let literals = literals.iter().map(|literal| memmem::Finder::new(literal).into_owned()).collect();
                Known { raw, literals }
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

    /// A body with every form of every secret replaced, or `None` when it holds none. A JSON body
    /// is also read: a secret hidden by escapes in a string (`\u0074ok...`) is scrubbed from the
    /// decoded string and the body written again.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        if self.secrets.is_empty() {
            return None;
        }
        let scrubbed = self.scrub(bytes);
        let current = scrubbed.as_deref().unwrap_or(bytes);
        // Only `\uXXXX` and `\/` can spell a token's characters (RFC 6750 b64token) in JSON.
        if memmem::find(current, b"\\u").is_none() && memmem::find(current, b"\\/").is_none() {
            return scrubbed;
        }
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(current) else {
            return scrubbed;
        };
        if self.scrub_json(&mut value) {
            return Some(serde_json::to_vec(&value).expect("a JSON value serialises"));
        }
        scrubbed
    }

    /// Scrubs every string and key of a JSON value; true when anything changed.
    fn scrub_json(&self, value: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match value {
            Value::String(text) => match self.scrub(text.as_bytes()) {
                Some(bytes) => {
                    *text = String::from_utf8_lossy(&bytes).into_owned();
                    true
                }
                None => false,
            },
            Value::Array(items) => items.iter_mut().fold(false, |changed, item| self.scrub_json(item) | changed),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                let mut changed = false;
                for (key, mut item) in entries {
                    changed |= self.scrub_json(&mut item);
                    let key = match self.scrub(key.as_bytes()) {
                        Some(bytes) => {
                            changed = true;
                            String::from_utf8_lossy(&bytes).into_owned()
                        }
                        None => key,
                    };
                    map.insert(key, item);
                }
                changed
            }
            _ => false,
        }
    }

    /// The raw pass: exact and base64 forms, and percent-encoded ones.
    fn scrub(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for known in &self.secrets {
            for literal in &known.literals {
                let length = literal.needle().len();
                spans.extend(literal.find_iter(bytes).map(|start| (start, start + length)));
            }
            spans.extend(percent_encoded_spans(bytes, &known.raw));
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

/// Where `secret` stands in `bytes` with at least one of its bytes percent-encoded (`%XX` in either
/// case, or encoded again as `%25XX`, `%2525XX`).
fn percent_encoded_spans(bytes: &[u8], secret: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let first = bytes[start];
        if first == b'%' || first == secret[0] {
            if let Some((end, encoded)) = match_encoded(bytes, start, secret) {
                if encoded {
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

/// Matches `secret` at `start`, each byte written plainly or percent-encoded; returns the end and
/// whether any byte was encoded.
fn match_encoded(bytes: &[u8], start: usize, secret: &[u8]) -> Option<(usize, bool)> {
    let mut at = start;
    let mut encoded = false;
    for &wanted in secret {
        if bytes.get(at) == Some(&wanted) && wanted != b'%' {
            at += 1;
            continue;
        }
        at = match_escape(bytes, at, wanted)?;
        encoded = true;
    }
    Some((at, encoded))
}

/// `%XX`, `%25XX` or `%2525XX` spelling `wanted` at `at`; returns the end.
fn match_escape(bytes: &[u8], mut at: usize, wanted: u8) -> Option<usize> {
    if bytes.get(at) != Some(&b'%') {
        return None;
    }
    at += 1;
    for _ in 0..3 {
        let hex = bytes.get(at..at + 2)?;
        let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        if value == wanted {
            return Some(at + 2);
        }
        if value != b'%' {
            return None;
        }
        at += 2;
    }
    None
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
    fn unrelated_text_is_left_alone() {
        let text = "user alice@corp.example: 200 OK % %% %2 %zz tok-Abc/12 AAAA====";
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
