//! The admin REST API (`/admin/v1`), bearer-authenticated with the configured admin token.
//! It is off while `server.admin_token` is unset.

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use std::sync::Arc;

use crate::config::Config;
use crate::keys::Keys;
use crate::registry::{self, ClientSummary, NewClient, NewUser, RegistryError, UserSummary};
use crate::storage::Storage;

/// What the admin API uses: the configuration (its token), the records and the keys.
pub struct Admin {
    pub config: Arc<Config>,
    pub storage: Storage,
    pub keys: Arc<Keys>,
}

type App = Arc<Admin>;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/admin/v1/clients", get(list_clients).post(create_client))
        .route("/admin/v1/clients/{id}", get(get_client).delete(delete_client))
        .route("/admin/v1/users", get(list_users).post(create_user))
        .route("/admin/v1/keys/rotate", axum::routing::post(rotate_keys))
        // Only the admin routes ask for the token: a `layer` would also wrap the fallback,
        // and every unknown path would answer 401.
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), require_admin))
        .layer(DefaultBodyLimit::max(crate::limits::ADMIN_BODY_BYTES))
        .with_state(app)
}

fn problem(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    (status, Json(json!({"error": error, "error_description": description.into()}))).into_response()
}

async fn require_admin(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(expected) = &app.config.server.admin_token else {
        return problem(StatusCode::NOT_FOUND, "not_found", "the admin API is disabled");
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), expected.as_bytes())) {
        let mut r = problem(StatusCode::UNAUTHORIZED, "invalid_token", "a valid admin token is required");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

fn registry_error(e: RegistryError) -> Response {
    match e {
        RegistryError::Invalid(m) => problem(StatusCode::BAD_REQUEST, "invalid_request", m),
        RegistryError::Exists(m) => problem(StatusCode::CONFLICT, "conflict", format!("{m} already exists")),
        RegistryError::Storage(e) => {
            tracing::error!(error = %e, "admin storage operation failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "storage failed")
        }
    }
}

fn storage_error(e: crate::storage::StorageError) -> Response {
    registry_error(RegistryError::Storage(e))
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// A body that is not the expected JSON is 400, one too large to read 413.
fn rejected(e: axum::extract::rejection::JsonRejection) -> Response {
    let status = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    problem(status, "invalid_request", e.body_text())
}

async fn create_client(State(app): State<App>, body: JsonBody<NewClient>) -> Response {
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return rejected(e),
    };
    match registry::register_client(&app.storage, new).await {
        Ok(r) => (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(r)).into_response(),
        Err(e) => registry_error(e),
    }
}

async fn list_clients(State(app): State<App>) -> Response {
    match app.storage.list_clients().await {
        Ok(list) => Json(list.iter().map(ClientSummary::from).collect::<Vec<_>>()).into_response(),
        Err(e) => storage_error(e),
    }
}

async fn get_client(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.storage.get_client(&id).await {
        Ok(Some(c)) => Json(ClientSummary::from(&c)).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not_found", "no such client"),
        Err(e) => storage_error(e),
    }
}

async fn delete_client(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.storage.delete_client(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => problem(StatusCode::NOT_FOUND, "not_found", "no such client"),
        Err(e) => storage_error(e),
    }
}

async fn create_user(State(app): State<App>, body: JsonBody<NewUser>) -> Response {
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return rejected(e),
    };
    match registry::add_user(&app.storage, new).await {
        Ok(u) => (StatusCode::CREATED, Json(u)).into_response(),
        Err(e) => registry_error(e),
    }
}

async fn list_users(State(app): State<App>) -> Response {
    match app.storage.list_users().await {
        Ok(list) => Json(list.iter().map(UserSummary::from).collect::<Vec<_>>()).into_response(),
        Err(e) => storage_error(e),
    }
}

async fn rotate_keys(State(app): State<App>) -> Response {
    match app.keys.rotate(app.config.longest_token_lifetime()).await {
        Ok(kid) => Json(json!({"kid": kid})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "key rotation failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "key rotation failed")
        }
    }
}
