//! The endpoints, and the path layouts they answer at: the native one and the compatibility
//! profiles of the systems Portcullis stands in for, so one server answers at its native
//! paths and at theirs. Every list of endpoints (the router, discovery) is read from here.

use crate::config::CompatibilityProfile;

/// An endpoint with a path of its own in each layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// RFC 6749 §3.1.
    Authorization,
    /// RFC 6749 §3.2.
    Token,
    /// OIDC Core §5.3.
    Userinfo,
    /// RFC 7662.
    Introspection,
    /// RFC 7009.
    Revocation,
    /// RFC 9126.
    PushedAuthorization,
    /// OIDC RP-Initiated Logout 1.0 §2.
    EndSession,
    /// RFC 8628 §3.1.
    DeviceAuthorization,
    /// RFC 7591 §3 (and RFC 7592's client configuration endpoint beneath it). Served and
    /// advertised only where `registration.enabled`, so not in [`Endpoint::ALL`].
    Registration,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Self::Authorization,
        Self::Token,
        Self::Userinfo,
        Self::Introspection,
        Self::Revocation,
        Self::PushedAuthorization,
        Self::EndSession,
        Self::DeviceAuthorization,
    ];

    /// Its name in authorization server metadata (RFC 8414 §2, OIDC Discovery §3).
    pub fn metadata_name(self) -> &'static str {
        match self {
            Self::Authorization => "authorization_endpoint",
            Self::Token => "token_endpoint",
            Self::Userinfo => "userinfo_endpoint",
            Self::Introspection => "introspection_endpoint",
            Self::Revocation => "revocation_endpoint",
            Self::PushedAuthorization => "pushed_authorization_request_endpoint",
            Self::EndSession => "end_session_endpoint",
            Self::DeviceAuthorization => "device_authorization_endpoint",
            Self::Registration => "registration_endpoint",
        }
    }
}

/// A path layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Portcullis's own paths, always served and advertised.
    Native,
    /// ELMA365 external applications: `/api/o/oauth/v2/*`.
    Elma365,
    /// DATEV (IdentityServer layout): `/connect/*`.
    Datev,
    /// Deployteq (Hydra layout): `/oauth2/*`.
    Deployteq,
}

impl From<CompatibilityProfile> for Profile {
    fn from(p: CompatibilityProfile) -> Self {
        match p {
            CompatibilityProfile::Elma365 => Self::Elma365,
            CompatibilityProfile::Datev => Self::Datev,
            CompatibilityProfile::Deployteq => Self::Deployteq,
        }
    }
}

impl Profile {
    /// Where `endpoint` lives in this layout.
    pub fn path(self, endpoint: Endpoint) -> &'static str {
        use Endpoint::*;
        match (self, endpoint) {
            (Self::Native, Authorization) => "/authorize",
            (Self::Native, Token) => "/token",
            (Self::Native, Userinfo) => "/userinfo",
            (Self::Native, Introspection) => "/introspect",
            (Self::Native, Revocation) => "/revoke",
            (Self::Native, PushedAuthorization) => "/par",
            (Self::Native, EndSession) => "/logout",
            (Self::Native, DeviceAuthorization) => "/device_authorization",
            (Self::Native, Registration) => "/register",
            (Self::Elma365, Authorization) => "/api/o/oauth/v2/authorize",
            (Self::Elma365, Token) => "/api/o/oauth/v2/token",
            (Self::Elma365, Userinfo) => "/api/o/oauth/v2/userinfo",
            (Self::Elma365, Introspection) => "/api/o/oauth/v2/introspect",
            (Self::Elma365, Revocation) => "/api/o/oauth/v2/revoke",
            (Self::Elma365, PushedAuthorization) => "/api/o/oauth/v2/par",
            (Self::Elma365, EndSession) => "/api/o/oauth/v2/logout",
            (Self::Elma365, DeviceAuthorization) => "/api/o/oauth/v2/device_authorization",
            (Self::Elma365, Registration) => "/api/o/oauth/v2/register",
            (Self::Datev, Authorization) => "/connect/authorize",
            (Self::Datev, Token) => "/connect/token",
            (Self::Datev, Userinfo) => "/connect/userinfo",
            (Self::Datev, Introspection) => "/connect/introspect",
            (Self::Datev, Revocation) => "/connect/revocation",
            (Self::Datev, PushedAuthorization) => "/connect/par",
            (Self::Datev, EndSession) => "/connect/endsession",
            (Self::Datev, DeviceAuthorization) => "/connect/deviceauthorization",
            // IdentityServer's dynamic registration endpoint.
            (Self::Datev, Registration) => "/connect/dcr",
            (Self::Deployteq, Authorization) => "/oauth2/auth",
            (Self::Deployteq, Token) => "/oauth2/token",
            // Hydra serves userinfo at the root, as Portcullis does.
            (Self::Deployteq, Userinfo) => "/userinfo",
            (Self::Deployteq, Introspection) => "/oauth2/introspect",
            (Self::Deployteq, Revocation) => "/oauth2/revoke",
            (Self::Deployteq, PushedAuthorization) => "/oauth2/par",
            (Self::Deployteq, EndSession) => "/oauth2/sessions/logout",
            (Self::Deployteq, DeviceAuthorization) => "/oauth2/device/auth",
            (Self::Deployteq, Registration) => "/oauth2/register",
        }
    }
}
