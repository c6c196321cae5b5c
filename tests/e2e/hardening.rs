//! What an adversarial pass found, each as a test: token forms and echoes, inputs and files that
//! used to hang or wrap, identities that Unicode made one, output a server could forge, the
//! cross-process lock and rate limit. Every `soar-host` run here is also checked for the token
//! on stdout and stderr (see `Run::assert_no_secret`).

use scim_simulator::{Quirk, Simulator};
use serde_json::{json, Value};
use soar_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@corp.example";

pub(crate) fn refused(run: &Run, kind: &str, says: &str) {
    assert_eq!(run.code, 2, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["error"]["kind"], kind, "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "message {message:?} should mention {says:?}");
}

fn config_value(sim: &Simulator, dir: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(write_config(dir, &[("zpa", sim, "SOAR_TEST_TOKEN")], json!({}))).unwrap(),
    )
    .unwrap()
}

/// Runs soar-host with an environment variable holding `token` as the provider's token.
fn with_token(config: &Path, token: &str, rest: &[&str]) -> Run {
    let mut args = base_args(config);
    args.extend(rest.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    soar_host_with_env(&refs, None, &[("SOAR_ODD_TOKEN", token)])
}

/// A run that must end by itself within `limit` (a FIFO or a device could hang it).
pub(crate) fn finishes_within(limit: Duration, args: &[String]) -> (i32, String) {
    let mut child =
        soar_host_command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stdout = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
            return (status.code().unwrap_or(-1), stdout);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("soar-host {args:?} still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
pub(crate) fn fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[test]
fn tokens_that_are_not_rfc_6750_tokens_are_refused_at_config_time_without_being_shown() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let mut value = config_value(&sim, &dir);
    value["identity_providers"][0]["token_env"] = json!("SOAR_ODD_TOKEN");
    let config = write_json(&dir, "odd.json", &value);
    for (token, says) in [
        (" tok-LEAKCHECK-spaced ", "white space at position 1"),
        ("tok-LEAKCHECK-trailing\t", "white space"),
        ("\u{feff}tok-LEAKCHECK-bom", "byte-order mark"),
        ("tök-LEAKCHECK-unicode", "non-ASCII"),
        ("x", "at least 8"),
        ("        ", "white space"),
        ("tok\"LEAKCHECK\"quoted", "outside RFC 6750"),
    ] {
        let run = with_token(&config, token, &["test-connection"]);
        refused(&run, "invalid-config", says);
        assert!(run.json()["error"]["message"].as_str().unwrap().contains("identity_providers[0] (zpa)"), "{run:?}");
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains("LEAKCHECK"), "the token is never shown: {text}");
        }
    }
    let huge = "a".repeat(16 * 1024 + 1);
    refused(&with_token(&config, &huge, &["test-connection"]), "invalid-config", "longer than 16 KiB");
    assert!(sim.requests().is_empty(), "nothing was sent");
}

#[test]
fn token_files_must_be_small_regular_files_and_should_be_private() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let mut value = config_value(&sim, &dir);
    value["identity_providers"][0].as_object_mut().unwrap().remove("token_env");
    let with_file = |file: &str| {
        let mut value = value.clone();
        value["identity_providers"][0]["token_file"] = json!(file);
        write_json(&dir, "file.json", &value)
    };
    let config = with_file("/dev/zero");
    let (code, stdout) =
        finishes_within(Duration::from_secs(20), &[base_args(&config), vec!["test-connection".into()]].concat());
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("is a device, not a regular file"), "{stdout}");
    std::fs::write(dir.join("big.token"), "a".repeat(100_000)).unwrap();
    refused(&run_with(&with_file("big.token"), &["test-connection"]), "invalid-config", "larger than");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fifo(&dir.join("token.fifo"));
        let config = with_file("token.fifo");
        let (code, stdout) =
            finishes_within(Duration::from_secs(20), &[base_args(&config), vec!["test-connection".into()]].concat());
        assert_eq!(code, 2, "{stdout}");
        assert!(stdout.contains("is a FIFO"), "{stdout}");

        let token = dir.join("zpa.token");
        std::fs::write(&token, format!("{TOKEN}\r\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let run = run_with(&with_file("zpa.token"), &["test-connection"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stderr.contains("can be read by other users than its owner: chmod 600 it"), "{}", run.stderr);
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let run = run_with(&with_file("zpa.token"), &["test-connection"]);
        assert!(!run.stderr.contains("chmod 600"), "{}", run.stderr);
        // A link to a regular file is how secrets are mounted: it is read.
        std::os::unix::fs::symlink(&token, dir.join("linked.token")).unwrap();
        assert_eq!(run_with(&with_file("linked.token"), &["test-connection"]).code, 0);
    }
    assert_eq!(sim.requests().len(), 3, "only the three valid runs sent anything");
}

#[test]
fn an_echoed_token_never_reaches_the_plugin_or_any_output_in_any_form() {
    let sim = simulator(TOKEN, &[], &[]);
    sim.set_quirk(Quirk::EchoTokenEncoded, true);
    let config = json!({"allow_http": true, "identity_providers": [provider_entry("p", &sim, &format!("send p GET {}/Users/404", sim.base_url()))]});
    let hostile = std::sync::Arc::new(load_runtime(&hostile_path("plain")).unwrap());
    let (host, logs) = action_host(hostile, &config);
    let report = host.run(&soar_host::action::ActionRequest::new(soar_types::Action::TestConnection));
    let seen = report.document["providers"][0]["error"]["message"].as_str().unwrap().to_string();
    assert!(seen.starts_with("status 404"), "{seen}");
    for form in &token_forms(TOKEN) {
        assert!(!seen.contains(form), "the plugin saw {form}: {seen}");
        assert!(!report.document.to_string().contains(form), "{form}");
        assert!(logs.lock().unwrap().iter().all(|line| !line.contains(form)));
    }
    assert!(seen.matches("<redacted>").count() >= 4, "body forms and the X-Echo header are redacted: {seen}");
}

#[test]
fn ids_that_would_leave_the_users_path_refuse_the_call_before_anything_is_sent() {
    let sim = simulator(TOKEN, &[ALICE], &[ALICE]);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    for id in ["id:..", "id:.", "id:a/../b", "id:a%2fb", "id:a\\b"] {
        let run = run_with(&config, &["remove-from-group", "--user", ALICE, "--user", id]);
        refused(&run, "invalid-input", "SCIM ids never do");
    }
    assert!(sim.requests().is_empty(), "{:?}", request_lines(&sim));
    // An external id may hold '/' and '+' (Entra's immutable ids do): it goes into a filter.
    sim.add_user_resource(json!({"userName": "b@corp.example", "externalId": "S-1/5+2..x"}));
    let run = run_with(&config, &["add-to-group", "--user", "external:S-1/5+2..x"]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
}

#[test]
fn durations_and_counts_beyond_their_bounds_are_refused() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--timeout-ms", "18446744073709551615"]);
    refused(&run, "invalid-input", "--timeout-ms 18446744073709551615: give a whole number from 1 to 3600000");
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--max-retries", "101"]);
    refused(&run, "invalid-input", "--max-retries 101");
    for (key, value) in [
        ("deadline_ms", json!(u64::MAX)),
        ("retry_after_cap_ms", json!(3_600_001)),
        ("memory_limit_mib", json!(1 << 20)),
    ] {
        let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({key: value}));
        refused(&run_with(&config, &["add-to-group", "--user", ALICE]), "invalid-config", &format!("{key} is"));
    }
    assert!(sim.requests().is_empty());
}

#[cfg(unix)]
#[test]
fn files_that_are_not_regular_files_are_refused_without_blocking() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    fifo(&dir.join("audit.fifo"));
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"audit_log": "audit.fifo"}));
    let args = [base_args(&config), vec!["add-to-group".into(), "--user".into(), ALICE.into()]].concat();
    let (code, stdout) = finishes_within(Duration::from_secs(20), &args);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("audit_log") && stdout.contains("FIFO"), "{stdout}");

    // A dangling link as the audit log: refused, and its target is not created.
    std::os::unix::fs::symlink(dir.join("elsewhere.jsonl"), dir.join("audit.link")).unwrap();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"audit_log": "audit.link"}));
    refused(&run_with(&config, &["add-to-group", "--user", ALICE]), "invalid-config", "symbolic link");
    assert!(!dir.join("elsewhere.jsonl").exists());

    fifo(&dir.join("config.fifo"));
    let args = [base_args(&dir.join("config.fifo")), vec!["test-connection".into()]].concat();
    let (code, stdout) = finishes_within(Duration::from_secs(20), &args);
    assert_eq!((code, stdout.contains("FIFO")), (2, true), "{stdout}");

    fifo(&dir.join("users.fifo"));
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let args = [
        base_args(&config),
        vec!["add-to-group".into(), "--users-file".into(), dir.join("users.fifo").display().to_string()],
    ]
    .concat();
    let (code, stdout) = finishes_within(Duration::from_secs(20), &args);
    assert_eq!((code, stdout.contains("FIFO")), (2, true), "{stdout}");
    assert!(sim.requests().is_empty());
}

#[test]
fn repeated_keys_in_the_config_are_refused() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let provider = provider_entry("zpa", &sim, GROUP);
    let text =
        format!(r#"{{"allow_http": true, "identity_providers": [{provider}], "max_retries": 1, "max_retries": 9}}"#);
    std::fs::write(dir.join("config.json"), text).unwrap();
    refused(&run_with(&dir.join("config.json"), &["test-connection"]), "invalid-config", "max_retries is given twice");
}

#[test]
fn another_spelling_of_the_group_is_the_same_tenant_for_the_lock() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let gid = group_id(&sim, GROUP);
    let dir = scratch_dir();
    let locks = soar_host::group_lock::GroupLocks::new(Some(cli_cache_home().join("soar-host/locks")));
    let tenant = soar_host::endpoint::tenant(&soar_host::endpoint::parse(&sim.base_url()).unwrap());
    let held = locks.acquire(vec![soar_host::group_lock::GroupLocks::key(&tenant)], Instant::now()).unwrap();
    for group in [json!({"restricted_group": GROUP.to_lowercase()}), json!({"restricted_group_id": gid})] {
        let mut provider = json!({"name": "zpa", "base_url": sim.base_url(), "token_env": "SOAR_TEST_TOKEN"});
        for (key, value) in group.as_object().unwrap() {
            provider[key] = value.clone();
        }
        let config = write_json(&dir, "config.json", &json!({"allow_http": true, "identity_providers": [provider]}));
        let run = run_with(&config, &["add-to-group", "--user", ALICE, "--timeout-ms", "300"]);
        assert_eq!((run.code, run.json()["error"]["kind"].clone()), (1, json!("timeout")), "{group}: {run:?}");
    }
    assert!(sim.requests().is_empty());
    drop(held);
}

#[test]
fn unicode_case_folding_never_makes_two_accounts_one() {
    // The server folds KELVIN SIGN to k and finds the wrong account for kevin@; it must not be added.
    let sim = simulator(TOKEN, &["\u{212A}evin@corp.example"], &[]);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["add-to-group", "--user", "kevin@corp.example"]);
    assert_eq!((run.code, run.user_error_kind(0, 0)), (1, json!("user-not-found")), "{run:?}");
    assert!(member_names(&sim).is_empty());
    let run = run_with(&config, &["add-to-group", "--user", "KEVIN@corp.example"]);
    assert_eq!(run.user_error_kind(0, 0), "user-not-found");
    assert!(member_names(&sim).is_empty());
}

#[test]
fn a_resource_listed_twice_is_one_resource() {
    let sim = simulator(TOKEN, &[ALICE, "bob@corp.example"], &[]);
    sim.set_quirk(Quirk::ListedTwice, true);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", "bob@corp.example"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("added"), json!("added")));
    assert_eq!(member_names(&sim), [ALICE, "bob@corp.example"]);
}

#[test]
fn server_text_cannot_forge_table_lines_or_turn_text_around() {
    let sim = simulator(TOKEN, &[], &[]);
    sim.add_user_resource(json!({"id": "77\u{1b}[32m\nzpa  mallory@corp.example  added", "userName": ALICE}));
    sim.add_user_resource(json!({"id": "evil\u{202e}gnp.exe", "userName": "bob@corp.example"}));
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run =
        run_with(&config, &["--output", "table", "check-membership", "--user", ALICE, "--user", "bob@corp.example"]);
    assert!(!run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{202e}'), "{:?}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 4, "a header, the column names and one line per user: {}", run.stdout);
    assert!(
        run.stdout.contains("\\u{1b}[32m\\u{a}zpa") && run.stdout.contains("evil\\u{202e}gnp.exe"),
        "{}",
        run.stdout
    );
    let run = run_with(&config, &["check-membership", "--user", "bob@corp.example"]);
    assert_eq!(run.json()["providers"][0]["users"][0]["user_id"], "evil\\u{202e}gnp.exe");
}

#[test]
fn requests_that_never_reached_a_server_are_not_counted() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = write_json(
        &scratch_dir(),
        "config.json",
        &json!({"allow_http": true, "identity_providers": [{"name": "down", "base_url": format!("http://{closed}/scim/v2"),
                 "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN", "max_retries": 2}]}),
    );
    let run = run_with(&config, &["test-connection"]);
    assert_eq!((run.code, run.json()["providers"][0]["error"]["kind"].clone()), (1, json!("transport")), "{run:?}");
    assert_eq!(run.json()["http_requests"], 0, "three connection attempts, no request sent: {run:?}");
}

#[test]
fn retry_after_is_reported_within_the_cap_the_host_honours() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_fault(scim_simulator::Fault::RateLimitSeconds, true);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"retry_after_cap_ms": 250}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--max-retries", "0"]);
    // The group and user lookups travel together; the throttled one may be either.
    let provider = &run.json()["providers"][0];
    let error = if provider["error"].is_null() { &provider["users"][0]["error"] } else { &provider["error"] };
    assert_eq!(
        (error["kind"].clone(), error["retry_after_ms"].clone()),
        (json!("rate-limited"), json!(250)),
        "{run:?}"
    );
}

#[test]
fn processes_sharing_a_machine_share_one_rate_limit_per_origin() {
    let mut options = scim_simulator::SimulatorOptions::new(TOKEN);
    options.rate_limit = Some(5);
    let sim = Simulator::start(options).unwrap();
    sim.add_group(GROUP, &[]);
    let dir = scratch_dir();
    let mut value = config_value(&sim, &dir);
    value["identity_providers"][0]["requests_per_second"] = json!(5);
    value["cache_dir"] = json!(dir.join("cache").display().to_string());
    let config = write_json(&dir, "config.json", &value);
    assert_eq!(run_with(&config, &["test-connection"]).code, 0, "warms the compile cache");
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12).map(|_| scope.spawn(|| run_with(&config, &["test-connection"]))).collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    assert!(runs.iter().all(|run| run.code == 0), "{runs:?}");
    assert_eq!(sim.throttled(), 0, "twelve processes together stayed within 5 requests per second");
    let slots: Vec<PathBuf> = std::fs::read_dir(dir.join("cache/rate")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(slots.len(), 1, "one slot file for the one origin: {slots:?}");
}
