//! The consent interface of 0.2.0, the same as 0.1.0's: 0.4.0's login, consent and device
//! pages with a page context without the application; no connections page and no password
//! page.

use crate::plugin::contract::v0_4::consent::{self as v0_4, old as v4};
use crate::plugin::contract::v0_5::consent::{self as current, AddedPages, ConnectionsPage, ContextPages, PageRecords};

bindings!("../sdk/wit/0.2.0", "consent-ui-plugin");

use bindings::exports::portcullis::plugin::consent as old;

/// 0.2.0's records of the pages with a context; the error page is 0.5.0's.
pub(in crate::plugin) struct Records;

impl PageRecords for Records {
    type Context = Records;
    /// Never made: the version has no connections page.
    type Connections = ConnectionsPage;
    const ADDED: AddedPages = AddedPages { connections: false, password: false, factors: false };
}

impl ContextPages for Records {
    type Login = old::LoginPage;
    type Consent = old::ConsentPage;
    type Device = old::DevicePage;
}

fn context(c: v4::PageContext) -> old::PageContext {
    old::PageContext {
        locale: c.locale,
        issuer: c.issuer,
        client_name: c.client_name,
        action: c.action,
        hidden: c.hidden,
    }
}

impl From<current::LoginPage> for old::LoginPage {
    fn from(p: current::LoginPage) -> Self {
        let p = v4::LoginPage::from(p);
        Self { context: context(p.context), login_hint: p.login_hint, error: p.error }
    }
}

impl From<current::ConsentPage> for old::ConsentPage {
    fn from(p: current::ConsentPage) -> Self {
        Self { context: context(v0_4::context(p.context)), user_name: p.user_name, scopes: p.scopes }
    }
}

impl From<current::DevicePage> for old::DevicePage {
    fn from(p: current::DevicePage) -> Self {
        let p = v4::DevicePage::from(p);
        Self { context: context(p.context), user_code: p.user_code, outcome: p.outcome }
    }
}
