//! Parsing and checking how a caller names a user. The host runs the same checks before it
//! starts the plugin, so that bad input is refused before anything is sent.

use crate::model::UserRef;
use crate::text::printable;

/// RFC 5321: a forward path holds at most 254 octets of address.
pub const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_PART_BYTES: usize = 64;
const MAX_ID_BYTES: usize = 1024;

/// Why a user is refused: one line that says what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidUser(pub String);

impl std::fmt::Display for InvalidUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidUser {}

/// Parses `alice@corp.example`, `id:SCIM_ID` or `external:EXTERNAL_ID`.
pub fn parse_user_ref(text: &str) -> Result<UserRef, InvalidUser> {
    parse(text).map_err(InvalidUser)
}

/// Checks a user already parsed (the plugin re-checks what it is handed).
pub fn check_user_ref(user: &UserRef) -> Result<(), InvalidUser> {
    check(user).map_err(InvalidUser)
}

fn parse(text: &str) -> Result<UserRef, String> {
    if let Some(id) = text.strip_prefix("id:") {
        check_opaque("id", id)?;
        return Ok(UserRef::Id(id.to_string()));
    }
    if let Some(external) = text.strip_prefix("external:") {
        check_opaque("external", external)?;
        return Ok(UserRef::External(external.to_string()));
    }
    check_email(text)?;
    Ok(UserRef::Email(text.to_string()))
}

fn check(user: &UserRef) -> Result<(), String> {
    match user {
        UserRef::Email(email) => check_email(email),
        UserRef::Id(id) => check_opaque("id", id),
        UserRef::External(external) => check_opaque("external", external),
    }
}

fn check_opaque(prefix: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("user '{prefix}:' names no {prefix}: write {prefix}:VALUE"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!(
            "user '{prefix}:...' is {} bytes long; SCIM ids here are at most {MAX_ID_BYTES}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("user '{prefix}:{}' contains a control character; remove it", printable(value)));
    }
    // An id becomes a URL path segment (`/Users/{id}`); an external id only goes into filters.
    if let (true, Some(problem)) = (prefix == "id", id_problem(value)) {
        return Err(format!("user 'id:{value}' {problem}; SCIM ids never do: check the id"));
    }
    Ok(())
}

/// Why a SCIM id cannot stand as one segment of a URL path (`/Users/{id}`, `/Groups/{id}`): it
/// would name another path, or be refused by the host's egress rule with the whole call.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id == "." || id == ".." {
        Some("is a dot segment ('.' or '..')")
    } else if id.contains(['/', '\\']) {
        Some("contains a slash or a backslash")
    } else if id.contains('%') {
        Some("contains '%'")
    } else if id.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// An email address as SCIM userName: `local@domain`, the local part plain or quoted, the domain
/// a dotted host name (unicode allowed), at most 254 bytes.
fn check_email(email: &str) -> Result<(), String> {
    let shown = printable(email);
    if email.is_empty() {
        return Err("empty user: give an email address, id:SCIM_ID or external:EXTERNAL_ID".into());
    }
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!(
            "user '{}...' is {} bytes long; an email address has at most {MAX_EMAIL_BYTES}",
            truncate_chars(&shown, 40),
            email.len()
        ));
    }
    if email.chars().any(char::is_control) {
        return Err(format!("user '{shown}' contains a control character; remove it"));
    }
    let Some(at) = email.rfind('@') else {
        return Err(format!(
            "user '{shown}' is not an email address (no '@'); give user@domain, id:SCIM_ID or external:EXTERNAL_ID"
        ));
    };
    let (local, domain) = (&email[..at], &email[at + 1..]);
    check_local_part(local).map_err(|why| format!("user '{shown}' is not a valid email address: {why}"))?;
    check_domain(domain).map_err(|why| format!("user '{shown}' is not a valid email address: {why}"))?;
    Ok(())
}

fn check_local_part(local: &str) -> Result<(), String> {
    if local.is_empty() {
        return Err("nothing before '@'".into());
    }
    if local.len() > MAX_LOCAL_PART_BYTES {
        return Err(format!("the part before '@' is longer than {MAX_LOCAL_PART_BYTES} bytes"));
    }
    if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        // Quoted local part: any printable character; `"` and `\` only escaped by `\`.
        let inner = &local[1..local.len() - 1];
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.next().is_none() => return Err("a quoted local part ends with a lone '\\'".into()),
                '"' => return Err("a '\"' inside a quoted local part must be escaped as '\\\"'".into()),
                _ => {}
            }
        }
        return Ok(());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before '@' starts or ends with a dot, or has two dots in a row".into());
    }
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    if let Some(bad) = local.chars().find(|&c| !(c.is_ascii_alphanumeric() || SPECIALS.contains(c) || !c.is_ascii())) {
        return Err(format!(
            "'{}' is not allowed before '@' unless the local part is quoted",
            printable(bad.encode_utf8(&mut [0; 4]))
        ));
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("nothing after '@'".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!("the domain '{domain}' has no dot"));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(format!("the domain '{domain}' has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("a label of the domain '{domain}' is longer than 63 bytes"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("a label of the domain '{domain}' starts or ends with '-'"));
        }
        // Non-ASCII is left to the server (internationalised domain names).
        if let Some(bad) = label.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())) {
            return Err(format!("'{}' is not allowed in the domain", printable(bad.encode_utf8(&mut [0; 4]))));
        }
    }
    Ok(())
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_quoted_unicode_and_upper_case_addresses() {
        for ok in [
            "alice@corp.example",
            "Alice.Smith+risk@Corp.Example",
            "\"john doe\"@corp.example",
            "\"a\\\"b\\\\c\"@corp.example",
            "jörg@bücher.example",
            "o'brien@corp.example",
        ] {
            assert!(parse_user_ref(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn refuses_what_is_not_an_address_with_a_reason() {
        for (bad, why) in [
            ("", "empty user"),
            ("alice", "no '@'"),
            ("@corp.example", "nothing before '@'"),
            ("alice@", "nothing after '@'"),
            ("alice@localhost", "has no dot"),
            ("al ice@corp.example", "' ' is not allowed"),
            ("x\" or userName pr \"@example.com", "is not allowed before '@'"),
            ("alice@corp..example", "empty label"),
            ("alice\n@corp.example", "control character"),
            (".alice@corp.example", "starts or ends with a dot"),
        ] {
            let err = parse_user_ref(bad).unwrap_err();
            assert!(err.0.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn enforces_the_254_byte_limit() {
        let domain = format!("{}.{}.{}.example", "a".repeat(63), "b".repeat(63), "c".repeat(53));
        let at_limit = format!("{}@{}", "u".repeat(MAX_EMAIL_BYTES - 1 - domain.len()), domain);
        assert_eq!(at_limit.len(), MAX_EMAIL_BYTES);
        assert!(parse_user_ref(&at_limit).is_ok());
        let past_limit = format!("u{at_limit}");
        assert!(parse_user_ref(&past_limit).unwrap_err().0.contains("at most 254"));
    }

    #[test]
    fn parses_id_and_external_forms() {
        assert_eq!(parse_user_ref("id:7000777"), Ok(UserRef::Id("7000777".into())));
        assert_eq!(parse_user_ref("external:abc-1"), Ok(UserRef::External("abc-1".into())));
        assert!(parse_user_ref("id:").unwrap_err().0.contains("names no id"));
        assert!(parse_user_ref("external:").is_err());
        for bad in ["id:..", "id:.", "id:a/../b", "id:a\\b", "id:a%2e"] {
            assert!(parse_user_ref(bad).unwrap_err().0.contains("SCIM ids never do"), "{bad}");
        }
        for good in ["id:a.b", "id:2c9a-..-x", "external:S-1-5/21+x..y%"] {
            assert!(parse_user_ref(good).is_ok(), "{good}");
        }
    }
}
