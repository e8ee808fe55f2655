//! The pages of the built-in consent UIs: plain, accessible HTML5 pages in English, Russian,
//! Dutch, German and Italian, with a little inline CSS and no scripts of their own (a page
//! that runs a passkey ceremony loads the host's script, the one the ceremony names). Each
//! consent UI is [`Pages`] with a [`Layout`] of its own: the style sheet its pages carry,
//! and what stands around their content.
//!
//! Every word of every page is in one [`Texts`] table per language; the rendering code is
//! shared, and the host passes reasons (a refused sign-in, a device's code, a second factor)
//! as variants, which the tables word. The host picks the locale among those
//! [`Guest::locales`] names; a tag this plugin does not know is served by its primary subtag
//! (`ru-RU` by `ru`), and anything else in English. Dates are written in the locale's own
//! form, from Unix seconds.
//!
//! Every string that comes from the host is HTML-escaped, except the QR code's SVG, which
//! the host made; forms follow the contract of `interface consent` (POST to `action`, every
//! `hidden` pair as a hidden input, `username`/`password` and `decision` = `cancel` on the
//! login page, `decision` = `allow`/`deny`, `user_code`, on the connections page one form
//! per connection whose `revoke` button carries the client id and a sign-out form with
//! `decision` = `logout`, on the password page `current-password`, `new-password` and
//! `repeat-password`, on the second-factor page `code`, on the security page forms with a
//! button named `op`, on the logout page `decision` = `logout`/`cancel`). A passkey button
//! is `type="button"` with `data-passkey`, in a form carrying the ceremony's options in
//! `data-passkey-options` and a hidden `passkey-response`. The consent page's two buttons
//! are one `.actions.decision` block, which a layout may keep in view. An application's
//! icon is shown only when it is an `https:` URL or a `data:image/` URI.

use std::marker::PhantomData;

use portcullis_sdk::consent::{
    Application, ConnectionsPage, ConsentPage, DeviceOutcome, DevicePage, ErrorPage, FactorError, Guest, LoginError,
    LoginPage, LogoutPage, PageContext, PasskeyCeremony, PasswordError, PasswordPage, SecondFactorPage, SecurityNotice,
    SecurityPage, TotpState,
};

/// How a consent UI lays its pages out.
pub struct Look {
    /// The style sheet's rules, after the shared palette and rules ([`PALETTE`]: the
    /// colours, light and dark, as custom properties; [`SHARED`]).
    pub style: &'static str,
    /// The class of every page's `<body>`, for a layout that names itself.
    pub body_class: Option<&'static str>,
    /// Whether a footer under the page names the issuer.
    pub footer: bool,
}

/// A consent UI's layout: implemented by each plugin, which exports [`Pages`] of it.
pub trait Layout {
    const LOOK: &'static Look;
}

/// The consent interface answered with the pages of this crate, laid out by `L`.
pub struct Pages<L>(PhantomData<L>);

impl<L: Layout> Guest for Pages<L> {
    fn locales() -> Vec<String> {
        LANGUAGES.iter().map(|t| t.lang.to_string()).collect()
    }

    fn render_login(page: LoginPage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let (name, client) = names(&cx.client_name, cx.application.as_ref());
        // No client (the account pages' own sign-in): no "to continue to" line, nothing to cancel.
        let name = Some(name).filter(|n| !n.is_empty());
        let mut h = Html::start(L::LOOK, &cx.locale, t.sign_in_title, name);
        h.raw("<h1>");
        h.text(t.sign_in_title);
        h.raw("</h1>\n");
        if let Some(name) = name {
            h.raw("<p class=\"lead\">");
            h.around(t.continue_to, name, client);
            h.raw("</p>\n");
        }
        if let Some(error) = &page.error {
            h.alert("login-error", login_error(t, error));
        }
        h.form_with(cx, page.passkey.as_ref());
        let described = if page.error.is_some() { " aria-describedby=\"login-error\"" } else { "" };
        h.raw("<label for=\"username\">");
        h.text(t.username);
        h.raw("</label>\n<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username webauthn\" autocapitalize=\"none\" spellcheck=\"false\" required");
        h.raw(described);
        match &page.login_hint {
            Some(hint) => {
                h.raw(" value=\"");
                h.text(hint);
                h.raw("\">\n");
            }
            None => h.raw(" autofocus>\n"),
        }
        h.raw("<label for=\"password\">");
        h.text(t.password);
        h.raw("</label>\n<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required");
        h.raw(described);
        if page.login_hint.is_some() {
            h.raw(" autofocus");
        }
        h.raw(">\n<div class=\"actions\"><button type=\"submit\" class=\"primary\">");
        h.text(t.sign_in_button);
        h.raw("</button>");
        if name.is_some() {
            h.cancel(t);
        }
        h.raw("</div>\n");
        h.passkey_button(page.passkey.as_ref(), t.passkey_sign_in);
        h.raw("</form>\n");
        h.passkey_script(page.passkey.as_ref());
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_consent(page: ConsentPage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let app = cx.application.as_ref();
        let (name, client) = names(&cx.client_name, app);
        let mut h = Html::start(L::LOOK, &cx.locale, t.allow_title, Some(name));
        if let Some(src) = icon(app) {
            h.icon(src);
        }
        h.raw("<h1>");
        h.around(t.wants_access, name, None);
        h.raw("</h1>\n");
        if let Some(client) = client {
            h.raw("<p class=\"muted\">");
            h.text(t.client);
            h.raw(": <strong>");
            h.text(client);
            h.raw("</strong></p>\n");
        }
        if let Some(app) = app.filter(|a| !a.description.is_empty()) {
            h.raw("<p class=\"description\">");
            h.text(&app.description);
            h.raw("</p>\n");
        }
        h.raw("<p class=\"lead\">");
        h.text(t.signed_in_as);
        h.raw(" <strong>");
        h.text(&page.user_name);
        h.raw("</strong></p>\n");
        if page.scopes.is_empty() {
            h.raw("<p>");
            h.text(t.no_scopes);
            h.raw("</p>\n");
        } else {
            h.raw("<p id=\"scopes-label\">");
            h.text(t.scopes_intro);
            h.raw("</p>\n<ul class=\"scopes\" aria-labelledby=\"scopes-label\">\n");
            h.scopes(t, &page.scopes);
            h.raw("</ul>\n");
        }
        h.form_start(cx);
        h.raw("<div class=\"actions decision\">\n<button type=\"submit\" name=\"decision\" value=\"allow\" class=\"primary\">");
        h.text(t.allow);
        h.raw("</button>\n<button type=\"submit\" name=\"decision\" value=\"deny\">");
        h.text(t.deny);
        h.raw("</button>\n</div>\n</form>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_error(page: ErrorPage) -> Result<String, String> {
        let t = texts(&page.locale);
        let (headline, text) = error_words(t, &page.error);
        let mut h = Html::start(L::LOOK, &page.locale, headline, None);
        h.raw("<h1>");
        h.text(headline);
        h.raw("</h1>\n<p class=\"error\" role=\"alert\">");
        h.text(text);
        h.raw("</p>\n");
        // The server's own words are a developer's: folded away, with the code.
        if !page.description.is_empty() || !page.error.is_empty() {
            h.raw("<details>\n<summary>");
            h.text(t.error_details);
            h.raw("</summary>\n");
            if !page.description.is_empty() {
                h.raw("<p class=\"description\">");
                h.text(&page.description);
                h.raw("</p>\n");
            }
            if !page.error.is_empty() {
                h.raw("<p class=\"muted\">");
                h.text(t.error_code);
                h.raw(": <code>");
                h.text(&page.error);
                h.raw("</code></p>\n");
            }
            h.raw("</details>\n");
        }
        Ok(h.finish(None))
    }

    fn render_device(page: DevicePage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let (name, client) = names(&cx.client_name, cx.application.as_ref());
        let done = match &page.outcome {
            Some(DeviceOutcome::Approved) => Some(t.device_approved),
            Some(DeviceOutcome::Denied) => Some(t.device_denied),
            _ => None,
        };
        if let Some((title, text)) = done {
            let mut h = Html::start(L::LOOK, &cx.locale, title, Some(name));
            h.raw("<h1>");
            h.text(title);
            h.raw("</h1>\n<p role=\"status\" id=\"device-outcome\">");
            h.text(text);
            h.raw("</p>\n");
            return Ok(h.finish(Some(&cx.issuer)));
        }

        let mut h = Html::start(L::LOOK, &cx.locale, t.device_title, Some(name));
        h.raw("<h1>");
        h.text(t.device_title);
        h.raw("</h1>\n<p class=\"lead\">");
        if name.is_empty() {
            h.text(t.device_lead_unnamed);
        } else {
            h.around(t.device_lead, name, client);
        }
        h.raw("</p>\n");
        let refused = match &page.outcome {
            Some(DeviceOutcome::UnknownCode) => Some(t.unknown_code),
            Some(DeviceOutcome::Throttled) => Some(t.codes_throttled),
            _ => None,
        };
        if let Some(refused) = refused {
            h.alert("device-error", refused);
        }
        h.form_start(cx);
        h.raw("<label for=\"user_code\">");
        h.text(t.code);
        h.raw("</label>\n<input id=\"user_code\" name=\"user_code\" type=\"text\" class=\"code\" autocomplete=\"one-time-code\" autocapitalize=\"characters\" spellcheck=\"false\" required autofocus");
        if refused.is_some() {
            h.raw(" aria-describedby=\"device-error\"");
        }
        if let Some(code) = &page.user_code {
            h.raw(" value=\"");
            h.text(code);
            h.raw("\"");
        }
        h.raw(">\n<div class=\"actions\"><button type=\"submit\" class=\"primary\">");
        h.text(t.continue_);
        h.raw("</button></div>\n</form>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_connections(page: ConnectionsPage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let mut h = Html::account_page(L::LOOK, &cx.locale, t.connections_title, t.signed_in_as, &page.user_name);
        if let Some(revoked) = &page.revoked {
            h.raw("<p class=\"status\" role=\"status\" id=\"revoked\">");
            h.around(t.revoked, revoked, None);
            h.raw("</p>\n");
        }
        let links = [("password-link", &page.password_page, t.password_title), ("security-link", &page.security_page, t.security_title)];
        if links.iter().any(|(_, href, _)| href.is_some()) {
            h.raw("<nav class=\"account-links\">\n");
            for (id, href, label) in links {
                if let Some(href) = href {
                    h.raw("<p><a id=\"");
                    h.raw(id);
                    h.raw("\" href=\"");
                    h.text(href);
                    h.raw("\">");
                    h.text(label);
                    h.raw("</a></p>\n");
                }
            }
            h.raw("</nav>\n");
        }
        if page.connections.is_empty() {
            h.raw("<p id=\"no-connections\">");
            h.text(t.no_connections);
            h.raw("</p>\n");
        } else {
            h.raw("<p>");
            h.text(t.connections_intro);
            h.raw("</p>\n<ul class=\"connections\" id=\"connections\">\n");
            for (i, c) in page.connections.iter().enumerate() {
                let app = c.application.as_ref();
                let (name, client) = names(&c.client_name, app);
                let id = format!("connection-{}", i + 1);
                h.raw("<li class=\"connection\" data-client-id=\"");
                h.text(&c.client_id);
                h.raw("\">\n");
                if let Some(src) = icon(app) {
                    h.icon(src);
                }
                h.raw("<h2 id=\"");
                h.raw(&id);
                h.raw("-name\">");
                h.text(name);
                h.raw("</h2>\n");
                if let Some(client) = client {
                    h.raw("<p class=\"muted\">");
                    h.text(t.client);
                    h.raw(": ");
                    h.text(client);
                    h.raw("</p>\n");
                }
                h.raw("<p class=\"muted\">");
                h.text(t.since);
                h.raw(" ");
                h.date(t, c.since);
                h.raw("</p>\n");
                if c.scopes.is_empty() {
                    h.raw("<p>");
                    h.text(t.connection_no_scopes);
                    h.raw("</p>\n");
                } else {
                    h.raw("<p id=\"");
                    h.raw(&id);
                    h.raw("-scopes\">");
                    h.text(t.connection_can);
                    h.raw("</p>\n<ul class=\"scopes\" aria-labelledby=\"");
                    h.raw(&id);
                    h.raw("-scopes\">\n");
                    h.scopes(t, &c.scopes);
                    h.raw("</ul>\n");
                }
                h.form_start(cx);
                h.raw("<div class=\"actions\"><button type=\"submit\" name=\"revoke\" value=\"");
                h.text(&c.client_id);
                h.raw("\" aria-describedby=\"");
                h.raw(&id);
                h.raw("-name\">");
                h.text(t.revoke);
                h.raw("</button></div>\n</form>\n</li>\n");
            }
            h.raw("</ul>\n");
        }
        if let Some(sign_out) = &page.sign_out {
            h.form_to(sign_out, cx, "sign-out");
            h.raw("<div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"logout\">");
            h.text(t.sign_out);
            h.raw("</button></div>\n</form>\n");
        }
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_password(page: PasswordPage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let mut h = Html::account_page(L::LOOK, &cx.locale, t.password_title, t.signed_in_as, &page.user_name);
        if page.changed {
            h.raw("<p class=\"status\" role=\"status\" id=\"password-changed\">");
            h.text(t.password_changed);
            h.raw("</p>\n");
            return Ok(h.finish(Some(&cx.issuer)));
        }
        if let Some(error) = &page.error {
            h.raw("<p class=\"error\" role=\"alert\" id=\"password-error\">");
            match error {
                PasswordError::WrongCurrentPassword => h.text(t.wrong_current_password),
                PasswordError::Mismatch => h.text(t.passwords_differ),
                PasswordError::TooShort(n) => h.around(t.password_too_short, &n.to_string(), None),
                PasswordError::TooLong(n) => h.around(t.password_too_long, &n.to_string(), None),
                PasswordError::Throttled => h.text(t.too_many_attempts),
                PasswordError::Busy => h.text(t.busy),
            }
            h.raw("</p>\n");
        }
        h.form_start(cx);
        let described = if page.error.is_some() { " aria-describedby=\"password-error\"" } else { "" };
        let fields = [
            ("current-password", t.current_password, "current-password"),
            ("new-password", t.new_password, "new-password"),
            ("repeat-password", t.repeat_password, "new-password"),
        ];
        for (i, (name, label, autocomplete)) in fields.into_iter().enumerate() {
            h.raw("<label for=\"");
            h.raw(name);
            h.raw("\">");
            h.text(label);
            h.raw("</label>\n<input id=\"");
            h.raw(name);
            h.raw("\" name=\"");
            h.raw(name);
            h.raw("\" type=\"password\" autocomplete=\"");
            h.raw(autocomplete);
            h.raw("\" required");
            h.raw(described);
            if i == 0 {
                h.raw(" autofocus");
            }
            h.raw(">\n");
        }
        h.raw("<div class=\"actions\"><button type=\"submit\" class=\"primary\">");
        h.text(t.change_password);
        h.raw("</button></div>\n</form>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_second_factor(page: SecondFactorPage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let (name, _) = names(&cx.client_name, cx.application.as_ref());
        let mut h = Html::start(L::LOOK, &cx.locale, t.factor_title, Some(name).filter(|n| !n.is_empty()));
        h.raw("<h1>");
        h.text(t.factor_title);
        h.raw("</h1>\n<p class=\"lead\">");
        h.text(t.signed_in_as);
        h.raw(" <strong>");
        h.text(&page.user_name);
        h.raw("</strong></p>\n<p id=\"factor-lead\">");
        h.text(if page.totp { t.factor_lead_totp } else { t.factor_lead_passkey });
        h.raw("</p>\n");
        if let Some(error) = &page.error {
            h.alert("factor-error", factor_error(t, error));
        }
        h.form_with(cx, page.passkey.as_ref());
        if page.totp {
            h.raw("<label for=\"code\">");
            h.text(t.code);
            h.raw("</label>\n<input id=\"code\" name=\"code\" type=\"text\" class=\"code\" inputmode=\"text\" autocomplete=\"one-time-code\" autocapitalize=\"none\" spellcheck=\"false\" required autofocus aria-describedby=\"factor-lead");
            if page.error.is_some() {
                h.raw(" factor-error");
            }
            h.raw("\">\n");
        }
        h.raw("<div class=\"actions\">");
        if page.totp {
            h.raw("<button type=\"submit\" class=\"primary\">");
            h.text(t.verify);
            h.raw("</button>");
        }
        h.cancel(t);
        h.raw("</div>\n");
        h.passkey_button(page.passkey.as_ref(), t.use_passkey);
        h.raw("</form>\n");
        h.passkey_script(page.passkey.as_ref());
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_security(page: SecurityPage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let mut h = Html::account_page(L::LOOK, &cx.locale, t.security_title, t.signed_in_as, &page.user_name);
        if let Some(notice) = &page.notice {
            h.raw("<p class=\"status\" role=\"status\" id=\"security-notice\">");
            h.text(security_notice(t, notice));
            h.raw("</p>\n");
        }
        if let Some(error) = &page.error {
            h.alert("security-error", factor_error(t, error));
        }

        // The authenticator app.
        h.raw("<section aria-labelledby=\"totp-heading\">\n<h2 id=\"totp-heading\">");
        h.text(t.totp_heading);
        h.raw("</h2>\n");
        match &page.totp {
            TotpState::Off => {
                h.raw("<p>");
                h.text(t.totp_off);
                h.raw("</p>\n");
                h.op_form(cx, "totp-start", t.totp_start, true);
            }
            TotpState::Enrolling(enrolment) => {
                h.raw("<p id=\"totp-scan\">");
                h.text(t.totp_scan);
                h.raw("</p>\n<div class=\"qr\" role=\"img\" aria-labelledby=\"totp-scan\">");
                // The host's drawing: markup it made, with no words in it.
                h.raw(&enrolment.qr_svg);
                h.raw("</div>\n<p>");
                h.text(t.totp_key);
                h.raw(": <code class=\"secret\" id=\"totp-secret\">");
                h.text(&enrolment.secret);
                h.raw("</code></p>\n");
                h.form_start(cx);
                h.raw("<label for=\"code\">");
                h.text(t.code);
                h.raw("</label>\n<input id=\"code\" name=\"code\" type=\"text\" class=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" spellcheck=\"false\" required autofocus>\n");
                h.raw("<div class=\"actions\"><button type=\"submit\" name=\"op\" value=\"totp-confirm\" class=\"primary\">");
                h.text(t.totp_confirm);
                h.raw("</button><button type=\"submit\" name=\"op\" value=\"totp-remove\" formnovalidate>");
                h.text(t.cancel);
                h.raw("</button></div>\n</form>\n");
            }
            TotpState::On => {
                h.raw("<p>");
                h.text(t.totp_on);
                h.raw("</p>\n");
                h.op_form(cx, "totp-remove", t.totp_remove, false);
            }
        }
        h.raw("</section>\n");

        // The recovery codes.
        h.raw("<section aria-labelledby=\"recovery-heading\">\n<h2 id=\"recovery-heading\">");
        h.text(t.recovery_heading);
        h.raw("</h2>\n");
        if let Some(codes) = &page.recovery_codes {
            h.raw("<p id=\"recovery-intro\">");
            h.text(t.recovery_intro);
            h.raw("</p>\n<ul class=\"recovery-codes\" id=\"recovery-codes\" aria-labelledby=\"recovery-intro\">\n");
            for code in codes {
                h.raw("<li><code>");
                h.text(code);
                h.raw("</code></li>\n");
            }
            h.raw("</ul>\n");
        }
        h.raw("<p id=\"recovery-left\">");
        h.around(t.recovery_left, &page.recovery_left.to_string(), None);
        h.raw("</p>\n");
        h.op_form(cx, "recovery-regenerate", t.recovery_regenerate, false);
        h.raw("</section>\n");

        // The passkeys.
        h.raw("<section aria-labelledby=\"passkeys-heading\">\n<h2 id=\"passkeys-heading\">");
        h.text(t.passkeys_heading);
        h.raw("</h2>\n");
        if page.passkeys.is_empty() {
            h.raw("<p id=\"no-passkeys\">");
            h.text(t.no_passkeys);
            h.raw("</p>\n");
        } else {
            h.raw("<ul class=\"passkeys\" id=\"passkeys\">\n");
            for (i, key) in page.passkeys.iter().enumerate() {
                let id = format!("passkey-{}", i + 1);
                h.raw("<li class=\"passkey\">\n<h3 id=\"");
                h.raw(&id);
                h.raw("-name\">");
                h.text(&key.name);
                h.raw("</h3>\n<p class=\"muted\">");
                h.text(t.added);
                h.raw(" ");
                h.date(t, key.since);
                h.raw("</p>\n");
                h.form_start(cx);
                h.raw("<input type=\"hidden\" name=\"passkey-id\" value=\"");
                h.text(&key.id);
                h.raw("\">\n<div class=\"actions\"><button type=\"submit\" name=\"op\" value=\"passkey-remove\" aria-describedby=\"");
                h.raw(&id);
                h.raw("-name\">");
                h.text(t.remove);
                h.raw("</button></div>\n</form>\n</li>\n");
            }
            h.raw("</ul>\n");
        }
        match &page.passkey_enrolment {
            Some(ceremony) => {
                h.form_with(cx, Some(ceremony));
                h.raw("<input type=\"hidden\" name=\"op\" value=\"passkey-finish\">\n<label for=\"passkey-name\">");
                h.text(t.passkey_name);
                h.raw("</label>\n<input id=\"passkey-name\" name=\"passkey-name\" type=\"text\" maxlength=\"64\" autocomplete=\"off\" required autofocus>\n");
                h.passkey_button(Some(ceremony), t.passkey_save);
                h.raw("</form>\n");
                h.passkey_script(Some(ceremony));
            }
            None => h.op_form(cx, "passkey-start", t.passkey_start, false),
        }
        h.raw("</section>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_logout(page: LogoutPage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let (name, client) = names(&cx.client_name, cx.application.as_ref());
        let name = Some(name).filter(|n| !n.is_empty());
        if page.done {
            let mut h = Html::start(L::LOOK, &cx.locale, t.logout_done_title, name);
            h.raw("<h1>");
            h.text(t.logout_done_title);
            h.raw("</h1>\n<p class=\"status\" role=\"status\" id=\"signed-out\">");
            h.text(t.logout_done);
            h.raw("</p>\n");
            return Ok(h.finish(Some(&cx.issuer)));
        }
        let mut h = Html::start(L::LOOK, &cx.locale, t.logout_title, name);
        h.raw("<h1>");
        h.text(t.logout_question);
        h.raw("</h1>\n");
        if let Some(name) = name {
            h.raw("<p class=\"lead\">");
            h.around(t.logout_asked, name, client);
            h.raw("</p>\n");
        }
        if let Some(user) = &page.user_name {
            h.raw("<p>");
            h.text(t.signed_in_as);
            h.raw(" <strong>");
            h.text(user);
            h.raw("</strong></p>\n");
        }
        h.form_start(cx);
        h.raw("<div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"logout\" class=\"primary\" autofocus>");
        h.text(t.sign_out);
        h.raw("</button><button type=\"submit\" name=\"decision\" value=\"cancel\">");
        h.text(t.logout_stay);
        h.raw("</button></div>\n</form>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }
}

fn login_error(t: &Texts, e: &LoginError) -> &'static str {
    match e {
        LoginError::WrongCredentials => t.wrong_credentials,
        LoginError::Throttled => t.too_many_attempts,
        LoginError::Busy => t.busy,
        LoginError::PasskeyFailed => t.passkey_failed,
    }
}

fn factor_error(t: &Texts, e: &FactorError) -> &'static str {
    match e {
        FactorError::WrongCode => t.wrong_code,
        FactorError::Throttled => t.too_many_attempts,
        FactorError::PasskeyFailed => t.passkey_failed,
        FactorError::Busy => t.busy,
    }
}

fn security_notice(t: &Texts, n: &SecurityNotice) -> &'static str {
    let i = match n {
        SecurityNotice::TotpEnabled => 0,
        SecurityNotice::TotpRemoved => 1,
        SecurityNotice::PasskeyAdded => 2,
        SecurityNotice::PasskeyRemoved => 3,
        SecurityNotice::RecoveryRegenerated => 4,
    };
    t.notices[i]
}

/// The OAuth error codes an error page words a headline for, each with the codes worded
/// alike; [`Texts::errors`] has their words in the same order.
const ERROR_CODES: [&[&str]; 10] = [
    &["invalid_request", "invalid_request_object", "invalid_redirect_uri", "invalid_target"],
    &["invalid_client", "unauthorized_client"],
    &["access_denied"],
    &["invalid_scope"],
    &["login_required", "interaction_required", "consent_required", "account_selection_required"],
    &["server_error"],
    &["temporarily_unavailable"],
    &["invalid_request_uri", "expired_token", "invalid_grant"],
    &["unsupported_response_type", "unsupported_response_mode", "request_not_supported", "request_uri_not_supported"],
    &["not_found"],
];

/// An error page's headline and text for the OAuth error `code`: its own, or the general
/// ones.
fn error_words(t: &Texts, code: &str) -> (&'static str, &'static str) {
    ERROR_CODES
        .iter()
        .position(|codes| codes.contains(&code))
        .map_or((t.error_heading, t.error_fallback), |i| t.errors[i])
}

/// Text placed before and after a name (`before` + name + `after`), so each language
/// puts the name where its grammar wants it.
type Around = (&'static str, &'static str);

/// The words of one language. Every field is plain text (it is escaped when written).
struct Texts {
    /// The BCP 47 primary language subtag.
    lang: &'static str,
    sign_in_title: &'static str,
    sign_in_button: &'static str,
    /// The login page's lead line, around the application's name.
    continue_to: Around,
    username: &'static str,
    password: &'static str,
    /// Leaves a page without going on: the request ends, refused.
    cancel: &'static str,
    wrong_credentials: &'static str,
    passkey_failed: &'static str,
    /// The login page's passkey button.
    passkey_sign_in: &'static str,
    allow_title: &'static str,
    /// The consent page's heading, around the application's name.
    wants_access: Around,
    /// Followed by the person's name.
    signed_in_as: &'static str,
    /// Labels the client's name when it differs from its application's.
    client: &'static str,
    no_scopes: &'static str,
    scopes_intro: &'static str,
    allow: &'static str,
    deny: &'static str,
    /// The general headline and text of an error page, for a code without words of its own.
    error_heading: &'static str,
    error_fallback: &'static str,
    /// The headline and text of an error page for each of [`ERROR_CODES`], in its order.
    errors: [(&'static str, &'static str); ERROR_CODES.len()],
    /// The summary of the folded details (the server's description and the code).
    error_details: &'static str,
    error_code: &'static str,
    device_title: &'static str,
    /// The device page's lead line, around the application's name.
    device_lead: Around,
    /// The device page's lead line when the application has no name.
    device_lead_unnamed: &'static str,
    code: &'static str,
    continue_: &'static str,
    /// Title and text once the device was approved.
    device_approved: (&'static str, &'static str),
    /// Title and text once the device was denied.
    device_denied: (&'static str, &'static str),
    unknown_code: &'static str,
    codes_throttled: &'static str,
    /// The months' names as a date has them (`4 December`), January first.
    months: [&'static str; 12],
    /// A date: `{d}` the day, `{m}` the month's name, `{y}` the year.
    date: &'static str,
    connections_title: &'static str,
    connections_intro: &'static str,
    no_connections: &'static str,
    /// Followed by the date the connection was made.
    since: &'static str,
    connection_can: &'static str,
    connection_no_scopes: &'static str,
    revoke: &'static str,
    /// The status after a revocation, around the revoked client's name.
    revoked: Around,
    sign_out: &'static str,
    /// The password page's title, and the connections page's link to it.
    password_title: &'static str,
    current_password: &'static str,
    new_password: &'static str,
    repeat_password: &'static str,
    change_password: &'static str,
    password_changed: &'static str,
    wrong_current_password: &'static str,
    passwords_differ: &'static str,
    /// Around the least number of characters.
    password_too_short: Around,
    /// Around the most bytes.
    password_too_long: Around,
    too_many_attempts: &'static str,
    busy: &'static str,
    /// The second-factor page's title.
    factor_title: &'static str,
    factor_lead_totp: &'static str,
    factor_lead_passkey: &'static str,
    verify: &'static str,
    use_passkey: &'static str,
    wrong_code: &'static str,
    /// The security page's title, and the connections page's link to it.
    security_title: &'static str,
    totp_heading: &'static str,
    totp_off: &'static str,
    totp_start: &'static str,
    totp_scan: &'static str,
    /// Labels the secret written out.
    totp_key: &'static str,
    totp_confirm: &'static str,
    totp_on: &'static str,
    totp_remove: &'static str,
    recovery_heading: &'static str,
    recovery_intro: &'static str,
    /// Around the number of unused recovery codes.
    recovery_left: Around,
    recovery_regenerate: &'static str,
    passkeys_heading: &'static str,
    no_passkeys: &'static str,
    /// Followed by the date a passkey was added.
    added: &'static str,
    remove: &'static str,
    passkey_start: &'static str,
    passkey_name: &'static str,
    passkey_save: &'static str,
    /// What the security page reports after each change: the authenticator app set up,
    /// removed, a passkey added, removed, new recovery codes.
    notices: [&'static str; 5],
    logout_title: &'static str,
    logout_question: &'static str,
    /// The logout page's lead line, around the name of the application that asked.
    logout_asked: Around,
    logout_stay: &'static str,
    logout_done_title: &'static str,
    logout_done: &'static str,
    /// What each of [`SCOPES`] lets the client do, in the same order.
    scopes: [&'static str; SCOPES.len()],
}

/// The scopes described to a person; any other is shown by its name.
const SCOPES: [&str; 5] = ["openid", "profile", "email", "offline_access", "api"];

/// The languages rendered, most preferred first; the first is the fallback.
static LANGUAGES: [&Texts; 5] = [&EN, &RU, &NL, &DE, &IT];

static EN: Texts = Texts {
    lang: "en",
    sign_in_title: "Sign in",
    sign_in_button: "Sign in",
    continue_to: ("to continue to ", ""),
    username: "Username",
    password: "Password",
    cancel: "Cancel",
    wrong_credentials: "The username or password is incorrect.",
    passkey_failed: "The passkey was not accepted. Try again.",
    passkey_sign_in: "Sign in with a passkey",
    allow_title: "Allow access?",
    wants_access: ("", " wants to access your account"),
    signed_in_as: "Signed in as",
    client: "Client",
    no_scopes: "It asks for no particular permission.",
    scopes_intro: "If you allow it, it will be able to:",
    allow: "Allow",
    deny: "Deny",
    error_heading: "Something went wrong",
    error_fallback: "The request could not be completed.",
    errors: [
        ("This request cannot be completed", "The application sent a request that is not valid. Go back to it and try again."),
        ("This application cannot sign you in", "The application is not known here, or may not ask for this. If it keeps happening, tell the application's makers."),
        ("Access was not given", "The request was refused. Nothing was shared with the application."),
        ("The application asked for more than it may have", "It asked for permissions it cannot be given. Go back to the application."),
        ("You need to sign in", "The application asked to go on without signing you in, which is not possible. Go back to it and sign in."),
        ("Something went wrong on our side", "The server could not complete the request. Try again later."),
        ("Please wait a moment", "There were too many attempts, or the server is busy. Wait a minute and try again."),
        ("This request has expired", "The request is out of date or was already used. Go back to the application and start again."),
        ("The application asked for something not offered here", "It asked to sign you in in a way this server does not support. Go back to the application."),
        ("Page not found", "There is nothing at this address."),
    ],
    error_details: "Details",
    error_code: "Error code",
    device_title: "Connect a device",
    device_lead: ("Enter the code shown on your device to connect it to ", "."),
    device_lead_unnamed: "Enter the code shown on your device to connect it.",
    code: "Code",
    continue_: "Continue",
    device_approved: ("Device connected", "The device is now connected. You can close this page and return to it."),
    device_denied: ("Device not connected", "You denied access. The device was not connected."),
    unknown_code: "That code is unknown, used or expired. Check the code on the device.",
    codes_throttled: "Too many codes tried. Wait a while and try again.",
    months: [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
        "December",
    ],
    date: "{d} {m} {y}",
    connections_title: "Connected applications",
    connections_intro: "These applications have access to your account.",
    no_connections: "No application has access to your account.",
    since: "Connected since",
    connection_can: "It can:",
    connection_no_scopes: "No particular permission.",
    revoke: "Revoke access",
    revoked: ("Access for ", " was revoked."),
    sign_out: "Sign out",
    password_title: "Change your password",
    current_password: "Current password",
    new_password: "New password",
    repeat_password: "Repeat the new password",
    change_password: "Change password",
    password_changed: "Your password was changed. Your other sessions were signed out.",
    wrong_current_password: "The current password is incorrect.",
    passwords_differ: "The new password and its repetition differ.",
    password_too_short: ("The new password must have at least ", " characters."),
    password_too_long: ("The new password must have at most ", " bytes."),
    too_many_attempts: "Too many attempts. Wait a minute and try again.",
    busy: "The server is busy. Try again in a moment.",
    factor_title: "Confirm it is you",
    factor_lead_totp: "Enter the six-digit code from your authenticator app, or one of your recovery codes.",
    factor_lead_passkey: "Use your passkey to confirm it is you.",
    verify: "Verify",
    use_passkey: "Use a passkey",
    wrong_code: "That code is not right. Try again.",
    security_title: "Two-step verification",
    totp_heading: "Authenticator app",
    totp_off: "No authenticator app is set up. With one, signing in also asks for a code from your phone.",
    totp_start: "Set up an authenticator app",
    totp_scan: "Scan this QR code with your authenticator app, or type the key into it. Then enter the six-digit code the app shows.",
    totp_key: "Key",
    totp_confirm: "Confirm",
    totp_on: "An authenticator app is set up: signing in asks for its code.",
    totp_remove: "Remove the authenticator app",
    recovery_heading: "Recovery codes",
    recovery_intro: "Your new recovery codes. Each signs you in once without your authenticator app. Keep them somewhere safe: they are shown only now.",
    recovery_left: ("Unused recovery codes: ", ""),
    recovery_regenerate: "Make new recovery codes",
    passkeys_heading: "Passkeys",
    no_passkeys: "No passkey was added.",
    added: "Added on",
    remove: "Remove",
    passkey_start: "Add a passkey",
    passkey_name: "Name of the passkey",
    passkey_save: "Create the passkey",
    notices: [
        "The authenticator app is set up.",
        "The authenticator app was removed.",
        "The passkey was added.",
        "The passkey was removed.",
        "New recovery codes were made. The old ones no longer work.",
    ],
    logout_title: "Sign out",
    logout_question: "Sign out?",
    logout_asked: ("", " asks you to sign out."),
    logout_stay: "Stay signed in",
    logout_done_title: "Signed out",
    logout_done: "You are signed out. You can close this page.",
    scopes: [
        "Confirm who you are",
        "See your basic profile: name, username and picture",
        "See your email address",
        "Keep access while you are not using it",
        "Use the API on your behalf",
    ],
};

static RU: Texts = Texts {
    lang: "ru",
    sign_in_title: "Вход",
    sign_in_button: "Войти",
    continue_to: ("чтобы перейти в приложение ", ""),
    username: "Имя пользователя",
    password: "Пароль",
    cancel: "Отмена",
    wrong_credentials: "Неверное имя пользователя или пароль.",
    passkey_failed: "Ключ доступа не принят. Попробуйте ещё раз.",
    passkey_sign_in: "Войти с ключом доступа",
    allow_title: "Разрешить доступ?",
    wants_access: ("Приложение ", " запрашивает доступ к вашему аккаунту"),
    signed_in_as: "Вы вошли как",
    client: "Клиент",
    no_scopes: "Приложение не запрашивает особых разрешений.",
    scopes_intro: "Если вы разрешите доступ, приложение сможет:",
    allow: "Разрешить",
    deny: "Отклонить",
    error_heading: "Что-то пошло не так",
    error_fallback: "Не удалось выполнить запрос.",
    errors: [
        ("Запрос не может быть выполнен", "Приложение отправило некорректный запрос. Вернитесь в него и попробуйте ещё раз."),
        ("Это приложение не может выполнить вход", "Приложение здесь неизвестно или не может запрашивать такое. Если это повторяется, сообщите его разработчикам."),
        ("Доступ не предоставлен", "Запрос отклонён. Приложение ничего не получило."),
        ("Приложение запросило больше, чем ему можно", "Оно запросило разрешения, которые ему не могут быть выданы. Вернитесь в приложение."),
        ("Нужно войти", "Приложение попросило продолжить без входа, а это невозможно. Вернитесь в него и войдите."),
        ("Ошибка на нашей стороне", "Сервер не смог выполнить запрос. Попробуйте позже."),
        ("Подождите немного", "Слишком много попыток, или сервер занят. Подождите минуту и попробуйте снова."),
        ("Срок действия запроса истёк", "Запрос устарел или уже был использован. Вернитесь в приложение и начните заново."),
        ("Приложение запросило то, чего здесь нет", "Оно попросило выполнить вход способом, который этот сервер не поддерживает. Вернитесь в приложение."),
        ("Страница не найдена", "По этому адресу ничего нет."),
    ],
    error_details: "Подробности",
    error_code: "Код ошибки",
    device_title: "Подключение устройства",
    device_lead: ("Введите код, показанный на устройстве, чтобы подключить его к приложению ", "."),
    device_lead_unnamed: "Введите код, показанный на устройстве, чтобы подключить его.",
    code: "Код",
    continue_: "Продолжить",
    device_approved: (
        "Устройство подключено",
        "Устройство подключено. Можете закрыть эту страницу и вернуться к нему.",
    ),
    device_denied: ("Устройство не подключено", "Вы отказали в доступе. Устройство не подключено."),
    unknown_code: "Этот код неизвестен, уже использован или истёк. Проверьте код на устройстве.",
    codes_throttled: "Введено слишком много кодов. Подождите немного и попробуйте снова.",
    months: [
        "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября",
        "декабря",
    ],
    date: "{d} {m} {y} г.",
    connections_title: "Подключённые приложения",
    connections_intro: "Эти приложения имеют доступ к вашему аккаунту.",
    no_connections: "Ни одно приложение не имеет доступа к вашему аккаунту.",
    since: "Подключено с",
    connection_can: "Приложение может:",
    connection_no_scopes: "Без особых разрешений.",
    revoke: "Отозвать доступ",
    revoked: ("Доступ приложения ", " отозван."),
    sign_out: "Выйти",
    password_title: "Смена пароля",
    current_password: "Текущий пароль",
    new_password: "Новый пароль",
    repeat_password: "Повторите новый пароль",
    change_password: "Сменить пароль",
    password_changed: "Пароль изменён. Другие ваши сеансы завершены.",
    wrong_current_password: "Текущий пароль неверен.",
    passwords_differ: "Новый пароль и его повтор не совпадают.",
    password_too_short: ("Новый пароль должен содержать не менее ", " символов."),
    password_too_long: ("Новый пароль должен занимать не более ", " байт."),
    too_many_attempts: "Слишком много попыток. Подождите минуту и попробуйте снова.",
    busy: "Сервер занят. Попробуйте чуть позже.",
    factor_title: "Подтвердите, что это вы",
    factor_lead_totp: "Введите шестизначный код из приложения-аутентификатора или один из резервных кодов.",
    factor_lead_passkey: "Подтвердите, что это вы, с помощью ключа доступа.",
    verify: "Подтвердить",
    use_passkey: "Использовать ключ доступа",
    wrong_code: "Код неверен. Попробуйте ещё раз.",
    security_title: "Двухэтапная проверка",
    totp_heading: "Приложение-аутентификатор",
    totp_off: "Приложение-аутентификатор не настроено. С ним при входе будет запрашиваться ещё и код с телефона.",
    totp_start: "Настроить приложение-аутентификатор",
    totp_scan: "Отсканируйте этот QR-код приложением-аутентификатором или введите в него ключ. Затем введите шестизначный код, который покажет приложение.",
    totp_key: "Ключ",
    totp_confirm: "Подтвердить",
    totp_on: "Приложение-аутентификатор настроено: при входе запрашивается его код.",
    totp_remove: "Удалить приложение-аутентификатор",
    recovery_heading: "Резервные коды",
    recovery_intro: "Ваши новые резервные коды. Каждый позволяет войти один раз без приложения-аутентификатора. Сохраните их в надёжном месте: они показываются только сейчас.",
    recovery_left: ("Неиспользованных резервных кодов: ", ""),
    recovery_regenerate: "Создать новые резервные коды",
    passkeys_heading: "Ключи доступа",
    no_passkeys: "Ключи доступа не добавлены.",
    added: "Добавлен",
    remove: "Удалить",
    passkey_start: "Добавить ключ доступа",
    passkey_name: "Название ключа доступа",
    passkey_save: "Создать ключ доступа",
    notices: [
        "Приложение-аутентификатор настроено.",
        "Приложение-аутентификатор удалено.",
        "Ключ доступа добавлен.",
        "Ключ доступа удалён.",
        "Созданы новые резервные коды. Старые больше не действуют.",
    ],
    logout_title: "Выход",
    logout_question: "Выйти?",
    logout_asked: ("Приложение ", " просит вас выйти."),
    logout_stay: "Остаться в системе",
    logout_done_title: "Вы вышли",
    logout_done: "Вы вышли из системы. Эту страницу можно закрыть.",
    scopes: [
        "Подтверждать вашу личность",
        "Видеть основные данные профиля: имя, имя пользователя и фото",
        "Видеть ваш адрес электронной почты",
        "Сохранять доступ, даже когда вы не пользуетесь приложением",
        "Использовать API от вашего имени",
    ],
};

static NL: Texts = Texts {
    lang: "nl",
    sign_in_title: "Inloggen",
    sign_in_button: "Inloggen",
    continue_to: ("om door te gaan naar ", ""),
    username: "Gebruikersnaam",
    password: "Wachtwoord",
    cancel: "Annuleren",
    wrong_credentials: "De gebruikersnaam of het wachtwoord is onjuist.",
    passkey_failed: "De toegangssleutel is niet geaccepteerd. Probeer het opnieuw.",
    passkey_sign_in: "Inloggen met een toegangssleutel",
    allow_title: "Toegang toestaan?",
    wants_access: ("", " wil toegang tot je account"),
    signed_in_as: "Ingelogd als",
    client: "Client",
    no_scopes: "Er wordt niet om een specifieke toestemming gevraagd.",
    scopes_intro: "Als je toestemming geeft, kan deze applicatie:",
    allow: "Toestaan",
    deny: "Weigeren",
    error_heading: "Er is iets misgegaan",
    error_fallback: "Het verzoek kon niet worden voltooid.",
    errors: [
        ("Dit verzoek kan niet worden voltooid", "De applicatie stuurde een ongeldig verzoek. Ga terug naar de applicatie en probeer het opnieuw."),
        ("Deze applicatie kan je niet laten inloggen", "De applicatie is hier niet bekend, of mag hier niet om vragen. Gebeurt het vaker, laat het de makers van de applicatie weten."),
        ("Er is geen toegang gegeven", "Het verzoek is geweigerd. Er is niets gedeeld met de applicatie."),
        ("De applicatie vroeg om meer dan ze mag hebben", "Ze vroeg om toestemmingen die ze niet kan krijgen. Ga terug naar de applicatie."),
        ("Je moet inloggen", "De applicatie vroeg om verder te gaan zonder dat je inlogt, en dat kan niet. Ga terug naar de applicatie en log in."),
        ("Er is bij ons iets misgegaan", "De server kon het verzoek niet voltooien. Probeer het later opnieuw."),
        ("Even geduld", "Er waren te veel pogingen, of de server is bezet. Wacht een minuut en probeer het opnieuw."),
        ("Dit verzoek is verlopen", "Het verzoek is verouderd of al gebruikt. Ga terug naar de applicatie en begin opnieuw."),
        ("De applicatie vroeg om iets wat hier niet kan", "Ze vroeg je te laten inloggen op een manier die deze server niet ondersteunt. Ga terug naar de applicatie."),
        ("Pagina niet gevonden", "Op dit adres staat niets."),
    ],
    error_details: "Details",
    error_code: "Foutcode",
    device_title: "Een apparaat koppelen",
    device_lead: ("Voer de code in die op je apparaat wordt getoond om het te koppelen aan ", "."),
    device_lead_unnamed: "Voer de code in die op je apparaat wordt getoond om het te koppelen.",
    code: "Code",
    continue_: "Doorgaan",
    device_approved: (
        "Apparaat gekoppeld",
        "Het apparaat is nu gekoppeld. Je kunt deze pagina sluiten en teruggaan naar het apparaat.",
    ),
    device_denied: ("Apparaat niet gekoppeld", "Je hebt de toegang geweigerd. Het apparaat is niet gekoppeld."),
    unknown_code: "Die code is onbekend, al gebruikt of verlopen. Controleer de code op het apparaat.",
    codes_throttled: "Te veel codes geprobeerd. Wacht even en probeer het opnieuw.",
    months: [
        "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november",
        "december",
    ],
    date: "{d} {m} {y}",
    connections_title: "Gekoppelde applicaties",
    connections_intro: "Deze applicaties hebben toegang tot je account.",
    no_connections: "Geen enkele applicatie heeft toegang tot je account.",
    since: "Gekoppeld sinds",
    connection_can: "Deze applicatie kan:",
    connection_no_scopes: "Geen specifieke toestemming.",
    revoke: "Toegang intrekken",
    revoked: ("De toegang van ", " is ingetrokken."),
    sign_out: "Uitloggen",
    password_title: "Je wachtwoord wijzigen",
    current_password: "Huidig wachtwoord",
    new_password: "Nieuw wachtwoord",
    repeat_password: "Herhaal het nieuwe wachtwoord",
    change_password: "Wachtwoord wijzigen",
    password_changed: "Je wachtwoord is gewijzigd. Je andere sessies zijn afgemeld.",
    wrong_current_password: "Het huidige wachtwoord is onjuist.",
    passwords_differ: "Het nieuwe wachtwoord en de herhaling verschillen.",
    password_too_short: ("Het nieuwe wachtwoord moet minstens ", " tekens hebben."),
    password_too_long: ("Het nieuwe wachtwoord mag hoogstens ", " bytes hebben."),
    too_many_attempts: "Te veel pogingen. Wacht een minuut en probeer het opnieuw.",
    busy: "De server is bezet. Probeer het zo opnieuw.",
    factor_title: "Bevestig dat jij het bent",
    factor_lead_totp: "Voer de zescijferige code uit je authenticator-app in, of een van je herstelcodes.",
    factor_lead_passkey: "Bevestig met je toegangssleutel dat jij het bent.",
    verify: "Bevestigen",
    use_passkey: "Een toegangssleutel gebruiken",
    wrong_code: "Die code klopt niet. Probeer het opnieuw.",
    security_title: "Verificatie in twee stappen",
    totp_heading: "Authenticator-app",
    totp_off: "Er is geen authenticator-app ingesteld. Met een app vraagt inloggen ook om een code van je telefoon.",
    totp_start: "Een authenticator-app instellen",
    totp_scan: "Scan deze QR-code met je authenticator-app, of typ de sleutel erin. Voer daarna de zescijferige code in die de app toont.",
    totp_key: "Sleutel",
    totp_confirm: "Bevestigen",
    totp_on: "Er is een authenticator-app ingesteld: inloggen vraagt om de code ervan.",
    totp_remove: "De authenticator-app verwijderen",
    recovery_heading: "Herstelcodes",
    recovery_intro: "Je nieuwe herstelcodes. Met elke code log je één keer in zonder je authenticator-app. Bewaar ze op een veilige plek: ze worden alleen nu getoond.",
    recovery_left: ("Ongebruikte herstelcodes: ", ""),
    recovery_regenerate: "Nieuwe herstelcodes maken",
    passkeys_heading: "Toegangssleutels",
    no_passkeys: "Er is geen toegangssleutel toegevoegd.",
    added: "Toegevoegd op",
    remove: "Verwijderen",
    passkey_start: "Een toegangssleutel toevoegen",
    passkey_name: "Naam van de toegangssleutel",
    passkey_save: "De toegangssleutel maken",
    notices: [
        "De authenticator-app is ingesteld.",
        "De authenticator-app is verwijderd.",
        "De toegangssleutel is toegevoegd.",
        "De toegangssleutel is verwijderd.",
        "Er zijn nieuwe herstelcodes gemaakt. De oude werken niet meer.",
    ],
    logout_title: "Uitloggen",
    logout_question: "Uitloggen?",
    logout_asked: ("", " vraagt je om uit te loggen."),
    logout_stay: "Ingelogd blijven",
    logout_done_title: "Uitgelogd",
    logout_done: "Je bent uitgelogd. Je kunt deze pagina sluiten.",
    scopes: [
        "Bevestigen wie je bent",
        "Je basisprofiel zien: naam, gebruikersnaam en foto",
        "Je e-mailadres zien",
        "Toegang behouden terwijl je de applicatie niet gebruikt",
        "De API namens jou gebruiken",
    ],
};

static DE: Texts = Texts {
    lang: "de",
    sign_in_title: "Anmelden",
    sign_in_button: "Anmelden",
    continue_to: ("um mit ", " fortzufahren"),
    username: "Benutzername",
    password: "Passwort",
    cancel: "Abbrechen",
    wrong_credentials: "Der Benutzername oder das Passwort ist falsch.",
    passkey_failed: "Der Passkey wurde nicht akzeptiert. Versuchen Sie es erneut.",
    passkey_sign_in: "Mit einem Passkey anmelden",
    allow_title: "Zugriff erlauben?",
    wants_access: ("", " möchte auf Ihr Konto zugreifen"),
    signed_in_as: "Angemeldet als",
    client: "Client",
    no_scopes: "Es werden keine besonderen Berechtigungen angefordert.",
    scopes_intro: "Wenn Sie zustimmen, kann die Anwendung:",
    allow: "Erlauben",
    deny: "Ablehnen",
    error_heading: "Etwas ist schiefgelaufen",
    error_fallback: "Die Anfrage konnte nicht abgeschlossen werden.",
    errors: [
        ("Diese Anfrage kann nicht ausgeführt werden", "Die Anwendung hat eine ungültige Anfrage gesendet. Kehren Sie zu ihr zurück und versuchen Sie es erneut."),
        ("Diese Anwendung kann Sie nicht anmelden", "Die Anwendung ist hier nicht bekannt oder darf dies nicht anfragen. Wenn es wieder passiert, wenden Sie sich an ihre Hersteller."),
        ("Der Zugriff wurde nicht gewährt", "Die Anfrage wurde abgelehnt. Mit der Anwendung wurde nichts geteilt."),
        ("Die Anwendung hat mehr angefragt, als sie haben darf", "Sie hat Berechtigungen angefragt, die ihr nicht gewährt werden können. Kehren Sie zur Anwendung zurück."),
        ("Sie müssen sich anmelden", "Die Anwendung wollte ohne Ihre Anmeldung fortfahren, was nicht möglich ist. Kehren Sie zu ihr zurück und melden Sie sich an."),
        ("Bei uns ist etwas schiefgelaufen", "Der Server konnte die Anfrage nicht ausführen. Versuchen Sie es später erneut."),
        ("Bitte warten Sie einen Moment", "Es gab zu viele Versuche, oder der Server ist ausgelastet. Warten Sie eine Minute und versuchen Sie es erneut."),
        ("Diese Anfrage ist abgelaufen", "Die Anfrage ist veraltet oder wurde schon verwendet. Kehren Sie zur Anwendung zurück und beginnen Sie von vorn."),
        ("Die Anwendung hat etwas angefragt, das es hier nicht gibt", "Sie wollte Sie auf eine Weise anmelden, die dieser Server nicht unterstützt. Kehren Sie zur Anwendung zurück."),
        ("Seite nicht gefunden", "Unter dieser Adresse gibt es nichts."),
    ],
    error_details: "Details",
    error_code: "Fehlercode",
    device_title: "Gerät verbinden",
    device_lead: ("Geben Sie den auf Ihrem Gerät angezeigten Code ein, um es mit ", " zu verbinden."),
    device_lead_unnamed: "Geben Sie den auf Ihrem Gerät angezeigten Code ein, um es zu verbinden.",
    code: "Code",
    continue_: "Weiter",
    device_approved: (
        "Gerät verbunden",
        "Das Gerät ist jetzt verbunden. Sie können diese Seite schließen und zum Gerät zurückkehren.",
    ),
    device_denied: ("Gerät nicht verbunden", "Sie haben den Zugriff abgelehnt. Das Gerät wurde nicht verbunden."),
    unknown_code: "Dieser Code ist unbekannt, schon verwendet oder abgelaufen. Prüfen Sie den Code auf dem Gerät.",
    codes_throttled: "Zu viele Codes versucht. Warten Sie eine Weile und versuchen Sie es erneut.",
    months: [
        "Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November",
        "Dezember",
    ],
    date: "{d}. {m} {y}",
    connections_title: "Verbundene Anwendungen",
    connections_intro: "Diese Anwendungen haben Zugriff auf Ihr Konto.",
    no_connections: "Keine Anwendung hat Zugriff auf Ihr Konto.",
    since: "Verbunden seit",
    connection_can: "Die Anwendung kann:",
    connection_no_scopes: "Keine besonderen Berechtigungen.",
    revoke: "Zugriff entziehen",
    revoked: ("Der Zugriff für ", " wurde entzogen."),
    sign_out: "Abmelden",
    password_title: "Passwort ändern",
    current_password: "Aktuelles Passwort",
    new_password: "Neues Passwort",
    repeat_password: "Neues Passwort wiederholen",
    change_password: "Passwort ändern",
    password_changed: "Ihr Passwort wurde geändert. Ihre anderen Sitzungen wurden abgemeldet.",
    wrong_current_password: "Das aktuelle Passwort ist falsch.",
    passwords_differ: "Das neue Passwort und seine Wiederholung stimmen nicht überein.",
    password_too_short: ("Das neue Passwort muss mindestens ", " Zeichen haben."),
    password_too_long: ("Das neue Passwort darf höchstens ", " Bytes haben."),
    too_many_attempts: "Zu viele Versuche. Warten Sie eine Minute und versuchen Sie es erneut.",
    busy: "Der Server ist ausgelastet. Versuchen Sie es gleich noch einmal.",
    factor_title: "Bestätigen Sie, dass Sie es sind",
    factor_lead_totp: "Geben Sie den sechsstelligen Code aus Ihrer Authenticator-App oder einen Ihrer Wiederherstellungscodes ein.",
    factor_lead_passkey: "Bestätigen Sie mit Ihrem Passkey, dass Sie es sind.",
    verify: "Bestätigen",
    use_passkey: "Einen Passkey verwenden",
    wrong_code: "Dieser Code stimmt nicht. Versuchen Sie es erneut.",
    security_title: "Bestätigung in zwei Schritten",
    totp_heading: "Authenticator-App",
    totp_off: "Es ist keine Authenticator-App eingerichtet. Mit einer fragt die Anmeldung zusätzlich nach einem Code von Ihrem Telefon.",
    totp_start: "Eine Authenticator-App einrichten",
    totp_scan: "Scannen Sie diesen QR-Code mit Ihrer Authenticator-App oder tippen Sie den Schlüssel ein. Geben Sie dann den sechsstelligen Code ein, den die App zeigt.",
    totp_key: "Schlüssel",
    totp_confirm: "Bestätigen",
    totp_on: "Eine Authenticator-App ist eingerichtet: Die Anmeldung fragt nach ihrem Code.",
    totp_remove: "Die Authenticator-App entfernen",
    recovery_heading: "Wiederherstellungscodes",
    recovery_intro: "Ihre neuen Wiederherstellungscodes. Jeder meldet Sie einmal ohne Ihre Authenticator-App an. Bewahren Sie sie sicher auf: Sie werden nur jetzt angezeigt.",
    recovery_left: ("Unbenutzte Wiederherstellungscodes: ", ""),
    recovery_regenerate: "Neue Wiederherstellungscodes erstellen",
    passkeys_heading: "Passkeys",
    no_passkeys: "Es wurde kein Passkey hinzugefügt.",
    added: "Hinzugefügt am",
    remove: "Entfernen",
    passkey_start: "Einen Passkey hinzufügen",
    passkey_name: "Name des Passkeys",
    passkey_save: "Den Passkey erstellen",
    notices: [
        "Die Authenticator-App ist eingerichtet.",
        "Die Authenticator-App wurde entfernt.",
        "Der Passkey wurde hinzugefügt.",
        "Der Passkey wurde entfernt.",
        "Neue Wiederherstellungscodes wurden erstellt. Die alten gelten nicht mehr.",
    ],
    logout_title: "Abmelden",
    logout_question: "Abmelden?",
    logout_asked: ("", " bittet Sie, sich abzumelden."),
    logout_stay: "Angemeldet bleiben",
    logout_done_title: "Abgemeldet",
    logout_done: "Sie sind abgemeldet. Sie können diese Seite schließen.",
    scopes: [
        "Ihre Identität bestätigen",
        "Ihr Basisprofil sehen: Name, Benutzername und Bild",
        "Ihre E-Mail-Adresse sehen",
        "Zugriff behalten, auch wenn Sie die Anwendung nicht verwenden",
        "Die API in Ihrem Namen verwenden",
    ],
};

static IT: Texts = Texts {
    lang: "it",
    sign_in_title: "Accedi",
    sign_in_button: "Accedi",
    continue_to: ("per continuare su ", ""),
    username: "Nome utente",
    password: "Password",
    cancel: "Annulla",
    wrong_credentials: "Il nome utente o la password non sono corretti.",
    passkey_failed: "La passkey non è stata accettata. Riprova.",
    passkey_sign_in: "Accedi con una passkey",
    allow_title: "Consentire l'accesso?",
    wants_access: ("", " vuole accedere al tuo account"),
    signed_in_as: "Accesso effettuato come",
    client: "Client",
    no_scopes: "Non richiede autorizzazioni particolari.",
    scopes_intro: "Se lo consenti, l'applicazione potrà:",
    allow: "Consenti",
    deny: "Nega",
    error_heading: "Qualcosa è andato storto",
    error_fallback: "Impossibile completare la richiesta.",
    errors: [
        ("Impossibile completare questa richiesta", "L'applicazione ha inviato una richiesta non valida. Torna all'applicazione e riprova."),
        ("Questa applicazione non può farti accedere", "L'applicazione non è conosciuta qui, oppure non può chiedere questo. Se succede ancora, avvisa chi l'ha realizzata."),
        ("L'accesso non è stato concesso", "La richiesta è stata rifiutata. Nulla è stato condiviso con l'applicazione."),
        ("L'applicazione ha chiesto più di quanto possa avere", "Ha chiesto autorizzazioni che non le possono essere concesse. Torna all'applicazione."),
        ("Devi accedere", "L'applicazione ha chiesto di proseguire senza farti accedere, e non è possibile. Torna all'applicazione e accedi."),
        ("Qualcosa è andato storto da parte nostra", "Il server non è riuscito a completare la richiesta. Riprova più tardi."),
        ("Attendi un momento", "Ci sono stati troppi tentativi, oppure il server è occupato. Attendi un minuto e riprova."),
        ("Questa richiesta è scaduta", "La richiesta non è più valida o è già stata usata. Torna all'applicazione e ricomincia."),
        ("L'applicazione ha chiesto qualcosa che qui non è offerto", "Ha chiesto di farti accedere in un modo che questo server non supporta. Torna all'applicazione."),
        ("Pagina non trovata", "A questo indirizzo non c'è nulla."),
    ],
    error_details: "Dettagli",
    error_code: "Codice di errore",
    device_title: "Collega un dispositivo",
    device_lead: ("Inserisci il codice mostrato sul dispositivo per collegarlo a ", "."),
    device_lead_unnamed: "Inserisci il codice mostrato sul dispositivo per collegarlo.",
    code: "Codice",
    continue_: "Continua",
    device_approved: (
        "Dispositivo collegato",
        "Il dispositivo è ora collegato. Puoi chiudere questa pagina e tornare al dispositivo.",
    ),
    device_denied: ("Dispositivo non collegato", "Hai negato l'accesso. Il dispositivo non è stato collegato."),
    unknown_code: "Questo codice è sconosciuto, già usato o scaduto. Controlla il codice sul dispositivo.",
    codes_throttled: "Troppi codici provati. Attendi un po' e riprova.",
    months: [
        "gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre",
        "novembre", "dicembre",
    ],
    date: "{d} {m} {y}",
    connections_title: "Applicazioni collegate",
    connections_intro: "Queste applicazioni hanno accesso al tuo account.",
    no_connections: "Nessuna applicazione ha accesso al tuo account.",
    since: "Collegata dal",
    connection_can: "L'applicazione può:",
    connection_no_scopes: "Nessuna autorizzazione particolare.",
    revoke: "Revoca l'accesso",
    revoked: ("L'accesso di ", " è stato revocato."),
    sign_out: "Esci",
    password_title: "Cambia la password",
    current_password: "Password attuale",
    new_password: "Nuova password",
    repeat_password: "Ripeti la nuova password",
    change_password: "Cambia password",
    password_changed: "La password è stata cambiata. Le tue altre sessioni sono state chiuse.",
    wrong_current_password: "La password attuale non è corretta.",
    passwords_differ: "La nuova password e la sua ripetizione non coincidono.",
    password_too_short: ("La nuova password deve avere almeno ", " caratteri."),
    password_too_long: ("La nuova password può avere al massimo ", " byte."),
    too_many_attempts: "Troppi tentativi. Attendi un minuto e riprova.",
    busy: "Il server è occupato. Riprova tra un momento.",
    factor_title: "Conferma che sei tu",
    factor_lead_totp: "Inserisci il codice di sei cifre dell'app di autenticazione, oppure uno dei tuoi codici di recupero.",
    factor_lead_passkey: "Usa la tua passkey per confermare che sei tu.",
    verify: "Verifica",
    use_passkey: "Usa una passkey",
    wrong_code: "Il codice non è corretto. Riprova.",
    security_title: "Verifica in due passaggi",
    totp_heading: "App di autenticazione",
    totp_off: "Nessuna app di autenticazione è configurata. Con un'app, l'accesso chiede anche un codice dal telefono.",
    totp_start: "Configura un'app di autenticazione",
    totp_scan: "Scansiona questo codice QR con l'app di autenticazione, oppure digita la chiave. Poi inserisci il codice di sei cifre che l'app mostra.",
    totp_key: "Chiave",
    totp_confirm: "Conferma",
    totp_on: "Un'app di autenticazione è configurata: l'accesso chiede il suo codice.",
    totp_remove: "Rimuovi l'app di autenticazione",
    recovery_heading: "Codici di recupero",
    recovery_intro: "I tuoi nuovi codici di recupero. Ognuno ti fa accedere una volta senza l'app di autenticazione. Conservali in un posto sicuro: sono mostrati solo ora.",
    recovery_left: ("Codici di recupero non usati: ", ""),
    recovery_regenerate: "Crea nuovi codici di recupero",
    passkeys_heading: "Passkey",
    no_passkeys: "Non è stata aggiunta nessuna passkey.",
    added: "Aggiunta il",
    remove: "Rimuovi",
    passkey_start: "Aggiungi una passkey",
    passkey_name: "Nome della passkey",
    passkey_save: "Crea la passkey",
    notices: [
        "L'app di autenticazione è configurata.",
        "L'app di autenticazione è stata rimossa.",
        "La passkey è stata aggiunta.",
        "La passkey è stata rimossa.",
        "Sono stati creati nuovi codici di recupero. Quelli vecchi non valgono più.",
    ],
    logout_title: "Esci",
    logout_question: "Vuoi uscire?",
    logout_asked: ("", " ti chiede di uscire."),
    logout_stay: "Resta connesso",
    logout_done_title: "Sei uscito",
    logout_done: "Sei uscito. Puoi chiudere questa pagina.",
    scopes: [
        "Confermare la tua identità",
        "Vedere il tuo profilo di base: nome, nome utente e immagine",
        "Vedere il tuo indirizzo email",
        "Mantenere l'accesso anche quando non usi l'applicazione",
        "Usare l'API per tuo conto",
    ],
};

/// The words for `locale`, matched by its primary subtag (`ru-RU` → `ru`); English when
/// the language is not one of [`LANGUAGES`].
fn texts(locale: &str) -> &'static Texts {
    let primary = locale.split(['-', '_']).next().unwrap_or_default();
    LANGUAGES.iter().copied().find(|t| t.lang.eq_ignore_ascii_case(primary)).unwrap_or(LANGUAGES[0])
}

/// What a well-known scope lets the client do, worded for a person.
fn describe(t: &Texts, scope: &str) -> Option<&'static str> {
    SCOPES.iter().position(|s| *s == scope).map(|i| t.scopes[i])
}

/// The name a page shows first (the application's, else the client's), and the client's
/// name as well when it differs from it.
fn names<'a>(client: &'a str, app: Option<&'a Application>) -> (&'a str, Option<&'a str>) {
    match app.filter(|a| !a.name.is_empty()) {
        Some(a) => (&a.name, (!client.is_empty() && client != a.name).then_some(client)),
        None => (client, None),
    }
}

/// The application's icon when it is safe to load: an `https:` URL or a `data:image/` URI.
fn icon(app: Option<&Application>) -> Option<&str> {
    let icon = app?.icon.as_deref()?;
    let starts = |prefix: &str| icon.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix));
    (starts("https://") || starts("data:image/")).then_some(icon)
}

/// Unix seconds (UTC) as an ISO 8601 date, `YYYY-MM-DD`.
fn iso_date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix seconds (UTC) as a date in the language's own form (`4 December 2026`,
/// `4 декабря 2026 г.`).
fn local_date(t: &Texts, unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let month = t.months[(m as usize).saturating_sub(1) % 12];
    t.date.replace("{d}", &d.to_string()).replace("{m}", month).replace("{y}", &y.to_string())
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The colours every layout uses, light and dark, as custom properties: the start of each
/// page's style sheet. `--line` draws separators; `--field` the borders of inputs, which
/// have at least 3:1 contrast against `--card` and `--bg` (WCAG 1.4.11).
pub const PALETTE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f4f5f7;--card:#fff;--muted:#5b6470;--line:#d0d5dc;--field:#6e7781;--accent:#0b57d0;--accent-fg:#fff;--err:#b3261e}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#15171a;--card:#1f2226;--muted:#a3acb8;--line:#3a3f46;--field:#7d8590;--accent:#8ab4f8;--accent-fg:#0b1d3a;--err:#f2b8b5}}";

/// Rules every layout shares, after the palette: inputs' borders, the folded details of
/// an error, the QR code (dark on white in either mode, so that a camera reads it), the
/// recovery codes and the security page's sections.
pub const SHARED: &str = "\
input{border-color:var(--field)}\
details{margin-top:1rem}summary{cursor:pointer;color:var(--muted)}\
.qr{display:inline-block;margin:.5rem 0;padding:.5rem;background:#fff;line-height:0}.qr svg{display:block;width:12rem;height:12rem}\
.secret{overflow-wrap:anywhere}\
.recovery-codes{display:grid;grid-template-columns:repeat(2,max-content);gap:.25rem 1.5rem;padding-left:1.25rem;font-family:ui-monospace,monospace}\
section{margin-top:1.5rem;border-top:1px solid var(--line)}section h2{font-size:1.1rem;margin:1rem 0 .25rem}\
.passkeys{list-style:none;margin:0;padding:0}.passkey h3{font-size:1rem;margin:.75rem 0 0}.passkey p{margin:.1rem 0}";

/// A page under construction.
struct Html {
    out: String,
    look: &'static Look,
}

impl Html {
    fn start(look: &'static Look, locale: &str, title: &str, name: Option<&str>) -> Self {
        let mut h = Html { out: String::with_capacity(4096), look };
        h.raw("<!DOCTYPE html>\n<html lang=\"");
        h.text(if locale.is_empty() { "en" } else { locale });
        h.raw("\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"robots\" content=\"noindex\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<title>");
        h.text(title);
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            h.raw(" · ");
            h.text(name);
        }
        h.raw("</title>\n<style>");
        h.raw(PALETTE);
        h.raw(SHARED);
        h.raw(look.style);
        h.raw("</style>\n</head>\n<body");
        if let Some(class) = look.body_class {
            h.raw(" class=\"");
            h.text(class);
            h.raw("\"");
        }
        h.raw(">\n<main>\n");
        h
    }

    /// An account page's start: its title as the heading, and whom the person is signed in as.
    fn account_page(look: &'static Look, locale: &str, title: &str, signed_in_as: &str, user_name: &str) -> Self {
        let mut h = Html::start(look, locale, title, None);
        h.raw("<h1>");
        h.text(title);
        h.raw("</h1>\n<p class=\"lead\">");
        h.text(signed_in_as);
        h.raw(" <strong>");
        h.text(user_name);
        h.raw("</strong></p>\n");
        h
    }

    /// `<form method="post" action="...">` and its hidden inputs.
    fn form_start(&mut self, cx: &PageContext) {
        self.raw("<form method=\"post\" action=\"");
        self.text(&cx.action);
        self.raw("\">\n");
        self.hidden(cx);
    }

    /// The context's hidden inputs.
    fn hidden(&mut self, cx: &PageContext) {
        for (name, value) in &cx.hidden {
            self.raw("<input type=\"hidden\" name=\"");
            self.text(name);
            self.raw("\" value=\"");
            self.text(value);
            self.raw("\">\n");
        }
    }

    /// `<form ...>` posting to `action`, with the context's hidden inputs, its element id
    /// `id`.
    fn form_to(&mut self, action: &str, cx: &PageContext, id: &str) {
        self.raw("<form method=\"post\" id=\"");
        self.raw(id);
        self.raw("\" action=\"");
        self.text(action);
        self.raw("\">\n");
        self.hidden(cx);
    }

    /// The page's form, carrying a passkey ceremony's options when there is one, for the
    /// host's script, and the hidden input it fills.
    fn form_with(&mut self, cx: &PageContext, passkey: Option<&PasskeyCeremony>) {
        let Some(passkey) = passkey else { return self.form_start(cx) };
        self.raw("<form method=\"post\" action=\"");
        self.text(&cx.action);
        self.raw("\" data-passkey-options=\"");
        self.text(&passkey.options);
        self.raw("\">\n");
        self.hidden(cx);
        self.raw("<input type=\"hidden\" name=\"passkey-response\" value=\"\">\n");
    }

    /// The button that starts a passkey ceremony (the host's script answers it).
    fn passkey_button(&mut self, passkey: Option<&PasskeyCeremony>, label: &str) {
        if passkey.is_some() {
            self.raw("<div class=\"actions\"><button type=\"button\" data-passkey>");
            self.text(label);
            self.raw("</button></div>\n");
        }
    }

    /// The host's script that runs a passkey ceremony.
    fn passkey_script(&mut self, passkey: Option<&PasskeyCeremony>) {
        if let Some(passkey) = passkey {
            self.raw("<script src=\"");
            self.text(&passkey.script);
            self.raw("\" defer></script>\n");
        }
    }

    /// A form of the security page with one button, `op` = `op`.
    fn op_form(&mut self, cx: &PageContext, op: &str, label: &str, primary: bool) {
        self.form_start(cx);
        self.raw("<div class=\"actions\"><button type=\"submit\" name=\"op\" value=\"");
        self.raw(op);
        self.raw(if primary { "\" class=\"primary\">" } else { "\">" });
        self.text(label);
        self.raw("</button></div>\n</form>\n");
    }

    /// The button that cancels the request: it skips the form's checks.
    fn cancel(&mut self, t: &Texts) {
        self.raw("<button type=\"submit\" name=\"decision\" value=\"cancel\" formnovalidate>");
        self.text(t.cancel);
        self.raw("</button>");
    }

    /// An error the page reports, with the id the inputs it concerns point to.
    fn alert(&mut self, id: &str, text: &str) {
        self.raw("<p class=\"error\" role=\"alert\" id=\"");
        self.raw(id);
        self.raw("\">");
        self.text(text);
        self.raw("</p>\n");
    }

    /// A date, in the language's form, with its ISO 8601 form for machines.
    fn date(&mut self, t: &Texts, unix: i64) {
        self.raw("<time datetime=\"");
        self.raw(&iso_date(unix));
        self.raw("\">");
        self.text(&local_date(t, unix));
        self.raw("</time>");
    }

    /// `before` + the name in bold (with the client's name after it when given) + `after`.
    fn around(&mut self, (before, after): Around, name: &str, client: Option<&str>) {
        self.text(before);
        self.raw("<strong>");
        self.text(name);
        self.raw("</strong>");
        if let Some(client) = client {
            self.raw(" <span class=\"muted\">(");
            self.text(client);
            self.raw(")</span>");
        }
        self.text(after);
    }

    /// A decorative icon (the name next to it says what it is); `src` is already checked.
    fn icon(&mut self, src: &str) {
        self.raw("<img src=\"");
        self.text(src);
        self.raw("\" alt=\"\" width=\"48\" height=\"48\">\n");
    }

    /// One `<li>` per scope: its description and name, or its name alone.
    fn scopes(&mut self, t: &Texts, scopes: &[String]) {
        for scope in scopes {
            self.raw("<li>");
            match describe(t, scope) {
                Some(description) => {
                    self.text(description);
                    self.raw(" <span class=\"scope\">(");
                    self.text(scope);
                    self.raw(")</span>");
                }
                None => {
                    self.raw("<span class=\"scope\">");
                    self.text(scope);
                    self.raw("</span>");
                }
            }
            self.raw("</li>\n");
        }
    }

    fn finish(mut self, issuer: Option<&str>) -> String {
        self.raw("</main>\n");
        if let Some(issuer) = issuer.filter(|i| self.look.footer && !i.is_empty()) {
            self.raw("<footer>");
            self.text(issuer);
            self.raw("</footer>\n");
        }
        self.raw("</body>\n</html>\n");
        self.out
    }

    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// Appends `s` escaped for HTML text and double-quoted attribute values.
    fn text(&mut self, s: &str) {
        escape_into(&mut self.out, s);
    }
}

fn escape_into(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::consent::{Connection, PasskeyView, TotpEnrolment};

    /// A layout with every part: a footer, and a body that names it.
    struct Framed;

    impl Layout for Framed {
        const LOOK: &'static Look = &Look { style: "main{margin:0}", body_class: Some("fr<amed"), footer: true };
    }

    /// A layout with none.
    struct Bare;

    impl Layout for Bare {
        const LOOK: &'static Look = &Look { style: "", body_class: None, footer: false };
    }

    type Ui = Pages<Framed>;

    fn cx() -> PageContext {
        PageContext {
            locale: "en".into(),
            issuer: "https://id.example".into(),
            client_name: "<Evil & \"Co\">".into(),
            action: "/login?x=1&y=2".into(),
            hidden: vec![("interaction".into(), "a\"b".into())],
            application: None,
        }
    }

    fn in_locale(locale: &str) -> PageContext {
        PageContext { locale: locale.into(), ..cx() }
    }

    fn app(icon: Option<&str>) -> Application {
        Application {
            name: "Ledger <Pro>".into(),
            description: "Books & \"receipts\"".into(),
            icon: icon.map(Into::into),
        }
    }

    fn login(cx: PageContext) -> String {
        Ui::render_login(LoginPage { context: cx, login_hint: None, error: None, passkey: None }).unwrap()
    }

    fn consent(cx: PageContext) -> String {
        Ui::render_consent(ConsentPage {
            context: cx,
            user_name: "alice".into(),
            scopes: vec!["openid".into(), "x<y".into()],
        })
        .unwrap()
    }

    fn connection(client_id: &str, application: Option<Application>, since: i64) -> Connection {
        Connection {
            client_id: client_id.into(),
            client_name: "Ledger mobile".into(),
            application,
            scopes: vec!["email".into(), "x<y".into()],
            since,
        }
    }

    fn connections(locale: &str, connections: Vec<Connection>, revoked: Option<&str>) -> String {
        Ui::render_connections(ConnectionsPage {
            context: PageContext {
                client_name: String::new(),
                action: "/account/connections?a=1&b=2".into(),
                hidden: vec![("csrf".into(), "t\"k".into())],
                ..in_locale(locale)
            },
            user_name: "al<i>ce".into(),
            connections,
            revoked: revoked.map(Into::into),
            password_page: Some("https://id.example/account/password?ui_locales=x&y".into()),
            security_page: Some("https://id.example/account/security?ui_locales=x&y".into()),
            sign_out: Some("https://id.example/account/sign-out?a=1&b=2".into()),
        })
        .unwrap()
    }

    fn password(locale: &str, error: Option<PasswordError>, changed: bool) -> String {
        Ui::render_password(PasswordPage {
            context: PageContext {
                client_name: String::new(),
                action: "/account/password?a=1&b=2".into(),
                hidden: vec![("csrf".into(), "t\"k".into())],
                ..in_locale(locale)
            },
            user_name: "al<i>ce".into(),
            error,
            changed,
        })
        .unwrap()
    }

    fn lang(html: &str) -> &str {
        html.split("<html lang=\"").nth(1).and_then(|r| r.split('"').next()).unwrap()
    }

    #[test]
    fn the_layout_gives_the_style_the_body_and_the_footer() {
        let framed = consent(cx());
        assert!(framed.contains(&format!("<style>{PALETTE}{SHARED}main{{margin:0}}</style>")), "{framed}");
        assert!(framed.contains("<body class=\"fr&lt;amed\">\n<main>"), "{framed}");
        assert!(framed.contains("<footer>https://id.example</footer>"), "{framed}");
        let bare = Pages::<Bare>::render_consent(ConsentPage {
            context: cx(),
            user_name: "alice".into(),
            scopes: vec!["openid".into()],
        })
        .unwrap();
        assert!(bare.contains(&format!("<style>{PALETTE}{SHARED}</style>")), "{bare}");
        assert!(bare.contains("<body>\n<main>") && !bare.contains("<footer>"), "{bare}");
        // The same words and form, whatever the layout.
        for page in [&bare, &framed] {
            assert!(page.contains("<div class=\"actions decision\">"), "{page}");
        }
    }

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_into(&mut s, "a<b>&\"'c");
        assert_eq!(s, "a&lt;b&gt;&amp;&quot;&#39;c");
    }

    #[test]
    fn login_follows_the_form_contract() {
        let html = Ui::render_login(LoginPage {
            context: cx(),
            login_hint: Some("al\"ice".into()),
            error: Some(LoginError::WrongCredentials),
            passkey: None,
        })
        .unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("action=\"/login?x=1&amp;y=2\""));
        assert!(html.contains("<input type=\"hidden\" name=\"interaction\" value=\"a&quot;b\">"));
        assert!(html.contains("name=\"username\""));
        assert!(html.contains("value=\"al&quot;ice\""));
        assert!(html.contains("name=\"password\""));
        assert!(html.contains("id=\"login-error\">The username or password is incorrect.</p>"), "{html}");
        assert!(!html.contains("<Evil"));
        // Cancel: the request ends, whatever the fields hold; no passkey without a ceremony.
        assert!(html.contains("<button type=\"submit\" name=\"decision\" value=\"cancel\" formnovalidate>Cancel</button>"));
        assert!(!html.contains("data-passkey") && !html.contains("<script"), "{html}");
    }

    #[test]
    fn consent_lists_scopes() {
        let html = consent(cx());
        assert!(html.contains("Confirm who you are"));
        assert!(html.contains("x&lt;y"));
        assert!(html.contains("name=\"decision\" value=\"allow\""));
        assert!(html.contains("name=\"decision\" value=\"deny\""));
        assert!(html.contains("&lt;Evil &amp; &quot;Co&quot;&gt;</strong> wants to access your account"));
        assert!(!html.contains("<img"));
    }

    #[test]
    fn device_pages() {
        let form = Ui::render_device(DevicePage {
            context: cx(),
            user_code: Some("ABCD-EFGH".into()),
            outcome: None,
        })
        .unwrap();
        assert!(form.contains("name=\"user_code\"") && form.contains("value=\"ABCD-EFGH\""));
        let done = Ui::render_device(DevicePage {
            context: cx(),
            user_code: None,
            outcome: Some(DeviceOutcome::Approved),
        })
        .unwrap();
        assert!(done.contains("Device connected") && !done.contains("<form"));
        let denied = Ui::render_device(DevicePage {
            context: in_locale("it"),
            user_code: None,
            outcome: Some(DeviceOutcome::Denied),
        })
        .unwrap();
        assert!(denied.contains("Dispositivo non collegato"), "{denied}");
    }

    #[test]
    fn offers_five_locales() {
        assert_eq!(Ui::locales(), ["en", "ru", "nl", "de", "it"]);
    }

    #[test]
    fn each_locale_renders_its_own_words() {
        let cases = [
            ("en", "Sign in", "Allow", "Something went wrong", "Connected applications"),
            ("ru", "Войти", "Разрешить", "Что-то пошло не так", "Подключённые приложения"),
            ("nl", "Inloggen", "Toestaan", "Er is iets misgegaan", "Gekoppelde applicaties"),
            ("de", "Anmelden", "Erlauben", "Etwas ist schiefgelaufen", "Verbundene Anwendungen"),
            ("it", "Accedi", "Consenti", "Qualcosa è andato storto", "Applicazioni collegate"),
        ];
        for (locale, sign_in, allow, went_wrong, connected) in cases {
            let l = login(in_locale(locale));
            assert_eq!(lang(&l), locale);
            assert!(l.contains(&format!("class=\"primary\">{sign_in}</button>")), "{l}");
            let c = consent(in_locale(locale));
            assert_eq!(lang(&c), locale);
            assert!(c.contains(&format!("value=\"allow\" class=\"primary\">{allow}</button>")), "{c}");
            let e = Ui::render_error(ErrorPage {
                locale: locale.into(),
                error: "slow_down".into(),
                description: String::new(),
            })
            .unwrap();
            assert_eq!(lang(&e), locale);
            assert!(e.contains(went_wrong), "{e}");
            let p = connections(locale, Vec::new(), None);
            assert_eq!(lang(&p), locale);
            assert!(p.contains(&format!("<h1>{connected}</h1>")), "{p}");
            let pw = password(locale, Some(PasswordError::Mismatch), false);
            assert_eq!(lang(&pw), locale);
            assert!(pw.contains(&format!("<h1>{}</h1>", texts(locale).password_title)), "{pw}");
            assert!(pw.contains(texts(locale).passwords_differ), "{pw}");
            let d = Ui::render_device(DevicePage {
                context: in_locale(locale),
                user_code: None,
                outcome: None,
            })
            .unwrap();
            assert_eq!(lang(&d), locale);
            if locale != "en" {
                for english in [
                    "Sign in",
                    "Username",
                    "Allow",
                    "Connect a device",
                    "Connected applications",
                    "Change your password",
                    "Current password",
                    "differ",
                ] {
                    for page in [&l, &c, &e, &p, &d, &pw] {
                        assert!(!page.contains(english), "{locale} page has {english:?}: {page}");
                    }
                }
            }
        }
        assert!(consent(in_locale("de")).contains("Ihre Identität bestätigen"));
        assert!(consent(in_locale("ru")).contains("Подтверждать вашу личность"));
    }

    #[test]
    fn regional_and_unknown_tags_fall_back_by_primary_subtag() {
        let ru = login(in_locale("ru-RU"));
        assert_eq!(lang(&ru), "ru-RU", "<html lang> is the locale given");
        assert!(ru.contains("Войти"));
        assert!(login(in_locale("DE_at")).contains("Anmelden"));
        assert!(login(in_locale("nl-BE")).contains("Inloggen"));
        for other in ["fr", "fr-CA", "", "x-<klingon>", "russian"] {
            let html = login(in_locale(other));
            assert!(html.contains(">Sign in</button>"), "{other:?}: {html}");
        }
        assert_eq!(lang(&login(in_locale(""))), "en");
        assert!(login(in_locale("x-<klingon>")).contains("lang=\"x-&lt;klingon&gt;\""));
    }

    #[test]
    fn consent_names_the_application() {
        let html = consent(PageContext { application: Some(app(Some("https://cdn.example/i.png?a=1&b=2"))), ..cx() });
        assert!(
            html.contains("<img src=\"https://cdn.example/i.png?a=1&amp;b=2\" alt=\"\" width=\"48\" height=\"48\">")
        );
        assert!(html.contains("<h1><strong>Ledger &lt;Pro&gt;</strong> wants to access your account</h1>"), "{html}");
        assert!(html.contains("Books &amp; &quot;receipts&quot;"));
        assert!(html.contains("Client: <strong>&lt;Evil &amp; &quot;Co&quot;&gt;</strong>"), "{html}");
        assert!(html.contains("<title>Allow access? · Ledger &lt;Pro&gt;</title>"));

        // The client's name is not repeated when it is the application's.
        let same = consent(PageContext {
            client_name: "Ledger <Pro>".into(),
            application: Some(Application { description: String::new(), ..app(None) }),
            ..cx()
        });
        assert!(!same.contains("Client:") && !same.contains("class=\"description\""), "{same}");

        let login = login(PageContext { application: Some(app(None)), ..in_locale("de") });
        assert!(
            login.contains("um mit <strong>Ledger &lt;Pro&gt;</strong> <span class=\"muted\">(&lt;Evil &amp; &quot;Co&quot;&gt;)</span> fortzufahren"),
            "{login}"
        );
    }

    #[test]
    fn application_icon_rule() {
        let shown = |src: &str| icon(Some(&app(Some(src)))).is_some();
        assert!(shown("https://cdn.example/icon.png"));
        assert!(shown("HTTPS://cdn.example/icon.png"));
        assert!(shown("data:image/png;base64,iVBORw0KGgo="));
        assert!(shown("data:image/svg+xml;base64,PHN2Zz4="));
        for bad in [
            "http://cdn.example/icon.png",
            "javascript:alert(1)",
            "data:text/html,<script>",
            " https://x",
            "//cdn.example/i.png",
            "https:",
            "ф",
        ] {
            assert!(!shown(bad), "{bad}");
        }
        assert!(icon(Some(&app(None))).is_none() && icon(None).is_none());
        let html = consent(PageContext { application: Some(app(Some("javascript:alert(1)"))), ..cx() });
        assert!(!html.contains("<img") && !html.contains("javascript"), "{html}");
        let html = connections("en", vec![connection("c1", Some(app(Some("data:text/html,x"))), 0)], None);
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(86_399), "1970-01-01");
        assert_eq!(iso_date(1_764_720_000), "2025-12-03");
        assert_eq!(iso_date(951_782_400), "2000-02-29");
        assert_eq!(iso_date(951_868_800), "2000-03-01");
        assert_eq!(iso_date(1_709_251_199), "2024-02-29");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(iso_date(253_402_300_799), "9999-12-31");
        assert!(iso_date(i64::MAX).len() > 10);
        let _ = iso_date(i64::MIN);
    }

    #[test]
    fn connections_follow_the_form_contract() {
        let html = connections(
            "en",
            vec![
                connection("c\"1", Some(app(Some("data:image/png;base64,AAAA"))), 1_764_720_000),
                connection("c2", None, 0),
            ],
            None,
        );
        assert!(html.contains("<title>Connected applications</title>"), "{html}");
        assert!(html.contains("Signed in as <strong>al&lt;i&gt;ce</strong>"));
        assert!(html.contains("<ul class=\"connections\" id=\"connections\">"));
        assert_eq!(html.matches("<li class=\"connection\"").count(), 2);
        assert!(html.contains("<li class=\"connection\" data-client-id=\"c&quot;1\">"));
        assert!(html.contains("<li class=\"connection\" data-client-id=\"c2\">"));
        // One form per connection, each posting to the action with every hidden pair.
        assert_eq!(html.matches("<form method=\"post\" action=\"/account/connections?a=1&amp;b=2\">").count(), 2);
        // And the sign-out form, with the same hidden pairs.
        assert_eq!(html.matches("<input type=\"hidden\" name=\"csrf\" value=\"t&quot;k\">").count(), 3);
        assert!(html.contains("<form method=\"post\" id=\"sign-out\" action=\"https://id.example/account/sign-out?a=1&amp;b=2\">"), "{html}");
        assert!(html.contains("<button type=\"submit\" name=\"decision\" value=\"logout\">Sign out</button>"), "{html}");
        assert!(html.contains("<a id=\"security-link\" href=\"https://id.example/account/security?ui_locales=x&amp;y\">Two-step verification</a>"), "{html}");
        assert!(html.contains("name=\"revoke\" value=\"c&quot;1\""));
        assert!(html.contains("name=\"revoke\" value=\"c2\""));
        assert_eq!(html.matches(">Revoke access</button>").count(), 2);
        // The application's icon and name, the client's name, the scopes and the date.
        assert!(html.contains("<img src=\"data:image/png;base64,AAAA\" alt=\"\" width=\"48\" height=\"48\">"));
        assert!(html.contains(">Ledger &lt;Pro&gt;</h2>"));
        assert!(html.contains("Client: Ledger mobile"));
        assert!(html.contains(">Ledger mobile</h2>"), "without an application, the client's name: {html}");
        assert!(html.contains("See your email address") && html.contains("x&lt;y"));
        assert!(html.contains("<time datetime=\"2025-12-03\">3 December 2025</time>"), "{html}");
        assert!(html.contains("<time datetime=\"1970-01-01\">1 January 1970</time>"));
        assert!(!html.contains("id=\"revoked\"") && !html.contains("<script") && !html.contains("style=\""));
        assert!(!html.contains("<i>") && !html.contains("<Pro>"));
    }

    #[test]
    fn connections_status_and_empty_list() {
        let html = connections("en", Vec::new(), Some("<Old> app"));
        assert!(html.contains("<p class=\"status\" role=\"status\" id=\"revoked\">Access for <strong>&lt;Old&gt; app</strong> was revoked.</p>"), "{html}");
        assert!(html.contains("No application has access to your account."));
        assert!(!html.contains("<ul class=\"connections\"") && !html.contains("name=\"revoke\""));
        let ru = connections("ru-RU", vec![connection("c1", None, 0)], Some("X"));
        assert!(ru.contains("Доступ приложения <strong>X</strong> отозван."), "{ru}");
        assert!(ru.contains(">Отозвать доступ</button>") && ru.contains("Видеть ваш адрес электронной почты"));
    }

    #[test]
    fn password_page_follows_the_form_contract() {
        let html = password("en", None, false);
        assert!(html.contains("<title>Change your password</title>"), "{html}");
        assert!(html.contains("Signed in as <strong>al&lt;i&gt;ce</strong>"));
        assert!(html.contains("<form method=\"post\" action=\"/account/password?a=1&amp;b=2\">"));
        assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"t&quot;k\">"));
        for name in ["current-password", "new-password", "repeat-password"] {
            assert!(html.contains(&format!("name=\"{name}\" type=\"password\"")), "{name}: {html}");
        }
        assert!(!html.contains("id=\"password-error\"") && !html.contains("id=\"password-changed\""));
        let short = password("en", Some(PasswordError::TooShort(12)), false);
        assert!(short.contains("at least <strong>12</strong> characters"), "{short}");
        assert!(short.contains("aria-describedby=\"password-error\""));
        let wrong = password("it", Some(PasswordError::WrongCurrentPassword), false);
        assert!(wrong.contains("La password attuale non è corretta."), "{wrong}");
        let done = password("ru", None, true);
        assert!(done.contains("id=\"password-changed\">Пароль изменён."), "{done}");
        assert!(!done.contains("<form"), "no form once changed: {done}");
    }

    #[test]
    fn connections_link_to_the_password_page() {
        let html = connections("de", Vec::new(), None);
        assert!(
            html.contains("<a id=\"password-link\" href=\"https://id.example/account/password?ui_locales=x&amp;y\">Passwort ändern</a>"),
            "{html}"
        );
    }

    fn ceremony() -> PasskeyCeremony {
        PasskeyCeremony {
            options: r#"{"publicKey":{"challenge":"a<b"}}"#.into(),
            script: "https://id.example/static/passkey.js?v=1&x=2".into(),
        }
    }

    fn account(locale: &str, action: &str) -> PageContext {
        PageContext {
            client_name: String::new(),
            action: action.into(),
            hidden: vec![("csrf".into(), "t\"k".into())],
            ..in_locale(locale)
        }
    }

    fn second_factor(locale: &str, totp: bool, passkey: bool, error: Option<FactorError>) -> String {
        Ui::render_second_factor(SecondFactorPage {
            context: PageContext { action: "/interaction/factor".into(), ..in_locale(locale) },
            user_name: "al<i>ce".into(),
            totp,
            passkey: passkey.then(ceremony),
            error,
        })
        .unwrap()
    }

    fn security(locale: &str, totp: TotpState, enrolling_passkey: bool) -> String {
        Ui::render_security(SecurityPage {
            context: account(locale, "/account/security?a=1&b=2"),
            user_name: "al<i>ce".into(),
            totp,
            passkeys: vec![
                PasskeyView { id: "pk\"1".into(), name: "Laptop <work>".into(), since: 1_796_342_400 },
                PasskeyView { id: "pk2".into(), name: "Phone".into(), since: 0 },
            ],
            recovery_codes: Some(vec!["abcd-efgh".into(), "ijkl-<mn>".into()]),
            recovery_left: 8,
            passkey_enrolment: enrolling_passkey.then(ceremony),
            error: Some(FactorError::WrongCode),
            notice: Some(SecurityNotice::PasskeyAdded),
        })
        .unwrap()
    }

    fn enrolling() -> TotpState {
        TotpState::Enrolling(TotpEnrolment {
            secret: "JBSWY3DPEHPK3PXP".into(),
            uri: "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP".into(),
            qr_svg: "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 21 21\"><path d=\"M0 0h7v7H0z\"/></svg>".into(),
        })
    }

    fn logout(locale: &str, client: &str, done: bool) -> String {
        Ui::render_logout(LogoutPage {
            context: PageContext { client_name: client.into(), action: "/logout".into(), ..in_locale(locale) },
            user_name: Some("al<i>ce".into()),
            done,
        })
        .unwrap()
    }

    fn error_page(locale: &str, code: &str, description: &str) -> String {
        Ui::render_error(ErrorPage { locale: locale.into(), error: code.into(), description: description.into() })
            .unwrap()
    }

    fn device(locale: &str, client: &str, outcome: Option<DeviceOutcome>) -> String {
        Ui::render_device(DevicePage {
            context: PageContext { client_name: client.into(), ..in_locale(locale) },
            user_code: Some("ABCD-EFGH".into()),
            outcome,
        })
        .unwrap()
    }

    #[test]
    fn dates_in_each_languages_form() {
        let day = 1_796_342_400; // 2026-12-04
        assert_eq!(local_date(texts("en"), day), "4 December 2026");
        assert_eq!(local_date(texts("ru"), day), "4 декабря 2026 г.");
        assert_eq!(local_date(texts("it"), day), "4 dicembre 2026");
        assert_eq!(local_date(texts("de"), day), "4. Dezember 2026");
        assert_eq!(local_date(texts("nl"), day), "4 december 2026");
        assert_eq!(local_date(texts("en"), 951_782_400), "29 February 2000");
        assert_eq!(local_date(texts("ru"), -1), "31 декабря 1969 г.");
        let _ = local_date(texts("en"), i64::MIN);
        let ru = connections("ru", vec![connection("c1", None, day)], None);
        assert!(ru.contains("Подключено с <time datetime=\"2026-12-04\">4 декабря 2026 г.</time>"), "{ru}");
    }

    #[test]
    fn login_errors_are_worded_by_their_variant() {
        for (error, words) in [
            (LoginError::WrongCredentials, texts("it").wrong_credentials),
            (LoginError::Throttled, texts("it").too_many_attempts),
            (LoginError::Busy, texts("it").busy),
            (LoginError::PasskeyFailed, texts("it").passkey_failed),
        ] {
            let html =
                Ui::render_login(LoginPage { context: in_locale("it"), login_hint: None, error: Some(error), passkey: None })
                    .unwrap();
            assert!(html.contains(&format!("id=\"login-error\">{}</p>", words.replace('\'', "&#39;"))), "{html}");
            assert!(html.contains("aria-describedby=\"login-error\""), "{html}");
        }
        // The account pages' own sign-in has no request to cancel.
        let account = login(PageContext { client_name: String::new(), ..cx() });
        assert!(!account.contains("value=\"cancel\""), "{account}");
    }

    #[test]
    fn login_offers_a_passkey_through_the_hosts_script() {
        let html = Ui::render_login(LoginPage {
            context: cx(),
            login_hint: None,
            error: None,
            passkey: Some(ceremony()),
        })
        .unwrap();
        assert!(
            html.contains("data-passkey-options=\"{&quot;publicKey&quot;:{&quot;challenge&quot;:&quot;a&lt;b&quot;}}\">"),
            "{html}"
        );
        assert!(html.contains("<input type=\"hidden\" name=\"passkey-response\" value=\"\">"), "{html}");
        assert!(html.contains("<button type=\"button\" data-passkey>Sign in with a passkey</button>"), "{html}");
        assert!(html.contains("<script src=\"https://id.example/static/passkey.js?v=1&amp;x=2\" defer></script>"), "{html}");
        // The button is inside the form the script submits.
        let form = &html[html.find("<form").unwrap()..html.find("</form>").unwrap()];
        assert!(form.contains("data-passkey>") && form.contains("name=\"password\""), "{form}");
    }

    #[test]
    fn error_pages_word_the_code_and_fold_the_description() {
        let html = error_page("en", "invalid_client", "client <x> is unknown");
        assert!(html.contains("<title>This application cannot sign you in</title>"), "{html}");
        assert!(html.contains("<h1>This application cannot sign you in</h1>"), "{html}");
        let details = &html[html.find("<details>").expect("details") ..];
        assert!(details.starts_with("<details>\n<summary>Details</summary>"), "{html}");
        assert!(details.contains("client &lt;x&gt; is unknown") && details.contains("<code>invalid_client</code>"));
        assert!(!html[..html.find("<details>").unwrap()].contains("unknown"), "the description only folded: {html}");
        assert!(!html.contains("<details open"), "{html}");
        // A code without words of its own: the general headline.
        let other = error_page("ru", "slow_down", "");
        assert!(other.contains("<h1>Что-то пошло не так</h1>"), "{other}");
        // Each worded code in each language has its own headline.
        for t in LANGUAGES {
            for (i, codes) in ERROR_CODES.iter().enumerate() {
                for code in *codes {
                    let html = error_page(t.lang, code, "x");
                    assert!(html.contains(&format!("<h1>{}</h1>", t.errors[i].0.replace('\'', "&#39;"))), "{html}");
                }
            }
        }
    }

    #[test]
    fn device_outcomes_by_variant_and_a_nameless_device() {
        let unknown = device("en", "TV", Some(DeviceOutcome::UnknownCode));
        assert!(unknown.contains("id=\"device-error\">That code is unknown, used or expired."), "{unknown}");
        assert!(unknown.contains("name=\"user_code\"") && unknown.contains("aria-describedby=\"device-error\""));
        let throttled = device("ru", "TV", Some(DeviceOutcome::Throttled));
        assert!(throttled.contains(texts("ru").codes_throttled), "{throttled}");
        let nameless = device("en", "", None);
        assert!(nameless.contains("Enter the code shown on your device to connect it.</p>"), "{nameless}");
        assert!(!nameless.contains("to connect it to") && !nameless.contains("<strong></strong>"), "{nameless}");
        for locale in ["ru", "nl", "de", "it"] {
            let html = device(locale, "", None);
            assert!(html.contains(texts(locale).device_lead_unnamed), "{html}");
        }
    }

    #[test]
    fn second_factor_page_follows_the_form_contract() {
        let html = second_factor("en", true, true, Some(FactorError::WrongCode));
        assert!(html.contains("<title>Confirm it is you · &lt;Evil"), "{html}");
        assert!(html.contains("Signed in as <strong>al&lt;i&gt;ce</strong>"), "{html}");
        assert!(html.contains("<form method=\"post\" action=\"/interaction/factor\" data-passkey-options="), "{html}");
        assert!(html.contains("<input type=\"hidden\" name=\"interaction\" value=\"a&quot;b\">"));
        assert!(html.contains("<label for=\"code\">Code</label>\n<input id=\"code\" name=\"code\""), "{html}");
        assert!(html.contains("aria-describedby=\"factor-lead factor-error\""), "{html}");
        assert!(html.contains("id=\"factor-error\">That code is not right. Try again.</p>"), "{html}");
        assert!(html.contains(">Verify</button>") && html.contains("value=\"cancel\" formnovalidate>Cancel</button>"));
        assert!(html.contains("<button type=\"button\" data-passkey>Use a passkey</button>"), "{html}");
        assert!(html.contains("<script src=\"https://id.example/static/passkey.js?v=1&amp;x=2\" defer>"), "{html}");
        // A passkey alone: no code to type.
        let passkey_only = second_factor("en", false, true, None);
        assert!(!passkey_only.contains("name=\"code\"") && passkey_only.contains("data-passkey>"), "{passkey_only}");
        assert!(passkey_only.contains("Use your passkey to confirm it is you."), "{passkey_only}");
        let plain = second_factor("en", true, false, None);
        assert!(!plain.contains("data-passkey") && !plain.contains("<script"), "{plain}");
    }

    #[test]
    fn security_page_follows_the_form_contract() {
        let html = security("en", enrolling(), false);
        assert!(html.contains("<title>Two-step verification</title>"), "{html}");
        assert!(html.contains("id=\"security-notice\">The passkey was added.</p>"), "{html}");
        assert!(html.contains("id=\"security-error\">That code is not right. Try again.</p>"), "{html}");
        // The host's QR code as it is, and the secret as text.
        assert!(html.contains("<div class=\"qr\" role=\"img\" aria-labelledby=\"totp-scan\"><svg xmlns="), "{html}");
        assert!(html.contains("<code class=\"secret\" id=\"totp-secret\">JBSWY3DPEHPK3PXP</code>"), "{html}");
        assert!(html.contains("name=\"code\"") && html.contains("name=\"op\" value=\"totp-confirm\""), "{html}");
        // The recovery codes, shown once, and how many are left.
        assert!(html.contains("<li><code>abcd-efgh</code></li>") && html.contains("<code>ijkl-&lt;mn&gt;</code>"));
        assert!(html.contains("Unused recovery codes: <strong>8</strong>"), "{html}");
        assert!(html.contains("name=\"op\" value=\"recovery-regenerate\""), "{html}");
        // Each passkey with its date and a remove form.
        assert!(html.contains(">Laptop &lt;work&gt;</h3>"), "{html}");
        assert!(html.contains("Added on <time datetime=\"2026-12-04\">4 December 2026</time>"), "{html}");
        assert!(html.contains("<input type=\"hidden\" name=\"passkey-id\" value=\"pk&quot;1\">"), "{html}");
        assert_eq!(html.matches("name=\"op\" value=\"passkey-remove\"").count(), 2);
        assert!(html.contains("name=\"op\" value=\"passkey-start\""), "{html}");
        assert!(!html.contains("<script"), "{html}");
        // Every form posts to the action with the hidden pairs.
        let forms = html.matches("<form method=\"post\" action=\"/account/security?a=1&amp;b=2\"").count();
        assert_eq!(forms, html.matches("<input type=\"hidden\" name=\"csrf\" value=\"t&quot;k\">").count());
        assert!(forms >= 5, "{html}");

        let on = security("en", TotpState::On, true);
        assert!(on.contains("name=\"op\" value=\"totp-remove\"") && !on.contains("class=\"qr\""), "{on}");
        assert!(on.contains("<input type=\"hidden\" name=\"op\" value=\"passkey-finish\">"), "{on}");
        assert!(on.contains("<label for=\"passkey-name\">Name of the passkey</label>"), "{on}");
        assert!(on.contains("name=\"passkey-response\"") && on.contains("data-passkey-options="), "{on}");
        assert!(on.contains("<button type=\"button\" data-passkey>Create the passkey</button>"), "{on}");
        assert!(on.contains("<script src=\"https://id.example/static/passkey.js"), "{on}");
        assert!(!on.contains("value=\"passkey-start\""), "{on}");
        let off = security("en", TotpState::Off, false);
        assert!(off.contains("name=\"op\" value=\"totp-start\""), "{off}");
    }

    #[test]
    fn logout_page_confirms_then_says_done() {
        let html = logout("en", "Ledger", false);
        assert!(html.contains("<h1>Sign out?</h1>"), "{html}");
        assert!(html.contains("<strong>Ledger</strong> asks you to sign out."), "{html}");
        assert!(html.contains("Signed in as <strong>al&lt;i&gt;ce</strong>"), "{html}");
        assert!(html.contains("name=\"decision\" value=\"logout\"") && html.contains("name=\"decision\" value=\"cancel\""));
        let nameless = logout("en", "", false);
        assert!(!nameless.contains("asks you") && !nameless.contains("<strong></strong>"), "{nameless}");
        let done = logout("it", "Ledger", true);
        assert!(done.contains("id=\"signed-out\">Sei uscito. Puoi chiudere questa pagina.</p>"), "{done}");
        assert!(!done.contains("<form"), "{done}");
    }

    #[test]
    fn every_new_page_in_each_language_has_its_own_words() {
        let english = [
            "Sign in",
            "Cancel",
            "Sign in with a passkey",
            "Use a passkey",
            "Create the passkey",
            "Name of the passkey",
            "Confirm it is you",
            "Verify",
            "Two-step verification",
            "Authenticator app",
            "Recovery codes",
            "Remove",
            "Sign out",
            "signed out",
            "Stay signed in",
            "Details",
            "Error code",
            "This application",
            "That code",
            "Added on",
            "December",
            "Key: ",
            "asks you",
        ];
        for t in LANGUAGES {
            let l = t.lang;
            let pages = [
                Ui::render_login(LoginPage {
                    context: in_locale(l),
                    login_hint: None,
                    error: Some(LoginError::PasskeyFailed),
                    passkey: Some(ceremony()),
                })
                .unwrap(),
                second_factor(l, true, true, Some(FactorError::Throttled)),
                security(l, enrolling(), false),
                security(l, TotpState::On, true),
                security(l, TotpState::Off, false),
                logout(l, "Ledger", false),
                logout(l, "Ledger", true),
                error_page(l, "invalid_client", "d"),
                error_page(l, "access_denied", "d"),
                device(l, "TV", Some(DeviceOutcome::UnknownCode)),
                device(l, "", Some(DeviceOutcome::Throttled)),
                connections(l, vec![connection("c1", None, 1_796_342_400)], None),
            ];
            for page in &pages {
                assert_eq!(lang(page), l);
                assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"), "{page}");
                if l != "en" {
                    for word in english {
                        // German and Dutch write "Details" too.
                        if !matches!((l, word), ("de" | "nl", "Details")) {
                            assert!(!page.contains(word), "{l} page has {word:?}: {page}");
                        }
                    }
                }
            }
            // Every notice in every language.
            for n in [
                SecurityNotice::TotpEnabled,
                SecurityNotice::TotpRemoved,
                SecurityNotice::PasskeyAdded,
                SecurityNotice::PasskeyRemoved,
                SecurityNotice::RecoveryRegenerated,
            ] {
                assert!(!security_notice(t, &n).is_empty());
            }
        }
    }

    /// The relative luminance of `#rrggbb` (WCAG 2.x).
    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap()) / 255.0;
            if c <= 0.039_28 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (a, b) = (luminance(a), luminance(b));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    #[test]
    fn input_borders_have_three_to_one_contrast_in_light_and_dark_mode() {
        let (light, dark) = PALETTE.split_once("@media").unwrap();
        for scheme in [light, dark] {
            let colour = |name: &str| {
                let at = scheme.find(&format!("--{name}:")).unwrap() + name.len() + 3;
                let value = &scheme[at..at + 7];
                // `#fff` is written short.
                if value.starts_with("#fff;") || value.starts_with("#fff}") { "#ffffff".to_owned() } else { value.to_owned() }
            };
            for background in ["card", "bg"] {
                let ratio = contrast(&colour("field"), &colour(background));
                assert!(ratio >= 3.0, "--field on --{background}: {ratio:.2} in {scheme}");
            }
        }
        assert!(SHARED.starts_with("input{border-color:var(--field)}"));
    }
}
