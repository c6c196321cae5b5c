//! What a hostile server, a careless operator and a further SCIM server found, each class with a
//! test through the real binary: echoes the redactor must find in raw bytes and header names,
//! refusals that must not quote what may be a secret, one lock per tenant however its URL is
//! written, files and input read with a cap, a rate-limit slot that cannot lock an origin out,
//! groups that leave `members` out when empty, and a ZIA-sized batch read rather than filtered.

use crate::hardening::{fifo, finishes_within, refused};
use scim_simulator::{Quirk, Seed, SeedGroup, SeedMember, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_e2e::*;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const ALICE: &str = "alice@corp.example";

/// Every form of the test token a leak could take, the lower-cased ones header names get included.
fn leaked_forms() -> Vec<String> {
    let mut forms = token_forms(TOKEN);
    forms.extend([TOKEN.to_ascii_lowercase(), "leakcheck".into()]);
    forms
}

#[test]
fn a_token_escaped_in_plain_text_or_named_by_a_header_reaches_no_plugin_output_or_trace() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_quirk(Quirk::EchoTokenAsText, true);
    let dir = scratch_dir();
    // What the plugin sees of the answer: the hostile plugin reports status, body and headers.
    let config = json!({"allow_http": true, "identity_providers": [provider_entry("p", &sim, &format!("send p GET {}/Users/404", sim.base_url()))]});
    let hostile = std::sync::Arc::new(load_runtime(&hostile_path("plain")).unwrap());
    let (host, _) = action_host(hostile, &config);
    let report = host.run(&soar_host::action::ActionRequest::new(soar_types::Action::TestConnection));
    let seen = report.document["providers"][0]["error"]["message"].as_str().unwrap().to_string();
    assert!(seen.starts_with("status 404") && seen.contains("x-<redacted>"), "{seen}");
    for form in leaked_forms() {
        assert!(!seen.to_ascii_lowercase().contains(&form.to_ascii_lowercase()), "the plugin saw {form}: {seen}");
    }
    // Through the command line, with a trace: the document, the log and the trace.
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let trace = dir.join("trace.har");
    let mut args = base_args(&config);
    args.extend([
        "--trace".into(),
        trace.display().to_string(),
        "add-to-group".into(),
        "--user".into(),
        "id:404".into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = soar_host_with_env(&refs, None, &[("SOAR_HOST_LOG", "debug")]);
    let har = std::fs::read_to_string(&trace).unwrap();
    assert!(har.contains("<redacted>"), "{har}");
    for form in leaked_forms() {
        for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr), ("trace", &har)] {
            assert!(!text.to_ascii_lowercase().contains(&form.to_ascii_lowercase()), "{form} in {what}");
        }
    }
}

#[test]
fn operator_mistakes_are_refused_without_quoting_what_may_be_a_secret() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let secret = "pasted-SECRET-0123456789abcdef";
    let provider = |extra: Value| {
        let mut entry = json!({"name": "zpa", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"});
        for (key, value) in extra.as_object().unwrap() {
            entry[key] = value.clone();
        }
        entry
    };
    let base = sim.base_url();
    let with_user_info = base.replacen("http://", &format!("http://svc:{secret}@"), 1);
    for (config, says) in [
        (json!({"identity_providers": [provider(json!({"token_env": secret}))]}), "token_env must name"),
        (json!({"identity_providers": [provider(json!({"token_env": TOKEN.replace('-', "_")}))]}), "not set"),
        (json!({"identity_providers": [provider(json!({"token_env": null, "token_file": secret}))]}), "token_file"),
        (json!({"identity_providers": [provider(json!({"base_url": with_user_info}))]}), "<redacted>@"),
        (
            json!({"identity_providers": [provider(json!({"base_url": format!("{base}?access_token={secret}")}))]}),
            "?<redacted>",
        ),
        (json!({"identity_providers": [provider(json!({"base_url": secret}))]}), "not a URL; not shown"),
        (json!({"identity_providers": [provider(json!({}))], "allow_http": secret}), "invalid type: a string"),
        (json!({"identity_providers": [provider(json!({"restricted_group_id": 12345678901234567u64}))]}), "a number"),
    ] {
        let mut config = config;
        config["allow_http"] = config.get("allow_http").cloned().unwrap_or(json!(true));
        let path = write_json(&dir, "config.json", &config);
        let run = run_with(&path, &["add-to-group", "--user", ALICE]);
        refused(&run, "invalid-config", says);
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains(secret) && !text.contains("12345678901234567"), "{says}: {text}");
            assert!(!text.contains(&TOKEN.replace('-', "_")), "{says}: {text}");
        }
    }
    assert!(sim.requests().is_empty());
}

#[test]
fn a_proxy_password_is_never_shown_whether_configured_or_from_the_environment() {
    let (sim, ca) = https_simulator();
    let dir = scratch_dir();
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    let password = "proxy-PASSWORD-77aa";
    // A proxy that refuses connections: its URL would appear in the error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = format!("http://svc:{password}@{closed}");
    let configured = write_config(
        &dir,
        &[("zpa", &sim, "SOAR_TEST_TOKEN")],
        json!({"ca_file": "ca.pem", "proxy": proxy, "max_retries": 0}),
    );
    let from_environment = write_json(
        &dir,
        "env.json",
        &json!({"allow_http": false, "ca_file": "ca.pem", "max_retries": 0, "identity_providers": [
            {"name": "zpa", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"}]}),
    );
    for (config, env) in [(configured, vec![]), (from_environment, vec![("HTTPS_PROXY", proxy.as_str())])] {
        let mut args = base_args(&config);
        args.extend(["test-connection".into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut env = env;
        env.push(("SOAR_HOST_LOG", "debug"));
        let run = soar_host_with_env(&refs, None, &env);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(!run.stdout.contains(password) && !run.stderr.contains(password), "{run:?}");
    }
}

#[test]
fn one_tenant_written_two_ways_takes_one_change_lock_across_processes() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_quirk(Quirk::DuplicateMembers, true);
    let dir = scratch_dir();
    let by_address = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let mut by_name: Value = serde_json::from_str(&std::fs::read_to_string(&by_address).unwrap()).unwrap();
    by_name["identity_providers"][0]["base_url"] = json!(sim.base_url().replace("127.0.0.1", "LOCALHOST"));
    let by_name = write_json(&dir, "by-name.json", &by_name);
    all_succeed((0..10).map(|n| {
        let config = if n % 2 == 0 { &by_address } else { &by_name };
        let mut command = soar_host_command(base_args(config));
        command.args(["add-to-group", "--user", ALICE]);
        command
    }));
    let alice = user_id(&sim, ALICE);
    let stored = sim.members(&group_id(&sim, GROUP));
    assert_eq!(stored.iter().filter(|id| **id == alice).count(), 1, "stored as {stored:?}");
}

#[test]
fn a_plugin_path_that_is_a_fifo_or_a_device_is_refused_without_blocking() {
    let dir = scratch_dir();
    fifo(&dir.join("plugin.fifo"));
    for (plugin, says) in [(dir.join("plugin.fifo"), "a FIFO"), (Path::new("/dev/zero").to_path_buf(), "a device")] {
        let args = ["--plugin".to_string(), plugin.display().to_string(), "describe".into()];
        let (code, stdout) = finishes_within(Duration::from_secs(20), &args);
        assert_eq!(code, 2, "{stdout}");
        assert!(stdout.contains("plugin-load") && stdout.contains(says), "{stdout}");
    }
}

/// A run fed `input` on standard input, which may stop reading early.
fn with_input(args: &[String], input: Vec<u8>) -> (i32, String) {
    let mut child =
        soar_host_command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input); // a refusal closes the pipe early
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn users_on_standard_input_are_capped_and_a_byte_order_mark_is_dropped() {
    let sim = simulator(TOKEN, &[ALICE, "bob@corp.example"], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let args = [base_args(&config), vec!["add-to-group".into(), "--users-file".into(), "-".into()]].concat();
    let flood = "#".repeat(65 * 1024 * 1024).into_bytes();
    let (code, stdout) = with_input(&args, flood);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("standard input") && stdout.contains("larger than"), "{stdout}");
    assert!(sim.requests().is_empty());
    // A users file and standard input that start with a byte-order mark.
    let (code, stdout) = with_input(&args, "\u{feff}alice@corp.example\n".as_bytes().to_vec());
    assert_eq!(code, 0, "{stdout}");
    std::fs::write(dir.join("users.txt"), "\u{feff}bob@corp.example\n").unwrap();
    let run = run_with(&config, &["add-to-group", "--users-file", &dir.join("users.txt").display().to_string()]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), [ALICE, "bob@corp.example"]);
}

#[test]
fn a_poisoned_rate_limit_slot_does_not_lock_an_origin_out() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let cache = dir.join("cache");
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"cache_dir": "cache"}));
    let mut tiny: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    tiny["identity_providers"][0]["requests_per_second"] = json!(1e-6);
    refused(&run_with(&write_json(&dir, "tiny.json", &tiny), &["test-connection"]), "invalid-config", "from 1 to");
    // A slot 11.6 days ahead, as an older host set to 1e-6 requests a second would have left it.
    let url = soar_host::endpoint::parse(&sim.base_url()).unwrap();
    let rate = cache.join("rate");
    std::fs::create_dir_all(&rate).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let ahead = now + Duration::from_secs(1_000_000);
    std::fs::write(
        soar_host::rate_limit::slot_file(&rate, &soar_host::endpoint::origin(&url)),
        ahead.as_nanos().to_string(),
    )
    .unwrap();
    tiny["identity_providers"][0]["requests_per_second"] = json!(5);
    let run = run_with(&write_json(&dir, "five.json", &tiny), &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert!(run.stderr.contains("spacing starts again from now"), "{}", run.stderr);
}

/// A simulator whose users carry no `groups`, that refuses every filter, and that leaves
/// `members` out of a group with none; `other_group` adds a group with a member.
fn members_omitted_when_empty(other_group: bool) -> Simulator {
    let mut options = SimulatorOptions::new(TOKEN);
    let mut groups = vec![SeedGroup::new(GROUP)];
    if other_group {
        let mut finance = SeedGroup::new("Finance");
        finance.members = vec![SeedMember::Id("bob-id".into())];
        groups.push(finance);
    }
    options.seed = Seed {
        idp_id: None,
        users: vec![json!({"userName": ALICE}), json!({"id": "bob-id", "userName": "bob@corp.example"})],
        groups,
    };
    options.quirks = vec![Quirk::NoUserGroups, Quirk::EmptyMembersOmitted, Quirk::FilterRejected];
    Simulator::start(options).unwrap()
}

#[test]
fn a_group_that_leaves_members_out_when_empty_is_read_as_empty_given_evidence() {
    for other_group in [true, false] {
        let sim = members_omitted_when_empty(other_group);
        let dir = scratch_dir();
        let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"audit_log": "audit.jsonl"}));
        let check = run_with(&config, &["check-membership", "--user", ALICE]);
        assert_eq!((check.code, check.outcome(0, 0)), (0, json!("not-member")), "{check:?}");
        let add = run_with(&config, &["add-to-group", "--user", ALICE]);
        assert_eq!((add.code, add.outcome(0, 0)), (0, json!("added")), "{add:?}");
        assert_eq!(add.json()["providers"][0]["users"][0]["membership_verified"], true);
        for expected in ["removed", "not-member"] {
            let remove = run_with(&config, &["remove-from-group", "--user", ALICE]);
            assert_eq!((remove.code, remove.outcome(0, 0)), (0, json!(expected)), "{remove:?}");
        }
        assert!(member_names(&sim).is_empty());
        let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
        assert_eq!(audit.matches("\"outcome\":\"removed\"").count(), 1, "{audit}");
    }
}

#[test]
fn a_server_that_never_lists_members_still_says_membership_cannot_be_checked() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_quirk(Quirk::NoMembership, true);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["check-membership", "--user", ALICE]);
    assert_eq!((run.code, run.user_error_kind(0, 0)), (1, json!("server")), "{run:?}");
    let message = run.json()["providers"][0]["users"][0]["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("nothing shows that this server lists members"), "{message}");
}

#[test]
fn ten_thousand_users_on_a_zia_tenant_are_read_page_by_page_not_filtered() {
    let mut options = SimulatorOptions::new(TOKEN);
    options.generate_users = 20_000;
    options.max_page_size = 1000;
    options.rate_limit = Some(200);
    options.seed.groups = vec![SeedGroup::new(GROUP)];
    let sim = Simulator::start(options).unwrap();
    let dir = scratch_dir();
    let users: String = (1..=10_000).map(|n| format!("user{n}@corp.example\n")).collect();
    std::fs::write(dir.join("users.txt"), users).unwrap();
    let config = write_config(&dir, &[("zia", &sim, "SOAR_TEST_TOKEN")], json!({"max_users_per_action": 10_000}));
    let mut zia: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    zia["identity_providers"][0]["profile"] = json!("zia");
    zia["identity_providers"][0]["requests_per_second"] = json!(200);
    let config = write_json(&dir, "zia.json", &zia);
    let run = run_with(&config, &["add-to-group", "--users-file", &dir.join("users.txt").display().to_string()]);
    assert_eq!(run.code, 0, "{}", &run.stdout[..run.stdout.len().min(2000)]);
    let requests = run.json()["http_requests"].as_u64().unwrap();
    assert!(requests <= 130, "{requests} requests");
    assert_eq!(sim.throttled(), 0, "no 429");
    let stored = sim.members(&group_id(&sim, GROUP));
    let distinct: std::collections::BTreeSet<&String> = stored.iter().collect();
    assert_eq!((stored.len(), distinct.len()), (10_000, 10_000));
}

#[test]
fn a_compressed_answer_that_was_not_asked_for_is_refused_without_its_bytes() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_fault(scim_simulator::Fault::EncodedUnasked, true);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let trace = dir.join("trace.har");
    let mut args = base_args(&config);
    args.extend(["--trace".into(), trace.display().to_string(), "add-to-group".into(), "--user".into(), ALICE.into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = soar_host(&refs, None);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["providers"][0]["error"];
    assert_eq!(error["kind"], "protocol", "{error}");
    assert!(error["message"].as_str().unwrap().contains("gzip (Content-Encoding), which was not asked for"), "{error}");
    let har = std::fs::read_to_string(&trace).unwrap();
    for text in [&run.stdout, &run.stderr, &har] {
        assert!(!text.contains("\\u001f") && !text.contains('\u{1f}') && !text.contains('\u{fffd}'), "{text}");
    }
    assert!(member_names(&sim).is_empty());
}
