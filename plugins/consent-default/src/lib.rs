//! The default consent UI: plain, accessible HTML5 pages in English, with a little
//! inline CSS and no scripts or external assets.
//!
//! Every string that comes from the host is HTML-escaped; forms follow the contract
//! of `interface consent` (POST to `action`, every `hidden` pair as a hidden input,
//! `username`/`password`, `decision` = `allow`/`deny`, `user_code`).

use portcullis_sdk::consent::{ConsentPage, DevicePage, ErrorPage, Guest, LoginPage, PageContext};

struct DefaultConsent;

impl Guest for DefaultConsent {
    fn locales() -> Vec<String> {
        vec!["en".to_string()]
    }

    fn render_login(page: LoginPage) -> Result<String, String> {
        let cx = &page.context;
        let mut h = Html::start(&cx.locale, "Sign in", Some(&cx.client_name));
        h.raw("<h1>Sign in</h1>\n<p class=\"lead\">to continue to <strong>");
        h.text(&cx.client_name);
        h.raw("</strong></p>\n");
        if let Some(error) = &page.error {
            h.raw("<p class=\"error\" role=\"alert\" id=\"login-error\">");
            h.text(error);
            h.raw("</p>\n");
        }
        h.form_start(cx);
        let described = if page.error.is_some() {
            " aria-describedby=\"login-error\""
        } else {
            ""
        };
        h.raw("<label for=\"username\">Username</label>\n<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required");
        h.raw(described);
        match &page.login_hint {
            Some(hint) => {
                h.raw(" value=\"");
                h.text(hint);
                h.raw("\">\n");
            }
            None => h.raw(" autofocus>\n"),
        }
        h.raw("<label for=\"password\">Password</label>\n<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required");
        h.raw(described);
        if page.login_hint.is_some() {
            h.raw(" autofocus");
        }
        h.raw(">\n<div class=\"actions\"><button type=\"submit\" class=\"primary\">Sign in</button></div>\n</form>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_consent(page: ConsentPage) -> Result<String, String> {
        let cx = &page.context;
        let mut h = Html::start(&cx.locale, "Allow access?", Some(&cx.client_name));
        h.raw("<h1><strong>");
        h.text(&cx.client_name);
        h.raw(
            "</strong> wants to access your account</h1>\n<p class=\"lead\">Signed in as <strong>",
        );
        h.text(&page.user_name);
        h.raw("</strong></p>\n");
        if page.scopes.is_empty() {
            h.raw("<p>It asks for no particular permission.</p>\n");
        } else {
            h.raw("<p id=\"scopes-label\">If you allow it, it will be able to:</p>\n<ul class=\"scopes\" aria-labelledby=\"scopes-label\">\n");
            for scope in &page.scopes {
                h.raw("<li>");
                match describe(scope) {
                    Some(description) => {
                        h.raw(description);
                        h.raw(" <span class=\"scope\">(");
                        h.text(scope);
                        h.raw(")</span>");
                    }
                    None => {
                        h.raw("<span class=\"scope\">");
                        h.text(scope);
                        h.raw("</span>");
                    }
                }
                h.raw("</li>\n");
            }
            h.raw("</ul>\n");
        }
        h.form_start(cx);
        h.raw("<div class=\"actions\">\n<button type=\"submit\" name=\"decision\" value=\"allow\" class=\"primary\">Allow</button>\n<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</div>\n</form>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }

    fn render_error(page: ErrorPage) -> Result<String, String> {
        let mut h = Html::start(&page.locale, "Error", None);
        h.raw("<h1>Something went wrong</h1>\n<p class=\"error\" role=\"alert\">");
        if page.description.is_empty() {
            h.raw("The request could not be completed.");
        } else {
            h.text(&page.description);
        }
        h.raw("</p>\n");
        if !page.error.is_empty() {
            h.raw("<p class=\"muted\">Error code: <code>");
            h.text(&page.error);
            h.raw("</code></p>\n");
        }
        Ok(h.finish(None))
    }

    fn render_device(page: DevicePage) -> Result<String, String> {
        let cx = &page.context;
        if let Some(outcome) = &page.outcome {
            let (title, text) = match outcome.to_ascii_lowercase().as_str() {
                "approved" | "allowed" | "allow" => (
                    "Device connected",
                    "The device is now connected. You can close this page and return to it.",
                ),
                "denied" | "deny" => (
                    "Device not connected",
                    "You denied access. The device was not connected.",
                ),
                _ => ("Device authorization", ""),
            };
            let mut h = Html::start(&cx.locale, title, Some(&cx.client_name));
            h.raw("<h1>");
            h.raw(title);
            h.raw("</h1>\n<p role=\"status\">");
            if text.is_empty() {
                h.text(outcome);
            } else {
                h.raw(text);
            }
            h.raw("</p>\n");
            return Ok(h.finish(Some(&cx.issuer)));
        }

        let mut h = Html::start(&cx.locale, "Connect a device", Some(&cx.client_name));
        h.raw("<h1>Connect a device</h1>\n<p class=\"lead\">Enter the code shown on your device to connect it to <strong>");
        h.text(&cx.client_name);
        h.raw("</strong>.</p>\n");
        h.form_start(cx);
        h.raw("<label for=\"user_code\">Code</label>\n<input id=\"user_code\" name=\"user_code\" type=\"text\" class=\"code\" autocomplete=\"one-time-code\" autocapitalize=\"characters\" spellcheck=\"false\" required autofocus");
        if let Some(code) = &page.user_code {
            h.raw(" value=\"");
            h.text(code);
            h.raw("\"");
        }
        h.raw(">\n<div class=\"actions\"><button type=\"submit\" class=\"primary\">Continue</button></div>\n</form>\n");
        Ok(h.finish(Some(&cx.issuer)))
    }
}

/// What a well-known scope lets the client do, worded for a person.
fn describe(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "Confirm who you are",
        "profile" => "See your basic profile: name, username and picture",
        "email" => "See your email address",
        "offline_access" => "Keep access while you are not using it",
        "api" => "Use the API on your behalf",
        _ => return None,
    })
}

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f4f5f7;--card:#fff;--muted:#5b6470;--line:#d0d5dc;--accent:#0b57d0;--accent-fg:#fff;--err:#b3261e}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#15171a;--card:#1f2226;--muted:#a3acb8;--line:#3a3f46;--accent:#8ab4f8;--accent-fg:#0b1d3a;--err:#f2b8b5}}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:26rem;margin:3rem auto;padding:2rem;background:var(--card);border:1px solid var(--line);border-radius:.75rem}\
h1{font-size:1.4rem;line-height:1.3;margin:0 0 .5rem}\
.lead,.muted,footer{color:var(--muted)}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input{width:100%;padding:.6rem .7rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--line);border-radius:.4rem}\
input.code{font-family:ui-monospace,monospace;letter-spacing:.15em;text-transform:uppercase}\
input:focus,button:focus{outline:3px solid var(--accent);outline-offset:2px}\
.actions{display:flex;gap:.75rem;margin-top:1.5rem}\
button{flex:1;padding:.65rem 1rem;font:inherit;font-weight:600;color:var(--fg);background:transparent;border:1px solid var(--line);border-radius:.4rem;cursor:pointer}\
button.primary{color:var(--accent-fg);background:var(--accent);border-color:var(--accent)}\
.error{color:var(--err);font-weight:600}\
.scopes{padding-left:1.25rem}.scopes li{margin:.35rem 0}\
.scope,code{font-family:ui-monospace,monospace;font-size:.9em;color:var(--muted)}\
footer{max-width:26rem;margin:0 auto 2rem;padding:0 2rem;font-size:.85rem;overflow-wrap:anywhere}\
@media (max-width:30rem){main{margin:0;border:0;border-radius:0}}";

/// A page under construction.
struct Html(String);

impl Html {
    fn start(locale: &str, title: &str, client: Option<&str>) -> Self {
        let mut h = Html(String::with_capacity(4096));
        h.raw("<!DOCTYPE html>\n<html lang=\"");
        h.text(if locale.is_empty() { "en" } else { locale });
        h.raw("\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"robots\" content=\"noindex\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<title>");
        h.text(title);
        if let Some(client) = client.filter(|c| !c.is_empty()) {
            h.raw(" · ");
            h.text(client);
        }
        h.raw("</title>\n<style>");
        h.raw(STYLE);
        h.raw("</style>\n</head>\n<body>\n<main>\n");
        h
    }

    /// `<form method="post" action="...">` and its hidden inputs.
    fn form_start(&mut self, cx: &PageContext) {
        self.raw("<form method=\"post\" action=\"");
        self.text(&cx.action);
        self.raw("\">\n");
        for (name, value) in &cx.hidden {
            self.raw("<input type=\"hidden\" name=\"");
            self.text(name);
            self.raw("\" value=\"");
            self.text(value);
            self.raw("\">\n");
        }
    }

    fn finish(mut self, issuer: Option<&str>) -> String {
        self.raw("</main>\n");
        if let Some(issuer) = issuer.filter(|i| !i.is_empty()) {
            self.raw("<footer>");
            self.text(issuer);
            self.raw("</footer>\n");
        }
        self.raw("</body>\n</html>\n");
        self.0
    }

    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }

    /// Appends `s` escaped for HTML text and double-quoted attribute values.
    fn text(&mut self, s: &str) {
        escape_into(&mut self.0, s);
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

portcullis_sdk::export_consent_ui!(DefaultConsent);

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> PageContext {
        PageContext {
            locale: "en".into(),
            issuer: "https://id.example".into(),
            client_name: "<Evil & \"Co\">".into(),
            action: "/login?x=1&y=2".into(),
            hidden: vec![("interaction".into(), "a\"b".into())],
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
        let html = DefaultConsent::render_login(LoginPage {
            context: cx(),
            login_hint: Some("al\"ice".into()),
            error: Some("Wrong <password>".into()),
        })
        .unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("action=\"/login?x=1&amp;y=2\""));
        assert!(html.contains("<input type=\"hidden\" name=\"interaction\" value=\"a&quot;b\">"));
        assert!(html.contains("name=\"username\""));
        assert!(html.contains("value=\"al&quot;ice\""));
        assert!(html.contains("name=\"password\""));
        assert!(html.contains("Wrong &lt;password&gt;"));
        assert!(!html.contains("<Evil"));
    }

    #[test]
    fn consent_lists_scopes() {
        let html = DefaultConsent::render_consent(ConsentPage {
            context: cx(),
            user_name: "alice".into(),
            scopes: vec!["openid".into(), "x<y".into()],
        })
        .unwrap();
        assert!(html.contains("Confirm who you are"));
        assert!(html.contains("x&lt;y"));
        assert!(html.contains("name=\"decision\" value=\"allow\""));
        assert!(html.contains("name=\"decision\" value=\"deny\""));
    }

    #[test]
    fn device_pages() {
        let form = DefaultConsent::render_device(DevicePage {
            context: cx(),
            user_code: Some("ABCD-EFGH".into()),
            outcome: None,
        })
        .unwrap();
        assert!(form.contains("name=\"user_code\"") && form.contains("value=\"ABCD-EFGH\""));
        let done = DefaultConsent::render_device(DevicePage {
            context: cx(),
            user_code: None,
            outcome: Some("approved".into()),
        })
        .unwrap();
        assert!(done.contains("Device connected") && !done.contains("<form"));
    }
}
