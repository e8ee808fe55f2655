//! A scope policy for the host's capability tests.
//!
//! Outbound HTTP: a requested scope `hr=<origin>` makes it ask the HR service there for the
//! user's roles (`GET <origin>/roles/<username>`, one role a line) through
//! `wasi:http/outgoing-handler`; `docs:read` needs the role `reader` or `editor`,
//! `docs:write` the role `editor`. Without `hr=` no `docs:` scope is granted. When the HR
//! service cannot be asked (the host refused the request, it failed, timed out, or its
//! answer was not 200 or too long) the grant is denied, naming why. The roles are the
//! claim `hr_roles`.
//!
//! The key-value cache: scope `kv-set` stores the note `noted for <username>` under `note`
//! for a minute, `kv-get` reads it back as the claim `note` (`null` when there is none),
//! `kv-delete` removes it.
//!
//! It grants the requested scopes the client may have, within the above.

use portcullis_sdk::scope::{Claim, ClaimTargets, Denial, Grant, Guest, ScopeRequest};
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};

struct Hr;

impl Guest for Hr {
    fn resolve(request: ScopeRequest) -> Result<Grant, Denial> {
        let everywhere = ClaimTargets::ACCESS_TOKEN | ClaimTargets::ID_TOKEN | ClaimTargets::USERINFO;
        let claim = |name: &str, value: String| Claim { name: name.into(), value, targets: everywhere };
        let asked = |s: &str| request.requested_scopes.iter().any(|r| r == s);
        let user = request.user.as_ref().map(|u| u.username.clone()).unwrap_or_default();
        let mut claims = Vec::new();
        let kv = |e: portcullis_sdk::kv::Error| Denial::AccessDenied(format!("key-value cache: {e}"));
        if asked("kv-set") {
            portcullis_sdk::kv::set("note", format!("noted for {user}").as_bytes(), 60).map_err(kv)?;
        }
        if asked("kv-get") {
            let note = portcullis_sdk::kv::get("note").map_err(kv)?;
            let value = match note {
                Some(bytes) => format!("\"{}\"", String::from_utf8_lossy(&bytes)),
                None => "null".into(),
            };
            claims.push(claim("note", value));
        }
        if asked("kv-delete") {
            portcullis_sdk::kv::delete("note").map_err(kv)?;
        }
        let roles = match request.requested_scopes.iter().find_map(|s| s.strip_prefix("hr=")) {
            Some(origin) => roles(origin, &user).map_err(|e| Denial::AccessDenied(format!("HR service: {e}")))?,
            None => Vec::new(),
        };
        let has = |role: &str| roles.iter().any(|r| r == role);
        let scopes = request
            .requested_scopes
            .iter()
            .filter(|s| request.client.allowed_scopes.contains(s))
            .filter(|s| match s.as_str() {
                "docs:read" => has("reader") || has("editor"),
                "docs:write" => has("editor"),
                _ => true,
            })
            .cloned()
            .collect();
        let listed: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        claims.push(claim("hr_roles", format!("[{}]", listed.join(","))));
        Ok(Grant { scopes, claims })
    }
}

/// The roles the HR service at `origin` (`http://host:port` or `https://host[:port]`) names
/// for `user`.
fn roles(origin: &str, user: &str) -> Result<Vec<String>, String> {
    let (scheme, authority) = match origin.split_once("://") {
        Some(("http", a)) => (Scheme::Http, a),
        Some(("https", a)) => (Scheme::Https, a),
        _ => return Err(format!("`{origin}` is not an http(s) origin")),
    };
    let req = OutgoingRequest::new(Fields::new());
    let path = format!("/roles/{user}");
    let set = req.set_method(&Method::Get).is_ok()
        && req.set_scheme(Some(&scheme)).is_ok()
        && req.set_authority(Some(authority)).is_ok()
        && req.set_path_with_query(Some(&path)).is_ok();
    if !set {
        return Err("the request could not be built".into());
    }
    let pending = wasip2::http::outgoing_handler::handle(req, None).map_err(describe)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(describe(e)),
        _ => return Err("no response".into()),
    };
    if response.status() != 200 {
        return Err(format!("answered {}", response.status()));
    }
    let body = response.consume().map_err(|_| "no body".to_string())?;
    let stream = body.stream().map_err(|_| "no body stream".to_string())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(wasip2::io::streams::StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading the body: {}", e.to_debug_string()));
            }
        }
    }
    Ok(String::from_utf8_lossy(&bytes).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

fn describe(e: ErrorCode) -> String {
    format!("{e:?}")
}

portcullis_sdk::export_scope_policy!(Hr);
