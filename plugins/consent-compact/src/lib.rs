//! A compact consent UI for mobile web views: the pages of `consent-pages` (the default
//! consent UI's, in its languages) on one screen, with no card, border or footer around
//! them. One column; inputs and buttons at least 48 CSS pixels high and as wide as the
//! screen; the consent page's decision buttons fixed to the bottom of the viewport, so that
//! they are in view without scrolling however many scopes the page lists. Light and dark
//! like the default one (the same palette). Every page's `<body>` has the class `compact`.

use consent_pages::{Layout, Look, Pages};

struct Compact;

impl Layout for Compact {
    const LOOK: &'static Look = &Look { style: STYLE, body_class: Some("compact"), footer: false };
}

type CompactConsent = Pages<Compact>;

const STYLE: &str = "\
*{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}\
body{margin:0;font:17px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);background:var(--card)}\
main{max-width:32rem;margin:0 auto;padding:1rem 1rem 1.5rem}\
main:has(.decision){padding-bottom:10rem}\
h1{font-size:1.2rem;line-height:1.3;margin:0 0 .5rem}\
h2{font-size:1.05rem;margin:0}\
p{margin:.5rem 0}\
.lead,.muted{color:var(--muted)}\
label{display:block;font-weight:600;margin:.9rem 0 .3rem}\
input{display:block;width:100%;min-height:3rem;padding:.6rem .75rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--field);border-radius:.5rem}\
input.code{font-family:ui-monospace,monospace;letter-spacing:.15em;text-transform:uppercase}\
input:focus,button:focus{outline:3px solid var(--accent);outline-offset:2px}\
.actions{display:flex;flex-direction:column;gap:.6rem;margin-top:1.25rem}\
button{display:block;width:100%;min-height:3rem;padding:.7rem 1rem;font:inherit;font-weight:600;color:var(--fg);background:transparent;border:1px solid var(--line);border-radius:.5rem;cursor:pointer;touch-action:manipulation}\
button.primary{color:var(--accent-fg);background:var(--accent);border-color:var(--accent)}\
.decision{position:fixed;left:0;right:0;bottom:0;z-index:1;margin:0;padding:.75rem 1rem calc(.75rem + env(safe-area-inset-bottom));background:var(--card);border-top:1px solid var(--line)}\
.error{color:var(--err);font-weight:600}\
.scopes{margin:.5rem 0;padding-left:1.25rem}.scopes li{margin:.3rem 0}\
.scope,code{font-family:ui-monospace,monospace;font-size:.9em;color:var(--muted)}\
img{display:block;width:2.5rem;height:2.5rem;margin:0 0 .5rem;border-radius:.5rem}\
.connections{list-style:none;margin:0;padding:0}.connection{border-top:1px solid var(--line);padding:.75rem 0}\
.connection p{margin:.25rem 0}.connection .actions{margin-top:.5rem}";

portcullis_sdk::export_consent_ui!(CompactConsent);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::consent::{ConsentPage, Guest, LoginPage, PageContext};

    fn cx() -> PageContext {
        PageContext {
            locale: "nl".into(),
            issuer: "https://id.example".into(),
            client_name: "Kassa".into(),
            action: "/interaction/consent".into(),
            hidden: vec![("interaction".into(), "i1".into())],
            application: None,
        }
    }

    #[test]
    fn one_screen_without_chrome_in_the_default_ones_words() {
        let page = CompactConsent::render_consent(ConsentPage {
            context: cx(),
            user_name: "anna".into(),
            scopes: vec!["openid".into(), "email".into()],
        })
        .unwrap();
        assert!(page.contains("<body class=\"compact\">"), "{page}");
        assert!(!page.contains("<footer>") && !page.contains("https://id.example"), "no chrome: {page}");
        assert!(page.contains("<div class=\"actions decision\">"), "{page}");
        assert!(page.contains("value=\"allow\" class=\"primary\">Toestaan</button>"), "{page}");
        assert!(page.contains(".decision{position:fixed;"), "{page}");
        assert!(page.contains("prefers-color-scheme:dark"), "dark mode: {page}");
        let login = CompactConsent::render_login(LoginPage { context: cx(), login_hint: None, error: None, passkey: None }).unwrap();
        assert!(login.contains("<body class=\"compact\">") && login.contains(">Inloggen</button>"), "{login}");
        assert_eq!(CompactConsent::locales(), ["en", "ru", "nl", "de", "it"]);
    }
}
