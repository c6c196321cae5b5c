//! `soar-host`: the command line of the reference host (README, "Command line"). It parses the
//! arguments, loads the config and the plugin through the host library, runs one command and
//! prints exactly one document on stdout; logs go to stderr.

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

fn main() {
    let code = run(std::env::args_os().skip(1).collect(), &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}

/// Runs one command line; returns the exit code.
fn run(args: Vec<std::ffi::OsString>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let (cli, users) = match args::parse(args) {
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
    };
    let request = match &cli.command {
        Some(Command::TestConnection(target)) => action(Action::TestConnection, target),
        Some(Command::CheckMembership(check)) => action(Action::CheckMembership, &check.target),
        Some(Command::AddToGroup(change) | Command::RemoveFromGroup(change)) => {
            let name = if matches!(cli.command, Some(Command::AddToGroup(_))) {
                Action::AddToGroup
            } else {
                Action::RemoveFromGroup
            };
            commands::ActionArgs {
                dry_run: change.dry_run,
                max_retries: change.max_retries.map(|retries| retries as u32),
                timeout_ms: change.timeout_ms,
                ..action(name, &change.target)
            }
        }
        Some(Command::Describe) => return commands::describe(&cli, stdout),
        Some(Command::Demo) => return commands::demo(&cli, stdout, stderr),
        Some(Command::Simulator(options)) => return commands::simulator(options, stdout),
        // args::parse refuses a missing command; this only keeps the match whole.
        None => return commands::version(&cli, stdout),
    };
    let report = commands::run_action(&cli, &request, stderr);
    print_report(stdout, cli.output, &report)
}
