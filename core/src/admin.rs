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

use std::sync::Arc;

use crate::applications as apps;
use crate::config::Config;
use crate::error::AdminError;
use crate::keys::Keys;
use crate::model::User;
use crate::oauth::Protocol;
use crate::registry::{self, Caller, ClientUpdate, NewClient, NewUser, RegistryError, UserUpdate};
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
    "/admin/v1/clients/{id}" => { get: get_client, patch: update_client, delete: delete_client },
    "/admin/v1/clients/{id}/secret" => { post: rotate_client_secret },
    "/admin/v1/users" => { get: list_users, post: create_user },
    "/admin/v1/users/{id}" => { patch: update_user, delete: delete_user },
    "/admin/v1/users/{id}/password" => { post: set_user_password },
    "/admin/v1/users/{id}/factors" => { delete: reset_user_factors },
    "/admin/v1/keys" => { get: list_keys },
    "/admin/v1/keys/rotate" => { post: rotate_keys },
    "/admin/v1/keys/{kid}/retire" => { post: retire_key },
    "/admin/v1/organizations" => { get: list_organizations, post: create_organization },
    "/admin/v1/organizations/{id}" => { get: get_organization, patch: update_organization },
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
    "/admin/v1/events" => { get: list_events },
    "/admin/v1/policies/simulate" => { post: simulate_policy },
    "/admin/v1/registration/tokens" => { get: list_registration_tokens, post: issue_registration_token },
    "/admin/v1/registration/tokens/{id}" => { delete: revoke_registration_token },
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

/// Who is calling: the bootstrap token is the operator; an access token granted
/// [`ADMIN_SCOPE`] is its user (RFC 6750 §3.1 errors otherwise).
async fn require_caller(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let Some(expected) = &app.config.server.admin_token else {
        return AdminError::NotFound("the admin API is disabled".into()).into_response();
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
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("-", |p| p.as_str());
    let route = format!("{} {route}", req.method());
    admin_request_event(&app, &caller, &route, req.uri().path().to_owned()).await;
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The audit event of an admin request, once each: the bootstrap token's use (the operator)
/// or an admin-scoped token's (its user), with the route.
async fn admin_request_event(app: &Admin, caller: &Caller, route: &str, path: String) {
    use crate::audit::{self, types};
    let kind = match caller {
        Caller::Operator => types::ADMIN_TOKEN_USED,
        Caller::User(_) => types::ADMIN_SCOPE_USED,
    };
    let detail = serde_json::json!({ "path": path });
    audit::record(&app.storage, kind, &caller.actor(), ("route", route), detail).await;
}

async fn user_caller(app: &Admin, token: &str) -> Result<User, Response> {
    if token.is_empty() {
        return Err(AdminError::MissingToken.into_response());
    }
    let invalid = || AdminError::InvalidToken("the token is invalid, expired or revoked".into()).into_response();
    let claims = match crate::oauth::access_token::validate(&app.protocol, token, None).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(invalid()),
        Err(e) => return Err(e.into_response()),
    };
    if !claims.scopes().any(|s| s == ADMIN_SCOPE) {
        let reason = format!("the token was not granted `{ADMIN_SCOPE}`");
        return Err(AdminError::InsufficientScope { needed: Some(ADMIN_SCOPE), reason }.into_response());
    }
    // A client's own token (client credentials) speaks for no user.
    if claims.gid.is_none() {
        let reason = "the admin API acts for a user".into();
        return Err(AdminError::InsufficientScope { needed: None, reason }.into_response());
    }
    match app.storage.get_user(&claims.sub).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(invalid()),
        Err(e) => Err(storage_error(e)),
    }
}

/// What each registry error is to the admin API (its status is chosen in `error.rs`).
impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(m) => Self::InvalidRequest(m),
            RegistryError::Field { field, reason } => Self::InvalidField { field, reason },
            RegistryError::Exists(m) => Self::Conflict(format!("{m} already exists")),
            RegistryError::Conflict(m) => Self::Conflict(m),
            RegistryError::Forbidden(m) => Self::Forbidden(m),
            RegistryError::NotFound(m) => Self::NotFound(m),
            RegistryError::Storage(e) => e.into(),
            RegistryError::Internal(m) => Self::failed("operation", m),
            e @ RegistryError::Busy => Self::Unavailable(e.to_string()),
            RegistryError::Policy(e) => Self::Policy(e),
        }
    }
}

fn registry_error(e: RegistryError) -> Response {
    AdminError::from(e).into_response()
}

fn storage_error(e: crate::storage::StorageError) -> Response {
    AdminError::from(e).into_response()
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// A body that is not the expected JSON is 400, one too large to read 413.
fn rejected(e: axum::extract::rejection::JsonRejection) -> Response {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AdminError::BodyTooLarge(e.body_text()),
        _ => AdminError::InvalidRequest(e.body_text()),
    }
    .into_response()
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
    let new = body!(body);
    match registry::register_client(&app.storage, &app.keys, &caller, new).await {
        Ok(r) => (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(r)).into_response(),
        Err(e) => registry_error(e),
    }
}

async fn list_clients(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    respond(StatusCode::OK, registry::list_clients(&app.storage, &caller).await)
}

async fn get_client(State(app): State<App>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    respond(StatusCode::OK, registry::get_client(&app.storage, &caller, &id).await)
}

async fn delete_client(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    removed(registry::delete_client(&app.storage, &caller, &id).await)
}

async fn create_user(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<NewUser>,
) -> Response {
    let new = body!(body);
    respond(StatusCode::CREATED, registry::add_user(&app.storage, &app.protocol.passwords, &caller, new).await)
}

async fn list_users(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    respond(StatusCode::OK, registry::list_users(&app.storage, &caller).await)
}

/// A JSON body that may be left out (empty or only whitespace: `T::default()`); a body past
/// the admin API's bound, or one that is not a `T`, is the error.
fn optional_body<T: Default + serde::de::DeserializeOwned>(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, AdminError> {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(AdminError::BodyTooLarge(e.body_text())),
        Err(e) => return Err(AdminError::InvalidRequest(e.body_text())),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| AdminError::InvalidRequest(format!("the body: {e}")))
}

async fn list_keys(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    respond(StatusCode::OK, registry::list_keys(&app.keys, &caller).await)
}

/// `POST /admin/v1/keys/rotate`'s body, which may be left out.
#[derive(Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Rotation {
    /// The new keys sign at once instead of after `keys.publish_ahead`.
    now: bool,
}

async fn rotate_keys(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let rotation: Rotation = match optional_body(body) {
        Ok(value) => value,
        Err(e) => return e.into_response(),
    };
    respond(StatusCode::OK, registry::rotate_keys(&app.keys, &caller, rotation.now).await)
}

async fn retire_key(State(app): State<App>, Extension(caller): Extension<Caller>, Path(kid): Path<String>) -> Response {
    respond(StatusCode::OK, registry::retire_key(&app.keys, &caller, &kid).await)
}

// Initial access tokens for Dynamic Client Registration

async fn issue_registration_token(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // The body may be left out: a token for a day, any number of registrations.
    let new: registry::NewInitialAccessToken = match optional_body(body) {
        Ok(value) => value,
        Err(e) => return e.into_response(),
    };
    match registry::issue_initial_access_token(&app.storage, &caller, new).await {
        Ok(t) => (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(t)).into_response(),
        Err(e) => registry_error(e),
    }
}

async fn list_registration_tokens(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    let now = crate::model::Clock::now(app.protocol.clock.as_ref());
    respond(StatusCode::OK, registry::list_initial_access_tokens(&app.storage, &caller, now).await)
}

async fn revoke_registration_token(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    removed(registry::revoke_initial_access_token(&app.storage, &caller, &id).await)
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
    respond(StatusCode::OK, apps::list_organizations(&app.storage, &caller).await)
}

async fn get_organization(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    respond(StatusCode::OK, apps::get_organization(&app.storage, &caller, &id).await)
}

async fn update_organization(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<apps::OrganizationUpdate>,
) -> Response {
    let change = body!(body);
    respond(StatusCode::OK, apps::update_organization(&app.storage, &caller, &id, change).await)
}

async fn list_members(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    respond(StatusCode::OK, apps::list_members(&app.storage, &caller, &id).await)
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
    if let Err(e) = apps::get_organization(&app.storage, &caller, &id).await {
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
    respond(StatusCode::OK, apps::list_instances(&app.protocol, &caller, &id).await)
}

async fn add_instance(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<apps::AddApplication>,
) -> Response {
    let add = body!(body);
    respond(StatusCode::CREATED, apps::add_instance(&app.protocol, &caller, &id, add).await)
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
        Err(e) => return AdminError::InvalidRequest(e.body_text()).into_response(),
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
    respond(StatusCode::OK, apps::list_templates(&app.storage, &caller, &id).await)
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

// The lifecycle of clients and users

async fn update_client(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<ClientUpdate>,
) -> Response {
    let change = body!(body);
    respond(StatusCode::OK, registry::update_client(&app.storage, &app.keys, &caller, &id, change).await)
}

/// `POST /admin/v1/clients/{id}/secret`'s body, which may be left out.
#[derive(Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SecretRotation {
    /// How long the old secret is still accepted, in seconds (0: refused at once).
    grace_seconds: u64,
}

/// A new secret for a client: shown this once.
async fn rotate_client_secret(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let rotation: SecretRotation = match optional_body(body) {
        Ok(value) => value,
        Err(e) => return e.into_response(),
    };
    let now = app.protocol.clock.now();
    match registry::rotate_client_secret(&app.storage, &app.keys, &caller, &id, rotation.grace_seconds, now).await {
        Ok(r) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(r)).into_response(),
        Err(e) => registry_error(e),
    }
}

async fn update_user(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<UserUpdate>,
) -> Response {
    let change = body!(body);
    respond(StatusCode::OK, registry::update_user(&app.storage, &caller, &id, change).await)
}

async fn delete_user(State(app): State<App>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    removed(registry::delete_user(&app.storage, &caller, &id).await)
}

/// `POST /admin/v1/users/{id}/password`'s body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn set_user_password(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody<NewPassword>,
) -> Response {
    let new = body!(body);
    let result = registry::set_user_password(&app.storage, &app.protocol.passwords, &caller, &id, &new.password).await;
    respond(StatusCode::OK, result)
}

/// Removes every second factor of a user and ends their sessions (`registry::reset_factors`).
async fn reset_user_factors(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    removed(registry::reset_factors(&app.storage, &caller, &id).await.map(|_| ()))
}

// Audit events

async fn list_events(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    filter: Result<Query<crate::audit::EventFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(f) => f,
        Err(e) => return AdminError::InvalidRequest(e.body_text()).into_response(),
    };
    respond(StatusCode::OK, registry::list_events(&app.storage, &caller, filter).await)
}

// Trying a scope policy

/// What a scope policy would grant on stored records, with nothing issued or stored. Not
/// audited: a simulation changes nothing (the admin request's own event is recorded as for
/// every call).
async fn simulate_policy(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<apps::SimulateGrant>,
) -> Response {
    let simulate = body!(body);
    match apps::simulate_grant(&app.protocol, &caller, simulate).await {
        Ok(s) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(s)).into_response(),
        Err(e) => registry_error(e),
    }
}
