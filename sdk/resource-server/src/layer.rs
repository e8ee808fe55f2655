//! The axum integration: a layer that lets only requests with a valid token carrying the
//! required scopes through, and the [`Claims`] extractor for the handlers behind it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::Request;
use axum::http::request::Parts;
use axum::response::Response;
use tower::{Layer, Service};

use crate::{Claims, Error, Validator};

/// A layer that validates the request's bearer token with `validator` and requires `scope`;
/// the handler gets the token's [`Claims`] (as an extractor, or from the request extensions).
///
/// Refusals follow RFC 6750 §3: no token → 401 `WWW-Authenticate: Bearer realm="…"`; a bad
/// or expired token → 401 `error="invalid_token"`; a missing scope → 403
/// `error="insufficient_scope", scope="…"`; each with a JSON body
/// `{"error": …, "error_description": …}`. The request body is not read before the token is
/// accepted.
///
/// Mount it with `route_layer`, so that unknown paths still answer 404:
///
/// ```
/// use axum::{Router, routing::post};
/// use portcullis_resource_server::{Claims, Validator, require_scope};
///
/// async fn execute(claims: Claims) -> String {
///     claims.sub
/// }
///
/// let app: Router = Router::new()
///     .route("/webhook", post(execute))
///     .route_layer(require_scope(Validator::jwks("http://127.0.0.1:8080"), "apps.webhook:execute"));
/// ```
pub fn require_scope(validator: Validator, scope: impl Into<String>) -> RequireScopeLayer {
    require_scopes(validator, [scope])
}

/// Like [`require_scope`], requiring every one of `scopes` (none: any valid token).
pub fn require_scopes<I, S>(validator: Validator, scopes: I) -> RequireScopeLayer
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let scopes = scopes.into_iter().map(Into::into).collect();
    RequireScopeLayer { requirement: Arc::new(Requirement { validator, scopes }) }
}

struct Requirement {
    validator: Validator,
    scopes: Vec<String>,
}

/// The layer [`require_scope`] returns.
#[derive(Clone)]
pub struct RequireScopeLayer {
    requirement: Arc<Requirement>,
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope { inner, requirement: self.requirement.clone() }
    }
}

/// The service [`RequireScopeLayer`] wraps around a route.
#[derive(Clone)]
pub struct RequireScope<S> {
    inner: S,
    requirement: Arc<Requirement>,
}

impl<S, B> Service<Request<B>> for RequireScope<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone is not ready; the instance `poll_ready` readied is the one that serves.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let requirement = self.requirement.clone();
        Box::pin(async move {
            let validator = &requirement.validator;
            match validator.authorize(request.headers(), &requirement.scopes).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(e) => Ok(e.to_response(validator.realm())),
            }
        })
    }
}

/// The claims [`require_scope`] validated. Without that layer in front of the handler the
/// request is answered 500 ([`Error::NotValidated`]).
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Claims>().cloned().ok_or(Error::NotValidated)
    }
}
