//! Start-up: configuration → database → plugin host → storage → keys → HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::admin::Admin;
use crate::config::Config;
use crate::crypto::Sealer;
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
        config.validate()?;
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
        .await?;
        let defaults = Defaults {
            storage: config.policies.storage.clone(),
            scope: config.policies.scope.clone(),
            consent: config.policies.consent.clone(),
        };
        let cache = config.server.data_dir.join("plugin-cache");
        let dir = config.policies.dir.is_dir().then(|| config.policies.dir.clone());
        let host = PolicyHost::new(database, defaults, Some(cache))?;
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
        let storage = Storage::new(host.clone());
        storage.key_clients_by_origin(clock.now()).await?;
        let sealer = sealer(&config)?;
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
            discovery_scopes: Default::default(),
            outbound: crate::outbound::Outbound::new(&config.outbound)?,
            client_jwks: Default::default(),
            clock,
        });
        Ok(Arc::new(Self { config, host, storage, keys, passwords, protocol }))
    }
}

fn sealer(config: &Config) -> anyhow::Result<Sealer> {
    if let Some(key) = &config.keys.encryption_key {
        return Ok(Sealer::from_base64(key)?);
    }
    let path: PathBuf = config.server.data_dir.join("encryption.key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        return Ok(Sealer::from_base64(&key)?);
    }
    let key = Sealer::generate_key();
    write_private(&path, &key)?;
    tracing::warn!(path = %path.display(), "generated a key-encryption key; set keys.encryption_key to share one across replicas");
    Ok(Sealer::from_base64(&key)?)
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

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

pub fn router(app: App) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
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
    protocol
        .merge(crate::admin::router(Arc::new(admin)))
        .fallback(not_found)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Any path that is no endpoint.
async fn not_found() -> axum::response::Response {
    use axum::response::IntoResponse;
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
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            app.protocol.sign_in_limit.forget_idle();
            if let Err(e) = app.keys.reload().await {
                tracing::warn!(error = %e, "reloading signing keys failed");
            }
            n += 1;
            if n.is_multiple_of(20) {
                match app.storage.purge_expired(app.protocol.clock.now()).await {
                    Ok(count) if count > 0 => tracing::info!(count, "purged expired records"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
                }
            }
        }
    });
}

/// Serves until the process is stopped, within the connection bounds of `server.*`; metrics
/// on `server.metrics_listen` when it is set.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let metrics = crate::metrics::bind(&app.config).await?;
    serve_with_metrics(app, listener, metrics).await
}

/// As [`serve`], with the metrics listener bound already, or none (metrics off).
pub async fn serve_with_metrics(
    app: App,
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
) -> anyhow::Result<()> {
    spawn_upkeep(app.clone());
    spawn_listener(app.clone());
    let bounds = crate::connections::Bounds::from_config(&app.config);
    let mut routes = router(app.clone());
    if let Some(metrics) = metrics {
        crate::metrics::spawn(metrics, app.keys.clone())?;
        routes = crate::metrics::instrument(routes);
    }
    crate::connections::serve(listener, routes, bounds, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
