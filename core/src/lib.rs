//! Portcullis: an OAuth 2.0 / OpenID Connect authorization server whose policies are
//! WebAssembly plugins. See ARCHITECTURE.md for the map.

pub mod access_log;
pub mod account;
pub mod admin;
pub mod applications;
pub mod audit;
pub mod backup;
pub mod client_address;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod device;
pub mod encryption_key;
pub mod error;
pub mod factors;
pub mod health;
pub(crate) mod jws;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod oauth;
pub mod outbound;
pub mod overload;
pub mod passwords;
pub mod plugin;
pub mod plugin_build;
pub mod plugin_cases;
pub mod registry;
pub mod scaffold;
pub mod scopes;
pub mod server;
pub mod start;
pub mod storage;
pub mod telemetry;
