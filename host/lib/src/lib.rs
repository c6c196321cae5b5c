//! The reference host of the restricted-group SOAR plugin, as a library a platform embeds: it
//! loads the component, runs each action in a fresh bounded store, polices every request the
//! plugin makes, keeps the tokens, and reports each action as the JSON document and exit code the
//! `soar-host` contract fixes.
//!
//! - [`runtime`]: loading (cache, pin, import checks) and one bounded invocation;
//! - [`services`] with [`wasi`] and [`wit`]: what the component imports;
//! - [`http_client`]: how requests go out;
//! - [`config`], [`egress`], [`endpoint`], [`secret`] (from `soar-host-policy`): the config file,
//!   who may be reached and what never leaks;
//! - [`action`]: one action from request to report;
//! - [`audit`], [`cache`], [`group_lock`]: what the host keeps on disk;
//! - [`trace`]: the action's exchanges as a HAR file.

pub mod action;
pub mod audit;
pub mod cache;
pub mod group_lock;
pub mod http_client;
pub mod ledger;
pub mod lifecycle;
pub mod rate_limit;
pub mod runtime;
pub mod services;
pub mod trace;
pub mod wasi;
pub mod wit;

pub use soar_host_policy::{address, config, egress, endpoint, files, rate, secret, state, text};
