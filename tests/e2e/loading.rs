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

/// The cache's entries: the artefact and its tag (`.cwasm`, `.tag`) per plugin, and the key.
fn entries(cache: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let files = cache_files(cache);
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files.len(), 3, "{names:?}");
    assert!(names.contains(&"hmac.key".to_string()), "{names:?}");
    let with = |extension: &str| files.iter().find(|f| f.extension().is_some_and(|e| e == extension)).unwrap().clone();
    (with("cwasm"), with("tag"))
}

#[test]
fn the_cache_is_private_checked_and_rebuilt_when_corrupt() {
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"cache_dir": "cache"}));
    let cache = dir.join("cache");

    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    let (artefact, tag) = entries(&cache);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache), 0o700, "the cache folder is owner-only");
        assert_eq!(mode(&cache.join("hmac.key")), 0o600, "the key is owner-only");
        assert_eq!(mode(&artefact), 0o600);
    }
    let good = std::fs::read(&artefact).unwrap();
    assert!(!String::from_utf8_lossy(&good).contains(TOKEN));

    // A second run loads it as it is.
    let modified = std::fs::metadata(&artefact).unwrap().modified().unwrap();
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::metadata(&artefact).unwrap().modified().unwrap(), modified, "reused, not rewritten");

    // A corrupt entry is discarded and rebuilt, even when a plain digest of it stands as its tag.
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(&artefact, &bad).unwrap();
    std::fs::write(&tag, soar_host::cache::sha256_hex(&bad)).unwrap();
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::read(&artefact).unwrap().len(), good.len());
    assert_ne!(std::fs::read(&artefact).unwrap(), bad, "rebuilt");
}

#[test]
fn no_entry_can_stand_in_for_another_plugins() {
    // The cache holds the real plugin's entry and a hostile plugin's; the hostile entry, copied
    // over the real one with its tag, must not run in its place.
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"cache_dir": "cache"}));
    let cache = dir.join("cache");
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    let (real_artefact, real_tag) = entries(&cache);
    let hostile_cache = dir.join("hostile-cache");
    std::fs::create_dir_all(&hostile_cache).unwrap();
    let options = soar_host::runtime::LoadOptions { cache_dir: Some(&hostile_cache), ..Default::default() };
    soar_host::runtime::PluginRuntime::load_file(&hostile_path("plain"), &options).expect("the hostile plugin loads");
    let (hostile_artefact, hostile_tag) = entries(&hostile_cache);
    std::fs::copy(&hostile_artefact, &real_artefact).unwrap();
    std::fs::copy(&hostile_tag, &real_tag).unwrap();
    std::fs::copy(hostile_cache.join("hmac.key"), cache.join("hmac.key")).unwrap();
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "the real plugin ran, rebuilt from its own bytes: {run:?}");
    assert_eq!(run.json()["providers"][0]["outcome"], "connected");
    assert_ne!(std::fs::read(&real_artefact).unwrap(), std::fs::read(&hostile_artefact).unwrap());
}

#[cfg(unix)]
#[test]
fn a_cache_folder_others_can_write_is_not_trusted_with_compiled_code() {
    use std::os::unix::fs::PermissionsExt;
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"cache_dir": "cache"}));
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "compiled in memory instead: {run:?}");
    assert!(run.stderr.contains("is not used for compiled code") && run.stderr.contains("mode 777"), "{}", run.stderr);
    assert!(cache_files(&cache).is_empty(), "nothing compiled is written to it");

    // An owner-only folder whose entry others may write: the entry is not read, and is rebuilt.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(run_with(&config, &["test-connection"]).code, 0);
    let (artefact, _) = entries(&cache);
    std::fs::set_permissions(&artefact, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::metadata(&artefact).unwrap().permissions().mode() & 0o777, 0o600, "rewritten owner-only");
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

/// The budget is 300 KB; new capability may spend up to 30 KB more, said in the README's
/// performance section (concurrent batches and request purposes for the request log and trace
/// spent 1.5 KB of it).
#[test]
fn the_component_stays_within_its_size_budget() {
    let size = std::fs::metadata(plugin_path()).expect("the built component").len();
    assert!(size <= 330_000, "the component is {size} bytes, over the 300 KB budget and its 30 KB allowance");
}
