//! The restriction ledger: what the host changed, why, and until when. One current record per
//! provider, group and user (the history stays in the audit log), kept in SQLite on one machine or
//! PostgreSQL when SOAR workers span several; PostgreSQL then also carries the change lock (an
//! advisory lock per tenant) and the rate limit (a row per origin), so workers on different
//! machines exclude each other and share one rate per tenant.
//!
//! A change writes its intent before anything is sent and settles it (records written, intent
//! deleted) in one transaction after: a process that dies in between leaves the intent, which the
//! next `reconcile` settles against the group's members. Schema migrations are versioned and run
//! under a lock, so processes starting together migrate once.

use crate::rate_limit::TooLate;
use soar_host_policy::rate::{self, Reservation};
use soar_host_policy::secret::Secret;
use soar_host_policy::state::{PostgresSpec, StateSpec};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a SQLite writer waits for another process's transaction.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite's own text for SQLITE_BUSY.
const SQLITE_BUSY_TEXT: &str = "database is locked";
/// How often a held advisory lock is tried again.
const LOCK_POLL: Duration = Duration::from_millis(10);
/// The advisory lock migrations run under.
const MIGRATION_LOCK: i64 = 0x736f_6172_6d69_6772; // "soarmigr"

/// Why the ledger cannot be used; never with a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    #[error("the restriction ledger {shown} cannot be opened: {why}; fix the state setting or the store")]
    Open { shown: String, why: String },
    #[error("the restriction ledger {shown} failed: {why}")]
    Failed { shown: String, why: String },
}

/// Milliseconds since the Unix epoch, the ledger's times.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// What lifted a restriction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiftedBy {
    RemoveFromGroup,
    Expired,
}

impl LiftedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            LiftedBy::RemoveFromGroup => "remove-from-group",
            LiftedBy::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<LiftedBy> {
        [LiftedBy::RemoveFromGroup, LiftedBy::Expired].into_iter().find(|by| by.as_str() == text)
    }
}

/// The state of a record at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordState {
    /// In force.
    Active,
    /// Past its expiry, not yet settled by `reconcile`.
    Expired,
    Lifted,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Active => "active",
            RecordState::Expired => "expired",
            RecordState::Lifted => "lifted",
        }
    }
}

/// Which record: a provider, its group and a SCIM user.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub idp: String,
    pub group_id: String,
    pub user_id: String,
}

/// One restriction as the ledger holds it; times in milliseconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: RecordKey,
    /// The user as the caller named them first (`alice@corp.example`, `id:...`).
    pub user: String,
    pub user_name: Option<String>,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
    pub restricted_at: i64,
    pub expires_at: Option<i64>,
    pub lifted_at: Option<i64>,
    pub lifted_by: Option<LiftedBy>,
    /// The user was in the group before the product restricted them: expiry leaves them there.
    pub preexisting: bool,
    pub last_verified_at: Option<i64>,
    /// Times `reconcile` added the user back after the group lost them.
    pub reasserted: i64,
}

impl Record {
    pub fn state(&self, now: i64) -> RecordState {
        match (self.lifted_at, self.expires_at) {
            (Some(_), _) => RecordState::Lifted,
            (None, Some(expiry)) if expiry <= now => RecordState::Expired,
            (None, _) => RecordState::Active,
        }
    }
}

/// A restriction to record: new, renewed (a later expiry wins, none beats any) or made again
/// after it was lifted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restriction {
    pub key: RecordKey,
    pub user: String,
    pub user_name: Option<String>,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
    pub expires_at: Option<i64>,
    /// The user was already in the group; counts only for a record made now.
    pub preexisting: bool,
}

/// One change to the ledger, applied with the others of its action in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    Restrict(Restriction),
    Lift(RecordKey, LiftedBy),
    /// Seen in the group as recorded.
    Verified(RecordKey),
    /// Added back after the group lost the user.
    Reasserted(RecordKey),
}

/// A change that is about to be made: written before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub id: i64,
    pub action: String,
    pub idps: Vec<String>,
    /// The users as written.
    pub users: Vec<String>,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

enum Store {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres { client: Mutex<postgres::Client> },
}

/// An open ledger. Thread-safe; a host keeps one.
pub struct Ledger {
    store: Store,
    shown: String,
}

/// Advisory locks held on the ledger's session: released when the guard drops, or by the
/// server when the session ends (as it does when the process dies). Actions of one process on
/// one tenant take turns before they get here, so the session never holds a lock twice.
pub struct PgLocks {
    ledger: Arc<Ledger>,
    keys: Vec<i64>,
}

impl Drop for PgLocks {
    fn drop(&mut self) {
        if let Store::Postgres { client, .. } = &self.ledger.store {
            let mut client = client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for key in self.keys.iter().rev() {
                // A failure leaves the lock to the session's end.
                let _ = client.execute_typed("SELECT pg_advisory_unlock($1)", &[pg_int(key)]);
            }
        }
    }
}

/// Why advisory locks were not taken.
#[derive(Debug)]
pub enum PgLockFailure {
    TimedOut,
    Failed(LedgerError),
}

const MIGRATIONS: [&str; 1] = ["CREATE TABLE soar_restrictions (
        idp TEXT NOT NULL,
        group_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user_ref TEXT NOT NULL,
        user_name TEXT,
        reason TEXT,
        correlation_id TEXT,
        restricted_at BIGINT NOT NULL,
        expires_at BIGINT,
        lifted_at BIGINT,
        lifted_by TEXT,
        preexisting BOOLEAN NOT NULL,
        last_verified_at BIGINT,
        reasserted BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (idp, group_id, user_id)
    );
    CREATE TABLE soar_intents (
        id INTEGER_KEY,
        action TEXT NOT NULL,
        idps TEXT NOT NULL,
        users TEXT NOT NULL,
        reason TEXT,
        correlation_id TEXT,
        expires_at BIGINT,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE soar_rate_slots (origin TEXT PRIMARY KEY, next_ns BIGINT NOT NULL);"];

/// A restriction's upsert: new, renewed, or made again after it was lifted.
const RESTRICT: &str =
    "INSERT INTO soar_restrictions (idp, group_id, user_id, user_ref, user_name, reason, correlation_id,
        restricted_at, expires_at, lifted_at, lifted_by, preexisting, last_verified_at, reasserted)
    VALUES (P1, P2, P3, P4, P5, P6, P7, P8, P9, NULL, NULL, P10, P8, 0)
    ON CONFLICT (idp, group_id, user_id) DO UPDATE SET
        user_name = COALESCE(excluded.user_name, soar_restrictions.user_name),
        reason = COALESCE(excluded.reason, soar_restrictions.reason),
        correlation_id = COALESCE(excluded.correlation_id, soar_restrictions.correlation_id),
        restricted_at = CASE WHEN soar_restrictions.lifted_at IS NULL THEN soar_restrictions.restricted_at
                             ELSE excluded.restricted_at END,
        expires_at = CASE WHEN soar_restrictions.lifted_at IS NOT NULL THEN excluded.expires_at
                          WHEN soar_restrictions.expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL
                          WHEN soar_restrictions.expires_at > excluded.expires_at THEN soar_restrictions.expires_at
                          ELSE excluded.expires_at END,
        preexisting = CASE WHEN soar_restrictions.lifted_at IS NULL THEN soar_restrictions.preexisting
                           ELSE excluded.preexisting END,
        user_ref = CASE WHEN soar_restrictions.lifted_at IS NULL THEN soar_restrictions.user_ref
                        ELSE excluded.user_ref END,
        lifted_at = NULL,
        lifted_by = NULL,
        last_verified_at = excluded.last_verified_at";
const LIFT: &str = "UPDATE soar_restrictions SET lifted_at = P4, lifted_by = P5
    WHERE idp = P1 AND group_id = P2 AND user_id = P3 AND lifted_at IS NULL";
const VERIFIED: &str =
    "UPDATE soar_restrictions SET last_verified_at = P4 WHERE idp = P1 AND group_id = P2 AND user_id = P3";
const REASSERTED: &str = "UPDATE soar_restrictions SET last_verified_at = P4, reasserted = reasserted + 1
    WHERE idp = P1 AND group_id = P2 AND user_id = P3";
const RECORDS: &str = "SELECT idp, group_id, user_id, user_ref, user_name, reason, correlation_id, restricted_at,
        expires_at, lifted_at, lifted_by, preexisting, last_verified_at, reasserted
    FROM soar_restrictions";
const INTENTS: &str = "SELECT id, action, idps, users, reason, correlation_id, expires_at, created_at
    FROM soar_intents ORDER BY id";

/// A PostgreSQL parameter with its type, so that a statement costs one round trip (the
/// extended protocol's parse, bind and execute pipelined) instead of three.
type PgParam<'a> = (&'a (dyn postgres::types::ToSql + Sync), postgres::types::Type);

fn pg_text(value: &(dyn postgres::types::ToSql + Sync)) -> PgParam<'_> {
    (value, postgres::types::Type::TEXT)
}

fn pg_int(value: &(dyn postgres::types::ToSql + Sync)) -> PgParam<'_> {
    (value, postgres::types::Type::INT8)
}

/// A statement with `PN` placeholders in the backend's spelling (`?N` or `$N`).
fn sql(statement: &str, postgres: bool) -> String {
    let mut text = statement.to_string();
    for n in (1..=12).rev() {
        text = text.replace(&format!("P{n}"), &if postgres { format!("${n}") } else { format!("?{n}") });
    }
    text
}

impl Ledger {
    /// Opens (creating and migrating) the ledger `spec` names; `password` is PostgreSQL's.
    pub fn open(spec: &StateSpec, password: Option<Secret>, connect_timeout: Duration) -> Result<Ledger, LedgerError> {
        match spec {
            StateSpec::Sqlite(path) => Self::open_sqlite(path),
            StateSpec::Postgres(pg) => Self::open_postgres(pg, password, connect_timeout),
            #[allow(unreachable_patterns)]
            _ => Err(LedgerError::Open { shown: "state".into(), why: "an unknown kind of store".into() }),
        }
    }

    /// Opens a SQLite ledger, trying again while other processes hold it: switching a fresh
    /// file to WAL and its first migration take locks that SQLite's busy handler does not wait on.
    fn open_sqlite(path: &Path) -> Result<Ledger, LedgerError> {
        let started = Instant::now();
        loop {
            match Self::try_open_sqlite(path) {
                Err(LedgerError::Open { why, .. })
                    if why.contains(SQLITE_BUSY_TEXT) && started.elapsed() < SQLITE_BUSY_TIMEOUT =>
                {
                    std::thread::sleep(LOCK_POLL);
                }
                opened => return opened,
            }
        }
    }

    fn try_open_sqlite(path: &Path) -> Result<Ledger, LedgerError> {
        let shown = format!("sqlite:{}", path.display());
        let open = |why: String| LedgerError::Open { shown: shown.clone(), why };
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            crate::cache::create_private_dir(folder)
                .map_err(|e| open(format!("cannot make {}: {e}", folder.display())))?;
        }
        if let Ok(existing) = std::fs::symlink_metadata(path) {
            if !existing.is_file() {
                return Err(open("it is not a regular file".into()));
            }
        }
        let fresh = !path.exists();
        let connection = rusqlite::Connection::open(path).map_err(|e| open(e.to_string()))?;
        #[cfg(unix)]
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        connection.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(|e| open(e.to_string()))?;
        let mode: String =
            connection.pragma_query_value(None, "journal_mode", |row| row.get(0)).map_err(|e| open(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            connection.pragma_update(None, "journal_mode", "WAL").map_err(|e| open(e.to_string()))?;
        }
        let ledger = Ledger { store: Store::Sqlite(Mutex::new(connection)), shown: shown.clone() };
        ledger.migrate().map_err(|error| match error {
            LedgerError::Failed { why, .. } => open(why),
            other => other,
        })?;
        Ok(ledger)
    }

    fn open_postgres(spec: &PostgresSpec, password: Option<Secret>, timeout: Duration) -> Result<Ledger, LedgerError> {
        let shown = spec.shown();
        let mut config = postgres::Config::new();
        config
            .host(&spec.host)
            .port(spec.port)
            .user(&spec.user)
            .dbname(&spec.dbname)
            // The process id lets a DBA (and a test) tell which soar-host holds a lock.
            .application_name(&format!("soar-host {}", std::process::id()))
            .connect_timeout(timeout);
        // An address needs no lookup (a resolver thread and the system's name service, which
        // cost a one-shot command more than the connection itself).
        if let Ok(address) = spec.host.parse::<std::net::IpAddr>() {
            config.hostaddr(address);
        }
        if let Some(password) = &password {
            config.password(password.expose());
        }
        let client = config
            .connect(postgres::NoTls)
            .map_err(|e| LedgerError::Open { shown: shown.clone(), why: postgres_why(&e) })?;
        let ledger = Ledger { store: Store::Postgres { client: Mutex::new(client) }, shown: shown.clone() };
        ledger.migrate().map_err(|error| match error {
            LedgerError::Failed { why, .. } => LedgerError::Open { shown: shown.clone(), why },
            other => other,
        })?;
        Ok(ledger)
    }

    /// `sqlite:PATH` or `postgres://user@host:port/db`, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the ledger is shared between machines (PostgreSQL), so that it also carries the
    /// change lock and the rate limit.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Postgres { .. })
    }

    fn failed(&self, why: impl std::fmt::Display) -> LedgerError {
        LedgerError::Failed { shown: self.shown.clone(), why: why.to_string() }
    }

    fn sqlite<'c>(&self, connection: &'c Mutex<rusqlite::Connection>) -> MutexGuard<'c, rusqlite::Connection> {
        connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn migrate(&self) -> Result<(), LedgerError> {
        match &self.store {
            Store::Sqlite(connection) => {
                let mut connection = self.sqlite(connection);
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| self.failed(e))?;
                let version: i64 =
                    tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(|e| self.failed(e))?;
                for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                    tx.execute_batch(&migration.replace("INTEGER_KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"))
                        .map_err(|e| self.failed(e))?;
                    tx.pragma_update(None, "user_version", (index + 1) as i64).map_err(|e| self.failed(e))?;
                }
                tx.commit().map_err(|e| self.failed(e))
            }
            Store::Postgres { client, .. } => {
                let mut client = client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                // Current already (the usual case): one round trip, no lock.
                let current = client
                    .query_typed_opt("SELECT version FROM soar_schema", &[])
                    .ok()
                    .flatten()
                    .is_some_and(|row| row.get::<_, i32>(0) == MIGRATIONS.len() as i32);
                if current {
                    return Ok(());
                }
                let mut tx = client.transaction().map_err(|e| self.failed(postgres_why(&e)))?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                    .map_err(|e| self.failed(postgres_why(&e)))?;
                tx.batch_execute("CREATE TABLE IF NOT EXISTS soar_schema (version INTEGER NOT NULL)")
                    .map_err(|e| self.failed(postgres_why(&e)))?;
                let version: i32 = tx
                    .query_opt("SELECT version FROM soar_schema", &[])
                    .map_err(|e| self.failed(postgres_why(&e)))?
                    .map(|row| row.get(0))
                    .unwrap_or(0);
                for migration in MIGRATIONS.iter().skip(version as usize) {
                    tx.batch_execute(&migration.replace("INTEGER_KEY", "BIGSERIAL PRIMARY KEY"))
                        .map_err(|e| self.failed(postgres_why(&e)))?;
                }
                tx.execute("DELETE FROM soar_schema", &[]).map_err(|e| self.failed(postgres_why(&e)))?;
                tx.execute("INSERT INTO soar_schema (version) VALUES ($1)", &[&(MIGRATIONS.len() as i32)])
                    .map_err(|e| self.failed(postgres_why(&e)))?;
                tx.commit().map_err(|e| self.failed(postgres_why(&e)))
            }
        }
    }

    /// Writes the intent of a change before anything is sent; returns its id.
    pub fn begin(&self, intent: &Intent) -> Result<i64, LedgerError> {
        let idps = serde_json::to_string(&intent.idps).expect("names serialise");
        let users = serde_json::to_string(&intent.users).expect("users serialise");
        let insert = "INSERT INTO soar_intents (action, idps, users, reason, correlation_id, expires_at, created_at)
            VALUES (P1, P2, P3, P4, P5, P6, P7)";
        match &self.store {
            Store::Sqlite(connection) => {
                let connection = self.sqlite(connection);
                connection
                    .execute(
                        &sql(insert, false),
                        rusqlite::params![
                            intent.action,
                            idps,
                            users,
                            intent.reason,
                            intent.correlation_id,
                            intent.expires_at,
                            intent.created_at
                        ],
                    )
                    .map_err(|e| self.failed(e))?;
                Ok(connection.last_insert_rowid())
            }
            Store::Postgres { client, .. } => {
                let mut client = client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let row = client
                    .query_typed_one(
                        &format!("{} RETURNING id", sql(insert, true)),
                        &[
                            pg_text(&intent.action),
                            pg_text(&idps),
                            pg_text(&users),
                            pg_text(&intent.reason),
                            pg_text(&intent.correlation_id),
                            pg_int(&intent.expires_at),
                            pg_int(&intent.created_at),
                        ],
                    )
                    .map_err(|e| self.failed(postgres_why(&e)))?;
                Ok(row.get(0))
            }
        }
    }

    /// Applies the changes of one action and deletes the intents it settled, in one transaction.
    pub fn settle(&self, intents: &[i64], now: i64, changes: &[Change]) -> Result<(), LedgerError> {
        match &self.store {
            Store::Sqlite(connection) => {
                let mut connection = self.sqlite(connection);
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| self.failed(e))?;
                for change in changes {
                    let done = match change {
                        Change::Restrict(r) => tx.execute(
                            &sql(RESTRICT, false),
                            rusqlite::params![
                                r.key.idp,
                                r.key.group_id,
                                r.key.user_id,
                                r.user,
                                r.user_name,
                                r.reason,
                                r.correlation_id,
                                now,
                                r.expires_at,
                                r.preexisting
                            ],
                        ),
                        Change::Lift(key, by) => tx.execute(
                            &sql(LIFT, false),
                            rusqlite::params![key.idp, key.group_id, key.user_id, now, by.as_str()],
                        ),
                        Change::Verified(key) => tx
                            .execute(&sql(VERIFIED, false), rusqlite::params![key.idp, key.group_id, key.user_id, now]),
                        Change::Reasserted(key) => tx.execute(
                            &sql(REASSERTED, false),
                            rusqlite::params![key.idp, key.group_id, key.user_id, now],
                        ),
                    };
                    done.map_err(|e| self.failed(e))?;
                }
                for id in intents {
                    tx.execute("DELETE FROM soar_intents WHERE id = ?1", [id]).map_err(|e| self.failed(e))?;
                }
                tx.commit().map_err(|e| self.failed(e))
            }
            Store::Postgres { client, .. } => {
                let mut client = client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut tx = client.transaction().map_err(|e| self.failed(postgres_why(&e)))?;
                for change in changes {
                    let done = match change {
                        Change::Restrict(r) => tx.execute_typed(
                            &sql(RESTRICT, true),
                            &[
                                pg_text(&r.key.idp),
                                pg_text(&r.key.group_id),
                                pg_text(&r.key.user_id),
                                pg_text(&r.user),
                                pg_text(&r.user_name),
                                pg_text(&r.reason),
                                pg_text(&r.correlation_id),
                                pg_int(&now),
                                pg_int(&r.expires_at),
                                (&r.preexisting, postgres::types::Type::BOOL),
                            ],
                        ),
                        Change::Lift(key, by) => tx.execute_typed(
                            &sql(LIFT, true),
                            &[
                                pg_text(&key.idp),
                                pg_text(&key.group_id),
                                pg_text(&key.user_id),
                                pg_int(&now),
                                pg_text(&by.as_str()),
                            ],
                        ),
                        Change::Verified(key) => tx.execute_typed(
                            &sql(VERIFIED, true),
                            &[pg_text(&key.idp), pg_text(&key.group_id), pg_text(&key.user_id), pg_int(&now)],
                        ),
                        Change::Reasserted(key) => tx.execute_typed(
                            &sql(REASSERTED, true),
                            &[pg_text(&key.idp), pg_text(&key.group_id), pg_text(&key.user_id), pg_int(&now)],
                        ),
                    };
                    done.map_err(|e| self.failed(postgres_why(&e)))?;
                }
                for id in intents {
                    tx.execute_typed("DELETE FROM soar_intents WHERE id = $1", &[pg_int(id)])
                        .map_err(|e| self.failed(postgres_why(&e)))?;
                }
                tx.commit().map_err(|e| self.failed(postgres_why(&e)))
            }
        }
    }

    /// Every record, oldest first.
    /// Every record, in the order they were restricted (sorted here: cheaper than in SQL).
    pub fn records(&self) -> Result<Vec<Record>, LedgerError> {
        let mut records = self.unordered_records()?;
        records.sort_unstable_by(|a, b| (a.restricted_at, &a.key).cmp(&(b.restricted_at, &b.key)));
        Ok(records)
    }

    fn unordered_records(&self) -> Result<Vec<Record>, LedgerError> {
        // The closure picks the reader for SQLite's row, whose lifetime a fn item cannot name.
        self.select(RECORDS, |row| record_of(row), record_of)
    }

    /// The intents no action settled (a process that died between its change and its record).
    pub fn intents(&self) -> Result<Vec<Intent>, LedgerError> {
        self.select(INTENTS, |row| intent_of(row), intent_of)
    }

    /// Every row of a query without parameters, each read by the store's reader; PostgreSQL's
    /// rows are streamed, each made a value as it arrives.
    fn select<T>(
        &self,
        query: &str,
        from_sqlite: fn(&rusqlite::Row<'_>) -> Result<T, rusqlite::Error>,
        from_postgres: fn(&postgres::Row) -> Result<T, postgres::Error>,
    ) -> Result<Vec<T>, LedgerError> {
        match &self.store {
            Store::Sqlite(connection) => {
                let connection = self.sqlite(connection);
                let mut statement = connection.prepare(query).map_err(|e| self.failed(e))?;
                let rows = statement.query_map([], from_sqlite).map_err(|e| self.failed(e))?;
                rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.failed(e))
            }
            Store::Postgres { client, .. } => {
                let mut client = client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let fail = |e: postgres::Error| self.failed(postgres_why(&e));
                let no_params: [PgParam<'_>; 0] = [];
                let mut rows = client.query_typed_raw(query, no_params).map_err(fail)?;
                let mut values = Vec::new();
                while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows).map_err(fail)? {
                    values.push(from_postgres(&row).map_err(fail)?);
                }
                Ok(values)
            }
        }
    }

    /// Takes the tenants' advisory locks (PostgreSQL) on a session of their own, in key order,
    /// waiting until `deadline` at most.
    pub fn lock_tenants(self: Arc<Self>, tenants: &[String], deadline: Instant) -> Result<PgLocks, PgLockFailure> {
        let Store::Postgres { client, .. } = &self.store else {
            return Err(PgLockFailure::Failed(self.failed("advisory locks need a PostgreSQL state")));
        };
        let mut keys: Vec<i64> = tenants.iter().map(|tenant| advisory_key(tenant)).collect();
        keys.sort_unstable();
        keys.dedup();
        // Taken one by one into the guard, so that a failure part way releases those taken.
        let mut held = PgLocks { ledger: self.clone(), keys: Vec::with_capacity(keys.len()) };
        for key in keys {
            loop {
                let taken: bool = client
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .query_typed_one("SELECT pg_try_advisory_lock($1)", &[pg_int(&key)])
                    .map_err(|e| PgLockFailure::Failed(self.failed(postgres_why(&e))))?
                    .get(0);
                if taken {
                    held.keys.push(key);
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(PgLockFailure::TimedOut);
                }
                std::thread::sleep(LOCK_POLL.min(deadline - now));
            }
        }
        Ok(held)
    }

    /// Reserves the next rate-limit slot of `origin` in the shared table (PostgreSQL's clock,
    /// so every machine spaces alike); the arithmetic is [`rate::reserve`]'s.
    pub fn reserve_slot(
        &self,
        origin: &str,
        interval: u128,
        budget: Duration,
        horizon: Duration,
    ) -> Result<Result<Reservation, TooLate>, LedgerError> {
        let Store::Postgres { client, .. } = &self.store else {
            return Err(self.failed("a shared rate limit needs a PostgreSQL state"));
        };
        let mut client = client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let fail = |e: postgres::Error| self.failed(postgres_why(&e));
        let mut tx = client.transaction().map_err(fail)?;
        tx.execute_typed(
            "INSERT INTO soar_rate_slots (origin, next_ns) VALUES ($1, 0) ON CONFLICT (origin) DO NOTHING",
            &[pg_text(&origin)],
        )
        .map_err(fail)?;
        let row = tx
            .query_typed_one(
                "SELECT next_ns, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT * 1000
                 FROM soar_rate_slots WHERE origin = $1 FOR UPDATE",
                &[pg_text(&origin)],
            )
            .map_err(fail)?;
        let (next, now): (i64, i64) = (row.get(0), row.get(1));
        let reserved = rate::reserve(next.max(0) as u128, now.max(0) as u128, interval, budget, horizon);
        if let Ok(reservation) = &reserved {
            let following = reservation.following.min(i64::MAX as u128) as i64;
            tx.execute_typed(
                "UPDATE soar_rate_slots SET next_ns = $2 WHERE origin = $1",
                &[pg_text(&origin), pg_int(&following)],
            )
            .map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        Ok(reserved)
    }
}

/// A row of either store, read by column.
trait RowRead {
    type Error;
    fn column<T: FromBoth>(&self, index: usize) -> Result<T, Self::Error>;
}

/// A column type both stores read.
trait FromBoth: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a> {}
impl<T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>> FromBoth for T {}

impl RowRead for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn column<T: FromBoth>(&self, index: usize) -> Result<T, rusqlite::Error> {
        self.get(index)
    }
}

impl RowRead for postgres::Row {
    type Error = postgres::Error;
    fn column<T: FromBoth>(&self, index: usize) -> Result<T, postgres::Error> {
        self.try_get(index)
    }
}

/// A record from a row of [`RECORDS`].
fn record_of<R: RowRead>(row: &R) -> Result<Record, R::Error> {
    Ok(Record {
        key: RecordKey { idp: row.column(0)?, group_id: row.column(1)?, user_id: row.column(2)? },
        user: row.column(3)?,
        user_name: row.column(4)?,
        reason: row.column(5)?,
        correlation_id: row.column(6)?,
        restricted_at: row.column(7)?,
        expires_at: row.column(8)?,
        lifted_at: row.column(9)?,
        lifted_by: row.column::<Option<String>>(10)?.as_deref().and_then(LiftedBy::parse),
        preexisting: row.column(11)?,
        last_verified_at: row.column(12)?,
        reasserted: row.column(13)?,
    })
}

/// An intent from a row of [`INTENTS`].
fn intent_of<R: RowRead>(row: &R) -> Result<Intent, R::Error> {
    let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    Ok(Intent {
        id: row.column(0)?,
        action: row.column(1)?,
        idps: list(row.column(2)?),
        users: list(row.column(3)?),
        reason: row.column(4)?,
        correlation_id: row.column(5)?,
        expires_at: row.column(6)?,
        created_at: row.column(7)?,
    })
}

/// The advisory lock key of a tenant: the first eight bytes of its SHA-256.
fn advisory_key(tenant: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(tenant.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

/// A PostgreSQL error as one line (its SQLSTATE message when the server sent one).
fn postgres_why(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let text = error.to_string();
            match std::error::Error::source(error) {
                Some(source) => format!("{text}: {source}"),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(name: &str) -> (Ledger, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("soar-ledger-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ledger.sqlite3");
        let opened = Ledger::open(&StateSpec::Sqlite(path.clone()), None, Duration::from_secs(1)).unwrap();
        (opened, dir)
    }

    fn key(user: &str) -> RecordKey {
        RecordKey { idp: "zpa".into(), group_id: "9".into(), user_id: user.into() }
    }

    fn restrict(user: &str, expires_at: Option<i64>, preexisting: bool) -> Change {
        Change::Restrict(Restriction {
            key: key(user),
            user: format!("{user}@corp.example"),
            user_name: None,
            reason: Some(format!("until {expires_at:?}")),
            correlation_id: None,
            expires_at,
            preexisting,
        })
    }

    fn record(ledger: &Ledger, user: &str) -> Record {
        ledger.records().unwrap().into_iter().find(|r| r.key == key(user)).unwrap()
    }

    #[test]
    fn a_later_expiry_wins_and_none_beats_any_while_a_restriction_lasts() {
        let (ledger, dir) = ledger("expiry");
        ledger.settle(&[], 1_000, &[restrict("a", Some(50_000), false)]).unwrap();
        ledger.settle(&[], 2_000, &[restrict("a", Some(40_000), false)]).unwrap();
        assert_eq!(record(&ledger, "a").expires_at, Some(50_000), "an earlier end does not shorten it");
        ledger.settle(&[], 3_000, &[restrict("a", Some(90_000), false)]).unwrap();
        assert_eq!(record(&ledger, "a").expires_at, Some(90_000));
        ledger.settle(&[], 4_000, &[restrict("a", None, false)]).unwrap();
        ledger.settle(&[], 5_000, &[restrict("a", Some(99_000), false)]).unwrap();
        assert_eq!(record(&ledger, "a").expires_at, None, "no end beats any end");
        assert_eq!(ledger.records().unwrap().len(), 1, "one record per provider, group and user");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_lifted_restriction_made_again_takes_the_new_end_and_keeps_whether_it_predated() {
        let (ledger, dir) = ledger("again");
        ledger.settle(&[], 1_000, &[restrict("a", None, true)]).unwrap();
        ledger.settle(&[], 2_000, &[Change::Lift(key("a"), LiftedBy::RemoveFromGroup)]).unwrap();
        let lifted = record(&ledger, "a");
        assert_eq!((lifted.state(3_000), lifted.lifted_by), (RecordState::Lifted, Some(LiftedBy::RemoveFromGroup)));
        ledger.settle(&[], 3_000, &[restrict("a", Some(10_000), false)]).unwrap();
        let again = record(&ledger, "a");
        assert_eq!((again.state(4_000), again.expires_at, again.lifted_at), (RecordState::Active, Some(10_000), None));
        assert_eq!(again.state(10_000), RecordState::Expired);
        assert!(!again.preexisting, "made again by the product: expiry may remove it");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_intent_lasts_until_settled_and_a_second_opening_migrates_nothing_twice() {
        let (ledger, dir) = ledger("intent");
        let intent = Intent {
            id: 0,
            action: "add-to-group".into(),
            idps: vec!["zpa".into()],
            users: vec!["a@corp.example".into()],
            reason: Some("why".into()),
            correlation_id: Some("INC-1".into()),
            expires_at: Some(9_000),
            created_at: 1_000,
        };
        let id = ledger.begin(&intent).unwrap();
        let reopened =
            Ledger::open(&StateSpec::Sqlite(dir.join("ledger.sqlite3")), None, Duration::from_secs(1)).unwrap();
        let pending = reopened.intents().unwrap();
        assert_eq!(pending, vec![Intent { id, ..intent }], "written before anything is sent, seen by another process");
        reopened.settle(&[id], 2_000, &[restrict("a", Some(9_000), false)]).unwrap();
        assert!(ledger.intents().unwrap().is_empty());
        assert_eq!(ledger.records().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("soar-ledger-{}-corrupt", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.sqlite3");
        std::fs::write(&path, b"not a database at all, ".repeat(200)).unwrap();
        let refused = Ledger::open(&StateSpec::Sqlite(path), None, Duration::from_secs(1)).err().unwrap().to_string();
        assert!(
            refused.contains("ledger.sqlite3 cannot be opened") && refused.contains("fix the state setting"),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
