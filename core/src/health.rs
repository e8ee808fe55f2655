//! Health for load balancers and orchestrators (as Hydra's `/health/alive` and
//! `/health/ready`):
//!
//! - `/health/live` (and `/health`, its older name): the process answers; always 200.
//! - `/health/ready`: whether this replica should be sent traffic. Each part of the server
//!   reports a [`State`]: `ok`, `degraded` (it works, with a detail an operator wants to
//!   know) or `failing`. Only a failing part makes the answer 503; the body lists every part.
//!
//! The parts are [`Check`]s the composition root registers ([`Health::add`]): storage (a
//! real read through the storage plugin, answered within [`READY_STORAGE_TIMEOUT`]), the
//! default plugins, the signing keys; and whether the server is stopping ([`Health::drain`]),
//! which fails readiness at once so that a balancer sends nothing new.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State as Extract;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::RwLock;
use serde::Serialize;

use crate::keys::Keys;
use crate::plugin::PolicyHost;
use crate::storage::Storage;

/// How long the readiness check waits for storage to answer.
pub const READY_STORAGE_TIMEOUT: Duration = Duration::from_millis(crate::limits::READY_STORAGE_TIMEOUT_MS);

/// How one part of the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Ok,
    /// Working, not as configured or not as well as it could: readiness holds.
    Degraded(String),
    /// Not working: readiness fails (503).
    Failing(String),
}

/// One part's report, as `/health/ready` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    pub name: &'static str,
    #[serde(flatten)]
    pub state: StateView,
}

/// A [`State`] as JSON: `{"state": "ok"}`, or with `"detail"`.
#[derive(Debug, Clone, Serialize)]
pub struct StateView {
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl From<State> for StateView {
    fn from(state: State) -> Self {
        match state {
            State::Ok => Self { state: "ok", detail: None },
            State::Degraded(detail) => Self { state: "degraded", detail: Some(detail) },
            State::Failing(detail) => Self { state: "failing", detail: Some(detail) },
        }
    }
}

impl StateView {
    fn failing(&self) -> bool {
        self.state == "failing"
    }
}

/// A part's check: asked on every readiness request, so it must be cheap and bounded.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, State> + Send + Sync>;

/// What `/health/ready` asks.
#[derive(Default)]
pub struct Health {
    draining: AtomicBool,
    checks: RwLock<Vec<(&'static str, Check)>>,
}

/// The readiness report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// The names of the failing parts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<&'static str>,
    pub parts: Vec<Part>,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.failing.is_empty()
    }
}

impl Health {
    /// Adds a part to the report; parts are listed in the order they were added.
    pub fn add(&self, name: &'static str, check: Check) {
        self.checks.write().push((name, check));
    }

    /// The server is stopping: readiness fails from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Asks every part, all at once.
    pub async fn report(&self) -> Report {
        let checks: Vec<(&'static str, Check)> = self.checks.read().clone();
        let states = futures::future::join_all(checks.iter().map(|(_, check)| check())).await;
        let mut parts: Vec<Part> =
            checks.iter().zip(states).map(|((name, _), state)| Part { name, state: state.into() }).collect();
        let draining = match self.draining() {
            true => State::Failing("the server is stopping".into()),
            false => State::Ok,
        };
        parts.push(Part { name: "draining", state: draining.into() });
        let failing = parts.iter().filter(|p| p.state.failing()).map(|p| p.name).collect();
        let status = if parts.iter().any(|p| p.state.failing()) { "not ready" } else { "ready" };
        Report { status, failing, parts }
    }

    /// The checks of the server's own parts: storage, the default plugins, the signing keys.
    pub fn with_server_parts(storage: Storage, host: Arc<PolicyHost>, keys: Arc<Keys>) -> Self {
        let health = Self::default();
        health.add("storage", Arc::new(move || storage_state(storage.clone()).boxed()));
        health.add("plugins", Arc::new(move || std::future::ready(plugins_state(&host)).boxed()));
        health.add("keys", Arc::new(move || std::future::ready(keys_state(&keys)).boxed()));
        health
    }
}

/// A read through the storage plugin (of a session no one has), answered in time.
async fn storage_state(storage: Storage) -> State {
    match tokio::time::timeout(READY_STORAGE_TIMEOUT, storage.get_session("health-check")).await {
        Ok(Ok(_)) => State::Ok,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: storage failed");
            State::Failing("storage failed to answer".into())
        }
        Err(_) => {
            tracing::warn!("readiness: storage did not answer in time");
            State::Failing(format!("storage did not answer within {} ms", READY_STORAGE_TIMEOUT.as_millis()))
        }
    }
}

/// The plugins used when a client names none must be loaded.
fn plugins_state(host: &PolicyHost) -> State {
    let loaded = host.loaded();
    let d = &host.defaults;
    let missing: Vec<&str> = [d.storage.as_str(), d.scope.as_str(), d.consent.as_str()]
        .into_iter()
        .filter(|name| !loaded.contains_key(*name))
        .collect();
    match missing.is_empty() {
        true => State::Ok,
        false => State::Failing(format!("default plugins not loaded: {}", missing.join(", "))),
    }
}

/// Every algorithm served has a key that signs.
fn keys_state(keys: &Keys) -> State {
    let unsigned: Vec<&str> = keys.served().filter(|a| keys.signer(*a).is_err()).map(|a| a.name()).collect();
    match unsigned.is_empty() {
        true => State::Ok,
        false => State::Failing(format!("no signing key for {}", unsigned.join(", "))),
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(health)
}

async fn live() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn ready(Extract(health): Extract<Arc<Health>>) -> Response {
    let report = health.report().await;
    crate::error::readiness(report.ready(), axum::Json(report))
}
