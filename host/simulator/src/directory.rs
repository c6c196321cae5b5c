//! Users and groups in memory, in creation order, with the indexes a tenant of 100,000 users and
//! groups of 10,000 members needs to answer in milliseconds: by id, by userName or displayName
//! (case-insensitively, as servers compare them), by externalId, and which groups hold a member.

use crate::patch::Duplicates;
use indexmap::IndexMap;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    pub fn schema(self) -> &'static str {
        match self {
            Kind::User => USER_SCHEMA,
            Kind::Group => GROUP_SCHEMA,
        }
    }

    /// The attribute that names a resource of this kind.
    fn name_attribute(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
}

/// One kind of resource: by id in creation order, and by name and external id.
#[derive(Debug, Default)]
struct Store {
    by_id: IndexMap<String, Value>,
    /// Lower-cased userName or displayName → ids.
    by_name: HashMap<String, Vec<String>>,
    by_external: HashMap<String, Vec<String>>,
}

fn name_key(name: &str) -> String {
    name.to_lowercase()
}

fn add_key(index: &mut HashMap<String, Vec<String>>, key: Option<String>, id: &str) {
    if let Some(key) = key {
        index.entry(key).or_default().push(id.to_string());
    }
}

fn remove_key(index: &mut HashMap<String, Vec<String>>, key: Option<String>, id: &str) {
    if let Some(key) = key {
        if let Some(ids) = index.get_mut(&key) {
            ids.retain(|known| known != id);
            if ids.is_empty() {
                index.remove(&key);
            }
        }
    }
}

/// A resource's name and external id, as its kind's indexes key them.
type Keys = (Option<String>, Option<String>);

impl Store {
    fn keys(kind: Kind, resource: &Value) -> Keys {
        let name = resource.get(kind.name_attribute()).and_then(Value::as_str).map(name_key);
        let external = resource.get("externalId").and_then(Value::as_str).map(str::to_string);
        (name, external)
    }

    fn index(&mut self, id: &str, (name, external): Keys) {
        add_key(&mut self.by_name, name, id);
        add_key(&mut self.by_external, external, id);
    }

    fn unindex(&mut self, id: &str, (name, external): Keys) {
        remove_key(&mut self.by_name, name, id);
        remove_key(&mut self.by_external, external, id);
    }
}

/// The ids in a group's `members`, in order (duplicates kept).
pub fn member_values(group: &Value) -> impl Iterator<Item = &str> {
    group.get("members").and_then(Value::as_array).into_iter().flatten().filter_map(|m| m.get("value")?.as_str())
}

/// A change of a group's members by their ids, as the common PATCH forms make it.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberChange<'a> {
    /// These member values (objects with a `value`), in order.
    Add(&'a [Value]),
    /// Every value listing one of these ids.
    Remove(HashSet<String>),
}

/// Users and groups, and which groups hold each member.
#[derive(Debug, Default)]
pub struct Directory {
    users: Store,
    groups: Store,
    /// Group id → the member ids it lists, each once.
    members_of: HashMap<String, HashSet<String>>,
    /// Member id → the ids of the groups that list it (in the order they started to).
    groups_of: HashMap<String, Vec<String>>,
    next_id: u64,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Directory {
    fn store(&self, kind: Kind) -> &Store {
        match kind {
            Kind::User => &self.users,
            Kind::Group => &self.groups,
        }
    }

    fn store_mut(&mut self, kind: Kind) -> &mut Store {
        match kind {
            Kind::User => &mut self.users,
            Kind::Group => &mut self.groups,
        }
    }

    pub fn new_id(&mut self) -> String {
        loop {
            self.next_id += 1;
            let id = (7_000_000 + self.next_id).to_string();
            if self.find(Kind::User, &id).is_none() && self.find(Kind::Group, &id).is_none() {
                return id;
            }
        }
    }

    pub fn len(&self, kind: Kind) -> usize {
        self.store(kind).by_id.len()
    }

    pub fn is_empty(&self, kind: Kind) -> bool {
        self.len(kind) == 0
    }

    /// The resource at `position` in creation order.
    pub fn at(&self, kind: Kind, position: usize) -> Option<&Value> {
        self.store(kind).by_id.get_index(position).map(|(_, resource)| resource)
    }

    /// Every resource of a kind, in creation order.
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Value> {
        self.store(kind).by_id.values()
    }

    pub fn find(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.store(kind).by_id.get(id)
    }

    /// Where a resource stands in creation order.
    pub fn position(&self, kind: Kind, id: &str) -> Option<usize> {
        self.store(kind).by_id.get_index_of(id)
    }

    /// The ids of the resources whose userName (or displayName) is `name`, case-insensitively.
    pub fn named(&self, kind: Kind, name: &str) -> &[String] {
        self.store(kind).by_name.get(&name_key(name)).map(Vec::as_slice).unwrap_or_default()
    }

    /// The ids of the resources whose externalId is `external`.
    pub fn with_external(&self, kind: Kind, external: &str) -> &[String] {
        self.store(kind).by_external.get(external).map(Vec::as_slice).unwrap_or_default()
    }

    /// The ids of the groups that list `member`.
    pub fn groups_of(&self, member: &str) -> &[String] {
        self.groups_of.get(member).map(Vec::as_slice).unwrap_or_default()
    }

    /// Stores a resource under `id` in place of any it had, keeping every index right.
    pub fn replace(&mut self, kind: Kind, id: &str, resource: Value) {
        let new_members: HashSet<String> = member_values(&resource).map(str::to_string).collect();
        let store = self.store_mut(kind);
        let new_keys = Store::keys(kind, &resource);
        if let Some(old) = store.by_id.insert(id.to_string(), resource) {
            store.unindex(id, Store::keys(kind, &old));
        }
        self.store_mut(kind).index(id, new_keys);
        if kind == Kind::Group {
            let old_members = self.members_of.remove(id).unwrap_or_default();
            for gone in old_members.difference(&new_members) {
                remove_key(&mut self.groups_of, Some(gone.clone()), id);
            }
            for added in new_members.difference(&old_members) {
                self.groups_of.entry(added.clone()).or_default().push(id.to_string());
            }
            self.members_of.insert(id.to_string(), new_members);
        }
    }

    /// Changes a group's members in place, without copying or re-reading the others (a PATCH of
    /// 100 members on a group of 10,000 costs 100 index updates and at most one pass per
    /// remove run). The caller has checked that added ids exist. False when there is no group.
    pub fn change_members(&mut self, group_id: &str, changes: &[MemberChange], duplicates: Duplicates) -> bool {
        let Some(group) = self.groups.by_id.get_mut(group_id) else {
            return false;
        };
        let listed = self.members_of.entry(group_id.to_string()).or_default();
        let object = group.as_object_mut().expect("resources are objects");
        let members = object.entry("members").or_insert_with(|| Value::Array(Vec::new()));
        if !members.is_array() {
            *members = Value::Array(Vec::new());
        }
        let items = members.as_array_mut().expect("made an array");
        for change in changes {
            match change {
                MemberChange::Add(values) => {
                    for item in values.iter() {
                        let Some(id) = item.get("value").and_then(Value::as_str) else { continue };
                        let new = listed.insert(id.to_string());
                        if new || duplicates == Duplicates::Store {
                            items.push(item.clone());
                        }
                        if new {
                            self.groups_of.entry(id.to_string()).or_default().push(group_id.to_string());
                        }
                    }
                }
                MemberChange::Remove(ids) => {
                    let gone: Vec<&String> = ids.iter().filter(|id| listed.contains(*id)).collect();
                    if gone.is_empty() {
                        continue;
                    }
                    items.retain(|item| !item.get("value").and_then(Value::as_str).is_some_and(|v| ids.contains(v)));
                    for id in gone {
                        listed.remove(id);
                        remove_key(&mut self.groups_of, Some(id.clone()), group_id);
                    }
                }
            }
        }
        touch(group);
        true
    }

    /// Inserts a resource, assigning an id (unless it has one) and meta; returns the id.
    pub fn insert(&mut self, kind: Kind, mut resource: Value) -> String {
        let id = match resource.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => self.new_id(),
        };
        let now = now_rfc3339();
        let object = resource.as_object_mut().expect("resources are objects");
        object.insert("id".into(), json!(id));
        object.insert("schemas".into(), json!([kind.schema()]));
        object.insert(
            "meta".into(),
            json!({"resourceType": match kind { Kind::User => "User", Kind::Group => "Group" },
                   "created": now, "lastModified": now, "version": "W/\"1\""}),
        );
        self.replace(kind, &id, resource);
        id
    }

    /// Removes a resource and every group's reference to it; false when there was none.
    pub fn remove(&mut self, kind: Kind, id: &str) -> bool {
        let Some(old) = self.store_mut(kind).by_id.shift_remove(id) else {
            return false;
        };
        self.store_mut(kind).unindex(id, Store::keys(kind, &old));
        for member in self.members_of.remove(id).unwrap_or_default() {
            remove_key(&mut self.groups_of, Some(member), id);
        }
        for group_id in self.groups_of.remove(id).unwrap_or_default() {
            if let Some(group) = self.groups.by_id.get_mut(&group_id) {
                if let Some(members) = group.get_mut("members").and_then(Value::as_array_mut) {
                    members.retain(|m| m["value"] != id);
                }
            }
            if let Some(listed) = self.members_of.get_mut(&group_id) {
                listed.remove(id);
            }
        }
        true
    }
}

/// Marks a stored resource changed: a new lastModified and the next version.
pub fn touch(resource: &mut Value) {
    let version = resource["meta"]["version"]
        .as_str()
        .and_then(|v| v.trim_start_matches("W/\"").trim_end_matches('"').parse::<u64>().ok())
        .unwrap_or(1);
    resource["meta"]["lastModified"] = json!(now_rfc3339());
    resource["meta"]["version"] = json!(format!("W/\"{}\"", version + 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_every_change() {
        let mut directory = Directory::default();
        let alice = directory.insert(Kind::User, json!({"userName": "Alice@Corp.Example", "externalId": "E1"}));
        assert_eq!(directory.named(Kind::User, "alice@corp.example"), std::slice::from_ref(&alice));
        assert_eq!(directory.with_external(Kind::User, "E1"), std::slice::from_ref(&alice));
        let group = directory.insert(Kind::Group, json!({"displayName": "G", "members": [{"value": alice}]}));
        assert_eq!(directory.groups_of(&alice), std::slice::from_ref(&group));
        let mut renamed = directory.find(Kind::Group, &group).unwrap().clone();
        renamed["displayName"] = json!("H");
        renamed["members"] = json!([]);
        directory.replace(Kind::Group, &group, renamed);
        assert!(directory.named(Kind::Group, "g").is_empty());
        assert_eq!(directory.named(Kind::Group, "h"), std::slice::from_ref(&group));
        assert!(directory.groups_of(&alice).is_empty());
        let bob = directory.insert(Kind::User, json!({"userName": "bob@corp.example"}));
        let members = [json!({"value": alice}), json!({"value": bob}), json!({"value": bob})];
        directory.change_members(&group, &[MemberChange::Add(&members)], Duplicates::Skip);
        assert_eq!(member_values(directory.find(Kind::Group, &group).unwrap()).collect::<Vec<_>>(), [&alice, &bob]);
        assert_eq!(directory.groups_of(&bob), std::slice::from_ref(&group));
        let version = &directory.find(Kind::Group, &group).unwrap()["meta"]["version"];
        assert_eq!(version, "W/\"2\"", "a member change is a new version");
        directory.change_members(&group, &[MemberChange::Remove(HashSet::from([bob.clone()]))], Duplicates::Skip);
        assert!(directory.groups_of(&bob).is_empty());
        assert_eq!(directory.groups_of(&alice), std::slice::from_ref(&group));
        assert!(directory.remove(Kind::User, &alice));
        assert!(directory.groups_of(&alice).is_empty());
        assert!(member_values(directory.find(Kind::Group, &group).unwrap()).next().is_none());
        assert!(directory.named(Kind::User, "alice@corp.example").is_empty());
        assert_eq!(directory.len(Kind::User), 1);
    }
}
