//! The `portcullis` command: the server and the operator's CLI, both on one configuration.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use portcullis::applications::{
    self as apps, AddApplication, ApplicationFilter, ApplicationUpdate, MemberRoles, NewApplication, NewOrganization,
    NewTemplate, NewTemplateClient, OrganizationUpdate, TemplateUpdate,
};
use portcullis::backup;
use portcullis::config::Config;
use portcullis::encryption_key;
use portcullis::model::TokenSettings;
use portcullis::model::{Clock, SystemClock};
use portcullis::registry::{self, Caller, ClientUpdate, NewClient, NewUser, UserUpdate};
use portcullis::server::{self, Portcullis};
use serde::Serialize;

/// mimalloc: a request's many small, short-lived allocations, served from per-thread pages,
/// cost less than with the system allocator, and freed memory goes back to the pages it came
/// from instead of fragmenting one heap (`BENCHMARKS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`), which the binding leaves unnamed.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc gives the pages it frees back to the system at once, instead of a second later (its
/// default): under the load benchmark the server's peak RSS falls from 135–175 MB to 100–110 MB,
/// at a CPU time within the runs' spread (`BENCHMARKS.md`). An operator's `MIMALLOC_PURGE_DELAY`
/// (milliseconds) still decides.
fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called first in `main`, before any other thread runs; mimalloc reads the
        // option at each purge.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
}

#[derive(Parser)]
#[command(name = "portcullis", version, about = "OAuth 2.0 / OpenID Connect server with WebAssembly policies")]
struct Cli {
    /// Configuration file (default: ./portcullis.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OAuth 2.0 / OIDC endpoints.
    Serve,
    /// Manage users of the built-in directory.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage organizations and the roles their members hold.
    #[command(subcommand, name = "org")]
    Organization(OrganizationCommand),
    /// Manage applications (a module's external app, an organization's app, a user's own app).
    #[command(subcommand, name = "app")]
    Application(ApplicationCommand),
    /// Manage client templates and create clients from them.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Add applications to organizations, list and remove them.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Print audit events as JSON lines, oldest first.
    Events(EventsArgs),
    /// Write every record the database holds to FILE (JSON lines; signing keys stay sealed
    /// with the encryption key, whose fingerprint the file names), atomically, readable by
    /// its owner only.
    Export { file: PathBuf },
    /// Restore an export into an empty database, with the encryption key it was made with.
    Import { file: PathBuf },
    /// Dynamic Client Registration: the initial access tokens registrations carry.
    #[command(subcommand)]
    Registration(RegistrationCommand),
    /// Plugins: checking a component before it serves.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Scope policies: try one on stored records before it serves.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write a new plugin project into a new directory: the contract's WIT, a policy that
    /// compiles and does something visible, its manifest, a case file and a README.
    New {
        /// The plugin's kind (`scope-policy`, `consent-ui`, `storage`, `grant-type`).
        kind: String,
        /// Its name: the crate's, the files' and the manifest's.
        name: String,
        /// Its language (`rust`, `js`, `python`).
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Where (default: a new directory NAME here).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Depend on the Rust SDK at this path as well as by version (inside this repository).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build a plugin project (Rust, JavaScript or Python, read from its files) into
    /// `<name>.wasm` and `<name>.toml` (the manifest with its sources' hash), then check the
    /// component as `plugin check` does.
    Build {
        /// The project (default: here).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where the two files go (default: the project).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A virtual environment with componentize-py, for a Python project.
        #[arg(long)]
        python_venv: Option<PathBuf>,
    },
    /// Check a component against every contract version this server links, without a
    /// server: the kind and contract it implements, whether it links, what it imports that
    /// the host does not give, and whether its manifest agrees. Fails unless it would load.
    Check {
        file: PathBuf,
        /// Its manifest (default: FILE with the extension `.toml`, when there is one).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Run a scope policy against the cases of a JSON file (client, user and roles,
    /// organization, requested scopes, grant type, and the answer expected), with no server
    /// and no database; fails when an answer differs from the one expected.
    Test {
        file: PathBuf,
        cases: PathBuf,
        /// Write each case's expected answer from what the policy answered.
        #[arg(long)]
        update: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// What a scope policy would grant a stored client and user now, through the host's
    /// rules and the policy, with nothing issued, stored or audited. A denial is part of the
    /// answer (exit 0), a policy's fault included; a policy that cannot be asked is the
    /// error a real request would get.
    Simulate {
        /// The client's id.
        #[arg(long, allow_hyphen_values = true)]
        client: String,
        /// The user's username (or id); left out for the client credentials grant.
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
        /// A scope asked for (repeatable); none: a request without a `scope` parameter.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A loaded scope policy to ask in place of the client's own.
        #[arg(long)]
        plugin: Option<String>,
        /// The grant type (default `authorization_code`).
        #[arg(long)]
        grant_type: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A simulation's answer, for people.
fn print_simulation(s: &apps::Simulation) {
    let list = |v: &[String]| if v.is_empty() { "(none)".to_owned() } else { v.join(" ") };
    println!("client:     {}", s.client_id);
    if let (Some(name), Some(id)) = (&s.username, &s.user_id) {
        println!("user:       {name} ({id})");
        println!("roles:      {}", list(&s.user_roles));
    }
    println!("grant type: {}", s.grant_type);
    if s.plugin == s.client_plugin {
        println!("policy:     {}", s.plugin);
    } else {
        println!("policy:     {} (in place of the client's {})", s.plugin, s.client_plugin);
    }
    match &s.requested_scopes {
        Some(r) => println!("requested:  {}", list(r)),
        None => println!("requested:  (no scope parameter)"),
    }
    println!("allowed:    {}", list(&s.allowed_scopes));
    match &s.denied {
        Some(d) => println!("denied:     {}: {}", d.error, d.error_description),
        None => {
            println!("granted:    {}", list(&s.scopes));
            for c in &s.claims {
                let targets: Vec<&str> =
                    [(c.access_token, "access token"), (c.id_token, "ID token"), (c.userinfo, "userinfo")]
                        .into_iter()
                        .filter_map(|(on, name)| on.then_some(name))
                        .collect();
                println!("claim:      {} = {} ({})", c.name, c.value, targets.join(", "));
            }
        }
    }
    let removed = &s.removed_by_host;
    if !removed.requested_not_allowed.is_empty() {
        let scopes = removed.requested_not_allowed.join(" ");
        println!("not the client's:  {scopes} (requested; the host grants none of them)");
    }
    if !removed.policy_scopes.is_empty() {
        let scopes = removed.policy_scopes.join(" ");
        println!("dropped:    {scopes} (granted by the policy past the client's scopes)");
    }
    if !removed.policy_claims.is_empty() {
        println!("dropped:    claims {} (the server owns them)", removed.policy_claims.join(" "));
    }
}

#[derive(Subcommand)]
enum RegistrationCommand {
    /// Initial access tokens (RFC 7591 §3).
    #[command(subcommand)]
    Token(RegistrationTokenCommand),
}

#[derive(Subcommand)]
enum RegistrationTokenCommand {
    /// Issue one; prints it as JSON, the token shown only now.
    Issue {
        /// Seconds it lives (a day when unset).
        #[arg(long)]
        ttl: Option<u64>,
        /// Registrations it allows (any number until it expires when unset).
        #[arg(long)]
        uses: Option<u32>,
    },
    /// List those still usable (JSON lines, without the tokens).
    List,
    /// Revoke one by its id.
    Revoke {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

/// `events`: the filters of `GET /admin/v1/events`.
#[derive(Args)]
struct EventsArgs {
    /// An event type (`client.created`).
    #[arg(long = "type")]
    kind: Option<String>,
    /// What the events are about: a record kind and id (`client:ID`).
    #[arg(long)]
    subject: Option<String>,
    /// Who did it: `operator`, `system`, `user:ID` or `client:ID`.
    #[arg(long)]
    actor: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Events at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Print at most this many events (default: all).
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Subcommand)]
enum OrganizationCommand {
    /// Create an organization.
    Add {
        #[arg(long)]
        name: String,
        /// The organization it belongs to (a provider's customer).
        #[arg(long)]
        parent: Option<String>,
        /// A service role available in it (`vcd:admin`, ...); repeat for more.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Change an organization: its name, the service roles available in it (`--role`,
    /// repeated, replaces them all; `--no-roles` makes none available), or its consent UI.
    Update {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "role", conflicts_with = "no_roles")]
        roles: Vec<String>,
        #[arg(long)]
        no_roles: bool,
        /// The consent UI of its clients whose application names none (it must be loaded);
        /// empty: the server's default.
        #[arg(long)]
        consent_ui: Option<String>,
    },
    /// List organizations.
    List,
    /// Show one organization.
    Show {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Set the roles a user holds in an organization (none: no longer a member).
    Member {
        #[arg(allow_hyphen_values = true)]
        organization: String,
        #[arg(allow_hyphen_values = true)]
        user: String,
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List an organization's members and their roles.
    Members {
        #[arg(allow_hyphen_values = true)]
        organization: String,
    },
}

#[derive(Subcommand)]
enum ApplicationCommand {
    /// Create an application; prints it, with its client's credentials (shown only now).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// An https URL or a data:image URI.
        #[arg(long)]
        icon: Option<String>,
        /// The module it is the external application of.
        #[arg(long)]
        module: Option<String>,
        /// The organization it is created in.
        #[arg(long)]
        organization: Option<String>,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// The user it is created as.
        #[arg(long)]
        created_by: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        /// Token settings as JSON, e.g. '{"access_token_ttl": 3600}'.
        #[arg(long, value_parser = token_settings)]
        tokens: Option<TokenSettings>,
    },
    /// List applications.
    List {
        #[arg(long)]
        organization: Option<String>,
        #[arg(long)]
        created_by: Option<String>,
        #[arg(long)]
        module: Option<String>,
    },
    /// Show one application.
    Show {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Change an application; what is not given stays.
    Update {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        icon: Option<String>,
        /// Replaces its scopes.
        #[arg(long = "scope")]
        scopes: Option<Vec<String>>,
        /// Replaces its redirect URIs.
        #[arg(long = "redirect-uri")]
        redirect_uris: Option<Vec<String>>,
        #[arg(long, value_parser = token_settings)]
        tokens: Option<TokenSettings>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// The consent UI of its clients that name none (it must be loaded); empty: their
        /// organization's, else the server's default.
        #[arg(long)]
        consent_ui: Option<String>,
    },
    /// Delete an application, its templates, instances and clients, and all issued to them.
    Delete {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Add a template to an application.
    Add {
        #[arg(allow_hyphen_values = true)]
        application: String,
        #[arg(long)]
        name: String,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long, value_parser = token_settings)]
        tokens: Option<TokenSettings>,
    },
    /// List an application's templates.
    List {
        #[arg(allow_hyphen_values = true)]
        application: String,
    },
    /// Change a template: its clients get what it now says.
    Update {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "scope")]
        scopes: Option<Vec<String>>,
        #[arg(long, value_parser = token_settings)]
        tokens: Option<TokenSettings>,
    },
    /// Delete a template (refused while clients made from it remain).
    Delete {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Create a client from a template; prints its credentials, shown only now.
    Client {
        #[arg(allow_hyphen_values = true)]
        template: String,
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// After this Unix time the client gets nothing.
        #[arg(long)]
        expires_at: Option<i64>,
    },
}

#[derive(Subcommand)]
enum InstanceCommand {
    /// Add an application to the organization it was created in.
    Add {
        #[arg(allow_hyphen_values = true)]
        organization: String,
        #[arg(long)]
        application: String,
        /// The user it is added as (their roles bound what it may have).
        #[arg(long)]
        added_by: Option<String>,
    },
    /// List the applications with access to an organization.
    List {
        #[arg(allow_hyphen_values = true)]
        organization: String,
    },
    /// Remove an instance: its tokens are inactive at once.
    Remove {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

fn json_value(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

fn token_settings(text: &str) -> Result<TokenSettings, String> {
    serde_json::from_str(text).map_err(|e| format!("token settings: {e}"))
}

/// An option that clears a field when given empty: absent, `Some(None)` for "", or the value.
fn clearable(value: Option<String>) -> Option<Option<String>> {
    value.map(|v| Some(v).filter(|v| !v.is_empty()))
}

/// Prints one record as a JSON line.
fn print(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Prints records as JSON lines.
fn print_all<T: Serialize>(values: &[T]) -> anyhow::Result<()> {
    values.iter().try_for_each(print)
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add(UserAdd),
    /// List users.
    List,
    /// Change a user; what is not given stays.
    Update(UserChange),
    /// Disable a user: their sessions end, their grants (and tokens) are revoked, and they
    /// sign in nowhere until enabled.
    Disable {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Enable a disabled user: they may sign in again.
    Enable {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Delete a user with their sessions, grants, consents and memberships.
    Delete {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Remove every second factor of a user (authenticator app, recovery codes, passkeys),
    /// named by username or id; their sessions end, and they sign in with their password.
    ResetFactors {
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Set a user's password, read from standard input; their sessions end.
    SetPassword {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

// `user update`: what `registry::UserUpdate` takes, `disabled` aside (`user disable|enable`).
#[derive(Args)]
struct UserChange {
    #[arg(allow_hyphen_values = true)]
    id: String,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// An empty value clears it.
    #[arg(long)]
    given_name: Option<String>,
    /// An empty value clears it.
    #[arg(long)]
    family_name: Option<String>,
    /// An empty value clears it.
    #[arg(long)]
    company: Option<String>,
    /// Replaces the user's roles; repeat for several.
    #[arg(long = "role", conflicts_with = "no_roles")]
    roles: Vec<String>,
    /// Takes every role away.
    #[arg(long)]
    no_roles: bool,
}

impl UserChange {
    fn into_update(self) -> (String, UserUpdate) {
        let clearable = |v: Option<String>| v.map(|v| Some(v).filter(|v| !v.is_empty()));
        let update = UserUpdate {
            email: self.email,
            name: self.name,
            given_name: clearable(self.given_name),
            family_name: clearable(self.family_name),
            company: clearable(self.company),
            roles: (self.no_roles || !self.roles.is_empty()).then_some(self.roles),
            disabled: None,
        };
        (self.id, update)
    }
}

/// A password from standard input, without its line end.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}

// `user add`: what the registration takes (`registry::NewUser`), the password aside.
#[derive(Args)]
struct UserAdd {
    #[arg(long)]
    username: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
    /// Released with `profile` as `given_name` (OIDC Core §5.1).
    #[arg(long)]
    given_name: Option<String>,
    /// Released with `profile` as `family_name`.
    #[arg(long)]
    family_name: Option<String>,
    #[arg(long)]
    company: Option<String>,
    #[arg(long = "role")]
    roles: Vec<String>,
    #[arg(long, required = true)]
    password_stdin: bool,
}

impl UserAdd {
    fn into_new_user(self, password: String) -> NewUser {
        NewUser {
            username: self.username,
            password,
            email: self.email,
            name: self.name,
            given_name: self.given_name,
            family_name: self.family_name,
            company: self.company,
            roles: self.roles,
            organization_id: None,
        }
    }
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and (confidential clients) its secret, once.
    // Boxed: the other commands need not be as large as this one.
    Add(Box<ClientAdd>),
    /// List clients.
    List,
    /// Delete a client and everything issued to it.
    Delete {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Change a client; what is not given stays. Checked as a registration is.
    Update(Box<ClientChange>),
    /// Give a confidential client a new secret, printed once; the old one is accepted for
    /// the grace, then refused.
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Seconds the old secret is still accepted (0: refused at once; at most 7 days).
        #[arg(long, default_value_t = 0)]
        grace: u64,
        /// Print as a JSON object.
        #[arg(long)]
        json: bool,
    },
}

// `client update`: the options become the members of a `registry::ClientUpdate`, laid over
// `--change`.
#[derive(Args)]
struct ClientChange {
    #[arg(allow_hyphen_values = true)]
    id: String,
    #[arg(long)]
    name: Option<String>,
    /// Replaces its redirect URIs; repeat for several.
    #[arg(long = "redirect-uri")]
    redirect_uris: Option<Vec<String>>,
    /// Replaces its allowed origins; repeat for several.
    #[arg(long = "allowed-origin")]
    allowed_origins: Option<Vec<String>>,
    /// Replaces its grant types; repeat for several.
    #[arg(long = "grant-type")]
    grant_types: Option<Vec<String>>,
    /// Replaces its response types; repeat for several.
    #[arg(long = "response-type")]
    response_types: Option<Vec<String>>,
    /// Replaces its scopes; repeat, or space-separate, for several.
    #[arg(long = "scope")]
    scopes: Option<Vec<String>>,
    /// Its scope policy plugin (it must be loaded); empty: the server's default.
    #[arg(long)]
    scope_policy: Option<String>,
    /// Its consent UI plugin (it must be loaded); empty: the server's default.
    #[arg(long)]
    consent_ui: Option<String>,
    #[arg(long)]
    access_token_ttl: Option<u64>,
    #[arg(long)]
    refresh_token_ttl: Option<u64>,
    #[arg(long)]
    code_ttl: Option<u64>,
    /// Its public keys as a JWK Set (JSON), for `private_key_jwt`.
    #[arg(long, value_parser = json_value)]
    jwks: Option<serde_json::Value>,
    /// Where it publishes its JWK Set, for `private_key_jwt`.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// Any members of the admin API's client update, as a JSON object; the options above
    /// are laid over it.
    #[arg(long, value_parser = json_value)]
    change: Option<serde_json::Value>,
}

impl ClientChange {
    /// The client's id and the update the options ask for.
    fn into_update(self) -> anyhow::Result<(String, ClientUpdate)> {
        let mut change = match self.change {
            Some(serde_json::Value::Object(o)) => o,
            Some(_) => anyhow::bail!("--change: a JSON object"),
            None => serde_json::Map::new(),
        };
        let plugin = |v: String| if v.is_empty() { serde_json::Value::Null } else { v.into() };
        let scopes = self.scopes.map(|s| {
            s.iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>()
        });
        let options = [
            ("name", self.name.map(Into::into)),
            ("redirect_uris", self.redirect_uris.map(Into::into)),
            ("allowed_origins", self.allowed_origins.map(Into::into)),
            ("grant_types", self.grant_types.map(Into::into)),
            ("response_types", self.response_types.map(Into::into)),
            ("scopes", scopes.map(Into::into)),
            ("scope_policy", self.scope_policy.map(plugin)),
            ("consent_ui", self.consent_ui.map(plugin)),
            ("access_token_ttl", self.access_token_ttl.map(Into::into)),
            ("refresh_token_ttl", self.refresh_token_ttl.map(Into::into)),
            ("code_ttl", self.code_ttl.map(Into::into)),
            ("jwks", self.jwks),
            ("jwks_uri", self.jwks_uri.map(Into::into)),
        ];
        for (name, value) in options {
            if let Some(value) = value {
                change.insert(name.into(), value);
            }
        }
        let update = serde_json::from_value(serde_json::Value::Object(change))?;
        Ok((self.id, update))
    }
}

// `client add`: what the registration takes (`registry::NewClient`).
#[derive(Args)]
struct ClientAdd {
    #[arg(long)]
    name: String,
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// The origin of a browser application that calls its endpoints from another origin
    /// (`https://app.example.com`); without one, the origins of its redirect URIs.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// A response type it may use (`code`, `id_token`, `code id_token`, ...); repeat for
    /// several. Without any it uses `code` alone; with some, only those listed (list `code`
    /// too to keep it).
    #[arg(long = "response-type")]
    response_types: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `client_secret_jwt`, `private_key_jwt`.
    #[arg(long)]
    token_endpoint_auth_method: Option<String>,
    /// The client's public keys as a JWK Set (JSON), for `private_key_jwt`.
    #[arg(long, value_parser = json_value)]
    jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK Set, for `private_key_jwt` instead of `--jwks`.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// Its authorization requests must be pushed first (RFC 9126).
    #[arg(long)]
    require_pushed_authorization_requests: bool,
    /// Where a logout it starts may send the browser back.
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Where its request objects may be fetched from by reference (OIDC Core §6.2).
    #[arg(long = "request-uri")]
    request_uris: Vec<String>,
    /// Where logout tokens are posted when a session it signed in to ends.
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// An audience token exchange may issue its tokens for (RFC 8693 §2.1), besides this server.
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// The algorithm its ID tokens (and logout tokens) are signed with, one the server
    /// serves (`ES256`, `RS256`, `EdDSA`); unset: the server's `keys.algorithm`.
    #[arg(long)]
    id_token_signed_response_alg: Option<String>,
    /// The algorithm it expects JWT-secured authorization responses (JARM) signed with, one
    /// the server serves; unset: its ID tokens' algorithm.
    #[arg(long)]
    authorization_signed_response_alg: Option<String>,
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A public client (no secret; PKCE required).
    #[arg(long)]
    public: bool,
    /// Skip the consent page for this client.
    #[arg(long)]
    skip_consent: bool,
    /// A resource server: may introspect tokens issued to any client.
    #[arg(long)]
    introspect_any: bool,
    /// Its access tokens are always DPoP-bound: token requests without a DPoP proof are refused.
    #[arg(long)]
    dpop_bound_access_tokens: bool,
    /// Print as a JSON object.
    #[arg(long)]
    json: bool,
}

impl ClientAdd {
    /// The registration the options ask for; `--scope` may hold several, space-separated.
    fn into_new_client(self) -> NewClient {
        let scopes =
            self.scopes.iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        NewClient {
            name: self.name,
            redirect_uris: self.redirect_uris,
            allowed_origins: (!self.allowed_origins.is_empty()).then_some(self.allowed_origins),
            grant_types: self.grant_types,
            response_types: self.response_types,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            request_uris: self.request_uris,
            backchannel_logout_session_required: self.backchannel_logout_uri.is_some(),
            backchannel_logout_uri: self.backchannel_logout_uri,
            audiences: self.audiences,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            authorization_signed_response_alg: self.authorization_signed_response_alg,
            public: self.public,
            skip_consent: self.skip_consent,
            introspect_any: self.introspect_any,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            scopes,
            ..Default::default()
        }
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the signing keys and their states (next, signing, retiring, retired).
    List,
    /// Add a new key for every algorithm, published now and signing after
    /// `keys.publish_ahead`; the keys it replaces stay published until their tokens expire.
    Rotate {
        /// Sign with the new keys at once (an emergency: a resource server's cached JWK Set
        /// may not know them yet).
        #[arg(long)]
        now: bool,
    },
    /// Retire a compromised key: it leaves the JWK Set at once and its tokens read
    /// inactive. Retiring a key that signs makes a new key of its algorithm sign at once.
    Retire {
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

/// `portcullis plugin check`: prints what the component is, and fails unless the server would
/// load it (as its manifest says, when it has one).
fn plugin_check(file: &std::path::Path, manifest: Option<&std::path::Path>) -> anyhow::Result<()> {
    use portcullis::plugin::check;
    let wasm = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let report = check::check(&wasm).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    println!("{}", file.display());
    for world in &report.worlds {
        let (kind, version) = (world.kind, world.contract.version());
        match &world.links {
            Ok(()) => println!("  implements {kind}, portcullis:plugin@{version}: links"),
            Err(e) => println!("  implements {kind}, portcullis:plugin@{version}: REFUSED, {e}"),
        }
    }
    for import in &report.imports {
        match (&import.missing, &import.grant) {
            (None, None) => println!("  imports {}: given", import.name),
            (None, Some(grant)) => println!("  imports {}: given with a grant, {grant}", import.name),
            (Some(why), _) => println!("  imports {}: NOT GIVEN, {why}", import.name),
        }
    }
    if report.worlds.is_empty() {
        anyhow::bail!(
            "{} exports no plugin world: a plugin exports portcullis:plugin/scope, /consent, /storage or /grant, \
             of version {} or an earlier one this server links",
            file.display(),
            portcullis::plugin::Contract::CURRENT
        );
    }
    if !report.loads() {
        anyhow::bail!("{} would be refused: it does not link", file.display());
    }
    let default_manifest = file.with_extension("toml");
    let manifest = match manifest {
        Some(path) => Some(path.to_path_buf()),
        None => default_manifest.is_file().then_some(default_manifest),
    };
    if let Some(path) = manifest {
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let parsed =
            portcullis::plugin::Manifest::parse(&text, stem).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let agrees =
            report.worlds.iter().any(|w| w.links.is_ok() && w.kind == parsed.kind && w.contract == parsed.contract);
        if !agrees {
            anyhow::bail!(
                "{} says {}, portcullis:plugin@{}, which the component does not implement",
                path.display(),
                parsed.kind,
                parsed.contract.version()
            );
        }
        if let Some(refused) = check::refused(&report, &parsed) {
            anyhow::bail!("{} would be refused: it {refused}", path.display());
        }
        println!("  manifest {}: agrees", path.display());
    }
    Ok(())
}

/// `portcullis plugin test`: each case's verdict; fails when one differs (or, without
/// `--update`, expects nothing).
async fn plugin_test(file: &std::path::Path, cases_path: &std::path::Path, update: bool) -> anyhow::Result<()> {
    use portcullis::plugin_cases::{Cases, run};
    let text = std::fs::read_to_string(cases_path).map_err(|e| anyhow::anyhow!("{}: {e}", cases_path.display()))?;
    let mut cases: Cases = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", cases_path.display()))?;
    let outcomes = run(file, &mut cases, update).await?;
    let show = |e: &portcullis::plugin_cases::Expect| serde_json::to_string(e).unwrap_or_default();
    let mut differ = 0;
    for outcome in &outcomes {
        let answered = show(&outcome.answered);
        match (&outcome.expected, outcome.agrees) {
            (Some(_), true) => println!("ok       {}", outcome.name),
            (Some(expected), false) => {
                differ += 1;
                let verb = if update { "WRITTEN " } else { "DIFFERS " };
                println!("{verb} {}: expected {}, answered {answered}", outcome.name, show(expected));
            }
            (None, _) if update => println!("WRITTEN  {}: answered {answered}", outcome.name),
            (None, _) => {
                differ += 1;
                println!("NEW      {}: answered {answered} (--update writes it as expected)", outcome.name);
            }
        }
    }
    if update {
        let text = serde_json::to_string_pretty(&cases)?;
        std::fs::write(cases_path, text + "\n").map_err(|e| anyhow::anyhow!("{}: {e}", cases_path.display()))?;
        println!("{}: {} answers written", cases_path.display(), outcomes.len());
        return Ok(());
    }
    if differ > 0 {
        anyhow::bail!("{differ} of {} cases differ from what was expected", outcomes.len());
    }
    println!("{} cases as expected", outcomes.len());
    Ok(())
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::from(2);
        }
    };
    // Held to the end of `main`: dropped, it writes the lines still queued.
    let _log = portcullis::telemetry::init(config.server.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // What the CLI does is audited as the operator's, on this process's replica id.
    let audit = portcullis::audit::Audit::new(&config, std::sync::Arc::new(portcullis::model::SystemClock));
    let code = match runtime.block_on(audit.scope(None, None, run(cli.command, config))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    };
    // What is still running (background upkeep, a connection past the grace) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(portcullis::limits::EXIT_WAIT_MS));
    code
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Plugin(PluginCommand::New { kind, name, lang, dir, sdk_path }) => {
            let kind =
                portcullis::plugin::PluginKind::ALL.into_iter().find(|k| k.as_str() == kind).ok_or_else(|| {
                    anyhow::anyhow!("`{kind}` is not a plugin kind (scope-policy, consent-ui, storage, grant-type)")
                })?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let written = portcullis::scaffold::new_plugin(kind, &name, &lang, &dir, sdk_path.as_deref())?;
            println!("{}: {} files; next: {}", dir.display(), written.len(), dir.join("README.md").display());
            Ok(())
        }
        Command::Plugin(PluginCommand::Build { dir, out, python_venv }) => {
            let options = portcullis::plugin_build::Options { dir, out, python_venv };
            let built = portcullis::plugin_build::build(&options)?;
            let checked = plugin_check(&built.wasm, Some(&built.manifest));
            println!(
                "wrote {} ({} bytes, from {}) and {}",
                built.wasm.display(),
                built.bytes,
                built.language.title(),
                built.manifest.display()
            );
            checked
        }
        Command::Plugin(PluginCommand::Check { file, manifest }) => plugin_check(&file, manifest.as_deref()),
        Command::Plugin(PluginCommand::Test { file, cases, update }) => plugin_test(&file, &cases, update).await,
        Command::Serve => {
            let listen = config.server.listen;
            let app = Portcullis::open(config, true).await?;
            let listener = portcullis::connections::bind(listen)
                .map_err(|cause| portcullis::start::StartError::Listen { address: listen, cause })?;
            tracing::info!(address = %listener.local_addr()?, issuer = %app.config.issuer(), "serving");
            server::serve(app, listener).await
        }
        Command::User(cmd) => {
            let app = Portcullis::open(config, false).await?;
            match cmd {
                UserCommand::Add(add) => {
                    let new = add.into_new_user(password_from_stdin()?);
                    let user = registry::add_user(&app.storage, &app.passwords, &Caller::Operator, new).await?;
                    println!("{}", serde_json::to_string(&user)?);
                }
                UserCommand::List => {
                    print_all(&registry::list_users(&app.storage, &Caller::Operator).await?)?;
                }
                UserCommand::Update(change) => {
                    let (id, update) = change.into_update();
                    print(&registry::update_user(&app.storage, &Caller::Operator, &id, update).await?)?;
                }
                UserCommand::Disable { id } => {
                    let update = UserUpdate { disabled: Some(true), ..Default::default() };
                    print(&registry::update_user(&app.storage, &Caller::Operator, &id, update).await?)?;
                }
                UserCommand::Enable { id } => {
                    let update = UserUpdate { disabled: Some(false), ..Default::default() };
                    print(&registry::update_user(&app.storage, &Caller::Operator, &id, update).await?)?;
                }
                UserCommand::Delete { id } => {
                    registry::delete_user(&app.storage, &Caller::Operator, &id)
                        .await
                        .map_err(|e| anyhow::anyhow!("user `{id}`: {e}"))?;
                    println!("deleted {id}");
                }
                UserCommand::ResetFactors { user } => {
                    let id = match app.storage.find_user(&user).await? {
                        Some(found) => found.id,
                        None => user.clone(),
                    };
                    let reset = registry::reset_factors(&app.storage, &Caller::Operator, &id)
                        .await
                        .map_err(|e| anyhow::anyhow!("user `{user}`: {e}"))?;
                    print(&reset)?;
                }
                UserCommand::SetPassword { id, password_stdin: _ } => {
                    let password = password_from_stdin()?;
                    let user =
                        registry::set_user_password(&app.storage, &app.passwords, &Caller::Operator, &id, &password)
                            .await?;
                    print(&user)?;
                }
            }
            Ok(())
        }
        Command::Client(cmd) => {
            let app = Portcullis::open(config, false).await?;
            match cmd {
                ClientCommand::Add(add) => {
                    let json = add.json;
                    let new = add.into_new_client();
                    let registered = registry::register_client(&app.storage, &app.keys, &Caller::Operator, new).await?;
                    if json {
                        println!("{}", serde_json::to_string(&registered)?);
                    } else {
                        println!("client_id:     {}", registered.client_id);
                        if let Some(secret) = &registered.client_secret {
                            println!("client_secret: {secret}");
                            println!("(the secret is shown only now; store it safely)");
                        }
                    }
                }
                ClientCommand::List => {
                    print_all(&registry::list_clients(&app.storage, &Caller::Operator).await?)?;
                }
                ClientCommand::Delete { id } => {
                    registry::delete_client(&app.storage, &Caller::Operator, &id)
                        .await
                        .map_err(|e| anyhow::anyhow!("client `{id}`: {e}"))?;
                    println!("deleted {id}");
                }
                ClientCommand::Update(change) => {
                    let (id, update) = change.into_update()?;
                    print(&registry::update_client(&app.storage, &app.keys, &Caller::Operator, &id, update).await?)?;
                }
                ClientCommand::RotateSecret { id, grace, json } => {
                    let now = portcullis::model::now();
                    let rotated =
                        registry::rotate_client_secret(&app.storage, &app.keys, &Caller::Operator, &id, grace, now)
                            .await?;
                    if json {
                        println!("{}", serde_json::to_string(&rotated)?);
                    } else {
                        println!("client_id:     {}", rotated.client_id);
                        if let Some(secret) = &rotated.client_secret {
                            println!("client_secret: {secret}");
                            println!("(the secret is shown only now; store it safely)");
                        }
                    }
                }
            }
            Ok(())
        }
        Command::Organization(cmd) => {
            let app = Portcullis::open(config, false).await?;
            let (storage, op) = (&app.storage, &Caller::Operator);
            match cmd {
                OrganizationCommand::Add { name, parent, roles } => {
                    let new = NewOrganization { name, parent_id: parent, available_roles: roles };
                    print(&apps::create_organization(storage, op, new).await?)
                }
                OrganizationCommand::Update { id, name, roles, no_roles, consent_ui } => {
                    let available_roles = (no_roles || !roles.is_empty()).then_some(roles);
                    let change = OrganizationUpdate { name, available_roles, consent_ui: clearable(consent_ui) };
                    print(&apps::update_organization(storage, op, &id, change).await?)
                }
                OrganizationCommand::List => print_all(&apps::list_organizations(storage, op).await?),
                OrganizationCommand::Show { id } => print(&apps::get_organization(storage, op, &id).await?),
                OrganizationCommand::Member { organization, user, roles } => {
                    print(&apps::set_membership(storage, op, &organization, &user, MemberRoles { roles }).await?)
                }
                OrganizationCommand::Members { organization } => {
                    print_all(&apps::list_members(storage, op, &organization).await?)
                }
            }
        }
        Command::Application(cmd) => {
            let app = Portcullis::open(config, false).await?;
            let (storage, op) = (&app.storage, &Caller::Operator);
            match cmd {
                ApplicationCommand::Add {
                    name,
                    description,
                    icon,
                    module,
                    organization,
                    scopes,
                    redirect_uris,
                    created_by,
                    disabled,
                    tokens,
                } => {
                    let new = NewApplication {
                        name,
                        description,
                        icon,
                        module,
                        organization_id: organization,
                        scopes,
                        redirect_uris,
                        tokens: tokens.unwrap_or_default(),
                        created_by,
                        enabled: Some(!disabled),
                    };
                    print(&apps::create_application(storage, &app.config, op, new).await?)
                }
                ApplicationCommand::List { organization, created_by, module } => {
                    let filter = ApplicationFilter { organization, created_by, module };
                    print_all(&apps::list_applications(storage, op, filter).await?)
                }
                ApplicationCommand::Show { id } => print(&apps::get_application(storage, op, &id).await?),
                ApplicationCommand::Update {
                    id,
                    name,
                    description,
                    icon,
                    scopes,
                    redirect_uris,
                    tokens,
                    enable,
                    disable,
                    consent_ui,
                } => {
                    let change = ApplicationUpdate {
                        name,
                        description,
                        icon: clearable(icon),
                        scopes,
                        redirect_uris,
                        tokens,
                        enabled: (enable || disable).then_some(enable),
                        consent_ui: clearable(consent_ui),
                    };
                    print(&apps::update_application(storage, &app.config, op, &id, change).await?)
                }
                ApplicationCommand::Delete { id } => {
                    apps::delete_application(storage, op, &id).await?;
                    println!("deleted {id}");
                    Ok(())
                }
            }
        }
        Command::Template(cmd) => {
            let app = Portcullis::open(config, false).await?;
            let (storage, op) = (&app.storage, &Caller::Operator);
            match cmd {
                TemplateCommand::Add { application, name, scopes, tokens } => {
                    let new = NewTemplate { name, scopes, tokens: tokens.unwrap_or_default() };
                    print(&apps::create_template(storage, op, &application, new).await?)
                }
                TemplateCommand::List { application } => {
                    print_all(&apps::list_templates(storage, op, &application).await?)
                }
                TemplateCommand::Update { id, name, scopes, tokens } => {
                    print(&apps::update_template(storage, op, &id, TemplateUpdate { name, scopes, tokens }).await?)
                }
                TemplateCommand::Delete { id } => {
                    apps::delete_template(storage, op, &id).await?;
                    println!("deleted {id}");
                    Ok(())
                }
                TemplateCommand::Client { template, name, redirect_uris, expires_at } => {
                    let new = NewTemplateClient { name, redirect_uris, expires_at };
                    print(&apps::create_template_client(storage, op, &template, new).await?)
                }
            }
        }
        Command::Instance(cmd) => {
            let app = Portcullis::open(config, false).await?;
            let (storage, op) = (&app.storage, &Caller::Operator);
            match cmd {
                InstanceCommand::Add { organization, application, added_by } => {
                    let add = AddApplication { application_id: application, added_by };
                    print(&apps::add_instance(&app.protocol, op, &organization, add).await?)
                }
                InstanceCommand::List { organization } => {
                    print_all(&apps::list_instances(&app.protocol, op, &organization).await?)
                }
                InstanceCommand::Remove { id } => {
                    apps::remove_instance(storage, op, &id).await?;
                    println!("removed {id}");
                    Ok(())
                }
            }
        }
        Command::Export { file } => {
            let storage = Portcullis::open_storage(&config).await?;
            let sealer = encryption_key::existing(&config, &storage).await?;
            let now = SystemClock.now();
            let done = backup::export(&storage, &sealer, now, &file).await?;
            println!("{}", serde_json::to_string(&done)?);
            Ok(())
        }
        Command::Import { file } => {
            let storage = Portcullis::open_storage(&config).await?;
            let sealer = encryption_key::configured(&config)?.map(|(sealer, _)| sealer);
            let key_file = encryption_key::key_file(&config);
            let now = SystemClock.now();
            let done = backup::import(&storage, sealer.as_ref(), &key_file, now, &file).await?;
            println!("{}", serde_json::to_string(&done)?);
            Ok(())
        }
        Command::Registration(RegistrationCommand::Token(cmd)) => {
            let app = Portcullis::open(config, false).await?;
            let op = &Caller::Operator;
            match cmd {
                RegistrationTokenCommand::Issue { ttl, uses } => {
                    let new = registry::NewInitialAccessToken { ttl, uses };
                    print(&registry::issue_initial_access_token(&app.storage, op, new).await?)
                }
                RegistrationTokenCommand::List => {
                    let now = SystemClock.now();
                    print_all(&registry::list_initial_access_tokens(&app.storage, op, now).await?)
                }
                RegistrationTokenCommand::Revoke { id } => {
                    registry::revoke_initial_access_token(&app.storage, op, &id).await?;
                    println!("revoked {id}");
                    Ok(())
                }
            }
        }
        Command::Keys(cmd) => {
            let app = Portcullis::open(config, false).await?;
            let op = &Caller::Operator;
            match cmd {
                KeysCommand::List => print_all(&registry::list_keys(&app.keys, op).await?),
                KeysCommand::Rotate { now } => print_all(&registry::rotate_keys(&app.keys, op, now).await?),
                KeysCommand::Retire { kid } => print_all(&registry::retire_key(&app.keys, op, &kid).await?),
            }
        }
        Command::Events(args) => {
            let app = Portcullis::open(config, false).await?;
            print_events(&app, args).await
        }
        Command::Policy(PolicyCommand::Simulate { client, user, scopes, plugin, grant_type, json }) => {
            let app = Portcullis::open(config, false).await?;
            let simulate = apps::SimulateGrant {
                client_id: client,
                user,
                scopes: (!scopes.is_empty()).then_some(scopes),
                plugin,
                grant_type,
            };
            let simulation = apps::simulate_grant(&app.protocol, &Caller::Operator, simulate).await?;
            if json {
                print(&simulation)?;
            } else {
                print_simulation(&simulation);
            }
            Ok(())
        }
    }
}

/// Prints the events `args` select, page after page, up to its limit.
async fn print_events(app: &Portcullis, args: EventsArgs) -> anyhow::Result<()> {
    let mut left = args.limit.unwrap_or(usize::MAX);
    let mut cursor = None;
    while left > 0 {
        let filter = portcullis::audit::EventFilter {
            kind: args.kind.clone(),
            subject: args.subject.clone(),
            actor: args.actor.clone(),
            since: args.since.clone(),
            until: args.until.clone(),
            cursor: cursor.take(),
            limit: Some(left.min(portcullis::limits::MAX_EVENTS_PAGE)),
        };
        let page = registry::list_events(&app.storage, &Caller::Operator, filter).await?;
        left -= page.events.len();
        print_all(&page.events)?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "PORTCULLIS_TEST_PURGE_DELAY_CHILD";

    /// `PURGE_DELAY` is the option mimalloc reads from `MIMALLOC_PURGE_DELAY`: this test binary,
    /// started again with that variable set, finds its value under that number.
    #[test]
    fn purge_delay_names_the_option_mimalloc_reads_from_its_variable() {
        if std::env::var_os(CHILD).is_some() {
            // SAFETY: reading an option.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 37);
            return;
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::purge_delay_names_the_option_mimalloc_reads_from_its_variable"])
            .env(CHILD, "1")
            .env("MIMALLOC_PURGE_DELAY", "37")
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Unless the operator set `MIMALLOC_PURGE_DELAY`, the server purges freed pages at once.
    #[test]
    fn freed_memory_is_returned_at_once_unless_the_operator_set_a_delay() {
        // SAFETY: reading an option.
        let delay = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        let before = delay();
        return_freed_memory_at_once();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            assert_eq!(delay(), before);
        } else {
            assert_ne!(before, 0, "mimalloc's own default");
            assert_eq!(delay(), 0);
        }
    }
}
