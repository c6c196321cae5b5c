//! Any value a caller or server could give: escaped into a filter it reads back as itself, and
//! percent-encoded it decodes to itself; as an id, it either is refused up front or makes a path
//! the egress rule accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_simulator::filter::{self, AttrPath, CompareOp, Filter};
use soar_types::encode::{eq_filter, path_segment, percent_encode};

fuzz_target!(|value: String| {
    let parsed = filter::parse(&eq_filter("userName", &value)).expect("an escaped value always parses");
    let expected = Filter::Compare(
        AttrPath { schema: None, name: "userName".into(), sub: None },
        CompareOp::Eq,
        serde_json::Value::String(value.clone()),
    );
    assert_eq!(parsed, expected);
    assert_eq!(scim_simulator::http::decode_component(&percent_encode(&value)), value);
    if soar_types::user_ref::id_problem(&value).is_none() {
        let path = format!("/scim/v2/Users/{}", path_segment(&value));
        assert_eq!(soar_host_policy::endpoint::path_problem(&path), None, "{path}");
    }
});
