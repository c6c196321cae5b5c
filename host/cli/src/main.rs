//! The `soar-host` binary: the command line of [`soar_host_cli::run`].

fn main() {
    let launch = soar_host_cli::Launch::binary();
    let code = soar_host_cli::run(
        std::env::args_os().skip(1).collect(),
        &launch,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
