//! SCIM PATCH (RFC 7644 §3.5.2) applied to a JSON resource: add, replace and remove, with
//! plain, sub-attribute and value-filter paths, plus the value-list remove that Entra ID sends.

use crate::directory::MemberChange;
use crate::filter::{self, AttrPath, PatchPath};
use serde_json::{Map, Value};
use std::collections::HashSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchError {
    pub scim_type: &'static str,
    pub detail: String,
}

fn invalid(scim_type: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError { scim_type, detail: detail.into() }
}

/// How the server treats a repeated add of an existing value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duplicates {
    Skip,
    Store,
}

/// Attributes a client may not change.
const READ_ONLY: &[&str] = &["id", "meta", "groups", "schemas"];

pub fn apply(resource: &mut Value, body: &Value, duplicates: Duplicates) -> Result<(), PatchError> {
    if !is_patch_op(body) {
        return Err(invalid("invalidSyntax", "schemas must list urn:ietf:params:scim:api:messages:2.0:PatchOp"));
    }
    let operations = body
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("invalidSyntax", "Operations must be a list"))?;
    for operation in operations {
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("invalidSyntax", "each operation needs an op"))?
            .to_ascii_lowercase();
        let path = match operation.get("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(filter::parse_patch_path(text).map_err(|e| invalid("invalidPath", e))?),
            Some(_) => return Err(invalid("invalidPath", "path must be a string")),
        };
        if let Some(path) = &path {
            if READ_ONLY.iter().any(|a| a.eq_ignore_ascii_case(&path.attr.name)) && path.attr.schema.is_none() {
                return Err(invalid("mutability", format!("{} is read-only", path.attr.name)));
            }
        }
        let value = operation.get("value");
        match op.as_str() {
            "add" | "replace" => {
                let value = value.ok_or_else(|| invalid("invalidValue", format!("{op} needs a value")))?;
                let replace = op == "replace";
                match &path {
                    None => {
                        let object = value
                            .as_object()
                            .ok_or_else(|| invalid("invalidValue", "a path-less operation needs an object value"))?;
                        for (key, item) in object {
                            if READ_ONLY.iter().any(|a| a.eq_ignore_ascii_case(key)) {
                                continue;
                            }
                            let attr = filter::parse_attr_path(key).map_err(|e| invalid("invalidPath", e))?;
                            set(resource, &attr, item, replace, duplicates);
                        }
                    }
                    Some(path) => apply_with_path(resource, path, value, replace, duplicates)?,
                }
            }
            "remove" => {
                let path = path.ok_or_else(|| invalid("noTarget", "remove needs a path"))?;
                remove(resource, &path, value)?;
            }
            other => return Err(invalid("invalidSyntax", format!("unknown op '{other}'"))),
        }
    }
    Ok(())
}

fn is_patch_op(body: &Value) -> bool {
    body.get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v == "urn:ietf:params:scim:api:messages:2.0:PatchOp"))
}

/// The PATCH as changes of a group's members by id, when every operation is one of the forms
/// identity providers send: add to `members` (with a path or path-less), remove
/// `members[value eq "…"]`, or remove listed `members` values. `None` for anything else, which
/// [`apply`] handles (and refuses where it must).
pub fn member_changes(body: &Value) -> Option<Vec<MemberChange<'_>>> {
    if !is_patch_op(body) {
        return None;
    }
    let is_members = |name: &str| name.eq_ignore_ascii_case("members");
    let mut changes = Vec::new();
    for operation in body.get("Operations")?.as_array()? {
        let op = operation.get("op")?.as_str()?.to_ascii_lowercase();
        let value = operation.get("value").filter(|v| !v.is_null());
        let path = match operation.get("path") {
            None | Some(Value::Null) => None,
            Some(path) => Some(filter::parse_patch_path(path.as_str()?).ok()?),
        };
        let change = match (op.as_str(), path, value) {
            ("add", None, Some(Value::Object(object))) if object.len() == 1 => {
                let (key, items) = object.iter().next()?;
                MemberChange::Add(values_by_id(items).filter(|_| is_members(key))?)
            }
            ("add", Some(path), Some(items)) if path.is_plain() && is_members(&path.attr.name) => {
                MemberChange::Add(values_by_id(items)?)
            }
            ("remove", Some(path), None) if is_members(&path.attr.name) => {
                MemberChange::Remove(HashSet::from([path.value_filter()?.to_string()]))
            }
            ("remove", Some(path), Some(items)) if path.is_plain() && is_members(&path.attr.name) => {
                let ids = values_by_id(items)?.iter().filter_map(|item| item["value"].as_str());
                MemberChange::Remove(ids.map(str::to_string).collect())
            }
            _ => return None,
        };
        // Removes in a row are one pass over the members (100 single removes of a group of
        // 10,000 would otherwise walk it 100 times).
        match (changes.last_mut(), change) {
            (Some(MemberChange::Remove(pending)), MemberChange::Remove(more)) => pending.extend(more),
            (_, change) => changes.push(change),
        }
    }
    Some(changes)
}

/// A list of values that each name an id in `value`.
fn values_by_id(value: &Value) -> Option<&[Value]> {
    let items = value.as_array()?;
    items.iter().all(|item| item.get("value").is_some_and(Value::is_string)).then_some(items.as_slice())
}

/// What makes two values of a multi-valued attribute the same: their `value`, else all of them.
fn identity(item: &Value) -> String {
    item.get("value").unwrap_or(item).to_string()
}

/// Appends values, skipping those already there unless duplicates are stored.
fn append(items: &mut Vec<Value>, new: &[Value], duplicates: Duplicates) {
    let mut known: HashSet<String> = match duplicates {
        Duplicates::Skip => items.iter().map(identity).collect(),
        Duplicates::Store => HashSet::new(),
    };
    for item in new {
        if duplicates == Duplicates::Store || known.insert(identity(item)) {
            items.push(item.clone());
        }
    }
}

fn container_mut<'a>(resource: &'a mut Value, attr: &AttrPath) -> &'a mut Map<String, Value> {
    let root = resource.as_object_mut().expect("resources are objects");
    match &attr.schema {
        None => root,
        Some(schema) => root
            .entry(schema.clone())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("extension objects"),
    }
}

/// The key under which `name` is stored (attribute names are case-insensitive).
fn key_of(map: &Map<String, Value>, name: &str) -> String {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned().unwrap_or_else(|| name.to_string())
}

fn set(resource: &mut Value, attr: &AttrPath, value: &Value, replace: bool, duplicates: Duplicates) {
    let map = container_mut(resource, attr);
    let key = key_of(map, &attr.name);
    match &attr.sub {
        Some(sub) => {
            let parent = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
            match parent {
                Value::Array(items) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        let sub_key = key_of(item, sub);
                        item.insert(sub_key, value.clone());
                    }
                }
                Value::Object(object) => {
                    let sub_key = key_of(object, sub);
                    object.insert(sub_key, value.clone());
                }
                other => *other = Value::Object(Map::from_iter([(sub.clone(), value.clone())])),
            }
        }
        None => {
            let existing = map.get_mut(&key);
            match (existing, value) {
                (Some(Value::Array(items)), Value::Array(new)) if !replace => append(items, new, duplicates),
                (Some(Value::Array(items)), item) if !replace => append(items, std::slice::from_ref(item), duplicates),
                (Some(Value::Object(object)), Value::Object(new)) => {
                    for (k, v) in new {
                        let k = key_of(object, k);
                        object.insert(k, v.clone());
                    }
                }
                _ => {
                    map.insert(key, value.clone());
                }
            }
        }
    }
}

fn apply_with_path(
    resource: &mut Value,
    path: &PatchPath,
    value: &Value,
    replace: bool,
    duplicates: Duplicates,
) -> Result<(), PatchError> {
    let Some(item_filter) = &path.filter else {
        let attr = AttrPath { sub: path.attr.sub.clone().or_else(|| path.sub.clone()), ..path.attr.clone() };
        set(resource, &attr, value, replace, duplicates);
        return Ok(());
    };
    let map = container_mut(resource, &path.attr);
    let key = key_of(map, &path.attr.name);
    let Some(Value::Array(items)) = map.get_mut(&key) else {
        return Err(invalid("noTarget", format!("{} has no values to match", path.attr.name)));
    };
    let mut matched = false;
    for item in items.iter_mut().filter(|item| filter::matches(item_filter, item)) {
        matched = true;
        match (&path.sub, item.as_object_mut(), value) {
            (Some(sub), Some(object), _) => {
                let sub_key = key_of(object, sub);
                object.insert(sub_key, value.clone());
            }
            (None, Some(object), Value::Object(new)) => {
                for (k, v) in new {
                    let k = key_of(object, k);
                    object.insert(k, v.clone());
                }
            }
            _ => *item = value.clone(),
        }
    }
    if !matched {
        return Err(invalid("noTarget", "the filter matches no value"));
    }
    Ok(())
}

fn remove(resource: &mut Value, path: &PatchPath, value: Option<&Value>) -> Result<(), PatchError> {
    let map = container_mut(resource, &path.attr);
    let key = key_of(map, &path.attr.name);
    match (&path.filter, &path.sub, &path.attr.sub) {
        (Some(item_filter), sub, _) => {
            if let Some(Value::Array(items)) = map.get_mut(&key) {
                match sub {
                    None => items.retain(|item| !filter::matches(item_filter, item)),
                    Some(sub) => {
                        for item in items.iter_mut().filter(|i| filter::matches(item_filter, i)) {
                            if let Some(object) = item.as_object_mut() {
                                let sub_key = key_of(object, sub);
                                object.remove(&sub_key);
                            }
                        }
                    }
                }
            }
        }
        (None, _, Some(sub)) => match map.get_mut(&key) {
            Some(Value::Object(object)) => {
                let sub_key = key_of(object, sub);
                object.remove(&sub_key);
            }
            Some(Value::Array(items)) => {
                for object in items.iter_mut().filter_map(Value::as_object_mut) {
                    let sub_key = key_of(object, sub);
                    object.remove(&sub_key);
                }
            }
            _ => {}
        },
        (None, _, None) => match (value, map.get_mut(&key)) {
            // Entra ID's form: remove the listed values only.
            (Some(Value::Array(listed)), Some(Value::Array(items))) => {
                let listed: HashSet<String> = listed.iter().map(identity).collect();
                items.retain(|item| !listed.contains(&identity(item)));
            }
            // RFC 7644: an unqualified multi-valued path removes every value.
            _ => {
                map.remove(&key);
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(ops: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
    }

    fn group() -> Value {
        json!({"id": "9", "displayName": "G", "members": [{"value": "1"}, {"value": "2"}]})
    }

    fn values(group: &Value) -> Vec<&str> {
        group["members"]
            .as_array()
            .map(|m| m.iter().map(|i| i["value"].as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn adds_members_once_unless_duplicates_are_stored() {
        let mut g = group();
        apply(
            &mut g,
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": "2"}, {"value": "3"}]}])),
            Duplicates::Skip,
        )
        .unwrap();
        assert_eq!(values(&g), ["1", "2", "3"]);
        apply(&mut g, &patch(json!([{"op": "add", "value": {"members": [{"value": "3"}]}}])), Duplicates::Store)
            .unwrap();
        assert_eq!(values(&g), ["1", "2", "3", "3"]);
    }

    #[test]
    fn removes_by_filter_by_value_list_and_all() {
        let mut g = group();
        apply(&mut g, &patch(json!([{"op": "remove", "path": "members[value eq \"1\"]"}])), Duplicates::Skip).unwrap();
        assert_eq!(values(&g), ["2"]);
        let mut g = group();
        apply(
            &mut g,
            &patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "2"}]}])),
            Duplicates::Skip,
        )
        .unwrap();
        assert_eq!(values(&g), ["1"]);
        let mut g = group();
        apply(&mut g, &patch(json!([{"op": "remove", "path": "members"}])), Duplicates::Skip).unwrap();
        assert!(values(&g).is_empty());
    }

    #[test]
    fn runs_removes_by_value_together_and_in_order_with_other_operations() {
        let mut g = group();
        let ops = json!([
            {"op": "remove", "path": "members[value eq \"1\"]"},
            {"op": "remove", "path": "members[value eq \"2\"]"},
            {"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "3"}, {"value": "3"}]},
            {"op": "remove", "path": "members[value eq \"3\"]"},
        ]);
        apply(&mut g, &patch(ops), Duplicates::Skip).unwrap();
        assert_eq!(values(&g), ["1"]);
    }

    #[test]
    fn recognises_the_member_forms_identity_providers_send() {
        let body = patch(json!([
            {"op": "Add", "path": "members", "value": [{"value": "1"}]},
            {"op": "add", "value": {"Members": [{"value": "2"}]}},
            {"op": "remove", "path": "members[value eq \"3\"]"},
            {"op": "remove", "path": "members", "value": [{"value": "4"}, {"value": "5"}]},
        ]));
        let changes = member_changes(&body).expect("member changes");
        assert_eq!(changes.len(), 3, "the removes in a row are one");
        assert_eq!(changes[1], MemberChange::Add(&body["Operations"][1]["value"]["Members"].as_array().unwrap()[..]));
        let removed = ["3", "4", "5"].map(str::to_string);
        assert_eq!(changes[2], MemberChange::Remove(HashSet::from(removed)));
        for other in [
            json!([{"op": "remove", "path": "members"}]),
            json!([{"op": "replace", "path": "members", "value": [{"value": "1"}]}]),
            json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
            json!([{"op": "add", "value": {"members": [{"value": "1"}], "displayName": "G"}}]),
            json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}]),
        ] {
            assert_eq!(member_changes(&patch(other.clone())), None, "{other}");
        }
        assert_eq!(member_changes(&json!({"Operations": []})), None, "no PatchOp schema");
    }

    #[test]
    fn replaces_and_refuses_read_only_attributes() {
        let mut user = json!({"id": "1", "userName": "a", "emails": [{"type": "work", "value": "a@x.y"}]});
        apply(
            &mut user,
            &patch(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.y"}])),
            Duplicates::Skip,
        )
        .unwrap();
        assert_eq!(user["emails"][0]["value"], "b@x.y");
        apply(
            &mut user,
            &patch(json!([{"op": "replace", "value": {"userName": "c", "active": false}}])),
            Duplicates::Skip,
        )
        .unwrap();
        assert_eq!(user["userName"], "c");
        let err = apply(&mut user, &patch(json!([{"op": "replace", "path": "id", "value": "2"}])), Duplicates::Skip)
            .unwrap_err();
        assert_eq!(err.scim_type, "mutability");
        assert_eq!(
            apply(&mut user, &patch(json!([{"op": "remove"}])), Duplicates::Skip).unwrap_err().scim_type,
            "noTarget"
        );
    }
}
