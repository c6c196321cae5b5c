//! The restricted-group plugin. Its SCIM logic is plain Rust behind the small
//! [`soar_types::host::Host`] trait, so it compiles and is tested natively; `component` is the
//! thin layer that binds it to the WIT contract when built for `wasm32-wasip2`.

pub mod actions;
pub mod manifest;
pub mod members;
pub mod scim;
pub mod summary;

#[cfg(target_arch = "wasm32")]
mod component;

pub use actions::{run, test_connection};
pub use members::list_members;
