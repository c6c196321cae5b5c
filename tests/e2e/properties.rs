//! Property tests: arbitrary server answers never panic the plugin's parsers or the plugin
//! itself, and any string escaped into a filter or a URL reads back as itself.

use proptest::prelude::*;
use restricted_group_plugin::scim::response::{
    parse_error_body, parse_group, parse_http_date, parse_list, parse_user, retry_after_ms,
};
use restricted_group_plugin::{run, test_connection};
use scim_simulator::filter::{self, AttrPath, CompareOp, Filter};
use scim_simulator::http::decode_component;
use serde_json::Value;
use soar_types::encode::{eq_filter, percent_encode};
use soar_types::host::{Host, HttpError, LogLevel, Request, Response};
use soar_types::model::{MembershipRequest, Profile, Provider, Settings, UserRef};
use soar_types::Action;

/// Arbitrary JSON, a few levels deep, with SCIM-looking keys now and then.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_string()),
        Just("userName".to_string()),
        Just("displayName".to_string()),
        Just("Resources".to_string()),
        Just("totalResults".to_string()),
        Just("groups".to_string()),
        Just("members".to_string()),
        Just("value".to_string()),
        "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A server that answers every request with the same arbitrary response.
struct Chaos {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    sent: usize,
}

impl Host for Chaos {
    fn send(&mut self, _request: Request) -> Result<Response, HttpError> {
        self.sent += 1;
        Ok(Response { status: self.status, headers: self.headers.clone(), body: self.body.clone() })
    }
    fn sleep(&mut self, _ms: u64) -> bool {
        true
    }
    fn log(&mut self, _level: LogLevel, _message: &str) {}
}

fn settings() -> Settings {
    Settings {
        providers: vec![Provider {
            name: "p".into(),
            base_url: "https://scim.example/v2".into(),
            restricted_group: Some("G".into()),
            restricted_group_id: None,
            profile: Profile::Generic,
            max_retries: 1,
        }],
        retry_after_cap_ms: 10,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn error_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let parsed = parse_error_body(&bytes);
        prop_assert!(parsed.detail.as_ref().is_none_or(|d| d.chars().count() <= 203));
    }

    #[test]
    fn resources_and_lists_never_panic(value in json_value()) {
        let _ = parse_list(&value);
        let _ = parse_user(&value);
        let _ = parse_group(&value);
    }

    #[test]
    fn dates_and_retry_after_never_panic(text in ".{0,40}", date in ".{0,40}") {
        let _ = parse_http_date(&text);
        let response = Response {
            status: 429,
            headers: vec![("Retry-After".into(), text), ("Date".into(), date)],
            body: Vec::new(),
        };
        let _ = retry_after_ms(&response);
    }

    #[test]
    fn any_string_escaped_into_a_filter_parses_back_to_itself(value in any::<String>()) {
        let parsed = filter::parse(&eq_filter("userName", &value)).expect("an escaped value always parses");
        let expected = Filter::Compare(
            AttrPath { schema: None, name: "userName".into(), sub: None },
            CompareOp::Eq,
            Value::String(value),
        );
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn any_string_percent_encoded_decodes_to_itself(value in any::<String>()) {
        prop_assert_eq!(decode_component(&percent_encode(&value)), value);
    }

    #[test]
    fn the_plugin_survives_any_server_answer(
        status in prop_oneof![Just(200u16), Just(204), Just(400), Just(404), Just(409), Just(500), 100u16..600],
        body in prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
        content_type in prop_oneof![Just("application/scim+json"), Just("text/html"), Just("")],
    ) {
        let headers = if content_type.is_empty() { Vec::new() } else { vec![("Content-Type".to_string(), content_type.to_string())] };
        let mut server = Chaos { status, body, headers, sent: 0 };
        let request = MembershipRequest {
            settings: settings(),
            users: vec![UserRef::Email("a@corp.example".into()), UserRef::Id("7".into())],
            dry_run: false,
            protected: Vec::new(),
        };
        for action in [Action::AddToGroup, Action::RemoveFromGroup, Action::CheckMembership] {
            let result = run(&mut server, action, &request);
            prop_assert_eq!(result.providers.len(), 1);
        }
        let _ = test_connection(&mut server, &settings());
        prop_assert!(server.sent < 2_000, "bounded: {} requests", server.sent);
    }
}
