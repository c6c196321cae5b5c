//! Reading what SCIM servers answer: resources, list pages, error bodies, Retry-After.
//! Lenient where real servers differ (ids as numbers, `Resources` missing on empty pages,
//! two error shapes), strict where a mistake would act on the wrong object.

use serde_json::Value;
use soar_types::host::Response;

/// How much of a server's text we quote in a message.
pub const QUOTE_CHARS: usize = 200;

/// A string attribute that some servers send as a number (`"id": 290277`).
pub fn string_attr(resource: &Value, name: &str) -> Option<String> {
    match resource.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A group as far as we need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub display_name: Option<String>,
}

/// A user as far as we need it. `groups` is `None` when the server does not fill the read-only
/// `groups` attribute (then membership must be read another way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    pub groups: Option<Vec<String>>,
}

pub fn parse_group(resource: &Value) -> Option<Group> {
    Some(Group { id: string_attr(resource, "id")?, display_name: string_attr(resource, "displayName") })
}

pub fn parse_user(resource: &Value) -> Option<User> {
    Some(User {
        id: string_attr(resource, "id")?,
        user_name: string_attr(resource, "userName"),
        external_id: string_attr(resource, "externalId"),
        groups: multi_valued_values(resource, "groups"),
    })
}

/// The `value`s of a multi-valued attribute such as `groups` or `members`; `None` when the
/// attribute is absent or not a list.
pub fn multi_valued_values(resource: &Value, name: &str) -> Option<Vec<String>> {
    let items = resource.get(name)?.as_array()?;
    Some(items.iter().filter_map(|item| string_attr(item, "value")).collect())
}

/// One page of a ListResponse.
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage {
    pub total_results: Option<u64>,
    pub resources: Vec<Value>,
}

pub fn parse_list(body: &Value) -> Result<ListPage, String> {
    let object = body.as_object().ok_or("the list answer is not a JSON object")?;
    let total_results = match object.get("totalResults") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => return Err("totalResults is not a number".into()),
    };
    let resources = match object.get("Resources").or_else(|| object.get("resources")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err("Resources is not a list".into()),
    };
    if total_results.is_none() && !object.contains_key("Resources") && !object.contains_key("resources") {
        return Err("the answer has neither totalResults nor Resources: not a SCIM ListResponse".into());
    }
    Ok(ListPage { total_results, resources })
}

/// What a server said when it refused: SCIM Error schema (`status`, `scimType`, `detail`) or
/// Zscaler's shape (`code`, `message`, `reason`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    pub scim_type: Option<String>,
    pub detail: Option<String>,
}

pub fn parse_error_body(body: &[u8]) -> ServerError {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return ServerError { scim_type: None, detail: (!text.is_empty()).then(|| quote(text)) };
    };
    let text_of = |name: &str| string_attr(&value, name).filter(|s| !s.trim().is_empty());
    let scim_type = text_of("scimType").or_else(|| text_of("code"));
    let detail = [text_of("detail"), text_of("message"), text_of("reason")]
        .into_iter()
        .flatten()
        .fold(None::<String>, |joined, part| match joined {
            None => Some(part),
            Some(joined) if joined.contains(&part) => Some(joined),
            Some(joined) => Some(format!("{joined}: {part}")),
        })
        .map(|text| quote(&text));
    ServerError { scim_type, detail }
}

/// At most [`QUOTE_CHARS`] characters of `text`, on one line.
pub fn quote(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let one_line = one_line.trim();
    if one_line.chars().count() <= QUOTE_CHARS {
        one_line.to_string()
    } else {
        let cut: String = one_line.chars().take(QUOTE_CHARS).collect();
        format!("{cut}...")
    }
}

/// Whether a Content-Type names JSON (`application/json`, `application/scim+json`, any `+json`).
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Milliseconds a `Retry-After` header asks for: delta-seconds, or an HTTP date measured
/// against the response's own `Date` header (the plugin has no clock).
pub fn retry_after_ms(response: &Response) -> Option<u64> {
    let value = response.header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let until = parse_http_date(value)?;
    let now = parse_http_date(response.header("date")?)?;
    Some(until.saturating_sub(now).saturating_mul(1000))
}

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form
/// RFC 9110 requires senders to use.
pub fn parse_http_date(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month))? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [hours, minutes, seconds] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *hours > 23 || *minutes > 59 || *seconds > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hours * 3600 + minutes * 60 + seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(headers: &[(&str, &str)]) -> Response {
        Response {
            status: 429,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn reads_both_error_shapes() {
        let scim = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"bad filter"}"#;
        assert_eq!(
            parse_error_body(scim),
            ServerError { scim_type: Some("invalidFilter".into()), detail: Some("bad filter".into()) }
        );
        let zscaler = br#"{"id":"x","code":"resource.not.found","message":"Group not found","reason":"no such id"}"#;
        assert_eq!(
            parse_error_body(zscaler),
            ServerError {
                scim_type: Some("resource.not.found".into()),
                detail: Some("Group not found: no such id".into())
            }
        );
        assert_eq!(parse_error_body(b"<html>oops</html>").detail.as_deref(), Some("<html>oops</html>"));
        assert_eq!(parse_error_body(b"").detail, None);
    }

    #[test]
    fn quotes_at_most_200_characters_on_one_line() {
        let long = "x".repeat(500);
        assert_eq!(quote(&long).chars().count(), QUOTE_CHARS + 3);
        assert_eq!(quote("a\nb"), "a b");
    }

    #[test]
    fn parses_lists_leniently() {
        let page = parse_list(&json!({"totalResults": 0})).unwrap();
        assert!(page.resources.is_empty());
        let page = parse_list(&json!({"totalResults": "2", "Resources": [{"id": 1}, {"id": "b"}]})).unwrap();
        assert_eq!(page.total_results, Some(2));
        assert_eq!(string_attr(&page.resources[0], "id").as_deref(), Some("1"));
        assert!(parse_list(&json!({"id": "x"})).is_err());
        assert!(parse_list(&json!([1, 2])).is_err());
    }

    #[test]
    fn users_without_groups_are_told_apart_from_users_in_no_group() {
        let with = parse_user(&json!({"id": "1", "userName": "a@b.c", "groups": []})).unwrap();
        assert_eq!(with.groups, Some(vec![]));
        let without = parse_user(&json!({"id": "1", "userName": "a@b.c"})).unwrap();
        assert_eq!(without.groups, None);
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(retry_after_ms(&response(&[("Retry-After", "30")])), Some(30_000));
        let dated =
            response(&[("Retry-After", "Wed, 21 Oct 2015 07:28:10 GMT"), ("Date", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after_ms(&dated), Some(10_000));
        assert_eq!(retry_after_ms(&response(&[("Retry-After", "Wed, 21 Oct 2015 07:28:10 GMT")])), None);
        assert_eq!(retry_after_ms(&response(&[])), None);
    }

    #[test]
    fn http_dates_match_the_unix_epoch() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn recognises_json_content_types() {
        assert!(is_json_content_type("application/scim+json; charset=utf-8"));
        assert!(is_json_content_type("Application/JSON"));
        assert!(!is_json_content_type("text/html"));
    }
}
