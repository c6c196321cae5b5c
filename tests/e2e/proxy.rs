//! An HTTP proxy from the config: requests go through it, its credentials reach it and never
//! appear in any output.

use serde_json::json;
use soar_e2e::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

const PROXY_PASSWORD: &str = "pr0xy-LEAKCHECK-pass";

/// A CONNECT proxy (as HTTP clients use for every target); records the request heads it saw.
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
    let target = head[0].split_whitespace().nth(1).unwrap().to_string();
    assert!(head[0].starts_with("CONNECT "), "{head:?}");
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
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let (port, seen) = start_proxy();
    let dir = scratch_dir();
    let config = write_config(
        &dir,
        &[("zpa", &sim, "SOAR_TEST_TOKEN")],
        json!({"proxy": format!("http://soar:{PROXY_PASSWORD}@127.0.0.1:{port}")}),
    );
    let run = run_with(&config, &["add-to-group", "--user", "alice@corp.example"]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), ["alice@corp.example"]);
    let seen = seen.lock().unwrap();
    let tunnels = seen.iter().filter(|line| line.starts_with("CONNECT 127.0.0.1:")).count();
    assert!(tunnels >= 1, "{seen:?}");
    assert_eq!(sim.requests().len(), 3, "the three requests arrived through the tunnel");
    assert!(seen.iter().any(|line| line.to_ascii_lowercase().starts_with("proxy-authorization: basic ")), "{seen:?}");
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(PROXY_PASSWORD));
    }

    // A proxy that is down: the error names it without its credentials.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write_config(
        &dir,
        &[("zpa", &sim, "SOAR_TEST_TOKEN")],
        json!({"proxy": format!("http://soar:{PROXY_PASSWORD}@127.0.0.1:{closed}"), "max_retries": 0}),
    );
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["providers"][0]["error"]["kind"], "transport");
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(PROXY_PASSWORD), "{text}");
    }
}
