//! What a host of the restricted-group plugin enforces before anything reaches the network, with
//! no WebAssembly runtime in it (so it can be fuzzed and reused): the config file and its
//! limits, the URLs of SCIM endpoints, the egress rule, the addresses a provider may be reached
//! at, and the secrets with their redaction.

pub mod address;
pub mod config;
pub mod egress;
pub mod endpoint;
pub mod files;
pub mod rate;
pub mod secret;
pub mod state;
pub use soar_types::text;
