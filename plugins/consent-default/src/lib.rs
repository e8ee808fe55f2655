//! The default consent UI: the pages of `consent-pages` (English, Russian, Dutch, German and
//! Italian) as a card in the middle of the page, with the issuer under it.

use consent_pages::{Layout, Look, Pages};

struct Card;

impl Layout for Card {
    const LOOK: &'static Look = &Look { style: STYLE, body_class: None, footer: true };
}

type DefaultConsent = Pages<Card>;

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:26rem;margin:3rem auto;padding:2rem;background:var(--card);border:1px solid var(--line);border-radius:.75rem}\
h1{font-size:1.4rem;line-height:1.3;margin:0 0 .5rem}\
.lead,.muted,footer{color:var(--muted)}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input{width:100%;padding:.6rem .7rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--field);border-radius:.4rem}\
input.code{font-family:ui-monospace,monospace;letter-spacing:.15em;text-transform:uppercase}\
input:focus,button:focus{outline:3px solid var(--accent);outline-offset:2px}\
.actions{display:flex;gap:.75rem;margin-top:1.5rem}\
button{flex:1;padding:.65rem 1rem;font:inherit;font-weight:600;color:var(--fg);background:transparent;border:1px solid var(--line);border-radius:.4rem;cursor:pointer}\
button.primary{color:var(--accent-fg);background:var(--accent);border-color:var(--accent)}\
.error{color:var(--err);font-weight:600}\
.scopes{padding-left:1.25rem}.scopes li{margin:.35rem 0}\
.scope,code{font-family:ui-monospace,monospace;font-size:.9em;color:var(--muted)}\
img{display:block;margin:0 0 .75rem;border-radius:.5rem}\
.connections{list-style:none;margin:0;padding:0}.connection{border-top:1px solid var(--line);padding:1rem 0}\
.connection h2{font-size:1.1rem;margin:0}.connection p{margin:.25rem 0}.connection .actions{margin-top:.75rem}\
footer{max-width:26rem;margin:0 auto 2rem;padding:0 2rem;font-size:.85rem;overflow-wrap:anywhere}\
@media (max-width:30rem){main{margin:0;border:0;border-radius:0}}";


portcullis_sdk::export_consent_ui!(DefaultConsent);
