//! The server's own HTTP requests to its clients: a request object fetched by reference
//! (OIDC Core §6.2), a client's JWK Set from its `jwks_uri` (OIDC Registration §2), and a
//! back-channel logout token delivered (OIDC Back-Channel Logout 1.0 §2.5). Every one goes through [`Outbound`], which holds the rules that keep the server
//! from being used to reach anything else:
//!
//! - only a URL the client registered (the caller checks it against the registration: the
//!   allow-list), over `https`, or over `http` to a loopback address only where
//!   `outbound.allow_loopback_http` says so (development);
//! - no redirects followed, no proxy taken from the environment;
//! - a deadline for the whole exchange ([`OUTBOUND_DEADLINE`]) and a cap on the bytes read.

use std::net::IpAddr;

use url::Url;

use crate::limits::OUTBOUND_DEADLINE;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("`{0}` is neither https nor http to a loopback address")]
    Scheme(String),
    #[error("`{0}` is http to a loopback address, which `outbound.allow_loopback_http` keeps off")]
    LoopbackOff(String),
    #[error("the request failed: {0}")]
    Failed(String),
    #[error("the answer was HTTP {0}")]
    Status(u16),
    #[error("the answer is longer than {0} bytes")]
    TooLong(usize),
}

#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    allow_loopback_http: bool,
    /// Deliveries made after their request was answered, which a stopping server waits for.
    pending: tokio_util::task::TaskTracker,
}

impl Outbound {
    pub fn new(config: &crate::config::OutboundConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(OUTBOUND_DEADLINE)
            .connect_timeout(OUTBOUND_DEADLINE)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, allow_loopback_http: config.allow_loopback_http, pending: Default::default() })
    }

    /// Runs `delivery` apart from the request that asked for it (a back-channel logout), as
    /// one of those a stopping server waits for ([`Outbound::settle`]).
    pub fn spawn(&self, delivery: impl Future<Output = ()> + Send + 'static) {
        self.pending.spawn(delivery);
    }

    /// Completes once every delivery spawned has finished.
    pub async fn settle(&self) {
        self.pending.close();
        self.pending.wait().await;
    }

    /// How many deliveries are still under way.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A URL this server requests: [`allowed`], and loopback `http` only where configured.
    fn check(&self, url: &Url) -> Result<(), OutboundError> {
        allowed(url)?;
        if url.scheme() == "http" && !self.allow_loopback_http {
            return Err(OutboundError::LoopbackOff(url.to_string()));
        }
        Ok(())
    }

    /// GETs `url` and returns its body, at most `max_bytes` of it.
    pub async fn get(&self, url: &Url, accept: &str, max_bytes: usize) -> Result<Vec<u8>, OutboundError> {
        self.check(url)?;
        let mut response =
            self.http.get(url.clone()).header(reqwest::header::ACCEPT, accept).send().await.map_err(failed)?;
        if !response.status().is_success() {
            return Err(OutboundError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(OutboundError::TooLong(max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > max_bytes {
                return Err(OutboundError::TooLong(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// POSTs a form to `url`; the answer's body is not read.
    pub async fn post_form(&self, url: &Url, pairs: &[(&str, &str)]) -> Result<(), OutboundError> {
        self.check(url)?;
        let response = self.http.post(url.clone()).form(pairs).send().await.map_err(failed)?;
        if response.status().is_success() { Ok(()) } else { Err(OutboundError::Status(response.status().as_u16())) }
    }
}

fn failed(e: reqwest::Error) -> OutboundError {
    OutboundError::Failed(if e.is_timeout() {
        format!("no answer within {OUTBOUND_DEADLINE:?}")
    } else {
        e.to_string()
    })
}

/// `https`, or `http` to a loopback address (a client on the same machine, as RFC 8252
/// allows for redirect URIs).
pub fn allowed(url: &Url) -> Result<(), OutboundError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(OutboundError::Scheme(url.to_string())),
    }
}
