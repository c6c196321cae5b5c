//! The four actions, run provider by provider: find the group, find the users, read
//! membership, change only what must change.

use crate::scim::client::ScimClient;
use crate::scim::lookup::Membership;
use crate::scim::response::{Group, User};
use crate::summary::{connection_status, membership_status};
use soar_types::host::Host;
use soar_types::model::{
    ActionError, ActionResult, ErrorKind, GroupRef, MembershipRequest, Provider, ProviderOutcome, ProviderResult,
    Settings, UserOutcome, UserRef, UserResult,
};
use soar_types::user_ref::check_user_ref;
use soar_types::Action;

pub fn test_connection(host: &mut impl Host, settings: &Settings) -> ActionResult {
    let providers: Vec<ProviderResult> = settings
        .providers
        .iter()
        .map(|provider| {
            let mut scim = ScimClient::new(host, provider, settings.retry_after_cap_ms);
            let mut result = provider_result(provider, Vec::new());
            match scim.find_group() {
                Ok(group) => {
                    result.group = Some(group_ref(&group));
                    result.outcome = Some(ProviderOutcome::Connected);
                }
                Err(error) => result.error = Some(error),
            }
            result
        })
        .collect();
    let status = connection_status(&providers);
    ActionResult { status, providers }
}

/// Runs `action`; test-connection reads only the request's settings.
pub fn run(host: &mut impl Host, action: Action, request: &MembershipRequest) -> ActionResult {
    if action == Action::TestConnection {
        return test_connection(host, &request.settings);
    }
    let mut providers: Vec<ProviderResult> = request
        .settings
        .providers
        .iter()
        .map(|provider| {
            let mut scim = ScimClient::new(host, provider, request.settings.retry_after_cap_ms);
            on_provider(&mut scim, request, action)
        })
        .collect();
    let status = membership_status(&mut providers, request.users.len());
    ActionResult { status, providers }
}

fn provider_result(provider: &Provider, users: Vec<UserResult>) -> ProviderResult {
    ProviderResult {
        idp: provider.name.clone(),
        group: Some(provider_group(provider)),
        outcome: None,
        error: None,
        users,
    }
}

/// The group as the config names it, before it is found.
pub fn provider_group(provider: &Provider) -> GroupRef {
    GroupRef { display_name: provider.restricted_group.clone(), id: provider.restricted_group_id.clone() }
}

pub fn group_ref(group: &Group) -> GroupRef {
    GroupRef { display_name: group.display_name.clone(), id: Some(group.id.clone()) }
}

fn protected_error(user: &UserRef, matched: &UserRef) -> ActionError {
    ActionError::new(
        ErrorKind::ProtectedUser,
        format!("{user} is a protected user ({matched} in protected_users) and is never added to the restricted group"),
    )
}

/// The protected entry that names `user`, as written or as the server knows it.
fn protecting<'p>(protected: &'p [UserRef], user: &User) -> Option<&'p UserRef> {
    let known = [
        user.user_name.clone().map(UserRef::Email),
        Some(UserRef::Id(user.id.clone())),
        user.external_id.clone().map(UserRef::External),
    ];
    protected.iter().find(|entry| known.iter().flatten().any(|k| entry.names(k)))
}

fn on_provider<H: Host>(scim: &mut ScimClient<'_, H>, request: &MembershipRequest, action: Action) -> ProviderResult {
    let (users, dry_run) = (&request.users, request.dry_run);
    let guarded = action == Action::AddToGroup;
    let mut results: Vec<UserResult> = users.iter().map(UserResult::pending).collect();
    let mut result = provider_result(scim.provider, Vec::new());
    if users.is_empty() {
        result.error = Some(ActionError::new(
            ErrorKind::InvalidInput,
            "no users given: name at least one user by email, id:SCIM_ID or external:EXTERNAL_ID",
        ));
        return result;
    }
    // Users the plugin may not act on are refused here too, whatever the host checked; users
    // protected as written are not even looked up.
    let mut valid: Vec<usize> = Vec::new();
    for (index, user) in users.iter().enumerate() {
        let protected_entry = request.protected.iter().find(|entry| entry.names(user)).filter(|_| guarded);
        match (check_user_ref(user), protected_entry) {
            (Err(why), _) => results[index].error = Some(ActionError::new(ErrorKind::InvalidInput, why.0)),
            (Ok(()), Some(entry)) => results[index].error = Some(protected_error(user, entry)),
            (Ok(()), None) => valid.push(index),
        }
    }
    let valid_refs: Vec<UserRef> = valid.iter().map(|&index| users[index].clone()).collect();
    // The group and the users are looked up at the same time.
    scim.prefetch_lookups(&valid_refs);
    let group = match scim.find_group() {
        Ok(group) => group,
        Err(error) => {
            result.error = Some(error);
            result.users = results;
            return result;
        }
    };
    result.group = Some(group_ref(&group));
    let found = scim.find_users(&valid_refs);

    // Each distinct SCIM user is decided once, however many ways the caller named it.
    let mut targets: Vec<(User, Vec<usize>)> = Vec::new();
    for (&index, lookup) in valid.iter().zip(found) {
        match lookup {
            Ok(Some(user)) if guarded && protecting(&request.protected, &user).is_some() => {
                results[index].user_id = Some(user.id.clone());
                let entry = protecting(&request.protected, &user).expect("checked");
                results[index].error = Some(protected_error(&users[index], entry));
            }
            Ok(Some(user)) => {
                results[index].user_id = Some(user.id.clone());
                match targets.iter_mut().find(|(known, _)| known.id == user.id) {
                    Some((_, indices)) => indices.push(index),
                    None => targets.push((user, vec![index])),
                }
            }
            Ok(None) => results[index].outcome = Some(UserOutcome::NotInProvider),
            Err(error) => results[index].error = Some(error),
        }
    }

    let mut to_change: Vec<(&User, &[usize])> = Vec::new();
    let target_users: Vec<&User> = targets.iter().map(|(user, _)| user).collect();
    let memberships = scim.memberships(&group, &target_users);
    for ((user, indices), membership) in targets.iter().zip(memberships) {
        let membership = match membership {
            Ok(membership) => membership,
            Err(error) => {
                for &index in indices {
                    results[index].error = Some(error.clone());
                }
                continue;
            }
        };
        let verified = membership != Membership::Unknown;
        let settled = match (action, membership) {
            (Action::CheckMembership, Membership::Member) => Some(UserOutcome::Member),
            (Action::CheckMembership, Membership::NotMember) => Some(UserOutcome::NotMember),
            (Action::AddToGroup, Membership::Member) => Some(UserOutcome::AlreadyMember),
            (Action::RemoveFromGroup, Membership::NotMember) => Some(UserOutcome::NotMember),
            (Action::AddToGroup, _) if dry_run => Some(UserOutcome::WouldAdd),
            (Action::RemoveFromGroup, _) if dry_run => Some(UserOutcome::WouldRemove),
            _ => None,
        };
        for &index in indices {
            results[index].membership_verified = verified;
        }
        match settled {
            Some(outcome) => {
                for &index in indices {
                    results[index].outcome = Some(outcome);
                }
            }
            None if action == Action::CheckMembership => {
                let error = ActionError::new(
                    ErrorKind::Server,
                    format!(
                        "{}: membership cannot be checked: group {} lists no members, nothing shows that this server \
                         lists members at all (no group it lists has any, and its schema does not say it returns \
                         them), and it refuses or ignores membership filters",
                        scim.idp(),
                        group.id
                    ),
                );
                for &index in indices {
                    results[index].error = Some(error.clone());
                }
            }
            None => to_change.push((user, indices.as_slice())),
        }
    }

    if !to_change.is_empty() {
        let users_to_change: Vec<&User> = to_change.iter().map(|(user, _)| *user).collect();
        let outcomes = match action {
            Action::AddToGroup => scim.add_members(&group, &users_to_change),
            _ => scim.remove_members(&group, &users_to_change),
        };
        for ((_, indices), outcome) in to_change.iter().zip(outcomes) {
            for &index in indices.iter() {
                match &outcome {
                    Ok(done) => {
                        results[index].outcome = Some(*done);
                        if *done == UserOutcome::AlreadyMember {
                            results[index].membership_verified = true;
                        }
                    }
                    Err(error) => results[index].error = Some(error.clone()),
                }
            }
        }
    }
    result.users = results;
    result
}
