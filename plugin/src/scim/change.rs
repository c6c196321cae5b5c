//! Changing membership: only targeted PATCH operations on the group's `members`, never a PUT
//! (it would lose concurrent changes) and never a `remove` of `members` without a filter or a
//! value (it empties the group).

use crate::scim::client::{is_fatal, says_unsupported, Outgoing, ScimClient, Sent};
use crate::scim::lookup::Membership;
use crate::scim::response::{Group, User};
use serde_json::{json, Value};
use soar_types::encode::{filter_string, path_segment};
use soar_types::host::{Host, LogLevel, Method};
use soar_types::model::{ActionError, ErrorKind, UserOutcome};

/// Members changed by one PATCH at most.
pub const MEMBERS_PER_PATCH: usize = 100;
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The RFC 7644 add, as ZPA documents it: `{"op":"add","path":"members","value":[...]}`.
pub fn add_with_path(ids: &[&str]) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": member_values(ids)}]})
}

/// The path-less add that ZIA documents: `{"op":"add","value":{"members":[...]}}`.
pub fn add_without_path(ids: &[&str]) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "value": {"members": member_values(ids)}}]})
}

/// The RFC 7644 remove: one op per member, `path: members[value eq "<id>"]`.
pub fn remove_by_filter(ids: &[&str]) -> Value {
    let operations: Vec<Value> = ids
        .iter()
        .map(|id| json!({"op": "remove", "path": format!("members[value eq {}]", filter_string(id))}))
        .collect();
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

/// The remove Microsoft Entra ID sends: `{"op":"Remove","path":"members","value":[...]}`.
pub fn remove_by_value_list(ids: &[&str]) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": "members", "value": member_values(ids)}]})
}

fn member_values(ids: &[&str]) -> Vec<Value> {
    ids.iter().map(|id| json!({"value": id})).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Add,
    Remove,
}

/// Why a PATCH did not succeed.
enum PatchFailure {
    /// The server answered with an error, or nothing could be sent.
    Refused(ActionError),
    /// No answer came back: the change may have been applied.
    MaybeApplied { error: ActionError, wait_ms: u64 },
}

/// What is left of a chunk's allowance for reading membership again and resending.
#[derive(Clone, Copy, Debug)]
struct Rounds {
    /// Resends after lost answers: the provider's `max_retries`, as for any retry.
    resends_left: u32,
    /// A 409 on add is followed by one re-read, never more.
    conflict_checked: bool,
    /// Why the chunk is sent again, once it is (for the host's request log).
    resent_because: Option<&'static str>,
}

/// Why membership is read again in the middle of a change.
enum Doubt {
    /// The add answered 409: some members were there already.
    Conflict(ActionError),
    /// The answer was lost, so the change may have been applied.
    AnswerLost,
}

impl<H: Host> ScimClient<'_, H> {
    /// Adds `users` to `group` in PATCHes of at most 100 members. Per user: `added`,
    /// `already-member` (found so after a conflict), or the error.
    pub fn add_members(&mut self, group: &Group, users: &[&User]) -> Vec<Result<UserOutcome, ActionError>> {
        self.change_in_chunks(Change::Add, group, users)
    }

    /// Removes `users` from `group`, all in one PATCH per 100 members.
    pub fn remove_members(&mut self, group: &Group, users: &[&User]) -> Vec<Result<UserOutcome, ActionError>> {
        self.change_in_chunks(Change::Remove, group, users)
    }

    fn change_in_chunks(
        &mut self,
        change: Change,
        group: &Group,
        users: &[&User],
    ) -> Vec<Result<UserOutcome, ActionError>> {
        let rounds = Rounds { resends_left: self.provider.max_retries, conflict_checked: false, resent_because: None };
        let chunks: Vec<&[&User]> = users.chunks(MEMBERS_PER_PATCH).collect();
        let mut outcomes = Vec::with_capacity(users.len());
        for (index, chunk) in chunks.iter().enumerate() {
            if index == 1 {
                // The first chunk settled the form the server takes: the others go out together.
                let form = self.alternate_form(change);
                let rest = chunks[1..].iter().map(|chunk| self.patch_request(change, group, chunk, form)).collect();
                self.prefetch(rest);
            }
            outcomes.extend(self.change_chunk(change, group, chunk, rounds));
        }
        outcomes
    }

    fn change_chunk(
        &mut self,
        change: Change,
        group: &Group,
        users: &[&User],
        rounds: Rounds,
    ) -> Vec<Result<UserOutcome, ActionError>> {
        let done = match change {
            Change::Add => UserOutcome::Added,
            Change::Remove => UserOutcome::Removed,
        };
        let error = match self.patch_either_form(change, group, users, rounds.resent_because) {
            Ok(()) => return vec![Ok(done); users.len()],
            Err(PatchFailure::MaybeApplied { error, wait_ms }) => {
                if rounds.resends_left == 0 || !self.wait_before_resending(wait_ms, &error.message) {
                    return vec![Err(self.remember_if_fatal(error)); users.len()];
                }
                let rounds = Rounds {
                    resends_left: rounds.resends_left - 1,
                    resent_because: Some("the answer to the change was lost; membership read again"),
                    ..rounds
                };
                return self.change_after_doubt(change, group, users, Doubt::AnswerLost, rounds);
            }
            Err(PatchFailure::Refused(error)) => error,
        };
        if change == Change::Add && error.status == Some(409) && !rounds.conflict_checked {
            let rounds = Rounds {
                conflict_checked: true,
                resent_because: Some("the add met a conflict (HTTP 409); membership read again"),
                ..rounds
            };
            return self.change_after_doubt(change, group, users, Doubt::Conflict(error), rounds);
        }
        if users.len() > 1 && !is_fatal(error.kind) && error.kind != ErrorKind::GroupNotFound {
            // Refused as a whole: one PATCH per user, so one bad member does not fail the others.
            self.log(LogLevel::Warn, &format!("{}; retrying one member at a time", error.message));
            return users.iter().flat_map(|user| self.change_chunk(change, group, &[*user], rounds)).collect();
        }
        vec![Err(error); users.len()]
    }

    /// PATCH with the form that worked so far; when the server does not take it (400, 405, 501),
    /// once with the other form, which is kept for the rest of the action when it works.
    fn patch_either_form(
        &mut self,
        change: Change,
        group: &Group,
        users: &[&User],
        resent_because: Option<&str>,
    ) -> Result<(), PatchFailure> {
        let alternate = self.alternate_form(change);
        let mut first = self.patch_request(change, group, users, alternate);
        first.reason = resent_because.map(str::to_string);
        match self.patch(group, first) {
            Err(PatchFailure::Refused(error)) if error.status.is_some_and(says_unsupported) => {
                self.log(LogLevel::Info, &format!("{}; trying the other PATCH form", error.message));
                let status = error.status.unwrap_or_default();
                let other = self.patch_request(change, group, users, !alternate);
                let reason = format!("the server refused the previous PATCH form (HTTP {status})");
                self.patch(group, other.because(reason))?;
                match change {
                    Change::Add => self.learned.add_without_path = !alternate,
                    Change::Remove => self.learned.remove_with_value_list = !alternate,
                }
                Ok(())
            }
            other => other,
        }
    }

    fn alternate_form(&self, change: Change) -> bool {
        match change {
            Change::Add => self.learned.add_without_path,
            Change::Remove => self.learned.remove_with_value_list,
        }
    }

    /// The PATCH that makes `change` for `users`, in one form or the other.
    fn patch_request(&self, change: Change, group: &Group, users: &[&User], alternate: bool) -> Outgoing {
        let ids: Vec<&str> = users.iter().map(|user| user.id.as_str()).collect();
        let body = match (change, alternate) {
            (Change::Add, false) => add_with_path(&ids),
            (Change::Add, true) => add_without_path(&ids),
            (Change::Remove, false) => remove_by_filter(&ids),
            (Change::Remove, true) => remove_by_value_list(&ids),
        };
        let (verb, preposition) = match change {
            Change::Add => ("adding", "to"),
            Change::Remove => ("removing", "from"),
        };
        let who = match ids.as_slice() {
            [one] => format!("user {one}"),
            many => format!("{} users", many.len()),
        };
        let doing = format!("{verb} {who} {preposition} group {}", group.id);
        let path = format!("/Groups/{}", path_segment(&group.id));
        // A 409 on a remove is a lock worth waiting for; on an add it means "already there".
        let lock_retry = change == Change::Remove;
        Outgoing::change(Method::Patch, &path, &body, lock_retry, &doing)
    }

    fn patch(&mut self, group: &Group, outgoing: Outgoing) -> Result<(), PatchFailure> {
        let doing = outgoing.doing.clone();
        let response = match self.send_change(outgoing) {
            Ok(Sent::Answer(response)) => response,
            Ok(Sent::MaybeApplied { error, wait_ms }) => return Err(PatchFailure::MaybeApplied { error, wait_ms }),
            Err(error) => return Err(PatchFailure::Refused(error)),
        };
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        let mut error = self.status_error(&response, &doing);
        if response.status == 404 {
            error.kind = ErrorKind::GroupNotFound;
            error.message = format!("{}: group {} no longer exists (HTTP 404 while {doing})", self.idp(), group.id);
        }
        Err(PatchFailure::Refused(error))
    }

    /// Reads membership again and changes only the members still to change. A member found
    /// where the change puts it counts as changed after a lost answer (our change got there)
    /// and as `already-member` after a conflict.
    fn change_after_doubt(
        &mut self,
        change: Change,
        group: &Group,
        users: &[&User],
        doubt: Doubt,
        rounds: Rounds,
    ) -> Vec<Result<UserOutcome, ActionError>> {
        if let Doubt::Conflict(conflict) = &doubt {
            self.log(LogLevel::Info, &format!("{}; reading membership again", conflict.message));
        }
        self.explain_next(rounds.resent_because.unwrap_or("membership read again"));
        let memberships = self.reread_memberships(group, users);
        let mut results: Vec<Option<Result<UserOutcome, ActionError>>> = vec![None; users.len()];
        let mut pending = Vec::new();
        for (slot, membership) in memberships.into_iter().enumerate() {
            results[slot] = match (change, membership, &doubt) {
                (Change::Add, Ok(Membership::Member), Doubt::Conflict(_)) => Some(Ok(UserOutcome::AlreadyMember)),
                (Change::Add, Ok(Membership::Member), Doubt::AnswerLost) => Some(Ok(UserOutcome::Added)),
                (Change::Remove, Ok(Membership::NotMember), _) => Some(Ok(UserOutcome::Removed)),
                (_, Ok(Membership::Unknown), Doubt::Conflict(conflict)) => Some(Err(conflict.clone())),
                // Still to change, or unknowable, which leaves resending as the only way on.
                (_, Ok(_), _) => {
                    pending.push(slot);
                    None
                }
                (_, Err(error), _) => Some(Err(error)),
            };
        }
        if !pending.is_empty() {
            let still: Vec<&User> = pending.iter().map(|slot| users[*slot]).collect();
            let outcomes = self.change_chunk(change, group, &still, rounds);
            for (slot, outcome) in pending.into_iter().zip(outcomes) {
                results[slot] = Some(outcome);
            }
        }
        results.into_iter().map(|result| result.expect("every member was decided")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::scripted::{provider, Scripted};
    use soar_types::host::Request;
    use soar_types::model::Provider;

    fn add_alice(answers: Vec<(u16, Value)>) -> (Vec<Result<UserOutcome, ActionError>>, Vec<String>) {
        let (outcomes, seen) = add_alice_seen(answers);
        (outcomes, seen.iter().map(|request| format!("{:?} {}", request.method, request.url)).collect())
    }

    fn add_alice_seen(answers: Vec<(u16, Value)>) -> (Vec<Result<UserOutcome, ActionError>>, Vec<Request>) {
        let provider =
            Provider { restricted_group: None, restricted_group_id: Some("g1".into()), max_retries: 2, ..provider() };
        let group = Group { id: "g1".into(), display_name: None };
        let alice = User {
            id: "u1".into(),
            user_name: Some("alice@corp.example".into()),
            external_id: None,
            groups: Some(Vec::new()),
        };
        let mut server = Scripted::new(answers);
        let outcomes = ScimClient::new(&mut server, &provider, 0).add_members(&group, &[&alice]);
        (outcomes, server.seen)
    }

    #[test]
    fn a_gateway_502_is_checked_before_the_add_is_resent() {
        let alice_in_group = json!({"id": "u1", "userName": "alice@corp.example", "groups": [{"value": "g1"}]});
        let (outcomes, seen) = add_alice(vec![(502, Value::Null), (200, alice_in_group)]);
        assert_eq!(outcomes, [Ok(UserOutcome::Added)]);
        assert_eq!(seen, ["Patch https://scim.example/v2/Groups/g1", "Get https://scim.example/v2/Users/u1"]);
    }

    #[test]
    fn a_503_is_a_refusal_and_retried_at_once() {
        let (outcomes, seen) = add_alice(vec![(503, Value::Null), (204, Value::Null)]);
        assert_eq!(outcomes, [Ok(UserOutcome::Added)]);
        assert_eq!(seen, ["Patch https://scim.example/v2/Groups/g1", "Patch https://scim.example/v2/Groups/g1"]);
    }

    #[test]
    fn the_other_form_follows_a_refused_form_and_nothing_else() {
        let bodies = |seen: &[Request]| -> Vec<Value> {
            seen.iter().map(|r| serde_json::from_slice(r.body.as_deref().unwrap()).unwrap()).collect()
        };
        for status in [400, 405, 501] {
            let (outcomes, seen) = add_alice_seen(vec![(status, Value::Null), (204, Value::Null)]);
            assert_eq!(outcomes, [Ok(UserOutcome::Added)], "{status}");
            assert_eq!(bodies(&seen), [add_with_path(&["u1"]), add_without_path(&["u1"])], "{status}");
        }
        for status in [401, 403, 404, 409, 413, 500] {
            // A 409 is followed by a read of the user, still outside, and one more try.
            let alice_outside = json!({"id": "u1", "userName": "alice@corp.example", "groups": []});
            let answers = vec![(status, Value::Null), (200, alice_outside), (status, Value::Null)];
            let (outcomes, seen) = add_alice_seen(answers);
            assert!(outcomes[0].is_err(), "{status}: {outcomes:?}");
            let patches: Vec<Value> =
                bodies(&seen.into_iter().filter(|r| r.method == Method::Patch).collect::<Vec<_>>());
            assert!(
                patches.iter().all(|body| *body == add_with_path(&["u1"])),
                "{status} keeps its meaning: {patches:?}"
            );
        }
    }

    #[test]
    fn bodies_have_the_documented_shapes() {
        assert_eq!(
            add_with_path(&["2541841"]),
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": "2541841"}]}]})
        );
        assert_eq!(
            add_without_path(&["1", "2"]),
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "value": {"members": [{"value": "1"}, {"value": "2"}]}}]})
        );
        assert_eq!(
            remove_by_filter(&["1", "a\"b"]),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "remove", "path": "members[value eq \"1\"]"},
                {"op": "remove", "path": "members[value eq \"a\\\"b\"]"}
            ]})
        );
        assert_eq!(
            remove_by_value_list(&["1"]),
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": "1"}]}]})
        );
    }

    #[test]
    fn no_remove_ever_leaves_members_unqualified() {
        for body in [remove_by_filter(&["1", "2"]), remove_by_value_list(&["1", "2"])] {
            for op in body["Operations"].as_array().unwrap() {
                let qualified = op["path"].as_str().is_some_and(|p| p.starts_with("members["))
                    || op["value"].as_array().is_some_and(|v| !v.is_empty());
                assert!(qualified, "{op}");
            }
        }
    }
}
