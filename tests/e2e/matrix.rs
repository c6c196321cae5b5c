//! Every quirk alone and with every other, and the recoverable faults with the quirks that
//! shape a change: add, add again, check, remove, remove again, check, on a tenant with several
//! users and groups and on one with a lone user and group. After every step the membership the
//! server holds is what the outcome says.

use scim_simulator::{Fault, Quirk, Simulator};
use serde_json::json;
use soar_e2e::*;
use soar_host::action::{ActionHost, ActionRequest};
use soar_types::Action;

const ALICE: &str = "alice@corp.example";

/// Quirk sets no client can act on: both remove forms refused, or membership unreadable (its
/// own test in scim.rs shows what the plugin reports then).
fn workable(quirks: &[Quirk]) -> bool {
    let both_removes_refused =
        quirks.contains(&Quirk::RfcRemoveRejected) && quirks.contains(&Quirk::EntraRemoveRejected);
    !(quirks.contains(&Quirk::NoMembership) || both_removes_refused)
}

/// A tenant whose restricted group holds `members`, with the quirks and fault on.
fn tenant(lone: bool, members: &[&str], quirks: &[Quirk], fault: Option<Fault>) -> Simulator {
    let users: &[&str] = if lone { &[ALICE] } else { &[ALICE, "bob@corp.example", "carol@corp.example"] };
    let sim = simulator(TOKEN, users, members);
    if !lone {
        let bob = user_id(&sim, "bob@corp.example");
        sim.add_group("Contractors", &[bob.as_str()]);
    }
    for quirk in quirks {
        sim.set_quirk(*quirk, true);
    }
    if let Some(fault) = fault {
        sim.set_fault(fault, true);
    }
    sim
}

/// Runs the six steps; returns what went differently from the expected outcomes and membership.
fn round_trip(host: &ActionHost, sim: &Simulator) -> Vec<String> {
    let group = group_id(sim, GROUP);
    let alice = user_id(sim, ALICE);
    let steps = [
        (Action::AddToGroup, "added", true),
        (Action::AddToGroup, "already-member", true),
        (Action::CheckMembership, "member", true),
        (Action::RemoveFromGroup, "removed", false),
        (Action::RemoveFromGroup, "not-member", false),
        (Action::CheckMembership, "not-member", false),
    ];
    let mut wrong = Vec::new();
    for (action, expected, member) in steps {
        let mut request = ActionRequest::new(action);
        request.users = vec![ALICE.to_string()];
        let report = host.run(&request);
        let user = &report.document["providers"][0]["users"][0];
        let members = sim.members(&group);
        let expected_members = if member { vec![alice.clone()] } else { Vec::new() };
        if user["outcome"] != json!(expected) || members != expected_members || report.exit_code != 0 {
            wrong.push(format!(
                "{action:?}: exit {}, outcome {}, error {}, members {members:?}",
                report.exit_code, user["outcome"], user["error"]
            ));
        }
    }
    wrong
}

fn check(cases: Vec<(bool, Vec<Quirk>, Option<Fault>)>) {
    let runtime = real_runtime();
    let mut failures = Vec::new();
    for (lone, quirks, fault) in cases {
        let sim = tenant(lone, &[], &quirks, fault);
        let config = json!({"allow_http": true, "identity_providers": [provider_entry("zpa", &sim, GROUP)]});
        let host = action_host(runtime.clone(), &config).0;
        for wrong in round_trip(&host, &sim) {
            failures.push(format!("lone user {lone}, quirks {quirks:?}, fault {fault:?}: {wrong}"));
        }
    }
    assert!(failures.is_empty(), "{} wrong steps:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_quirk_and_pair_of_quirks_keeps_membership_as_reported() {
    let mut sets: Vec<Vec<Quirk>> = vec![Vec::new()];
    for (index, first) in Quirk::ALL.iter().enumerate() {
        sets.push(vec![*first]);
        sets.extend(Quirk::ALL[index + 1..].iter().map(|second| vec![*first, *second]));
    }
    let cases = [false, true]
        .into_iter()
        .flat_map(|lone| sets.iter().filter(|quirks| workable(quirks)).map(move |quirks| (lone, quirks.clone(), None)))
        .collect();
    check(cases);
}

#[test]
fn recoverable_faults_with_the_quirks_that_shape_a_change_keep_membership_as_reported() {
    let shaping = [
        Vec::new(),
        vec![Quirk::DuplicateMembers],
        vec![Quirk::DuplicateMembers, Quirk::NoUserGroups],
        vec![Quirk::FilterIgnored, Quirk::NoUserGroups],
        vec![Quirk::PathlessAddOnly],
        vec![Quirk::RfcRemoveRejected],
    ];
    let cases = [Fault::ConflictOnce, Fault::DropAfterChange]
        .into_iter()
        .flat_map(|fault| shaping.iter().map(move |quirks| (true, quirks.clone(), Some(fault))))
        .collect();
    check(cases);
}

#[test]
fn a_mixed_batch_under_every_quirk_changes_exactly_who_it_reports() {
    const BOB: &str = "bob@corp.example";
    const NOBODY: &str = "nobody@corp.example";
    let runtime = real_runtime();
    let mut failures = Vec::new();
    for quirk in Quirk::ALL.iter().filter(|quirk| workable(&[**quirk])) {
        let sim = tenant(false, &[ALICE], &[*quirk], None);
        let group = group_id(&sim, GROUP);
        let (alice, bob) = (user_id(&sim, ALICE), user_id(&sim, BOB));
        let config = json!({"allow_http": true, "identity_providers": [provider_entry("zpa", &sim, GROUP)]});
        let host = action_host(runtime.clone(), &config).0;
        let mut run = |action, expected: [&str; 3], members: Vec<String>| {
            let mut request = ActionRequest::new(action);
            request.users = vec![ALICE.to_string(), BOB.to_string(), NOBODY.to_string()];
            let report = host.run(&request);
            let users = &report.document["providers"][0]["users"];
            let seen: Vec<String> = (0..3)
                .map(|n| users[n]["outcome"].as_str().or(users[n]["error"]["kind"].as_str()).unwrap_or("?").to_string())
                .collect();
            let mut held = sim.members(&group);
            held.sort();
            if seen != expected || held != members || report.exit_code != 3 {
                failures.push(format!(
                    "{quirk:?} {action:?}: exit {}, outcomes {seen:?}, members {held:?}",
                    report.exit_code
                ));
            }
        };
        let mut both = vec![alice.clone(), bob.clone()];
        both.sort();
        run(Action::AddToGroup, ["already-member", "added", "user-not-found"], both);
        run(Action::RemoveFromGroup, ["removed", "removed", "user-not-found"], Vec::new());
    }
    assert!(failures.is_empty(), "{} wrong batches:\n{}", failures.len(), failures.join("\n"));
}
