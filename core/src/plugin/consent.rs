//! Rendering pages with a consent UI plugin, of any contract version, from the server's own
//! page types (each version's records: `contract/`). The versions' page records differ only
//! in what 0.3.0 added (the application in a page's context and the connections page) and
//! what 0.4.0 added (the password page, and the connections page's link to it).

use std::sync::Arc;

use super::{Linked, Plugin, PluginError, PluginKind, PolicyHost};

/// The application a client belongs to, as the consent UI shows it.
#[derive(Debug, Clone, Default)]
pub struct ApplicationView {
    pub name: String,
    pub description: String,
    /// An `https:` URL or a `data:image/...` URI.
    pub icon: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PageContext {
    /// A locale the plugin said it renders.
    pub locale: String,
    pub issuer: String,
    pub client_name: String,
    /// Where the page's form posts.
    pub action: String,
    pub hidden: Vec<(String, String)>,
    /// The application the client belongs to (contract 0.3.0 and later).
    pub application: Option<ApplicationView>,
}

/// One application the signed-in person let act for them.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub client_id: String,
    pub client_name: String,
    pub application: Option<ApplicationView>,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub since: i64,
}

/// A page a person sees.
#[derive(Debug, Clone)]
pub enum Page {
    Login {
        context: PageContext,
        login_hint: Option<String>,
        error: Option<String>,
    },
    Consent {
        context: PageContext,
        user_name: String,
        scopes: Vec<String>,
    },
    Error {
        locale: String,
        error: String,
        description: String,
    },
    Device {
        context: PageContext,
        user_code: Option<String>,
        outcome: Option<String>,
    },
    /// Contract 0.3.0 and later.
    Connections {
        context: PageContext,
        user_name: String,
        connections: Vec<ConnectionView>,
        revoked: Option<String>,
        /// Where the password page is, an absolute URL (contract 0.4.0 and later show it).
        password_page: Option<String>,
    },
    /// Contract 0.4.0 and later: the signed-in person changing their password.
    Password {
        context: PageContext,
        user_name: String,
        error: Option<PasswordProblem>,
        changed: bool,
    },
}

/// Why a password change was refused. The consent UI words it, in the page's locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    /// The current password was not the person's.
    WrongCurrentPassword,
    /// The new password and its repetition differ.
    Mismatch,
    /// Fewer characters than this minimum.
    TooShort(u32),
    /// More bytes than this maximum.
    TooLong(u32),
    /// Too many attempts for now.
    Throttled,
    /// The password hasher is busy.
    Busy,
}

/// The consent UI that renders a page an older contract has no function for.
const BUILTIN_CONSENT: &str = "consent-default";

impl PolicyHost {
    /// Renders `page` with the consent UI `name`: the page's HTML, or the plugin's refusal.
    /// A consent UI built for a contract without the page (the connections page before
    /// 0.3.0, the password page before 0.4.0) has it rendered by `consent-default`, when it
    /// is loaded.
    ///
    /// A page the consent UI faults on is rendered by its manifest's `on-fault.fallback`,
    /// when that is loaded; if there is none, or the fallback faults too, the fault is the
    /// answer.
    pub fn render(&self, name: &str, page: &Page) -> Result<Result<String, String>, PluginError> {
        let plugin = self.get(PluginKind::ConsentUi, name)?;
        match self.render_with(&plugin, page) {
            Err(fault) => match self.fallback_for(&plugin, &fault) {
                Some(fallback) => self.render_with(&fallback, page).map_err(|_| fault),
                None => Err(fault),
            },
            rendered => rendered,
        }
    }

    fn render_with(&self, plugin: &Arc<Plugin>, page: &Page) -> Result<Result<String, String>, PluginError> {
        let name = plugin.manifest.name.as_str();
        let Linked::Consent(ui) = &plugin.linked else {
            return Err(PluginError::NotLoaded { kind: PluginKind::ConsentUi, name: name.to_owned() });
        };
        if !ui.renders(page) && name != BUILTIN_CONSENT {
            return self.render_with(&self.get(PluginKind::ConsentUi, BUILTIN_CONSENT)?, page);
        }
        self.call(plugin, |store| ui.render(store, page))
    }

    /// The locales the consent UI `name` renders, most preferred first (asked once, at load).
    pub fn consent_locales(&self, name: &str) -> Vec<String> {
        self.get(PluginKind::ConsentUi, name).map(|p| p.locales.clone()).unwrap_or_default()
    }
}
