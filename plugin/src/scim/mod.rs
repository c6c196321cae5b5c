//! SCIM 2.0 (RFC 7644) as real servers speak it.

pub mod change;
pub mod client;
pub mod lookup;
pub mod response;
#[cfg(test)]
pub mod scripted;
