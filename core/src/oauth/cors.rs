//! Browser applications on other origins: the CORS protocol of the Fetch Standard (§3.2;
//! its requests §3.2.2, its response headers §3.2.3, credentials §3.2.5) and the
//! CORS-preflight fetch it answers (§4.8).
//!
//! Discovery and the JWK Set are public documents: every origin reads them (`*`). The
//! endpoints a browser application calls as its client (token, userinfo, revocation, pushed
//! authorization, device authorization) let an origin read an answer only when the client
//! the request turns out to be registered that origin ([`Client::origins`]). A preflight
//! carries no credentials, so it names no client: it is allowed for an origin some client
//! registered, and the actual request decides. No answer allows credentials: these endpoints
//! read no cookies. Introspection is for resource servers, never browsers; the pages and
//! the admin API answer no cross-origin read either.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::{App, Protocol};
use crate::error::OAuthError;
use crate::limits::MAX_ORIGIN_BYTES;
use crate::model::Client;

/// The request headers a browser application sends beyond the safelisted ones: a bearer or
/// DPoP token, a form's type, a DPoP proof.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP";
/// The response headers it reads: a fresh DPoP nonce (RFC 9449 §8), a challenge (RFC 6750 §3).
const EXPOSE_HEADERS: &str = "DPoP-Nonce, WWW-Authenticate";
/// How long a browser may reuse a preflight's answer, in seconds: the actual request decides
/// anyway, whichever client it turns out to be.
const MAX_AGE: &str = "600";

/// A request's `Origin` (§3.1), when it can name a registered origin: visible ASCII, not
/// `null`, and at most [`MAX_ORIGIN_BYTES`] long, checked before anything is looked up.
fn origin(headers: &HeaderMap) -> Option<&str> {
    let origin = headers.get(header::ORIGIN)?;
    if origin.len() > MAX_ORIGIN_BYTES {
        return None;
    }
    origin.to_str().ok().filter(|o| *o != "null")
}

/// A request to an endpoint browser applications call: its origin, and whether the client
/// it turned out to be registered that origin.
pub(crate) struct CrossOrigin {
    origin: Option<HeaderValue>,
    allowed: bool,
    /// The request's client, once known, which the access log names.
    client_id: Option<String>,
}

impl CrossOrigin {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let origin = origin(headers).and_then(|o| HeaderValue::from_str(o).ok());
        Self { origin, allowed: false, client_id: None }
    }

    /// The request is `client`'s: the authenticated one, or the public one it names.
    pub(crate) fn client(&mut self, client: &Client) {
        self.client_id = Some(client.id.clone());
        self.allowed = self.origin.as_ref().and_then(|o| o.to_str().ok()).is_some_and(|o| client.allows_origin(o));
    }

    /// The request is the client `client_id`'s (at userinfo, the access token's): read only
    /// when the request came from an origin.
    pub(crate) async fn client_named(&mut self, app: &Protocol, client_id: &str) {
        self.client_id = Some(client_id.to_owned());
        if self.origin.is_none() {
            return;
        }
        match app.storage.client_context(client_id).await {
            Ok(Some(context)) => self.client(&context.client),
            Ok(None) => {}
            // The answer itself does not depend on it; only whether a browser may read it.
            Err(e) => tracing::warn!(error = %e, "reading the client of a cross-origin request failed"),
        }
    }

    /// `response`, readable by the request's origin when its client registered it (§3.2.3).
    /// And the request's client named for the access log.
    pub(crate) fn answer(self, mut response: Response) -> Response {
        if let Some(client_id) = &self.client_id {
            crate::access_log::AuthenticatedClient::name(&mut response, client_id);
        }
        let headers = response.headers_mut();
        // Whether a browser may read it depends on `Origin`: a cache keeps one per origin.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let (true, Some(origin)) = (self.allowed, self.origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        }
        response
    }
}

/// An endpoint browser applications call as a client, whose handlers take `methods`: it
/// answers `OPTIONS` too, a preflight as [`preflight`] does.
pub(crate) fn for_clients(route: MethodRouter<App>, methods: &'static str) -> MethodRouter<App> {
    route.options(move |State(app): State<App>, headers: HeaderMap| async move {
        preflight(&app, &headers, methods).await.unwrap_or_else(IntoResponse::into_response)
    })
}

/// §4.8: a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an
/// origin some unexpired client registered is allowed `methods` and [`ALLOW_HEADERS`];
/// from any other, it gets no CORS header and the browser sends nothing. Any other `OPTIONS`
/// is told the methods (RFC 9110 §9.3.7).
async fn preflight(app: &Protocol, headers: &HeaderMap, methods: &'static str) -> Result<Response, OAuthError> {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(header::ALLOW, HeaderValue::from_static(methods));
    if !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return Ok(response);
    }
    out.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin(headers) else { return Ok(response) };
    if !app.storage.origin_registered(origin, app.clock.now()).await? {
        return Ok(response);
    }
    if let Ok(origin) = HeaderValue::from_str(origin) {
        allow(out, origin, methods, ALLOW_HEADERS);
    }
    Ok(response)
}

/// §3.2.3: what an allowed preflight's answer says.
fn allow(out: &mut HeaderMap, origin: HeaderValue, methods: &'static str, request_headers: &'static str) {
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(request_headers));
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
}

/// A public document (discovery, the JWK Set), which every origin reads, preflight included.
pub(crate) fn public(route: MethodRouter<App>) -> MethodRouter<App> {
    route
        .options(|| async {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let out = response.headers_mut();
            out.insert(header::ALLOW, HeaderValue::from_static("GET"));
            allow(out, HeaderValue::from_static("*"), "GET", "*");
            response
        })
        .layer(axum::middleware::map_response(|mut response: Response| async move {
            response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            response
        }))
}
