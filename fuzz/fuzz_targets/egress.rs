//! Any URL a plugin could ask for, and any text a server could echo: the egress rule never
//! panics and lets through only URLs under the base, written as they are sent; the redactor
//! never lets the token through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soar_host_policy::egress::{EgressPolicy, Endpoint};
use soar_host_policy::endpoint;
use soar_host_policy::secret::{Redactor, Secret};

const TOKEN: &str = "tok-Fuzz/9+x=";

fuzz_target!(|input: (String, Vec<u8>)| {
    let (url, echo) = input;
    let base = endpoint::parse("https://scim.example/scim/1/7/v2").unwrap();
    let policy = EgressPolicy::new(vec![Endpoint { name: "p".into(), base: base.clone(), token: Secret::new(TOKEN), max_concurrent_requests: 4 }]);
    if let Ok(authorized) = policy.authorize("p", &url, &[]) {
        assert_eq!(authorized.url.as_str(), url);
        assert!(endpoint::is_under(&base, &authorized.url));
        assert_eq!(endpoint::path_problem(authorized.url.path()), None);
    }
    let redactor = Redactor::new([Secret::new(TOKEN)]);
    let mut text = echo.clone();
    text.extend_from_slice(TOKEN.as_bytes());
    text.extend_from_slice(&echo);
    let scrubbed = redactor.redact_bytes(&text).expect("the token is found");
    assert!(memchr_free(&scrubbed, TOKEN.as_bytes()));
});

fn memchr_free(haystack: &[u8], needle: &[u8]) -> bool {
    !haystack.windows(needle.len()).any(|window| window == needle)
}
