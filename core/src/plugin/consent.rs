//! Rendering pages with a consent UI plugin, of either contract version, from the server's
//! own page types. The two versions' page records are the same; only their types differ.

use super::bindings::{v1, v2};
use super::{Linked, PluginError, PluginKind, PolicyHost};

#[derive(Debug, Clone, Default)]
pub struct PageContext {
    /// A locale the plugin said it renders.
    pub locale: String,
    pub issuer: String,
    pub client_name: String,
    /// Where the page's form posts.
    pub action: String,
    pub hidden: Vec<(String, String)>,
}

/// A page a person sees.
#[derive(Debug, Clone)]
pub enum Page {
    Login { context: PageContext, login_hint: Option<String>, error: Option<String> },
    Consent { context: PageContext, user_name: String, scopes: Vec<String> },
    Error { locale: String, error: String, description: String },
    Device { context: PageContext, user_code: Option<String>, outcome: Option<String> },
}

/// Converts a [`Page`] into one version's records and calls the matching render function.
macro_rules! render {
    ($host:expr, $plugin:expr, $pre:expr, $wit:path, $page:expr) => {{
        use $wit as w;
        let cx = |c: &PageContext| w::PageContext {
            locale: c.locale.clone(),
            issuer: c.issuer.clone(),
            client_name: c.client_name.clone(),
            action: c.action.clone(),
            hidden: c.hidden.clone(),
        };
        $host.call($plugin, |store| {
            let ui = $pre.instantiate(&mut *store)?;
            let ui = ui.portcullis_plugin_consent();
            match $page {
                Page::Login { context, login_hint, error } => ui.call_render_login(
                    &mut *store,
                    &w::LoginPage { context: cx(context), login_hint: login_hint.clone(), error: error.clone() },
                ),
                Page::Consent { context, user_name, scopes } => ui.call_render_consent(
                    &mut *store,
                    &w::ConsentPage { context: cx(context), user_name: user_name.clone(), scopes: scopes.clone() },
                ),
                Page::Error { locale, error, description } => ui.call_render_error(
                    &mut *store,
                    &w::ErrorPage { locale: locale.clone(), error: error.clone(), description: description.clone() },
                ),
                Page::Device { context, user_code, outcome } => ui.call_render_device(
                    &mut *store,
                    &w::DevicePage { context: cx(context), user_code: user_code.clone(), outcome: outcome.clone() },
                ),
            }
        })
    }};
}

impl PolicyHost {
    /// Renders `page` with the consent UI `name`: the page's HTML, or the plugin's refusal.
    pub fn render(&self, name: &str, page: &Page) -> Result<Result<String, String>, PluginError> {
        let plugin = self.get(PluginKind::ConsentUi, name)?;
        match &plugin.linked {
            Linked::Consent(pre) => {
                render!(self, &plugin, pre, v2::consent_world::exports::portcullis::plugin::consent, page)
            }
            Linked::ConsentV1(pre) => {
                render!(self, &plugin, pre, v1::consent_world::exports::portcullis::plugin::consent, page)
            }
            _ => Err(PluginError::NotLoaded { kind: PluginKind::ConsentUi, name: name.to_owned() }),
        }
    }

    /// The locales the consent UI `name` renders, most preferred first (asked once, at load).
    pub fn consent_locales(&self, name: &str) -> Vec<String> {
        self.get(PluginKind::ConsentUi, name).map(|p| p.locales.clone()).unwrap_or_default()
    }
}
