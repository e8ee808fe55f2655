//! Rendering pages with a consent UI plugin, of any contract version, from the server's own
//! page types. The versions' page records differ only in what 0.3.0 added: the application
//! in a page's context and the connections page.

use super::bindings::v3::consent_world::exports::portcullis::plugin::consent as v3_consent;
use super::bindings::{v1, v2};
use super::{Contract, Linked, PluginError, PluginKind, PolicyHost};

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
    },
}

/// The consent UI that renders a page an older contract has no function for.
const BUILTIN_CONSENT: &str = "consent-default";

/// Converts a [`Page`] into one version's records and calls the matching render function.
/// The pages every version has are converted here; `context` turns a [`PageContext`] into
/// the version's (0.3.0 added the application), and `connections` answers the connections
/// page (0.3.0 renders it; older versions have no function for it).
macro_rules! render {
    ($host:expr, $plugin:expr, $pre:expr, $wit:path, $page:expr,
     context: $cx:expr,
     connections: |$ui:ident, $store:ident, $cxf:ident| $connections:expr) => {{
        #[allow(unused_imports)]
        use $wit as w;
        let $cxf = $cx;
        $host.call($plugin, |$store| {
            let $ui = $pre.instantiate(&mut *$store)?;
            let $ui = $ui.portcullis_plugin_consent();
            match $page {
                Page::Login { context, login_hint, error } => $ui.call_render_login(
                    &mut *$store,
                    &w::LoginPage { context: $cxf(context), login_hint: login_hint.clone(), error: error.clone() },
                ),
                Page::Consent { context, user_name, scopes } => $ui.call_render_consent(
                    &mut *$store,
                    &w::ConsentPage { context: $cxf(context), user_name: user_name.clone(), scopes: scopes.clone() },
                ),
                Page::Error { locale, error, description } => $ui.call_render_error(
                    &mut *$store,
                    &w::ErrorPage { locale: locale.clone(), error: error.clone(), description: description.clone() },
                ),
                Page::Device { context, user_code, outcome } => $ui.call_render_device(
                    &mut *$store,
                    &w::DevicePage { context: $cxf(context), user_code: user_code.clone(), outcome: outcome.clone() },
                ),
                Page::Connections { .. } => $connections,
            }
        })
    }};
}

/// A page context in the records of a version before 0.3.0 (no application).
macro_rules! context_before_0_3 {
    () => {
        |c: &PageContext| w::PageContext {
            locale: c.locale.clone(),
            issuer: c.issuer.clone(),
            client_name: c.client_name.clone(),
            action: c.action.clone(),
            hidden: c.hidden.clone(),
        }
    };
}

/// The application in 0.3.0's records.
fn application(a: &Option<ApplicationView>) -> Option<v3_consent::Application> {
    a.as_ref().map(|a| v3_consent::Application {
        name: a.name.clone(),
        description: a.description.clone(),
        icon: a.icon.clone(),
    })
}

fn context_v3(c: &PageContext) -> v3_consent::PageContext {
    v3_consent::PageContext {
        locale: c.locale.clone(),
        issuer: c.issuer.clone(),
        client_name: c.client_name.clone(),
        action: c.action.clone(),
        hidden: c.hidden.clone(),
        application: application(&c.application),
    }
}

fn connections_page_v3(page: &Page) -> Option<v3_consent::ConnectionsPage> {
    let Page::Connections { context, user_name, connections, revoked } = page else { return None };
    Some(v3_consent::ConnectionsPage {
        context: context_v3(context),
        user_name: user_name.clone(),
        connections: connections
            .iter()
            .map(|c| v3_consent::Connection {
                client_id: c.client_id.clone(),
                client_name: c.client_name.clone(),
                application: application(&c.application),
                scopes: c.scopes.clone(),
                since: c.since,
            })
            .collect(),
        revoked: revoked.clone(),
    })
}

const NO_CONNECTIONS_PAGE: &str = "this consent UI was built for a contract without the connections page";

impl PolicyHost {
    /// Renders `page` with the consent UI `name`: the page's HTML, or the plugin's refusal.
    /// A consent UI built for a contract older than 0.3.0 has no connections page: the
    /// `consent-default` renders it, when it is loaded.
    pub fn render(&self, name: &str, page: &Page) -> Result<Result<String, String>, PluginError> {
        let plugin = self.get(PluginKind::ConsentUi, name)?;
        if matches!(page, Page::Connections { .. })
            && plugin.manifest.contract != Contract::V3
            && name != BUILTIN_CONSENT
        {
            return self.render(BUILTIN_CONSENT, page);
        }
        match &plugin.linked {
            Linked::Consent(pre) => {
                let connections = connections_page_v3(page);
                render!(self, &plugin, pre, v3_consent, page, context: context_v3,
                connections: |ui, store, _cx| match &connections {
                    Some(c) => ui.call_render_connections(&mut *store, c),
                    None => Ok(Err(NO_CONNECTIONS_PAGE.to_owned())),
                })
            }
            Linked::ConsentV2(pre) => {
                render!(self, &plugin, pre, v2::consent_world::exports::portcullis::plugin::consent, page,
                    context: context_before_0_3!(),
                    connections: |_ui, _store, _cx| Ok(Err(NO_CONNECTIONS_PAGE.to_owned())))
            }
            Linked::ConsentV1(pre) => {
                render!(self, &plugin, pre, v1::consent_world::exports::portcullis::plugin::consent, page,
                    context: context_before_0_3!(),
                    connections: |_ui, _store, _cx| Ok(Err(NO_CONNECTIONS_PAGE.to_owned())))
            }
            _ => Err(PluginError::NotLoaded { kind: PluginKind::ConsentUi, name: name.to_owned() }),
        }
    }

    /// The locales the consent UI `name` renders, most preferred first (asked once, at load).
    pub fn consent_locales(&self, name: &str) -> Vec<String> {
        self.get(PluginKind::ConsentUi, name).map(|p| p.locales.clone()).unwrap_or_default()
    }
}
