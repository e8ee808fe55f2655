//! The pages of the built-in consent UIs: plain, accessible HTML5 pages in English, Russian,
//! Dutch, German and Italian, with a little inline CSS and no scripts or external assets.
//! Each consent UI is [`Pages`] with a [`Layout`] of its own: the style sheet its pages
//! carry, and what stands around their content.
//!
//! The words of each language are one [`Texts`] table; the rendering code is shared. The
//! host picks the locale among those [`Guest::locales`] names; a tag this plugin does not
//! know is served by its primary subtag (`ru-RU` by `ru`), and anything else in English.
//!
//! Every string that comes from the host is HTML-escaped; forms follow the contract
//! of `interface consent` (POST to `action`, every `hidden` pair as a hidden input,
//! `username`/`password`, `decision` = `allow`/`deny`, `user_code`, on the connections
//! page one form per connection whose `revoke` button carries the client id, and on the
//! password page `current-password`, `new-password` and `repeat-password`). The consent
//! page's two buttons are one `.actions.decision` block, which a layout may keep in view.
//! An application's icon is shown only when it is an `https:` URL or a `data:image/` URI.

use std::marker::PhantomData;

use portcullis_sdk::consent::{
    Application, ConnectionsPage, ConsentPage, DevicePage, ErrorPage, Guest, LoginPage, PageContext, PasswordError,
    PasswordPage,
};

/// How a consent UI lays its pages out.
pub struct Look {
    /// The style sheet's rules, after the shared palette ([`PALETTE`]: the colours, light
    /// and dark, as custom properties).
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
        // No client (the account pages' own sign-in): no "to continue to" line.
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
            h.raw("<p class=\"error\" role=\"alert\" id=\"login-error\">");
            h.text(error);
            h.raw("</p>\n");
        }
        h.form_start(cx);
        let described = if page.error.is_some() { " aria-describedby=\"login-error\"" } else { "" };
        h.raw("<label for=\"username\">");
        h.text(t.username);
        h.raw("</label>\n<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required");
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
        h.raw("</button></div>\n</form>\n");
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
        let mut h = Html::start(L::LOOK, &page.locale, t.error_title, None);
        h.raw("<h1>");
        h.text(t.error_heading);
        h.raw("</h1>\n<p class=\"error\" role=\"alert\">");
        h.text(if page.description.is_empty() { t.error_fallback } else { &page.description });
        h.raw("</p>\n");
        if !page.error.is_empty() {
            h.raw("<p class=\"muted\">");
            h.text(t.error_code);
            h.raw(": <code>");
            h.text(&page.error);
            h.raw("</code></p>\n");
        }
        Ok(h.finish(None))
    }

    fn render_device(page: DevicePage) -> Result<String, String> {
        let cx = &page.context;
        let t = texts(&cx.locale);
        let (name, client) = names(&cx.client_name, cx.application.as_ref());
        if let Some(outcome) = &page.outcome {
            let (title, text) = match outcome.to_ascii_lowercase().as_str() {
                "approved" | "allowed" | "allow" => t.device_approved,
                "denied" | "deny" => t.device_denied,
                _ => (t.device_other, ""),
            };
            let mut h = Html::start(L::LOOK, &cx.locale, title, Some(name));
            h.raw("<h1>");
            h.text(title);
            h.raw("</h1>\n<p role=\"status\">");
            h.text(if text.is_empty() { outcome } else { text });
            h.raw("</p>\n");
            return Ok(h.finish(Some(&cx.issuer)));
        }

        let mut h = Html::start(L::LOOK, &cx.locale, t.device_title, Some(name));
        h.raw("<h1>");
        h.text(t.device_title);
        h.raw("</h1>\n<p class=\"lead\">");
        h.around(t.device_lead, name, client);
        h.raw("</p>\n");
        h.form_start(cx);
        h.raw("<label for=\"user_code\">");
        h.text(t.code);
        h.raw("</label>\n<input id=\"user_code\" name=\"user_code\" type=\"text\" class=\"code\" autocomplete=\"one-time-code\" autocapitalize=\"characters\" spellcheck=\"false\" required autofocus");
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
        if let Some(href) = &page.password_page {
            h.raw("<p><a id=\"password-link\" href=\"");
            h.text(href);
            h.raw("\">");
            h.text(t.password_title);
            h.raw("</a></p>\n");
        }
        if page.connections.is_empty() {
            h.raw("<p id=\"no-connections\">");
            h.text(t.no_connections);
            h.raw("</p>\n");
            return Ok(h.finish(Some(&cx.issuer)));
        }
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
            let since = iso_date(c.since);
            h.raw("<p class=\"muted\">");
            h.text(t.since);
            h.raw(" <time datetime=\"");
            h.raw(&since);
            h.raw("\">");
            h.raw(&since);
            h.raw("</time></p>\n");
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
    error_title: &'static str,
    error_heading: &'static str,
    error_fallback: &'static str,
    error_code: &'static str,
    device_title: &'static str,
    /// The device page's lead line, around the application's name.
    device_lead: Around,
    code: &'static str,
    continue_: &'static str,
    /// Title and text once the device was approved.
    device_approved: (&'static str, &'static str),
    /// Title and text once the device was denied.
    device_denied: (&'static str, &'static str),
    /// Title for any other outcome (whose text is shown as the host gave it).
    device_other: &'static str,
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
    allow_title: "Allow access?",
    wants_access: ("", " wants to access your account"),
    signed_in_as: "Signed in as",
    client: "Client",
    no_scopes: "It asks for no particular permission.",
    scopes_intro: "If you allow it, it will be able to:",
    allow: "Allow",
    deny: "Deny",
    error_title: "Error",
    error_heading: "Something went wrong",
    error_fallback: "The request could not be completed.",
    error_code: "Error code",
    device_title: "Connect a device",
    device_lead: ("Enter the code shown on your device to connect it to ", "."),
    code: "Code",
    continue_: "Continue",
    device_approved: ("Device connected", "The device is now connected. You can close this page and return to it."),
    device_denied: ("Device not connected", "You denied access. The device was not connected."),
    device_other: "Device authorization",
    connections_title: "Connected applications",
    connections_intro: "These applications have access to your account.",
    no_connections: "No application has access to your account.",
    since: "Connected since",
    connection_can: "It can:",
    connection_no_scopes: "No particular permission.",
    revoke: "Revoke access",
    revoked: ("Access for ", " was revoked."),
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
    allow_title: "Разрешить доступ?",
    wants_access: ("Приложение ", " запрашивает доступ к вашему аккаунту"),
    signed_in_as: "Вы вошли как",
    client: "Клиент",
    no_scopes: "Приложение не запрашивает особых разрешений.",
    scopes_intro: "Если вы разрешите доступ, приложение сможет:",
    allow: "Разрешить",
    deny: "Отклонить",
    error_title: "Ошибка",
    error_heading: "Что-то пошло не так",
    error_fallback: "Не удалось выполнить запрос.",
    error_code: "Код ошибки",
    device_title: "Подключение устройства",
    device_lead: ("Введите код, показанный на устройстве, чтобы подключить его к приложению ", "."),
    code: "Код",
    continue_: "Продолжить",
    device_approved: (
        "Устройство подключено",
        "Устройство подключено. Можете закрыть эту страницу и вернуться к нему.",
    ),
    device_denied: ("Устройство не подключено", "Вы отказали в доступе. Устройство не подключено."),
    device_other: "Авторизация устройства",
    connections_title: "Подключённые приложения",
    connections_intro: "Эти приложения имеют доступ к вашему аккаунту.",
    no_connections: "Ни одно приложение не имеет доступа к вашему аккаунту.",
    since: "Подключено с",
    connection_can: "Приложение может:",
    connection_no_scopes: "Без особых разрешений.",
    revoke: "Отозвать доступ",
    revoked: ("Доступ приложения ", " отозван."),
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
    allow_title: "Toegang toestaan?",
    wants_access: ("", " wil toegang tot je account"),
    signed_in_as: "Ingelogd als",
    client: "Client",
    no_scopes: "Er wordt niet om een specifieke toestemming gevraagd.",
    scopes_intro: "Als je toestemming geeft, kan deze applicatie:",
    allow: "Toestaan",
    deny: "Weigeren",
    error_title: "Fout",
    error_heading: "Er is iets misgegaan",
    error_fallback: "Het verzoek kon niet worden voltooid.",
    error_code: "Foutcode",
    device_title: "Een apparaat koppelen",
    device_lead: ("Voer de code in die op je apparaat wordt getoond om het te koppelen aan ", "."),
    code: "Code",
    continue_: "Doorgaan",
    device_approved: (
        "Apparaat gekoppeld",
        "Het apparaat is nu gekoppeld. Je kunt deze pagina sluiten en teruggaan naar het apparaat.",
    ),
    device_denied: ("Apparaat niet gekoppeld", "Je hebt de toegang geweigerd. Het apparaat is niet gekoppeld."),
    device_other: "Apparaatautorisatie",
    connections_title: "Gekoppelde applicaties",
    connections_intro: "Deze applicaties hebben toegang tot je account.",
    no_connections: "Geen enkele applicatie heeft toegang tot je account.",
    since: "Gekoppeld sinds",
    connection_can: "Deze applicatie kan:",
    connection_no_scopes: "Geen specifieke toestemming.",
    revoke: "Toegang intrekken",
    revoked: ("De toegang van ", " is ingetrokken."),
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
    allow_title: "Zugriff erlauben?",
    wants_access: ("", " möchte auf Ihr Konto zugreifen"),
    signed_in_as: "Angemeldet als",
    client: "Client",
    no_scopes: "Es werden keine besonderen Berechtigungen angefordert.",
    scopes_intro: "Wenn Sie zustimmen, kann die Anwendung:",
    allow: "Erlauben",
    deny: "Ablehnen",
    error_title: "Fehler",
    error_heading: "Etwas ist schiefgelaufen",
    error_fallback: "Die Anfrage konnte nicht abgeschlossen werden.",
    error_code: "Fehlercode",
    device_title: "Gerät verbinden",
    device_lead: ("Geben Sie den auf Ihrem Gerät angezeigten Code ein, um es mit ", " zu verbinden."),
    code: "Code",
    continue_: "Weiter",
    device_approved: (
        "Gerät verbunden",
        "Das Gerät ist jetzt verbunden. Sie können diese Seite schließen und zum Gerät zurückkehren.",
    ),
    device_denied: ("Gerät nicht verbunden", "Sie haben den Zugriff abgelehnt. Das Gerät wurde nicht verbunden."),
    device_other: "Geräteautorisierung",
    connections_title: "Verbundene Anwendungen",
    connections_intro: "Diese Anwendungen haben Zugriff auf Ihr Konto.",
    no_connections: "Keine Anwendung hat Zugriff auf Ihr Konto.",
    since: "Verbunden seit",
    connection_can: "Die Anwendung kann:",
    connection_no_scopes: "Keine besonderen Berechtigungen.",
    revoke: "Zugriff entziehen",
    revoked: ("Der Zugriff für ", " wurde entzogen."),
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
    allow_title: "Consentire l'accesso?",
    wants_access: ("", " vuole accedere al tuo account"),
    signed_in_as: "Accesso effettuato come",
    client: "Client",
    no_scopes: "Non richiede autorizzazioni particolari.",
    scopes_intro: "Se lo consenti, l'applicazione potrà:",
    allow: "Consenti",
    deny: "Nega",
    error_title: "Errore",
    error_heading: "Qualcosa è andato storto",
    error_fallback: "Impossibile completare la richiesta.",
    error_code: "Codice di errore",
    device_title: "Collega un dispositivo",
    device_lead: ("Inserisci il codice mostrato sul dispositivo per collegarlo a ", "."),
    code: "Codice",
    continue_: "Continua",
    device_approved: (
        "Dispositivo collegato",
        "Il dispositivo è ora collegato. Puoi chiudere questa pagina e tornare al dispositivo.",
    ),
    device_denied: ("Dispositivo non collegato", "Hai negato l'accesso. Il dispositivo non è stato collegato."),
    device_other: "Autorizzazione del dispositivo",
    connections_title: "Applicazioni collegate",
    connections_intro: "Queste applicazioni hanno accesso al tuo account.",
    no_connections: "Nessuna applicazione ha accesso al tuo account.",
    since: "Collegata dal",
    connection_can: "L'applicazione può:",
    connection_no_scopes: "Nessuna autorizzazione particolare.",
    revoke: "Revoca l'accesso",
    revoked: ("L'accesso di ", " è stato revocato."),
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
/// page's style sheet.
pub const PALETTE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f4f5f7;--card:#fff;--muted:#5b6470;--line:#d0d5dc;--accent:#0b57d0;--accent-fg:#fff;--err:#b3261e}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#15171a;--card:#1f2226;--muted:#a3acb8;--line:#3a3f46;--accent:#8ab4f8;--accent-fg:#0b1d3a;--err:#f2b8b5}}";

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
        for (name, value) in &cx.hidden {
            self.raw("<input type=\"hidden\" name=\"");
            self.text(name);
            self.raw("\" value=\"");
            self.text(value);
            self.raw("\">\n");
        }
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
    use portcullis_sdk::consent::Connection;

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
        Ui::render_login(LoginPage { context: cx, login_hint: None, error: None }).unwrap()
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
        assert!(framed.contains(&format!("<style>{PALETTE}main{{margin:0}}</style>")), "{framed}");
        assert!(framed.contains("<body class=\"fr&lt;amed\">\n<main>"), "{framed}");
        assert!(framed.contains("<footer>https://id.example</footer>"), "{framed}");
        let bare = Pages::<Bare>::render_consent(ConsentPage {
            context: cx(),
            user_name: "alice".into(),
            scopes: vec!["openid".into()],
        })
        .unwrap();
        assert!(bare.contains(&format!("<style>{PALETTE}</style>")), "{bare}");
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
            outcome: Some("approved".into()),
        })
        .unwrap();
        assert!(done.contains("Device connected") && !done.contains("<form"));
        let denied = Ui::render_device(DevicePage {
            context: in_locale("it"),
            user_code: None,
            outcome: Some("denied".into()),
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
                error: "invalid_request".into(),
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
        assert_eq!(html.matches("<input type=\"hidden\" name=\"csrf\" value=\"t&quot;k\">").count(), 2);
        assert!(html.contains("name=\"revoke\" value=\"c&quot;1\""));
        assert!(html.contains("name=\"revoke\" value=\"c2\""));
        assert_eq!(html.matches(">Revoke access</button>").count(), 2);
        // The application's icon and name, the client's name, the scopes and the date.
        assert!(html.contains("<img src=\"data:image/png;base64,AAAA\" alt=\"\" width=\"48\" height=\"48\">"));
        assert!(html.contains(">Ledger &lt;Pro&gt;</h2>"));
        assert!(html.contains("Client: Ledger mobile"));
        assert!(html.contains(">Ledger mobile</h2>"), "without an application, the client's name: {html}");
        assert!(html.contains("See your email address") && html.contains("x&lt;y"));
        assert!(html.contains("<time datetime=\"2025-12-03\">2025-12-03</time>"));
        assert!(html.contains("<time datetime=\"1970-01-01\">1970-01-01</time>"));
        assert!(!html.contains("id=\"revoked\"") && !html.contains("<script") && !html.contains("style=\""));
        assert!(!html.contains("<i>") && !html.contains("<Pro>"));
    }

    #[test]
    fn connections_status_and_empty_list() {
        let html = connections("en", Vec::new(), Some("<Old> app"));
        assert!(html.contains("<p class=\"status\" role=\"status\" id=\"revoked\">Access for <strong>&lt;Old&gt; app</strong> was revoked.</p>"), "{html}");
        assert!(html.contains("No application has access to your account."));
        assert!(!html.contains("<ul class=\"connections\"") && !html.contains("<form"));
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
}
