//! The config file's JSON Schema goes into the component's manifest without its white space.

fn main() {
    let source = "../config.schema.json";
    println!("cargo:rerun-if-changed={source}");
    let text = std::fs::read_to_string(source).expect("config.schema.json at the workspace root");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("config.schema.json is JSON");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("config.schema.min.json");
    std::fs::write(out, schema.to_string()).expect("write the minified schema");
}
