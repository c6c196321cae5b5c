//! A wheel carries the component as package data: maturin (which sets
//! `PYO3_BUILD_EXTENSION_MODULE`) is refused a build without it.

fn main() {
    let component = "python/soar_restricted_group/restricted_group_plugin.wasm";
    println!("cargo:rerun-if-changed={component}");
    println!("cargo:rerun-if-env-changed=PYO3_BUILD_EXTENSION_MODULE");
    if std::env::var_os("PYO3_BUILD_EXTENSION_MODULE").is_some() && !std::path::Path::new(component).is_file() {
        panic!("{component} is missing: run `bash scripts/build-plugin.sh` first, which builds it and puts it there");
    }
}
