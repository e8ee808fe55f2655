//! The OAuth 2.0 / OpenID Connect protocol: one module per endpoint or grant, each named
//! after its RFC concept and citing the section it implements.

pub mod access_token;
pub mod authorization_code;
pub mod authorize;
pub mod client_auth;
pub mod client_credentials;
pub mod discovery;
pub mod interaction;
pub mod introspection;
pub mod pages;
pub mod params;
pub mod pkce;
pub mod profiles;
pub mod refresh_token;
pub mod revocation;
pub mod scope_policy;
pub mod session;
pub mod sign_in_limit;
pub mod token;
pub mod tokens;
pub mod userinfo;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use self::profiles::{NATIVE, Paths, Profile};
use crate::server::App;

fn endpoints(router: Router<App>, p: &Paths) -> Router<App> {
    router
        .route(p.authorize, get(authorize::get).post(authorize::post))
        .route(p.token, post(token::token))
        .route(p.userinfo, get(userinfo::get).post(userinfo::post))
        .route(p.introspect, post(introspection::introspect))
        .route(p.revoke, post(revocation::revoke))
}

pub fn router(app: App) -> Router {
    let mut router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/.well-known/oauth-authorization-server", get(discovery::openid_configuration))
        .route("/jwks.json", get(discovery::jwks))
        .route(interaction::LOGIN_PATH, post(authorize::login))
        .route(interaction::CONSENT_PATH, post(authorize::consent))
        .route("/health", get(|| async { "ok" }));
    router = endpoints(router, &NATIVE);
    for name in &app.config.server.profiles {
        if let Some(profile) = Profile::parse(name) {
            let paths = profile.paths();
            // Profiles may share a path with the native layout (Deployteq's /userinfo).
            if paths.userinfo == NATIVE.userinfo {
                router = router
                    .route(paths.authorize, get(authorize::get).post(authorize::post))
                    .route(paths.token, post(token::token))
                    .route(paths.introspect, post(introspection::introspect))
                    .route(paths.revoke, post(revocation::revoke));
            } else {
                router = endpoints(router, &paths);
            }
        }
    }
    // Every OAuth endpoint reads small bodies; the admin API has its own, larger bound.
    router.layer(DefaultBodyLimit::max(crate::limits::OAUTH_BODY_BYTES)).with_state(app)
}
