//! The simulator at scale, measured at the server: a tenant of 100,000 users and a restricted
//! group of 10,000 members, and the requests the plugin makes against it, each timed from the
//! parsed request to the written answer (`Recorded::handled`). `cargo bench -p scim-simulator`.
//! Without `--bench` (as the test command runs it) it checks a small tenant quickly.

use scim_simulator::{generated_user, Simulator, SimulatorOptions, GENERATED_GROUP};
use std::time::Duration;

/// One timed request: its name and what sends it.
type Request<'a> = Box<dyn Fn() + 'a>;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (users, members) = if full { (100_000, 10_000) } else { (2_000, 200) };
    let mut options = SimulatorOptions::new("bench-token-0123456789");
    options.generate_users = users;
    options.generate_members = members;
    let sim = Simulator::start(options).expect("simulator");
    let group = sim.group_id_of(GENERATED_GROUP).expect("the generated group");
    let base = sim.base_url();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let get = |path: &str| {
        let mut response = agent
            .get(format!("{base}{path}"))
            .header("Authorization", "Bearer bench-token-0123456789")
            .call()
            .expect("answer");
        assert!(response.status().as_u16() < 300, "{path}: {}", response.status());
        response.body_mut().read_to_vec().expect("body");
    };
    let patch = |body: String| {
        let response = agent
            .patch(format!("{base}/Groups/{group}"))
            .header("Authorization", "Bearer bench-token-0123456789")
            .header("Content-Type", "application/scim+json")
            .send(body)
            .expect("answer");
        assert!(response.status().as_u16() < 300, "{}", response.status());
    };
    let encode = |text: &str| {
        text.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect::<String>()
    };
    let or_chunk: String = (members + 1..=members + 100)
        .map(|n| format!("userName eq \"{}\"", generated_user(n)))
        .collect::<Vec<_>>()
        .join(" or ");
    let user_id = sim.user_id_of(&generated_user(users)).expect("the last user");
    let new_ids: Vec<String> =
        (members + 1..=members + 100).map(|n| sim.user_id_of(&generated_user(n)).unwrap()).collect();
    let member_values = new_ids.iter().map(|id| format!("{{\"value\":\"{id}\"}}")).collect::<Vec<_>>().join(",");
    let removes = new_ids
        .iter()
        .map(|id| format!("{{\"op\":\"remove\",\"path\":\"members[value eq \\\"{id}\\\"]\"}}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(&str, Request)> = vec![
        (
            "group by displayName",
            Box::new(|| {
                get(&format!(
                    "/Groups?filter={}&excludedAttributes=members",
                    encode(&format!("displayName eq \"{GENERATED_GROUP}\""))
                ))
            }),
        ),
        (
            "one user by userName",
            Box::new(|| {
                get(&format!("/Users?filter={}", encode(&format!("userName eq \"{}\"", generated_user(users)))))
            }),
        ),
        (
            "100 users in one or-filter",
            Box::new(|| get(&format!("/Users?filter={}&startIndex=1&count=100", encode(&or_chunk)))),
        ),
        ("a user by id (with groups)", Box::new(|| get(&format!("/Users/{user_id}")))),
        ("the group's members", Box::new(|| get(&format!("/Groups/{group}?attributes=members")))),
        (
            "membership filter",
            Box::new(|| {
                get(&format!(
                    "/Groups?filter={}",
                    encode(&format!("id eq \"{group}\" and members[value eq \"{user_id}\"]"))
                ))
            }),
        ),
        ("last page of /Users", Box::new(|| get(&format!("/Users?startIndex={}&count=100", users - 99)))),
        (
            "PATCH add 100 members",
            Box::new(|| {
                patch(format!("{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{{\"op\":\"add\",\"path\":\"members\",\"value\":[{member_values}]}}]}}"))
            }),
        ),
        (
            "PATCH remove 100 members",
            Box::new(|| {
                patch(format!(
                    "{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{removes}]}}"
                ))
            }),
        ),
    ];
    println!("tenant: {users} users, a group of {members} members; handling time at the server");
    println!("| request | median | max |");
    println!("|---|---|---|");
    let mut worst = Duration::ZERO;
    for (name, run) in &cases {
        sim.clear_requests();
        for _ in 0..if full { 20 } else { 2 } {
            run();
        }
        let mut times: Vec<Duration> = sim.requests().iter().map(|r| r.handled).collect();
        times.sort();
        let (median, max) = (times[times.len() / 2], *times.last().unwrap());
        worst = worst.max(max);
        println!("| {name} | {:.3} ms | {:.3} ms |", median.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3);
    }
    println!("slowest answer: {:.3} ms", worst.as_secs_f64() * 1e3);
}
