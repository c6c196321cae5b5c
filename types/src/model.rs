//! The plugin's inputs and results in plain Rust. They mirror the WIT records in `wit/types.wit`
//! and serialise to the JSON document that `soar-host` prints.

use serde::Serialize;
use std::fmt;

profile_variants! { named_enum!(
    /// Which SCIM service a provider is; the host detects it from the base URL.
    pub enum Profile;
) }

impl Profile {
    /// The page size the service accepts at most (ZPA: 100, ZIA: 1,000).
    pub fn page_size(self) -> u32 {
        match self {
            Profile::Zia => 1000,
            Profile::Zpa | Profile::Generic => 100,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub base_url: String,
    pub restricted_group: Option<String>,
    pub restricted_group_id: Option<String>,
    pub profile: Profile,
    pub max_retries: u32,
}

/// How the caller names a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    Email(String),
    Id(String),
    External(String),
}

/// Whether two userNames or displayNames name the same thing. Both are `caseExact=false`
/// (RFC 7643), compared here ASCII-case-insensitively and exactly otherwise: Unicode case
/// folding would make two accounts one (`kevin@` and `\u{212A}evin@`, with KELVIN SIGN).
pub fn names_match(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl UserRef {
    /// Whether this reference names the same user as `other` as written: emails compare
    /// case-insensitively, ids and external ids exactly.
    pub fn names(&self, other: &UserRef) -> bool {
        match (self, other) {
            (UserRef::Email(a), UserRef::Email(b)) => names_match(a, b),
            (UserRef::Id(a), UserRef::Id(b)) | (UserRef::External(a), UserRef::External(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for UserRef {
    /// The form the caller wrote: `alice@corp.example`, `id:123`, `external:abc`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserRef::Email(email) => f.write_str(email),
            UserRef::Id(id) => write!(f, "id:{id}"),
            UserRef::External(external) => write!(f, "external:{external}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub providers: Vec<Provider>,
    pub retry_after_cap_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipRequest {
    pub settings: Settings,
    pub users: Vec<UserRef>,
    pub dry_run: bool,
    /// Never added to the restricted group (see [`UserRef::names`]).
    pub protected: Vec<UserRef>,
}

error_kind_variants! { named_enum!(
    /// The typed error kinds a playbook can branch on.
    pub enum ErrorKind;
) }

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

impl ActionError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ActionError { kind, message: message.into(), status: None, detail: None, retry_after_ms: None, ids: None }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

user_outcome_variants! { named_enum!(
    /// What happened to one user at one provider.
    pub enum UserOutcome;
) }

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserResult {
    pub user: String,
    pub user_id: Option<String>,
    pub outcome: Option<UserOutcome>,
    pub error: Option<ActionError>,
    pub membership_verified: bool,
}

impl UserResult {
    pub fn pending(user: &UserRef) -> Self {
        UserResult { user: user.to_string(), user_id: None, outcome: None, error: None, membership_verified: false }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupRef {
    pub display_name: Option<String>,
    pub id: Option<String>,
}

named_enum! {
    /// What test-connection proves of a provider.
    pub enum ProviderOutcome;
    Connected = "connected",
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderResult {
    pub idp: String,
    pub group: Option<GroupRef>,
    pub outcome: Option<ProviderOutcome>,
    pub error: Option<ActionError>,
    pub users: Vec<UserResult>,
}

status_variants! { named_enum!(
    /// The overall status of a result.
    pub enum Status;
) }

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionResult {
    pub status: Status,
    pub providers: Vec<ProviderResult>,
}

/// A member of a restricted group (WIT `members.member`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub user_name: Option<String>,
}

/// The input of `list-members`: the providers, and member ids whose userNames the caller knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembersRequest {
    pub settings: Settings,
    pub named: Vec<String>,
}

/// One provider's restricted group and its members; `complete` is false when the server gave no
/// complete list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderMembers {
    pub idp: String,
    pub group: Option<GroupRef>,
    pub error: Option<ActionError>,
    pub members: Vec<Member>,
    pub complete: bool,
}
