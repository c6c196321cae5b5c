//! The simulated SCIM service: Users and Groups in memory, RFC 7644 list, filter, paging,
//! projection, POST, PUT, PATCH and DELETE, ZPA's read-only `groups` on users, and the quirks
//! and faults of real servers when switched on.

use crate::directory::{member_values, touch, Directory, Kind, MemberChange, GROUP_SCHEMA, USER_SCHEMA};
use crate::filter::{self, AttrPath, CompareOp, Filter};
use crate::http::{HttpRequest, HttpResponse, Reply};
use crate::patch::{self, Duplicates};
use crate::quirks::{Fault, Quirk};
use crate::Shared;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};

const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const SCIM_JSON: &str = "application/scim+json";
pub const MAX_COUNT: usize = 100;
const DEFAULT_COUNT: usize = 100;

struct Answer {
    status: u16,
    body: Body,
    headers: Vec<(String, String)>,
}

enum Body {
    Empty,
    /// Serialised JSON, which the body faults may garble.
    Json(Vec<u8>),
    /// JSON written out by hand (with escapes a serialiser would not choose).
    Raw(Vec<u8>),
}

fn answer(status: u16, body: impl Serialize) -> Answer {
    Answer { status, body: Body::Json(serde_json::to_vec(&body).expect("JSON serialises")), headers: Vec::new() }
}

fn no_content() -> Answer {
    Answer { status: 204, body: Body::Empty, headers: Vec::new() }
}

impl Shared {
    /// What the Group schema says of `members`: never returned where the server lists none.
    fn members_returned(&self) -> &'static str {
        if self.has(Quirk::NoMembership) {
            "never"
        } else {
            "default"
        }
    }

    fn error(&self, request: &HttpRequest, status: u16, scim_type: Option<&str>, detail: &str) -> Answer {
        let mut detail = detail.to_string();
        if self.has(Quirk::EchoAuthorization) {
            detail =
                format!("{detail} (request had Authorization: {})", request.header("authorization").unwrap_or("none"));
        }
        if self.has(Quirk::ZscalerErrors) {
            return answer(
                status,
                json!({"id": status.to_string(), "code": scim_type.unwrap_or("error"), "message": detail,
                       "reason": format!("HTTP {status}")}),
            );
        }
        let mut body = json!({"schemas": [ERROR_SCHEMA], "status": status.to_string(), "detail": detail});
        if let Some(scim_type) = scim_type {
            body["scimType"] = json!(scim_type);
        }
        if self.has(Quirk::EchoTokenEncoded) {
            return self.echo_token_encoded(request, status, body);
        }
        if self.has(Quirk::EchoTokenAsText) {
            return Self::echo_token_as_text(request, status);
        }
        answer(status, body)
    }

    /// The request's token in a text/plain answer, its characters JSON-escaped outside any JSON,
    /// and as the name of a response header.
    fn echo_token_as_text(request: &HttpRequest, status: u16) -> Answer {
        let authorization = request.header("authorization").unwrap_or_default();
        let token = authorization.split_once(' ').map(|(_, token)| token).unwrap_or_default();
        let escaped: String = token
            .chars()
            .enumerate()
            .map(|(index, c)| match c {
                '/' => "\\/".to_string(),
                c if index % 2 == 0 => format!("\\u{:04X}", c as u32),
                c => c.to_string(),
            })
            .collect();
        let mut headers = vec![("Content-Type".to_string(), "text/plain; charset=utf-8".to_string())];
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+".contains(&b)) {
            headers.push((format!("X-{token}"), "1".into()));
        }
        let text = format!(
            "error {status}: the token \"{escaped}\" is not accepted here (request cut short: {{\"detail\":\"{escaped}"
        );
        Answer { status, body: Body::Raw(text.into_bytes()), headers }
    }

    /// A form of request a quirk makes the server refuse: 400 with `scim_type`, or 501 or 405
    /// (without one) when a quirk says the server puts it that way.
    fn unsupported(&self, request: &HttpRequest, scim_type: &str, detail: &str) -> Answer {
        if self.has(Quirk::UnsupportedAs501) {
            return self.error(request, 501, None, detail);
        }
        if self.has(Quirk::UnsupportedAs405) {
            return self.error(request, 405, None, detail);
        }
        self.error(request, 400, Some(scim_type), detail)
    }

    /// The request's token, echoed in forms a naive redactor misses.
    fn echo_token_encoded(&self, request: &HttpRequest, status: u16, mut body: Value) -> Answer {
        use base64::Engine;
        let authorization = request.header("authorization").unwrap_or_default().to_string();
        let token = authorization.split_once(' ').map(|(_, token)| token).unwrap_or_default();
        let percent = percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC).to_string();
        let base64 = base64::engine::general_purpose::STANDARD.encode(authorization.as_bytes());
        body["detail"] = json!(format!(
            "{} (percent {percent}) (base64 {base64}) (escaped ESCAPED)",
            body["detail"].as_str().unwrap_or("")
        ));
        let escaped: String = token.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        let text = serde_json::to_string(&body).expect("JSON serialises").replace("ESCAPED", &escaped);
        Answer { status, body: Body::Raw(text.into_bytes()), headers: vec![("X-Echo".into(), percent)] }
    }

    pub fn handle(&self, request: HttpRequest) -> Reply {
        let number = self.record(&request);
        let _in_flight = self.in_flight();
        std::thread::sleep(self.latency);
        if let Some(bucket) = &self.bucket {
            if !bucket.lock().expect("bucket lock").take() {
                self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut answer = self.error(&request, 429, None, "rate limit exceeded");
                answer.headers.push(("Retry-After".into(), "1".into()));
                return self.render(answer);
            }
        }
        if let Some(reply) = self.fault_before(&request, number) {
            return reply;
        }
        let started = std::time::Instant::now();
        let answer = self.route(&request);
        if self.has_fault(Fault::DropAfterChange) && request.method == "PATCH" && (200..300).contains(&answer.status) {
            return cut_off_answer();
        }
        let reply = self.render(answer);
        self.note_handled(number, started.elapsed());
        reply
    }

    fn render(&self, answer: Answer) -> Reply {
        let mut headers = answer.headers;
        let body = match answer.body {
            Body::Raw(raw) => {
                if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                    headers.push(("Content-Type".into(), SCIM_JSON.into()));
                }
                raw
            }
            Body::Json(mut bytes) => {
                let content_type = if self.has_fault(Fault::WrongContentType) { "text/html" } else { SCIM_JSON };
                headers.push(("Content-Type".into(), content_type.into()));
                if self.has_fault(Fault::MalformedJson) {
                    bytes.truncate(bytes.len() / 2);
                    bytes.extend_from_slice(b"<oops");
                }
                bytes
            }
            Body::Empty => Vec::new(),
        };
        let body = if self.has_fault(Fault::EncodedUnasked) && !body.is_empty() {
            headers.push(("Content-Encoding".into(), "gzip".into()));
            // A gzip header and bytes no reader of plain text can make sense of.
            [
                &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03][..],
                &body.iter().map(|b| b ^ 0xa5).collect::<Vec<u8>>(),
            ]
            .concat()
        } else {
            body
        };
        let response = HttpResponse { status: answer.status, headers, body };
        if self.has_fault(Fault::TruncatedBody) && !response.body.is_empty() {
            let mut bytes = response.to_bytes();
            bytes.truncate(bytes.len() - response.body.len() / 2);
            return Reply::RawThenClose(bytes);
        }
        Reply::Respond(response)
    }

    /// Faults that replace the answer altogether.
    fn fault_before(&self, request: &HttpRequest, total: usize) -> Option<Reply> {
        let attempt = self.count_request(&format!("{} {}", request.method, request.path));
        if self.has_fault(Fault::Stall) {
            return Some(Reply::Stall(Duration::from_secs(30)));
        }
        if self.has_fault(Fault::Slow) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if self.has_fault(Fault::ConflictOnce) && request.method == "PATCH" && self.count_request("first PATCH") == 1 {
            return Some(self.render(self.error(
                request,
                409,
                Some("uniqueness"),
                "a concurrent change holds the group",
            )));
        }
        if self.has_fault(Fault::DropConnection) && attempt == 1 {
            return Some(cut_off_answer());
        }
        let throttled = |headers: Vec<(String, String)>| {
            let mut answer = self.error(request, 429, None, "too many requests");
            answer.headers = headers;
            Some(self.render(answer))
        };
        if self.has_fault(Fault::Burst5xx) && total <= 3 {
            return Some(self.render(self.error(request, 503, None, "service unavailable")));
        }
        if self.has_fault(Fault::RateLimitSeconds) && total == 1 {
            return throttled(vec![("Retry-After".into(), "1".into())]);
        }
        if self.has_fault(Fault::RateLimitDate) && total == 1 {
            // Whole seconds, as an HTTP date carries them, so the two dates are exactly 1 s apart.
            let now = SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs(),
                );
            return throttled(vec![
                ("Date".into(), httpdate::fmt_http_date(now)),
                ("Retry-After".into(), httpdate::fmt_http_date(now + Duration::from_secs(1))),
            ]);
        }
        None
    }

    fn route(&self, request: &HttpRequest) -> Answer {
        let Some(rest) = request.path.strip_prefix(&self.base_path) else {
            return self.error(request, 404, None, &format!("no SCIM endpoint at {}", request.path));
        };
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let method = request.method.to_ascii_uppercase();
        // Discovery endpoints need no token (as on ZIA) and are read-only.
        if let Some(&first) = segments.first() {
            if ["ServiceProviderConfig", "Schemas", "ResourceTypes"].contains(&first) {
                if method != "GET" {
                    return self.error(request, 405, None, &format!("{method} is not supported on /{first}"));
                }
                return self.discovery(request, &segments);
            }
        }
        if !self.authorized(request) {
            let status = if self.has(Quirk::ForbiddenOnBadToken) { 403 } else { 401 };
            let mut answer = self.error(request, status, None, "missing or invalid bearer token");
            answer.headers.push(("WWW-Authenticate".into(), "Bearer realm=\"scim\"".into()));
            return answer;
        }
        let kinds: &[Kind] = match segments.first() {
            Some(&"Users") => &[Kind::User],
            Some(&"Groups") => &[Kind::Group],
            Some(&".search") => &[Kind::User, Kind::Group],
            _ => return self.error(request, 404, None, &format!("no resource at {}", request.path)),
        };
        let searching = segments.last() == Some(&".search") && segments.len() <= 2;
        if searching {
            if method != "POST" {
                return self.error(request, 405, None, ".search takes POST");
            }
            return match self.search_params(request) {
                Ok(params) => self.list(request, kinds, &params),
                Err(answer) => answer,
            };
        }
        if segments.len() > 2 {
            return self.error(request, 404, None, "no such resource");
        }
        let projected = request.param("attributes").is_some() || request.param("excludedAttributes").is_some();
        if projected && self.has(Quirk::ProjectionRejected) {
            return self.unsupported(request, "invalidValue", "attributes and excludedAttributes are not supported");
        }
        let kind = kinds[0];
        match (method.as_str(), segments.get(1).map(|s| crate::http::percent_decode(s)).as_deref()) {
            ("GET", None) => match ListParams::from_query(request) {
                Ok(params) => self.list(request, kinds, &params),
                Err(why) => self.error(request, 400, Some("invalidValue"), &why),
            },
            ("POST", None) => self.create(request, kind),
            ("GET", Some(id)) => self.get(request, kind, id),
            ("PUT", Some(id)) => self.replace(request, kind, id),
            ("PATCH", Some(id)) => self.patch(request, kind, id),
            ("DELETE", Some(id)) => self.delete(request, kind, id),
            _ => self.error(request, 405, None, &format!("{method} is not supported here")),
        }
    }

    fn discovery(&self, request: &HttpRequest, segments: &[&str]) -> Answer {
        let everything = |list: Vec<Value>| answer(200, list_of(list, 1, None));
        let one = |list: Vec<Value>, id: &str| match list.into_iter().find(|item| item["id"] == id) {
            Some(item) => answer(200, item),
            None => self.error(request, 404, None, &format!("nothing named {id}")),
        };
        match segments {
            ["ServiceProviderConfig"] => answer(200, service_provider_config(&self.base_url(), self.max_page_size)),
            ["Schemas"] => everything(schemas(self.members_returned())),
            ["Schemas", id] => one(schemas(self.members_returned()), id),
            ["ResourceTypes"] => everything(resource_types()),
            ["ResourceTypes", id] => one(resource_types(), id),
            _ => self.error(request, 404, None, &format!("no resource at {}", request.path)),
        }
    }

    /// The body of `POST .search` (RFC 7644 §3.4.3) as list parameters.
    fn search_params(&self, request: &HttpRequest) -> Result<ListParams, Answer> {
        let body = self.parse_body(request)?;
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        let names = |key: &str| -> Option<Vec<String>> {
            match body.get(key) {
                Some(Value::Array(items)) => Some(items.iter().filter_map(Value::as_str).map(str::to_string).collect()),
                Some(Value::String(list)) => Some(list.split(',').map(str::to_string).collect()),
                _ => None,
            }
        };
        let number = |key: &str| body.get(key).and_then(Value::as_i64);
        Ok(ListParams {
            filter: text("filter"),
            start_index: number("startIndex").unwrap_or(1).max(1) as usize,
            count: number("count").map(|c| c.max(0) as usize),
            attributes: names("attributes").map(|list| attribute_names(&list)),
            excluded: names("excludedAttributes").map(|list| attribute_names(&list)),
        })
    }

    fn authorized(&self, request: &HttpRequest) -> bool {
        let Some(value) = request.header("authorization") else {
            return false;
        };
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.token
    }

    /// A resource as the server shows it: users get their read-only `groups`, locations filled,
    /// `attributes` / `excludedAttributes` applied. Serialised from the store as it stands, so a
    /// group of 10,000 members is never copied to be shown.
    fn present<'a>(
        &self,
        directory: &Directory,
        kind: Kind,
        resource: &'a Value,
        projection: Projection<'a>,
    ) -> Shown<'a> {
        let id = resource["id"].as_str().unwrap_or_default();
        let users_carry_groups = !self.has(Quirk::NoUserGroups) && !self.has(Quirk::NoMembership);
        let groups = (kind == Kind::User && users_carry_groups && projection.keeps("groups")).then(|| {
            directory
                .groups_of(id)
                .iter()
                .filter_map(|group_id| directory.find(Kind::Group, group_id))
                .map(|g| {
                    json!({"value": g["id"], "display": g["displayName"], "type": "direct",
                           "$ref": format!("{}/Groups/{}", self.base_url(), g["id"].as_str().unwrap_or_default())})
                })
                .collect()
        });
        Shown {
            resource: resource.as_object().expect("resources are objects"),
            projection,
            hide_members: kind == Kind::Group
                && (self.has(Quirk::NoMembership)
                    || (self.has(Quirk::EmptyMembersOmitted)
                        && resource.get("members").and_then(Value::as_array).is_none_or(Vec::is_empty))),
            location: format!("{}/{}/{id}", self.base_url(), kind.endpoint()),
            groups,
        }
    }

    /// The resources a filter can match, from the indexes (`None`: every resource must be tried).
    fn candidates(directory: &Directory, kind: Kind, filter: &Filter) -> Option<Vec<String>> {
        let name_attribute = match kind {
            Kind::User => "userName",
            Kind::Group => "displayName",
        };
        match filter {
            Filter::Compare(AttrPath { schema: None, name, sub: None }, CompareOp::Eq, Value::String(value)) => {
                if name.eq_ignore_ascii_case("id") {
                    Some(directory.find(kind, value).map(|_| vec![value.clone()]).unwrap_or_default())
                } else if name.eq_ignore_ascii_case(name_attribute) {
                    Some(directory.named(kind, value).to_vec())
                } else if name.eq_ignore_ascii_case("externalId") {
                    Some(directory.with_external(kind, value).to_vec())
                } else {
                    None
                }
            }
            Filter::Or(a, b) => {
                let mut ids = Shared::candidates(directory, kind, a)?;
                ids.extend(Shared::candidates(directory, kind, b)?);
                Some(ids)
            }
            Filter::And(a, b) => {
                Shared::candidates(directory, kind, a).or_else(|| Shared::candidates(directory, kind, b))
            }
            _ => None,
        }
    }

    fn list(&self, request: &HttpRequest, kinds: &[Kind], params: &ListParams) -> Answer {
        let filter = match params.filter.as_deref() {
            None => None,
            Some(_) if self.has(Quirk::FilterRejected) => {
                return self.unsupported(request, "invalidFilter", "filtering is not supported")
            }
            Some(text) if self.has(Quirk::NoMembership) && text.to_ascii_lowercase().contains("members") => {
                return self.unsupported(request, "invalidFilter", "cannot filter on members")
            }
            Some(text) if self.has(Quirk::OrFilterRejected) && text.to_ascii_lowercase().contains(" or ") => {
                return self.unsupported(request, "invalidFilter", "only single eq filters are supported")
            }
            Some(_) if self.has(Quirk::FilterIgnored) => None,
            Some(text) => match filter::parse(text) {
                Ok(filter) => Some(filter),
                Err(why) => return self.error(request, 400, Some("invalidFilter"), &format!("invalid filter: {why}")),
            },
        };
        let page_cap = if self.has(Quirk::LoweredCount) { 2 } else { self.max_page_size };
        let count = params.count.unwrap_or(DEFAULT_COUNT).min(page_cap);
        let directory = self.directory.lock().expect("directory lock");
        // Every matching resource, by reference and in creation order; only the page is copied.
        let mut matched: Vec<(Kind, &Value)> = Vec::new();
        for &kind in kinds {
            let Some(filter) = &filter else {
                matched.extend(directory.all(kind).map(|r| (kind, r)));
                continue;
            };
            // A filter on what the server computes (users' groups, locations) reads the resource
            // as shown; any other reads it as stored, without copying a group's members.
            let computed = filter.mentions("meta") || (kind == Kind::User && filter.mentions("groups"));
            let keep = |resource: &&Value| match computed {
                true => {
                    filter::matches(filter, &json!(self.present(&directory, kind, resource, Projection::default())))
                }
                false => filter::matches(filter, resource),
            };
            match Shared::candidates(&directory, kind, filter) {
                Some(mut ids) => {
                    ids.sort_by_key(|id| directory.position(kind, id));
                    ids.dedup();
                    let found = ids.iter().filter_map(|id| directory.find(kind, id));
                    matched.extend(found.filter(keep).map(|r| (kind, r)));
                }
                None => matched.extend(directory.all(kind).filter(keep).map(|r| (kind, r))),
            }
        }
        if self.has(Quirk::ListedTwice) {
            matched = matched.into_iter().flat_map(|item| [item, item]).collect();
        }
        let total = matched.len();
        let projection = Projection { attributes: params.attributes.as_deref(), excluded: params.excluded.as_deref() };
        let page: Vec<Shown> = matched
            .into_iter()
            .skip(params.start_index - 1)
            .take(count)
            .map(|(kind, r)| self.present(&directory, kind, r, projection))
            .collect();
        answer(200, list_of(page, params.start_index, Some(total)))
    }

    fn get(&self, request: &HttpRequest, kind: Kind, id: &str) -> Answer {
        let directory = self.directory.lock().expect("directory lock");
        match directory.find(kind, id) {
            Some(resource) => {
                let params = ListParams::from_query(request).unwrap_or_default();
                let projection =
                    Projection { attributes: params.attributes.as_deref(), excluded: params.excluded.as_deref() };
                answer(200, self.present(&directory, kind, resource, projection))
            }
            None => self.error(request, 404, None, &format!("{} {id} not found", kind.endpoint())),
        }
    }

    fn parse_body(&self, request: &HttpRequest) -> Result<Map<String, Value>, Answer> {
        match serde_json::from_slice::<Value>(&request.body) {
            Ok(Value::Object(object)) => Ok(object),
            _ => Err(self.error(request, 400, Some("invalidSyntax"), "the body must be a JSON object")),
        }
    }

    /// Checks what a user or group may hold before it is stored.
    fn validate(
        &self,
        request: &HttpRequest,
        directory: &Directory,
        kind: Kind,
        resource: &Value,
        own_id: Option<&str>,
    ) -> Result<(), Answer> {
        match kind {
            Kind::User => {
                let Some(user_name) = resource.get("userName").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
                    return Err(self.error(request, 400, Some("invalidValue"), "userName is required"));
                };
                let taken = directory.named(Kind::User, user_name).iter().any(|id| Some(id.as_str()) != own_id);
                if taken {
                    return Err(self.error(
                        request,
                        409,
                        Some("uniqueness"),
                        &format!("userName {user_name} is taken"),
                    ));
                }
            }
            Kind::Group => {
                if resource.get("displayName").and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(self.error(request, 400, Some("invalidValue"), "displayName is required"));
                }
                for member in member_values(resource) {
                    self.member_exists(request, directory, member)?;
                }
            }
        }
        Ok(())
    }

    /// A group member must be a user or a group of this tenant.
    fn member_exists(&self, request: &HttpRequest, directory: &Directory, member: &str) -> Result<(), Answer> {
        if directory.find(Kind::User, member).is_none() && directory.find(Kind::Group, member).is_none() {
            return Err(self.error(request, 400, Some("invalidValue"), &format!("no member with id {member}")));
        }
        Ok(())
    }

    fn create(&self, request: &HttpRequest, kind: Kind) -> Answer {
        let mut object = match self.parse_body(request) {
            Ok(object) => object,
            Err(answer) => return answer,
        };
        for read_only in ["id", "meta", "groups"] {
            object.remove(read_only);
        }
        let resource = Value::Object(object);
        let mut directory = self.directory.lock().expect("directory lock");
        if let Err(answer) = self.validate(request, &directory, kind, &resource, None) {
            return answer;
        }
        let id = directory.insert(kind, resource);
        let mut created = self.stored(&directory, kind, &id, 201);
        let location = format!("{}/{}/{id}", self.base_url(), kind.endpoint());
        created.headers.push(("Location".into(), location));
        created
    }

    fn replace(&self, request: &HttpRequest, kind: Kind, id: &str) -> Answer {
        let mut object = match self.parse_body(request) {
            Ok(object) => object,
            Err(answer) => return answer,
        };
        let mut directory = self.directory.lock().expect("directory lock");
        let Some(existing) = directory.find(kind, id) else {
            return self.error(request, 404, None, &format!("{} {id} not found", kind.endpoint()));
        };
        for kept in ["id", "meta", "schemas"] {
            object.insert(kept.into(), existing[kept].clone());
        }
        object.remove("groups");
        let mut resource = Value::Object(object);
        if let Err(answer) = self.validate(request, &directory, kind, &resource, Some(id)) {
            return answer;
        }
        touch(&mut resource);
        directory.replace(kind, id, resource);
        self.stored(&directory, kind, id, 200)
    }

    /// A stored resource shown whole, as a write answers.
    fn stored(&self, directory: &Directory, kind: Kind, id: &str, status: u16) -> Answer {
        let resource = directory.find(kind, id).expect("just stored");
        answer(status, self.present(directory, kind, resource, Projection::default()))
    }

    fn patch(&self, request: &HttpRequest, kind: Kind, id: &str) -> Answer {
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(body) => body,
            Err(_) => return self.error(request, 400, Some("invalidSyntax"), "the body is not JSON"),
        };
        if kind == Kind::Group {
            if let Some(refusal) = self.refused_patch_form(request, &body) {
                return refusal;
            }
        }
        let mut directory = self.directory.lock().expect("directory lock");
        let duplicates = if self.has(Quirk::DuplicateMembers) { Duplicates::Store } else { Duplicates::Skip };
        if let Some(changes) = patch::member_changes(&body).filter(|_| kind == Kind::Group) {
            return self.change_members(request, &mut directory, id, &changes, duplicates);
        }
        let Some(mut updated) = directory.find(kind, id).cloned() else {
            return self.error(request, 404, None, &format!("{} {id} not found", kind.endpoint()));
        };
        if let Err(error) = patch::apply(&mut updated, &body, duplicates) {
            return self.error(request, 400, Some(error.scim_type), &error.detail);
        }
        if let Err(answer) = self.validate(request, &directory, kind, &updated, Some(id)) {
            return answer;
        }
        touch(&mut updated);
        directory.replace(kind, id, updated);
        if kind == Kind::Group && !self.has(Quirk::PatchReturns200) {
            return no_content();
        }
        self.stored(&directory, kind, id, 200)
    }

    /// A PATCH of a group's members by id, done in place (see [`Directory::change_members`]).
    fn change_members(
        &self,
        request: &HttpRequest,
        directory: &mut Directory,
        id: &str,
        changes: &[MemberChange],
        duplicates: Duplicates,
    ) -> Answer {
        if directory.find(Kind::Group, id).is_none() {
            return self.error(request, 404, None, &format!("Groups {id} not found"));
        }
        let added = changes.iter().flat_map(|change| match change {
            MemberChange::Add(items) => *items,
            MemberChange::Remove(_) => &[],
        });
        for member in added.filter_map(|item| item["value"].as_str()) {
            if let Err(answer) = self.member_exists(request, directory, member) {
                return answer;
            }
        }
        directory.change_members(id, changes, duplicates);
        if self.has(Quirk::PatchReturns200) {
            return self.stored(directory, Kind::Group, id, 200);
        }
        no_content()
    }

    /// The PATCH forms a quirk makes the server refuse.
    fn refused_patch_form(&self, request: &HttpRequest, body: &Value) -> Option<Answer> {
        let operations = body.get("Operations")?.as_array()?;
        for operation in operations {
            let op = operation.get("op").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
            let path = operation.get("path").and_then(Value::as_str);
            let has_value = operation.get("value").is_some_and(|v| !v.is_null());
            let on_members = path.is_some_and(|p| p.to_ascii_lowercase().starts_with("members"));
            let refused = match op.as_str() {
                "add" => self.has(Quirk::PathlessAddOnly) && on_members,
                "remove" => {
                    (self.has(Quirk::RfcRemoveRejected) && on_members && path.is_some_and(|p| p.contains('[')))
                        || (self.has(Quirk::EntraRemoveRejected) && on_members && has_value)
                }
                _ => false,
            };
            if refused {
                return Some(self.unsupported(
                    request,
                    "invalidPath",
                    &format!("this server does not accept that {op} form"),
                ));
            }
        }
        None
    }

    fn delete(&self, request: &HttpRequest, kind: Kind, id: &str) -> Answer {
        let mut directory = self.directory.lock().expect("directory lock");
        if !directory.remove(kind, id) {
            return self.error(request, 404, None, &format!("{} {id} not found", kind.endpoint()));
        }
        no_content()
    }
}

/// List and projection parameters, from a query string or a `.search` body.
#[derive(Clone, Debug, Default)]
struct ListParams {
    filter: Option<String>,
    start_index: usize,
    count: Option<usize>,
    attributes: Option<Vec<String>>,
    excluded: Option<Vec<String>>,
}

impl ListParams {
    fn from_query(request: &HttpRequest) -> Result<ListParams, String> {
        let number = |name: &str| -> Result<Option<i64>, String> {
            request
                .param(name)
                .map(|v| v.trim().parse::<i64>().map_err(|_| format!("{name} must be a number")))
                .transpose()
        };
        let names = |name: &str| {
            request.param(name).map(|list| attribute_names(&list.split(',').map(str::to_string).collect::<Vec<_>>()))
        };
        Ok(ListParams {
            filter: request.param("filter").map(str::to_string),
            start_index: number("startIndex")?.unwrap_or(1).max(1) as usize,
            count: number("count")?.map(|c| c.max(0) as usize),
            attributes: names("attributes"),
            excluded: names("excludedAttributes"),
        })
    }
}

/// Top-level attribute names, lower-cased, from `attributes` lists (`name.givenName` → `name`,
/// schema URNs dropped).
fn attribute_names(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|a| {
            let a = a.trim();
            let a = a.rsplit_once(':').map(|(_, name)| name).unwrap_or(a);
            a.split('.').next().unwrap_or(a).to_ascii_lowercase()
        })
        .collect()
}

/// `attributes` keeps only the named top-level attributes (and `id`, `schemas`, `meta`);
/// `excludedAttributes` drops the named ones (never `id` or `schemas`).
#[derive(Clone, Copy, Debug, Default)]
struct Projection<'a> {
    attributes: Option<&'a [String]>,
    excluded: Option<&'a [String]>,
}

impl Projection<'_> {
    fn keeps(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        let asked =
            self.attributes.is_none_or(|keep| ["id", "schemas", "meta"].contains(&key) || keep.contains(&lower));
        let dropped = self.excluded.is_some_and(|drop| key != "id" && key != "schemas" && drop.contains(&lower));
        asked && !dropped
    }
}

/// See [`Shared::present`].
struct Shown<'a> {
    resource: &'a Map<String, Value>,
    projection: Projection<'a>,
    hide_members: bool,
    location: String,
    /// A user's groups, computed (`None`: not shown).
    groups: Option<Vec<Value>>,
}

impl Serialize for Shown<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.resource {
            let hidden = (self.hide_members && key == "members") || (self.groups.is_some() && key == "groups");
            if hidden || !self.projection.keeps(key) {
                continue;
            }
            match (key.as_str(), value) {
                ("meta", Value::Object(meta)) => {
                    let mut meta = meta.clone();
                    meta.insert("location".into(), json!(self.location));
                    map.serialize_entry(key, &meta)?;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        if let Some(groups) = &self.groups {
            map.serialize_entry("groups", groups)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse<T> {
    schemas: [&'static str; 1],
    total_results: usize,
    start_index: usize,
    items_per_page: usize,
    #[serde(rename = "Resources")]
    resources: Vec<T>,
}

fn list_of<T: Serialize>(resources: Vec<T>, start_index: usize, total: Option<usize>) -> ListResponse<T> {
    ListResponse {
        schemas: [LIST_SCHEMA],
        total_results: total.unwrap_or(resources.len()),
        start_index,
        items_per_page: resources.len(),
        resources,
    }
}

fn service_provider_config(base_url: &str, max_results: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://help.zscaler.com/zpa/about-scim-apis",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                                   "description": "Authentication with the SCIM bearer token", "primary": true}],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base_url}/ServiceProviderConfig")}
    })
}

fn resource_types() -> Vec<Value> {
    [("User", "Users", USER_SCHEMA), ("Group", "Groups", GROUP_SCHEMA)]
        .into_iter()
        .map(|(id, endpoint, schema)| {
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": id, "name": id,
                   "endpoint": format!("/{endpoint}"), "schema": schema, "description": format!("{id} account"),
                   "meta": {"resourceType": "ResourceType", "location": format!("/ResourceTypes/{id}")}})
        })
        .collect()
}

fn attribute(name: &str, kind: &str, extra: Value) -> Value {
    let mut base = json!({"name": name, "type": kind, "multiValued": false, "required": false,
                          "caseExact": false, "mutability": "readWrite", "returned": "default",
                          "uniqueness": "none", "description": name});
    for (k, v) in extra.as_object().expect("object") {
        base[k] = v.clone();
    }
    base
}

/// The Schemas the server serves; `members_returned`: when it returns a group's members.
fn schemas(members_returned: &str) -> Vec<Value> {
    let string = |name: &str| attribute(name, "string", json!({}));
    let reference_list = |name: &str, mutability: &str, types: Value| {
        attribute(
            name,
            "complex",
            json!({"multiValued": true, "mutability": mutability, "subAttributes": [
                attribute("value", "string", json!({"mutability": "immutable", "caseExact": true})),
                attribute("$ref", "reference", json!({"mutability": "immutable", "referenceTypes": types, "caseExact": true})),
                attribute("display", "string", json!({"mutability": "readOnly"})),
                attribute("type", "string", json!({"mutability": "immutable", "canonicalValues": ["User", "Group", "direct", "indirect"]})),
            ]}),
        )
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA, "name": "User", "description": "User Account",
        "attributes": [
            attribute("userName", "string", json!({"required": true, "uniqueness": "server"})),
            attribute("name", "complex", json!({"subAttributes": [
                string("formatted"), string("familyName"), string("givenName"), string("middleName"),
                string("honorificPrefix"), string("honorificSuffix")]})),
            string("displayName"), string("nickName"), string("title"), string("userType"),
            string("preferredLanguage"), string("locale"), string("timezone"),
            attribute("active", "boolean", json!({})),
            attribute("emails", "complex", json!({"multiValued": true, "subAttributes": [
                string("value"), string("display"),
                attribute("type", "string", json!({"canonicalValues": ["work", "home", "other"]})),
                attribute("primary", "boolean", json!({}))]})),
            reference_list("groups", "readOnly", json!(["Group"])),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{USER_SCHEMA}")}
    });
    let mut members = reference_list("members", "readWrite", json!(["User", "Group"]));
    members["returned"] = json!(members_returned);
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": GROUP_SCHEMA, "name": "Group", "description": "Group",
        "attributes": [
            attribute("displayName", "string", json!({"required": true})),
            members,
        ],
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{GROUP_SCHEMA}")}
    });
    vec![user, group]
}

/// The start of an answer, then a closed connection.
fn cut_off_answer() -> Reply {
    let partial = HttpResponse {
        status: 200,
        headers: vec![("Content-Type".into(), SCIM_JSON.into())],
        body: br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":"#.to_vec(),
    };
    let mut bytes = partial.to_bytes();
    bytes.truncate(bytes.len() - 10);
    Reply::RawThenClose(bytes)
}
