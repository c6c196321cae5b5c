//! The command line as the contract fixes it (README, "Command line"), declared once with clap:
//! each command's synopsis, description and example live here and nowhere else; the top-level
//! help is built from them. Every usage error becomes the exit-2 refusal document.

use clap::builder::{NonEmptyStringValueParser, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind as ClapKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use scim_simulator::{Fault, Quirk};
use soar_host::action::Refusal;
use soar_host::config;
use soar_types::model::ErrorKind;
use std::ffi::OsString;
use std::path::PathBuf;

const GLOBAL_USAGE: &str =
    "soar-host [--plugin FILE] [--config FILE] [--output json|table] [--correlation-id ID] [--trace FILE] COMMAND";
const USERS_HELP: &str = "\
USERS: one or more of  --user USER  |  --users-file FILE  (one USER a line; '-' reads standard input)
USER:  an email (the SCIM userName)  |  id:SCIM_ID  |  external:EXTERNAL_ID";
const SUBCOMMAND_TEMPLATE: &str = "usage: {usage}\n\n{about}\n\n{all-args}{after-help}";

#[derive(Parser, Debug)]
#[command(name = "soar-host", disable_version_flag = true, disable_help_subcommand = true)]
pub struct Cli {
    /// The plugin component (default: the one this workspace builds, or the one beside soar-host).
    #[arg(long, value_name = "FILE", value_parser = NonEmptyStringValueParser::new().map(PathBuf::from))]
    pub plugin: Option<PathBuf>,
    /// The config file: identity providers, tokens, limits.
    #[arg(long, value_name = "FILE", value_parser = NonEmptyStringValueParser::new().map(PathBuf::from))]
    pub config: Option<PathBuf>,
    /// json (default, for machines) or table (for people).
    #[arg(long, value_enum, value_name = "json|table", default_value = "json")]
    pub output: OutputFormat,
    /// A SOAR incident or run id, echoed in the result and every log line.
    #[arg(long, value_name = "ID", value_parser = correlation_id)]
    pub correlation_id: Option<String>,
    /// Writes the action's HTTP exchanges to FILE as a HAR 1.2 archive (token scrubbed, bodies capped at 64 KiB).
    #[arg(long, value_name = "FILE", value_parser = NonEmptyStringValueParser::new().map(PathBuf::from))]
    pub trace: Option<PathBuf>,
    /// The host's version, the WIT version and the plugin's name and version.
    #[arg(long, short = 'V')]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Table,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Proves each provider's base URL, token and restricted group with an authenticated request.
    #[command(
        override_usage = "soar-host [GLOBAL OPTIONS] test-connection [--idp NAME]",
        after_help = "example:\n  soar-host --config soar.json test-connection --idp entra-prod\n"
    )]
    TestConnection(Target),
    /// Puts the users into each provider's restricted group (already a member is success) and records the restriction.
    #[command(
        override_usage = "soar-host [GLOBAL OPTIONS] add-to-group USERS [--idp NAME] [--dry-run] [--max-retries N] [--timeout-ms N]\n                     [--for DURATION | --until RFC3339] [--reason TEXT]",
        after_help = "example:\n  soar-host --config soar.json --correlation-id INC-4711 add-to-group --user alice@corp.example --for 24h --reason \"impossible travel\"\n"
    )]
    AddToGroup(Add),
    /// Takes the users out of each provider's restricted group (not a member is success).
    #[command(
        override_usage = "soar-host [GLOBAL OPTIONS] remove-from-group USERS [--idp NAME] [--dry-run] [--max-retries N] [--timeout-ms N]",
        after_help = "example:\n  soar-host --config soar.json remove-from-group --user alice@corp.example --dry-run\n"
    )]
    RemoveFromGroup(Change),
    /// Lists the restrictions the ledger holds: who is restricted, since when, until when and why.
    #[command(
        override_usage = "soar-host [GLOBAL OPTIONS] restrictions [--idp NAME] [--user USER] [--state active|expired|lifted|all]",
        after_help = "example:\n  soar-host --config soar.json --output table restrictions --state all\n"
    )]
    Restrictions(RestrictionsArgs),
    /// Settles every restriction against the groups' members: lifts what expired, puts back what an identity provider undid, reports members nobody recorded.
    #[command(
        override_usage = "soar-host [GLOBAL OPTIONS] reconcile [--idp NAME] [--dry-run]",
        after_help = "example:\n  soar-host --config soar.json reconcile --dry-run\n"
    )]
    Reconcile(ReconcileArgs),
    /// Reports whether each user is in the restricted group; changes nothing.
    #[command(
        override_usage = "soar-host [GLOBAL OPTIONS] check-membership USERS [--idp NAME]",
        after_help = "example:\n  soar-host --config soar.json --output table check-membership --users-file users.txt\n"
    )]
    CheckMembership(Check),
    /// Prints the plugin's manifest (settings, credential, actions with their schemas).
    #[command(override_usage = "soar-host [GLOBAL OPTIONS] describe", after_help = "example:\n  soar-host describe\n")]
    Describe,
    /// Serves a ZPA-like SCIM endpoint on loopback until interrupted; prints {"base_url","token"} when ready.
    #[command(
        override_usage = "soar-host [GLOBAL OPTIONS] simulator [--listen ADDR] [--token-env NAME] [--seed FILE] [--quirk NAME]... [--fault NAME]...\n                     [--latency-ms N] [--rate-limit N] [--max-page-size N] [--generate-users N [--generate-members M]]",
        after_help = simulator_help()
    )]
    Simulator(SimulatorArgs),
    /// Starts the simulator in-process and runs test-connection, add-to-group twice and remove-from-group.
    #[command(override_usage = "soar-host [GLOBAL OPTIONS] demo", after_help = "example:\n  soar-host demo\n")]
    Demo,
}

#[derive(Args, Debug)]
pub struct Target {
    /// Run on this identity provider only (default: every configured one).
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub idp: Option<String>,
}

#[derive(Args, Debug)]
pub struct Users {
    /// A user: an email (the SCIM userName), id:SCIM_ID or external:EXTERNAL_ID.
    #[arg(long = "user", value_name = "USER", value_parser = NonEmptyStringValueParser::new())]
    pub user: Vec<String>,
    /// A file of users, one a line ('#' comments and blank lines skipped; '-' reads standard input).
    #[arg(long = "users-file", value_name = "FILE", value_parser = NonEmptyStringValueParser::new())]
    pub users_file: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Check {
    #[command(flatten)]
    pub users: Users,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args, Debug)]
pub struct Change {
    #[command(flatten)]
    pub users: Users,
    #[command(flatten)]
    pub target: Target,
    /// Read and report would-add / would-remove; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Retries of 429, 502, 503, 504 and connection failures for this call (0 for time-sensitive playbooks).
    #[arg(long, value_name = "N", value_parser = bounded(config::MAX_RETRIES))]
    pub max_retries: Option<u64>,
    /// The wall-clock limit of the whole action, in milliseconds (overrides deadline_ms).
    #[arg(long, value_name = "N", value_parser = bounded(config::DEADLINE_MS))]
    pub timeout_ms: Option<u64>,
}

#[derive(Args, Debug)]
pub struct Add {
    #[command(flatten)]
    pub change: Change,
    /// How long the restriction lasts (3s, 90m, 24h, 7d; at most 365 days); reconcile lifts it after.
    // Hyphen values are taken so that `--for -5m` meets the duration rule, not a flag error.
    #[arg(long = "for", value_name = "DURATION", value_parser = NonEmptyStringValueParser::new(), conflicts_with = "until", allow_hyphen_values = true)]
    pub restrict_for: Option<String>,
    /// When the restriction ends, RFC 3339 (2026-12-31T18:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = NonEmptyStringValueParser::new(), allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Why the users are restricted, for the ledger and the restrictions report.
    #[arg(long, value_name = "TEXT", value_parser = NonEmptyStringValueParser::new())]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestrictionsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Only this user: an email, id:SCIM_ID, or the user as first named.
    #[arg(long, value_name = "USER", value_parser = NonEmptyStringValueParser::new())]
    pub user: Option<String>,
    /// active (default), expired (past their end, not yet reconciled), lifted, or all.
    #[arg(long, value_name = "STATE", default_value = "active", value_parser = ["active", "expired", "lifted", "all"])]
    pub state: String,
}

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub target: Target,
    /// Report would-lift / would-re-add; change nothing on the server or in the ledger.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct SimulatorArgs {
    /// Listen on this loopback address (default 127.0.0.1 and a free port).
    #[arg(long, value_name = "ADDR", value_parser = loopback_address)]
    pub listen: Option<std::net::SocketAddr>,
    /// The variable holding the bearer token to accept (default: a generated token, printed).
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub token_env: Option<String>,
    /// A seed file of users and groups.
    #[arg(long, value_name = "FILE", value_parser = NonEmptyStringValueParser::new().map(PathBuf::from))]
    pub seed: Option<PathBuf>,
    /// Play a quirk of a real server (repeatable).
    #[arg(long, value_name = "NAME", value_parser = Quirk::parse)]
    pub quirk: Vec<Quirk>,
    /// Inject a fault (repeatable).
    #[arg(long, value_name = "NAME", value_parser = Fault::parse)]
    pub fault: Vec<Fault>,
    /// Delay every answer this many milliseconds (the distance to a tenant).
    #[arg(long, value_name = "N", value_parser = bounded(config::Bound { key: "--latency-ms", min: 0, max: 60_000 }))]
    pub latency_ms: Option<u64>,
    /// Answer 429 with Retry-After: 1 above N requests per second (a token bucket with a burst of N), as ZIA does.
    #[arg(long, value_name = "N", value_parser = bounded(config::Bound { key: "--rate-limit", min: 1, max: 100_000 }))]
    pub rate_limit: Option<u64>,
    /// Add N users, user1@corp.example ... userN@corp.example, and the group "ZPA Restricted Users".
    #[arg(long, value_name = "N", value_parser = bounded(config::Bound { key: "--generate-users", min: 1, max: 1_000_000 }))]
    pub generate_users: Option<u64>,
    /// Serve at most N resources a page, whatever count asks (default 100 as ZPA; 1000 plays ZIA).
    #[arg(long, value_name = "N", value_parser = bounded(config::Bound { key: "--max-page-size", min: 1, max: 10_000 }))]
    pub max_page_size: Option<u64>,
    /// Put the first M generated users in "ZPA Restricted Users".
    #[arg(long, value_name = "M", value_parser = bounded(config::Bound { key: "--generate-members", min: 0, max: 1_000_000 }))]
    pub generate_members: Option<u64>,
}

fn simulator_help() -> String {
    let mut text = String::from(
        "example:\n  SIM_TOKEN=sim-token-0123456789 soar-host simulator --listen 127.0.0.1:8642 --token-env SIM_TOKEN --quirk filter-ignored\n",
    );
    text.push_str("\nquirks:\n");
    for quirk in Quirk::ALL {
        text.push_str(&format!("  {:<24} {}\n", quirk.name(), quirk.about()));
    }
    text.push_str("\nfaults:\n");
    for fault in Fault::ALL {
        text.push_str(&format!("  {:<24} {}\n", fault.name(), fault.about()));
    }
    text
}

fn correlation_id(value: &str) -> Result<String, String> {
    match soar_host::action::correlation_id_problem(value) {
        Some(problem) => Err(problem.into()),
        None => Ok(value.to_string()),
    }
}

/// A whole number in the same range as the config key the flag overrides.
fn bounded(bound: config::Bound) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |value| match value.parse::<u64>() {
        Ok(number) if (bound.min..=bound.max).contains(&number) => Ok(number),
        _ => Err(format!("give a whole number from {} to {}", bound.min, bound.max)),
    }
}

fn loopback_address(value: &str) -> Result<std::net::SocketAddr, String> {
    let address: std::net::SocketAddr =
        value.parse().map_err(|_| "give an address such as 127.0.0.1:8642".to_string())?;
    if !address.ip().is_loopback() {
        return Err("the simulator listens on loopback only".into());
    }
    Ok(address)
}

/// Where a user came from, in the order the command line gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSource {
    User(String),
    File(String),
}

/// What the command line asks for.
pub enum Parsed {
    /// Run this; the users of the command in the order given.
    Run(Box<Cli>, Vec<UserSource>),
    /// Print this text on stdout and exit 0 (`--help`).
    Help(String),
    /// Refuse with exit 2 (`command`: the command the words were for); `show_usage` when
    /// nothing was asked for.
    Refused { refusal: Refusal, command: Option<String>, show_usage: bool },
}

/// The clap command with the top-level help built from the commands' own synopses and examples.
pub fn command() -> clap::Command {
    let command = Cli::command();
    let mut commands = String::new();
    let mut examples = String::new();
    for sub in command.get_subcommands() {
        let usage = sub.get_overridden_usage().map(|u| u.to_string()).unwrap_or_default();
        let synopsis =
            usage.trim_start_matches("soar-host [GLOBAL OPTIONS] ").trim_start_matches(sub.get_name()).trim();
        commands.push_str(format!("  {:<18} {synopsis}", sub.get_name()).trim_end());
        commands.push('\n');
        if let Some(example) = sub.get_after_help().map(|h| h.to_string()) {
            if let Some(line) = example.lines().nth(1) {
                examples.push_str(&format!("{line}\n"));
            }
        }
    }
    let help = format!(
        "soar-host: runs the restricted-group SOAR plugin (Zscaler ZPA/ZIA or any SCIM 2.0 service)\n\n\
         usage:\n  {GLOBAL_USAGE}\n  soar-host --version | --help\n\ncommands:\n{commands}\n{USERS_HELP}\n\n\
         exit codes: 0 success, 3 partial, 1 failed, 2 refused before sending anything\n\nexamples:\n{examples}\n\
         'soar-host COMMAND --help' shows one command with an example."
    );
    command.override_help(help).mut_subcommands(|sub| sub.help_template(SUBCOMMAND_TEMPLATE).disable_version_flag(true))
}

/// Parses the arguments (without the program name).
pub fn parse(args: Vec<OsString>) -> Parsed {
    let named = named_command(&args);
    let matches = match command().no_binary_name(true).try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(error) => return from_clap_error(&error, named),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return from_clap_error(&error, named),
    };
    if cli.command.is_none() && !cli.version {
        return Parsed::Refused { refusal: usage("no command given"), command: None, show_usage: true };
    }
    // `--user` and `--users-file` keep the order they were given in.
    let mut users: Vec<(usize, UserSource)> = Vec::new();
    if let Some((_, sub)) = matches.subcommand() {
        for (id, source) in [("user", UserSource::User as fn(String) -> UserSource), ("users_file", UserSource::File)] {
            // Commands without users do not know the ids: ask for values first.
            if let Ok(Some(values)) = sub.try_get_many::<String>(id) {
                let indices = sub.indices_of(id).into_iter().flatten();
                users.extend(indices.zip(values).map(|(index, value)| (index, source(value.clone()))));
            }
        }
    }
    users.sort_by_key(|(index, _)| *index);
    Parsed::Run(Box::new(cli), users.into_iter().map(|(_, source)| source).collect())
}

fn usage(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorKind::InvalidInput, format!("{} (see soar-host --help)", message.into()))
}

fn context(error: &clap::Error, kind: ContextKind) -> Option<String> {
    match error.get(kind)? {
        ContextValue::String(text) => Some(text.clone()),
        ContextValue::Strings(list) => list.first().cloned(),
        _ => None,
    }
}

/// The command the error happened in, from its usage line (`soar-host [GLOBAL OPTIONS] NAME ...`).
fn failing_command(error: &clap::Error) -> Option<String> {
    let usage = match error.get(ContextKind::Usage)? {
        ContextValue::StyledStr(usage) => usage.to_string(),
        _ => return None,
    };
    let rest = usage.split("[GLOBAL OPTIONS] ").nth(1)?;
    rest.split_whitespace().next().map(str::to_string)
}

/// The first argument that names a command: the action a refusal is reported for when clap's
/// error does not say (a value out of range).
fn named_command(args: &[OsString]) -> Option<String> {
    let commands = command();
    args.iter()
        .filter_map(|arg| arg.to_str())
        .find(|arg| commands.get_subcommands().any(|sub| sub.get_name() == *arg))
        .map(str::to_string)
}

fn from_clap_error(error: &clap::Error, named: Option<String>) -> Parsed {
    let command = failing_command(error);
    let reported = command.clone().or(named);
    let refusal =
        |message: String| Parsed::Refused { refusal: usage(message), command: reported.clone(), show_usage: false };
    let argument = context(error, ContextKind::InvalidArg).unwrap_or_default();
    let option = argument.split([' ', '=']).next().unwrap_or_default().to_string();
    let value = context(error, ContextKind::InvalidValue).unwrap_or_default();
    match error.kind() {
        ClapKind::DisplayHelp | ClapKind::DisplayVersion => Parsed::Help(error.render().to_string()),
        ClapKind::MissingSubcommand | ClapKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Parsed::Refused { refusal: usage("no command given"), command: None, show_usage: true }
        }
        ClapKind::InvalidSubcommand => {
            let name = context(error, ContextKind::InvalidSubcommand).unwrap_or_default();
            refusal(format!("unknown command {name}"))
        }
        ClapKind::UnknownArgument => match &command {
            Some(command) if argument.starts_with('-') => refusal(format!("{command} does not take {argument}")),
            Some(command) => refusal(format!("{command} does not take {argument} (name users with --user)")),
            None if argument.starts_with('-') => {
                refusal(format!("unknown option {argument} (global options come before the command)"))
            }
            None => refusal(format!("unknown command {argument}")),
        },
        ClapKind::InvalidValue if value.is_empty() => refusal(format!("{option} needs a value")),
        ClapKind::InvalidValue if option == "--output" => refusal(format!("--output {value}: use json or table")),
        ClapKind::InvalidValue | ClapKind::ValueValidation => {
            let why =
                std::error::Error::source(error).map(|s| s.to_string()).unwrap_or_else(|| "not a valid value".into());
            refusal(format!("{option} {}: {why}", value.escape_debug()))
        }
        _ => {
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string();
            refusal(first)
        }
    }
}
