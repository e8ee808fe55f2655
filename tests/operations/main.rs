//! Operating the server: health and graceful stop, metrics, access and audit logs, limits shared
//! by replicas, the lifecycle of clients and users (a user's own password change included),
//! second factors (an authenticator app, recovery codes, step-up, an administrator's reset),
//! dynamic registration, backup and restore, trying and shadowing policies, and which consent
//! UI a client's pages get.
//! One test binary for all of them, to save link time.

#[path = "../support/mod.rs"]
mod support;

mod account_password;
mod audit;
mod backup;
mod consent_ui;
mod factors;
mod health;
mod lifecycle;
mod metrics;
mod policy_simulation;
mod shadow;
