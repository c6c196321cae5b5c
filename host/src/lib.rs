//! The reference host of the restricted-group SOAR plugin: loads the component, runs each action
//! in a fresh bounded store, polices every request the plugin makes, and keeps the tokens.

pub mod cache;
pub mod config;
pub mod egress;
pub mod group_lock;
pub mod http_client;
pub mod runtime;
pub mod secret;
pub mod url;
pub mod wasi;
pub mod wit;
pub mod simulator;
pub mod action;
pub mod cli;
pub mod demo;
pub mod time;
pub mod audit;
pub mod services;
