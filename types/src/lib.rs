//! The contract both sides of the WIT boundary share, in plain Rust: the actions, the settings
//! and user references that go into the plugin, the results and error kinds that come out, the
//! manifest, and the plugin's view of its imports ([`host::Host`]). The plugin (guest) and the
//! host library both depend on this crate and on nothing of each other.

#[macro_use]
mod names;

pub mod action;
pub mod host;
pub mod manifest;
pub mod model;
pub mod user_ref;

pub use action::Action;

/// The WIT package both sides speak.
pub const WIT_PACKAGE: &str = "soar:restricted-group";
/// The version of [`WIT_PACKAGE`] in `wit/`, which the plugin is built against and the host serves.
pub const WIT_VERSION: &str = "1.0.0";
/// The major version of [`WIT_VERSION`]: a host serves plugins of the same major version.
pub const WIT_MAJOR: u64 = 1;

/// The version of the JSON result document (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;
