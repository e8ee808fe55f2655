//! A Deployteq-style webhook: `POST /webhook` with a JSON object, accepted only with a
//! Portcullis access token that carries the scope `apps.webhook:execute`.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use portcullis_resource_server::Validator;
//!
//! let app = webhook_receiver::router(Validator::jwks("http://127.0.0.1:8080"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Answers: 202 with `{"status": "accepted", "received": <the body>, "client_id": …, "sub": …}`;
//! 400 when the body is not a JSON object; 401 and 403 (RFC 6750 §3) from
//! [`portcullis_resource_server::require_scope`]; 413 past [`MAX_BODY_BYTES`]. The token is
//! checked before the body is read.

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use portcullis_resource_server::{Claims, Validator, require_scope};
use serde_json::{Value, json};

/// The scope a token needs to deliver a webhook.
pub const SCOPE: &str = "apps.webhook:execute";

/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// `POST /webhook`, guarded by `validator` and [`SCOPE`].
pub fn router(validator: Validator) -> Router {
    Router::new()
        .route("/webhook", post(receive))
        .route_layer(require_scope(validator, SCOPE))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn receive(claims: Claims, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return problem(e.status(), e.body_text()),
    };
    let payload = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(payload)) => payload,
        Ok(_) => return problem(StatusCode::BAD_REQUEST, "the body must be a JSON object".into()),
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")),
    };
    // The payload's values are someone's personal data: only their number is logged.
    tracing::info!(client_id = %claims.client_id, sub = %claims.sub, fields = payload.len(), "webhook received");
    let ack = json!({
        "status": "accepted",
        "received": payload,
        "client_id": claims.client_id,
        "sub": claims.sub,
    });
    (StatusCode::ACCEPTED, Json(ack)).into_response()
}

fn problem(status: StatusCode, description: String) -> Response {
    (status, Json(json!({"error": "invalid_request", "error_description": description}))).into_response()
}
