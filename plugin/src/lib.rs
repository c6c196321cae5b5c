//! The restricted-group plugin. Its SCIM logic is plain Rust behind the small [`host::Host`]
//! trait, so it compiles and is tested natively; `component` is the thin layer that binds it
//! to the WIT contract when built for `wasm32-wasip2`.

pub mod actions;
pub mod encode;
pub mod host;
pub mod manifest;
pub mod model;
pub mod scim;
pub mod summary;
pub mod user_ref;

#[cfg(target_arch = "wasm32")]
mod component;

pub use actions::{run_membership_action, test_connection, MembershipAction};
