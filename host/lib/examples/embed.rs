//! The README's "Embedding the host in a Rust SOAR platform", as a program the test command
//! builds (so the README's code always compiles):
//! `cargo run -p soar-host --example embed -- PLUGIN.wasm soar.json alice@corp.example`.

use soar_host::action::{ActionHost, ActionRequest};
use soar_host::config::{Config, ProcessEnvironment};
use soar_host::runtime::{LoadOptions, PluginRuntime};
use soar_host::services::LogRecord;
use soar_types::Action;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, config, user] = args.as_slice() else {
        anyhow::bail!("usage: embed PLUGIN.wasm CONFIG.json USER");
    };
    // Load once, run many: pooling keeps instance slots ready for a long-running host.
    let options = LoadOptions { cache_dir: None, expected_sha256: None, pooling: true };
    let runtime = PluginRuntime::load_file(plugin.as_ref(), &options)?;
    let config = Config::load(config.as_ref(), &ProcessEnvironment)?;
    let log = Arc::new(|record: &LogRecord| eprintln!("{:?}: {}", record.level, record.message));
    let host = ActionHost::new(Arc::new(runtime), config, log);

    let mut request = ActionRequest::new(Action::AddToGroup);
    request.users = vec![user.clone()];
    request.correlation_id = Some("INC-4711".into());
    let report = host.run(&request); // every refusal comes back as a report, never as a panic
    println!("{}", serde_json::to_string_pretty(&report.document)?);
    std::process::exit(report.exit_code); // 0 success, 3 partial, 1 failed, 2 refused
}
