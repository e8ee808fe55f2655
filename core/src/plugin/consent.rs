//! Rendering pages with a consent UI plugin, of any contract version, from the server's own
//! page types (each version's records: `contract/`). The versions' page records differ only
//! in what 0.3.0 added (the application in a page's context and the connections page), what
//! 0.4.0 added (the password page, and the connections page's link to it) and what 0.5.0
//! changed (every word is the plugin's: a refused sign-in and a device's outcome are
//! variants; the second-factor, security and logout pages, a passkey on the login page, the
//! connections page's links to the security page and its sign-out form).

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
        error: Option<LoginProblem>,
        /// Passkey sign-in offered (instead of the password): the ceremony (contract 0.5.0
        /// and later show it).
        passkey: Option<PasskeyCeremony>,
    },
    Consent {
        context: PageContext,
        user_name: String,
        scopes: Vec<String>,
    },
    /// The consent UI words the headline by the OAuth `error` code; `description` (the
    /// developer's) is only a collapsed detail.
    Error {
        locale: String,
        error: String,
        description: String,
    },
    Device {
        context: PageContext,
        user_code: Option<String>,
        outcome: Option<DeviceOutcome>,
    },
    /// Contract 0.3.0 and later.
    Connections {
        context: PageContext,
        user_name: String,
        connections: Vec<ConnectionView>,
        revoked: Option<String>,
        /// Where the password page is, an absolute URL (contract 0.4.0 and later show it).
        password_page: Option<String>,
        /// Absolute URL of the account security page (second factors; contract 0.5.0 and
        /// later show it).
        security_page: Option<String>,
        /// Absolute URL the sign-out form posts to (hidden pairs: the context's; contract
        /// 0.5.0 and later show it).
        sign_out: Option<String>,
    },
    /// Contract 0.4.0 and later: the signed-in person changing their password.
    Password {
        context: PageContext,
        user_name: String,
        error: Option<PasswordProblem>,
        changed: bool,
    },
    /// Contract 0.5.0 and later: after the password (or instead of it), the second factor.
    SecondFactor {
        context: PageContext,
        user_name: String,
        /// The person has an authenticator app: the form asks for `code` (six digits, or
        /// one of their recovery codes).
        totp: bool,
        passkey: Option<PasskeyCeremony>,
        error: Option<FactorProblem>,
    },
    /// Contract 0.5.0 and later: the account's second factors (`GET /account/security`).
    Security {
        context: PageContext,
        user_name: String,
        totp: TotpState,
        passkeys: Vec<PasskeyView>,
        /// Shown once, right after they were made.
        recovery_codes: Option<Vec<String>>,
        /// How many unused recovery codes remain.
        recovery_left: u32,
        passkey_enrolment: Option<PasskeyCeremony>,
        error: Option<FactorProblem>,
        notice: Option<SecurityNotice>,
    },
    /// Contract 0.5.0 and later: RP-initiated logout without a hint, and the account's
    /// sign-out: confirm, or done. The context's `client_name` may be empty.
    Logout {
        context: PageContext,
        user_name: Option<String>,
        done: bool,
    },
}

/// Why a sign-in was refused. The consent UI words it, in the page's locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginProblem {
    /// The username or password is wrong.
    WrongCredentials,
    /// Too many attempts for now.
    Throttled,
    /// The server is busy.
    Busy,
    /// The passkey was not accepted.
    PasskeyFailed,
}

/// What became of a device's user code. An expired or used code is `UnknownCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOutcome {
    Approved,
    Denied,
    UnknownCode,
    Throttled,
}

/// Why a second factor was refused. The consent UI words it, in the page's locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorProblem {
    /// The code (or recovery code) was not right.
    WrongCode,
    /// Too many attempts for now.
    Throttled,
    /// The passkey was not accepted.
    PasskeyFailed,
    /// The server is busy.
    Busy,
}

/// What the security page reports after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityNotice {
    TotpEnabled,
    TotpRemoved,
    PasskeyAdded,
    PasskeyRemoved,
    RecoveryRegenerated,
}

/// The account's authenticator app.
#[derive(Debug, Clone)]
pub enum TotpState {
    Off,
    /// Being set up: the secret to enter in the app, not yet confirmed.
    Enrolling(TotpEnrolment),
    On,
}

/// An authenticator app being set up.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    /// The secret, base32.
    pub secret: String,
    /// The `otpauth://` URI the QR code holds.
    pub uri: String,
    /// The QR code, SVG markup with no words.
    pub qr_svg: String,
}

/// One of the account's passkeys.
#[derive(Debug, Clone)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    /// When it was added, Unix seconds.
    pub since: i64,
}

/// A WebAuthn ceremony a page runs with the host's script.
#[derive(Debug, Clone)]
pub struct PasskeyCeremony {
    /// JSON: `PublicKeyCredentialCreationOptions` or `RequestOptions`, as webauthn-rs
    /// serializes them.
    pub options: String,
    /// The absolute URL of the host's static script.
    pub script: String,
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
    /// 0.3.0, the password page before 0.4.0, the second-factor, security and logout pages
    /// before 0.5.0) has it rendered by `consent-default`, when it is loaded.
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
