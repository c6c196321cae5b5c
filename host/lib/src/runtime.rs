//! Loading the plugin component and running one action in a fresh, bounded store.

use crate::cache;
use crate::config::Limits;
use crate::egress::EgressPolicy;
use crate::files::{self, FileError};
use crate::http_client::HttpClient;
use crate::services::{HostServices, InvocationContext, LogSink};
use crate::wasi::{self, BoundedCapture};
use crate::wit;
use soar_types::host::Host;
use soar_types::manifest::Manifest;
use soar_types::model::{ActionResult, ErrorKind, MembersRequest, MembershipRequest, ProviderMembers};
use soar_types::{Action, WIT_MAJOR, WIT_PACKAGE, WIT_VERSION};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Host calls end at the deadline; the plugin then gets this long to turn their errors into a
/// result before the epoch deadline stops it.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// Why the plugin could not be used at all (exit 2: nothing was sent).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read the plugin {}: it {source}; build it with `bash scripts/build-plugin.sh` or pass --plugin FILE", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("plugin {}: {error}", path.display())]
    Plugin {
        path: PathBuf,
        #[source]
        error: Box<LoadError>,
    },
    #[error("its SHA-256 is {actual}, but plugin_sha256 requires {expected}; refusing to load it")]
    HashMismatch { actual: String, expected: String },
    #[error("is not a WebAssembly file")]
    NotWasm,
    #[error("is a core WebAssembly module, not a component; build it for wasm32-wasip2")]
    CoreModule,
    #[error("is not a valid component: {0}")]
    Invalid(String),
    #[error(
        "was built for WIT {WIT_PACKAGE}@{0}, but this host speaks {WIT_PACKAGE}@{WIT_VERSION} (major version \
         {WIT_MAJOR}); use a plugin and host of the same major version"
    )]
    OtherMajor(String),
    #[error("is not a {WIT_PACKAGE} plugin: it exports {0}")]
    NotAPlugin(String),
    #[error(
        "imports {0}, which this host does not provide; a plugin may import only \
         {WIT_PACKAGE}/{{types,http,log,wait}}@{WIT_MAJOR}.x and {allowed}",
        allowed = wasi::ALLOWED_WASI.join(", ")
    )]
    ForbiddenImports(String),
    /// wasmtime refused to set up the engine or link the component.
    #[error("{0}")]
    Wasmtime(String),
}

/// Why one invocation of the plugin failed (exit 1); the host itself carries on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginFailure {
    pub kind: ErrorKind,
    pub message: String,
}

/// The action to run and its input (test-connection reads only the settings).
#[derive(Clone, Debug)]
pub struct Call {
    pub action: Action,
    pub request: MembershipRequest,
}

/// The end of one invocation: a result or a failure, and the HTTP requests it sent either way.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub result: Result<ActionResult, PluginFailure>,
    pub http_requests: u32,
    /// The largest the plugin's linear memory grew to.
    pub peak_memory_bytes: usize,
}

/// A compiled plugin, ready to instantiate; cheap to share between threads.
pub struct PluginRuntime {
    engine: Engine,
    pre: wit::PluginActionsPre<StoreState>,
    /// `members`, which plugins built for WIT 1.2 and later export.
    members: Option<wit::PluginMembersPre<StoreState>>,
    sha256: String,
    ticker: Arc<AtomicBool>,
    /// What loading found unwise (an untrusted cache folder); the caller logs them.
    warnings: Vec<String>,
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions<'a> {
    pub cache_dir: Option<&'a Path>,
    pub expected_sha256: Option<&'a str>,
    /// Pre-allocate instance slots (for long-running hosts): instantiation in microseconds, at
    /// the cost of reserving virtual memory up front for [`POOL_SLOTS`] concurrent invocations.
    pub pooling: bool,
}

/// Concurrent invocations a pooling runtime can hold.
pub const POOL_SLOTS: u32 = 64;
/// The largest linear memory a pooled slot can grow to; `memory_limit_mib` still applies.
const POOL_MEMORY_BYTES: usize = 256 * 1024 * 1024;
const POOL_KEEP_RESIDENT_BYTES: usize = 4 * 1024 * 1024;

impl PluginRuntime {
    pub fn load_file(path: &Path, options: &LoadOptions) -> Result<Self, LoadError> {
        let (bytes, _) = files::read_regular(path, files::MAX_PLUGIN_BYTES)
            .map_err(|source| LoadError::Unreadable { path: path.to_path_buf(), source })?;
        Self::load_bytes(&bytes, options)
            .map_err(|error| LoadError::Plugin { path: path.to_path_buf(), error: Box::new(error) })
    }

    pub fn load_bytes(bytes: &[u8], options: &LoadOptions) -> Result<Self, LoadError> {
        let sha256 = cache::sha256_hex(bytes);
        if let Some(expected) = options.expected_sha256 {
            if !expected.eq_ignore_ascii_case(&sha256) {
                return Err(LoadError::HashMismatch { actual: sha256, expected: expected.to_string() });
            }
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm);
        }
        // Components have layer 1 in bytes 6..8; core modules have 0.
        if bytes.get(6..8) != Some(&[1, 0]) {
            return Err(LoadError::CoreModule);
        }
        let engine = new_engine(options.pooling).map_err(|e| wasmtime_error("cannot set up wasmtime", e))?;
        let warnings = std::cell::RefCell::new(Vec::new());
        let component =
            cache::load_component(&engine, bytes, &sha256, options.cache_dir, &|why| warnings.borrow_mut().push(why))
                .map_err(|e| LoadError::Invalid(first_line(&e.to_string())))?;
        check_exports(&engine, &component)?;
        check_imports(&engine, &component)?;
        let mut linker: Linker<StoreState> = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| wasmtime_error("cannot link WASI", e))?;
        wit::PluginActions::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state)
            .map_err(|e| wasmtime_error("cannot link the host imports", e))?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| wasmtime_error("cannot be linked", e))?;
        let members = wit::PluginMembersPre::new(instance_pre.clone()).ok();
        let pre = wit::PluginActionsPre::new(instance_pre)
            .map_err(|e| wasmtime_error("does not export the expected actions", e))?;
        let ticker = start_epoch_ticker(&engine);
        Ok(PluginRuntime { engine, pre, members, sha256, ticker, warnings: warnings.into_inner() })
    }

    /// What loading found unwise, for the caller to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The plugin's manifest (a call with no network and no providers).
    pub fn describe(&self, log: LogSink) -> Result<Manifest, PluginFailure> {
        let context = InvocationContext {
            egress: Arc::new(EgressPolicy::default()),
            http: Arc::new(HttpClient::new(crate::http_client::HttpSettings::new(0, Duration::from_millis(1)))),
            limits: Limits::default(),
            log,
            observer: None,
            spent_ms: 0,
        };
        let (result, _, _) = self.run(&context, |store| {
            self.pre.instantiate(&mut *store)?.soar_restricted_group_actions().call_describe(store)
        });
        result.map(wit::manifest_from_wit)
    }

    /// Runs one action in a fresh store.
    pub fn invoke(&self, call: &Call, context: &InvocationContext) -> Invocation {
        let (result, http_requests, peak_memory_bytes) = self.run(context, |store| {
            let plugin = self.pre.instantiate(&mut *store)?;
            let actions = plugin.soar_restricted_group_actions();
            let request = &call.request;
            match call.action {
                Action::TestConnection => actions.call_test_connection(store, &wit::settings_to_wit(&request.settings)),
                Action::AddToGroup => actions.call_add_to_group(store, &wit::request_to_wit(request)),
                Action::RemoveFromGroup => actions.call_remove_from_group(store, &wit::request_to_wit(request)),
                Action::CheckMembership => actions.call_check_membership(store, &wit::request_to_wit(request)),
            }
        });
        Invocation {
            result: result.map(|result| wit::result_from_wit(result, context.egress.redactor())),
            http_requests,
            peak_memory_bytes,
        }
    }

    /// Whether the plugin exports `members` (WIT 1.2 and later): what `reconcile` needs.
    pub fn lists_members(&self) -> bool {
        self.members.is_some()
    }

    /// Reads each provider's restricted group's members (WIT 1.2 `list-members`) in a fresh
    /// store; a plugin built for an earlier WIT has no such action.
    pub fn list_members(
        &self,
        request: &MembersRequest,
        context: &InvocationContext,
    ) -> (Result<Vec<ProviderMembers>, PluginFailure>, u32) {
        let Some(members) = &self.members else {
            let failure = PluginFailure {
                kind: ErrorKind::PluginLoad,
                message: format!(
                    "the plugin was built for an earlier {WIT_PACKAGE} than 1.2.0 and cannot list a group's members, which \
                     reconcile needs: use a plugin built for {WIT_PACKAGE}@{WIT_VERSION}"
                ),
            };
            return (Err(failure), 0);
        };
        let (result, http_requests, _) = self.run(context, |store| {
            members
                .instantiate(&mut *store)?
                .soar_restricted_group_members()
                .call_list_members(store, &wit::members_request_to_wit(request))
        });
        (result.map(|providers| wit::members_from_wit(providers, context.egress.redactor())), http_requests)
    }

    fn run<R>(
        &self,
        context: &InvocationContext,
        call: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> (Result<R, PluginFailure>, u32, usize) {
        let stdout = BoundedCapture::default();
        let stderr = BoundedCapture::default();
        let deadline = Instant::now() + Duration::from_millis(context.limits.deadline_ms);
        let state = StoreState {
            wasi: wasi::empty_context(stdout, stderr.clone()),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit_bytes: (context.limits.memory_limit_mib as usize).saturating_mul(1024 * 1024),
                hit: false,
                peak_bytes: 0,
            },
            services: HostServices::new(context, deadline),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let budget_ms = context.limits.deadline_ms + DEADLINE_GRACE.as_millis() as u64;
        let ticks = budget_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1;
        store.set_epoch_deadline(ticks);
        let outcome = call(&mut store);
        let http_requests = store.data().services.http_requests();
        let peak_memory_bytes = store.data().limiter.peak_bytes;
        let action_deadline_ms = context.limits.deadline_ms + context.spent_ms;
        let result = outcome.map_err(|error| classify_failure(&error, &store, &stderr, action_deadline_ms));
        (result, http_requests, peak_memory_bytes)
    }
}

fn new_engine(pooling: bool) -> wasmtime::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if pooling {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 8)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 4)
            .max_memory_size(POOL_MEMORY_BYTES)
            // Reused slots keep their first pages mapped: no page faults on the next invocation.
            .linear_memory_keep_resident(POOL_KEEP_RESIDENT_BYTES)
            .table_keep_resident(POOL_KEEP_RESIDENT_BYTES);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the runtime is dropped.
fn start_epoch_ticker(engine: &Engine) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let weak = engine.weak();
    let stop_flag = stop.clone();
    std::thread::Builder::new()
        .name("soar-host-epoch".into())
        .spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawn the epoch thread");
    stop
}

/// The component must export `soar:restricted-group/actions@1.x`.
fn check_exports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    let prefix = format!("{WIT_PACKAGE}/actions@");
    match exports.iter().find_map(|name| name.strip_prefix(&prefix)) {
        Some(version) if major_of(version) == Some(WIT_MAJOR) => Ok(()),
        Some(version) => Err(LoadError::OtherMajor(version.to_string())),
        None if exports.is_empty() => Err(LoadError::NotAPlugin("nothing".into())),
        None => Err(LoadError::NotAPlugin(exports.join(", "))),
    }
}

fn major_of(version: &str) -> Option<u64> {
    version.split('.').next()?.parse().ok()
}

/// Every import must be one the host provides: its own interfaces of the same major version,
/// or the WASI pieces in [`wasi::ALLOWED_WASI`].
fn check_imports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let refused: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !import_allowed(name))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(LoadError::ForbiddenImports(refused.join(", ")))
}

/// The names a component imports, for inspection (no linking, no cache).
pub fn component_imports(bytes: &[u8]) -> Result<Vec<String>, LoadError> {
    let engine = new_engine(false).map_err(|e| wasmtime_error("cannot set up wasmtime", e))?;
    let component = Component::new(&engine, bytes).map_err(|e| LoadError::Invalid(first_line(&e.to_string())))?;
    let names = component.component_type().imports(&engine).map(|(name, _)| name.to_string()).collect();
    Ok(names)
}

pub fn import_allowed(name: &str) -> bool {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    if let Some(own) = interface.strip_prefix(&format!("{WIT_PACKAGE}/")) {
        return ["types", "http", "log", "wait"].contains(&own) && major_of(version) == Some(WIT_MAJOR);
    }
    wasi::ALLOWED_WASI.contains(&interface) && version.starts_with("0.2.")
}

fn classify_failure(
    error: &wasmtime::Error,
    store: &Store<StoreState>,
    stderr: &BoundedCapture,
    deadline_ms: u64,
) -> PluginFailure {
    let redactor = store.data().services.redactor();
    let trap = error.downcast_ref::<Trap>().copied();
    if store.data().limiter.hit {
        let limit = store.data().limiter.limit_bytes / (1024 * 1024);
        return PluginFailure {
            kind: ErrorKind::PluginOutOfMemory,
            message: format!(
                "the plugin tried to use more than {limit} MiB of memory (memory_limit_mib) and was stopped"
            ),
        };
    }
    if trap == Some(Trap::Interrupt) {
        return PluginFailure {
            kind: ErrorKind::PluginTimeout,
            message: format!("the plugin ran past the action's deadline of {deadline_ms} ms and was stopped"),
        };
    }
    let captured = stderr.contents();
    if let Some(panic) = panic_message(&captured) {
        return PluginFailure {
            kind: ErrorKind::PluginPanicked,
            message: redactor.redact(&format!("the plugin panicked: {panic}")),
        };
    }
    PluginFailure {
        kind: ErrorKind::PluginTrapped,
        message: redactor.redact(&format!("the plugin trapped: {}", first_line(&format!("{error:#}")))),
    }
}

/// The panic message from Rust's standard panic output on stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at")?;
    let rest = &stderr[start + "panicked at".len()..];
    let (location, message) = rest.split_once('\n').unwrap_or((rest, ""));
    let message = message.lines().take_while(|line| !line.starts_with("note:")).collect::<Vec<_>>().join(" ");
    let location = location.trim().trim_end_matches(':');
    Some(format!("{} (at {location})", message.trim()).chars().take(500).collect())
}

fn wasmtime_error(doing: &str, error: wasmtime::Error) -> LoadError {
    LoadError::Wasmtime(format!("{doing}: {}", first_line(&error.to_string())))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(500).collect()
}

struct MemoryLimiter {
    limit_bytes: usize,
    hit: bool,
    peak_bytes: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// What one store holds: the empty WASI context, the memory limiter and the host services.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    services: HostServices,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit::HttpHost for StoreState {
    fn send(&mut self, request: wit::HttpRequest) -> Result<wit::HttpResponse, wit::HttpError> {
        let request = wit::request_from_wit(request, None);
        self.services.send(request).map(wit::response_to_wit).map_err(wit::http_error_to_wit)
    }

    fn send_all(
        &mut self,
        requests: Vec<(wit::HttpRequest, wit::HttpPurpose)>,
    ) -> Vec<Result<wit::HttpResponse, wit::HttpError>> {
        let requests =
            requests.into_iter().map(|(request, purpose)| wit::request_from_wit(request, Some(purpose))).collect();
        let answers = self.services.send_all(requests);
        answers.into_iter().map(|answer| answer.map(wit::response_to_wit).map_err(wit::http_error_to_wit)).collect()
    }
}

impl wit::LogHost for StoreState {
    fn write(&mut self, level: wit::LogLevelWit, message: String) {
        self.services.log(wit::log_level_from_wit(level), &message);
    }
}

impl wit::WaitHost for StoreState {
    fn sleep(&mut self, duration_ms: u64) -> bool {
        self.services.sleep(duration_ms)
    }
}

impl wit::TypesHost for StoreState {}
