//! The access log: one line per request, at INFO, target `portcullis::access`, with the
//! method, the route (the template it matched, `/admin/v1/clients/{id}`; never the path
//! itself, which may carry ids, nor the query, which may carry codes and tokens), the
//! status, the latency, the client address ([`crate::client_address`]), the client where one
//! was authenticated, and the request id. No header, body or query is ever written.
//!
//! The client is what the endpoint that authenticated it put in its response's extensions
//! ([`AuthenticatedClient`]): the token, introspection, revocation, pushed authorization
//! and device authorization endpoints, and userinfo (the access token's client).
//! `server.access_log = false` turns the log off.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::client_address::ClientAddress;
use crate::limits::MAX_LOGGED_REQUEST_ID_BYTES;

/// The client a request was made by, once the endpoint authenticated it (or, at userinfo,
/// found it in the access token): put in the response's extensions for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedClient(pub String);

impl AuthenticatedClient {
    /// Names `client_id` as `response`'s client.
    pub fn name(response: &mut Response, client_id: &str) {
        response.extensions_mut().insert(Self(client_id.to_owned()));
    }
}

/// The middleware writing the line, once the answer's head is ready.
pub async fn layer(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let address = ClientAddress::of(request.extensions());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| cut(id, MAX_LOGGED_REQUEST_ID_BYTES).to_owned());
    let response = next.run(request).await;
    let client = response.extensions().get::<AuthenticatedClient>().map(|c| c.0.as_str());
    tracing::info!(
        target: "portcullis::access",
        method = %method,
        route = route.as_deref().unwrap_or("(no route)"),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        address = %address,
        client_id = client.unwrap_or("-"),
        request_id = request_id.as_deref().unwrap_or("-"),
        "request"
    );
    response
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
