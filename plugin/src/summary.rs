//! The overall status of an action, as the contract defines it.

use soar_types::model::{ActionError, ErrorKind, ProviderOutcome, ProviderResult, Status, UserOutcome, UserResult};

fn status_of(succeeded: usize, total: usize) -> Status {
    match succeeded {
        0 => Status::Failed,
        n if n == total => Status::Success,
        _ => Status::Partial,
    }
}

/// test-connection: a provider succeeds when it is connected.
pub fn connection_status(providers: &[ProviderResult]) -> Status {
    let connected =
        providers.iter().filter(|p| p.outcome == Some(ProviderOutcome::Connected) && p.error.is_none()).count();
    status_of(connected, providers.len())
}

/// A user succeeds when some provider gives it an outcome other than `not-in-provider` and no
/// provider gives it an error. A user that every provider reports `not-in-provider` fails: its
/// entries become `user-not-found` errors. `success` when every user succeeds; `partial` when
/// anything succeeded (one user, or one provider for a user another provider failed); else `failed`.
pub fn membership_status(providers: &mut [ProviderResult], user_count: usize) -> Status {
    if providers.is_empty() || user_count == 0 {
        return Status::Failed;
    }
    let mut succeeded = 0;
    let mut anything_succeeded = false;
    for index in 0..user_count {
        let entries: Vec<(bool, Option<&UserResult>)> =
            providers.iter().map(|p| (p.error.is_some(), p.users.get(index))).collect();
        let failed_somewhere = entries.iter().any(|(provider_failed, user)| {
            *provider_failed || user.is_none_or(|u| u.error.is_some() || u.outcome.is_none())
        });
        let nowhere =
            entries.iter().all(|(_, user)| user.is_some_and(|u| u.outcome == Some(UserOutcome::NotInProvider)));
        let somewhere = entries.iter().any(|(_, user)| {
            user.is_some_and(|u| u.outcome.is_some_and(|o| o != UserOutcome::NotInProvider) && u.error.is_none())
        });
        if nowhere {
            let names = providers.iter().map(|p| p.idp.clone()).collect::<Vec<_>>().join(", ");
            for provider in providers.iter_mut() {
                let user = &mut provider.users[index];
                user.outcome = None;
                user.error = Some(ActionError::new(
                    ErrorKind::UserNotFound,
                    format!(
                        "no user {} in {}; check the spelling, or name the user as id:SCIM_ID or external:EXTERNAL_ID",
                        user.user, names
                    ),
                ));
            }
        } else if somewhere && !failed_somewhere {
            succeeded += 1;
        }
        anything_succeeded |= somewhere;
    }
    match status_of(succeeded, user_count) {
        Status::Failed if anything_succeeded => Status::Partial,
        status => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use soar_types::model::UserRef;

    fn provider(name: &str, outcomes: &[Option<UserOutcome>]) -> ProviderResult {
        ProviderResult {
            idp: name.into(),
            group: None,
            outcome: None,
            error: None,
            users: outcomes
                .iter()
                .enumerate()
                .map(|(i, outcome)| {
                    let mut user = UserResult::pending(&UserRef::Email(format!("u{i}@corp.example")));
                    user.outcome = *outcome;
                    if outcome.is_none() {
                        user.error = Some(ActionError::new(ErrorKind::Server, "boom"));
                    }
                    user
                })
                .collect(),
        }
    }

    #[test]
    fn not_in_one_provider_is_fine_when_another_has_the_user() {
        let mut providers =
            vec![provider("a", &[Some(UserOutcome::Added)]), provider("b", &[Some(UserOutcome::NotInProvider)])];
        assert_eq!(membership_status(&mut providers, 1), Status::Success);
        assert!(providers[1].users[0].error.is_none());
    }

    #[test]
    fn a_user_no_provider_has_fails_as_user_not_found() {
        let mut providers = vec![
            provider("a", &[Some(UserOutcome::NotInProvider), Some(UserOutcome::AlreadyMember)]),
            provider("b", &[Some(UserOutcome::NotInProvider), Some(UserOutcome::NotInProvider)]),
        ];
        assert_eq!(membership_status(&mut providers, 2), Status::Partial);
        for p in &providers {
            assert_eq!(p.users[0].error.as_ref().unwrap().kind, ErrorKind::UserNotFound);
            assert_eq!(p.users[0].outcome, None);
        }
    }

    #[test]
    fn an_error_anywhere_fails_the_user() {
        let mut providers = vec![provider("a", &[None]), provider("b", &[None])];
        assert_eq!(membership_status(&mut providers, 1), Status::Failed);
        let mut providers = vec![provider("a", &[Some(UserOutcome::Added), None]), provider("b", &[None, None])];
        assert_eq!(membership_status(&mut providers, 2), Status::Partial);
    }

    #[test]
    fn one_provider_down_and_another_up_is_partial() {
        let mut down = provider("c", &[]);
        down.error = Some(ActionError::new(ErrorKind::Transport, "down"));
        let mut providers = vec![provider("a", &[Some(UserOutcome::Added)]), down];
        assert_eq!(membership_status(&mut providers, 1), Status::Partial);
    }
}
