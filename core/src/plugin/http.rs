//! Outbound HTTP for a plugin whose manifest grants it (`http = ["https://hr.example.com"]`
//! under `[grants]`), through the standard `wasi:http/outgoing-handler` of
//! `wasmtime-wasi-http`. Each request:
//!
//! - goes only to an origin the manifest lists (scheme, host and port exactly), and under
//!   the server's rules for its own requests (`outbound.rs`): `https`, or `http` to a
//!   loopback address only where `outbound.allow_loopback_http` is set; anything else is
//!   answered `HTTP-request-denied` inside the plugin;
//! - ends at the call's deadline, on the wall clock: connecting, waiting for the answer and
//!   reading its body are all cut off there (a server that never answers included);
//! - reads at most [`MAX_PLUGIN_HTTP_RESPONSE_BYTES`] of body;
//! - follows no redirect: the one exchange is made, and a `3xx` is the plugin's to read.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use url::Url;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

use super::manifest::PluginKind;
use crate::limits::{MAX_PLUGIN_HTTP_ORIGINS, MAX_PLUGIN_HTTP_RESPONSE_BYTES};

/// The manifest's `[grants] http` origins, checked: each an origin (`scheme://host[:port]`,
/// no path, query, fragment or credentials), `https` or loopback `http` (whether the latter
/// is reached is the server's `outbound.allow_loopback_http`). Answers each origin's
/// serialization, which requests are compared against.
pub(super) fn origins(listed: &[String], kind: PluginKind) -> Result<Vec<String>, String> {
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    if !matches!(kind, PluginKind::ScopePolicy | PluginKind::ConsentUi | PluginKind::GrantType) {
        return Err(format!("grants.http: a {kind} plugin is lent no outbound HTTP"));
    }
    if listed.len() > MAX_PLUGIN_HTTP_ORIGINS {
        return Err(format!("grants.http: at most {MAX_PLUGIN_HTTP_ORIGINS} origins"));
    }
    listed
        .iter()
        .map(|text| {
            let url = Url::parse(text).map_err(|e| format!("grants.http: `{text}` is not a URL: {e}"))?;
            crate::outbound::allowed(&url).map_err(|_| {
                format!("grants.http: `{text}` is not an https origin (plain http is for loopback addresses only)")
            })?;
            let bare = url.path() == "/";
            if !bare || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                return Err(format!(
                    "grants.http: `{text}` is not an origin: give the scheme, host and port only, without a path"
                ));
            }
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

/// A call's outbound HTTP: the standard context and the hooks that hold the grant.
pub(crate) struct Outgoing {
    pub(super) ctx: WasiHttpCtx,
    pub(super) hooks: Hooks,
}

impl Outgoing {
    pub(super) fn new(origins: Vec<String>, allow_loopback_http: bool, deadline: Instant) -> Self {
        Self { ctx: WasiHttpCtx::new(), hooks: Hooks { origins, allow_loopback_http, deadline } }
    }

    /// Outbound HTTP that reaches nothing.
    pub(super) fn denied() -> Self {
        Self::new(Vec::new(), false, Instant::now())
    }
}

pub(crate) struct Hooks {
    origins: Vec<String>,
    allow_loopback_http: bool,
    deadline: Instant,
}

impl Hooks {
    /// Whether a request to `uri` may be sent.
    fn allows(&self, uri: &http::Uri) -> bool {
        let Ok(url) = Url::parse(&uri.to_string()) else { return false };
        crate::outbound::allowed(&url).is_ok()
            && (url.scheme() == "https" || self.allow_loopback_http)
            && self.origins.contains(&url.origin().ascii_serialization())
    }
}

type Io = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Io,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), HttpError>> + Send> {
        let allowed = self.allows(request.uri());
        let deadline = self.deadline;
        Box::new(async move {
            if !allowed {
                return Err(HttpError::HttpRequestDenied);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let options = RequestOptions {
                connect_timeout: Some(left),
                first_byte_timeout: Some(left),
                between_bytes_timeout: Some(left),
            };
            let (response, io) =
                tokio::time::timeout(left, wasmtime_wasi_http::default_send_request(request, Some(options)))
                    .await
                    .map_err(|_| HttpError::ConnectionReadTimeout)??;
            let length = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if length.is_some_and(|n| n > MAX_PLUGIN_HTTP_RESPONSE_BYTES) {
                return Err(HttpError::HttpResponseBodySize(length));
            }
            let response = response.map(|body| {
                Bounded {
                    body: body.boxed_unsync(),
                    left: MAX_PLUGIN_HTTP_RESPONSE_BYTES,
                    until: Box::pin(tokio::time::sleep(left)),
                }
                .boxed_unsync()
            });
            Ok((response, Box::new(io) as Io))
        })
    }
}

/// A response body read within the call's deadline and the byte cap.
struct Bounded<B> {
    body: B,
    left: u64,
    until: Pin<Box<tokio::time::Sleep>>,
}

impl<B: Body<Data = Bytes, Error = HttpError> + Unpin> Body for Bounded<B> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.until.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
        }
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            if n > self.left {
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(MAX_PLUGIN_HTTP_RESPONSE_BYTES)))));
            }
            self.left -= n;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}
