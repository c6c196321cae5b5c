//! Loading the plugin: the compiled-component cache (owner-only, checked before use, rebuilt
//! when corrupt) and the `plugin_sha256` pin.

use serde_json::json;
use soar_e2e::*;
use std::path::Path;

fn cache_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files
}

#[test]
fn the_cache_is_private_checked_and_rebuilt_when_corrupt() {
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"cache_dir": "cache"}));
    let cache = dir.join("cache");

    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = cache_files(&cache);
    let names: Vec<String> = files.iter().map(|f| f.extension().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["cwasm", "sha256"], "{files:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the cache folder is owner-only");
    }
    let artefact = &files[0];
    let good = std::fs::read(artefact).unwrap();
    assert!(!String::from_utf8_lossy(&good).contains(TOKEN));

    // A second run loads it as it is.
    let modified = std::fs::metadata(artefact).unwrap().modified().unwrap();
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::metadata(artefact).unwrap().modified().unwrap(), modified, "reused, not rewritten");

    // A corrupt entry is discarded and rebuilt.
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(artefact, &bad).unwrap();
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::read(artefact).unwrap().len(), good.len());
    assert_ne!(std::fs::read(artefact).unwrap(), bad, "rebuilt");
}

#[test]
fn a_plugin_with_another_hash_is_refused() {
    let sim = simulator(TOKEN, &[], &[]);
    let dir = scratch_dir();
    let wrong = "0".repeat(64);
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"plugin_sha256": wrong}));
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 2, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["error"]["kind"], "plugin-load");
    let message = doc["error"]["message"].as_str().unwrap();
    let actual = soar_host::cache::sha256_hex(&std::fs::read(plugin_path()).unwrap());
    assert!(message.contains(&wrong) && message.contains(&actual), "names both hashes: {message}");
    assert!(sim.requests().is_empty());

    let config =
        write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"plugin_sha256": actual.to_uppercase()}));
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn the_component_stays_within_300_kb() {
    let size = std::fs::metadata(plugin_path()).expect("the built component").len();
    assert!(size <= 300_000, "the component is {size} bytes, over the 300 KB target");
}
