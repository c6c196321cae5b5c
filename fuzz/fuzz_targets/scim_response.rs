//! Any bytes a SCIM server could answer: the plugin's parsers never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restricted_group_plugin::scim::response::{
    parse_error_body, parse_group, parse_http_date, parse_list, parse_user, quote,
};

fuzz_target!(|data: &[u8]| {
    let detail = parse_error_body(data).detail;
    assert!(detail.is_none_or(|d| d.chars().count() <= 203));
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = parse_list(&value);
        let _ = parse_user(&value);
        let _ = parse_group(&value);
    }
    let text = String::from_utf8_lossy(data);
    let _ = parse_http_date(&text);
    assert!(!quote(&text).contains('\n'));
});
