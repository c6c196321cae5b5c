//! Running one action for a caller: check everything first (anything wrong refuses the call
//! before a request is sent), run the plugin, and build the JSON document and exit code that
//! the contract fixes.

use crate::audit::{AuditContext, AuditLog};
use crate::cache;
use crate::config::{self, Config, ConfigError, ProviderConfig};
use crate::egress::EgressPolicy;
use crate::endpoint;
use crate::group_lock::{GroupLocks, HeldLocks, LockFailure};
use crate::http_client::{HttpClient, HttpSettings, OriginRules};
use crate::ledger::{now_ms, Change, Intent, Ledger, LiftedBy, PgLockFailure, PgLocks, RecordKey, Restriction};
use crate::runtime::{Call, LoadError, PluginFailure, PluginRuntime};
use crate::secret::Secret;
use crate::services::{InvocationContext, LogRecord, LogSink, Observer};
use crate::state::StateSpec;
use serde_json::{json, Value};
use soar_types::host::LogLevel;
use soar_types::model::{
    ActionError, ActionResult, ErrorKind, GroupRef, MembershipRequest, Provider, ProviderResult, Settings, Status,
    UserOutcome, UserRef, UserResult,
};
use soar_types::user_ref::parse_user_ref;
use soar_types::{Action, SCHEMA_VERSION};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One call, as a platform or the CLI asks for it.
#[derive(Clone, Debug)]
pub struct ActionRequest {
    pub action: Action,
    /// Users as written: `alice@corp.example`, `id:SCIM_ID`, `external:EXTERNAL_ID`.
    pub users: Vec<String>,
    pub idp: Option<String>,
    pub dry_run: bool,
    pub max_retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub correlation_id: Option<String>,
    /// add-to-group: how long the restriction lasts, in humantime's syntax (`3s`, `90m`, `24h`,
    /// `7d`); with neither this nor `until` it lasts until lifted.
    pub restrict_for: Option<String>,
    /// add-to-group: when the restriction ends, RFC 3339.
    pub restrict_until: Option<String>,
    /// add-to-group: why, for the ledger and the `restrictions` report.
    pub reason: Option<String>,
}

impl ActionRequest {
    pub fn new(action: Action) -> Self {
        ActionRequest {
            action,
            users: Vec::new(),
            idp: None,
            dry_run: false,
            max_retries: None,
            timeout_ms: None,
            correlation_id: None,
            restrict_for: None,
            restrict_until: None,
            reason: None,
        }
    }
}

/// A call refused before anything was sent (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: ErrorKind,
    pub message: String,
}

impl Refusal {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Refusal { kind, message: message.into() }
    }
}

impl From<ConfigError> for Refusal {
    fn from(error: ConfigError) -> Self {
        Refusal::new(ErrorKind::InvalidConfig, error.to_string())
    }
}

impl From<LoadError> for Refusal {
    fn from(error: LoadError) -> Self {
        Refusal::new(ErrorKind::PluginLoad, error.to_string())
    }
}

/// The printed document and the process exit code.
#[derive(Clone, Debug)]
pub struct Report {
    pub document: Value,
    pub exit_code: i32,
}

/// The exit-2 document: `{"schema_version":1,"action":..,"status":"error","error":{..}}`.
pub fn refusal_report(action: Option<&str>, refusal: &Refusal) -> Report {
    Report {
        document: json!({
            "schema_version": SCHEMA_VERSION,
            "action": action,
            "status": "error",
            "error": ActionError::new(refusal.kind, refusal.message.clone()),
        }),
        exit_code: 2,
    }
}

pub fn exit_code(status: Status) -> i32 {
    match status {
        Status::Success => 0,
        Status::Partial => 3,
        Status::Failed => 1,
    }
}

/// A loaded plugin and a checked config: what it takes to run actions.
pub struct ActionHost {
    runtime: Arc<PluginRuntime>,
    config: Config,
    http: Arc<HttpClient>,
    log: LogSink,
    /// One lock per tenant (normalised base URL, see [`tenant_key`]): changes to a tenant's
    /// restricted group from this process run one at a time, so that a membership check and the
    /// PATCH that follows are never interleaved with another invocation's (a server that stores
    /// duplicate members would otherwise get them).
    change_locks: Vec<(String, Mutex<()>)>,
    /// The same exclusion between processes, through lock files under the cache folder (or
    /// PostgreSQL's advisory locks, when that is the ledger).
    group_locks: GroupLocks,
    /// The restriction ledger: given by the embedder, or opened from `state` by the first action
    /// that needs it.
    ledger: Mutex<Option<Arc<Ledger>>>,
    /// The PostgreSQL password of `state`, when the caller keeps it (a vault).
    state_password: Option<Secret>,
}

/// Changes to providers' groups kept apart from every other change to them: in this process,
/// and in others (lock files, or PostgreSQL's advisory locks), until dropped.
pub(crate) struct Exclusion<'a> {
    _in_process: Vec<MutexGuard<'a, ()>>,
    _files: HeldLocks,
    _postgres: Option<PgLocks>,
}

impl ActionHost {
    pub fn new(runtime: Arc<PluginRuntime>, config: Config, log: LogSink) -> Self {
        let http = Arc::new(HttpClient::new(HttpSettings {
            max_response_bytes: config.limits.max_response_bytes,
            connect_timeout: Duration::from_millis(config.limits.connect_timeout_ms),
            extra_roots: config.ca_certificates.clone(),
            rate_dir: cache::cache_dir(config.cache_dir.as_deref()).map(|dir| dir.join("rate")),
            rate_horizon: Duration::from_millis(config.retry_after_cap_ms).max(Duration::from_secs(1)),
            proxy: config.proxy.clone(),
            max_concurrent_requests: config.providers.iter().map(|p| p.max_concurrent_requests).max().unwrap_or(1),
            origins: config
                .providers
                .iter()
                .map(|p| OriginRules {
                    base: p.base_url.clone(),
                    allow_private_network: p.allow_private_network,
                    requests_per_second: p.requests_per_second,
                })
                .collect(),
        }));
        let mut tenants: Vec<String> = config.providers.iter().map(tenant_key).collect();
        tenants.sort();
        tenants.dedup();
        let change_locks = tenants.into_iter().map(|key| (key, Mutex::new(()))).collect();
        let lock_dir = cache::cache_dir(config.cache_dir.as_deref()).map(|dir| dir.join("locks"));
        for warning in config.warnings.iter().chain(runtime.warnings()) {
            log(&LogRecord { level: LogLevel::Warn, message: warning.clone() });
        }
        ActionHost {
            runtime,
            config,
            http,
            log,
            change_locks,
            group_locks: GroupLocks::new(lock_dir),
            ledger: Mutex::new(None),
            state_password: None,
        }
    }

    /// The PostgreSQL password of `state`, kept in memory (never in the config file).
    pub fn with_state_password(mut self, password: Secret) -> Self {
        self.state_password = Some(password);
        self
    }

    /// Uses this ledger instead of opening the one `state` names.
    pub fn attach_ledger(&self, ledger: Arc<Ledger>) {
        self.share_rate_limit(&ledger);
        *self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(ledger);
    }

    /// The ledger, opened from `state` on first need; a refusal says why it cannot be.
    pub fn ledger(&self) -> Result<Arc<Ledger>, Refusal> {
        let mut slot = self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ledger) = slot.as_ref() {
            return Ok(ledger.clone());
        }
        let ledger = Arc::new(crate::lifecycle::open_ledger(&self.config, self.state_password.as_ref())?);
        self.share_rate_limit(&ledger);
        *slot = Some(ledger.clone());
        Ok(ledger)
    }

    /// A shared ledger (PostgreSQL) also carries the rate limit.
    fn share_rate_limit(&self, ledger: &Arc<Ledger>) {
        if ledger.is_shared() {
            self.http.share_rate_limit(ledger.clone());
        }
    }

    /// For a read: the shared ledger when `state` is PostgreSQL (for its rate limit), never an
    /// error: a store that cannot be reached costs a warning, and the machine's rate limit applies.
    fn ledger_for_reads(&self) {
        if matches!(self.config.state, Some(StateSpec::Postgres(_))) {
            if let Err(refusal) = self.ledger() {
                let message = format!("{}; this read uses this machine's rate limit only", refusal.message);
                (self.log)(&LogRecord { level: LogLevel::Warn, message });
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Runs one action and reports it; every refusal comes before the first request.
    pub fn run(&self, request: &ActionRequest) -> Report {
        self.run_watched(request, None)
    }

    /// [`Self::run`], with an observer told of every exchange and wait (a trace, a progress line).
    pub fn run_watched(&self, request: &ActionRequest, observer: Option<Arc<dyn Observer>>) -> Report {
        let prepared = self.prepare(request).and_then(|prepared| Ok((prepared, expiry_of(request, now_ms())?)));
        match prepared {
            Ok(((call, providers), expires_at)) => self.execute(request, &call, &providers, expires_at, observer),
            Err(refusal) => refusal_report(Some(request.action.as_str()), &refusal),
        }
    }

    fn prepare<'a>(&'a self, request: &ActionRequest) -> Result<(Call, Vec<&'a ProviderConfig>), Refusal> {
        let out_of_range = |why| Refusal::new(ErrorKind::InvalidInput, why);
        if let Some(problem) = request.correlation_id.as_deref().and_then(correlation_id_problem) {
            return Err(Refusal::new(ErrorKind::InvalidInput, format!("--correlation-id {problem}")));
        }
        if let Some(timeout_ms) = request.timeout_ms {
            config::DEADLINE_MS.check("--timeout-ms", timeout_ms).map_err(out_of_range)?;
        }
        if let Some(retries) = request.max_retries {
            config::MAX_RETRIES.check("--max-retries", retries.into()).map_err(out_of_range)?;
        }
        let providers = self
            .config
            .select(request.idp.as_deref())
            .map_err(|unknown| Refusal::new(ErrorKind::InvalidInput, unknown.to_string()))?;
        let settings = settings_of(&providers, request.max_retries, self.config.retry_after_cap_ms);
        let users = match request.action.takes_users() {
            true => parse_users(&request.users, self.config.max_users_per_action)?,
            false => Vec::new(),
        };
        let input = MembershipRequest {
            settings,
            users,
            dry_run: request.dry_run && request.action.takes_users(),
            protected: self.config.protected_users.clone(),
        };
        Ok((Call { action: request.action, request: input }, providers))
    }

    fn execute(
        &self,
        request: &ActionRequest,
        call: &Call,
        providers: &[&ProviderConfig],
        expires_at: Option<i64>,
        observer: Option<Arc<dyn Observer>>,
    ) -> Report {
        let action = request.action.as_str();
        let changes = call.action.changes_state();
        let dry_run = call.request.dry_run;
        let exclusive = changes && !dry_run;
        let mut audit = match self.open_audit(changes) {
            Ok(audit) => audit,
            Err(refusal) => return refusal_report(Some(action), &refusal),
        };
        let ledger = match exclusive {
            // No `state` and no data folder to put the default in (a service account without
            // HOME): the containment still runs, unrecorded, unless it asked for an end or a reason.
            true if self.config.state.is_none() && expires_at.is_none() && request.reason.is_none() => {
                let message =
                    "no restriction ledger (no state, and neither XDG_DATA_HOME nor HOME is set): this change \
                               is not recorded and reconcile will not know of it; set state"
                        .to_string();
                (self.log)(&LogRecord { level: LogLevel::Warn, message });
                None
            }
            true => match self.ledger() {
                Ok(ledger) => Some(ledger),
                Err(refusal) => return refusal_report(Some(action), &refusal),
            },
            false => {
                self.ledger_for_reads();
                None
            }
        };
        let mut context = self.context(providers, request.timeout_ms, observer);
        let started = Instant::now();
        let exclusion = match exclusive {
            true => self.exclude(providers, started, context.limits.deadline_ms),
            false => Ok(None),
        };
        let mut report = match exclusion {
            Ok(_held_until_reported) => {
                // Waiting for another change counts against this action's deadline.
                let waited_ms = started.elapsed().as_millis() as u64;
                context.limits.deadline_ms = context.limits.deadline_ms.saturating_sub(waited_ms).max(1);
                context.spent_ms = waited_ms;
                let intent = match &ledger {
                    Some(ledger) => match ledger.begin(&intent_of(request, providers, expires_at)) {
                        Ok(id) => Some(id),
                        Err(why) => {
                            let refusal = Refusal::new(ErrorKind::InvalidConfig, why.to_string());
                            return refusal_report(Some(action), &refusal);
                        }
                    },
                    None => None,
                };
                let invocation = self.runtime.invoke(call, &context);
                match invocation.result {
                    Ok(result) => {
                        let mut report = result_report(request, dry_run, invocation.http_requests, &result);
                        if let (Some(ledger), Some(intent)) = (&ledger, intent) {
                            let changes = ledger_changes(request, &result, expires_at);
                            self.settle(ledger, &[intent], &changes, &mut report);
                        }
                        report
                    }
                    // The intent stays for `reconcile`: what the plugin did before it failed is unknown.
                    Err(failure) => {
                        failure_report(request, dry_run, invocation.http_requests, &failure, providers, call)
                    }
                }
            }
            Err(failure) => failure_report(request, dry_run, 0, &failure, providers, call),
        };
        if let Some(audit) = audit.as_mut() {
            let context = AuditContext {
                action,
                correlation_id: request.correlation_id.as_deref(),
                dry_run,
                reason: request.reason.as_deref(),
                expires_at: expires_at.map(crate::lifecycle::rfc3339),
            };
            self.audit(audit, &context, &mut report);
        }
        report
    }

    /// The audit log, opened before anything is sent, for a changing action.
    pub(crate) fn open_audit(&self, changes: bool) -> Result<Option<AuditLog>, Refusal> {
        let (Some(path), true) = (&self.config.audit_log, changes) else { return Ok(None) };
        let audit = AuditLog::open(path).map_err(|why| Refusal::new(ErrorKind::InvalidConfig, why.to_string()))?;
        if audit.shared_with_others() {
            let message = format!("audit_log {} can be read by other users: chmod 600 it", path.display());
            (self.log)(&LogRecord { level: LogLevel::Warn, message });
        }
        Ok(Some(audit))
    }

    /// Appends the report's audit lines; a failure is reported in the document.
    pub(crate) fn audit(&self, audit: &mut AuditLog, context: &AuditContext, report: &mut Report) {
        if let Err(why) = audit.record(context, &report.document) {
            // The change is made; the playbook must learn that its record is not.
            (self.log)(&LogRecord { level: LogLevel::Error, message: why.to_string() });
            report.document["audit_error"] = Value::String(why.to_string());
            report.exit_code = report.exit_code.max(1);
        }
    }

    /// Writes an action's ledger changes and settles its intent; a failure is reported in the
    /// document (the intent stays, for `reconcile` to settle).
    pub(crate) fn settle(&self, ledger: &Ledger, intents: &[i64], changes: &[Change], report: &mut Report) {
        if let Err(why) = ledger.settle(intents, crate::ledger::now_ms(), changes) {
            (self.log)(&LogRecord { level: LogLevel::Error, message: why.to_string() });
            report.document["ledger_error"] = Value::String(why.to_string());
            report.exit_code = report.exit_code.max(1);
        }
    }

    /// What one invocation for these providers runs with.
    pub(crate) fn context(
        &self,
        providers: &[&ProviderConfig],
        timeout_ms: Option<u64>,
        observer: Option<Arc<dyn Observer>>,
    ) -> InvocationContext {
        let mut limits = self.config.limits.clone();
        if let Some(timeout_ms) = timeout_ms {
            limits.deadline_ms = timeout_ms;
        }
        let proxy_credentials = self.config.proxy_secrets.iter().cloned();
        InvocationContext {
            egress: Arc::new(
                EgressPolicy::for_providers(providers.iter().copied()).with_other_secrets(proxy_credentials),
            ),
            http: self.http.clone(),
            limits,
            log: self.log.clone(),
            observer,
            spent_ms: 0,
        }
    }

    /// Keeps every other change to these providers' groups out until dropped: in this process,
    /// then in others (PostgreSQL's advisory locks when that is the ledger, else lock files),
    /// waited for until the deadline. Locks are taken in key order, so two actions never wait on
    /// each other in a cycle. A lock folder that cannot be used costs only the exclusion between
    /// processes, with a warning.
    pub(crate) fn exclude(
        &self,
        providers: &[&ProviderConfig],
        started: Instant,
        deadline_ms: u64,
    ) -> Result<Option<Exclusion<'_>>, PluginFailure> {
        let in_process = self
            .change_locks
            .iter()
            .filter(|(key, _)| providers.iter().any(|p| &tenant_key(p) == key))
            .map(|(_, lock)| lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
            .collect();
        let deadline = started + Duration::from_millis(deadline_ms);
        let timed_out = || {
            PluginFailure {
            kind: ErrorKind::Timeout,
            message: format!(
                "another soar-host process kept changing this group for the whole deadline of {deadline_ms} ms; nothing was sent: run the action again, or give it a longer --timeout-ms"
            ),
        }
        };
        let shared =
            self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone().filter(|l| l.is_shared());
        if let Some(ledger) = shared {
            let tenants: Vec<String> = providers.iter().map(|p| tenant_key(p)).collect();
            return match ledger.lock_tenants(&tenants, deadline) {
                Ok(held) => {
                    Ok(Some(Exclusion { _in_process: in_process, _files: HeldLocks::none(), _postgres: Some(held) }))
                }
                Err(PgLockFailure::TimedOut) => Err(timed_out()),
                Err(PgLockFailure::Failed(why)) => {
                    Err(PluginFailure { kind: ErrorKind::Transport, message: format!("{why}; nothing was sent") })
                }
            };
        }
        let keys = providers.iter().map(|p| GroupLocks::key(&tenant_key(p))).collect();
        let files = match self.group_locks.acquire(keys, deadline) {
            Ok(held) => held,
            Err(LockFailure::Unavailable(why)) => {
                let message = format!(
                    "the group lock folder cannot be used ({why}); changes from other soar-host processes are not kept apart: set cache_dir to a writable folder"
                );
                (self.log)(&LogRecord { level: LogLevel::Warn, message });
                HeldLocks::none()
            }
            Err(LockFailure::TimedOut) => return Err(timed_out()),
        };
        Ok(Some(Exclusion { _in_process: in_process, _files: files, _postgres: None }))
    }
}

/// The settings the plugin gets for these providers (no tokens: the host keeps them).
pub(crate) fn settings_of(
    providers: &[&ProviderConfig],
    max_retries: Option<u32>,
    retry_after_cap_ms: u64,
) -> Settings {
    Settings {
        providers: providers
            .iter()
            .map(|p| Provider {
                name: p.name.clone(),
                base_url: p.base_url.to_string(),
                restricted_group: p.restricted_group.clone(),
                restricted_group_id: p.restricted_group_id.clone(),
                profile: p.profile,
                max_retries: max_retries.unwrap_or(p.max_retries),
            })
            .collect(),
        retry_after_cap_ms,
    }
}

/// The longest a restriction may be given (`--for`, `--until`): a year.
pub const MAX_RESTRICTION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The longest `--reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// When an add-to-group's restriction ends (milliseconds since the epoch), from `--for` or
/// `--until`; `None` lasts until lifted. Refused: both at once, either for another action, zero,
/// negative, past or beyond [`MAX_RESTRICTION`], and a reason that is not one line.
pub fn expiry_of(request: &ActionRequest, now: i64) -> Result<Option<i64>, Refusal> {
    let refuse = |message: String| Refusal::new(ErrorKind::InvalidInput, message);
    let max_days = MAX_RESTRICTION.as_secs() / 86_400;
    if let Some(reason) = &request.reason {
        if reason.trim().is_empty() || reason.chars().any(char::is_control) || reason.chars().count() > MAX_REASON_CHARS
        {
            return Err(refuse(format!("--reason must be one line of 1 to {MAX_REASON_CHARS} characters")));
        }
    }
    let given = request.restrict_for.is_some() || request.restrict_until.is_some() || request.reason.is_some();
    if given && request.action != Action::AddToGroup {
        return Err(refuse(format!("--for, --until and --reason belong to add-to-group, not {}", request.action)));
    }
    let ends = match (&request.restrict_for, &request.restrict_until) {
        (Some(_), Some(_)) => return Err(refuse("give --for or --until, not both".into())),
        (None, None) => return Ok(None),
        (Some(text), None) => {
            let length = humantime::parse_duration(text.trim()).map_err(|why| {
                refuse(format!("--for {}: {why}; give a duration such as 90m, 24h or 7d", text.escape_debug()))
            })?;
            if length.is_zero() || length > MAX_RESTRICTION {
                return Err(refuse(format!(
                    "--for {}: a restriction lasts more than nothing and at most {max_days} days",
                    text.escape_debug()
                )));
            }
            now.saturating_add(length.as_millis() as i64)
        }
        (None, Some(text)) => {
            let until: jiff::Timestamp = text.trim().parse().map_err(|_| {
                refuse(format!("--until {}: give an RFC 3339 time such as 2026-12-31T18:00:00Z", text.escape_debug()))
            })?;
            until.as_millisecond()
        }
    };
    if ends <= now {
        return Err(refuse("the restriction would end in the past: give a later --until".into()));
    }
    if ends - now > MAX_RESTRICTION.as_millis() as i64 {
        return Err(refuse(format!("a restriction ends at most {max_days} days from now")));
    }
    Ok(Some(ends))
}

/// The intent of a change, written before anything is sent.
fn intent_of(request: &ActionRequest, providers: &[&ProviderConfig], expires_at: Option<i64>) -> Intent {
    Intent {
        id: 0,
        action: request.action.as_str().to_string(),
        idps: providers.iter().map(|p| p.name.clone()).collect(),
        users: request.users.iter().map(|user| user.trim().to_string()).collect(),
        reason: request.reason.clone(),
        correlation_id: request.correlation_id.clone(),
        expires_at,
        created_at: now_ms(),
    }
}

/// What an action's result changes in the ledger: a user add-to-group leaves in the group is
/// restricted (a membership that was there before counts as such for a new record); a user
/// remove-from-group leaves out has the restriction lifted.
fn ledger_changes(request: &ActionRequest, result: &ActionResult, expires_at: Option<i64>) -> Vec<Change> {
    let mut changes = Vec::new();
    for provider in &result.providers {
        let Some(group_id) = provider.group.as_ref().and_then(|group| group.id.clone()) else { continue };
        if provider.error.is_some() {
            continue;
        }
        for user in &provider.users {
            let (Some(user_id), Some(outcome)) = (&user.user_id, user.outcome) else { continue };
            let key = RecordKey { idp: provider.idp.clone(), group_id: group_id.clone(), user_id: user_id.clone() };
            match (request.action, outcome) {
                (Action::AddToGroup, UserOutcome::Added | UserOutcome::AlreadyMember) => {
                    changes.push(Change::Restrict(Restriction {
                        key,
                        user: user.user.clone(),
                        user_name: user.user.contains('@').then(|| user.user.clone()),
                        reason: request.reason.clone(),
                        correlation_id: request.correlation_id.clone(),
                        expires_at,
                        preexisting: outcome == UserOutcome::AlreadyMember,
                    }))
                }
                (Action::RemoveFromGroup, UserOutcome::Removed | UserOutcome::NotMember) => {
                    changes.push(Change::Lift(key, LiftedBy::RemoveFromGroup))
                }
                _ => {}
            }
        }
    }
    changes
}

/// The tenant a provider changes, however its base URL is written ([`endpoint::tenant`]). Every
/// spelling of the group (by name in any case, or by id) of one provider locks the same key: a
/// provider has one restricted group.
pub fn tenant_key(provider: &ProviderConfig) -> String {
    endpoint::tenant(&provider.base_url)
}

/// Why a correlation id (echoed in every log line) cannot be used, if it cannot.
pub fn correlation_id_problem(value: &str) -> Option<&'static str> {
    let usable = !value.is_empty() && !value.chars().any(char::is_control) && value.chars().count() <= 200;
    (!usable).then_some("must be one line of at most 200 characters")
}

/// Parses and checks every user; any invalid one refuses the whole call.
pub fn parse_users(users: &[String], max_users: u64) -> Result<Vec<UserRef>, Refusal> {
    if users.is_empty() {
        return Err(Refusal::new(
            ErrorKind::InvalidInput,
            "no users given: name at least one with --user USER or --users-file FILE",
        ));
    }
    if users.len() as u64 > max_users {
        return Err(Refusal::new(
            ErrorKind::InvalidInput,
            format!(
                "{} users in one call is more than max_users_per_action ({max_users}); split the call or raise the limit",
                users.len()
            ),
        ));
    }
    users
        .iter()
        .map(|user| {
            let parsed = parse_user_ref(user.trim()).map_err(|why| Refusal::new(ErrorKind::InvalidInput, why.0))?;
            if let UserRef::Id(id) = &parsed {
                if let Some(problem) = endpoint::id_problem(id) {
                    let message =
                        format!("{user}: the id {problem}; name the user by its SCIM id as the server gives it");
                    return Err(Refusal::new(ErrorKind::InvalidInput, message));
                }
            }
            Ok(parsed)
        })
        .collect()
}

fn result_report(request: &ActionRequest, dry_run: bool, http_requests: u32, result: &ActionResult) -> Report {
    let document = json!({
        "schema_version": SCHEMA_VERSION,
        "action": request.action.as_str(),
        "status": result.status,
        "dry_run": dry_run,
        "correlation_id": request.correlation_id,
        "http_requests": http_requests,
        "providers": result.providers,
    });
    Report { document, exit_code: exit_code(result.status) }
}

/// A plugin that failed (timeout, memory, panic, trap): every provider carries the failure.
fn failure_report(
    request: &ActionRequest,
    dry_run: bool,
    http_requests: u32,
    failure: &PluginFailure,
    providers: &[&ProviderConfig],
    call: &Call,
) -> Report {
    let error = ActionError::new(failure.kind, failure.message.clone());
    let users: Vec<UserResult> = call.request.users.iter().map(UserResult::pending).collect();
    let providers: Vec<ProviderResult> = providers
        .iter()
        .map(|p| ProviderResult {
            idp: p.name.clone(),
            group: Some(GroupRef { display_name: p.restricted_group.clone(), id: p.restricted_group_id.clone() }),
            outcome: None,
            error: Some(error.clone()),
            users: users.clone(),
        })
        .collect();
    let result = ActionResult { status: Status::Failed, providers };
    let mut report = result_report(request, dry_run, http_requests, &result);
    report.document["error"] = json!(error);
    report
}
