//! Prometheus metrics: `GET /metrics` in the text exposition format, on a listener of its own
//! (`server.metrics_listen`), never on the main one.
//!
//! Every layer records through the `metrics` facade (counters and histograms, label values
//! from fixed sets: route templates, grant types, plugin names of the loaded set); the
//! recorder is metrics-exporter-prometheus's, installed once per process the first time a
//! server starts with metrics on. Until then (and in a process that never turns them on)
//! recording is the facade's no-op. The signing keys' gauge is computed when scraped.
//!
//! What is recorded on every request keeps its handles rather than building a labelled key
//! and looking it up in the recorder each time: each route's histogram and its counter per
//! status (taken on a route's first answer), the counter of each of the server's own grant
//! types (taken when the recorder is installed), and in `plugin/` each plugin's call
//! metrics (taken when it is prepared) and the storage calls' (when the host is made).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::metrics::{
    Counter, Histogram, SharedString, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use ::metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::RwLock;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::crypto::SigningAlgorithm;
use crate::keys::{KeyState, Keys};
use crate::model::GrantType;

/// The path scraped on the metrics listener.
pub const PATH: &str = "/metrics";

/// The endpoint label of a request that matched no route: raw paths are never labels.
const UNMATCHED: &str = "unmatched";

/// The buckets of every duration histogram, in seconds: a plugin call or a request of well
/// under a millisecond up to one that waited out a deadline.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often histograms' samples are folded into their buckets between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

const KEY_STATES: [KeyState; 4] = [KeyState::Next, KeyState::Signing, KeyState::Retiring, KeyState::Retired];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
}

/// The tokens issued for each of the server's own grant types, in the order of
/// [`GrantType::ALL`]: handles taken once, when the recorder is installed.
static TOKENS_ISSUED: OnceLock<[Counter; GrantType::ALL.len()]> = OnceLock::new();

const TOKENS_ISSUED_TOTAL: &str = "portcullis_tokens_issued_total";

/// The process's recorder: installed once, whatever number of servers start.
static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process's recorder, unless it is installed already; until then recording is
/// the facade's no-op.
pub fn install() -> Result<(), MetricsError> {
    recorder().map(|_| ())
}

fn recorder() -> Result<&'static PrometheusHandle, MetricsError> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| e.to_string())?;
            describe();
            let _ =
                TOKENS_ISSUED.set(GrantType::ALL.map(|g| counter!(TOKENS_ISSUED_TOTAL, "grant_type" => g.as_str())));
            Ok(handle)
        })
        .as_ref()
        .map_err(|e| MetricsError::Recorder(e.clone()))
}

/// The `# HELP` of each metric.
fn describe() {
    describe_counter!("portcullis_http_requests_total", "HTTP requests answered, by route and status");
    describe_histogram!(
        "portcullis_http_request_duration_seconds",
        ::metrics::Unit::Seconds,
        "Time to answer an HTTP request, by route"
    );
    describe_counter!(TOKENS_ISSUED_TOTAL, "Token responses issued at the token endpoint, by grant type");
    describe_counter!("portcullis_plugin_calls_total", "Plugin calls, by plugin, kind and outcome");
    describe_histogram!(
        "portcullis_plugin_call_duration_seconds",
        ::metrics::Unit::Seconds,
        "Time a plugin call took, by plugin and kind"
    );
    describe_gauge!(
        "portcullis_plugin_healthy",
        "Whether a plugin is healthy (1) or faulted as many calls in a row as its manifest's on-fault.after (0)"
    );
    describe_counter!(
        "portcullis_policy_shadow_diffs_total",
        "Answers of a shadow scope policy that differed from the live policy's, by shadow"
    );
    describe_counter!("portcullis_plugin_reloads_total", "Plugins loaded, refused or unloaded, by plugin and outcome");
    describe_counter!("portcullis_sign_in_attempts_total", "Password sign-in attempts, by outcome");
    describe_counter!(
        "portcullis_requests_shed_total",
        "Requests answered 503 at once: the server ran late (server.max_scheduling_delay_ms) or had server.max_requests_in_flight"
    );
    describe_counter!("portcullis_storage_calls_total", "Calls of the storage plugin, by operation and outcome");
    describe_histogram!(
        "portcullis_storage_call_duration_seconds",
        ::metrics::Unit::Seconds,
        "Time a storage call took, by operation"
    );
    describe_gauge!("portcullis_signing_keys", "Stored signing keys, by state and algorithm");
}

/// Binds `server.metrics_listen`, if it is set.
pub async fn bind(config: &Config) -> Result<Option<TcpListener>, MetricsError> {
    let Some(address) = config.server.metrics_listen else { return Ok(None) };
    TcpListener::bind(address).await.map(Some).map_err(|source| MetricsError::Bind { address, source })
}

/// Serves `GET /metrics` on `listener` until the process stops (the recorder installed first,
/// if no other server of this process did). `keys` are the ones whose states it reports.
pub fn spawn(listener: TcpListener, keys: Arc<Keys>) -> Result<(), MetricsError> {
    let handle = recorder()?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving metrics");
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
    let routes = Router::new().route(PATH, get(scrape)).with_state(Scrape { handle, keys });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, routes).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

#[derive(Clone)]
struct Scrape {
    handle: &'static PrometheusHandle,
    keys: Arc<Keys>,
}

async fn scrape(State(scrape): State<Scrape>) -> Response {
    record_key_states(&scrape.keys).await;
    let body = scrape.handle.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Sets `portcullis_signing_keys` from the stored keys, every state and algorithm (zero
/// included, so that a key leaving a state leaves no stale count behind).
async fn record_key_states(keys: &Keys) {
    let views = match keys.list().await {
        Ok(views) => views,
        Err(e) => {
            tracing::warn!(error = %e, "signing keys not counted for metrics");
            return;
        }
    };
    for state in KEY_STATES {
        for algorithm in SigningAlgorithm::ALL {
            let n = views.iter().filter(|v| v.state == state && v.algorithm == algorithm.name()).count();
            gauge!("portcullis_signing_keys", "state" => state_label(state), "algorithm" => algorithm.name())
                .set(n as f64);
        }
    }
}

fn state_label(state: KeyState) -> &'static str {
    match state {
        KeyState::Next => "next",
        KeyState::Signing => "signing",
        KeyState::Retiring => "retiring",
        KeyState::Retired => "retired",
    }
}

/// Counts and times every request the router answers, by its route template: `server.rs`
/// records each request's answer here when metrics are on.
#[derive(Clone, Default)]
pub struct RequestMetrics(Arc<Routes>);

impl RequestMetrics {
    /// A request matched to `route` (none: no route) answered with `status` after `elapsed`.
    pub fn record(&self, route: Option<&MatchedPath>, status: u16, elapsed: Duration) {
        self.0.of(route).record(status, elapsed);
    }
}

/// The request metrics of one route template (`portcullis_http_request_duration_seconds`,
/// `portcullis_http_requests_total`): its histogram, and a counter per status it answered
/// with, each handle taken on first use so that a request records without building and
/// looking up a labelled key.
struct RouteMetrics {
    endpoint: SharedString,
    duration: Histogram,
    statuses: RwLock<Vec<(u16, Counter)>>,
}

impl RouteMetrics {
    fn new(endpoint: SharedString) -> Self {
        let duration = histogram!("portcullis_http_request_duration_seconds", "endpoint" => endpoint.clone());
        Self { endpoint, duration, statuses: RwLock::new(Vec::new()) }
    }

    fn record(&self, status: u16, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        if let Some((_, counter)) = self.statuses.read().iter().find(|(s, _)| *s == status) {
            counter.increment(1);
            return;
        }
        let mut statuses = self.statuses.write();
        let counter = match statuses.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.clone(),
            None => {
                let counter = counter!("portcullis_http_requests_total", "endpoint" => self.endpoint.clone(), "status" => status.to_string());
                statuses.push((status, counter.clone()));
                counter
            }
        };
        counter.increment(1);
    }
}

/// Every route template's metrics: a bounded set (the router's routes, and `unmatched`), the
/// statuses of each bounded by HTTP's.
struct Routes {
    matched: RwLock<HashMap<Arc<str>, Arc<RouteMetrics>>>,
    unmatched: Arc<RouteMetrics>,
}

impl Default for Routes {
    fn default() -> Self {
        Self { matched: RwLock::default(), unmatched: Arc::new(RouteMetrics::new(SharedString::const_str(UNMATCHED))) }
    }
}

impl Routes {
    fn of(&self, path: Option<&MatchedPath>) -> Arc<RouteMetrics> {
        let Some(path) = path else { return self.unmatched.clone() };
        if let Some(route) = self.matched.read().get(path.as_str()) {
            return route.clone();
        }
        self.matched
            .write()
            .entry(Arc::from(path.as_str()))
            .or_insert_with(|| Arc::new(RouteMetrics::new(path.as_str().to_owned().into())))
            .clone()
    }
}

/// A token response issued for `grant_type` (a grant type of the server's own, or the URI of
/// an extension grant a loaded plugin answers: a bounded set either way).
pub fn token_issued(grant_type: &str) {
    let ours = GrantType::ALL.iter().position(|g| g.as_str() == grant_type);
    match (ours, TOKENS_ISSUED.get()) {
        (Some(index), Some(counters)) => counters[index].increment(1),
        // An extension grant, or metrics off (the facade's no-op).
        _ => counter!(TOKENS_ISSUED_TOTAL, "grant_type" => grant_type.to_owned()).increment(1),
    }
}

/// A request shed by `overload.rs`.
pub fn request_shed() {
    counter!("portcullis_requests_shed_total").increment(1);
}

/// What became of a password sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    Success,
    /// A wrong username or password.
    Failure,
    /// Refused before its password was looked at: too many attempts.
    Throttled,
    /// The server could not take it now (a full limiter, the password hasher's queue).
    Busy,
    /// It failed on the server's side (storage).
    Error,
}

pub fn sign_in(outcome: SignIn) {
    let outcome = match outcome {
        SignIn::Success => "success",
        SignIn::Failure => "failure",
        SignIn::Throttled => "throttled",
        SignIn::Busy => "busy",
        SignIn::Error => "error",
    };
    counter!("portcullis_sign_in_attempts_total", "outcome" => outcome).increment(1);
}
