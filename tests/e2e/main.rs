//! The end-to-end suites, one module per concern, in one test binary.

mod actions;
mod bad_input;
mod conformance;
mod distance;
mod docs;
mod field;
mod guardrails;
mod hardening;
mod interop;
mod lifecycle;
mod loading;
mod manifest;
mod matrix;
mod operator;
mod properties;
mod proxy;
mod resilience;
mod sandbox;
mod scim;
mod tls;
