//! The contract both sides of the WIT boundary share, in plain Rust: the actions, the settings
//! and user references that go into the plugin, the results and error kinds that come out, the
//! manifest, and the plugin's view of its imports ([`host::Host`]). The plugin (guest) and the
//! host library both depend on this crate and on nothing of each other.

#[macro_use]
mod names;

pub mod action;
pub mod encode;
pub mod host;
pub mod manifest;
pub mod model;
pub mod text;
pub mod user_ref;

pub use action::Action;

/// The WIT package both sides speak.
pub const WIT_PACKAGE: &str = "soar:restricted-group";
/// The version of [`WIT_PACKAGE`] in `wit/`, which the plugin is built against and the host serves.
pub const WIT_VERSION: &str = "1.2.0";
/// The major version of [`WIT_VERSION`]: a host serves plugins of the same major version.
pub const WIT_MAJOR: u64 = 1;

/// The version of the JSON result document (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ErrorKind, Profile, Status, UserOutcome};

    fn workspace_file(path: &str) -> String {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
    }

    /// The cases of `enum NAME { ... }` in a WIT file.
    fn wit_enum(text: &str, name: &str) -> Vec<String> {
        let start = text.find(&format!("enum {name} {{")).unwrap_or_else(|| panic!("no enum {name}"));
        let body = &text[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        body.lines()
            .map(|line| line.split("//").next().unwrap().trim().trim_end_matches(','))
            .filter(|case| !case.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|value| name(*value).to_string()).collect()
    }

    #[test]
    fn every_wit_file_declares_the_version_the_code_speaks() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        for entry in std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.path().is_file()) {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let expected = format!("package {WIT_PACKAGE}@{WIT_VERSION};");
            assert!(text.starts_with(&expected), "{} does not start with {expected}", entry.path().display());
        }
        assert_eq!(WIT_VERSION.split('.').next().unwrap().parse::<u64>().unwrap(), WIT_MAJOR);
    }

    #[test]
    fn the_wit_enums_list_the_same_names_in_the_same_order() {
        let types = workspace_file("wit/types.wit");
        assert_eq!(wit_enum(&types, "error-kind"), names(ErrorKind::ALL, ErrorKind::as_str));
        assert_eq!(wit_enum(&types, "user-outcome"), names(UserOutcome::ALL, UserOutcome::as_str));
        assert_eq!(wit_enum(&types, "status"), names(Status::ALL, Status::as_str));
        assert_eq!(wit_enum(&types, "profile"), names(Profile::ALL, Profile::as_str));
        let actions = workspace_file("wit/actions.wit");
        for action in Action::ALL {
            assert!(actions.contains(&format!("    {}: func(", action.as_str())), "{action} is not a WIT export");
        }
    }

    #[test]
    fn the_readme_lists_every_error_kind_and_outcome() {
        let readme = workspace_file("README.md");
        for name in names(ErrorKind::ALL, ErrorKind::as_str).iter().chain(&names(UserOutcome::ALL, UserOutcome::as_str))
        {
            assert!(readme.contains(&format!("`{name}`")), "README does not list `{name}`");
        }
    }
}
