//! SCIM behaviour against the quirks of real servers, each played by the simulator and driven
//! through the real component and the real `soar-host`; membership is checked on the server.

use scim_simulator::{Quirk, Simulator};
use serde_json::{json, Value};
use soar_e2e::*;

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";
const CAROL: &str = "carol@corp.example";

/// A simulator with a crowd of users (so that ignored filters show), a decoy group, and `quirks` on.
fn quirky(quirks: &[Quirk], members: &[&str]) -> (Simulator, std::path::PathBuf) {
    let mut users: Vec<String> = (0..7).map(|n| format!("crowd{n}@corp.example")).collect();
    users.extend([ALICE, BOB, CAROL].map(String::from));
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let sim = simulator(TOKEN, &names, members);
    sim.add_group("Decoy Group", &[]);
    for quirk in quirks {
        sim.set_quirk(*quirk, true);
    }
    sim.clear_requests();
    let config = write_config(&scratch_dir(), &[("idp", &sim, "SOAR_TEST_TOKEN")], json!({}));
    (sim, config)
}

/// The ways a server says it does not take a form of request: 400, 501 (RFC 7644 §3.12), 405.
const SAID_AS: [Option<Quirk>; 3] = [None, Some(Quirk::UnsupportedAs501), Some(Quirk::UnsupportedAs405)];

/// `quirks`, refusing what they refuse in the way `said` gives.
fn said_as(quirks: &[Quirk], said: Option<Quirk>) -> Vec<Quirk> {
    quirks.iter().copied().chain(said).collect()
}

fn patches(sim: &Simulator) -> Vec<Value> {
    sim.requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| serde_json::from_str(&r.body).expect("PATCH body is JSON"))
        .collect()
}

fn requests(run: &Run) -> u64 {
    run.json()["http_requests"].as_u64().expect("http_requests")
}

#[test]
fn round_trips_on_a_server_that_filters() {
    let (sim, config) = quirky(&[], &[]);
    let run = run_with(&config, &["test-connection"]);
    assert!(requests(&run) <= 2, "{run:?}");
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, requests(&run)), (0, 3), "users carry groups: {:?}", request_lines(&sim));
    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, requests(&run)), (0, 3), "{run:?}");

    sim.set_quirk(Quirk::NoUserGroups, true);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert!(requests(&run) <= 4, "{run:?}");
    // A member found by the group filter is confirmed once by asking about a member no server
    // holds (a server ignoring the member clause would otherwise make every user a member).
    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert!(requests(&run) <= 5, "{run:?}");
    assert_eq!(run.json()["providers"][0]["users"][0]["membership_verified"], true);
    assert!(member_names(&sim).is_empty());
}

#[test]
fn a_server_that_ignores_filters_never_makes_us_act_on_the_wrong_user() {
    let (sim, config) = quirky(&[Quirk::FilterIgnored], &[BOB]);
    let run = run_with(&config, &["add-to-group", "--user", CAROL]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), [BOB, CAROL]);
    assert!(sim.requests().iter().any(|r| r.param("startIndex").is_some()), "paged: {:?}", request_lines(&sim));
    let run = run_with(&config, &["remove-from-group", "--user", BOB, "--user", "nobody@corp.example"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.outcome(0, 0), "removed");
    assert_eq!(run.user_error_kind(0, 1), "user-not-found");
    assert_eq!(member_names(&sim), [CAROL]);
}

#[test]
fn a_lone_user_and_group_on_a_server_that_ignores_filters_are_still_told_apart() {
    // One user, one group: whatever a filter-ignoring server answers looks like a match, so a
    // match of the membership filter must be confirmed before it counts.
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_quirk(Quirk::FilterIgnored, true);
    sim.set_quirk(Quirk::NoUserGroups, true);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), [ALICE]);
    let run = run_with(&config, &["check-membership", "--user", ALICE]);
    assert_eq!(run.outcome(0, 0), "member", "{run:?}");
    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert!(member_names(&sim).is_empty());
    let run = run_with(&config, &["check-membership", "--user", ALICE]);
    assert_eq!(run.outcome(0, 0), "not-member", "{run:?}");
}

#[test]
fn short_pages_are_followed_until_total_results() {
    let (sim, config) = quirky(&[Quirk::FilterIgnored, Quirk::LoweredCount], &[]);
    let run = run_with(&config, &["add-to-group", "--user", CAROL]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    let pages = sim.requests().iter().filter(|r| r.param("startIndex").is_some()).count();
    assert!(pages > 3, "several short pages: {:?}", request_lines(&sim));
    assert_eq!(member_names(&sim), [CAROL]);
}

#[test]
fn a_server_that_rejects_filters_is_read_page_by_page() {
    for (error_shape, said) in [false, true].into_iter().flat_map(|shape| SAID_AS.map(|said| (shape, said))) {
        let (sim, config) = quirky(&said_as(&[Quirk::FilterRejected], said), &[]);
        sim.set_quirk(Quirk::ZscalerErrors, error_shape);
        let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", CAROL]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("added"), json!("added")));
        assert_eq!(member_names(&sim), [ALICE, CAROL]);
    }
}

#[test]
fn remove_falls_back_to_the_entra_form_and_keeps_it() {
    for said in SAID_AS {
        let (sim, config) = quirky(&said_as(&[Quirk::RfcRemoveRejected], said), &[ALICE, BOB, CAROL]);
        let run = run_with(&config, &["remove-from-group", "--user", ALICE, "--user", BOB]);
        assert_eq!(run.code, 0, "{said:?} {run:?}");
        let sent = patches(&sim);
        assert_eq!(sent.len(), 2, "RFC form refused once, then Entra's: {sent:?}");
        let first = format!("members[value eq \"{}\"]", user_id(&sim, ALICE));
        assert_eq!(sent[0]["Operations"][0]["path"], first);
        assert_eq!(sent[1]["Operations"][0]["op"], "Remove");
        assert_eq!(sent[1]["Operations"][0]["value"].as_array().unwrap().len(), 2);
        assert_eq!(member_names(&sim), [CAROL], "{said:?}");
    }
}

#[test]
fn remove_uses_the_rfc_form_where_entras_is_refused() {
    let (sim, config) = quirky(&[Quirk::EntraRemoveRejected], &[ALICE, BOB]);
    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert_eq!(patches(&sim).len(), 1);
    assert_eq!(member_names(&sim), [BOB]);
}

#[test]
fn a_form_refused_with_405_or_501_is_a_fallback_and_a_server_error_is_not() {
    // The plugin's first remove form is the RFC's: a server refusing the other one never shows it.
    for said in SAID_AS {
        let (sim, config) = quirky(&said_as(&[Quirk::EntraRemoveRejected, Quirk::RfcRemoveRejected], said), &[ALICE]);
        let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
        assert_eq!((run.code, run.user_error_kind(0, 0)), (1, json!("server")), "{said:?} {run:?}");
        assert_eq!(patches(&sim).len(), 2, "both forms tried, once each: {said:?}");
        let status = &run.json()["providers"][0]["users"][0]["error"]["status"];
        let expected = match said {
            Some(Quirk::UnsupportedAs501) => 501,
            Some(Quirk::UnsupportedAs405) => 405,
            _ => 400,
        };
        assert_eq!(status, &json!(expected), "the error names what the server said");
        assert_eq!(member_names(&sim), [ALICE]);
    }
}

#[test]
fn add_falls_back_to_the_path_less_zia_form() {
    for said in SAID_AS {
        let (sim, config) = quirky(&said_as(&[Quirk::PathlessAddOnly, Quirk::PatchReturns200], said), &[]);
        let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", BOB]);
        assert_eq!(run.code, 0, "{said:?} {run:?}");
        let sent = patches(&sim);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0]["Operations"][0]["path"], "members");
        assert!(sent[1]["Operations"][0].get("path").is_none());
        assert_eq!(sent[1]["Operations"][0]["value"]["members"].as_array().unwrap().len(), 2);
        assert_eq!(member_names(&sim), [ALICE, BOB], "{said:?}");
    }
}

#[test]
fn on_zia_the_documented_path_less_add_is_sent_first() {
    let (sim, _) = quirky(&[Quirk::PathlessAddOnly], &[]);
    let mut provider = provider_entry("zia", &sim, GROUP);
    provider["profile"] = json!("zia");
    let config =
        write_json(&scratch_dir(), "config.json", &json!({"allow_http": true, "identity_providers": [provider]}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    let sent = patches(&sim);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0]["Operations"][0].get("path").is_none(), "{sent:?}");
    assert_eq!(member_names(&sim), [ALICE]);
}

#[test]
fn a_server_that_stores_duplicates_never_gets_one() {
    for quirks in [vec![Quirk::DuplicateMembers], vec![Quirk::DuplicateMembers, Quirk::NoUserGroups]] {
        let (sim, config) = quirky(&quirks, &[]);
        for expected in ["added", "already-member", "already-member"] {
            let run = run_with(&config, &["add-to-group", "--user", ALICE]);
            assert_eq!((run.code, run.outcome(0, 0)), (0, json!(expected)), "{quirks:?} {run:?}");
        }
        assert_eq!(sim.members(&group_id(&sim, GROUP)).len(), 1, "{quirks:?}");
    }
}

#[test]
fn without_readable_membership_the_plugin_acts_and_says_so() {
    let (sim, config) = quirky(&[Quirk::NoMembership], &[BOB]);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(run.json()["providers"][0]["users"][0]["membership_verified"], false);
    let run = run_with(&config, &["remove-from-group", "--user", BOB]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert_eq!(run.json()["providers"][0]["users"][0]["membership_verified"], false);
    assert_eq!(member_names(&sim), [ALICE]);
    let run = run_with(&config, &["check-membership", "--user", ALICE]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.user_error_kind(0, 0), "server");
}

#[test]
fn a_bad_token_is_auth_failed_whether_401_or_403() {
    for (quirks, status) in [(vec![], 401), (vec![Quirk::ForbiddenOnBadToken, Quirk::ZscalerErrors], 403)] {
        let (sim, _) = quirky(&quirks, &[]);
        let config = write_config(&scratch_dir(), &[("idp", &sim, "SOAR_TEST_TOKEN_2")], json!({}));
        let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", BOB]);
        assert_eq!(run.code, 1, "{run:?}");
        let error = &run.json()["providers"][0]["error"];
        assert_eq!((error["kind"].clone(), error["status"].clone()), (json!("auth-failed"), json!(status)));
        // The group and the users are looked up together; nothing more is tried after the refusal.
        let sent: Vec<String> = sim.requests().iter().map(|r| r.path.rsplit('/').next().unwrap().to_string()).collect();
        assert_eq!(sent.len(), 2, "{:?}", request_lines(&sim));
        assert!(sent.contains(&"Groups".to_string()) && sent.contains(&"Users".to_string()), "{sent:?}");
    }
}

#[test]
fn a_server_refusing_attribute_selection_is_read_whole() {
    for said in SAID_AS {
        let (sim, config) = quirky(&said_as(&[Quirk::ProjectionRejected, Quirk::NoUserGroups], said), &[BOB]);
        let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", BOB]);
        assert_eq!(run.code, 0, "{said:?} {run:?}");
        assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("added"), json!("already-member")));
        let projected = sim.requests().iter().filter(|r| r.param("excludedAttributes").is_some()).count();
        assert_eq!(projected, 1, "refused once, then never asked again: {:?}", request_lines(&sim));
        assert_eq!(member_names(&sim), [ALICE, BOB], "{said:?}");
    }
}

#[test]
fn check_membership_reads_and_never_writes() {
    let (sim, config) = quirky(&[], &[BOB]);
    let run = run_with(&config, &["check-membership", "--user", ALICE, "--user", BOB]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("not-member"), json!("member")));
    assert!(sim.requests().iter().all(|r| r.method == "GET"));
}

#[test]
fn awkward_addresses_reach_the_server_escaped_exactly() {
    let (sim, config) = quirky(&[], &[]);
    let quoted = r#""john\"doe"@corp.example"#;
    let unicode = "jörg@bücher.example";
    for user in [quoted, unicode] {
        sim.add_user(user);
    }
    sim.clear_requests();
    for (user, expected_filter) in [
        (quoted, r#"userName eq "\"john\\\"doe\"@corp.example""#),
        (unicode, r#"userName eq "jörg@bücher.example""#),
        ("ALICE@CORP.EXAMPLE", r#"userName eq "ALICE@CORP.EXAMPLE""#),
    ] {
        let run = run_with(&config, &["add-to-group", "--user", user]);
        assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{user}: {run:?}");
        let filters: Vec<String> =
            sim.requests().iter().filter_map(|r| r.param("filter").map(str::to_string)).collect();
        assert!(filters.contains(&expected_filter.to_string()), "{user}: {filters:?}");
        sim.clear_requests();
    }
    let mut expected = vec![quoted.to_string(), ALICE.to_string(), unicode.to_string()];
    expected.sort();
    assert_eq!(member_names(&sim), expected);
}

#[test]
fn a_group_name_with_quotes_is_escaped() {
    let (sim, _) = quirky(&[], &[]);
    let name = r#"Risky "Users" \ Tier 1"#;
    let gid = sim.add_group(name, &[]);
    let mut value: Value = serde_json::from_str(
        &std::fs::read_to_string(write_config(&scratch_dir(), &[("idp", &sim, "SOAR_TEST_TOKEN")], json!({}))).unwrap(),
    )
    .unwrap();
    value["identity_providers"][0]["restricted_group"] = json!(name);
    let config = write_json(&scratch_dir(), "config.json", &value);
    sim.clear_requests();
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["providers"][0]["group"]["id"], gid.as_str());
    // The group and user lookups travel together, in either order.
    let requests = sim.requests();
    let group_filter = requests.iter().find_map(|r| r.param("filter").filter(|f| f.starts_with("displayName")));
    assert_eq!(group_filter.unwrap().to_string(), r#"displayName eq "Risky \"Users\" \\ Tier 1""#);
    assert_eq!(sim.members(&gid), [user_id(&sim, ALICE)]);
}

#[test]
fn a_group_given_by_id_is_used_directly() {
    let (sim, _) = quirky(&[], &[]);
    let gid = group_id(&sim, GROUP);
    let mut value: Value = serde_json::from_str(
        &std::fs::read_to_string(write_config(&scratch_dir(), &[("idp", &sim, "SOAR_TEST_TOKEN")], json!({}))).unwrap(),
    )
    .unwrap();
    value["identity_providers"][0].as_object_mut().unwrap().remove("restricted_group");
    value["identity_providers"][0]["restricted_group_id"] = json!(gid);
    let config = write_json(&scratch_dir(), "config.json", &value);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), [ALICE]);
    value["identity_providers"][0]["restricted_group_id"] = json!("no-such-id");
    let config = write_json(&scratch_dir(), "config.json", &value);
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["providers"][0]["error"]["kind"], "group-not-found");
    assert!(requests(&run) <= 2);
}

#[test]
fn a_redirect_is_reported_and_never_followed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 302 Found\r\nLocation: https://login.corp.example/sso\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let provider = json!({"name": "moved", "base_url": format!("http://127.0.0.1:{port}/scim/v2"),
                          "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"});
    let config =
        write_json(&scratch_dir(), "config.json", &json!({"allow_http": true, "identity_providers": [provider]}));
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["providers"][0]["error"];
    assert_eq!((error["kind"].clone(), error["status"].clone()), (json!("redirect"), json!(302)));
    assert!(error["message"].as_str().unwrap().contains("https://login.corp.example/sso"), "{error}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1, "one request, no redirect followed");
}

#[test]
fn paging_is_bounded_by_the_lookup_limit() {
    let (sim, config) = quirky(&[Quirk::FilterIgnored, Quirk::LoweredCount], &[]);
    for n in 0..210 {
        sim.add_user(&format!("late{n:03}@corp.example"));
    }
    sim.clear_requests();
    let run = run_with(&config, &["add-to-group", "--user", "late209@corp.example"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.user_error_kind(0, 0), "lookup-limit");
    let pages = sim.requests().iter().filter(|r| r.path.ends_with("/Users") && r.param("filter").is_none()).count();
    assert_eq!(pages, 100, "at most 100 pages: {:?}", request_lines(&sim).len());
    assert!(member_names(&sim).is_empty());
}
