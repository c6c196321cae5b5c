//! The README's examples are real: the Rust embedding example is `host/lib/examples/embed.rs`
//! word for word, and that program, built by the test command, works against the simulator.

use serde_json::json;
use soar_e2e::*;

fn readme() -> String {
    std::fs::read_to_string(workspace().join("README.md")).expect("README.md")
}

/// The fenced block of `language` that follows `heading`.
fn block_after(text: &str, heading: &str, language: &str) -> String {
    let section = &text[text.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"))..];
    let fence = format!("```{language}\n");
    let start = section.find(&fence).expect("a code block") + fence.len();
    section[start..start + section[start..].find("\n```").expect("a closed block")].to_string()
}

#[test]
fn the_readme_embedding_example_is_the_example_program() {
    let example = std::fs::read_to_string(workspace().join("host/lib/examples/embed.rs")).unwrap();
    let code: Vec<&str> = example.lines().filter(|line| !line.starts_with("//!")).collect();
    let code = code.join("\n");
    assert_eq!(block_after(&readme(), "## Embedding the host in a Rust SOAR platform", "rust"), code.trim());
}

#[test]
fn the_embedding_example_adds_a_user() {
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let example = soar_host_binary().parent().unwrap().join("examples/embed");
    assert!(example.is_file(), "{} is missing: build with --all-targets", example.display());
    let output = std::process::Command::new(example)
        .args([plugin_path().display().to_string(), config.display().to_string(), "alice@corp.example".into()])
        .env("SOAR_TEST_TOKEN", TOKEN)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(document["providers"][0]["users"][0]["outcome"], "added");
    assert_eq!(document["correlation_id"], "INC-4711");
    assert_eq!(member_names(&sim), ["alice@corp.example"]);
    assert!(!stdout.contains(TOKEN));
}
