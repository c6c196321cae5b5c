//! What an operator sees: the request log at `SOAR_HOST_LOG=debug`, the HAR trace of
//! `--trace FILE`, and the progress line on a terminal (and nowhere else).

use scim_simulator::{Fault, Quirk, SimulatorOptions};
use serde_json::{json, Value};
use soar_e2e::*;
use std::path::Path;

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";

fn har_schema() -> jsonschema::Validator {
    let path = workspace().join("tests/fixtures/har/har-1.2.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the HAR schema compiles")
}

/// Every string in a JSON document.
fn strings(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings(item, into)),
        Value::Object(map) => map.iter().for_each(|(key, item)| {
            into.push(key.clone());
            strings(item, into)
        }),
        _ => {}
    }
}

#[test]
fn a_trace_is_a_har_of_every_request_that_reached_the_server_without_the_token() {
    // A retried request (429 first), a refused PATCH form and its fallback, and error answers
    // that echo the token in every form.
    let sim = simulator(TOKEN, &[ALICE, BOB], &[]);
    sim.set_fault(Fault::RateLimitSeconds, true);
    sim.set_quirk(Quirk::PathlessAddOnly, true);
    sim.set_quirk(Quirk::EchoTokenEncoded, true);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let trace = dir.join("action.har");
    let run = run_with(&config, &["--trace", trace.to_str().unwrap(), "add-to-group", "--user", ALICE, "--user", BOB]);
    // Global options come before the command: `run_with` puts --plugin and --config first.
    assert_eq!(run.code, 0, "{run:?}");
    let text = std::fs::read_to_string(&trace).expect("the trace is written");
    let har: Value = serde_json::from_str(&text).expect("the trace is JSON");
    let errors: Vec<String> = har_schema().iter_errors(&har).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "not HAR 1.2: {errors:#?}");
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len() as u64, run.json()["http_requests"].as_u64().unwrap(), "one entry per request");
    assert_eq!(entries.len(), sim.requests().len());
    let mut all = Vec::new();
    strings(&har, &mut all);
    for form in token_forms(TOKEN) {
        assert!(!text.contains(&form), "the trace holds the token as {form}");
        assert!(all.iter().all(|s| !s.contains(&form)), "{form}");
    }
    let statuses: Vec<u64> = entries.iter().map(|e| e["response"]["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");
    let retried = entries.iter().find(|e| e["_attempt"] == 2).expect("the retried request");
    assert!(retried["_reason"].as_str().unwrap().contains("retry after HTTP 429"), "{retried}");
    let patches: Vec<&Value> = entries.iter().filter(|e| e["request"]["method"] == "PATCH").collect();
    assert_eq!(patches.len(), 2, "the refused form and the path-less one");
    assert_eq!(patches[0]["response"]["status"], 400);
    assert!(patches[1]["_reason"].as_str().unwrap().contains("previous PATCH form (HTTP 400)"), "{}", patches[1]);
    let body: Value = serde_json::from_str(patches[1]["request"]["postData"]["text"].as_str().unwrap()).unwrap();
    assert!(body["Operations"][0].get("path").is_none(), "{body}");
    let authorization =
        patches[1]["request"]["headers"].as_array().unwrap().iter().find(|h| h["name"] == "Authorization");
    assert_eq!(authorization.unwrap()["value"], "Bearer [redacted]");
    assert_eq!(member_names(&sim), [ALICE, BOB]);
}

#[test]
fn a_trace_that_cannot_be_written_refuses_the_action_before_anything_is_sent() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    std::fs::create_dir(dir.join("folder")).unwrap();
    let mut unusable = vec![dir.join("missing/trace.har"), dir.join("folder")];
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("elsewhere.har"), dir.join("link.har")).unwrap();
        unusable.push(dir.join("link.har"));
    }
    for path in unusable {
        let run = run_with(&config, &["--trace", path.to_str().unwrap(), "add-to-group", "--user", ALICE]);
        assert_eq!(run.code, 2, "{run:?}");
        let document = run.json();
        assert_eq!(document["error"]["kind"], "invalid-input");
        assert!(document["error"]["message"].as_str().unwrap().starts_with("--trace "), "{document}");
    }
    assert!(!Path::new(&dir.join("elsewhere.har")).exists(), "nothing created through the link");
    assert!(sim.requests().is_empty());
}

#[test]
fn the_debug_log_has_one_line_per_exchange_with_retries_and_fallbacks_explained() {
    let sim = simulator(TOKEN, &[ALICE], &[ALICE]);
    sim.set_fault(Fault::RateLimitSeconds, true);
    sim.set_quirk(Quirk::RfcRemoveRejected, true);
    sim.set_quirk(Quirk::UnsupportedAs501, true);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let mut args = base_args(&config);
    args.extend(["--correlation-id", "INC-77", "remove-from-group", "--user", ALICE].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = soar_host_with_env(&args, None, &[("SOAR_HOST_LOG", "debug")]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    let exchanges: Vec<&str> = run.stderr.lines().filter(|line| line.contains(" -> ")).collect();
    assert_eq!(exchanges.len(), sim.requests().len(), "one line per exchange:\n{}", run.stderr);
    assert!(exchanges.iter().all(|line| line.starts_with("soar-host [INC-77] debug: [zpa] ")), "{exchanges:#?}");
    let retried = exchanges.iter().find(|line| line.contains("attempt 2")).expect("the retried request");
    assert!(retried.contains("because retry after HTTP 429") && retried.contains(" ms"), "{retried}");
    let refused = exchanges.iter().find(|line| line.contains("PATCH") && line.contains("-> 501")).expect("501");
    assert!(refused.contains("/Groups/"), "{refused}");
    let fallback = exchanges.iter().find(|line| line.contains("-> 204")).expect("the fallback PATCH");
    assert!(fallback.contains("because the server refused the previous PATCH form (HTTP 501)"), "{fallback}");
    assert!(!run.stderr.contains("Operations"), "never a body");
    // Without debug, none of it.
    let run = run_with(&config, &["check-membership", "--user", ALICE]);
    assert!(!run.stderr.contains(" -> "), "{}", run.stderr);
}

/// Runs `soar-host` with stderr on a pseudo-terminal; returns what the terminal showed.
#[cfg(unix)]
fn on_a_terminal(args: &[String]) -> (i32, String) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut leader, mut follower) = (0, 0);
    // SAFETY: openpty writes two new descriptors, which are owned below.
    let opened =
        unsafe { libc::openpty(&mut leader, &mut follower, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned by nothing else.
    let (leader, follower) = unsafe { (OwnedFd::from_raw_fd(leader), OwnedFd::from_raw_fd(follower)) };
    let mut child = soar_host_command(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(follower))
        .spawn()
        .expect("soar-host starts");
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut terminal = std::fs::File::from(leader);
        let mut chunk = [0u8; 4096];
        // Reads until the child's end of the terminal closes (EIO on Linux).
        while let Ok(n) = terminal.read(&mut chunk) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&shown).into_owned()
    });
    let status = child.wait().expect("soar-host ends");
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let shown = reader.join().unwrap();
    assert!(!shown.contains(TOKEN) && !stdout.contains(TOKEN));
    (status.code().unwrap_or(-1), shown)
}

#[cfg(unix)]
#[test]
fn a_long_action_shows_progress_on_a_terminal_and_nowhere_else() {
    // Every answer takes 600 ms: the lookups, the membership read and the PATCH run past a second.
    let mut options = SimulatorOptions::new(TOKEN);
    options.latency_ms = 600;
    options.generate_users = 20;
    options.quirks = vec![Quirk::NoUserGroups];
    let sim = scim_simulator::Simulator::start(options).unwrap();
    let dir = scratch_dir();
    let provider = json!({"name": "zpa", "base_url": sim.base_url(), "restricted_group": scim_simulator::GENERATED_GROUP,
                          "token_env": "SOAR_TEST_TOKEN"});
    let config = write_json(&dir, "config.json", &json!({"allow_http": true, "identity_providers": [provider]}));
    let mut args = base_args(&config);
    args.extend(["add-to-group", "--user", "user1@corp.example"].map(String::from));
    let (code, shown) = on_a_terminal(&args);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("requests,") && shown.contains(" s left"), "a progress line: {shown:?}");
    assert!(shown.contains("answered"), "{shown:?}");

    // The same action with stderr a pipe: no progress line at all.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut args = args.clone();
    *args.last_mut().unwrap() = "user2@corp.example";
    let run = soar_host(&args, None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stderr.contains(" s left") && !run.stderr.contains('\r'), "{:?}", run.stderr);
}
