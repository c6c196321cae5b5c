//! `soar-host`: the command line of the reference host (see README, "Command line").

mod cli;
mod demo;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::main_with(args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
