//! Any config file: the loader never panics, and what it accepts keeps its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soar_host_policy::config::{Config, DEADLINE_MS};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let env = |_: &str| Some("tok-fuzzing-0123456789".to_string());
    if let Ok(config) = Config::from_value(&value, std::path::Path::new("/nonexistent"), &env) {
        assert!(config.limits.deadline_ms <= DEADLINE_MS.max);
        assert!(!config.providers.is_empty());
    }
});
