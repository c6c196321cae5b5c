//! `soar-host`: the command line of the reference host (README, "Command line"), as a library:
//! the `soar-host` binary and the Python package's `soar-host` command both call [`run`]. It
//! parses the arguments, loads the config and the plugin through the host library, runs one
//! command and prints exactly one document on stdout; logs go to stderr.

mod args;
mod commands;
mod demo;
mod output;
mod progress;

use args::{Command, Parsed};
use output::print_report;
use soar_host::action::refusal_report;
use soar_types::Action;
use std::io::Write;
use std::path::PathBuf;

pub use commands::{load_plugin, stderr_log, HOST_VERSION, PLUGIN_FILE_NAME};

/// What the program around the command line provides.
pub struct Launch<'a> {
    /// The component `--plugin` defaults to.
    pub default_plugin: PathBuf,
    /// Asked while `simulator` serves: true stops it (a Python caller's Ctrl-C, which Rust code
    /// that never returns to Python would not see).
    pub interrupted: &'a (dyn Fn() -> bool + Sync),
}

impl Launch<'_> {
    /// The `soar-host` binary's: the component beside the executable, else the one this workspace
    /// builds; serving until the process is killed.
    pub fn binary() -> Launch<'static> {
        Launch { default_plugin: commands::binary_default_plugin(), interrupted: &|| false }
    }
}

/// Runs one command line (the arguments after the program's name); returns the exit code.
/// Everything written is flushed before it returns.
pub fn run(args: Vec<std::ffi::OsString>, launch: &Launch, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let code = run_command(args, launch, stdout, stderr);
    let _ = stdout.flush();
    let _ = stderr.flush();
    code
}

fn run_command(args: Vec<std::ffi::OsString>, launch: &Launch, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let (mut cli, users) = match args::parse(args) {
        Parsed::Run(cli, users) => (cli, users),
        Parsed::Help(text) => {
            let _ = write!(stdout, "{text}");
            return 0;
        }
        Parsed::Refused { refusal, command, show_usage } => {
            if show_usage {
                let _ = writeln!(stderr, "{}", args::command().render_help());
            }
            return print_report(stdout, args::OutputFormat::Json, &refusal_report(command.as_deref(), &refusal));
        }
    };
    cli.plugin.get_or_insert_with(|| launch.default_plugin.clone());
    if cli.version {
        return commands::version(&cli, stdout);
    }
    let action = |action: Action, target: &args::Target| commands::ActionArgs {
        action,
        idp: target.idp.clone(),
        users: users.clone(),
        dry_run: false,
        max_retries: None,
        timeout_ms: None,
        restrict_for: None,
        restrict_until: None,
        reason: None,
    };
    let change = |name: Action, change: &args::Change| commands::ActionArgs {
        dry_run: change.dry_run,
        max_retries: change.max_retries.map(|retries| retries as u32),
        timeout_ms: change.timeout_ms,
        ..action(name, &change.target)
    };
    let request = match &cli.command {
        Some(Command::TestConnection(target)) => action(Action::TestConnection, target),
        Some(Command::CheckMembership(check)) => action(Action::CheckMembership, &check.target),
        Some(Command::AddToGroup(add)) => commands::ActionArgs {
            restrict_for: add.restrict_for.clone(),
            restrict_until: add.until.clone(),
            reason: add.reason.clone(),
            ..change(Action::AddToGroup, &add.change)
        },
        Some(Command::RemoveFromGroup(remove)) => change(Action::RemoveFromGroup, remove),
        Some(Command::Restrictions(query)) => return commands::restrictions(&cli, query, stdout),
        Some(Command::Reconcile(reconcile)) => {
            return print_report(stdout, cli.output, &commands::reconcile(&cli, reconcile, stderr))
        }
        Some(Command::Describe) => return commands::describe(&cli, stdout),
        Some(Command::Demo) => return commands::demo(&cli, stdout, stderr),
        Some(Command::Simulator(options)) => return commands::simulator(options, launch.interrupted, stdout),
        // args::parse refuses a missing command; this only keeps the match whole.
        None => return commands::version(&cli, stdout),
    };
    let report = commands::run_action(&cli, &request, stderr);
    print_report(stdout, cli.output, &report)
}
