//! Restrictions that last as long as intended: the `restrictions` report, read from the ledger,
//! and `reconcile`, which settles every record against each group's members as the plugin lists
//! them (WIT 1.2): an expired restriction is lifted, one the identity provider undid is put back,
//! a member nobody recorded is reported, and an intent a dead process left is settled.

use crate::action::{exit_code, refusal_report, ActionHost, Refusal, Report};
use crate::config::{Config, ProcessEnvironment, ProviderConfig};
use crate::ledger::{now_ms, Change, Intent, Ledger, LiftedBy, Record, RecordKey, RecordState, Restriction};
use crate::runtime::{Call, PluginFailure};
use crate::secret::Secret;
use crate::services::Observer;
use crate::state::StateSpec;
use serde::Serialize;
use serde_json::{json, Value};
use soar_types::model::{
    ActionError, ActionResult, ErrorKind, GroupRef, Member, MembersRequest, MembershipRequest, ProviderMembers,
    UserOutcome, UserRef,
};
use soar_types::{Action, SCHEMA_VERSION};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which records the report shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StateFilter {
    #[default]
    Active,
    Expired,
    Lifted,
    All,
}

impl StateFilter {
    pub const NAMES: [&'static str; 4] = ["active", "expired", "lifted", "all"];

    pub fn parse(text: &str) -> Option<StateFilter> {
        match text {
            "active" => Some(StateFilter::Active),
            "expired" => Some(StateFilter::Expired),
            "lifted" => Some(StateFilter::Lifted),
            "all" => Some(StateFilter::All),
            _ => None,
        }
    }

    fn keeps(self, state: RecordState) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Active => state == RecordState::Active,
            StateFilter::Expired => state == RecordState::Expired,
            StateFilter::Lifted => state == RecordState::Lifted,
        }
    }
}

/// `restrictions [--idp NAME] [--user USER] [--state ...]`.
#[derive(Clone, Debug, Default)]
pub struct RestrictionsQuery {
    pub idp: Option<String>,
    /// An email (userName or as named), `id:SCIM_ID`, or the user as first named.
    pub user: Option<String>,
    pub state: StateFilter,
}

/// `reconcile [--idp NAME] [--dry-run]`.
#[derive(Clone, Debug, Default)]
pub struct ReconcileRequest {
    pub idp: Option<String>,
    pub dry_run: bool,
    pub correlation_id: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// What `reconcile` did with one record or member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconcileOutcome {
    /// Expired and still a member: removed.
    LiftedExpired,
    /// Expired and already out of the group: the record is closed.
    AlreadyLifted,
    /// Expired, but the membership predates the record: the record is closed, the member left.
    KeptPreexisting,
    /// Active, but the group had lost the user (an identity provider's push): added back.
    ReAdded,
    /// Active and a member.
    InPlace,
    /// A member the ledger has no record of: reported, never removed.
    Unrecorded,
    WouldLift,
    WouldReAdd,
}

impl ReconcileOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileOutcome::LiftedExpired => "lifted-expired",
            ReconcileOutcome::AlreadyLifted => "already-lifted",
            ReconcileOutcome::KeptPreexisting => "kept-preexisting",
            ReconcileOutcome::ReAdded => "re-added",
            ReconcileOutcome::InPlace => "in-place",
            ReconcileOutcome::Unrecorded => "unrecorded",
            ReconcileOutcome::WouldLift => "would-lift",
            ReconcileOutcome::WouldReAdd => "would-re-add",
        }
    }
}

/// An RFC 3339 UTC time of the ledger's milliseconds.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

/// The `restrictions` document, serialised straight from the ledger's records (the JSON of
/// 100,000 of them without an intermediate tree).
#[derive(Clone, Debug)]
pub struct Restrictions {
    records: Vec<Record>,
    now: i64,
}

impl Restrictions {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Serialize for Restrictions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut document = serializer.serialize_struct("Restrictions", 3)?;
        document.serialize_field("schema_version", &SCHEMA_VERSION)?;
        document.serialize_field("action", "restrictions")?;
        document.serialize_field("restrictions", &Entries(self))?;
        document.end()
    }
}

/// The records as a JSON array of entries.
struct Entries<'a>(&'a Restrictions);

impl Serialize for Entries<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.records.iter().map(|record| Entry::of(record, self.0.now)))
    }
}

/// A record as the report shows it; times RFC 3339 UTC.
#[derive(Serialize)]
struct Entry<'a> {
    idp: &'a str,
    group_id: &'a str,
    user: &'a str,
    user_id: &'a str,
    user_name: Option<&'a str>,
    reason: Option<&'a str>,
    correlation_id: Option<&'a str>,
    restricted_at: Rfc3339,
    expires_at: Option<Rfc3339>,
    lifted_at: Option<Rfc3339>,
    lifted_by: Option<&'static str>,
    state: &'static str,
    preexisting: bool,
    last_verified_at: Option<Rfc3339>,
    times_reasserted: i64,
}

impl<'a> Entry<'a> {
    fn of(record: &'a Record, now: i64) -> Entry<'a> {
        Entry {
            idp: &record.key.idp,
            group_id: &record.key.group_id,
            user: &record.user,
            user_id: &record.key.user_id,
            user_name: record.user_name.as_deref(),
            reason: record.reason.as_deref(),
            correlation_id: record.correlation_id.as_deref(),
            restricted_at: Rfc3339(record.restricted_at),
            expires_at: record.expires_at.map(Rfc3339),
            lifted_at: record.lifted_at.map(Rfc3339),
            lifted_by: record.lifted_by.map(LiftedBy::as_str),
            state: record.state(now).as_str(),
            preexisting: record.preexisting,
            last_verified_at: record.last_verified_at.map(Rfc3339),
            times_reasserted: record.reasserted,
        }
    }
}

/// Milliseconds since the epoch, serialised as RFC 3339 UTC without a string in between.
struct Rfc3339(i64);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(time) => serializer.collect_str(&time),
            Err(_) => serializer.serialize_str(""),
        }
    }
}

/// Whether a record is the user a query names: as first named, by userName (either ignoring
/// ASCII case), or `id:SCIM_ID`.
fn names(record: &Record, user: &str) -> bool {
    match user.strip_prefix("id:") {
        Some(id) => record.key.user_id == id,
        None => {
            record.user.eq_ignore_ascii_case(user)
                || record.user_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(user))
        }
    }
}

/// The `restrictions` document: the records of the ledger (`ledger`, else the one the config's
/// `state` names) of the config's providers that the query keeps, in the order they were restricted.
pub fn restrictions_of(
    config: &Config,
    ledger: Option<&Ledger>,
    query: &RestrictionsQuery,
) -> Result<Restrictions, Refusal> {
    if let Some(idp) = &query.idp {
        config.select(Some(idp)).map_err(|unknown| Refusal::new(ErrorKind::InvalidInput, unknown.to_string()))?;
    }
    let opened;
    let ledger = match ledger {
        Some(ledger) => ledger,
        None => {
            opened = open_ledger(config, None)?;
            &opened
        }
    };
    let mut records = ledger.records().map_err(|why| Refusal::new(ErrorKind::InvalidConfig, why.to_string()))?;
    let now = now_ms();
    // A shared ledger holds other configs' providers too: the report is of this config's.
    records.retain(|record| {
        config.providers.iter().any(|provider| provider.name == record.key.idp)
            && query.idp.as_deref().is_none_or(|idp| record.key.idp == idp)
            && query.user.as_deref().is_none_or(|user| names(record, user.trim()))
            && query.state.keeps(record.state(now))
    });
    Ok(Restrictions { records, now })
}

/// [`restrictions_of`] as a report (the document as a JSON value, or the refusal).
pub fn restrictions_report(config: &Config, ledger: Option<&Ledger>, query: &RestrictionsQuery) -> Report {
    match restrictions_of(config, ledger, query) {
        Ok(restrictions) => {
            Report { document: serde_json::to_value(&restrictions).expect("the document serialises"), exit_code: 0 }
        }
        Err(refusal) => refusal_report(Some("restrictions"), &refusal),
    }
}

/// Opens the ledger the config's `state` names; a refusal says why it cannot be.
pub fn open_ledger(config: &Config, state_password: Option<&Secret>) -> Result<Ledger, Refusal> {
    let spec = config.state.as_ref().ok_or_else(|| {
        Refusal::new(
            ErrorKind::InvalidConfig,
            "no restriction ledger: state is not set and there is no data folder for its default (neither \
             XDG_DATA_HOME nor HOME is set); set state",
        )
    })?;
    let password = match spec {
        StateSpec::Postgres(pg) => pg
            .password(state_password, &ProcessEnvironment)
            .map_err(|why| Refusal::new(ErrorKind::InvalidConfig, why))?,
        _ => None,
    };
    let timeout = Duration::from_millis(config.limits.connect_timeout_ms);
    Ledger::open(spec, password, timeout).map_err(|why| Refusal::new(ErrorKind::InvalidConfig, why.to_string()))
}

/// One line of a reconcile document's provider.
struct Settled {
    user: String,
    user_id: Option<String>,
    outcome: Option<ReconcileOutcome>,
    error: Option<ActionError>,
}

impl ActionHost {
    /// The `restrictions` report of this host's ledger.
    pub fn restrictions(&self, query: &RestrictionsQuery) -> Report {
        match self.ledger() {
            Ok(ledger) => restrictions_report(self.config(), Some(&ledger), query),
            Err(refusal) => refusal_report(Some("restrictions"), &refusal),
        }
    }

    /// `reconcile`: per provider, the group's members read once and every record settled.
    pub fn reconcile(&self, request: &ReconcileRequest, observer: Option<Arc<dyn Observer>>) -> Report {
        let refused = |refusal: Refusal| refusal_report(Some("reconcile"), &refusal);
        let providers = match self.prepare_reconcile(request) {
            Ok(providers) => providers,
            Err(refusal) => return refused(refusal),
        };
        let ledger = match self.ledger() {
            Ok(ledger) => ledger,
            Err(refusal) => return refused(refusal),
        };
        let mut audit = match self.open_audit(true) {
            Ok(audit) => audit,
            Err(refusal) => return refused(refusal),
        };
        let mut context = self.context(&providers, request.timeout_ms, observer);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(context.limits.deadline_ms);
        let exclusion = match request.dry_run {
            true => Ok(None),
            false => self.exclude(&providers, started, context.limits.deadline_ms),
        };
        let mut report = match exclusion {
            Ok(_held_until_reported) => {
                let mut run = Reconcile {
                    host: self,
                    ledger: &ledger,
                    request,
                    providers: &providers,
                    http_requests: 0,
                    started,
                    deadline,
                    changes: Vec::new(),
                    settled_intents: Vec::new(),
                };
                let mut report = run.reconcile(&mut context);
                if !request.dry_run && report.exit_code != 2 {
                    self.settle(&ledger, &run.settled_intents, &run.changes, &mut report);
                }
                report
            }
            Err(failure) => failure_document(request, &providers, &failure),
        };
        if let Some(audit) = audit.as_mut() {
            let context = crate::audit::AuditContext {
                action: "reconcile",
                correlation_id: request.correlation_id.as_deref(),
                dry_run: request.dry_run,
                reason: None,
                expires_at: None,
            };
            self.audit(audit, &context, &mut report);
        }
        report
    }

    fn prepare_reconcile(&self, request: &ReconcileRequest) -> Result<Vec<&ProviderConfig>, Refusal> {
        if let Some(problem) = request.correlation_id.as_deref().and_then(crate::action::correlation_id_problem) {
            return Err(Refusal::new(ErrorKind::InvalidInput, format!("--correlation-id {problem}")));
        }
        if let Some(timeout_ms) = request.timeout_ms {
            crate::config::DEADLINE_MS
                .check("--timeout-ms", timeout_ms)
                .map_err(|why| Refusal::new(ErrorKind::InvalidInput, why))?;
        }
        let providers = self
            .config()
            .select(request.idp.as_deref())
            .map_err(|unknown| Refusal::new(ErrorKind::InvalidInput, unknown.to_string()))?;
        if !self.runtime().lists_members() {
            return Err(Refusal::new(
                ErrorKind::PluginLoad,
                "reconcile needs a plugin built for soar:restricted-group@1.2.0 or later, which can list a group's \
                 members; this one is older: load the plugin this host ships with",
            ));
        }
        Ok(providers)
    }
}

/// One `reconcile` run: its invocations share the deadline and add up their requests.
struct Reconcile<'a> {
    host: &'a ActionHost,
    ledger: &'a Ledger,
    request: &'a ReconcileRequest,
    providers: &'a [&'a ProviderConfig],
    http_requests: u32,
    started: Instant,
    deadline: Instant,
    changes: Vec<Change>,
    /// Intents whose providers were all reconciled: deleted with the changes.
    settled_intents: Vec<i64>,
}

/// Users per invocation of add-to-group or remove-from-group: reconcile is not bound by
/// `max_users_per_action`, and runs in chunks within the deadline.
const CHUNK: usize = 1_000;

impl Reconcile<'_> {
    fn left(&self) -> u64 {
        self.deadline.saturating_duration_since(Instant::now()).as_millis().max(1) as u64
    }

    fn spent(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn reconcile(&mut self, context: &mut crate::services::InvocationContext) -> Report {
        let now = now_ms();
        let fail = |why: String| Report {
            document: json!({"schema_version": SCHEMA_VERSION, "action": "reconcile", "status": "error",
                             "error": ActionError::new(ErrorKind::InvalidConfig, why)}),
            exit_code: 2,
        };
        let (mut records, intents) = match (self.ledger.records(), self.ledger.intents()) {
            (Ok(records), Ok(intents)) => (records, intents),
            (Err(why), _) | (_, Err(why)) => return fail(why.to_string()),
        };
        records.retain(|record| self.providers.iter().any(|p| p.name == record.key.idp));
        let named: Vec<String> =
            records.iter().filter(|r| r.user_name.is_some()).map(|r| r.key.user_id.clone()).collect();
        let settings = crate::action::settings_of(self.providers, None, self.host.config().retry_after_cap_ms);
        (context.limits.deadline_ms, context.spent_ms) = (self.left(), self.spent());
        let (listed, requests) = self.host.runtime().list_members(&MembersRequest { settings, named }, context);
        self.http_requests += requests;
        let listed = match listed {
            Ok(listed) => listed,
            Err(failure) => return failure_document(self.request, self.providers, &failure),
        };
        let mut providers = Vec::new();
        for members in listed {
            let provider = *self.providers.iter().find(|p| p.name == members.idp).expect("listed providers are ours");
            providers.push(self.settle_provider(provider, members, &records, &intents, now, context));
        }
        let reconciled = |idp: &String| providers.iter().any(|(head, _, failed)| head["idp"] == *idp && !failed);
        self.settled_intents =
            intents.iter().filter(|intent| intent.idps.iter().all(reconciled)).map(|intent| intent.id).collect();
        document(self.request, self.http_requests, providers)
    }

    /// One provider: intents settled, then every record of its group and every member.
    fn settle_provider(
        &mut self,
        provider: &ProviderConfig,
        listed: ProviderMembers,
        records: &[Record],
        intents: &[Intent],
        now: i64,
        context: &mut crate::services::InvocationContext,
    ) -> (Value, Vec<Settled>, bool) {
        let group = listed.group.clone();
        let head =
            |error: Option<ActionError>| json!({"idp": provider.name, "group": group, "outcome": null, "error": error});
        if let Some(error) = listed.error {
            return (head(Some(error)), Vec::new(), true);
        }
        let Some(group_id) = listed.group.as_ref().and_then(|g| g.id.clone()) else {
            return (head(Some(ActionError::new(ErrorKind::Protocol, "the group has no id"))), Vec::new(), true);
        };
        let members: BTreeMap<&str, &Member> = listed.members.iter().map(|m| (m.id.as_str(), m)).collect();
        let mut mine: Vec<Record> = records
            .iter()
            .filter(|r| r.key.idp == provider.name && r.key.group_id == group_id && r.lifted_at.is_none())
            .cloned()
            .collect();
        // Intents a dead process left: a member it was adding is recorded (no restriction is
        // lost); a user it was removing who is out of the group has the record lifted.
        for intent in intents.iter().filter(|intent| intent.idps.contains(&provider.name)) {
            for user in &intent.users {
                let member = listed.members.iter().find(|m| names_member(m, user));
                match (intent.action.as_str(), member) {
                    ("add-to-group", Some(member)) if !mine.iter().any(|r| r.key.user_id == member.id) => {
                        let key = RecordKey {
                            idp: provider.name.clone(),
                            group_id: group_id.clone(),
                            user_id: member.id.clone(),
                        };
                        let restriction = Restriction {
                            key: key.clone(),
                            user: user.clone(),
                            user_name: member.user_name.clone(),
                            reason: intent.reason.clone(),
                            correlation_id: intent.correlation_id.clone(),
                            expires_at: intent.expires_at,
                            preexisting: false,
                        };
                        mine.push(Record {
                            key,
                            user: user.clone(),
                            user_name: member.user_name.clone(),
                            reason: intent.reason.clone(),
                            correlation_id: intent.correlation_id.clone(),
                            restricted_at: intent.created_at,
                            expires_at: intent.expires_at,
                            lifted_at: None,
                            lifted_by: None,
                            preexisting: false,
                            last_verified_at: None,
                            reasserted: 0,
                        });
                        self.changes.push(Change::Restrict(restriction));
                    }
                    ("remove-from-group", None) if listed.complete => {
                        for record in mine.iter().filter(|r| names(r, user)) {
                            self.changes.push(Change::Lift(record.key.clone(), LiftedBy::RemoveFromGroup));
                        }
                        mine.retain(|r| !names(r, user));
                    }
                    _ => {}
                }
            }
        }
        let dry = self.request.dry_run;
        let mut settled: Vec<Settled> = Vec::new();
        let mut to_lift: Vec<&Record> = Vec::new();
        let mut to_readd: Vec<&Record> = Vec::new();
        let mut to_check: Vec<&Record> = Vec::new();
        let line = |record: &Record, outcome: Option<ReconcileOutcome>| Settled {
            user: record.user.clone(),
            user_id: Some(record.key.user_id.clone()),
            outcome,
            error: None,
        };
        for record in &mine {
            let member = members.contains_key(record.key.user_id.as_str());
            match (record.state(now), member, listed.complete) {
                (RecordState::Expired, true, _) if record.preexisting => {
                    self.changes.push(Change::Lift(record.key.clone(), LiftedBy::Expired));
                    settled.push(line(record, Some(ReconcileOutcome::KeptPreexisting)));
                }
                (RecordState::Expired, true, _) => to_lift.push(record),
                (RecordState::Expired, false, true) => {
                    self.changes.push(Change::Lift(record.key.clone(), LiftedBy::Expired));
                    settled.push(line(record, Some(ReconcileOutcome::AlreadyLifted)));
                }
                (_, true, _) => {
                    self.changes.push(Change::Verified(record.key.clone()));
                    settled.push(line(record, Some(ReconcileOutcome::InPlace)));
                }
                (_, false, true) => to_readd.push(record),
                (_, false, false) => to_check.push(record),
            }
        }
        // Not listed by a server that gave no complete list: asked one by one, never re-added
        // on absence alone (a server that stores duplicates must not get one).
        if !to_check.is_empty() {
            let results = self.invoke(provider, Action::CheckMembership, &to_check, false, context);
            for (record, result) in to_check.iter().zip(results) {
                match result {
                    Ok(UserOutcome::Member) => match record.state(now) {
                        RecordState::Expired if record.preexisting => {
                            self.changes.push(Change::Lift(record.key.clone(), LiftedBy::Expired));
                            settled.push(line(record, Some(ReconcileOutcome::KeptPreexisting)));
                        }
                        RecordState::Expired => to_lift.push(record),
                        _ => {
                            self.changes.push(Change::Verified(record.key.clone()));
                            settled.push(line(record, Some(ReconcileOutcome::InPlace)));
                        }
                    },
                    Ok(_) => match record.state(now) {
                        RecordState::Expired => {
                            self.changes.push(Change::Lift(record.key.clone(), LiftedBy::Expired));
                            settled.push(line(record, Some(ReconcileOutcome::AlreadyLifted)));
                        }
                        _ => to_readd.push(record),
                    },
                    Err(error) => settled.push(Settled { error: Some(error), ..line(record, None) }),
                }
            }
        }
        if dry {
            settled.extend(to_lift.iter().map(|r| line(r, Some(ReconcileOutcome::WouldLift))));
            settled.extend(to_readd.iter().map(|r| line(r, Some(ReconcileOutcome::WouldReAdd))));
        } else {
            let lifted = self.invoke(provider, Action::RemoveFromGroup, &to_lift, false, context);
            for (record, result) in to_lift.iter().zip(lifted) {
                match result {
                    Ok(UserOutcome::Removed | UserOutcome::NotMember) => {
                        self.changes.push(Change::Lift(record.key.clone(), LiftedBy::Expired));
                        settled.push(line(record, Some(ReconcileOutcome::LiftedExpired)));
                    }
                    Ok(other) => settled.push(Settled { error: Some(unexpected(other)), ..line(record, None) }),
                    Err(error) => settled.push(Settled { error: Some(error), ..line(record, None) }),
                }
            }
            let added = self.invoke(provider, Action::AddToGroup, &to_readd, false, context);
            for (record, result) in to_readd.iter().zip(added) {
                match result {
                    Ok(UserOutcome::Added) => {
                        self.changes.push(Change::Reasserted(record.key.clone()));
                        settled.push(line(record, Some(ReconcileOutcome::ReAdded)));
                    }
                    Ok(UserOutcome::AlreadyMember) => {
                        self.changes.push(Change::Verified(record.key.clone()));
                        settled.push(line(record, Some(ReconcileOutcome::InPlace)));
                    }
                    Ok(other) => settled.push(Settled { error: Some(unexpected(other)), ..line(record, None) }),
                    Err(error) => settled.push(Settled { error: Some(error), ..line(record, None) }),
                }
            }
        }
        let recorded: BTreeSet<&str> = mine.iter().map(|r| r.key.user_id.as_str()).collect();
        for member in listed.members.iter().filter(|m| !recorded.contains(m.id.as_str())) {
            settled.push(Settled {
                user: member.user_name.clone().unwrap_or_else(|| format!("id:{}", member.id)),
                user_id: Some(member.id.clone()),
                outcome: Some(ReconcileOutcome::Unrecorded),
                error: None,
            });
        }
        (head(None), settled, false)
    }

    /// Runs one action for these records' users by id, in chunks within the deadline; each
    /// user's outcome or error, in order.
    fn invoke(
        &mut self,
        provider: &ProviderConfig,
        action: Action,
        records: &[&Record],
        dry_run: bool,
        context: &mut crate::services::InvocationContext,
    ) -> Vec<Result<UserOutcome, ActionError>> {
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(CHUNK) {
            let users: Vec<UserRef> = chunk.iter().map(|r| UserRef::Id(r.key.user_id.clone())).collect();
            let settings = crate::action::settings_of(&[provider], None, self.host.config().retry_after_cap_ms);
            let call = Call {
                action,
                request: MembershipRequest {
                    settings,
                    users,
                    dry_run,
                    protected: self.host.config().protected_users.clone(),
                },
            };
            (context.limits.deadline_ms, context.spent_ms) = (self.left(), self.spent());
            let invocation = self.host.runtime().invoke(&call, context);
            self.http_requests += invocation.http_requests;
            match invocation.result {
                Ok(ActionResult { providers, .. }) => {
                    let provider = providers.into_iter().next();
                    for index in 0..chunk.len() {
                        let user = provider.as_ref().and_then(|p| p.users.get(index));
                        let error = user
                            .and_then(|u| u.error.clone())
                            .or_else(|| provider.as_ref().and_then(|p| p.error.clone()));
                        outcomes.push(match (user.and_then(|u| u.outcome), error) {
                            (_, Some(error)) => Err(error),
                            (Some(outcome), None) => Ok(outcome),
                            (None, None) => Err(ActionError::new(ErrorKind::Protocol, "the plugin gave no outcome")),
                        });
                    }
                }
                Err(failure) => {
                    let error = ActionError::new(failure.kind, failure.message);
                    outcomes.extend(chunk.iter().map(|_| Err(error.clone())));
                }
            }
        }
        outcomes
    }
}

fn unexpected(outcome: UserOutcome) -> ActionError {
    ActionError::new(ErrorKind::Protocol, format!("the plugin answered {outcome}, which reconcile did not ask for"))
}

/// Whether a member is the user an intent names (as written: an email, `id:`, `external:`).
fn names_member(member: &Member, user: &str) -> bool {
    match user.strip_prefix("id:") {
        Some(id) => member.id == id,
        None => member.user_name.as_deref().is_some_and(|name| name.eq_ignore_ascii_case(user)),
    }
}

/// The reconcile document: the shape of the other actions'.
fn document(request: &ReconcileRequest, http_requests: u32, providers: Vec<(Value, Vec<Settled>, bool)>) -> Report {
    let (mut good, mut bad) = (0usize, 0usize);
    let providers: Vec<Value> = providers
        .into_iter()
        .map(|(mut head, settled, failed)| {
            bad += usize::from(failed);
            let users: Vec<Value> = settled
                .into_iter()
                .map(|line| {
                    if line.error.is_some() {
                        bad += 1;
                    } else {
                        good += 1;
                    }
                    json!({"user": line.user, "user_id": line.user_id, "outcome": line.outcome.map(ReconcileOutcome::as_str),
                           "error": line.error, "membership_verified": line.error.is_none()})
                })
                .collect();
            head["users"] = Value::Array(users);
            head
        })
        .collect();
    let status = match (good, bad) {
        (_, 0) => soar_types::model::Status::Success,
        (0, _) => soar_types::model::Status::Failed,
        _ => soar_types::model::Status::Partial,
    };
    Report {
        document: json!({
            "schema_version": SCHEMA_VERSION,
            "action": "reconcile",
            "status": status,
            "dry_run": request.dry_run,
            "correlation_id": request.correlation_id,
            "http_requests": http_requests,
            "providers": providers,
        }),
        exit_code: exit_code(status),
    }
}

/// A reconcile the plugin or the lock stopped: every provider carries the failure.
fn failure_document(request: &ReconcileRequest, providers: &[&ProviderConfig], failure: &PluginFailure) -> Report {
    let error = ActionError::new(failure.kind, failure.message.clone());
    let heads = providers
        .iter()
        .map(|p| {
            let group = GroupRef { display_name: p.restricted_group.clone(), id: p.restricted_group_id.clone() };
            (json!({"idp": p.name, "group": group, "outcome": null, "error": error}), Vec::new(), true)
        })
        .collect();
    let mut report = document(request, 0, heads);
    report.document["error"] = json!(error);
    report
}
