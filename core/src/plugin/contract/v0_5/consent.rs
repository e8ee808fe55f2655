//! The consent interface of 0.5.0: each [`Page`] as its record, and the render functions. A
//! version whose consent interface differs has its [`PageRecords`], made from these; the
//! pages it lacks are none of its records.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::consent_world::exports::portcullis::plugin::consent as wit;
use crate::plugin::call::CallState;
use crate::plugin::consent::{
    ApplicationView, ConnectionView, DeviceOutcome, FactorProblem, LoginProblem, Page, PageContext as Context,
    PasskeyCeremony, PasswordProblem, SecurityNotice, TotpState,
};
use crate::plugin::contract::{ConsentWorld, Export, Exported, Param};
use crate::plugin::{Contract, Linked, PluginKind};

pub(in crate::plugin) use wit::{
    Connection, ConnectionsPage, ConsentPage, DeviceOutcome as Outcome, DevicePage, LoginError, LoginPage, PageContext,
};

/// A version's records of the pages that carry the page context (to which 0.3.0 added the
/// application, and whose login and device pages 0.5.0 changed), each made from this
/// version's (`From`).
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
    /// The second-factor, security and logout pages (0.5.0 and later).
    pub(in crate::plugin) factors: bool,
}

/// The records of 0.5.0.
pub(in crate::plugin) struct Current;

impl PageRecords for Current {
    type Context = Current;
    type Connections = ConnectionsPage;
    const ADDED: AddedPages = AddedPages { connections: true, password: true, factors: true };
}

impl ContextPages for Current {
    type Login = LoginPage;
    type Consent = ConsentPage;
    type Device = DevicePage;
}

const NO_CONNECTIONS_PAGE: &str = "this consent UI was built for a contract without the connections page";
const NO_PASSWORD_PAGE: &str = "this consent UI was built for a contract without the password page";
const NO_FACTOR_PAGES: &str =
    "this consent UI was built for a contract without the second-factor, security and logout pages";

/// What a render function answers: the page's HTML, or the plugin's refusal.
type Rendered = (Result<String, String>,);

/// A render function of a page added since 0.2.0, when the version has it.
type Added<P> = Option<Export<(P,), Rendered>>;

/// A consent UI of a version whose records are `R`'s.
struct Ui<R: PageRecords> {
    pre: InstancePre<CallState>,
    locales: Export<(), (Vec<String>,)>,
    login: Export<(<R::Context as ContextPages>::Login,), Rendered>,
    consent: Export<(<R::Context as ContextPages>::Consent,), Rendered>,
    error: Export<(wit::ErrorPage,), Rendered>,
    device: Export<(<R::Context as ContextPages>::Device,), Rendered>,
    connections: Added<R::Connections>,
    password: Added<wit::PasswordPage>,
    second_factor: Added<wit::SecondFactorPage>,
    security: Added<wit::SecurityPage>,
    logout: Added<wit::LogoutPage>,
}

/// Links a consent UI of `contract`, whose records are `R`'s.
pub(in crate::plugin) fn link<R: PageRecords>(
    pre: InstancePre<CallState>,
    contract: Contract,
) -> wasmtime::Result<Linked> {
    let exported = Exported::of(&pre, PluginKind::ConsentUi, contract)?;
    let factors = R::ADDED.factors;
    let ui = Ui::<R> {
        locales: exported.func("locales")?,
        login: exported.func("render-login")?,
        consent: exported.func("render-consent")?,
        error: exported.func("render-error")?,
        device: exported.func("render-device")?,
        connections: exported.func_if(R::ADDED.connections, "render-connections")?,
        password: exported.func_if(R::ADDED.password, "render-password")?,
        second_factor: exported.func_if(factors, "render-second-factor")?,
        security: exported.func_if(factors, "render-security")?,
        logout: exported.func_if(factors, "render-logout")?,
        pre,
    };
    Ok(Linked::Consent(Box::new(ui)))
}

/// Calls the render function `f` of a page added since 0.2.0 with the record `page` makes,
/// or refuses with `missing` when the version lacks it.
fn added<P: Param>(
    f: &Added<P>,
    store: &mut Store<CallState>,
    instance: &wasmtime::component::Instance,
    missing: &str,
    page: impl FnOnce() -> P,
) -> wasmtime::Result<Rendered> {
    match f {
        Some(f) => f.call(store, instance, (page(),)),
        None => Ok((Err(missing.to_owned()),)),
    }
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
        if let Some(f) = &self.second_factor {
            f.check(store, &instance)?;
        }
        if let Some(f) = &self.security {
            f.check(store, &instance)?;
        }
        if let Some(f) = &self.logout {
            f.check(store, &instance)?;
        }
        Ok(self.locales.call(store, &instance, ())?.0)
    }

    fn renders(&self, page: &Page) -> bool {
        match page {
            Page::Connections { .. } => self.connections.is_some(),
            Page::Password { .. } => self.password.is_some(),
            Page::SecondFactor { .. } => self.second_factor.is_some(),
            Page::Security { .. } => self.security.is_some(),
            Page::Logout { .. } => self.logout.is_some(),
            Page::Login { .. } | Page::Consent { .. } | Page::Error { .. } | Page::Device { .. } => true,
        }
    }

    fn render(&self, store: &mut Store<CallState>, page: &Page) -> wasmtime::Result<Result<String, String>> {
        let instance = self.pre.instantiate(&mut *store)?;
        let i = &instance;
        let (rendered,) = match page {
            Page::Login { context: cx, login_hint, error, passkey } => {
                let page = LoginPage {
                    context: context(cx),
                    login_hint: login_hint.clone(),
                    error: error.map(login_error),
                    passkey: passkey.as_ref().map(ceremony),
                };
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
                let page = DevicePage {
                    context: context(cx),
                    user_code: user_code.clone(),
                    outcome: outcome.map(device_outcome),
                };
                self.device.call(store, i, (page.into(),))?
            }
            Page::Connections {
                context: cx,
                user_name,
                connections: list,
                revoked,
                password_page,
                security_page,
                sign_out,
            } => added(&self.connections, store, i, NO_CONNECTIONS_PAGE, || {
                ConnectionsPage {
                    context: context(cx),
                    user_name: user_name.clone(),
                    connections: list.iter().map(connection).collect(),
                    revoked: revoked.clone(),
                    password_page: password_page.clone(),
                    security_page: security_page.clone(),
                    sign_out: sign_out.clone(),
                }
                .into()
            })?,
            Page::Password { context: cx, user_name, error, changed } => {
                added(&self.password, store, i, NO_PASSWORD_PAGE, || wit::PasswordPage {
                    context: context(cx),
                    user_name: user_name.clone(),
                    error: error.map(password_error),
                    changed: *changed,
                })?
            }
            Page::SecondFactor { context: cx, user_name, totp, passkey, error } => {
                added(&self.second_factor, store, i, NO_FACTOR_PAGES, || wit::SecondFactorPage {
                    context: context(cx),
                    user_name: user_name.clone(),
                    totp: *totp,
                    passkey: passkey.as_ref().map(ceremony),
                    error: error.map(factor_error),
                })?
            }
            Page::Security {
                context: cx,
                user_name,
                totp,
                passkeys,
                recovery_codes,
                recovery_left,
                passkey_enrolment,
                error,
                notice,
            } => added(&self.security, store, i, NO_FACTOR_PAGES, || wit::SecurityPage {
                context: context(cx),
                user_name: user_name.clone(),
                totp: totp_state(totp),
                passkeys: passkeys
                    .iter()
                    .map(|p| wit::PasskeyView { id: p.id.clone(), name: p.name.clone(), since: p.since })
                    .collect(),
                recovery_codes: recovery_codes.clone(),
                recovery_left: *recovery_left,
                passkey_enrolment: passkey_enrolment.as_ref().map(ceremony),
                error: error.map(factor_error),
                notice: notice.map(security_notice),
            })?,
            Page::Logout { context: cx, user_name, done } => added(&self.logout, store, i, NO_FACTOR_PAGES, || {
                wit::LogoutPage { context: context(cx), user_name: user_name.clone(), done: *done }
            })?,
        };
        Ok(rendered)
    }
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

fn ceremony(c: &PasskeyCeremony) -> wit::PasskeyCeremony {
    wit::PasskeyCeremony { options: c.options.clone(), script: c.script.clone() }
}

fn login_error(e: LoginProblem) -> LoginError {
    match e {
        LoginProblem::WrongCredentials => LoginError::WrongCredentials,
        LoginProblem::Throttled => LoginError::Throttled,
        LoginProblem::Busy => LoginError::Busy,
        LoginProblem::PasskeyFailed => LoginError::PasskeyFailed,
    }
}

fn device_outcome(o: DeviceOutcome) -> Outcome {
    match o {
        DeviceOutcome::Approved => Outcome::Approved,
        DeviceOutcome::Denied => Outcome::Denied,
        DeviceOutcome::UnknownCode => Outcome::UnknownCode,
        DeviceOutcome::Throttled => Outcome::Throttled,
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

fn factor_error(e: FactorProblem) -> wit::FactorError {
    match e {
        FactorProblem::WrongCode => wit::FactorError::WrongCode,
        FactorProblem::Throttled => wit::FactorError::Throttled,
        FactorProblem::PasskeyFailed => wit::FactorError::PasskeyFailed,
        FactorProblem::Busy => wit::FactorError::Busy,
    }
}

fn security_notice(n: SecurityNotice) -> wit::SecurityNotice {
    match n {
        SecurityNotice::TotpEnabled => wit::SecurityNotice::TotpEnabled,
        SecurityNotice::TotpRemoved => wit::SecurityNotice::TotpRemoved,
        SecurityNotice::PasskeyAdded => wit::SecurityNotice::PasskeyAdded,
        SecurityNotice::PasskeyRemoved => wit::SecurityNotice::PasskeyRemoved,
        SecurityNotice::RecoveryRegenerated => wit::SecurityNotice::RecoveryRegenerated,
    }
}

fn totp_state(t: &TotpState) -> wit::TotpState {
    match t {
        TotpState::Off => wit::TotpState::Off,
        TotpState::Enrolling(e) => wit::TotpState::Enrolling(wit::TotpEnrolment {
            secret: e.secret.clone(),
            uri: e.uri.clone(),
            qr_svg: e.qr_svg.clone(),
        }),
        TotpState::On => wit::TotpState::On,
    }
}
