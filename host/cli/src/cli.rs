//! The `soar-host` command line, exactly as the contract fixes it (see README, "Command line").

use crate::demo;
use scim_simulator::{generate_token, Fault, Quirk, Seed, Simulator, SimulatorOptions};
use soar_host::action::{refusal_report, ActionHost, ActionRequest, Refusal, Report};
use soar_host::cache;
use soar_host::config::{Config, ProcessEnvironment};
use soar_host::runtime::{LoadOptions, PluginRuntime};
use soar_host::services::{LogRecord, LogSink};
use soar_types::host::LogLevel;
use soar_types::model::ErrorKind;
use soar_types::{Action, WIT_PACKAGE, WIT_VERSION};
use serde_json::Value;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where this workspace builds the component (`scripts/build-plugin.sh`).
pub const WORKSPACE_PLUGIN: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm32-wasip2/component/restricted_group_plugin.wasm");
pub const PLUGIN_FILE_NAME: &str = "restricted_group_plugin.wasm";

const USAGE: &str = "\
soar-host: runs the restricted-group SOAR plugin (Zscaler ZPA/ZIA or any SCIM 2.0 service)

usage:
  soar-host [--plugin FILE] [--config FILE] [--output json|table] [--correlation-id ID] COMMAND
  soar-host --version | --help

commands:
  test-connection    [--idp NAME]
  add-to-group       USERS [--idp NAME] [--dry-run] [--max-retries N] [--timeout-ms N]
  remove-from-group  USERS [--idp NAME] [--dry-run] [--max-retries N] [--timeout-ms N]
  check-membership   USERS [--idp NAME]
  describe
  simulator          [--listen ADDR] [--token-env NAME] [--seed FILE] [--quirk NAME]... [--fault NAME]...
  demo

USERS: one or more of  --user USER  |  --users-file FILE  (one USER a line; '-' reads standard input)
USER:  an email (the SCIM userName)  |  id:SCIM_ID  |  external:EXTERNAL_ID

exit codes: 0 success, 3 partial, 1 failed, 2 refused before sending anything

examples:
  soar-host demo
  soar-host --config soar.json test-connection
  soar-host --config soar.json --correlation-id INC-4711 add-to-group --user alice@corp.example
  soar-host --config soar.json remove-from-group --users-file risky.txt --idp entra-prod --dry-run
  soar-host --config soar.json --output table check-membership --user id:7000777

'soar-host COMMAND --help' shows one command with an example.";

fn command_help(command: &str) -> Option<String> {
    let (synopsis, about, example) = match command {
        "test-connection" => (
            "test-connection [--idp NAME]",
            "Proves each provider's base URL, token and restricted group with an authenticated request.",
            "soar-host --config soar.json test-connection --idp entra-prod",
        ),
        "add-to-group" => (
            "add-to-group USERS [--idp NAME] [--dry-run] [--max-retries N] [--timeout-ms N]",
            "Puts the users into each provider's restricted group (already a member is success).",
            "soar-host --config soar.json --correlation-id INC-4711 add-to-group --user alice@corp.example",
        ),
        "remove-from-group" => (
            "remove-from-group USERS [--idp NAME] [--dry-run] [--max-retries N] [--timeout-ms N]",
            "Takes the users out of each provider's restricted group (not a member is success).",
            "soar-host --config soar.json remove-from-group --user alice@corp.example --dry-run",
        ),
        "check-membership" => (
            "check-membership USERS [--idp NAME]",
            "Reports whether each user is in the restricted group; changes nothing.",
            "soar-host --config soar.json --output table check-membership --users-file users.txt",
        ),
        "describe" => (
            "describe",
            "Prints the plugin's manifest (settings, credential, actions with their schemas).",
            "soar-host describe",
        ),
        "simulator" => (
            "simulator [--listen ADDR] [--token-env NAME] [--seed FILE] [--quirk NAME]... [--fault NAME]...",
            "Serves a ZPA-like SCIM endpoint on loopback until interrupted; prints {\"base_url\",\"token\"} when ready.",
            "SIM_TOKEN=s3cret soar-host simulator --listen 127.0.0.1:8642 --token-env SIM_TOKEN --quirk filter-ignored",
        ),
        "demo" => (
            "demo",
            "Starts the simulator in-process and runs test-connection, add-to-group twice and remove-from-group.",
            "soar-host demo",
        ),
        _ => return None,
    };
    let mut text = format!("usage: soar-host [GLOBAL OPTIONS] {synopsis}\n\n{about}\n\nexample:\n  {example}\n");
    if command == "simulator" {
        text.push_str("\nquirks:\n");
        for quirk in Quirk::ALL {
            text.push_str(&format!("  {:<24} {}\n", quirk.name(), quirk.about()));
        }
        text.push_str("\nfaults:\n");
        for fault in Fault::ALL {
            text.push_str(&format!("  {:<24} {}\n", fault.name(), fault.about()));
        }
    }
    Some(text)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Table,
}

struct Globals {
    plugin: Option<PathBuf>,
    config: Option<PathBuf>,
    output: OutputFormat,
    correlation_id: Option<String>,
}

/// Argument words with `--name value` and `--name=value` both accepted.
struct Words {
    items: Vec<String>,
    position: usize,
}

impl Words {
    fn next(&mut self) -> Option<String> {
        let item = self.items.get(self.position).cloned();
        self.position += 1;
        item
    }

    fn peek(&self) -> Option<&str> {
        self.items.get(self.position).map(String::as_str)
    }

    /// Splits `--name=value`; returns the name and an inline value.
    fn option(word: &str) -> (String, Option<String>) {
        match word.split_once('=') {
            Some((name, value)) if word.starts_with("--") => (name.to_string(), Some(value.to_string())),
            _ => (word.to_string(), None),
        }
    }

    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, Refusal> {
        match inline.or_else(|| self.next()) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(usage(format!("{name} needs a value"))),
        }
    }
}

fn usage(message: impl Into<String>) -> Refusal {
    let message = message.into();
    Refusal::new(ErrorKind::InvalidInput, format!("{message} (see soar-host --help)"))
}

/// Runs the CLI; returns the exit code.
pub fn main_with(args: Vec<String>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let mut words = Words { items: args, position: 0 };
    let mut globals = Globals {
        plugin: None,
        config: None,
        output: OutputFormat::Json,
        correlation_id: None,
    };
    let command = loop {
        let Some(word) = words.next() else {
            let _ = writeln!(stderr, "{USAGE}");
            return print_report(stdout, OutputFormat::Json, &refusal_report(None, &usage("no command given")));
        };
        let (name, inline) = Words::option(&word);
        let parsed = match name.as_str() {
            "--help" | "-h" => {
                let _ = writeln!(stdout, "{USAGE}");
                return 0;
            }
            "--version" | "-V" => return print_version(&globals, stdout),
            "--plugin" => words.value("--plugin", inline).map(|v| globals.plugin = Some(PathBuf::from(v))),
            "--config" => words.value("--config", inline).map(|v| globals.config = Some(PathBuf::from(v))),
            "--correlation-id" => words.value("--correlation-id", inline).and_then(|v| {
                if v.chars().any(char::is_control) || v.len() > 200 {
                    Err(usage("--correlation-id must be one line of at most 200 characters"))
                } else {
                    globals.correlation_id = Some(v);
                    Ok(())
                }
            }),
            "--output" => words.value("--output", inline).and_then(|v| match v.as_str() {
                "json" => Ok(globals.output = OutputFormat::Json),
                "table" => Ok(globals.output = OutputFormat::Table),
                other => Err(usage(format!("--output {other}: use json or table"))),
            }),
            flag if flag.starts_with('-') => Err(usage(format!("unknown option {flag} (global options come before the command)"))),
            _ => break word,
        };
        if let Err(refusal) = parsed {
            return print_report(stdout, globals.output, &refusal_report(None, &refusal));
        }
    };
    if matches!(words.peek(), Some("--help" | "-h")) {
        return match command_help(&command) {
            Some(text) => {
                let _ = write!(stdout, "{text}");
                0
            }
            None => print_report(stdout, globals.output, &refusal_report(None, &usage(format!("unknown command {command}")))),
        };
    }
    match command.as_str() {
        "describe" => run_describe(&globals, &mut words, stdout),
        "demo" => run_demo(&globals, &mut words, stdout, stderr),
        "simulator" => run_simulator(&mut words, stdout),
        other => match Action::parse(other) {
            Some(action) => {
                let report = run_action(&globals, action, &mut words, stderr);
                print_report(stdout, globals.output, &report)
            }
            None => print_report(
                stdout,
                globals.output,
                &refusal_report(None, &usage(format!("unknown command {other}"))),
            ),
        },
    }
}

fn print_report(stdout: &mut dyn Write, format: OutputFormat, report: &Report) -> i32 {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(&report.document).expect("JSON serialises"),
        OutputFormat::Table => table(&report.document, std::io::stdout().is_terminal()),
    };
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
    report.exit_code
}

/// One line per provider and user: outcome, or the error's kind and message.
pub fn table(document: &Value, colour: bool) -> String {
    let paint = |text: &str, code: &str| if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() };
    let status = document["status"].as_str().unwrap_or("?");
    let mut lines = vec![format!(
        "{} {}  (http requests: {})",
        document["action"].as_str().unwrap_or("soar-host"),
        paint(status, if status == "success" { "32" } else if status == "partial" { "33" } else { "31" }),
        document["http_requests"].as_u64().unwrap_or(0)
    )];
    let describe_error = |error: &Value| format!("{}: {}", error["kind"].as_str().unwrap_or("?"), error["message"].as_str().unwrap_or(""));
    if document["providers"].as_array().is_none() {
        if let Some(error) = document.get("error") {
            lines.push(paint(&describe_error(error), "31"));
        }
    }
    let mut rows: Vec<[String; 4]> = vec![["PROVIDER".into(), "USER".into(), "OUTCOME".into(), "DETAIL".into()]];
    for provider in document["providers"].as_array().into_iter().flatten() {
        let idp = provider["idp"].as_str().unwrap_or("?").to_string();
        let group = &provider["group"];
        let group_text = group["display_name"].as_str().or(group["id"].as_str()).unwrap_or("").to_string();
        if let Some(error) = provider["error"].as_object().map(|_| &provider["error"]) {
            rows.push([idp.clone(), "-".into(), "error".into(), describe_error(error)]);
        } else if let Some(outcome) = provider["outcome"].as_str() {
            rows.push([idp.clone(), "-".into(), outcome.into(), format!("group {group_text}")]);
        }
        for user in provider["users"].as_array().into_iter().flatten() {
            let name = user["user"].as_str().unwrap_or("?").to_string();
            match (user["outcome"].as_str(), user["error"].as_object()) {
                (_, Some(_)) => rows.push([idp.clone(), name, "error".into(), describe_error(&user["error"])]),
                (Some(outcome), None) => {
                    let id = user["user_id"].as_str().map(|id| format!("user id {id}")).unwrap_or_default();
                    rows.push([idp.clone(), name, outcome.into(), id]);
                }
                (None, None) => rows.push([idp.clone(), name, "-".into(), String::new()]),
            }
        }
    }
    if rows.len() > 1 {
        let widths: Vec<usize> = (0..3).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for (index, row) in rows.iter().enumerate() {
            let outcome = format!("{:<w$}", row[2], w = widths[2]);
            let outcome = match row[2].as_str() {
                _ if index == 0 => outcome,
                "error" => paint(&outcome, "31"),
                "-" => outcome,
                _ => paint(&outcome, "32"),
            };
            lines.push(format!("{:<w0$}  {:<w1$}  {outcome}  {}", row[0], row[1], row[3], w0 = widths[0], w1 = widths[1]).trim_end().to_string());
        }
    }
    lines.join("\n")
}

fn default_plugin_path() -> PathBuf {
    if let Some(beside) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join(PLUGIN_FILE_NAME))) {
        if beside.is_file() {
            return beside;
        }
    }
    PathBuf::from(WORKSPACE_PLUGIN)
}

fn load_plugin(globals: &Globals, config: Option<&Config>) -> Result<PluginRuntime, Refusal> {
    let path = globals.plugin.clone().unwrap_or_else(default_plugin_path);
    let cache_dir = cache::cache_dir(config.and_then(|c| c.cache_dir.as_deref()));
    let options = LoadOptions {
        cache_dir: cache_dir.as_deref(),
        expected_sha256: config.and_then(|c| c.plugin_sha256.as_deref()),
        pooling: false,
    };
    PluginRuntime::load_file(&path, &options).map_err(|e| Refusal::new(ErrorKind::PluginLoad, e.0))
}

fn stderr_log(correlation_id: Option<String>) -> LogSink {
    let verbose = std::env::var("SOAR_HOST_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug"));
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
        eprintln!("soar-host{context} {level}: {}", record.message);
    })
}

fn run_action(globals: &Globals, action: Action, words: &mut Words, stderr: &mut dyn Write) -> Report {
    let action_name = Some(action.as_str());
    let request = match parse_action_args(globals, action, words) {
        Ok(request) => request,
        Err(refusal) => return refusal_report(action_name, &refusal),
    };
    let Some(config_path) = &globals.config else {
        return refusal_report(
            action_name,
            &Refusal::new(ErrorKind::InvalidConfig, "--config FILE is required: it lists the identity providers"),
        );
    };
    let config = match Config::load(config_path, &ProcessEnvironment) {
        Ok(config) => config,
        Err(why) => return refusal_report(action_name, &Refusal::new(ErrorKind::InvalidConfig, why)),
    };
    let runtime = match load_plugin(globals, Some(&config)) {
        Ok(runtime) => runtime,
        Err(refusal) => return refusal_report(action_name, &refusal),
    };
    let _ = stderr.flush();
    let host = ActionHost::new(Arc::new(runtime), config, stderr_log(request.correlation_id.clone()));
    host.run(&request)
}

fn parse_action_args(globals: &Globals, action: Action, words: &mut Words) -> Result<ActionRequest, Refusal> {
    let mut request = ActionRequest::new(action);
    request.correlation_id = globals.correlation_id.clone();
    let changes = matches!(action, Action::AddToGroup | Action::RemoveFromGroup);
    while let Some(word) = words.next() {
        let (name, inline) = Words::option(&word);
        match name.as_str() {
            "--idp" => request.idp = Some(words.value("--idp", inline)?),
            "--user" if action.takes_users() => request.users.push(words.value("--user", inline)?),
            "--users-file" if action.takes_users() => {
                let file = words.value("--users-file", inline)?;
                request.users.extend(read_users_file(&file)?);
            }
            "--dry-run" if changes => request.dry_run = true,
            "--max-retries" if changes => {
                let value = words.value("--max-retries", inline)?;
                request.max_retries =
                    Some(value.parse().map_err(|_| usage(format!("--max-retries {value}: give a whole number")))?);
            }
            "--timeout-ms" if changes => {
                let value = words.value("--timeout-ms", inline)?;
                let parsed: u64 = value.parse().map_err(|_| usage(format!("--timeout-ms {value}: give a whole number")))?;
                if parsed == 0 {
                    return Err(usage("--timeout-ms must be greater than 0"));
                }
                request.timeout_ms = Some(parsed);
            }
            other => {
                return Err(usage(format!(
                    "{} does not take {other}{}",
                    action.as_str(),
                    if other.starts_with('-') { "" } else { " (name users with --user)" }
                )))
            }
        }
    }
    Ok(request)
}

/// One user a line; blank lines and `#` comments ignored; `-` reads standard input.
fn read_users_file(file: &str) -> Result<Vec<String>, Refusal> {
    let text = if file == "-" {
        let mut text = String::new();
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| Refusal::new(ErrorKind::InvalidInput, format!("cannot read users from standard input: {e}")))?;
            text.push_str(&line);
            text.push('\n');
        }
        text
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| Refusal::new(ErrorKind::InvalidInput, format!("cannot read --users-file {file}: {e}")))?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn expect_no_more(words: &mut Words, command: &str) -> Result<(), Refusal> {
    match words.next() {
        None => Ok(()),
        Some(extra) => Err(usage(format!("{command} takes no {extra}"))),
    }
}

fn run_describe(globals: &Globals, words: &mut Words, stdout: &mut dyn Write) -> i32 {
    let described = expect_no_more(words, "describe")
        .and_then(|()| load_plugin(globals, None))
        .and_then(|runtime| {
            runtime
                .describe(stderr_log(None))
                .map_err(|failure| Refusal::new(failure.kind, failure.message))
        });
    match described {
        Ok(manifest) => {
            let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&manifest).expect("JSON serialises"));
            0
        }
        Err(refusal) => {
            let code = if refusal.kind == ErrorKind::PluginLoad { 2 } else { 1 };
            let mut report = refusal_report(Some("describe"), &refusal);
            report.exit_code = code;
            print_report(stdout, globals.output, &report)
        }
    }
}

fn print_version(globals: &Globals, stdout: &mut dyn Write) -> i32 {
    let _ = writeln!(stdout, "soar-host {HOST_VERSION}");
    let _ = writeln!(stdout, "wit {WIT_PACKAGE}@{WIT_VERSION}");
    match load_plugin(globals, None).and_then(|r| r.describe(stderr_log(None)).map_err(|f| Refusal::new(f.kind, f.message))) {
        Ok(manifest) => {
            let _ = writeln!(stdout, "plugin {} {} (wit {})", manifest.name, manifest.version, manifest.wit_version);
            0
        }
        Err(refusal) => {
            let _ = writeln!(stdout, "plugin not loadable: {}", refusal.message);
            0
        }
    }
}

fn run_demo(globals: &Globals, words: &mut Words, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let runtime = match expect_no_more(words, "demo").and_then(|()| load_plugin(globals, None)) {
        Ok(runtime) => runtime,
        Err(refusal) => return print_report(stdout, globals.output, &refusal_report(Some("demo"), &refusal)),
    };
    let _ = writeln!(stderr, "soar-host demo: starting a simulated ZPA SCIM endpoint on 127.0.0.1");
    match demo::run(runtime, globals.correlation_id.clone(), stderr_log(globals.correlation_id.clone())) {
        Ok((document, all_as_expected)) => {
            let text = match globals.output {
                OutputFormat::Json => serde_json::to_string_pretty(&document).expect("JSON serialises"),
                OutputFormat::Table => document["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|step| table(step, std::io::stdout().is_terminal()))
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            };
            let _ = writeln!(stdout, "{text}");
            if all_as_expected {
                0
            } else {
                1
            }
        }
        Err(why) => print_report(
            stdout,
            globals.output,
            &refusal_report(Some("demo"), &Refusal::new(ErrorKind::InvalidConfig, why)),
        ),
    }
}

fn run_simulator(words: &mut Words, stdout: &mut dyn Write) -> i32 {
    match parse_simulator_args(words).and_then(|options| Simulator::start(options.0).map(|s| (s, options.1)).map_err(|why| Refusal::new(ErrorKind::InvalidInput, why))) {
        Ok((simulator, generated)) => {
            let mut ready = serde_json::json!({"base_url": simulator.base_url()});
            if generated {
                ready["token"] = Value::String(simulator.token().to_string());
            }
            let _ = writeln!(stdout, "{ready}");
            let _ = stdout.flush();
            loop {
                std::thread::park();
            }
        }
        Err(refusal) => print_report(stdout, OutputFormat::Json, &refusal_report(Some("simulator"), &refusal)),
    }
}

/// The simulator's options, and whether its token was generated (then it is printed).
fn parse_simulator_args(words: &mut Words) -> Result<(SimulatorOptions, bool), Refusal> {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut token_env = None;
    let mut seed = Seed::default();
    let mut quirks = Vec::new();
    let mut faults = Vec::new();
    while let Some(word) = words.next() {
        let (name, inline) = Words::option(&word);
        match name.as_str() {
            "--listen" => {
                let value = words.value("--listen", inline)?;
                listen = value
                    .parse()
                    .map_err(|_| usage(format!("--listen {value}: give an address such as 127.0.0.1:8642")))?;
                if !listen.ip().is_loopback() {
                    return Err(usage(format!("--listen {value}: the simulator listens on loopback only")));
                }
            }
            "--token-env" => token_env = Some(words.value("--token-env", inline)?),
            "--seed" => {
                let file = words.value("--seed", inline)?;
                seed = Seed::from_file(Path::new(&file)).map_err(|why| Refusal::new(ErrorKind::InvalidInput, why))?;
            }
            "--quirk" => quirks.push(Quirk::parse(&words.value("--quirk", inline)?).map_err(usage)?),
            "--fault" => faults.push(Fault::parse(&words.value("--fault", inline)?).map_err(usage)?),
            other => return Err(usage(format!("simulator does not take {other}"))),
        }
    }
    let (token, generated) = match token_env {
        Some(name) => match std::env::var(&name) {
            Ok(token) if !token.is_empty() && !token.chars().any(char::is_control) => (token, false),
            _ => return Err(usage(format!("--token-env {name}: the variable is unset, empty or holds a control character"))),
        },
        None => (generate_token(), true),
    };
    let mut options = SimulatorOptions::new(token);
    options.listen = listen;
    options.seed = seed;
    options.quirks = quirks;
    options.faults = faults;
    Ok((options, generated))
}
