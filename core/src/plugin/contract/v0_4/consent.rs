//! The consent interface of 0.4.0: each [`Page`] as its record, and the render functions. A
//! version whose consent interface differs has its [`PageRecords`], made from these; the
//! pages it lacks are none of its records.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::consent_world::exports::portcullis::plugin::consent as wit;
use crate::plugin::call::CallState;
use crate::plugin::consent::{
    ApplicationView, ConnectionView, DeviceOutcome, LoginProblem, Page, PageContext as Context, PasswordProblem,
};
use crate::plugin::contract::{ConsentWorld, Export, Exported, Param};
use crate::plugin::{Contract, Linked, PluginKind};

pub(in crate::plugin) use wit::{Connection, ConnectionsPage, ConsentPage, DevicePage, LoginPage, PageContext};

/// A version's records of the pages that carry the page context (to which 0.3.0 added the
/// application), each made from this version's (`From`).
pub(in crate::plugin) trait ContextPages: Send + Sync + 'static {
    type Login: Param + From<LoginPage>;
    type Consent: Param + From<ConsentPage>;
    type Device: Param + From<DevicePage>;
}

/// A version's consent records, each made from this version's (`From`), and which of the
/// pages added since 0.2.0 it has. The error page has not changed since 0.1.0, the password
/// page since it came.
pub(in crate::plugin) trait PageRecords: Send + Sync + 'static {
    type Context: ContextPages;
    /// A version without the connections page never makes one.
    type Connections: Param + From<ConnectionsPage>;
    const ADDED: AddedPages;
}

/// Which of the pages added since 0.2.0 a version has.
pub(in crate::plugin) struct AddedPages {
    /// The connections page (0.3.0 and later).
    pub(in crate::plugin) connections: bool,
    /// The password page (0.4.0 and later).
    pub(in crate::plugin) password: bool,
}

/// The records of 0.4.0.
pub(in crate::plugin) struct Current;

impl PageRecords for Current {
    type Context = Current;
    type Connections = ConnectionsPage;
    const ADDED: AddedPages = AddedPages { connections: true, password: true };
}

const NO_CONNECTIONS_PAGE: &str = "this consent UI was built for a contract without the connections page";
const NO_PASSWORD_PAGE: &str = "this consent UI was built for a contract without the password page";
const NO_SECOND_FACTOR_PAGES: &str =
    "this consent UI was built for a contract without the second-factor, security and logout pages";

/// What a render function answers: the page's HTML, or the plugin's refusal.
type Rendered = (Result<String, String>,);

/// A consent UI of a version whose records are `R`'s.
struct Ui<R: PageRecords> {
    pre: InstancePre<CallState>,
    locales: Export<(), (Vec<String>,)>,
    login: Export<(<R::Context as ContextPages>::Login,), Rendered>,
    consent: Export<(<R::Context as ContextPages>::Consent,), Rendered>,
    error: Export<(wit::ErrorPage,), Rendered>,
    device: Export<(<R::Context as ContextPages>::Device,), Rendered>,
    connections: Option<Export<(R::Connections,), Rendered>>,
    password: Option<Export<(wit::PasswordPage,), Rendered>>,
}

/// Links a consent UI of `contract`, whose records are `R`'s.
pub(in crate::plugin) fn link<R: PageRecords>(
    pre: InstancePre<CallState>,
    contract: Contract,
) -> wasmtime::Result<Linked> {
    let exported = Exported::of(&pre, PluginKind::ConsentUi, contract)?;
    let ui = Ui::<R> {
        locales: exported.func("locales")?,
        login: exported.func("render-login")?,
        consent: exported.func("render-consent")?,
        error: exported.func("render-error")?,
        device: exported.func("render-device")?,
        connections: exported.func_if(R::ADDED.connections, "render-connections")?,
        password: exported.func_if(R::ADDED.password, "render-password")?,
        pre,
    };
    Ok(Linked::Consent(Box::new(ui)))
}

impl<R: PageRecords> ConsentWorld for Ui<R> {
    fn locales(&self, store: &mut Store<CallState>) -> wasmtime::Result<Vec<String>> {
        let instance = self.pre.instantiate(&mut *store)?;
        self.login.check(store, &instance)?;
        self.consent.check(store, &instance)?;
        self.error.check(store, &instance)?;
        self.device.check(store, &instance)?;
        if let Some(f) = &self.connections {
            f.check(store, &instance)?;
        }
        if let Some(f) = &self.password {
            f.check(store, &instance)?;
        }
        Ok(self.locales.call(store, &instance, ())?.0)
    }

    fn renders(&self, page: &Page) -> bool {
        match page {
            Page::Connections { .. } => self.connections.is_some(),
            Page::Password { .. } => self.password.is_some(),
            Page::SecondFactor { .. } | Page::Security { .. } | Page::Logout { .. } => false,
            Page::Login { .. } | Page::Consent { .. } | Page::Error { .. } | Page::Device { .. } => true,
        }
    }

    fn render(&self, store: &mut Store<CallState>, page: &Page) -> wasmtime::Result<Result<String, String>> {
        let instance = self.pre.instantiate(&mut *store)?;
        let i = &instance;
        let (rendered,) = match page {
            Page::Login { context: cx, login_hint, error, passkey: _ } => {
                let error = error.map(|e| login_error(e).to_owned());
                let page = LoginPage { context: context(cx), login_hint: login_hint.clone(), error };
                self.login.call(store, i, (page.into(),))?
            }
            Page::Consent { context: cx, user_name, scopes } => {
                let page = ConsentPage { context: context(cx), user_name: user_name.clone(), scopes: scopes.clone() };
                self.consent.call(store, i, (page.into(),))?
            }
            Page::Error { locale, error, description } => {
                let page =
                    wit::ErrorPage { locale: locale.clone(), error: error.clone(), description: description.clone() };
                self.error.call(store, i, (page,))?
            }
            Page::Device { context: cx, user_code, outcome } => {
                let outcome = outcome.map(|o| device_outcome(o).to_owned());
                let page = DevicePage { context: context(cx), user_code: user_code.clone(), outcome };
                self.device.call(store, i, (page.into(),))?
            }
            Page::Connections { context: cx, user_name, connections: list, revoked, password_page, .. } => {
                match &self.connections {
                    Some(f) => {
                        let page = ConnectionsPage {
                            context: context(cx),
                            user_name: user_name.clone(),
                            connections: list.iter().map(connection).collect(),
                            revoked: revoked.clone(),
                            password_page: password_page.clone(),
                        };
                        f.call(store, i, (page.into(),))?
                    }
                    None => (Err(NO_CONNECTIONS_PAGE.to_owned()),),
                }
            }
            Page::Password { context: cx, user_name, error, changed } => match &self.password {
                Some(f) => {
                    let page = wit::PasswordPage {
                        context: context(cx),
                        user_name: user_name.clone(),
                        error: error.map(password_error),
                        changed: *changed,
                    };
                    f.call(store, i, (page,))?
                }
                None => (Err(NO_PASSWORD_PAGE.to_owned()),),
            },
            Page::SecondFactor { .. } | Page::Security { .. } | Page::Logout { .. } => {
                (Err(NO_SECOND_FACTOR_PAGES.to_owned()),)
            }
        };
        Ok(rendered)
    }
}

impl ContextPages for Current {
    type Login = LoginPage;
    type Consent = ConsentPage;
    type Device = DevicePage;
}

fn application(a: &Option<ApplicationView>) -> Option<wit::Application> {
    a.as_ref().map(|a| wit::Application {
        name: a.name.clone(),
        description: a.description.clone(),
        icon: a.icon.clone(),
    })
}

fn context(c: &Context) -> PageContext {
    PageContext {
        locale: c.locale.clone(),
        issuer: c.issuer.clone(),
        client_name: c.client_name.clone(),
        action: c.action.clone(),
        hidden: c.hidden.clone(),
        application: application(&c.application),
    }
}

fn connection(c: &ConnectionView) -> wit::Connection {
    wit::Connection {
        client_id: c.client_id.clone(),
        client_name: c.client_name.clone(),
        application: application(&c.application),
        scopes: c.scopes.clone(),
        since: c.since,
    }
}

fn password_error(e: PasswordProblem) -> wit::PasswordError {
    match e {
        PasswordProblem::WrongCurrentPassword => wit::PasswordError::WrongCurrentPassword,
        PasswordProblem::Mismatch => wit::PasswordError::Mismatch,
        PasswordProblem::TooShort(n) => wit::PasswordError::TooShort(n),
        PasswordProblem::TooLong(n) => wit::PasswordError::TooLong(n),
        PasswordProblem::Throttled => wit::PasswordError::Throttled,
        PasswordProblem::Busy => wit::PasswordError::Busy,
    }
}

/// A sign-in's refusal as 0.4.0 has it: worded by the host, in English.
fn login_error(e: LoginProblem) -> &'static str {
    match e {
        LoginProblem::WrongCredentials => "The username or password is incorrect.",
        LoginProblem::Throttled => "Too many sign-in attempts. Wait a minute and try again.",
        LoginProblem::Busy => "The server is busy. Try again in a moment.",
        LoginProblem::PasskeyFailed => "The passkey was not accepted. Try again.",
    }
}

/// A device page's outcome as 0.4.0 has it: `approved`, `denied`, or why the code typed was
/// refused, worded by the host, in English.
fn device_outcome(o: DeviceOutcome) -> &'static str {
    match o {
        DeviceOutcome::Approved => "approved",
        DeviceOutcome::Denied => "denied",
        DeviceOutcome::UnknownCode => "That code is unknown, used or expired. Check the code on the device.",
        DeviceOutcome::Throttled => "Too many codes tried. Wait a while and try again.",
    }
}
