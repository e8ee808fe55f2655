//! The consent interface of 0.4.0: 0.5.0's without the second-factor, security and logout
//! pages, a login page without a passkey whose error, and a device page whose outcome, are
//! text the host words (in English), and a connections page without the links to the
//! security page and the sign-out form.

use crate::plugin::contract::v0_5::consent::{
    self as current, AddedPages, ConnectionsPage, ContextPages, LoginError, Outcome, PageRecords,
};

bindings!("../sdk/wit/0.4.0", "consent-ui-plugin");

pub(in crate::plugin) use bindings::exports::portcullis::plugin::consent as old;

/// 0.4.0's records; the consent, error and password pages are 0.5.0's.
pub(in crate::plugin) struct Records;

impl PageRecords for Records {
    type Context = Records;
    type Connections = old::ConnectionsPage;
    const ADDED: AddedPages = AddedPages { connections: true, password: true, factors: false };
}

impl ContextPages for Records {
    type Login = old::LoginPage;
    type Consent = current::ConsentPage;
    type Device = old::DevicePage;
}

/// The page context is 0.5.0's, field for field.
pub(in crate::plugin) fn context(c: current::PageContext) -> old::PageContext {
    old::PageContext {
        locale: c.locale,
        issuer: c.issuer,
        client_name: c.client_name,
        action: c.action,
        hidden: c.hidden,
        application: c.application.map(|a| old::Application { name: a.name, description: a.description, icon: a.icon }),
    }
}

impl From<current::LoginPage> for old::LoginPage {
    fn from(p: current::LoginPage) -> Self {
        Self { context: context(p.context), login_hint: p.login_hint, error: p.error.map(|e| login_error(e).into()) }
    }
}

impl From<current::DevicePage> for old::DevicePage {
    fn from(p: current::DevicePage) -> Self {
        Self {
            context: context(p.context),
            user_code: p.user_code,
            outcome: p.outcome.map(|o| device_outcome(o).into()),
        }
    }
}

impl From<ConnectionsPage> for old::ConnectionsPage {
    fn from(p: ConnectionsPage) -> Self {
        Self {
            context: context(p.context),
            user_name: p.user_name,
            connections: p
                .connections
                .into_iter()
                .map(|c| old::Connection {
                    client_id: c.client_id,
                    client_name: c.client_name,
                    application: c.application.map(|a| old::Application {
                        name: a.name,
                        description: a.description,
                        icon: a.icon,
                    }),
                    scopes: c.scopes,
                    since: c.since,
                })
                .collect(),
            revoked: p.revoked,
            password_page: p.password_page,
        }
    }
}

/// A sign-in's refusal as 0.4.0 has it: worded by the host, in English.
fn login_error(e: LoginError) -> &'static str {
    match e {
        LoginError::WrongCredentials => "The username or password is incorrect.",
        LoginError::Throttled => "Too many sign-in attempts. Wait a minute and try again.",
        LoginError::Busy => "The server is busy. Try again in a moment.",
        LoginError::PasskeyFailed => "The passkey was not accepted. Try again.",
    }
}

/// A device page's outcome as 0.4.0 has it: `approved`, `denied`, or why the code typed was
/// refused, worded by the host, in English.
fn device_outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Approved => "approved",
        Outcome::Denied => "denied",
        Outcome::UnknownCode => "That code is unknown, used or expired. Check the code on the device.",
        Outcome::Throttled => "Too many codes tried. Wait a while and try again.",
    }
}
