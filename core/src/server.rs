//! Start-up: configuration → database → plugin host → storage → keys → HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::admin::Admin;
use crate::config::Config;
use crate::keys::{KeySettings, Keys};
use crate::model::{Clock, SigningKeyRecord, SystemClock};
use crate::oauth::Protocol;
use crate::oauth::sign_in_limit::SignInLimit;
use crate::passwords::Passwords;
use crate::plugin::database::{Announcement, Database};
use crate::plugin::{Defaults, PolicyHost, watch};
use crate::storage::{Kind, Storage};

/// The composition root: every part of the server, opened from one configuration. The
/// protocol's endpoints get [`Protocol`], the admin API [`Admin`]: each only what it uses.
pub struct Portcullis {
    pub config: Arc<Config>,
    pub host: Arc<PolicyHost>,
    pub storage: Storage,
    pub keys: Arc<Keys>,
    /// The bounded password hasher: sign-ins, and users created by the admin API or the CLI.
    pub passwords: Arc<Passwords>,
    pub protocol: Arc<Protocol>,
    /// What `/health/ready` asks; other parts add their own ([`crate::health::Health::add`]).
    pub health: Arc<crate::health::Health>,
}

pub type App = Arc<Portcullis>;

impl Portcullis {
    /// Opens the database, loads the policies and the signing keys. Used by `serve` and by
    /// every CLI command, so both work against the same configuration.
    pub async fn open(config: Config, watch_policies: bool) -> anyhow::Result<App> {
        Self::open_with_clock(config, watch_policies, Arc::new(SystemClock)).await
    }

    /// As [`Portcullis::open`], with the clock requests go by (a test's, which it moves).
    pub async fn open_with_clock(config: Config, watch_policies: bool, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let host = Self::open_host(&config, watch_policies).await?;
        Self::open_on(config, host, clock).await
    }

    /// The storage of a configuration alone, without the signing keys (which an empty
    /// database would get at once): for export and import.
    pub async fn open_storage(config: &Config) -> anyhow::Result<Storage> {
        Ok(Storage::new(Self::open_host(config, false).await?))
    }

    /// Configuration checked, the data directory and database opened, the policies loaded
    /// (and watched, where asked).
    async fn open_host(config: &Config, watch_policies: bool) -> anyhow::Result<Arc<PolicyHost>> {
        config.validate()?;
        // A policies directory that was configured must be there; only the default one may
        // be absent (the built-in policies then).
        if let Some(set_in) = &config.policies.dir_set_in
            && !config.policies.dir.is_dir()
        {
            let (dir, set_in) = (config.policies.dir.clone(), set_in.clone());
            return Err(crate::start::StartError::PoliciesDir { dir, set_in }.into());
        }
        crate::oauth::tokens::check_roles_scope(config.tokens.roles_scope.as_deref())?;
        // Metrics on: the recorder first, so that loading the policies is counted too.
        if config.server.metrics_listen.is_some() {
            crate::metrics::install()?;
        }
        create_private_dir(&config.server.data_dir)?;
        if let Some(path) = sqlite_file(&config.database_url()) {
            create_private_file(&path)?;
        }
        let database = Database::connect(
            &config.database_url(),
            config.database.max_connections,
            config.database_acquire_timeout(),
        )
        .await;
        let database = match database {
            Ok(database) => database,
            Err(e) => {
                let url = config.database_url();
                return Err(crate::start::StartError::database(&url, e, config.database_acquire_timeout())
                    .await
                    .into());
            }
        };
        let defaults = Defaults {
            storage: config.policies.storage.clone(),
            scope: config.policies.scope.clone(),
            consent: config.policies.consent.clone(),
        };
        let cache = config.server.data_dir.join("plugin-cache");
        let dir = config.policies.dir.is_dir().then(|| config.policies.dir.clone());
        let host = PolicyHost::new(database, defaults, Some(cache))?;
        host.set_allow_loopback_http(config.outbound.allow_loopback_http);
        match &dir {
            Some(dir) => {
                watch::load_dir(&host, dir).await?;
                if watch_policies && config.policies.watch {
                    watch::spawn(host.clone(), dir.clone())?;
                }
            }
            None => {
                tracing::info!(dir = %config.policies.dir.display(), "no policies directory; using the built-in policies");
                host.load_builtin().await?;
            }
        }
        Ok(host)
    }

    /// The storage, keys and protocol on an opened plugin host.
    async fn open_on(config: Config, host: Arc<PolicyHost>, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let storage = Storage::new(host.clone());
        storage.key_clients_by_origin(clock.now()).await?;
        let sealer = crate::encryption_key::at_start(&config, &storage).await?;
        let settings = KeySettings { algorithm: config.keys.algorithm, publish_ahead: config.keys.publish_ahead };
        let keys = Arc::new(Keys::load(storage.clone(), sealer, settings, config.issuer(), clock.clone()).await?);
        let config = Arc::new(config);
        let passwords =
            Arc::new(Passwords::new(config.server.password_hash_concurrency, config.server.password_hash_queue));
        let protocol = Arc::new(Protocol {
            config: config.clone(),
            storage: storage.clone(),
            keys: keys.clone(),
            host: host.clone(),
            sign_in_limit: SignInLimit::new(&config),
            passwords: passwords.clone(),
            discovery: Default::default(),
            outbound: crate::outbound::Outbound::new(&config.outbound)?,
            client_jwks: Default::default(),
            clock,
        });
        let health = Arc::new(crate::health::Health::with_server_parts(storage.clone(), host.clone(), keys.clone()));
        add_degraded_parts(&health, &protocol);
        Ok(Arc::new(Self { config, host, storage, keys, passwords, protocol, health }))
    }
}

/// Parts of readiness that never fail it but tell an operator what is not as configured:
/// sign-in limits counted on this replica alone because Redis cannot be used, clients
/// naming a plugin that is not loaded (looked up at most every
/// [`limits::READY_CLIENTS_EVERY_SECS`](crate::limits::READY_CLIENTS_EVERY_SECS)), and
/// plugins unhealthy after faulting as many calls in a row as their manifest's
/// `on-fault.after` (the replica still answers: their faults are denials or go to a fallback).
fn add_degraded_parts(health: &crate::health::Health, protocol: &Arc<Protocol>) {
    use crate::health::State;
    use crate::oauth::sign_in_shared::SharedState;
    use futures::FutureExt;

    let p = protocol.clone();
    health.add(
        "throttles",
        Arc::new(move || {
            let state = match p.sign_in_limit.state() {
                SharedState::Fallback(reason) => State::Degraded(format!(
                    "the shared sign-in limits cannot be used ({reason}): this replica counts on its own"
                )),
                SharedState::Shared | SharedState::Local => State::Ok,
            };
            std::future::ready(state).boxed()
        }),
    );
    let host = protocol.host.clone();
    health.add(
        "faults",
        Arc::new(move || {
            let named: Vec<String> = host
                .unhealthy()
                .into_iter()
                .map(|p| {
                    let then = match &p.fallback {
                        Some(fallback) => format!("its faulted calls go to `{fallback}`"),
                        None => "its faulted calls are refused".into(),
                    };
                    format!("the {} plugin `{}` faulted its last {} calls: {then}", p.kind, p.name, p.faults)
                })
                .collect();
            let state = match named.is_empty() {
                true => State::Ok,
                false => State::Degraded(named.join("; ")),
            };
            std::future::ready(state).boxed()
        }),
    );
    let storage = protocol.storage.clone();
    let last: Arc<tokio::sync::Mutex<Option<(std::time::Instant, State)>>> = Default::default();
    health.add(
        "clients",
        Arc::new(move || {
            let (storage, last) = (storage.clone(), last.clone());
            async move {
                let mut last = last.lock().await;
                if let Some((at, state)) = &*last
                    && at.elapsed() < Duration::from_secs(crate::limits::READY_CLIENTS_EVERY_SECS)
                {
                    return state.clone();
                }
                let missing = match storage.clients_missing_plugins().await {
                    Ok(missing) => missing,
                    Err(e) => return State::Degraded(format!("the clients' plugins were not checked: {e}")),
                };
                let shown = crate::limits::READY_CLIENTS_NAMED;
                let mut named: Vec<String> = missing
                    .iter()
                    .take(shown)
                    .map(|m| format!("client {} names {} `{}`, which is not loaded", m.client_id, m.field, m.plugin))
                    .collect();
                if missing.len() > shown {
                    named.push(format!("and {} more", missing.len() - shown));
                }
                let state = match named.is_empty() {
                    true => State::Ok,
                    false => State::Degraded(named.join("; ")),
                };
                *last = Some((std::time::Instant::now(), state.clone()));
                state
            }
            .boxed()
        }),
    );
}

/// `data_dir` holds the database, the key-encryption key and compiled code: created readable
/// by its owner only (0700 on unix). An existing directory is left as the operator made it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The file of a `sqlite:` database URL, unless it is in memory.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Creates the SQLite database file empty, owner-only (0600 on unix), before sqlx opens it:
/// SQLite gives its `-wal` and `-shm` files the database file's permissions. An existing
/// file is left as it is.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every endpoint, behind [`edge`]; `metrics`, when on, records each request's answer.
pub fn router(app: App, metrics: Option<crate::metrics::RequestMetrics>) -> Router {
    let admin = Admin {
        config: app.config.clone(),
        storage: app.storage.clone(),
        keys: app.keys.clone(),
        protocol: app.protocol.clone(),
    };
    // The protocol's endpoints and the pages a person posts to read small bodies; the admin
    // API has its own, larger bound.
    let protocol = crate::oauth::router(app.protocol.clone())
        .merge(crate::account::router(app.protocol.clone()))
        .merge(crate::device::router(app.protocol.clone()))
        .layer(DefaultBodyLimit::max(crate::limits::OAUTH_BODY_BYTES));
    let concerns = Edge {
        proxies: crate::client_address::TrustedProxies::new(
            app.config.server.trusted_proxies.iter().map(|n| n.0).collect(),
        ),
        access_log: app.config.server.access_log,
        admission: crate::overload::Admission::from_config(&app.config),
        audit: crate::audit::Audit::new(&app.config, app.protocol.clock.clone()),
        metrics,
    };
    protocol
        .merge(crate::admin::router(Arc::new(admin)))
        .merge(crate::health::router(app.health.clone()))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(concerns, edge))
}

/// What every request passes through on its way to its endpoint, outermost first.
#[derive(Clone)]
struct Edge {
    /// `server.trusted_proxies`: who may name the client address.
    proxies: crate::client_address::TrustedProxies,
    /// `server.access_log`.
    access_log: bool,
    admission: crate::overload::Admission,
    audit: crate::audit::Audit,
    metrics: Option<crate::metrics::RequestMetrics>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The concerns every request passes through, in one middleware (one boxed future per
/// request, not one per concern), outermost first:
/// - its id: the caller's `x-request-id`, or a new UUID; the answer carries it back;
/// - the metrics of its route (`metrics.rs`), when on;
/// - its client address (`client_address.rs`);
/// - the access log (`access_log.rs`), so a shed request is logged like any other;
/// - admission (`overload.rs`): shed at once when the server runs late or too much is in flight;
/// - the request span (its id, method and raw path), around every line the endpoint logs;
/// - the audit scope (`audit.rs`): events name the request's id and client address, and this replica.
async fn edge(State(edge): State<Edge>, mut request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let id = match request.headers().get(&REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let made = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string());
            let made = made.unwrap_or_else(|_| HeaderValue::from_static("-"));
            request.headers_mut().insert(REQUEST_ID, made.clone());
            made
        }
    };
    let route = (edge.metrics.is_some() || edge.access_log)
        .then(|| request.extensions().get::<MatchedPath>().cloned())
        .flatten();
    let address = edge.proxies.put_in(&mut request);
    let line =
        edge.access_log.then(|| crate::access_log::Line::begin(&request, route.clone(), started, address, id.clone()));
    let mut response = match edge.admission.admit(request.uri().path()) {
        Ok(admitted) => {
            let span = tracing::info_span!(
                "request",
                id = %id.to_str().unwrap_or("-"),
                method = %request.method(),
                path = %request.uri().path()
            );
            let answer = edge.audit.scope(Some(id.clone()), Some(address), next.run(request));
            let response = answer.instrument(span).await;
            drop(admitted);
            response
        }
        Err(shed) => shed.into_response(),
    };
    if let Some(line) = line {
        line.write(&response);
    }
    if let Some(metrics) = &edge.metrics {
        metrics.record(route.as_ref(), response.status().as_u16(), started.elapsed());
    }
    response.headers_mut().entry(REQUEST_ID).or_insert(id);
    response
}

/// Any path that is no endpoint.
async fn not_found() -> Response {
    crate::error::OAuthError::NotFound("no such endpoint".into()).into_response()
}

/// What other replicas and the CLI write to the keys and the clients, heard at once where the
/// database announces writes (PostgreSQL); the upkeep's periodic reload is the fallback, and
/// on SQLite the only way (with the keys read again for a token naming an unknown key).
fn spawn_listener(app: App) {
    let Some(mut announcements) = app.host.database().announcements() else { return };
    tokio::spawn(async move {
        while let Some(announcement) = announcements.recv().await {
            let kind = match &announcement {
                Announcement::Wrote(kind) => Some(kind.as_str()),
                Announcement::Missed => None,
            };
            app.storage.heard(kind);
            if kind.is_none_or(|k| k == SigningKeyRecord::KIND)
                && let Err(e) = app.keys.reload().await
            {
                tracing::warn!(error = %e, "reloading signing keys failed");
            }
        }
    });
}

/// Background upkeep: pick up keys rotated elsewhere, purge expired records.
pub fn spawn_upkeep(app: App) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            app.protocol.sign_in_limit.forget_idle();
            if let Err(e) = app.keys.reload().await {
                tracing::warn!(error = %e, "reloading signing keys failed");
            }
            purge_expired(&app).await;
        }
    });
}

/// Removes the records expired by now, a batch per storage call (the storage plugin bounds
/// one call's work), until a call removes nothing or `limits::PURGE_TIME_PER_UPKEEP` has
/// passed; what is left goes at the next upkeep. Requests run between the batches.
async fn purge_expired(app: &App) {
    let started = tokio::time::Instant::now();
    let now = app.protocol.clock.now();
    let mut total = 0;
    while started.elapsed() < crate::limits::PURGE_TIME_PER_UPKEEP {
        match app.storage.purge_expired(now).await {
            Ok(0) => break,
            Ok(count) => total += count,
            Err(e) => {
                tracing::warn!(error = %e, "purging expired records failed");
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    if total > 0 {
        tracing::info!(count = total, "purged expired records");
    }
}

/// Serves until the process is stopped (SIGTERM, SIGINT), within the connection bounds of
/// `server.*`; metrics on `server.metrics_listen` when it is set.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let metrics = crate::metrics::bind(&app.config).await?;
    serve_until(app, listener, metrics, shutdown_signal()).await
}

/// Serves, with the metrics listener bound already (or none: metrics off), until `stop`
/// completes, then stops gracefully: readiness fails at once, the listener closes, the
/// requests in flight are answered and the back-channel logout deliveries pending are made,
/// within `server.shutdown_grace`; then it returns.
pub async fn serve_until(
    app: App,
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    spawn_upkeep(app.clone());
    spawn_listener(app.clone());
    let bounds = crate::connections::Bounds::from_config(&app.config);
    let request_metrics = match metrics {
        Some(listener) => {
            crate::metrics::spawn(listener, app.keys.clone())?;
            Some(crate::metrics::RequestMetrics::default())
        }
        None => None,
    };
    let routes = router(app.clone(), request_metrics);
    let grace = Duration::from_secs(app.config.server.shutdown_grace);
    let stopped_at = std::sync::OnceLock::new();
    let stopping = async {
        stop.await;
        app.health.drain();
        let _ = stopped_at.set(tokio::time::Instant::now());
        tracing::info!(grace_secs = grace.as_secs(), "stopping: answering the requests in flight");
    };
    crate::connections::serve(listener, routes, bounds, stopping).await;
    let deadline = stopped_at.get().copied().unwrap_or_else(tokio::time::Instant::now) + grace;
    let outbound = &app.protocol.outbound;
    if outbound.pending() > 0 {
        tracing::info!(pending = outbound.pending(), "stopping: delivering the back-channel logouts pending");
    }
    if tokio::time::timeout_at(deadline, outbound.settle()).await.is_err() {
        tracing::warn!(pending = outbound.pending(), "stopped with back-channel logouts undelivered");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed at once, so a signal
/// that comes before the future is first polled is not missed.
#[cfg(unix)]
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = [SignalKind::terminate(), SignalKind::interrupt()].map(signal);
    async move {
        let waits = signals.into_iter().filter_map(|s| match s {
            Ok(mut stream) => Some(Box::pin(async move {
                stream.recv().await;
            })),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for a stop signal");
                None
            }
        });
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            return std::future::pending().await;
        }
        futures::future::select_all(waits).await;
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
