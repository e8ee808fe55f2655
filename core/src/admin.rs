//! The admin REST API (`/admin/v1`). A caller is the operator, with the configured
//! bootstrap token (`server.admin_token`), or a user, with a Portcullis access token granted
//! [`ADMIN_SCOPE`]: the server is a resource server of itself. Each operation checks the
//! caller's roles (`applications`); the API is off while no bootstrap token is set.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde_json::json;

use std::sync::Arc;

use crate::applications::{self as apps, Caller};
use crate::config::Config;
use crate::keys::{KeyError, Keys};
use crate::model::{Organization, User};
use crate::oauth::Protocol;
use crate::registry::{self, ClientSummary, NewClient, NewUser, RegistryError, UserSummary};
use crate::storage::Storage;

/// The scope an access token needs to call the admin API as its user.
pub const ADMIN_SCOPE: &str = "portcullis:admin";

/// What the admin API uses: the configuration (its token), the records, the keys, and the
/// protocol, whose access tokens it accepts.
pub struct Admin {
    pub config: Arc<Config>,
    pub storage: Storage,
    pub keys: Arc<Keys>,
    pub protocol: Arc<Protocol>,
}

type App = Arc<Admin>;

/// The admin API's routes, each with its methods and handlers: the router is built from this
/// table, and [`ROUTES`] (the same table, without the handlers) is what the OpenAPI document
/// is checked against.
macro_rules! routes {
    ($($path:literal => { $($method:ident: $handler:ident),+ $(,)? }),+ $(,)?) => {
        /// Every route of the admin API behind the caller check, with its methods.
        pub const ROUTES: &[(&str, &[&str])] = &[$(($path, &[$(stringify!($method)),+])),+];

        fn guarded() -> Router<App> {
            Router::new()$(.route($path, axum::routing::MethodRouter::new()$(.$method($handler))+))+
        }
    };
}

routes! {
    "/admin/v1/clients" => { get: list_clients, post: create_client },
    "/admin/v1/clients/{id}" => { get: get_client, delete: delete_client },
    "/admin/v1/users" => { get: list_users, post: create_user },
    "/admin/v1/keys" => { get: list_keys },
    "/admin/v1/keys/rotate" => { post: rotate_keys },
    "/admin/v1/keys/{kid}/retire" => { post: retire_key },
    "/admin/v1/organizations" => { get: list_organizations, post: create_organization },
    "/admin/v1/organizations/{id}" => { get: get_organization },
    "/admin/v1/organizations/{id}/members" => { get: list_members },
    "/admin/v1/organizations/{id}/members/{user_id}" => { put: set_membership },
    "/admin/v1/organizations/{id}/applications" => { get: organization_applications },
    "/admin/v1/organizations/{id}/instances" => { get: list_instances, post: add_instance },
    "/admin/v1/instances/{id}" => { delete: remove_instance },
    "/admin/v1/applications" => { get: list_applications, post: create_application },
    "/admin/v1/applications/{id}" => { get: get_application, patch: update_application, delete: delete_application },
    "/admin/v1/applications/{id}/templates" => { get: list_templates, post: create_template },
    "/admin/v1/templates/{id}" => { patch: update_template, delete: delete_template },
    "/admin/v1/templates/{id}/clients" => { post: create_template_client },
}

/// Where the OpenAPI document of this API is served, to anyone.
pub const OPENAPI_PATH: &str = "/admin/v1/openapi.json";

/// The OpenAPI 3.1 document of the admin API.
pub const OPENAPI: &str = include_str!("../openapi/admin-v1.json");

pub fn router(app: App) -> Router {
    guarded()
        // Only the admin routes ask for a caller: a `layer` would also wrap the fallback,
        // and every unknown path would answer 401.
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), require_caller))
        .route(OPENAPI_PATH, get(openapi))
        .layer(DefaultBodyLimit::max(crate::limits::ADMIN_BODY_BYTES))
        .with_state(app)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn problem(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    (status, Json(json!({"error": error, "error_description": description.into()}))).into_response()
}

fn unauthorized(error: &str, description: &str) -> Response {
    let mut r = problem(StatusCode::UNAUTHORIZED, error, description);
    let challenge = format!("Bearer error=\"{error}\"");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
    );
    r
}

/// Who is calling: the bootstrap token is the operator; an access token granted
/// [`ADMIN_SCOPE`] is its user (RFC 6750 §3.1 errors otherwise).
async fn require_caller(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let Some(expected) = &app.config.server.admin_token else {
        return problem(StatusCode::NOT_FOUND, "not_found", "the admin API is disabled");
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default();
    let caller = if bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), expected.as_bytes())) {
        Caller::Operator
    } else {
        match user_caller(&app, &presented).await {
            Ok(user) => Caller::User(Box::new(user)),
            Err(response) => return response,
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn user_caller(app: &Admin, token: &str) -> Result<User, Response> {
    if token.is_empty() {
        let mut r = problem(StatusCode::UNAUTHORIZED, "invalid_token", "a bearer token is required");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Err(r);
    }
    let invalid = || unauthorized("invalid_token", "the token is invalid, expired or revoked");
    let claims = match crate::oauth::access_token::validate(&app.protocol, token, None).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(invalid()),
        Err(e) => return Err(e.into_response()),
    };
    if !claims.scopes().any(|s| s == ADMIN_SCOPE) {
        let mut r =
            problem(StatusCode::FORBIDDEN, "insufficient_scope", format!("the token was not granted `{ADMIN_SCOPE}`"));
        let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\"");
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return Err(r);
    }
    // A client's own token (client credentials) speaks for no user.
    if claims.gid.is_none() {
        return Err(problem(StatusCode::FORBIDDEN, "insufficient_scope", "the admin API acts for a user"));
    }
    match app.storage.get_user(&claims.sub).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(invalid()),
        Err(e) => Err(storage_error(e)),
    }
}

fn registry_error(e: RegistryError) -> Response {
    match e {
        RegistryError::Invalid(m) => problem(StatusCode::BAD_REQUEST, "invalid_request", m),
        RegistryError::Field { field, reason } => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": format!("`{field}`: {reason}"), "field": field})),
        )
            .into_response(),
        RegistryError::Exists(m) => problem(StatusCode::CONFLICT, "conflict", format!("{m} already exists")),
        RegistryError::Conflict(m) => problem(StatusCode::CONFLICT, "conflict", m),
        RegistryError::Forbidden(m) => problem(StatusCode::FORBIDDEN, "forbidden", m),
        RegistryError::NotFound(m) => problem(StatusCode::NOT_FOUND, "not_found", m),
        RegistryError::Storage(e) => {
            tracing::error!(error = %e, "admin storage operation failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "storage failed")
        }
        RegistryError::Internal(m) => {
            tracing::error!(error = %m, "admin operation failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the server failed")
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

/// The operations of the server itself (clients, users, keys): its administrators only.
fn administrators_only(caller: &Caller) -> Option<Response> {
    let admin = match caller {
        Caller::Operator => true,
        Caller::User(u) => u.doc.roles.iter().any(|r| r == crate::model::roles::SYSTEM_ADMINISTRATOR),
    };
    (!admin).then(|| {
        problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("only a `{}` may do this", crate::model::roles::SYSTEM_ADMINISTRATOR),
        )
    })
}

/// A result as JSON with `status`, or its error.
fn respond<T: Serialize>(status: StatusCode, result: Result<T, RegistryError>) -> Response {
    match result {
        Ok(v) => (status, Json(v)).into_response(),
        Err(e) => registry_error(e),
    }
}

/// What a removal answers: 204 with no body, or its error.
fn removed(result: Result<(), RegistryError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => registry_error(e),
    }
}

/// The body, or the response that refuses it.
macro_rules! body {
    ($body:expr) => {
        match $body {
            Ok(Json(b)) => b,
            Err(e) => return rejected(e),
        }
    };
}

async fn create_client(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<NewClient>,
) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    let new = body!(body);
    match registry::register_client(&app.storage, &app.keys, new).await {
        Ok(r) => (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(r)).into_response(),
        Err(e) => registry_error(e),
    }
}

async fn list_clients(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    match app.storage.list_clients().await {
        Ok(list) => Json(list.iter().map(ClientSummary::from).collect::<Vec<_>>()).into_response(),
        Err(e) => storage_error(e),
    }
}

async fn get_client(State(app): State<App>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    match app.storage.get_client(&id).await {
        Ok(Some(c)) => Json(ClientSummary::from(&c)).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not_found", "no such client"),
        Err(e) => storage_error(e),
    }
}

async fn delete_client(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    match app.storage.delete_client(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => problem(StatusCode::NOT_FOUND, "not_found", "no such client"),
        Err(e) => storage_error(e),
    }
}

async fn create_user(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<NewUser>,
) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    let new = body!(body);
    match registry::add_user(&app.storage, new).await {
        Ok(u) => (StatusCode::CREATED, Json(u)).into_response(),
        Err(e) => registry_error(e),
    }
}

async fn list_users(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    match app.storage.list_users().await {
        Ok(list) => Json(list.iter().map(UserSummary::from).collect::<Vec<_>>()).into_response(),
        Err(e) => storage_error(e),
    }
}

fn key_error(e: KeyError) -> Response {
    match e {
        KeyError::Unknown(kid) => problem(StatusCode::NOT_FOUND, "not_found", format!("no signing key `{kid}`")),
        KeyError::Contended(_) => problem(StatusCode::CONFLICT, "conflict", "the key kept changing; try again"),
        e => {
            tracing::error!(error = %e, "signing key operation failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the signing keys could not be changed")
        }
    }
}

async fn list_keys(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    match app.keys.list().await {
        Ok(keys) => Json(keys).into_response(),
        Err(e) => key_error(e),
    }
}

/// `POST /admin/v1/keys/rotate`'s body, which may be left out.
#[derive(Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Rotation {
    /// The new keys sign at once instead of after `keys.publish_ahead`.
    now: bool,
}

async fn rotate_keys(State(app): State<App>, Extension(caller): Extension<Caller>, body: Bytes) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_request", format!("the body: {e}")),
        }
    };
    match app.keys.rotate(rotation.now).await {
        Ok(added) => Json(added).into_response(),
        Err(e) => key_error(e),
    }
}

async fn retire_key(State(app): State<App>, Extension(caller): Extension<Caller>, Path(kid): Path<String>) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    match app.keys.retire(&kid).await {
        Ok(changed) => Json(changed).into_response(),
        Err(e) => key_error(e),
    }
}

// Organizations and memberships

async fn create_organization(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<apps::NewOrganization>,
) -> Response {
    let new = body!(body);
    respond(StatusCode::CREATED, apps::create_organization(&app.storage, &caller, new).await)
}

async fn list_organizations(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    respond(StatusCode::OK, app.storage.list::<Organization>().await.map_err(RegistryError::from))
}

async fn get_organization(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = apps::require_reader(&app.storage, &caller, Some(&id)).await {
        return registry_error(e);
    }
    respond(StatusCode::OK, apps::get_organization(&app.storage, &id).await)
}

async fn list_members(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = apps::require_reader(&app.storage, &caller, Some(&id)).await {
        return registry_error(e);
    }
    respond(StatusCode::OK, apps::list_members(&app.storage, &id).await)
}

async fn set_membership(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((id, user_id)): Path<(String, String)>,
    body: JsonBody<apps::MemberRoles>,
) -> Response {
    let roles = body!(body);
    respond(StatusCode::OK, apps::set_membership(&app.storage, &caller, &id, &user_id, roles).await)
}

/// The applications created in an organization.
async fn organization_applications(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = apps::get_organization(&app.storage, &id).await {
        return registry_error(e);
    }
    let filter = apps::ApplicationFilter { organization: Some(id), ..Default::default() };
    respond(StatusCode::OK, apps::list_applications(&app.storage, &caller, filter).await)
}

/// The applications with access to an organization.
async fn list_instances(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = apps::require_reader(&app.storage, &caller, Some(&id)).await {
        return registry_error(e);
    }
    respond(StatusCode::OK, apps::list_instances(&app.storage, &id).await)
}

async fn add_instance(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<apps::AddApplication>,
) -> Response {
    let add = body!(body);
    respond(StatusCode::CREATED, apps::add_instance(&app.storage, &caller, &id, add).await)
}

async fn remove_instance(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    removed(apps::remove_instance(&app.storage, &caller, &id).await)
}

// Applications

/// The created application, with its credentials where it has a client: shown this once,
/// and offered as a file to download (VMware: "download a JSON file").
async fn create_application(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<apps::NewApplication>,
) -> Response {
    let new = body!(body);
    match apps::create_application(&app.storage, &app.config, &caller, new).await {
        Ok(created) => {
            let mut r = (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(&created)).into_response();
            if created.credentials.is_some() {
                let file = format!("attachment; filename=\"credentials-{}.json\"", created.application.id);
                if let Ok(v) = HeaderValue::from_str(&file) {
                    r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                }
            }
            r
        }
        Err(e) => registry_error(e),
    }
}

async fn list_applications(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    filter: Result<Query<apps::ApplicationFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(f) => f,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()),
    };
    respond(StatusCode::OK, apps::list_applications(&app.storage, &caller, filter).await)
}

async fn get_application(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    respond(StatusCode::OK, apps::get_application(&app.storage, &caller, &id).await)
}

async fn update_application(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<apps::ApplicationUpdate>,
) -> Response {
    let change = body!(body);
    respond(StatusCode::OK, apps::update_application(&app.storage, &app.config, &caller, &id, change).await)
}

async fn delete_application(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    removed(apps::delete_application(&app.storage, &caller, &id).await)
}

// Client templates and their clients

async fn create_template(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<apps::NewTemplate>,
) -> Response {
    let new = body!(body);
    respond(StatusCode::CREATED, apps::create_template(&app.storage, &caller, &id, new).await)
}

async fn list_templates(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = administrators_only(&caller) {
        return refused;
    }
    respond(StatusCode::OK, apps::list_templates(&app.storage, &id).await)
}

async fn update_template(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<apps::TemplateUpdate>,
) -> Response {
    let change = body!(body);
    respond(StatusCode::OK, apps::update_template(&app.storage, &caller, &id, change).await)
}

async fn delete_template(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    removed(apps::delete_template(&app.storage, &caller, &id).await)
}

/// A client created from a template: its id and secret, shown this once.
async fn create_template_client(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<apps::NewTemplateClient>,
) -> Response {
    let new = body!(body);
    match apps::create_template_client(&app.storage, &caller, &id, new).await {
        Ok(r) => (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(r)).into_response(),
        Err(e) => registry_error(e),
    }
}
