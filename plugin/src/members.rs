//! `list-members` (WIT 1.2): each provider's restricted group and who is in it, for the host's
//! `reconcile`; userNames looked up for members the caller does not know, all at once.

use crate::actions::{group_ref, provider_group};
use crate::scim::client::ScimClient;
use soar_types::host::Host;
use soar_types::model::{Member, MembersRequest, ProviderMembers, UserRef};

pub fn list_members(host: &mut impl Host, request: &MembersRequest) -> Vec<ProviderMembers> {
    request
        .settings
        .providers
        .iter()
        .map(|provider| {
            let mut scim = ScimClient::new(host, provider, request.settings.retry_after_cap_ms);
            let mut result = ProviderMembers {
                idp: provider.name.clone(),
                group: Some(provider_group(provider)),
                error: None,
                members: Vec::new(),
                complete: false,
            };
            let group = match scim.find_group() {
                Ok(group) => group,
                Err(error) => {
                    result.error = Some(error);
                    return result;
                }
            };
            result.group = Some(group_ref(&group));
            let (ids, complete) = match scim.members_of(&group) {
                Ok(found) => found,
                Err(error) => {
                    result.error = Some(error);
                    return result;
                }
            };
            let unknown: Vec<UserRef> =
                ids.iter().filter(|id| !request.named.contains(id)).map(|id| UserRef::Id(id.clone())).collect();
            let found = scim.find_users(&unknown);
            let name_of = |id: &str| {
                unknown.iter().zip(&found).find_map(|(user, lookup)| match (user, lookup) {
                    (UserRef::Id(known), Ok(Some(user))) if known == id => user.user_name.clone(),
                    _ => None,
                })
            };
            result.members = ids.iter().map(|id| Member { id: id.clone(), user_name: name_of(id) }).collect();
            result.complete = complete;
            result
        })
        .collect()
}
