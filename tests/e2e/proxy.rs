//! Proxies: an https provider goes through the configured proxy, whose credentials reach it and
//! never appear in any output; a plain-http (loopback) provider never goes through any proxy,
//! neither the `proxy` key nor the proxy environment variables, since a proxy would read the
//! token in clear text.

use serde_json::json;
use soar_e2e::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

const PROXY_PASSWORD: &str = "pr0xy-LEAKCHECK-pass";

/// A CONNECT proxy (as HTTP clients use for every https target); records the request heads it saw.
fn start_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || tunnel(client, &log));
        }
    });
    (port, seen)
}

fn tunnel(client: TcpStream, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    log.lock().unwrap().extend(head.iter().cloned());
    if !head[0].starts_with("CONNECT ") {
        let _ = client.try_clone().unwrap().write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let target = head[0].split_whitespace().nth(1).unwrap().to_string();
    let upstream = TcpStream::connect(&target).unwrap();
    let mut client_writer = client.try_clone().unwrap();
    client_writer.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
    let mut upstream_reader = upstream.try_clone().unwrap();
    let downstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut upstream_reader, &mut client_writer);
        let _ = client_writer.shutdown(std::net::Shutdown::Both);
    });
    let mut upstream_writer = upstream;
    let buffered: Vec<u8> = reader.buffer().to_vec();
    let _ = upstream_writer.write_all(&buffered);
    let mut client_reader = reader.into_inner();
    let _ = std::io::copy(&mut client_reader, &mut upstream_writer);
    let _ = upstream_writer.shutdown(std::net::Shutdown::Both);
    let _ = downstream.join();
}

#[test]
fn requests_go_through_the_configured_proxy_and_its_password_stays_secret() {
    let (sim, ca_pem) = https_simulator();
    let (port, seen) = start_proxy();
    let dir = scratch_dir();
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let provider =
        json!({"name": "zpa", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"});
    let config = write_json(
        &dir,
        "config.json",
        &json!({"identity_providers": [provider], "ca_file": "ca.pem", "proxy": format!("http://soar:{PROXY_PASSWORD}@127.0.0.1:{port}")}),
    );
    let run = run_with(&config, &["add-to-group", "--user", "alice@corp.example"]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), ["alice@corp.example"]);
    let seen = seen.lock().unwrap().clone();
    let tunnels = seen.iter().filter(|line| line.starts_with("CONNECT localhost:")).count();
    assert!(tunnels >= 1, "{seen:?}");
    assert_eq!(sim.requests().len(), 3, "the three requests arrived through the tunnel");
    assert!(seen.iter().any(|line| line.to_ascii_lowercase().starts_with("proxy-authorization: basic ")), "{seen:?}");
    assert!(seen.iter().all(|line| !line.contains(TOKEN)), "the proxy sees only the encrypted tunnel");
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(PROXY_PASSWORD));
    }

    // A proxy that is down: the error names it without its credentials.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write_json(
        &dir,
        "down.json",
        &json!({"identity_providers": [provider], "ca_file": "ca.pem", "max_retries": 0,
                "proxy": format!("http://soar:{PROXY_PASSWORD}@127.0.0.1:{closed}")}),
    );
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["providers"][0]["error"]["kind"], "transport");
    assert_eq!(run.json()["http_requests"], 0, "nothing reached a server");
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(PROXY_PASSWORD), "{text}");
    }
}

#[test]
fn a_plain_http_provider_never_goes_through_a_proxy() {
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let (port, seen) = start_proxy();
    let proxy = format!("http://127.0.0.1:{port}");
    let dir = scratch_dir();
    for extra in [json!({"proxy": proxy}), json!({})] {
        let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], extra);
        let mut args = base_args(&config);
        args.push("test-connection".into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = [("HTTPS_PROXY", proxy.as_str()), ("HTTP_PROXY", proxy.as_str()), ("ALL_PROXY", proxy.as_str())];
        let run = soar_host_with_env(&refs, None, &env);
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(sim.requests().len(), 2, "both requests went straight to the loopback provider");
    assert!(seen.lock().unwrap().is_empty(), "the proxy saw nothing: {:?}", seen.lock().unwrap());
}
