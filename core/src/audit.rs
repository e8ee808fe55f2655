//! Audit events: what was done, by whom, to what, when, on which replica, and for which
//! request (Keycloak's events, Zitadel's event log). Each is an `event` record through the
//! storage plugin like every record, and a log line at INFO with `event=<type>`.
//!
//! Emitting one is one call, [`record`]: the type, the actor, the subject and a small detail
//! map. What the call does not name comes from the scope it runs in ([`Audit::scope`]): the
//! request's id (`x-request-id`) and client address for a request, the replica, the clock and
//! the retention. Writing an event never fails the operation that caused it: a failed write
//! is logged as a warning.
//!
//! Event ids sort as the events happened on one replica (the time, then a counter of the
//! process), so listing them by id is listing them by time; `since` starts the listing at a
//! time's first id. Events expire `events.retention_days` after they happened and are purged
//! with the other expired records.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::limits;
use crate::model::{Clock, Event, SystemClock};
use crate::storage::{Storage, StorageError, write};

/// The event types, each named where it is emitted. README's operators' section lists them
/// with their actors and subjects.
pub mod types {
    pub const CLIENT_CREATED: &str = "client.created";
    pub const CLIENT_UPDATED: &str = "client.updated";
    pub const CLIENT_DELETED: &str = "client.deleted";
    pub const APPLICATION_CREATED: &str = "application.created";
    pub const APPLICATION_UPDATED: &str = "application.updated";
    pub const APPLICATION_DELETED: &str = "application.deleted";
    pub const TEMPLATE_CREATED: &str = "template.created";
    pub const TEMPLATE_UPDATED: &str = "template.updated";
    pub const TEMPLATE_DELETED: &str = "template.deleted";
    pub const INSTANCE_CREATED: &str = "instance.created";
    pub const INSTANCE_DELETED: &str = "instance.deleted";
    pub const ORGANIZATION_CREATED: &str = "organization.created";
    pub const ORGANIZATION_UPDATED: &str = "organization.updated";
    pub const MEMBERSHIP_CREATED: &str = "membership.created";
    pub const MEMBERSHIP_UPDATED: &str = "membership.updated";
    pub const MEMBERSHIP_DELETED: &str = "membership.deleted";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ENABLED: &str = "user.enabled";
    pub const USER_DELETED: &str = "user.deleted";
    pub const USER_PASSWORD_SET: &str = "user.password_set";
    pub const USER_PASSWORD_CHANGED: &str = "user.password_changed";
    pub const CLIENT_SECRET_ROTATED: &str = "client.secret_rotated";
    pub const INITIAL_ACCESS_TOKEN_ISSUED: &str = "initial_access_token.issued";
    pub const INITIAL_ACCESS_TOKEN_REVOKED: &str = "initial_access_token.revoked";
    pub const CONSENT_GIVEN: &str = "consent.given";
    pub const CONSENT_REVOKED: &str = "consent.revoked";
    pub const CONNECTION_REVOKED: &str = "connection.revoked";
    pub const KEY_ROTATED: &str = "key.rotated";
    pub const KEY_RETIRED: &str = "key.retired";
    pub const ADMIN_TOKEN_USED: &str = "admin.token_used";
    pub const ADMIN_SCOPE_USED: &str = "admin.scope_used";
    pub const REFRESH_TOKEN_REUSED: &str = "refresh_token.reused";
    pub const SIGN_IN_THROTTLED: &str = "sign_in.throttled";
    pub const FACTOR_TOTP_ENABLED: &str = "factor.totp_enabled";
    pub const FACTOR_TOTP_REMOVED: &str = "factor.totp_removed";
    pub const FACTOR_PASSKEY_ADDED: &str = "factor.passkey_added";
    pub const FACTOR_PASSKEY_REMOVED: &str = "factor.passkey_removed";
    pub const FACTOR_RECOVERY_REGENERATED: &str = "factor.recovery_regenerated";
    pub const FACTOR_RECOVERY_USED: &str = "factor.recovery_used";
    pub const FACTORS_RESET: &str = "user.factors_reset";
}

/// The operator: the CLI, or the admin API's bootstrap token.
pub const OPERATOR: &str = "operator";
/// The server itself.
pub const SYSTEM: &str = "system";

/// A user as an actor.
pub fn user(id: &str) -> String {
    format!("user:{id}")
}

/// A client as an actor.
pub fn client(id: &str) -> String {
    format!("client:{id}")
}

/// What events a process writes share: its replica id, its clock, how long they are kept,
/// and when each throttling was last told (so that a flood of refused attempts writes one
/// event a minute per address, client or username, not one per attempt).
#[derive(Clone)]
pub struct Audit {
    replica: Arc<str>,
    retention_secs: Option<i64>,
    clock: Arc<dyn Clock>,
    throttled: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Audit {
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Self {
        let replica: Arc<str> = match &config.server.replica_id {
            Some(id) if !id.trim().is_empty() => id.trim().into(),
            _ => default_replica().into(),
        };
        let days = config.events.retention_days;
        Self {
            replica,
            retention_secs: (days > 0).then(|| i64::from(days) * 24 * 3600),
            clock,
            throttled: Arc::default(),
        }
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Runs `work` with this handle and a request's id and client address: every event it
    /// records carries them.
    pub async fn scope<F: Future>(
        &self,
        request_id: Option<HeaderValue>,
        client_address: Option<IpAddr>,
        work: F,
    ) -> F::Output {
        SCOPE.scope(Scope { audit: self.clone(), request_id, client_address }, work).await
    }
}

/// The replica id when `server.replica_id` is unset: the host name and the process id,
/// which tell apart every process on every machine.
fn default_replica() -> String {
    static REPLICA: OnceLock<String> = OnceLock::new();
    REPLICA
        .get_or_init(|| {
            let mut buf = [0u8; 256];
            // SAFETY: the buffer is writable for its length, which is passed.
            let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
                let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
                String::from_utf8_lossy(&buf[..end]).into_owned()
            } else {
                "localhost".to_owned()
            };
            format!("{host}-{}", std::process::id())
        })
        .clone()
}

/// Kept as the request gave them: written out only when an event is recorded.
#[derive(Clone)]
struct Scope {
    audit: Audit,
    request_id: Option<HeaderValue>,
    client_address: Option<IpAddr>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// The scope of the running task, or the process's own (system clock, default retention)
/// outside any.
fn current() -> Scope {
    SCOPE.try_with(Scope::clone).unwrap_or_else(|_| {
        static FALLBACK: OnceLock<Audit> = OnceLock::new();
        let audit = FALLBACK.get_or_init(|| Audit::new(&Config::default(), Arc::new(SystemClock))).clone();
        Scope { audit, request_id: None, client_address: None }
    })
}

/// Orders the events one process writes within a second.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Records an event: `kind` (one of [`types`]), who did it (`actor`: [`OPERATOR`],
/// [`SYSTEM`], [`user`], [`client`]), what it is about (`subject`: a record kind and id), and
/// a small detail map (`Value::Null` for none). Logged at INFO and stored; a failed write is
/// a warning, never the caller's error.
pub async fn record(storage: &Storage, kind: &'static str, actor: &str, subject: (&str, &str), detail: Value) {
    let scope = current();
    let at = scope.audit.clock.now().max(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 10_000_000_000;
    let id = format!("{at:012}-{sequence:010}-{}", crate::crypto::random_token(4));
    let detail = match detail {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("value".to_owned(), other)]),
    };
    let event = Event {
        id,
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        subject: format!("{}:{}", subject.0, subject.1),
        at,
        request_id: scope.request_id.as_ref().and_then(|id| id.to_str().ok()).map(str::to_owned),
        replica: scope.audit.replica.to_string(),
        client_address: scope.client_address.map(|address| address.to_string()),
        detail,
        expires_at: scope.audit.retention_secs.map(|r| at.saturating_add(r)),
    };
    let logged_detail = Value::Object(event.detail.clone());
    tracing::info!(
        event = kind,
        actor = %event.actor,
        subject = ?event.subject,
        request_id = event.request_id.as_deref().unwrap_or("-"),
        replica = %event.replica,
        client_address = event.client_address.as_deref().unwrap_or("-"),
        detail = %logged_detail,
        "audit event"
    );
    let written = match write::create(&event) {
        Ok(w) => storage.apply(vec![w]).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!(event = kind, error = %e, "writing an audit event failed");
    }
}

/// Records a `sign_in.throttled` event about `subject`, at most once a minute per subject
/// and reason on this replica: a flood of refused attempts writes one event, not one each.
pub async fn record_throttled(storage: &Storage, actor: &str, subject: (&str, &str), reason: &str) {
    let scope = current();
    let key = format!("{reason} {}:{}", subject.0, subject.1);
    {
        let mut told = scope.audit.throttled.lock();
        if told.get(&key).is_some_and(|at| at.elapsed() < THROTTLE_TOLD_EVERY) {
            return;
        }
        limits::make_room(&mut told, limits::MAX_LIMITER_KEYS, |_, at| at.elapsed() < THROTTLE_TOLD_EVERY);
        told.insert(key, Instant::now());
    }
    let detail = serde_json::json!({ "reason": reason });
    record(storage, types::SIGN_IN_THROTTLED, actor, subject, detail).await;
}

/// One `sign_in.throttled` event per subject and reason in this time.
const THROTTLE_TOLD_EVERY: Duration = Duration::from_secs(60);

/// An event as the admin API and the CLI show it: its stored fields, and its time in
/// RFC 3339.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub time: String,
    pub actor: String,
    pub subject: String,
    pub request_id: Option<String>,
    pub replica: String,
    pub client_address: Option<String>,
    pub detail: serde_json::Map<String, Value>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            time: rfc3339(e.at),
            id: e.id,
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            request_id: e.request_id,
            replica: e.replica,
            client_address: e.client_address,
            detail: e.detail,
        }
    }
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

/// The filters of a listing as a caller sends them (the admin API's query, the CLI's
/// options): every one optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventFilter {
    /// An event type (`client.created`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// A record kind and id (`client:3f2c…`).
    pub subject: Option<String>,
    /// `operator`, `system`, `user:<id>` or `client:<id>`.
    pub actor: Option<String>,
    /// RFC 3339: events at or after this time.
    pub since: Option<String>,
    /// RFC 3339: events at or before this time.
    pub until: Option<String>,
    /// Where the previous page ended (its `next_cursor`).
    pub cursor: Option<String>,
    /// Most events on the page.
    pub limit: Option<usize>,
}

/// Why a filter is refused: the field, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct FilterError {
    pub field: &'static str,
    pub reason: String,
}

/// A page of events, oldest first, and where the next page starts (none: no more events).
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    pub events: Vec<EventView>,
    pub next_cursor: Option<String>,
}

struct Query {
    kind: Option<String>,
    subject: Option<String>,
    actor: Option<String>,
    until: Option<i64>,
    after: Option<String>,
    limit: usize,
}

impl EventFilter {
    fn parse(self) -> Result<Query, FilterError> {
        let text = |field: &'static str, v: Option<String>| match v {
            Some(v) if v.len() > limits::MAX_EVENT_FILTER_BYTES => {
                Err(FilterError { field, reason: format!("at most {} bytes", limits::MAX_EVENT_FILTER_BYTES) })
            }
            v => Ok(v),
        };
        let time = |field: &'static str, v: Option<String>| {
            v.map(|v| {
                time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                    .map(|t| t.unix_timestamp())
                    .map_err(|e| FilterError { field, reason: format!("not an RFC 3339 time: {e}") })
            })
            .transpose()
        };
        let since = time("since", self.since)?;
        let until = time("until", self.until)?;
        let cursor = match self.cursor {
            Some(c)
                if c.len() > limits::MAX_EVENT_FILTER_BYTES
                    || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                return Err(FilterError { field: "cursor", reason: "not a cursor this server gave".into() });
            }
            c => c,
        };
        let limit = self.limit.unwrap_or(limits::DEFAULT_EVENTS_PAGE);
        if limit == 0 || limit > limits::MAX_EVENTS_PAGE {
            return Err(FilterError { field: "limit", reason: format!("between 1 and {}", limits::MAX_EVENTS_PAGE) });
        }
        // The listing starts after the cursor, or at the first id of `since`, whichever is later.
        let start = since.map(|s| format!("{:012}", s.max(0)));
        let after = match (cursor, start) {
            (Some(c), Some(s)) => Some(if c > s { c } else { s }),
            (c, s) => c.or(s),
        };
        Ok(Query {
            kind: text("type", self.kind)?,
            subject: text("subject", self.subject)?,
            actor: text("actor", self.actor)?,
            until,
            after,
            limit,
        })
    }
}

impl Query {
    fn matches(&self, e: &Event) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == e.kind)
            && self.subject.as_ref().is_none_or(|s| *s == e.subject)
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The events `filter` selects, oldest first, a page at a time. At most
/// [`limits::MAX_EVENTS_SCANNED`] events are read for one page: a page that filtered out
/// that many may hold fewer events than its limit, and still have a next cursor.
pub async fn list(storage: &Storage, filter: EventFilter) -> Result<EventPage, ListError> {
    let query = filter.parse()?;
    let mut after = query.after.clone();
    let mut events = Vec::new();
    let mut scanned = 0usize;
    loop {
        let batch = limits::EVENTS_READ_AT_ONCE.min(limits::MAX_EVENTS_SCANNED - scanned);
        if batch == 0 {
            return Ok(EventPage { events, next_cursor: after });
        }
        let page = storage.list_after::<Event>(after.as_deref(), batch as u32).await?;
        let full = page.len() == batch;
        for e in page {
            scanned += 1;
            after = Some(e.id.clone());
            if query.until.is_some_and(|u| e.at > u) {
                return Ok(EventPage { events, next_cursor: None });
            }
            if query.matches(&e) {
                events.push(EventView::from(e));
                if events.len() == query.limit {
                    return Ok(EventPage { events, next_cursor: after });
                }
            }
        }
        if !full {
            return Ok(EventPage { events, next_cursor: None });
        }
    }
}
