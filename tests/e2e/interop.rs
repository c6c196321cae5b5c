//! Interop with SCIM software we did not write (PyPI, installed by scripts/test.sh):
//! the plugin against `scim2-server`, and `scim2-tester` against our simulator.

use scim_simulator::{Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_e2e::*;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tool(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{variable} is not set: run the tests with `bash scripts/test.sh`, which installs the SCIM tools from PyPI"
        )
    });
    assert!(path.is_file(), "{variable}={} does not exist: run `bash scripts/test.sh`", path.display());
    path
}

/// A running `scim2-server`, stopped when dropped.
struct Scim2Server {
    child: Child,
    base_url: String,
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Scim2Server {
    fn start() -> Scim2Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(tool("SOAR_SCIM2_SERVER"))
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scim2-server");
        let mut server = Scim2Server { child, base_url: format!("http://127.0.0.1:{port}/v2") };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut stderr = String::new();
                use std::io::Read;
                let _ = server.child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("scim2-server exited ({status}) before listening: {stderr}");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "scim2-server did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/scim+json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let mut response = agent.run(request).expect("scim2-server answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert!(status < 300, "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn create_user(&self, user_name: &str) -> String {
        let user = self.request(
            "POST",
            "/Users",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": true})),
        );
        user["id"].as_str().expect("user id").to_string()
    }

    /// The group's member ids, as the server itself reports them.
    fn members(&self, group_id: &str) -> Vec<String> {
        let group = self.request("GET", &format!("/Groups/{group_id}"), None);
        let mut ids: Vec<String> = group["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|i| i["value"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn the_plugin_works_against_scim2_server() {
    let server = Scim2Server::start();
    let users: Vec<String> =
        ["alice", "bob", "carol", "dave", "erin"].iter().map(|n| format!("{n}@corp.example")).collect();
    let ids: Vec<String> = users.iter().map(|u| server.create_user(u)).collect();
    let group = server.request(
        "POST",
        "/Groups",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": GROUP})),
    );
    let gid = group["id"].as_str().unwrap().to_string();
    let dir = scratch_dir();
    let config = write_json(
        &dir,
        "config.json",
        &json!({"allow_http": true, "identity_providers": [{
            "name": "scim2-server", "base_url": server.base_url, "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"
        }]}),
    );

    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["providers"][0]["group"]["id"], gid.as_str());

    let run = run_with(&config, &["add-to-group", "--user", &users[0]]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(server.members(&gid), [ids[0].clone()]);

    let run = run_with(
        &config,
        &[
            "add-to-group",
            "--user",
            &users[0].to_uppercase(),
            "--user",
            &users[1],
            "--user",
            &users[2],
            "--user",
            &users[3],
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.outcome(0, 0), "already-member");
    assert_eq!(server.members(&gid), sorted(ids[..4].to_vec()));

    let run = run_with(&config, &["remove-from-group", "--user", &users[1]]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert_eq!(server.members(&gid), sorted(vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]));

    let run = run_with(&config, &["remove-from-group", "--user", &users[0], "--user", &users[2], "--user", &users[4]]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!((run.outcome(0, 0), run.outcome(0, 2)), (json!("removed"), json!("not-member")));
    assert_eq!(server.members(&gid), [ids[3].clone()]);

    let run = run_with(&config, &["check-membership", "--user", &users[3], "--user", &users[0]]);
    assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("member"), json!("not-member")), "{run:?}");
}

#[test]
fn scim2_tester_passes_against_the_simulator() {
    let sim = Simulator::start(SimulatorOptions::new(TOKEN)).expect("simulator");
    let output = Command::new(tool("SOAR_SCIM2_CLI"))
        .args(["--url", &sim.base_url(), "test"])
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {TOKEN}"))
        .output()
        .expect("run scim2 test");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let successes = text.lines().filter(|l| l.starts_with("SUCCESS")).count();
    let failures: Vec<&str> = text.lines().filter(|l| l.starts_with("ERROR") || l.starts_with("CRITICAL")).collect();
    assert!(failures.is_empty(), "scim2-tester found problems:\n{text}");
    assert!(successes >= 80, "only {successes} checks passed:\n{text}");
}
