//! `soar_restricted_group._native`: the soar-host core (config, egress rule, address policy, HTTP,
//! redaction, locks, rate limit, cache, audit, trace, table, the whole command line) as a Python
//! extension module. The Python package around it only types and names what is here.

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};
use soar_host::action::{refusal_report, ActionHost, ActionRequest, Refusal};
use soar_host::config::{Config, ProcessEnvironment};
use soar_host::lifecycle::{ReconcileRequest, RestrictionsQuery, StateFilter};
use soar_host::secret::Secret;
use soar_host::services::{describe_http_error, Exchange, LogRecord, LogSink, Observer, Observers};
use soar_types::host::{HttpError, LogLevel};
use soar_types::model::ErrorKind;
use soar_types::Action;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

mod errors {
    pyo3::import_exception!(soar_restricted_group.errors, Refusal);
}
use errors::Refusal as PyRefusal;

fn refused(refusal: &Refusal) -> PyErr {
    PyRefusal::new_err((refusal.kind.as_str(), refusal.message.clone()))
}

/// A loaded plugin and a checked config, for the life of a Python `Host`.
#[pyclass(frozen, module = "soar_restricted_group._native")]
struct NativeHost {
    host: ActionHost,
    /// The process that made it: wasmtime's threads, the request pool and open connections do
    /// not survive a fork, so a child must make its own.
    pid: u32,
}

/// The sink for the host's log lines: the Python callable `log(level, message)`, else
/// `soar-host`'s lines on standard error.
fn log_sink(log: Option<Py<PyAny>>) -> LogSink {
    let Some(log) = log else {
        return soar_host_cli::stderr_log(None);
    };
    Arc::new(move |record: &LogRecord| {
        Python::attach(|py| {
            // A failing callback must not cross into Rust: Python reports it as unraisable.
            if let Err(error) = log.call1(py, (level_name(record.level), record.message.as_str())) {
                error.write_unraisable(py, Some(log.bind(py)));
            }
        })
    })
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

fn load(
    config: Config,
    plugin: &Path,
    log: Option<Py<PyAny>>,
    state_password: Option<String>,
) -> Result<NativeHost, Refusal> {
    let runtime = soar_host_cli::load_plugin(plugin, Some(&config))?;
    let mut host = ActionHost::new(Arc::new(runtime), config, log_sink(log));
    if let Some(password) = state_password {
        host = host.with_state_password(Secret::new(password));
    }
    Ok(NativeHost { host, pid: std::process::id() })
}

#[pymethods]
impl NativeHost {
    /// Reads the config file and loads the plugin; raises `Refusal` when either cannot be used.
    #[staticmethod]
    #[pyo3(signature = (path, plugin, log=None, state_password=None))]
    fn from_config_file(
        py: Python<'_>,
        path: PathBuf,
        plugin: PathBuf,
        log: Option<Py<PyAny>>,
        state_password: Option<String>,
    ) -> PyResult<Self> {
        py.detach(|| {
            let config = Config::load(&path, &ProcessEnvironment).map_err(Refusal::from)?;
            load(config, &plugin, log, state_password)
        })
        .map_err(|refusal| refused(&refusal))
    }

    /// The config as a mapping (relative paths against `base_dir`); `tokens` maps provider
    /// names to their bearer tokens, kept in memory only.
    #[staticmethod]
    #[pyo3(signature = (mapping, tokens, base_dir, plugin, log=None, state_password=None))]
    fn from_config(
        py: Python<'_>,
        mapping: &Bound<'_, PyAny>,
        tokens: BTreeMap<String, String>,
        base_dir: PathBuf,
        plugin: PathBuf,
        log: Option<Py<PyAny>>,
        state_password: Option<String>,
    ) -> PyResult<Self> {
        let value = to_json(mapping, "the config").map_err(|why| refused(&config_refusal(why)))?;
        let tokens: BTreeMap<String, Secret> =
            tokens.into_iter().map(|(name, token)| (name, Secret::new(token))).collect();
        py.detach(|| {
            let config = Config::from_value_with_tokens(&value, &base_dir, &ProcessEnvironment, &tokens)
                .map_err(Refusal::from)?;
            load(config, &plugin, log, state_password)
        })
        .map_err(|refusal| refused(&refusal))
    }

    /// Runs one action; returns `(document, exit_code)`. Invalid input is the exit-2 document,
    /// never an exception. The GIL is released while the action runs.
    #[pyo3(signature = (action, users, dry_run, idp, correlation_id, max_retries, timeout_ms, watch=None, restrict=None))]
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        action: &str,
        users: &Bound<'py, PyAny>,
        dry_run: &Bound<'py, PyAny>,
        idp: &Bound<'py, PyAny>,
        correlation_id: &Bound<'py, PyAny>,
        max_retries: &Bound<'py, PyAny>,
        timeout_ms: &Bound<'py, PyAny>,
        watch: Option<&Bound<'py, PyAny>>,
        restrict: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Py<PyAny>, i32)> {
        self.same_process()?;
        let prepared = request(action, users, dry_run, idp, correlation_id, max_retries, timeout_ms)
            .and_then(|request| with_restriction(request, restrict));
        let report = match prepared {
            Ok(request) => {
                let observer = watch.map(observer).transpose()?;
                py.detach(|| self.host.run_watched(&request, observer))
            }
            Err(refusal) => refusal_report(Action::parse(action).map(Action::as_str).or(Some(action)), &refusal),
        };
        Ok((to_python(py, &report.document)?, report.exit_code))
    }

    /// The `restrictions` report: `(document, exit_code)`.
    #[pyo3(signature = (idp=None, user=None, state=None))]
    fn restrictions(
        &self,
        py: Python<'_>,
        idp: Option<String>,
        user: Option<String>,
        state: Option<String>,
    ) -> PyResult<(Py<PyAny>, i32)> {
        self.same_process()?;
        let report = match state.as_deref().map(|text| StateFilter::parse(text).ok_or(text)).transpose() {
            Ok(state) => {
                let query = RestrictionsQuery { idp, user, state: state.unwrap_or_default() };
                py.detach(|| self.host.restrictions(&query))
            }
            Err(text) => refusal_report(
                Some("restrictions"),
                &invalid_input(format!("state {text:?} is not one of {}", StateFilter::NAMES.join(", "))),
            ),
        };
        Ok((to_python(py, &report.document)?, report.exit_code))
    }

    /// `reconcile`: `(document, exit_code)`.
    #[pyo3(signature = (idp=None, dry_run=false, correlation_id=None, timeout_ms=None, watch=None))]
    fn reconcile(
        &self,
        py: Python<'_>,
        idp: Option<String>,
        dry_run: bool,
        correlation_id: Option<String>,
        timeout_ms: Option<u64>,
        watch: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Py<PyAny>, i32)> {
        self.same_process()?;
        let observer = watch.map(observer).transpose()?;
        let request = ReconcileRequest { idp, dry_run, correlation_id, timeout_ms };
        let report = py.detach(|| self.host.reconcile(&request, observer));
        Ok((to_python(py, &report.document)?, report.exit_code))
    }

    /// The plugin's manifest.
    fn describe(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.same_process()?;
        let log = soar_host_cli::stderr_log(None);
        let manifest = py.detach(|| self.host.runtime().describe(log));
        match manifest {
            Ok(manifest) => to_python(py, &serde_json::to_value(manifest).expect("a manifest serialises")),
            Err(failure) => Err(refused(&Refusal::new(failure.kind, failure.message))),
        }
    }
}

impl NativeHost {
    fn same_process(&self) -> PyResult<()> {
        if std::process::id() == self.pid {
            return Ok(());
        }
        Err(PyRuntimeError::new_err(
            "this Host was made before a fork, and its threads and connections stayed in the parent process: create the Host after forking",
        ))
    }
}

fn config_refusal(why: String) -> Refusal {
    Refusal::new(ErrorKind::InvalidConfig, why)
}

fn invalid_input(why: impl Into<String>) -> Refusal {
    Refusal::new(ErrorKind::InvalidInput, why)
}

/// The request as the Python API was given it, checked as the command line checks its flags.
fn request(
    action: &str,
    users: &Bound<'_, PyAny>,
    dry_run: &Bound<'_, PyAny>,
    idp: &Bound<'_, PyAny>,
    correlation_id: &Bound<'_, PyAny>,
    max_retries: &Bound<'_, PyAny>,
    timeout_ms: &Bound<'_, PyAny>,
) -> Result<ActionRequest, Refusal> {
    let action = Action::parse(action).ok_or_else(|| {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        invalid_input(format!("unknown action {action:?}; one of {}", known.join(", ")))
    })?;
    let mut request = ActionRequest::new(action);
    if action.takes_users() {
        request.users = user_list(users)?;
    }
    request.dry_run = dry_run.is_truthy().map_err(|_| invalid_input("dry_run must be true or false"))?;
    request.idp = optional_text(idp, "idp")?;
    request.correlation_id = optional_text(correlation_id, "correlation_id")?;
    request.max_retries = whole_number(max_retries, "max_retries")?.map(|n| n.min(u64::from(u32::MAX)) as u32);
    request.timeout_ms = whole_number(timeout_ms, "timeout_ms")?;
    Ok(request)
}

/// add-to-group's restriction: a mapping with `for` (a duration: text in humantime's syntax, or
/// a `datetime.timedelta`), `until` (RFC 3339 text or an aware `datetime`) and `reason`.
fn with_restriction(mut request: ActionRequest, restrict: Option<&Bound<'_, PyAny>>) -> Result<ActionRequest, Refusal> {
    let Some(restrict) = restrict else { return Ok(request) };
    let field = |name: &str| restrict.get_item(name).ok().filter(|value| !value.is_none());
    if let Some(duration) = field("for") {
        request.restrict_for = Some(match duration.cast::<PyString>() {
            Ok(text) => text.to_string(),
            Err(_) => {
                let seconds: f64 = duration
                    .call_method0("total_seconds")
                    .and_then(|s| s.extract())
                    .map_err(|_| invalid_input("duration must be text such as 24h, or a datetime.timedelta"))?;
                format!("{}ms", (seconds * 1000.0).round().max(0.0) as u64)
            }
        });
    }
    if let Some(until) = field("until") {
        request.restrict_until = Some(match until.cast::<PyString>() {
            Ok(text) => text.to_string(),
            Err(_) => {
                let aware = until.getattr("tzinfo").is_ok_and(|tz| !tz.is_none());
                if !aware {
                    return Err(invalid_input("until must be RFC 3339 text or a datetime with a time zone"));
                }
                until
                    .call_method0("isoformat")
                    .and_then(|text| text.extract())
                    .map_err(|_| invalid_input("until must be RFC 3339 text or a datetime with a time zone"))?
            }
        });
    }
    request.reason =
        optional_text(field("reason").as_ref().unwrap_or(&restrict.py().None().into_bound(restrict.py())), "reason")?;
    Ok(request)
}

/// A user or a list of users, each text.
fn user_list(users: &Bound<'_, PyAny>) -> Result<Vec<String>, Refusal> {
    if let Ok(one) = users.cast::<PyString>() {
        return Ok(vec![one.to_string()]);
    }
    let items = users
        .try_iter()
        .map_err(|_| invalid_input(format!("users must be a list of text, not {}", type_name(users))))?;
    items
        .map(|item| {
            let item = item.map_err(|error| invalid_input(format!("cannot read users: {error}")))?;
            item.cast::<PyString>()
                .map(|text| text.to_string())
                .map_err(|_| invalid_input(format!("a user must be text, not {}", type_name(&item))))
        })
        .collect()
}

fn optional_text(value: &Bound<'_, PyAny>, name: &str) -> Result<Option<String>, Refusal> {
    if value.is_none() {
        return Ok(None);
    }
    value
        .cast::<PyString>()
        .map(|text| Some(text.to_string()))
        .map_err(|_| invalid_input(format!("{name} must be text, not {}", type_name(value))))
}

/// A whole number (never a bool); its range is checked where the command line's is.
fn whole_number(value: &Bound<'_, PyAny>, name: &str) -> Result<Option<u64>, Refusal> {
    if value.is_none() {
        return Ok(None);
    }
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(invalid_input(format!("{name} must be a whole number, not {}", type_name(value))));
    }
    match value.extract::<u64>() {
        Ok(number) => Ok(Some(number)),
        // Negative or beyond 64 bits: out of every range; say which range applies.
        Err(_) => Ok(Some(u64::MAX)),
    }
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map(|name| name.to_string()).unwrap_or_else(|_| "?".into())
}

/// A Python callable `watch(exchange)`, or a native `Recorder`.
fn observer(watch: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Observer>> {
    if let Ok(recorder) = watch.cast::<Recorder>() {
        return Ok(recorder.get().inner.clone());
    }
    if !watch.is_callable() {
        return Err(PyTypeError::new_err("watch must be a callable taking one exchange, or a trace.Recorder"));
    }
    Ok(Arc::new(Observers(vec![Arc::new(Watcher(watch.clone().unbind()))])))
}

/// Tells a Python callable of every exchange, as a dict; its exceptions stay in Python.
struct Watcher(Py<PyAny>);

impl Observer for Watcher {
    fn exchanged(&self, exchange: &Exchange) {
        Python::attach(|py| {
            let described = to_python(py, &exchange_value(exchange)).and_then(|value| self.0.call1(py, (value,)));
            if let Err(error) = described {
                error.write_unraisable(py, Some(self.0.bind(py)));
            }
        })
    }
}

/// An exchange as the Python API shows it (every secret already scrubbed).
fn exchange_value(exchange: &Exchange) -> Value {
    let text = |bytes: &Option<Vec<u8>>| bytes.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let started = exchange.started.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut value = serde_json::json!({
        "idp": exchange.idp,
        "method": exchange.method.as_str(),
        "url": exchange.url,
        "request_headers": exchange.request_headers,
        "request_body": text(&exchange.request_body),
        "doing": exchange.purpose.doing,
        "attempt": exchange.purpose.attempt,
        "reason": exchange.purpose.reason,
        "started": started,
        "duration_ms": exchange.duration.as_secs_f64() * 1e3,
        "queued_ms": exchange.queued.as_secs_f64() * 1e3,
        "reached_network": exchange.reached_network,
        "status": null,
        "response_headers": [],
        "response_body": null,
        "error": null,
    });
    match &exchange.outcome {
        Ok(response) => {
            value["status"] = response.status.into();
            value["response_headers"] = serde_json::json!(response.headers);
            value["response_body"] = String::from_utf8_lossy(&response.body).into_owned().into();
        }
        Err(error) => value["error"] = http_error_kind(error).into(),
    }
    if let Err(error) = &exchange.outcome {
        value["error_message"] = describe_http_error(error).into();
    }
    value
}

fn http_error_kind(error: &HttpError) -> &'static str {
    match error {
        HttpError::Denied(_) => "denied",
        HttpError::Timeout(_) => "timeout",
        HttpError::ConnectionFailed(_) => "connection-failed",
        HttpError::TlsFailed(_) => "tls-failed",
        HttpError::TooLarge(_) => "too-large",
    }
}

/// Records an action's exchanges for a HAR 1.2 trace (`soar-host --trace`).
#[pyclass(frozen, module = "soar_restricted_group._native")]
struct Recorder {
    inner: Arc<soar_host::trace::Recorder>,
}

#[pymethods]
impl Recorder {
    #[new]
    fn new() -> Self {
        Recorder { inner: Arc::default() }
    }

    /// The HAR document of what was recorded.
    fn har(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.inner.har(("soar-restricted-group", soar_host_cli::HOST_VERSION)))
    }
}

/// The `soar-host` command line; returns its exit code. Ctrl-C stops a serving simulator.
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<OsString>, default_plugin: PathBuf) -> i32 {
    let interrupted = || Python::attach(|py| py.check_signals().is_err());
    let launch = soar_host_cli::Launch { default_plugin, interrupted: &interrupted };
    py.detach(|| soar_host_cli::run(args, &launch, &mut std::io::stdout(), &mut std::io::stderr()))
}

/// A Python value as JSON; `what` names it in the refusal.
fn to_json(value: &Bound<'_, PyAny>, what: &str) -> Result<Value, String> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(number) = value.extract::<i64>() {
            return Ok(Value::from(number));
        }
        return value.extract::<u64>().map(Value::from).map_err(|_| format!("{what} is a number beyond 64 bits"));
    }
    if let Ok(number) = value.cast::<PyFloat>() {
        return Number::from_f64(number.value())
            .map(Value::Number)
            .ok_or_else(|| format!("{what} is not a finite number"));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Value::String(text.to_string()));
    }
    if let Ok(mapping) = value.cast::<PyDict>() {
        let mut object = Map::new();
        for (key, item) in mapping.iter() {
            let key = key.cast::<PyString>().map_err(|_| format!("{what} has a key that is not text"))?.to_string();
            let inner = to_json(&item, &format!("{what}[{key:?}]"))?;
            object.insert(key, inner);
        }
        return Ok(Value::Object(object));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (index, item) in value.try_iter().map_err(|e| e.to_string())?.enumerate() {
            items.push(to_json(&item.map_err(|e| e.to_string())?, &format!("{what}[{index}]"))?);
        }
        return Ok(Value::Array(items));
    }
    Err(format!("{what} is a {}, which JSON has no form of", type_name(value)))
}

fn to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any().unbind(),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(n), _, _) => n.into_pyobject(py)?.into_any().unbind(),
            (_, Some(n), _) => n.into_pyobject(py)?.into_any().unbind(),
            (_, _, n) => n.unwrap_or(f64::NAN).into_pyobject(py)?.into_any().unbind(),
        },
        Value::String(text) => PyString::new(py, text).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(object) => {
            let dict = PyDict::new(py);
            for (key, item) in object {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeHost>()?;
    module.add_class::<Recorder>()?;
    module.add_function(wrap_pyfunction!(run_cli, module)?)?;
    module.add("HOST_VERSION", soar_host_cli::HOST_VERSION)?;
    module.add("PLUGIN_FILE_NAME", soar_host_cli::PLUGIN_FILE_NAME)?;
    Ok(())
}
