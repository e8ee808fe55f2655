//! The OAuth 2.0 / OpenID Connect protocol: one module per endpoint or grant, each named
//! after its RFC concept and citing the section it implements.

pub mod access_token;
pub mod authorization_code;
pub mod authorize;
pub mod back_channel_logout;
pub mod client_auth;
pub mod client_credentials;
pub mod client_jwks;
pub(crate) mod cors;
pub mod device_authorization;
pub mod device_code;
pub mod discovery;
pub mod dpop;
pub mod extension_grant;
pub mod grant;
pub mod interaction;
pub mod introspection;
pub mod jarm;
pub mod logout;
pub mod pages;
pub mod params;
pub mod password;
pub mod pkce;
pub mod profiles;
pub mod pushed_authorization;
pub mod refresh_token;
pub mod registration;
pub mod request_object;
pub mod revocation;
pub mod scope_policy;
pub mod second_factor;
pub mod session;
pub mod sign_in_limit;
pub mod sign_in_shared;
pub mod token;
pub mod token_exchange;
pub mod tokens;
pub mod userinfo;

use axum::Router;
use axum::routing::{get, post};

use std::collections::HashSet;

use std::sync::Arc;

use axum::routing::MethodRouter;

use self::profiles::{Endpoint, Profile};
use crate::config::Config;
use crate::keys::Keys;
use crate::model::Clock;
use crate::plugin::PolicyHost;
use crate::storage::Storage;

/// What the protocol's endpoints use, and nothing else of the server: the configuration,
/// the records, the signing keys, the policies, the sign-in throttle, the password hasher,
/// discovery's cache and the clock.
pub struct Protocol {
    pub config: Arc<Config>,
    pub storage: Storage,
    pub keys: Arc<Keys>,
    pub host: Arc<PolicyHost>,
    pub sign_in_limit: sign_in_limit::SignInLimit,
    /// The one bounded password hasher, which the admin API's user creation shares.
    pub passwords: Arc<crate::passwords::Passwords>,
    pub discovery: discovery::Cache,
    /// The server's requests to its clients (request objects by reference, logout tokens).
    pub outbound: crate::outbound::Outbound,
    /// Clients' JWK Sets fetched from their `jwks_uri`.
    pub client_jwks: client_jwks::Cache,
    /// The time requests go by (tests move it).
    pub clock: Arc<dyn Clock>,
}

/// The client address of a request, for throttling: the TCP peer (`connections::serve`
/// gives each its `ConnectInfo`), or behind a trusted proxy the client it names
/// ([`crate::client_address`]). A router served without either puts every caller in one
/// shared budget rather than in none.
pub fn peer(extensions: &axum::http::Extensions) -> std::net::IpAddr {
    crate::client_address::ClientAddress::of(extensions)
}

/// The protocol's state, shared by every request.
pub type App = Arc<Protocol>;

/// The handlers of an endpoint.
fn handlers(endpoint: Endpoint) -> MethodRouter<App> {
    match endpoint {
        Endpoint::Authorization => get(authorize::get).post(authorize::post),
        Endpoint::Token => cors::for_clients(post(token::token), "POST"),
        Endpoint::Userinfo => cors::for_clients(get(userinfo::get).post(userinfo::post), "GET, POST"),
        // Resource servers introspect, never browsers.
        Endpoint::Introspection => post(introspection::introspect),
        Endpoint::Revocation => cors::for_clients(post(revocation::revoke), "POST"),
        Endpoint::PushedAuthorization => cors::for_clients(post(pushed_authorization::push), "POST"),
        Endpoint::EndSession => get(logout::get).post(logout::post),
        Endpoint::DeviceAuthorization => cors::for_clients(post(device_authorization::authorize), "POST"),
        Endpoint::Registration => post(registration::register),
    }
}

pub fn router(app: App) -> Router {
    let mut router = Router::new()
        .route("/.well-known/openid-configuration", cors::public(get(discovery::openid_configuration)))
        .route("/.well-known/oauth-authorization-server", cors::public(get(discovery::openid_configuration)))
        .route("/jwks.json", cors::public(get(discovery::jwks)))
        .route(interaction::LOGIN_PATH, post(authorize::login))
        .route(interaction::CONSENT_PATH, post(authorize::consent))
        .route(second_factor::FACTOR_PATH, post(second_factor::submit))
        .route(pages::PASSKEY_SCRIPT_PATH, get(pages::passkey_script));
    let profiles = std::iter::once(Profile::Native).chain(app.config.server.profiles.iter().map(|p| Profile::from(*p)));
    // Layouts may share a path (Deployteq's /userinfo is the native one): each is routed once.
    let mut routed = HashSet::new();
    for profile in profiles {
        for endpoint in Endpoint::ALL {
            let path = profile.path(endpoint);
            if routed.insert(path) {
                router = router.route(path, handlers(endpoint));
            }
        }
    }
    // ELMA365's manual writes the authorization request's parameters as a path segment
    // (`/api/o/oauth/v2/authorize/client_id=…&redirect_uri=…`): read them as the query.
    if app.config.server.profiles.iter().any(|p| Profile::from(*p) == Profile::Elma365) {
        let path = format!("{}/{{*parameters}}", Profile::Elma365.path(Endpoint::Authorization));
        router = router.route(&path, get(authorize::get_in_path));
    }
    // RFC 7591 §3, RFC 7592 §2: only where the operator turned registration on, in every
    // layout served.
    if app.config.registration.enabled {
        let profiles =
            std::iter::once(Profile::Native).chain(app.config.server.profiles.iter().map(|p| Profile::from(*p)));
        for profile in profiles {
            let path = profile.path(Endpoint::Registration);
            router = router.route(path, handlers(Endpoint::Registration)).route(
                &format!("{path}/{{client_id}}"),
                get(registration::read).put(registration::update).delete(registration::delete),
            );
        }
    }
    router.with_state(app)
}
