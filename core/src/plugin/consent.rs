//! Rendering pages with a consent UI plugin, of any contract version, from the server's own
//! page types. The versions' page records differ only in what 0.3.0 added (the application
//! in a page's context and the connections page) and what 0.4.0 added (the password page,
//! and the connections page's link to it).

use super::bindings::{v1, v2, v3, v4};
use std::sync::Arc;

use super::{Contract, Linked, Plugin, PluginError, PluginKind, PolicyHost};

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

/// Converts a [`Page`] into one version's records and calls the matching render function.
/// The pages every version has are converted here; `context` turns a [`PageContext`] into
/// the version's (0.3.0 added the application), and `connections` and `password` answer the
/// pages later versions added (an older version has no function for them).
macro_rules! render {
    ($host:expr, $plugin:expr, $pre:expr, $wit:path, $page:expr,
     context: $cx:expr,
     |$ui:ident, $store:ident| connections: $connections:expr, password: $password:expr) => {{
        #[allow(unused_imports)]
        use $wit as w;
        let cx = $cx;
        $host.call($plugin, |$store| {
            let $ui = $pre.instantiate(&mut *$store)?;
            let $ui = $ui.portcullis_plugin_consent();
            match $page {
                Page::Login { context, login_hint, error } => $ui.call_render_login(
                    &mut *$store,
                    &w::LoginPage { context: cx(context), login_hint: login_hint.clone(), error: error.clone() },
                ),
                Page::Consent { context, user_name, scopes } => $ui.call_render_consent(
                    &mut *$store,
                    &w::ConsentPage { context: cx(context), user_name: user_name.clone(), scopes: scopes.clone() },
                ),
                Page::Error { locale, error, description } => $ui.call_render_error(
                    &mut *$store,
                    &w::ErrorPage { locale: locale.clone(), error: error.clone(), description: description.clone() },
                ),
                Page::Device { context, user_code, outcome } => $ui.call_render_device(
                    &mut *$store,
                    &w::DevicePage { context: cx(context), user_code: user_code.clone(), outcome: outcome.clone() },
                ),
                Page::Connections { .. } => $connections,
                Page::Password { .. } => $password,
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

/// The records of a version since 0.3.0: the application, the context that names it, and the
/// connections page (with its link to the password page where the version has the field).
macro_rules! records_since_0_3 {
    ($module:ident, $wit:path $(, $password_field:ident)?) => {
        mod $module {
            use super::{ApplicationView, Page, PageContext};
            use $wit as w;

            pub fn application(a: &Option<ApplicationView>) -> Option<w::Application> {
                a.as_ref().map(|a| w::Application {
                    name: a.name.clone(),
                    description: a.description.clone(),
                    icon: a.icon.clone(),
                })
            }

            pub fn context(c: &PageContext) -> w::PageContext {
                w::PageContext {
                    locale: c.locale.clone(),
                    issuer: c.issuer.clone(),
                    client_name: c.client_name.clone(),
                    action: c.action.clone(),
                    hidden: c.hidden.clone(),
                    application: application(&c.application),
                }
            }

            #[allow(unused_variables)]
            pub fn connections(page: &Page) -> Option<w::ConnectionsPage> {
                let Page::Connections { context: cx, user_name, connections, revoked, password_page } = page else {
                    return None;
                };
                Some(w::ConnectionsPage {
                    context: context(cx),
                    user_name: user_name.clone(),
                    connections: connections
                        .iter()
                        .map(|c| w::Connection {
                            client_id: c.client_id.clone(),
                            client_name: c.client_name.clone(),
                            application: application(&c.application),
                            scopes: c.scopes.clone(),
                            since: c.since,
                        })
                        .collect(),
                    revoked: revoked.clone(),
                    $($password_field: password_page.clone(),)?
                })
            }
        }
    };
}

records_since_0_3!(
    v4_records,
    crate::plugin::bindings::v4::consent_world::exports::portcullis::plugin::consent,
    password_page
);
records_since_0_3!(v3_records, crate::plugin::bindings::v3::consent_world::exports::portcullis::plugin::consent);

/// The password page in 0.4.0's records.
fn password_page_v4(page: &Page) -> Option<v4::consent_world::exports::portcullis::plugin::consent::PasswordPage> {
    use v4::consent_world::exports::portcullis::plugin::consent as w;
    let Page::Password { context, user_name, error, changed } = page else { return None };
    Some(w::PasswordPage {
        context: v4_records::context(context),
        user_name: user_name.clone(),
        error: error.map(|e| match e {
            PasswordProblem::WrongCurrentPassword => w::PasswordError::WrongCurrentPassword,
            PasswordProblem::Mismatch => w::PasswordError::Mismatch,
            PasswordProblem::TooShort(n) => w::PasswordError::TooShort(n),
            PasswordProblem::TooLong(n) => w::PasswordError::TooLong(n),
            PasswordProblem::Throttled => w::PasswordError::Throttled,
            PasswordProblem::Busy => w::PasswordError::Busy,
        }),
        changed: *changed,
    })
}

const NO_CONNECTIONS_PAGE: &str = "this consent UI was built for a contract without the connections page";
const NO_PASSWORD_PAGE: &str = "this consent UI was built for a contract without the password page";

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
        let lacks_page = match page {
            Page::Connections { .. } => matches!(plugin.manifest.contract, Contract::V1 | Contract::V2),
            Page::Password { .. } => plugin.manifest.contract != Contract::V4,
            _ => false,
        };
        if lacks_page && name != BUILTIN_CONSENT {
            return self.render_with(&self.get(PluginKind::ConsentUi, BUILTIN_CONSENT)?, page);
        }
        match &plugin.linked {
            Linked::Consent(pre) => {
                let connections = v4_records::connections(page);
                let password = password_page_v4(page);
                render!(self, plugin, pre, v4::consent_world::exports::portcullis::plugin::consent, page,
                context: v4_records::context,
                |ui, store| connections: match &connections {
                    Some(c) => ui.call_render_connections(&mut *store, c),
                    None => Ok(Err(NO_CONNECTIONS_PAGE.to_owned())),
                },
                password: match &password {
                    Some(p) => ui.call_render_password(&mut *store, p),
                    None => Ok(Err(NO_PASSWORD_PAGE.to_owned())),
                })
            }
            Linked::ConsentV3(pre) => {
                let connections = v3_records::connections(page);
                render!(self, plugin, pre, v3::consent_world::exports::portcullis::plugin::consent, page,
                    context: v3_records::context,
                    |ui, store| connections: match &connections {
                        Some(c) => ui.call_render_connections(&mut *store, c),
                        None => Ok(Err(NO_CONNECTIONS_PAGE.to_owned())),
                    },
                    password: Ok(Err(NO_PASSWORD_PAGE.to_owned())))
            }
            Linked::ConsentV2(pre) => {
                render!(self, plugin, pre, v2::consent_world::exports::portcullis::plugin::consent, page,
                    context: context_before_0_3!(),
                    |_ui, _store| connections: Ok(Err(NO_CONNECTIONS_PAGE.to_owned())),
                    password: Ok(Err(NO_PASSWORD_PAGE.to_owned())))
            }
            Linked::ConsentV1(pre) => {
                render!(self, plugin, pre, v1::consent_world::exports::portcullis::plugin::consent, page,
                    context: context_before_0_3!(),
                    |_ui, _store| connections: Ok(Err(NO_CONNECTIONS_PAGE.to_owned())),
                    password: Ok(Err(NO_PASSWORD_PAGE.to_owned())))
            }
            _ => Err(PluginError::NotLoaded { kind: PluginKind::ConsentUi, name: name.to_owned() }),
        }
    }

    /// The locales the consent UI `name` renders, most preferred first (asked once, at load).
    pub fn consent_locales(&self, name: &str) -> Vec<String> {
        self.get(PluginKind::ConsentUi, name).map(|p| p.locales.clone()).unwrap_or_default()
    }
}
