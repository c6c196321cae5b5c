//! A SCIM 2.0 server on loopback that behaves like ZPA's SCIM endpoint (base path
//! `/scim/1/<idp_id>/v2`, bearer token, numeric-string ids, users carrying a read-only `groups`
//! list, PATCH on members answering 204), and can play the quirks and faults of other servers.
//! `soar-host simulator` serves it for people; tests and `soar-host demo` start it in-process.

pub mod directory;
pub mod filter;
pub mod http;
pub mod patch;
pub mod quirks;
pub mod scim;

use crate::directory::{Directory, Kind};
use crate::http::{HttpRequest, Reply, Server};
pub use quirks::{Fault, Quirk};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

pub const DEFAULT_IDP_ID: &str = "144118148382065427";

/// The seed file: users and groups to start with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub idp_id: Option<String>,
    #[serde(default)]
    pub users: Vec<Value>,
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
}

/// A seeded group: `members` lists user ids (or `{"value": id}` objects); other attributes are
/// kept as given.
#[derive(Clone, Debug, Deserialize)]
pub struct SeedGroup {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(default)]
    pub members: Vec<SeedMember>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl SeedGroup {
    pub fn new(display_name: &str) -> Self {
        SeedGroup { id: None, display_name: display_name.into(), members: Vec::new(), extra: serde_json::Map::new() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum SeedMember {
    Id(String),
    Object { value: String },
}

impl SeedMember {
    pub fn id(&self) -> &str {
        match self {
            SeedMember::Id(id) | SeedMember::Object { value: id } => id,
        }
    }
}

/// Why the simulator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("{0}")]
    Seed(String),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Seed {
    /// A seed document's text (the caller reads the file).
    pub fn from_text(text: &str) -> Result<Seed, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[derive(Clone, Debug)]
pub struct SimulatorOptions {
    pub listen: SocketAddr,
    pub token: String,
    pub seed: Seed,
    pub quirks: Vec<Quirk>,
    pub faults: Vec<Fault>,
    /// Serve https with this certificate (the base URL then names `localhost`).
    pub tls: http::Tls,
    /// Every answer is delayed this long: the distance to a tenant.
    pub latency_ms: u64,
    /// Above this many requests per second (a token bucket with a burst of as many), answer 429
    /// with `Retry-After: 1`, as ZIA does.
    pub rate_limit: Option<u32>,
    /// Users `user1@corp.example` … `userN@corp.example` added to the seed.
    pub generate_users: usize,
    /// The first this many generated users are members of the group [`GENERATED_GROUP`]
    /// (created when the seed has none of that name).
    pub generate_members: usize,
    /// The most resources a page holds, whatever `count` asks (ZPA: 100; ZIA: 1,000).
    pub max_page_size: usize,
}

/// The group generated users are put in.
pub const GENERATED_GROUP: &str = "ZPA Restricted Users";

/// The userName of the `n`-th generated user (from 1).
pub fn generated_user(n: usize) -> String {
    format!("user{n}@corp.example")
}

impl SimulatorOptions {
    pub fn new(token: impl Into<String>) -> Self {
        SimulatorOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: token.into(),
            seed: Seed::default(),
            quirks: Vec::new(),
            faults: Vec::new(),
            tls: None,
            latency_ms: 0,
            rate_limit: None,
            generate_users: 0,
            generate_members: 0,
            max_page_size: scim::MAX_COUNT,
        }
    }
}

/// One request as the simulator received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: String,
    /// How long the server took to answer it (latency and faults that stall left out).
    pub handled: std::time::Duration,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// State shared by the connection threads.
pub struct Shared {
    token: String,
    base_path: String,
    origin: String,
    quirks: Mutex<BTreeSet<Quirk>>,
    faults: Mutex<BTreeSet<Fault>>,
    pub(crate) directory: Mutex<Directory>,
    requests: Mutex<Vec<Recorded>>,
    attempts: Mutex<BTreeMap<String, u32>>,
    latency: std::time::Duration,
    max_page_size: usize,
    bucket: Option<Mutex<Bucket>>,
    /// 429 answers given by the rate limit.
    throttled: std::sync::atomic::AtomicUsize,
    /// Requests being answered now, and the most at once since the last clear.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts a request in flight while it lives.
pub(crate) struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The rate limit's token bucket: `rate` tokens a second, at most `rate` held.
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    updated: std::time::Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket { rate: f64::from(rate), tokens: f64::from(rate), updated: std::time::Instant::now() }
    }

    /// Takes a token; false when none is left.
    pub(crate) fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.updated).as_secs_f64() * self.rate).min(self.rate);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Shared {
    fn has(&self, quirk: Quirk) -> bool {
        self.quirks.lock().expect("quirks lock").contains(&quirk)
    }

    fn has_fault(&self, fault: Fault) -> bool {
        self.faults.lock().expect("faults lock").contains(&fault)
    }

    fn base_url(&self) -> String {
        format!("{}{}", self.origin, self.base_path)
    }

    /// Keeps the request; returns its number since the last clear (1 for the first), taken in
    /// the same step so that concurrent requests never share one.
    fn record(&self, request: &HttpRequest) -> usize {
        let mut requests = self.requests.lock().expect("requests lock");
        requests.push(Recorded {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            authorization: request.header("authorization").map(str::to_string),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            handled: std::time::Duration::ZERO,
        });
        requests.len()
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(now, SeqCst);
        InFlight(self)
    }

    /// Notes how long the `number`-th request took to handle.
    fn note_handled(&self, number: usize, handled: std::time::Duration) {
        if let Some(recorded) = self.requests.lock().expect("requests lock").get_mut(number - 1) {
            recorded.handled = handled;
        }
    }

    /// How many times this method and path have been asked for, this one included.
    fn count_request(&self, key: &str) -> u32 {
        let mut attempts = self.attempts.lock().expect("attempts lock");
        let count = attempts.entry(key.to_string()).or_insert(0);
        *count += 1;
        *count
    }
}

pub struct Simulator {
    shared: Arc<Shared>,
    server: Server,
}

impl Simulator {
    pub fn start(options: SimulatorOptions) -> Result<Simulator, SimulatorError> {
        let listening = |source| SimulatorError::Listen { address: options.listen, source };
        let listener = TcpListener::bind(options.listen).map_err(listening)?;
        let addr = listener.local_addr().map_err(listening)?;
        let idp_id = options.seed.idp_id.clone().unwrap_or_else(|| DEFAULT_IDP_ID.to_string());
        if idp_id.is_empty() || !idp_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(SimulatorError::Seed(format!(
                "idp_id \"{idp_id}\" may hold only letters, digits, '-' and '_'"
            )));
        }
        let host = match addr.ip() {
            _ if options.tls.is_some() => "localhost".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            token: options.token,
            base_path: format!("/scim/1/{idp_id}/v2"),
            origin: format!("{scheme}://{host}:{}", addr.port()),
            quirks: Mutex::new(options.quirks.into_iter().collect()),
            faults: Mutex::new(options.faults.into_iter().collect()),
            directory: Mutex::new(Directory::default()),
            requests: Mutex::new(Vec::new()),
            attempts: Mutex::new(BTreeMap::new()),
            latency: std::time::Duration::from_millis(options.latency_ms),
            max_page_size: options.max_page_size.max(1),
            bucket: options.rate_limit.map(|rate| Mutex::new(Bucket::new(rate.max(1)))),
            throttled: std::sync::atomic::AtomicUsize::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            most_in_flight: std::sync::atomic::AtomicUsize::new(0),
        });
        let simulator_seed = options.seed;
        {
            let mut directory = shared.directory.lock().expect("directory lock");
            for user in simulator_seed.users {
                if !user.is_object() || user.get("userName").and_then(Value::as_str).is_none() {
                    return Err(SimulatorError::Seed(format!("seed user {user} needs a userName")));
                }
                directory.insert(Kind::User, user);
            }
            for group in simulator_seed.groups {
                let members: Vec<Value> = group.members.iter().map(|m| json!({"value": m.id()})).collect();
                let mut resource = Value::Object(group.extra);
                resource["displayName"] = json!(group.display_name);
                resource["members"] = json!(members);
                if let Some(id) = group.id {
                    resource["id"] = json!(id);
                }
                directory.insert(Kind::Group, resource);
            }
            if options.generate_users > 0 {
                let mut member_ids = Vec::new();
                for n in 1..=options.generate_users {
                    let user = directory.insert(Kind::User, json!({"userName": generated_user(n), "active": true}));
                    if n <= options.generate_members {
                        member_ids.push(json!({"value": user}));
                    }
                }
                match directory.named(Kind::Group, GENERATED_GROUP).first().cloned() {
                    Some(id) => {
                        let mut group = directory.find(Kind::Group, &id).cloned().expect("indexed");
                        let members = group["members"].as_array().cloned().unwrap_or_default();
                        group["members"] = json!([members, member_ids].concat());
                        directory.replace(Kind::Group, &id, group);
                    }
                    None => {
                        directory.insert(Kind::Group, json!({"displayName": GENERATED_GROUP, "members": member_ids}));
                    }
                }
            }
        }
        let handler_state = shared.clone();
        let server =
            Server::start(listener, Arc::new(move |request| -> Reply { handler_state.handle(request) }), options.tls)
                .map_err(listening)?;
        Ok(Simulator { shared, server })
    }

    /// `http://127.0.0.1:PORT/scim/1/<idp_id>/v2`
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// TCP connections accepted so far (keep-alive reuses one for many requests).
    pub fn connections(&self) -> usize {
        self.server.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_quirk(&self, quirk: Quirk, on: bool) {
        switch(&self.shared.quirks, quirk, on);
    }

    pub fn set_fault(&self, fault: Fault, on: bool) {
        switch(&self.shared.faults, fault, on);
    }

    /// Adds a user; returns its id.
    pub fn add_user(&self, user_name: &str) -> String {
        self.add_user_resource(json!({"userName": user_name, "active": true}))
    }

    pub fn add_user_resource(&self, resource: Value) -> String {
        let mut directory = self.shared.directory.lock().expect("directory lock");
        directory.insert(Kind::User, resource)
    }

    /// Adds a group with these member ids; returns its id.
    pub fn add_group(&self, display_name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
        let mut directory = self.shared.directory.lock().expect("directory lock");
        directory.insert(Kind::Group, json!({"displayName": display_name, "members": members}))
    }

    /// The id of the user with this userName (case-insensitive), read from the store directly.
    pub fn user_id_of(&self, user_name: &str) -> Option<String> {
        self.id_where(Kind::User, user_name)
    }

    /// The id of the first group with this displayName, read from the store directly.
    pub fn group_id_of(&self, display_name: &str) -> Option<String> {
        self.id_where(Kind::Group, display_name)
    }

    /// The userName of a user id, read from the store directly.
    pub fn user_name_of(&self, id: &str) -> Option<String> {
        let directory = self.shared.directory.lock().expect("directory lock");
        directory.find(Kind::User, id).and_then(|u| u["userName"].as_str().map(str::to_string))
    }

    fn id_where(&self, kind: Kind, name: &str) -> Option<String> {
        let directory = self.shared.directory.lock().expect("directory lock");
        directory.named(kind, name).first().cloned()
    }

    /// The member ids of a group, in order, duplicates kept.
    pub fn members(&self, group_id: &str) -> Vec<String> {
        let directory = self.shared.directory.lock().expect("directory lock");
        directory
            .find(Kind::Group, group_id)
            .map(|group| directory::member_values(group).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// 429 answers the rate limit gave so far.
    pub fn throttled(&self) -> usize {
        self.shared.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.requests.lock().expect("requests lock").clear();
        self.shared.attempts.lock().expect("attempts lock").clear();
        self.shared.most_in_flight.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// The most requests the server was answering at once since the last clear.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn switch<T: Ord>(set: &Mutex<BTreeSet<T>>, item: T, on: bool) {
    let mut set = set.lock().expect("switches lock");
    if on {
        set.insert(item);
    } else {
        set.remove(&item);
    }
}

/// A token for a simulator started without one: 32 hex digits from the OS-seeded hasher.
pub fn generate_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut token = String::new();
    for salt in 0..2u8 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(salt);
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
        );
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}
