//! The signed-in user's own account: the applications they connected (ELMA365: profile →
//! external applications), and revoking a connection. The browser's login session
//! authenticates these calls; a connection is every grant the user gave one client.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;

use crate::error::OAuthError;
use crate::model::Session;
use crate::oauth::{App, session};

pub const CONNECTIONS_PATH: &str = "/account/connections";

pub fn router(app: App) -> Router {
    Router::new()
        .route(CONNECTIONS_PATH, get(list))
        .route(&format!("{CONNECTIONS_PATH}/{{client_id}}"), delete(revoke))
        .with_state(app)
}

/// One application the user let in.
#[derive(Debug, Serialize)]
pub struct Connection {
    pub client_id: String,
    pub client_name: String,
    pub application: Option<ConnectedApplication>,
    /// Every scope the user granted the client, in the order first granted.
    pub scopes: Vec<String>,
    /// When the user first connected it (Unix seconds).
    pub since: i64,
}

#[derive(Debug, Serialize)]
pub struct ConnectedApplication {
    pub id: String,
    pub name: String,
    pub description: String,
    pub icon: Option<String>,
}

async fn signed_in(app: &App, headers: &HeaderMap) -> Result<Session, OAuthError> {
    session::current(app, headers)
        .await?
        .ok_or_else(|| OAuthError::LoginRequired("sign in to see your connections".into()))
}

/// The user's connections, one per client, oldest first.
pub async fn connections(app: &App, user_id: &str) -> Result<Vec<Connection>, OAuthError> {
    let mut by_client: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    for grant in app.storage.list_user_grants(user_id, app.clock.now()).await? {
        let (since, scopes) = by_client.entry(grant.client_id.clone()).or_insert((grant.created_at, Vec::new()));
        *since = (*since).min(grant.created_at);
        for s in grant.doc.scopes {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    let mut out = Vec::with_capacity(by_client.len());
    for (client_id, (since, scopes)) in by_client {
        let Some(context) = app.storage.client_context(&client_id).await? else { continue };
        out.push(Connection {
            client_name: context.client.doc.name.clone(),
            application: context.application.as_ref().map(|a| ConnectedApplication {
                id: a.id.clone(),
                name: a.name.clone(),
                description: a.description.clone(),
                icon: a.icon.clone(),
            }),
            client_id,
            scopes,
            since,
        });
    }
    out.sort_by(|a, b| (a.since, &a.client_id).cmp(&(b.since, &b.client_id)));
    Ok(out)
}

fn private(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn list(State(app): State<App>, headers: HeaderMap) -> Response {
    let result = async {
        let session = signed_in(&app, &headers).await?;
        connections(&app, &session.user_id).await
    }
    .await;
    private(match result {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    })
}

/// Revokes a connection: its refresh tokens at once, its access tokens at introspection,
/// and the consent, so the next authorization asks again.
async fn revoke(State(app): State<App>, headers: HeaderMap, Path(client_id): Path<String>) -> Response {
    let result = async {
        let session = signed_in(&app, &headers).await?;
        if !app.storage.revoke_connection(&session.user_id, &client_id).await? {
            return Err(OAuthError::NotFound("no connection to that client".into()));
        }
        tracing::info!(client = %client_id, user = %session.user_id, "connection revoked by its user");
        Ok(())
    }
    .await;
    private(match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    })
}
