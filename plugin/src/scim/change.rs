//! Changing membership: only targeted PATCH operations on the group's `members`, never a PUT
//! (it would lose concurrent changes) and never a `remove` of `members` without a filter or a
//! value (it empties the group).

use crate::encode::{filter_string, path_segment};
use crate::host::{Host, LogLevel, Method};
use crate::model::{ActionError, ErrorKind, UserOutcome};
use crate::scim::client::{is_fatal, ScimClient};
use crate::scim::lookup::Membership;
use crate::scim::response::{Group, User};
use serde_json::{json, Value};

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
        users
            .chunks(MEMBERS_PER_PATCH)
            .flat_map(|chunk| self.change_chunk(change, group, chunk))
            .collect()
    }

    fn change_chunk(
        &mut self,
        change: Change,
        group: &Group,
        users: &[&User],
    ) -> Vec<Result<UserOutcome, ActionError>> {
        let done = match change {
            Change::Add => UserOutcome::Added,
            Change::Remove => UserOutcome::Removed,
        };
        let error = match self.patch_either_form(change, group, users) {
            Ok(()) => return vec![Ok(done); users.len()],
            Err(error) => error,
        };
        if change == Change::Add && error.status == Some(409) {
            return self.add_after_conflict(group, users, error);
        }
        if users.len() > 1 && !is_fatal(error.kind) && error.kind != ErrorKind::GroupNotFound {
            // Refused as a whole: one PATCH per user, so one bad member does not fail the others.
            self.log(LogLevel::Warn, &format!("{}; retrying one member at a time", error.message));
            return users.iter().flat_map(|user| self.change_chunk(change, group, &[*user])).collect();
        }
        vec![Err(error); users.len()]
    }

    /// PATCH with the form that worked so far; on 400, once with the other form, which is kept
    /// for the rest of the action when it works.
    fn patch_either_form(&mut self, change: Change, group: &Group, users: &[&User]) -> Result<(), ActionError> {
        let alternate = self.alternate_form(change);
        let first = self.patch(change, group, users, alternate);
        match first {
            Err(error) if error.status == Some(400) => {
                self.log(LogLevel::Info, &format!("{}; trying the other PATCH form", error.message));
                self.patch(change, group, users, !alternate)?;
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

    fn patch(&mut self, change: Change, group: &Group, users: &[&User], alternate: bool) -> Result<(), ActionError> {
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
        let response = self.send(Method::Patch, &path, Some(&body), change == Change::Remove, &doing)?;
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        let mut error = self.status_error(&response, &doing);
        if response.status == 404 {
            error.kind = ErrorKind::GroupNotFound;
            error.message = format!("{}: group {} no longer exists (HTTP 404 while {doing})", self.idp(), group.id);
        }
        Err(error)
    }

    /// A 409 on add: some members were there already. Read membership again and add only those
    /// still missing.
    fn add_after_conflict(
        &mut self,
        group: &Group,
        users: &[&User],
        conflict: ActionError,
    ) -> Vec<Result<UserOutcome, ActionError>> {
        self.log(LogLevel::Info, &format!("{}; reading membership again", conflict.message));
        let mut results: Vec<Option<Result<UserOutcome, ActionError>>> = vec![None; users.len()];
        let mut missing = Vec::new();
        for (slot, user) in users.iter().enumerate() {
            match self.reread_membership(group, user) {
                Ok(Membership::Member) => results[slot] = Some(Ok(UserOutcome::AlreadyMember)),
                Ok(Membership::NotMember) => missing.push(slot),
                Ok(Membership::Unknown) => results[slot] = Some(Err(conflict.clone())),
                Err(error) => results[slot] = Some(Err(error)),
            }
        }
        if !missing.is_empty() {
            let still: Vec<&User> = missing.iter().map(|slot| users[*slot]).collect();
            let outcome = self.patch_either_form(Change::Add, group, &still);
            for slot in missing {
                results[slot] = Some(match &outcome {
                    Ok(()) => Ok(UserOutcome::Added),
                    Err(error) => Err(error.clone()),
                });
            }
        }
        results.into_iter().map(|result| result.expect("every member was decided")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
