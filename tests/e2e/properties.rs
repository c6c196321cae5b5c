//! Property tests, the stable counterpart of `fuzz/`'s targets (same entry points): arbitrary
//! server answers never panic the plugin's parsers or the plugin itself; any string escaped into
//! a filter or a URL reads back as itself; any config is loaded or refused, never a panic; the
//! egress rule lets through only URLs under the base, written as sent; the redactor never lets
//! the token through.

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

    #[test]
    fn an_id_accepted_up_front_makes_a_path_the_egress_rule_accepts(id in any::<String>()) {
        if soar_host::endpoint::id_problem(&id).is_none() {
            let path = format!("/scim/v2/Users/{}", soar_types::encode::path_segment(&id));
            prop_assert_eq!(soar_host::endpoint::path_problem(&path), None, "{}", path);
        }
    }

    #[test]
    fn any_config_is_loaded_or_refused_never_a_panic(value in config_value()) {
        let env = |_: &str| Some("tok-property-0123456789".to_string());
        if let Ok(config) = soar_host::config::Config::from_value(&value, std::path::Path::new("/nonexistent"), &env) {
            prop_assert!(config.limits.deadline_ms <= soar_host::config::DEADLINE_MS.max);
            prop_assert!(config.max_users_per_action <= soar_host::config::MAX_USERS_PER_ACTION.max);
        }
    }

    #[test]
    fn the_egress_rule_lets_through_only_urls_under_the_base_written_as_sent(url in request_url()) {
        let base = soar_host::endpoint::parse(BASE).unwrap();
        let policy = soar_host::egress::EgressPolicy::new(vec![soar_host::egress::Endpoint {
            name: "p".into(),
            base: base.clone(),
            token: soar_host::secret::Secret::new("tok-property-0123456789"),
                max_concurrent_requests: 4,
        }]);
        if let Ok(authorized) = policy.authorize("p", &url, &[]) {
            prop_assert_eq!(authorized.url.as_str(), url.as_str());
            prop_assert!(soar_host::endpoint::is_under(&base, &authorized.url));
            prop_assert_eq!(soar_host::endpoint::path_problem(authorized.url.path()), None);
        }
    }

    #[test]
    fn the_redactor_never_lets_the_token_through(
        before in prop::collection::vec(any::<u8>(), 0..40),
        after in prop::collection::vec(any::<u8>(), 0..40),
        form in 0usize..4,
    ) {
        use base64::Engine;
        const SECRET: &str = "tok-Prop/9+x=";
        let redactor = soar_host::secret::Redactor::new([soar_host::secret::Secret::new(SECRET)]);
        let echoed = match form {
            0 => SECRET.to_string(),
            1 => SECRET.bytes().map(|b| format!("%{b:02x}")).collect(),
            2 => base64::engine::general_purpose::STANDARD.encode([&before[..], SECRET.as_bytes()].concat()),
            _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Bearer {SECRET}")),
        };
        let text = [&before[..], echoed.as_bytes(), &after[..]].concat();
        let scrubbed = redactor.redact_bytes(&text).expect("the token is found");
        let shown = String::from_utf8_lossy(&scrubbed).into_owned();
        prop_assert!(!shown.contains(SECRET) && !shown.contains("Prop"), "{}", shown);
    }
}

const BASE: &str = "https://scim.example/scim/1/7/v2";

/// URLs near the base: its prefix, odd path pieces, encodings and queries.
fn request_url() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Users".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("%2e".to_string()),
        Just("%2F".to_string()),
        Just("%c0%ae".to_string()),
        Just(";x".to_string()),
        Just("\\".to_string()),
        Just("%25".to_string()),
        "[a-zA-Z0-9%._~-]{0,6}",
    ];
    let prefix = prop_oneof![
        Just(BASE.to_string()),
        Just("https://scim.example/scim/1/7/v2evil".to_string()),
        Just("https://SCIM.example/scim/1/7/v2".to_string()),
        Just("https://scim.example:443/scim/1/7/v2".to_string()),
        Just("http://scim.example/scim/1/7/v2".to_string()),
        Just("https://scim.example/scim/1/7".to_string()),
    ];
    (prefix, prop::collection::vec(piece, 0..4), prop::option::of("[a-z=%0-9&]{0,12}")).prop_map(
        |(prefix, pieces, query)| {
            let mut url = prefix;
            for piece in pieces {
                url.push('/');
                url.push_str(&piece);
            }
            if let Some(query) = query {
                url.push('?');
                url.push_str(&query);
            }
            url
        },
    )
}

/// Config documents: the real keys with arbitrary values, now and then a wrong one.
fn config_value() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(u64::MAX)),
        (0u64..5_000_000).prop_map(Value::from),
        json_value()
    ];
    let provider = (
        prop_oneof![Just(Value::from("zpa")), Just(Value::from("Bad Name")), json_value()],
        prop_oneof![Just(Value::from(BASE)), Just(Value::from("http://127.0.0.1:9/v2")), json_value()],
        prop_oneof![Just(Value::from("G")), json_value()],
        prop_oneof![Just(Value::from("TOKEN")), json_value()],
        number.clone(),
    )
        .prop_map(|(name, base_url, group, token_env, retries)| {
            serde_json::json!({"name": name, "base_url": base_url, "restricted_group": group, "token_env": token_env, "max_retries": retries})
        });
    (prop::collection::vec(provider, 0..3), number.clone(), number, any::<bool>(), json_value()).prop_map(
        |(providers, deadline, users, allow_http, extra)| {
            let mut value = serde_json::json!({"identity_providers": providers, "deadline_ms": deadline,
                                               "max_users_per_action": users, "allow_http": allow_http});
            if let Value::Object(extra) = extra {
                for (key, item) in extra.into_iter().take(1) {
                    value[key] = item;
                }
            }
            value
        },
    )
}
