//! A consent UI for the host's page tests: it renders `de`, `fr` and `en` (in that order of
//! preference), writes the locale it was given into `<html lang>`, and names itself in a
//! `<meta name="generator">`, so a test sees which plugin rendered a page and in which
//! locale. Its forms follow the contract of `interface consent`; it has no inline styles.

use portcullis_sdk::consent::{
    ConnectionsPage, ConsentPage, DeviceOutcome, DevicePage, ErrorPage, FactorError, Guest, LoginError, LoginPage,
    LogoutPage, PageContext, PasswordError, PasswordPage, SecondFactorPage, SecurityPage, TotpState,
};

struct Locales;

impl Guest for Locales {
    fn locales() -> Vec<String> {
        vec!["de".into(), "fr".into(), "en".into()]
    }

    fn render_login(page: LoginPage) -> Result<String, String> {
        let cx = &page.context;
        let mut body = String::from("<h1>login</h1>\n");
        if let Some(error) = &page.error {
            let code = match error {
                LoginError::WrongCredentials => "wrong-credentials",
                LoginError::Throttled => "throttled",
                LoginError::Busy => "busy",
                LoginError::PasskeyFailed => "passkey-failed",
            };
            body.push_str(&format!("<p class=\"error\">{code}</p>\n"));
        }
        body.push_str(&form_start(cx));
        body.push_str("<input name=\"username\" type=\"text\"");
        if let Some(hint) = &page.login_hint {
            body.push_str(" value=\"");
            body.push_str(&escape(hint));
            body.push('"');
        }
        body.push_str(">\n<input name=\"password\" type=\"password\">\n<button type=\"submit\">ok</button>\n<button type=\"submit\" name=\"decision\" value=\"cancel\" formnovalidate>cancel</button>\n</form>\n");
        Ok(html(&cx.locale, &body))
    }

    fn render_consent(page: ConsentPage) -> Result<String, String> {
        let cx = &page.context;
        let mut body = String::from("<h1>consent</h1>\n<ul>\n");
        for scope in &page.scopes {
            body.push_str("<li>");
            body.push_str(&escape(scope));
            body.push_str("</li>\n");
        }
        body.push_str("</ul>\n");
        body.push_str(&form_start(cx));
        body.push_str("<button type=\"submit\" name=\"decision\" value=\"allow\">allow</button>\n<button type=\"submit\" name=\"decision\" value=\"deny\">deny</button>\n</form>\n");
        Ok(html(&cx.locale, &body))
    }

    fn render_error(page: ErrorPage) -> Result<String, String> {
        let body = format!(
            "<h1>error</h1>\n<p class=\"error\">{}</p>\n<p><code>{}</code></p>\n",
            escape(&page.description),
            escape(&page.error)
        );
        Ok(html(&page.locale, &body))
    }

    fn render_device(page: DevicePage) -> Result<String, String> {
        let cx = &page.context;
        let mut body = String::from("<h1>device</h1>\n");
        if let Some(outcome) = &page.outcome {
            let code = match outcome {
                DeviceOutcome::Approved => "approved",
                DeviceOutcome::Denied => "denied",
                DeviceOutcome::UnknownCode => "unknown-code",
                DeviceOutcome::Throttled => "throttled",
            };
            body.push_str(&format!("<p class=\"outcome\">{code}</p>\n"));
        }
        body.push_str(&form_start(cx));
        body.push_str("<input name=\"user_code\" type=\"text\">\n<button type=\"submit\">ok</button>\n</form>\n");
        Ok(html(&cx.locale, &body))
    }

    fn render_connections(page: ConnectionsPage) -> Result<String, String> {
        let cx = &page.context;
        let mut body = String::from("<h1>connections</h1>\n<ul>\n");
        for c in &page.connections {
            body.push_str(&format!("<li>{}\n", escape(&c.client_id)));
            body.push_str(&form_start(cx));
            body.push_str(&format!(
                "<button type=\"submit\" name=\"revoke\" value=\"{}\">revoke</button>\n</form>\n</li>\n",
                escape(&c.client_id)
            ));
        }
        body.push_str("</ul>\n");
        if let Some(href) = &page.password_page {
            body.push_str(&format!("<a id=\"password-link\" href=\"{}\">password</a>\n", escape(href)));
        }
        if let Some(href) = &page.security_page {
            body.push_str(&format!("<a id=\"security-link\" href=\"{}\">security</a>\n", escape(href)));
        }
        if let Some(action) = &page.sign_out {
            body.push_str(&form_start(&PageContext { action: action.clone(), ..cx.clone() }));
            body.push_str("<button type=\"submit\" name=\"decision\" value=\"logout\">logout</button>\n</form>\n");
        }
        Ok(html(&cx.locale, &body))
    }

    /// The error is named by its code (`wrong-current-password`, `too-short-12`, ...), so a test
    /// sees which one the host gave.
    fn render_password(page: PasswordPage) -> Result<String, String> {
        let cx = &page.context;
        let mut body = String::from("<h1>password</h1>\n");
        if page.changed {
            body.push_str("<p class=\"status\">changed</p>\n");
        }
        if let Some(error) = &page.error {
            let code = match error {
                PasswordError::WrongCurrentPassword => "wrong-current-password".to_owned(),
                PasswordError::Mismatch => "mismatch".to_owned(),
                PasswordError::TooShort(n) => format!("too-short-{n}"),
                PasswordError::TooLong(n) => format!("too-long-{n}"),
                PasswordError::Throttled => "throttled".to_owned(),
                PasswordError::Busy => "busy".to_owned(),
            };
            body.push_str(&format!("<p class=\"error\">{code}</p>\n"));
        }
        body.push_str(&form_start(cx));
        body.push_str("<input name=\"current-password\" type=\"password\">\n<input name=\"new-password\" type=\"password\">\n<input name=\"repeat-password\" type=\"password\">\n<button type=\"submit\">ok</button>\n</form>\n");
        Ok(html(&cx.locale, &body))
    }

    fn render_second_factor(page: SecondFactorPage) -> Result<String, String> {
        let cx = &page.context;
        let mut body = String::from("<h1>second-factor</h1>\n");
        if let Some(error) = &page.error {
            body.push_str(&format!("<p class=\"error\">{}</p>\n", factor_error(error)));
        }
        body.push_str(&form_start(cx));
        if page.totp {
            body.push_str("<input name=\"code\" type=\"text\">\n<button type=\"submit\">ok</button>\n");
        }
        if page.passkey.is_some() {
            body.push_str("<input type=\"hidden\" name=\"passkey-response\">\n<button type=\"button\" data-passkey>passkey</button>\n");
        }
        body.push_str("<button type=\"submit\" name=\"decision\" value=\"cancel\" formnovalidate>cancel</button>\n</form>\n");
        Ok(html(&cx.locale, &body))
    }

    /// The state is named by its code (`totp-off`, `totp-enrolling`, `totp-on`), so a test sees
    /// which one the host gave.
    fn render_security(page: SecurityPage) -> Result<String, String> {
        let cx = &page.context;
        let (state, op) = match &page.totp {
            TotpState::Off => ("totp-off", "totp-start"),
            TotpState::Enrolling(_) => ("totp-enrolling", "totp-confirm"),
            TotpState::On => ("totp-on", "totp-remove"),
        };
        let mut body = format!("<h1>security</h1>\n<p class=\"state\">{state}</p>\n");
        if let Some(error) = &page.error {
            body.push_str(&format!("<p class=\"error\">{}</p>\n", factor_error(error)));
        }
        body.push_str(&form_start(cx));
        body.push_str(&format!("<input name=\"code\" type=\"text\">\n<button type=\"submit\" name=\"op\" value=\"{op}\">ok</button>\n</form>\n"));
        Ok(html(&cx.locale, &body))
    }

    fn render_logout(page: LogoutPage) -> Result<String, String> {
        let cx = &page.context;
        let mut body = String::from("<h1>logout</h1>\n");
        if page.done {
            body.push_str("<p class=\"status\">done</p>\n");
        } else {
            body.push_str(&form_start(cx));
            body.push_str("<button type=\"submit\" name=\"decision\" value=\"logout\">logout</button>\n<button type=\"submit\" name=\"decision\" value=\"cancel\">cancel</button>\n</form>\n");
        }
        Ok(html(&cx.locale, &body))
    }
}

fn factor_error(error: &FactorError) -> &'static str {
    match error {
        FactorError::WrongCode => "wrong-code",
        FactorError::Throttled => "throttled",
        FactorError::PasskeyFailed => "passkey-failed",
        FactorError::Busy => "busy",
    }
}

fn html(locale: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"generator\" content=\"consent-locales\">\n<title>test</title>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(locale)
    )
}

fn form_start(cx: &PageContext) -> String {
    let mut s = format!("<form method=\"post\" action=\"{}\">\n", escape(&cx.action));
    for (name, value) in &cx.hidden {
        s.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", escape(name), escape(value)));
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

portcullis_sdk::export_consent_ui!(Locales);
