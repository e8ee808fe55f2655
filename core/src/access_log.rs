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

use std::net::IpAddr;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::response::Response;

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

/// A request's line: what is known when the request arrives, written by [`Line::write`]
/// once the answer's head is ready (`server.rs` runs both around every request).
pub struct Line {
    started: Instant,
    method: Method,
    route: Option<MatchedPath>,
    address: IpAddr,
    request_id: HeaderValue,
}

impl Line {
    /// The line of `request`, which matched `route` and arrived at `started` from `address`
    /// (its client address), with `request_id` (its own or the one the edge gave it).
    pub fn begin(
        request: &Request,
        route: Option<MatchedPath>,
        started: Instant,
        address: IpAddr,
        request_id: HeaderValue,
    ) -> Self {
        Self { started, method: request.method().clone(), route, address, request_id }
    }

    pub fn write(self, response: &Response) {
        let client = response.extensions().get::<AuthenticatedClient>().map(|c| c.0.as_str());
        let request_id = self.request_id.to_str().ok();
        tracing::info!(
            target: "portcullis::access",
            method = %self.method,
            route = self.route.as_ref().map_or("(no route)", MatchedPath::as_str),
            status = response.status().as_u16(),
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            address = %self.address,
            client_id = client.unwrap_or("-"),
            request_id = request_id.map_or("-", |id| cut(id, MAX_LOGGED_REQUEST_ID_BYTES)),
            "request"
        );
    }
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
