//! The commands: an action against the configured providers, `describe`, `--version`, `demo`
//! and `simulator`.

use crate::args::{Cli, OutputFormat, ReconcileArgs, RestrictionsArgs, SimulatorArgs, UserSource};
use crate::demo;
use crate::output::{print_document, print_report, table};
use crate::progress::Progress;
use anyhow::Context;
use scim_simulator::{generate_token, Seed, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_host::action::{refusal_report, ActionHost, ActionRequest, Refusal, Report};
use soar_host::cache;
use soar_host::config::{Config, ProcessEnvironment};
use soar_host::files;
use soar_host::lifecycle::{restrictions_of, ReconcileRequest, RestrictionsQuery, StateFilter};
use soar_host::runtime::{LoadOptions, PluginRuntime};
use soar_host::services::{LogRecord, LogSink, Observer, Observers, RequestLog};
use soar_host::trace::{Recorder, TraceFile};
use soar_types::host::LogLevel;
use soar_types::model::ErrorKind;
use soar_types::{Action, WIT_PACKAGE, WIT_VERSION};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where this workspace builds the component (`scripts/build-plugin.sh`).
pub const WORKSPACE_PLUGIN: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm32-wasip2/component/restricted_group_plugin.wasm");
pub const PLUGIN_FILE_NAME: &str = "restricted_group_plugin.wasm";
/// The largest users file read (100,000 users of up to 254 bytes, with room for comments).
const MAX_USERS_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// An action as the command line asks for it.
pub struct ActionArgs {
    pub action: Action,
    pub idp: Option<String>,
    pub users: Vec<UserSource>,
    pub dry_run: bool,
    pub max_retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub restrict_for: Option<String>,
    pub restrict_until: Option<String>,
    pub reason: Option<String>,
}

/// The plugin beside the executable, else the one this workspace builds.
pub fn binary_default_plugin() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join(PLUGIN_FILE_NAME)));
    match beside {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from(WORKSPACE_PLUGIN),
    }
}

/// The plugin `--plugin` names; the caller fills in its default before any command runs.
fn load_cli_plugin(cli: &Cli, config: Option<&Config>) -> Result<PluginRuntime, Refusal> {
    load_plugin(cli.plugin.as_deref().unwrap_or(Path::new("")), config)
}

/// The plugin at `path`, through the compiled cache under the config's `cache_dir` and pinned to
/// its `plugin_sha256`.
pub fn load_plugin(path: &Path, config: Option<&Config>) -> Result<PluginRuntime, Refusal> {
    let cache_dir = cache::cache_dir(config.and_then(|c| c.cache_dir.as_deref()));
    let options = LoadOptions {
        cache_dir: cache_dir.as_deref(),
        expected_sha256: config.and_then(|c| c.plugin_sha256.as_deref()),
        pooling: false,
    };
    Ok(PluginRuntime::load_file(path, &options)?)
}

/// Log lines on stderr, `soar-host [CORRELATION-ID] level: message`; debug lines (one per HTTP
/// exchange among them) only with `SOAR_HOST_LOG=debug`.
pub fn stderr_log(correlation_id: Option<String>) -> LogSink {
    stderr_log_around(correlation_id, None)
}

/// Whether `SOAR_HOST_LOG=debug` asks for debug lines.
fn debug_logging() -> bool {
    std::env::var("SOAR_HOST_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug"))
}

/// [`stderr_log`], clearing the progress line (when there is one) around each log line.
fn stderr_log_around(correlation_id: Option<String>, progress: Option<Arc<Progress>>) -> LogSink {
    let verbose = debug_logging();
    Arc::new(move |record: &LogRecord| {
        if record.level == LogLevel::Debug && !verbose {
            return;
        }
        let level = match record.level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let context = correlation_id.as_deref().map(|id| format!(" [{id}]")).unwrap_or_default();
        let print = || eprintln!("soar-host{context} {level}: {}", record.message);
        match &progress {
            Some(progress) => progress.suspend(print),
            None => print(),
        }
    })
}

/// Runs an action: config, plugin, then the host library's checks and the invocation.
pub fn run_action(cli: &Cli, args: &ActionArgs, stderr: &mut dyn Write) -> Report {
    let request = match request_of(cli, args) {
        Ok(request) => request,
        Err(refusal) => return refusal_report(Some(args.action.as_str()), &refusal),
    };
    with_host(cli, args.action.as_str(), request.timeout_ms, stderr, |host, observer| {
        host.run_watched(&request, Some(observer))
    })
}

/// `reconcile`: with the host an action gets (the trace, the request log and the progress line
/// included).
pub fn reconcile(cli: &Cli, args: &ReconcileArgs, stderr: &mut dyn Write) -> Report {
    let request = ReconcileRequest {
        idp: args.target.idp.clone(),
        dry_run: args.dry_run,
        correlation_id: cli.correlation_id.clone(),
        timeout_ms: None,
    };
    with_host(cli, "reconcile", None, stderr, |host, observer| host.reconcile(&request, Some(observer)))
}

/// `restrictions`: the ledger's report; no plugin is loaded and nothing is sent. The JSON is
/// written straight from the records, however many there are.
pub fn restrictions(cli: &Cli, args: &RestrictionsArgs, stdout: &mut dyn Write) -> i32 {
    let query = RestrictionsQuery {
        idp: args.target.idp.clone(),
        user: args.user.clone(),
        state: StateFilter::parse(&args.state).unwrap_or_default(),
    };
    let restrictions = cli_config(cli).and_then(|config| restrictions_of(&config, None, &query));
    match (restrictions, cli.output) {
        (Ok(restrictions), OutputFormat::Json) => {
            let mut out = std::io::BufWriter::new(stdout);
            let _ = serde_json::to_writer_pretty(&mut out, &restrictions);
            let _ = writeln!(out);
            let _ = out.flush();
            0
        }
        (Ok(restrictions), format) => {
            let document = serde_json::to_value(&restrictions).expect("the document serialises");
            print_report(stdout, format, &Report { document, exit_code: 0 })
        }
        (Err(refusal), format) => print_report(stdout, format, &refusal_report(Some("restrictions"), &refusal)),
    }
}

fn cli_config(cli: &Cli) -> Result<Config, Refusal> {
    let path = cli.config.as_ref().ok_or_else(|| {
        Refusal::new(ErrorKind::InvalidConfig, "--config FILE is required: it lists the identity providers")
    })?;
    Ok(Config::load(path, &ProcessEnvironment)?)
}

/// Loads the config and the plugin, opens the trace, and runs `act` with the host and the
/// observers (request log, progress line, trace); writes the trace after.
fn with_host(
    cli: &Cli,
    action: &str,
    timeout_ms: Option<u64>,
    stderr: &mut dyn Write,
    act: impl FnOnce(&ActionHost, Arc<dyn Observer>) -> Report,
) -> Report {
    let prepared = cli_config(cli).and_then(|config| Ok((load_cli_plugin(cli, Some(&config))?, config)));
    let (runtime, config) = match prepared {
        Ok(prepared) => prepared,
        Err(refusal) => return refusal_report(Some(action), &refusal),
    };
    let mut trace = match cli.trace.as_deref().map(TraceFile::create).transpose() {
        Ok(trace) => trace.map(|file| (file, Arc::new(Recorder::default()))),
        Err(unusable) => {
            return refusal_report(Some(action), &Refusal::new(ErrorKind::InvalidInput, unusable.to_string()))
        }
    };
    let _ = stderr.flush();
    let deadline = Duration::from_millis(timeout_ms.unwrap_or(config.limits.deadline_ms));
    let progress = Progress::on_terminal(deadline);
    let log = stderr_log_around(cli.correlation_id.clone(), progress.clone());
    let host = ActionHost::new(Arc::new(runtime), config, log.clone());
    let mut observers: Vec<Arc<dyn Observer>> = Vec::new();
    if debug_logging() {
        observers.push(Arc::new(RequestLog(log.clone())));
    }
    observers.extend(progress.clone().map(|p| p as Arc<dyn Observer>));
    observers.extend(trace.as_ref().map(|(_, recorder)| recorder.clone() as Arc<dyn Observer>));
    let mut report = act(&host, Arc::new(Observers(observers)));
    if let Some(progress) = progress {
        progress.finish();
    }
    if let Some((file, recorder)) = trace.as_mut() {
        if let Err(why) = file.write(&recorder.har(("soar-host", HOST_VERSION))) {
            // The action ran; the operator must learn that its trace is missing.
            log(&LogRecord { level: LogLevel::Error, message: why.to_string() });
            report.document["trace_error"] = Value::String(why.to_string());
            report.exit_code = report.exit_code.max(1);
        }
    }
    report
}

fn request_of(cli: &Cli, args: &ActionArgs) -> Result<ActionRequest, Refusal> {
    let mut request = ActionRequest::new(args.action);
    request.correlation_id = cli.correlation_id.clone();
    request.idp = args.idp.clone();
    request.dry_run = args.dry_run;
    request.max_retries = args.max_retries;
    request.timeout_ms = args.timeout_ms;
    request.restrict_for = args.restrict_for.clone();
    request.restrict_until = args.restrict_until.clone();
    request.reason = args.reason.clone();
    for source in &args.users {
        match source {
            UserSource::User(user) => request.users.push(user.clone()),
            UserSource::File(file) => request.users.extend(read_users_file(file)?),
        }
    }
    Ok(request)
}

/// One user a line; blank lines and `#` comments ignored; `-` reads standard input. Either is read
/// with the same cap, as UTF-8 with a leading byte-order mark dropped.
fn read_users_file(file: &str) -> Result<Vec<String>, Refusal> {
    let text = if file == "-" {
        files::read_capped(std::io::stdin().lock(), MAX_USERS_FILE_BYTES).and_then(files::text_of)
    } else {
        files::read_text(file.as_ref(), MAX_USERS_FILE_BYTES).map(|(text, _)| text)
    };
    let shown = if file == "-" { "users from standard input".to_string() } else { format!("--users-file {file}") };
    let text =
        text.map_err(|error| Refusal::new(ErrorKind::InvalidInput, format!("cannot read {shown}: it {error}")))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// The plugin's manifest; exit 2 when the plugin cannot be loaded, 1 when it fails.
pub fn describe(cli: &Cli, stdout: &mut dyn Write) -> i32 {
    let described = load_cli_plugin(cli, None).and_then(|runtime| {
        runtime.describe(stderr_log(None)).map_err(|failure| Refusal::new(failure.kind, failure.message))
    });
    match described {
        Ok(manifest) => {
            let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&manifest).expect("JSON serialises"));
            0
        }
        Err(refusal) => {
            let mut report = refusal_report(Some("describe"), &refusal);
            report.exit_code = if refusal.kind == ErrorKind::PluginLoad { 2 } else { 1 };
            print_report(stdout, cli.output, &report)
        }
    }
}

/// The host's version, the WIT version, and the plugin's name and version (loaded through the
/// cache as an action would load it).
pub fn version(cli: &Cli, stdout: &mut dyn Write) -> i32 {
    let _ = writeln!(stdout, "soar-host {HOST_VERSION}");
    let _ = writeln!(stdout, "wit {WIT_PACKAGE}@{WIT_VERSION}");
    let manifest = load_cli_plugin(cli, None)
        .and_then(|runtime| runtime.describe(stderr_log(None)).map_err(|f| Refusal::new(f.kind, f.message)));
    let _ = match manifest {
        Ok(manifest) => {
            writeln!(stdout, "plugin {} {} (wit {})", manifest.name, manifest.version, manifest.wit_version)
        }
        Err(refusal) => writeln!(stdout, "plugin not loadable: {}", refusal.message),
    };
    0
}

/// The four demo steps against an in-process simulator.
pub fn demo(cli: &Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let runtime = match load_cli_plugin(cli, None) {
        Ok(runtime) => runtime,
        Err(refusal) => return print_report(stdout, cli.output, &refusal_report(Some("demo"), &refusal)),
    };
    let _ = writeln!(stderr, "soar-host demo: starting a simulated ZPA SCIM endpoint on 127.0.0.1");
    match demo::run(runtime, cli.correlation_id.clone(), stderr_log(cli.correlation_id.clone())) {
        Ok((document, all_as_expected)) => {
            match cli.output {
                OutputFormat::Json => print_document(stdout, cli.output, &document),
                OutputFormat::Table => {
                    let tables: Vec<String> = document["steps"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|step| table(step, std::io::stdout().is_terminal()))
                        .collect();
                    let _ = writeln!(stdout, "{}", tables.join("\n\n"));
                }
            }
            if all_as_expected {
                0
            } else {
                1
            }
        }
        Err(why) => {
            let refusal = Refusal::new(ErrorKind::InvalidConfig, format!("{why:#}"));
            print_report(stdout, cli.output, &refusal_report(Some("demo"), &refusal))
        }
    }
}

/// How often a serving simulator asks whether it was interrupted.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);
/// The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// Serves the simulator until interrupted, after printing `{"base_url", "token"}`.
pub fn simulator(args: &SimulatorArgs, interrupted: &dyn Fn() -> bool, stdout: &mut dyn Write) -> i32 {
    match start_simulator(args) {
        Ok((simulator, generated)) => {
            let mut ready = json!({"base_url": simulator.base_url()});
            if generated {
                ready["token"] = Value::String(simulator.token().to_string());
            }
            let _ = writeln!(stdout, "{ready}");
            let _ = stdout.flush();
            while !interrupted() {
                std::thread::park_timeout(INTERRUPT_POLL);
            }
            drop(simulator);
            INTERRUPTED_EXIT_CODE
        }
        Err(error) => {
            let refusal = Refusal::new(ErrorKind::InvalidInput, format!("{error:#}"));
            print_report(stdout, OutputFormat::Json, &refusal_report(Some("simulator"), &refusal))
        }
    }
}

/// The simulator and whether its token was generated (then it is printed).
fn start_simulator(args: &SimulatorArgs) -> anyhow::Result<(Simulator, bool)> {
    let (token, generated) = match &args.token_env {
        Some(name) => {
            let token = std::env::var(name).ok().filter(|t| !t.is_empty() && !t.chars().any(char::is_control));
            let token = token.with_context(|| {
                format!("--token-env {name}: the variable is unset, empty or holds a control character")
            })?;
            (token, false)
        }
        None => (generate_token(), true),
    };
    let mut options = SimulatorOptions::new(token);
    if let Some(listen) = args.listen {
        options.listen = listen;
    }
    if let Some(path) = &args.seed {
        let (text, _) = files::read_text(path, files::MAX_SEED_BYTES)
            .with_context(|| format!("cannot read the seed file {}", path.display()))?;
        options.seed = Seed::from_text(&text).with_context(|| format!("the seed file {}", path.display()))?;
    }
    options.quirks = args.quirk.clone();
    options.faults = args.fault.clone();
    options.latency_ms = args.latency_ms.unwrap_or(0);
    options.rate_limit = args.rate_limit.map(|rate| rate as u32);
    options.generate_users = args.generate_users.unwrap_or(0) as usize;
    options.generate_members = args.generate_members.unwrap_or(0) as usize;
    if let Some(size) = args.max_page_size {
        options.max_page_size = size as usize;
    }
    let simulator = Simulator::start(options).context("the simulator did not start")?;
    Ok((simulator, generated))
}
