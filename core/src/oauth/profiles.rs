//! Compatibility profiles: the path layouts of the systems Portcullis stands in for, so one
//! server answers at its native paths and at theirs.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// ELMA365 external applications: `/api/o/oauth/v2/*`.
    Elma365,
    /// DATEV (IdentityServer layout): `/connect/*`.
    Datev,
    /// Deployteq (Hydra layout): `/oauth2/*`.
    Deployteq,
}

/// Where each endpoint lives in one layout.
pub struct Paths {
    pub authorize: &'static str,
    pub token: &'static str,
    pub userinfo: &'static str,
    pub introspect: &'static str,
    pub revoke: &'static str,
}

pub const NATIVE: Paths = Paths {
    authorize: "/authorize",
    token: "/token",
    userinfo: "/userinfo",
    introspect: "/introspect",
    revoke: "/revoke",
};

impl Profile {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "elma365" => Some(Self::Elma365),
            "datev" => Some(Self::Datev),
            "deployteq" => Some(Self::Deployteq),
            _ => None,
        }
    }

    pub fn paths(self) -> Paths {
        match self {
            Self::Elma365 => Paths {
                authorize: "/api/o/oauth/v2/authorize",
                token: "/api/o/oauth/v2/token",
                userinfo: "/api/o/oauth/v2/userinfo",
                introspect: "/api/o/oauth/v2/introspect",
                revoke: "/api/o/oauth/v2/revoke",
            },
            Self::Datev => Paths {
                authorize: "/connect/authorize",
                token: "/connect/token",
                userinfo: "/connect/userinfo",
                introspect: "/connect/introspect",
                revoke: "/connect/revocation",
            },
            Self::Deployteq => Paths {
                authorize: "/oauth2/auth",
                token: "/oauth2/token",
                userinfo: "/userinfo",
                introspect: "/oauth2/introspect",
                revoke: "/oauth2/revoke",
            },
        }
    }
}
