//! Applications, their client templates and instances, organizations and the roles users
//! hold in them: one domain that stands in for ELMA365's external applications, VMware
//! Cloud Partner Navigator's OAuth apps and Deployteq's apps. The operations are shared by
//! the CLI and the admin API, and each checks who asks, as the manuals say:
//!
//! - a module's external application, its templates and their clients: system
//!   administrators only (ELMA365);
//! - an organization's application: created by a provider administrator, or a provider
//!   developer who holds another role too, never with a role its creator lacks; added only
//!   to the organization it was created in, with what the adder may give (VMware);
//! - a user's own application: registered by an application manager, who alone may then
//!   authorize it (Deployteq).

use serde::{Deserialize, Serialize};

use crate::audit::{self, types};
use crate::config::Config;
use crate::crypto::random_token;
use crate::limits;
use crate::model::roles::*;
use crate::model::*;
use crate::oauth::Protocol;
use crate::oauth::scope_policy::{self, Ask};
pub use crate::registry::Caller;
use crate::registry::{
    NewClient, RegisteredClient, RegistryError, check_consent_ui, check_scopes, new_client, present,
};
use crate::storage::{Storage, StorageError};

fn non_empty(field: &'static str, value: &str) -> Result<String, RegistryError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RegistryError::field(field, "must not be empty"));
    }
    if value.len() > limits::MAX_NAME_BYTES {
        return Err(RegistryError::field(field, format!("is at most {} bytes long", limits::MAX_NAME_BYTES)));
    }
    Ok(value.to_owned())
}

fn check_description(description: &str) -> Result<(), RegistryError> {
    if description.len() > limits::MAX_DESCRIPTION_BYTES {
        return Err(RegistryError::field(
            "description",
            format!("is at most {} bytes long", limits::MAX_DESCRIPTION_BYTES),
        ));
    }
    Ok(())
}

/// An icon is shown in pages: an `https` URL, or an inline `data:image/…` one.
fn check_icon(icon: &Option<String>) -> Result<(), RegistryError> {
    let Some(icon) = icon else { return Ok(()) };
    let ok = icon.len() <= limits::MAX_ICON_BYTES
        && (icon.starts_with("data:image/") || url::Url::parse(icon).is_ok_and(|u| u.scheme() == "https"));
    if ok { Ok(()) } else { Err(RegistryError::field("icon", "must be an https URL or a data:image URL")) }
}

fn check_token_settings(field: &'static str, t: &TokenSettings) -> Result<(), RegistryError> {
    let lifetimes = [
        (t.code_ttl, limits::CODE_TTL, "code_ttl"),
        (t.access_token_ttl, limits::ACCESS_TOKEN_TTL, "access_token_ttl"),
        (t.refresh_token_ttl, limits::REFRESH_TOKEN_TTL, "refresh_token_ttl"),
    ];
    for (seconds, bounds, name) in lifetimes {
        if let Some(seconds) = seconds {
            bounds.check(seconds).map_err(|reason| RegistryError::field(field, format!("{name}: {reason}")))?;
        }
    }
    for claim in t.id_token_claims.iter().flatten() {
        if !crate::oauth::tokens::is_user_claim(claim) {
            return Err(RegistryError::field(field, format!("id_token_claims: `{claim}` is no user claim")));
        }
    }
    Ok(())
}

/// Reading is for administrators, and for an organization's members what concerns it.
pub async fn require_reader(
    storage: &Storage,
    caller: &Caller,
    organization_id: Option<&str>,
) -> Result<(), RegistryError> {
    if caller.is_administrator() {
        return Ok(());
    }
    if let (Caller::User(u), Some(org)) = (caller, organization_id)
        && storage.membership(&u.id, org).await?.is_some()
    {
        return Ok(());
    }
    Err(RegistryError::Forbidden("the caller may not read this".into()))
}

/// The roles a user holds in an organization (none when not a member).
async fn roles_in(storage: &Storage, user_id: &str, organization_id: &str) -> Result<Vec<String>, RegistryError> {
    Ok(storage.membership(user_id, organization_id).await?.map(|m| m.roles).unwrap_or_default())
}

/// The scopes an application of an organization or of its owner may be given: at least
/// one; for an organization's, only roles `held` by the user who sets them (the operator
/// sets any); for a user's own, only scopes of the catalogue.
fn check_application_scopes(
    config: &Config,
    a: &Application,
    scopes: &[String],
    held: Option<&[String]>,
) -> Result<(), RegistryError> {
    check_scopes("scopes", scopes)?;
    if a.module.is_some() {
        return Ok(());
    }
    if scopes.is_empty() {
        return Err(RegistryError::field(
            "scopes",
            "name at least one scope (for an organization's application, a role)",
        ));
    }
    if a.organization_id.is_some() {
        let over = held.map(|held| excess(scopes, held)).unwrap_or_default();
        if !over.is_empty() {
            return Err(RegistryError::field(
                "scopes",
                format!("the user does not hold these roles, so the application cannot have them: {}", over.join(", ")),
            ));
        }
    } else {
        let catalogue = &config.applications.scope_catalogue;
        let over = excess(scopes, catalogue);
        if !catalogue.is_empty() && !over.is_empty() {
            return Err(RegistryError::field("scopes", format!("not in the scope catalogue: {}", over.join(", "))));
        }
    }
    Ok(())
}

/// The roles `wanted` asks for that `held` lacks.
fn excess<'a>(wanted: &'a [String], held: &[String]) -> Vec<&'a str> {
    wanted.iter().filter(|r| !held.contains(r)).map(String::as_str).collect()
}

/// May a user holding `roles` in an organization create and add its applications?
/// A provider administrator may; a provider developer only beside another role.
fn may_manage_organization_apps(roles: &[String]) -> bool {
    let has = |r: &str| roles.iter().any(|x| x == r);
    has(PROVIDER_ADMINISTRATOR) || (has(PROVIDER_DEVELOPER) && roles.iter().any(|r| r != PROVIDER_DEVELOPER))
}

// Organizations and memberships

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewOrganization {
    pub name: String,
    pub parent_id: Option<String>,
    /// The service roles available in the organization (`vcd:admin`, …).
    pub available_roles: Vec<String>,
}

/// The service roles an organization may make available: service roles (`service:role`)
/// only, since organization roles are always available.
fn check_available_roles(roles: &[String]) -> Result<(), RegistryError> {
    check_scopes("available_roles", roles)?;
    if let Some(role) = roles.iter().find(|r| !is_service_role(r)) {
        return Err(RegistryError::field(
            "available_roles",
            format!("`{role}` is no service role (`service:role`): organization roles are always available"),
        ));
    }
    Ok(())
}

pub async fn create_organization(
    storage: &Storage,
    caller: &Caller,
    new: NewOrganization,
) -> Result<Organization, RegistryError> {
    caller.require_administrator()?;
    let name = non_empty("name", &new.name)?;
    check_available_roles(&new.available_roles)?;
    if let Some(parent) = &new.parent_id
        && storage.get::<Organization>(parent).await?.is_none()
    {
        return Err(RegistryError::field("parent_id", format!("no organization `{parent}`")));
    }
    let organization = Organization {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name,
        parent_id: new.parent_id,
        available_roles: new.available_roles,
        consent_ui: None,
        created_at: now(),
    };
    storage.apply(vec![crate::storage::write::create(&organization)?]).await?;
    let detail = serde_json::json!({ "name": organization.name });
    audit::record(storage, types::ORGANIZATION_CREATED, &caller.actor(), ("organization", &organization.id), detail)
        .await;
    Ok(organization)
}

async fn organization(storage: &Storage, id: &str) -> Result<Organization, RegistryError> {
    storage.get::<Organization>(id).await?.ok_or_else(|| RegistryError::NotFound(format!("no organization `{id}`")))
}

/// An organization: for administrators and its members.
pub async fn get_organization(storage: &Storage, caller: &Caller, id: &str) -> Result<Organization, RegistryError> {
    require_reader(storage, caller, Some(id)).await?;
    organization(storage, id).await
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganizationUpdate {
    pub name: Option<String>,
    /// The service roles available in it from now on: instances' tokens follow at once
    /// (what an instance gets is intersected with them on every grant).
    pub available_roles: Option<Vec<String>>,
    /// The consent UI of its clients whose application names none (`null`: the server's
    /// default); it must be loaded.
    #[serde(deserialize_with = "present")]
    pub consent_ui: Option<Option<String>>,
}

/// Changes an organization's name, available service roles or consent UI: for administrators.
pub async fn update_organization(
    storage: &Storage,
    caller: &Caller,
    id: &str,
    change: OrganizationUpdate,
) -> Result<Organization, RegistryError> {
    caller.require_administrator()?;
    let loaded = storage
        .get_loaded::<Organization>(id)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("no organization `{id}`")))?;
    let mut organization = loaded.value;
    if let Some(name) = &change.name {
        organization.name = non_empty("name", name)?;
    }
    if let Some(roles) = change.available_roles {
        check_available_roles(&roles)?;
        organization.available_roles = roles;
    }
    if let Some(consent_ui) = change.consent_ui {
        organization.consent_ui = check_consent_ui(storage, consent_ui)?;
    }
    storage.apply(vec![crate::storage::write::update(&organization, loaded.revision)?]).await?;
    let detail = serde_json::json!({
        "name": organization.name, "available_roles": organization.available_roles,
        "consent_ui": organization.consent_ui,
    });
    audit::record(storage, types::ORGANIZATION_UPDATED, &caller.actor(), ("organization", &organization.id), detail)
        .await;
    Ok(organization)
}

/// Every organization: for administrators.
pub async fn list_organizations(storage: &Storage, caller: &Caller) -> Result<Vec<Organization>, RegistryError> {
    caller.require_administrator()?;
    Ok(storage.list::<Organization>().await?)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemberRoles {
    pub roles: Vec<String>,
}

/// Sets the roles a user holds in an organization (none: no longer a member). System
/// administrators and the organization's provider administrators may.
pub async fn set_membership(
    storage: &Storage,
    caller: &Caller,
    organization_id: &str,
    user_id: &str,
    roles: MemberRoles,
) -> Result<Membership, RegistryError> {
    let org = organization(storage, organization_id).await?;
    if let Caller::User(u) = caller
        && !caller.is_administrator()
    {
        let mine = roles_in(storage, &u.id, &org.id).await?;
        if !mine.iter().any(|r| r == PROVIDER_ADMINISTRATOR) {
            return Err(RegistryError::Forbidden(format!(
                "only a `{SYSTEM_ADMINISTRATOR}` or a `{PROVIDER_ADMINISTRATOR}` of the organization sets roles"
            )));
        }
    }
    check_scopes("roles", &roles.roles)?;
    if roles.roles.iter().any(|r| r == PROVIDER_DEVELOPER) && roles.roles.len() < 2 {
        return Err(RegistryError::field("roles", format!("`{PROVIDER_DEVELOPER}` is held only beside another role")));
    }
    if let Some(role) = roles.roles.iter().find(|r| is_service_role(r) && !org.available_roles.contains(r)) {
        return Err(RegistryError::field(
            "roles",
            format!("service role `{role}` is not available in the organization"),
        ));
    }
    if storage.get_user(user_id).await?.is_none() {
        return Err(RegistryError::NotFound(format!("no user `{user_id}`")));
    }
    let membership =
        Membership { user_id: user_id.to_owned(), organization_id: org.id, roles: roles.roles, created_at: now() };
    let existed = storage.membership(user_id, &membership.organization_id).await?.is_some();
    let kind = if membership.roles.is_empty() {
        // No roles: no longer a member (a member with none could still read the organization).
        storage.delete_membership(user_id, &membership.organization_id).await?;
        types::MEMBERSHIP_DELETED
    } else {
        storage.apply(vec![crate::storage::write::put(&membership)?]).await?;
        if existed { types::MEMBERSHIP_UPDATED } else { types::MEMBERSHIP_CREATED }
    };
    if existed || !membership.roles.is_empty() {
        let subject = format!("{} {}", membership.organization_id, user_id);
        let detail = serde_json::json!({
            "organization_id": membership.organization_id, "user_id": user_id, "roles": membership.roles,
        });
        audit::record(storage, kind, &caller.actor(), ("membership", &subject), detail).await;
    }
    Ok(membership)
}

/// An organization's members and their roles: for administrators and its members.
pub async fn list_members(
    storage: &Storage,
    caller: &Caller,
    organization_id: &str,
) -> Result<Vec<Membership>, RegistryError> {
    require_reader(storage, caller, Some(organization_id)).await?;
    organization(storage, organization_id).await?;
    Ok(storage.find::<Membership>("organization", organization_id).await?)
}

// Applications

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewApplication {
    pub name: String,
    pub description: String,
    pub icon: Option<String>,
    /// A module's external application (ELMA365).
    pub module: Option<String>,
    /// An application of an organization (VMware): client credentials only, usable once added.
    pub organization_id: Option<String>,
    pub scopes: Vec<String>,
    /// A user's own application (Deployteq): where the authorization code goes.
    pub redirect_uris: Vec<String>,
    pub tokens: TokenSettings,
    /// For the operator: the user the application is created as.
    pub created_by: Option<String>,
    /// Enabled unless set false.
    pub enabled: Option<bool>,
}

/// An application as the API shows it, with its clients' ids.
#[derive(Debug, Serialize)]
pub struct ApplicationView {
    #[serde(flatten)]
    pub application: Application,
    pub client_ids: Vec<String>,
}

/// A created application, with the credentials of its client where it has one: the secret
/// is shown here once and never again.
#[derive(Debug, Serialize)]
pub struct CreatedApplication {
    pub application: Application,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RegisteredClient>,
}

/// The scopes a module's external application offers when it names none (ELMA365).
const MODULE_SCOPES: [&str; 2] = ["openid", "api"];

/// How a module's external application issues tokens where its settings say nothing, as
/// ELMA365's manual describes it: a code lives 10 minutes, an access token 10 minutes, a
/// refresh token 14 days and comes without `offline_access`, and the ID token carries the
/// user's email and company.
fn module_token_settings() -> TokenSettings {
    TokenSettings {
        code_ttl: Some(600),
        access_token_ttl: Some(600),
        refresh_token_ttl: Some(14 * 24 * 3600),
        refresh_tokens: Some(RefreshTokens::Always),
        token_type: None,
        id_token_claims: Some(vec!["email".into(), "company".into()]),
    }
}

pub async fn create_application(
    storage: &Storage,
    config: &Config,
    caller: &Caller,
    new: NewApplication,
) -> Result<CreatedApplication, RegistryError> {
    let name = non_empty("name", &new.name)?;
    check_description(&new.description)?;
    check_icon(&new.icon)?;
    check_token_settings("tokens", &new.tokens)?;
    let mut application = Application {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: name.clone(),
        description: new.description.clone(),
        icon: new.icon.clone(),
        enabled: new.enabled.unwrap_or(true),
        scopes: new.scopes.clone(),
        tokens: new.tokens.clone(),
        created_at: now(),
        ..Application::default()
    };
    let mut client = None;
    match (&new.module, &new.organization_id) {
        (Some(_), Some(_)) => {
            return Err(RegistryError::field(
                "organization_id",
                "an application belongs to a module or to an organization, not both",
            ));
        }
        (Some(module), None) => {
            caller.require_administrator()?;
            application.module = Some(non_empty("module", module)?);
            if !new.redirect_uris.is_empty() {
                return Err(RegistryError::field(
                    "redirect_uris",
                    "a module's clients are created from its templates, each with its own redirect URIs",
                ));
            }
            check_application_scopes(config, &application, &application.scopes, None)?;
            if application.scopes.is_empty() {
                application.scopes = MODULE_SCOPES.map(String::from).to_vec();
            }
            application.tokens = application.tokens.or(&module_token_settings());
            application.created_by = match caller {
                Caller::User(u) => Some(u.id.clone()),
                Caller::Operator => None,
            };
        }
        (None, Some(org_id)) => {
            let org = storage
                .get::<Organization>(org_id)
                .await?
                .ok_or_else(|| RegistryError::field("organization_id", format!("no organization `{org_id}`")))?;
            let creator = caller.acting_user(storage, new.created_by.as_deref(), "created_by").await?;
            let roles = roles_in(storage, &creator.id, &org.id).await?;
            if !may_manage_organization_apps(&roles) {
                return Err(RegistryError::Forbidden(format!(
                    "only a `{PROVIDER_ADMINISTRATOR}`, or a `{PROVIDER_DEVELOPER}` who holds another role, of the organization creates its applications"
                )));
            }
            application.organization_id = Some(org.id.clone());
            check_application_scopes(config, &application, &application.scopes, Some(&roles))?;
            if !new.redirect_uris.is_empty() {
                return Err(RegistryError::field(
                    "redirect_uris",
                    "an organization's application uses client credentials only",
                ));
            }
            application.created_by = Some(creator.id.clone());
            application.requires_instance = true;
            client = Some(NewClient {
                name: name.clone(),
                description: new.description.clone(),
                grant_types: vec![GrantType::ClientCredentials.as_str().into()],
                scopes: application.scopes.clone(),
                organization_id: Some(org.id.clone()),
                scope_policy: Some("scope-role-intersection".into()),
                owner: Some(creator.id.clone()),
                ..NewClient::default()
            });
        }
        (None, None) => {
            let owner = caller.acting_user(storage, new.created_by.as_deref(), "created_by").await?;
            let may = owner.doc.roles.iter().any(|r| r == APPLICATION_MANAGER || r == SYSTEM_ADMINISTRATOR);
            if !may {
                return Err(RegistryError::Forbidden(format!(
                    "only an `{APPLICATION_MANAGER}` registers applications"
                )));
            }
            check_application_scopes(config, &application, &application.scopes, None)?;
            application.created_by = Some(owner.id.clone());
            application.owner_only = true;
            client = Some(NewClient {
                name: name.clone(),
                description: new.description.clone(),
                redirect_uris: new.redirect_uris.clone(),
                grant_types: own_grant_types(&new.redirect_uris),
                scopes: application.scopes.clone(),
                owner: Some(owner.id.clone()),
                ..NewClient::default()
            });
        }
    }
    let mut clients = Vec::new();
    let mut credentials = None;
    if let Some(new_client_request) = client {
        let (mut c, secret) = new_client(new_client_request)?;
        c.doc.application_id = Some(application.id.clone());
        credentials = Some(RegisteredClient { client_id: c.id.clone(), client_secret: secret });
        clients.push(c);
    }
    storage.create_application(&application, &clients).await.map_err(|e| match e {
        StorageError::Duplicate => RegistryError::Exists(format!(
            "an external application of module `{}`",
            application.module.as_deref().unwrap_or_default()
        )),
        e => e.into(),
    })?;
    let actor = caller.actor();
    let detail = serde_json::json!({ "name": application.name });
    audit::record(storage, types::APPLICATION_CREATED, &actor, ("application", &application.id), detail).await;
    for c in &clients {
        let detail = serde_json::json!({ "name": c.doc.name, "application_id": application.id });
        audit::record(storage, types::CLIENT_CREATED, &actor, ("client", &c.id), detail).await;
    }
    Ok(CreatedApplication { application, credentials })
}

async fn application(storage: &Storage, id: &str) -> Result<crate::storage::Loaded<Application>, RegistryError> {
    storage
        .get_loaded::<Application>(id)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("no application `{id}`")))
}

/// Whether the caller may change or delete an application.
async fn require_manager(storage: &Storage, caller: &Caller, a: &Application) -> Result<(), RegistryError> {
    if caller.is_administrator() && a.organization_id.is_none() {
        return Ok(());
    }
    let Caller::User(user) = caller else {
        return Ok(());
    };
    let allowed = match (&a.module, &a.organization_id) {
        (Some(_), _) => false,
        (None, Some(org)) => {
            let roles = roles_in(storage, &user.id, org).await?;
            may_manage_organization_apps(&roles)
        }
        (None, None) => a.created_by.as_deref() == Some(user.id.as_str()),
    };
    if allowed { Ok(()) } else { Err(RegistryError::Forbidden("the caller may not manage this application".into())) }
}

async fn view(storage: &Storage, a: &Application) -> Result<ApplicationView, RegistryError> {
    let clients = storage.find::<Client>("application", &a.id).await?;
    Ok(ApplicationView { application: a.clone(), client_ids: clients.into_iter().map(|c| c.id).collect() })
}

pub async fn get_application(storage: &Storage, caller: &Caller, id: &str) -> Result<ApplicationView, RegistryError> {
    let a = application(storage, id).await?.value;
    let own = matches!(caller, Caller::User(u) if a.created_by.as_deref() == Some(u.id.as_str()));
    if !own {
        require_reader(storage, caller, a.organization_id.as_deref()).await?;
    }
    view(storage, &a).await
}

/// Which applications to list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplicationFilter {
    /// Those created in this organization.
    pub organization: Option<String>,
    /// Those this user created.
    pub created_by: Option<String>,
    pub module: Option<String>,
}

pub async fn list_applications(
    storage: &Storage,
    caller: &Caller,
    filter: ApplicationFilter,
) -> Result<Vec<ApplicationView>, RegistryError> {
    let own = matches!((caller, &filter.created_by), (Caller::User(u), Some(c)) if &u.id == c);
    if !own {
        require_reader(storage, caller, filter.organization.as_deref()).await?;
    }
    let mut apps = match (&filter.organization, &filter.created_by) {
        (Some(org), _) => storage.find::<Application>("organization", org).await?,
        (None, Some(user)) => storage.find::<Application>("created-by", user).await?,
        (None, None) => storage.list::<Application>().await?,
    };
    apps.retain(|a| {
        filter.organization.as_ref().is_none_or(|o| a.organization_id.as_ref() == Some(o))
            && filter.created_by.as_ref().is_none_or(|u| a.created_by.as_ref() == Some(u))
            && filter.module.as_ref().is_none_or(|m| a.module.as_ref() == Some(m))
    });
    let mut out = Vec::with_capacity(apps.len());
    for a in &apps {
        out.push(view(storage, a).await?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplicationUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `null` removes the icon; absent leaves it.
    #[serde(deserialize_with = "present")]
    pub icon: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub tokens: Option<TokenSettings>,
    pub enabled: Option<bool>,
    /// The consent UI of its clients that name none (`null`: their organization's, else the
    /// server's default); it must be loaded.
    #[serde(deserialize_with = "present")]
    pub consent_ui: Option<Option<String>>,
}

/// Changes an application. Its clients follow (their scopes and redirect URIs); instances
/// already added keep what they were added with.
pub async fn update_application(
    storage: &Storage,
    config: &Config,
    caller: &Caller,
    id: &str,
    change: ApplicationUpdate,
) -> Result<ApplicationView, RegistryError> {
    let loaded = application(storage, id).await?;
    let mut a = loaded.value;
    require_manager(storage, caller, &a).await?;
    if let Some(name) = &change.name {
        a.name = non_empty("name", name)?;
    }
    if let Some(description) = change.description {
        check_description(&description)?;
        a.description = description;
    }
    if let Some(icon) = change.icon {
        check_icon(&icon)?;
        a.icon = icon;
    }
    if let Some(tokens) = change.tokens {
        check_token_settings("tokens", &tokens)?;
        a.tokens = tokens;
    }
    if let Some(enabled) = change.enabled {
        a.enabled = enabled;
    }
    if let Some(consent_ui) = change.consent_ui {
        a.consent_ui = check_consent_ui(storage, consent_ui)?;
    }
    if let Some(scopes) = change.scopes {
        let held = match (&a.organization_id, caller) {
            (Some(org), Caller::User(user)) => Some(roles_in(storage, &user.id, org).await?),
            _ => None,
        };
        check_application_scopes(config, &a, &scopes, held.as_deref())?;
        a.scopes = scopes;
    }
    let mut clients = Vec::new();
    if a.module.is_none() {
        for mut c in storage.find::<Client>("application", id).await? {
            c.doc.name = a.name.clone();
            c.doc.description = a.description.clone();
            c.doc.scopes = a.scopes.clone();
            if let Some(uris) = &change.redirect_uris {
                if a.organization_id.is_some() && !uris.is_empty() {
                    return Err(RegistryError::field(
                        "redirect_uris",
                        "an organization's application uses client credentials only",
                    ));
                }
                for uri in uris {
                    crate::registry::check_redirect_uri(uri)?;
                }
                c.doc.redirect_uris = uris.clone();
                if a.organization_id.is_none() {
                    c.doc.grant_types = own_grant_types(uris);
                }
            }
            clients.push(c);
        }
    } else if change.redirect_uris.is_some() {
        return Err(RegistryError::field("redirect_uris", "a module's clients each have their own redirect URIs"));
    }
    storage.update_application(&a, loaded.revision, &clients).await?;
    let actor = caller.actor();
    let detail = serde_json::json!({ "name": a.name, "enabled": a.enabled, "consent_ui": a.consent_ui });
    audit::record(storage, types::APPLICATION_UPDATED, &actor, ("application", &a.id), detail).await;
    for c in &clients {
        let detail = serde_json::json!({ "application_id": a.id });
        audit::record(storage, types::CLIENT_UPDATED, &actor, ("client", &c.id), detail).await;
    }
    view(storage, &a).await
}

/// The grants of a user's own application (Deployteq): client credentials, and the
/// authorization code (with refresh) once it has somewhere to send the code.
fn own_grant_types(redirect_uris: &[String]) -> Vec<String> {
    let mut grant_types = vec![GrantType::ClientCredentials.as_str().to_owned()];
    if !redirect_uris.is_empty() {
        grant_types.push(GrantType::AuthorizationCode.as_str().into());
        grant_types.push(GrantType::RefreshToken.as_str().into());
    }
    grant_types
}

/// Deletes an application: its clients' credentials stop working at once, and every token
/// issued to them is inactive.
pub async fn delete_application(storage: &Storage, caller: &Caller, id: &str) -> Result<(), RegistryError> {
    let a = application(storage, id).await?.value;
    require_manager(storage, caller, &a).await?;
    let clients = storage.find::<Client>("application", id).await?;
    storage.delete_application(id).await?;
    let actor = caller.actor();
    audit::record(storage, types::APPLICATION_DELETED, &actor, ("application", id), serde_json::Value::Null).await;
    for c in &clients {
        let detail = serde_json::json!({ "application_id": id });
        audit::record(storage, types::CLIENT_DELETED, &actor, ("client", &c.id), detail).await;
    }
    Ok(())
}

// Client templates (ELMA365) and the clients created from them

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewTemplate {
    pub name: String,
    pub scopes: Vec<String>,
    pub tokens: TokenSettings,
}

fn check_template_scopes(a: &Application, scopes: &[String]) -> Result<(), RegistryError> {
    check_scopes("scopes", scopes)?;
    if scopes.is_empty() {
        return Err(RegistryError::field("scopes", "a template gives at least one scope"));
    }
    let over = excess(scopes, &a.scopes);
    if !over.is_empty() {
        return Err(RegistryError::field("scopes", format!("the application does not offer: {}", over.join(", "))));
    }
    Ok(())
}

pub async fn create_template(
    storage: &Storage,
    caller: &Caller,
    application_id: &str,
    new: NewTemplate,
) -> Result<ClientTemplate, RegistryError> {
    caller.require_administrator()?;
    let a = application(storage, application_id).await?.value;
    let name = non_empty("name", &new.name)?;
    check_template_scopes(&a, &new.scopes)?;
    check_token_settings("tokens", &new.tokens)?;
    let template = ClientTemplate {
        id: uuid::Uuid::new_v4().simple().to_string(),
        application_id: Some(a.id),
        name,
        scopes: new.scopes,
        tokens: new.tokens,
        created_at: now(),
    };
    storage.apply(vec![crate::storage::write::create(&template)?]).await?;
    let detail = serde_json::json!({ "name": template.name, "application_id": application_id });
    audit::record(storage, types::TEMPLATE_CREATED, &caller.actor(), ("client-template", &template.id), detail).await;
    Ok(template)
}

/// An application's client templates: for administrators, who alone manage them.
pub async fn list_templates(
    storage: &Storage,
    caller: &Caller,
    application_id: &str,
) -> Result<Vec<ClientTemplate>, RegistryError> {
    caller.require_administrator()?;
    application(storage, application_id).await?;
    Ok(storage.find::<ClientTemplate>("application", application_id).await?)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateUpdate {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub tokens: Option<TokenSettings>,
}

/// Changes a template: every client created from it gets what it now gives.
pub async fn update_template(
    storage: &Storage,
    caller: &Caller,
    id: &str,
    change: TemplateUpdate,
) -> Result<ClientTemplate, RegistryError> {
    caller.require_administrator()?;
    let loaded = storage
        .get_loaded::<ClientTemplate>(id)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("no template `{id}`")))?;
    let mut t = loaded.value;
    if let Some(name) = &change.name {
        t.name = non_empty("name", name)?;
    }
    if let Some(scopes) = change.scopes {
        let a = application(storage, t.application_id.as_deref().unwrap_or_default()).await?.value;
        check_template_scopes(&a, &scopes)?;
        t.scopes = scopes;
    }
    if let Some(tokens) = change.tokens {
        check_token_settings("tokens", &tokens)?;
        t.tokens = tokens;
    }
    storage.apply(vec![crate::storage::write::update(&t, loaded.revision)?]).await?;
    let detail = serde_json::json!({ "name": t.name, "scopes": t.scopes });
    audit::record(storage, types::TEMPLATE_UPDATED, &caller.actor(), ("client-template", &t.id), detail).await;
    Ok(t)
}

pub async fn delete_template(storage: &Storage, caller: &Caller, id: &str) -> Result<(), RegistryError> {
    caller.require_administrator()?;
    match storage.delete_template(id).await {
        Ok(true) => {
            let actor = caller.actor();
            audit::record(storage, types::TEMPLATE_DELETED, &actor, ("client-template", id), serde_json::Value::Null)
                .await;
            Ok(())
        }
        Ok(false) => Err(RegistryError::NotFound(format!("no template `{id}`"))),
        Err(StorageError::Conflict(_)) => {
            Err(RegistryError::Conflict("clients were created from this template: delete them first".into()))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewTemplateClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// After this Unix time the client gets nothing.
    pub expires_at: Option<i64>,
}

/// Creates a client from a template (ELMA365: "create OAuth2/OIDC client"): its scopes are
/// the template's; its id and secret are returned once.
pub async fn create_template_client(
    storage: &Storage,
    caller: &Caller,
    template_id: &str,
    new: NewTemplateClient,
) -> Result<RegisteredClient, RegistryError> {
    caller.require_administrator()?;
    let template = storage
        .get::<ClientTemplate>(template_id)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("no template `{template_id}`")))?;
    if new.redirect_uris.is_empty() {
        return Err(RegistryError::field("redirect_uris", "at least one redirect URI"));
    }
    if new.expires_at.is_some_and(|t| t <= now()) {
        return Err(RegistryError::field("expires_at", "must be in the future"));
    }
    let (mut client, secret) = new_client(NewClient {
        name: new.name,
        redirect_uris: new.redirect_uris,
        grant_types: vec![GrantType::AuthorizationCode.as_str().into(), GrantType::RefreshToken.as_str().into()],
        scopes: template.scopes.clone(),
        expires_at: new.expires_at,
        template_id: Some(template.id.clone()),
        ..NewClient::default()
    })?;
    client.doc.application_id = template.application_id.clone();
    storage.create_client(&client).await?;
    let detail = serde_json::json!({ "name": client.doc.name, "template_id": template.id });
    audit::record(storage, types::CLIENT_CREATED, &caller.actor(), ("client", &client.id), detail).await;
    Ok(RegisteredClient { client_id: client.id, client_secret: secret })
}

// Instances: an organization's application added to it (VMware)

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AddApplication {
    pub application_id: String,
    /// For the operator: the user the application is added as.
    pub added_by: Option<String>,
}

/// An instance as shown: with the roles its tokens get now, as its client's scope policy
/// decides them on a client credentials grant (VMware: the application's roles when it was
/// added ∩ the service roles available in the organization now ∩ the roles of the user who
/// added it), and when it gets none, why.
#[derive(Debug, Serialize)]
pub struct InstanceView {
    #[serde(flatten)]
    pub instance: AppInstance,
    pub effective_roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_roles: Option<String>,
}

async fn instance_view(protocol: &Protocol, instance: AppInstance) -> Result<InstanceView, RegistryError> {
    let mut view = InstanceView { instance, effective_roles: Vec::new(), no_roles: None };
    let Some(context) = protocol.storage.client_context(&view.instance.client_id).await? else {
        view.no_roles = Some("the application has no credentials".into());
        return Ok(view);
    };
    let ask = Ask::new(GrantType::ClientCredentials.as_str(), None, &[], false);
    match scope_policy::resolve(protocol, &context, ask).await {
        Ok(decision) => view.effective_roles = decision.scopes,
        Err(refused) if !refused.status().is_server_error() => view.no_roles = Some(refused.description()),
        Err(failed) => return Err(RegistryError::Internal(format!("scope policy: {failed}"))),
    }
    Ok(view)
}

/// Adds an application to the organization it was created in. What its tokens may carry
/// is fixed now: the application's roles, those available in the organization and those of
/// the user who adds it (the scope policy intersects them).
pub async fn add_instance(
    protocol: &Protocol,
    caller: &Caller,
    organization_id: &str,
    add: AddApplication,
) -> Result<InstanceView, RegistryError> {
    let storage = &protocol.storage;
    let org = organization(storage, organization_id).await?;
    let a = storage
        .get::<Application>(&add.application_id)
        .await?
        .ok_or_else(|| RegistryError::field("application_id", format!("no application `{}`", add.application_id)))?;
    if a.organization_id.as_deref() != Some(org.id.as_str()) {
        return Err(RegistryError::Forbidden(
            "an application can be added only to the organization it was created in".into(),
        ));
    }
    let adder = caller.acting_user(storage, add.added_by.as_deref(), "added_by").await?;
    let roles = roles_in(storage, &adder.id, &org.id).await?;
    if !may_manage_organization_apps(&roles) {
        return Err(RegistryError::Forbidden(format!(
            "only a `{PROVIDER_ADMINISTRATOR}`, or a `{PROVIDER_DEVELOPER}` who holds another role, of the organization adds applications to it"
        )));
    }
    let client = storage
        .find::<Client>("application", &a.id)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| RegistryError::Conflict("the application has no credentials".into()))?;
    let instance = AppInstance {
        id: random_token(16),
        application_id: a.id.clone(),
        client_id: client.id,
        organization_id: org.id,
        added_by: adder.id,
        added_by_roles: roles,
        scopes: a.scopes.clone(),
        created_at: now(),
    };
    storage.add_instance(&instance).await.map_err(|e| match e {
        StorageError::Duplicate => {
            RegistryError::Conflict("the application is already added to the organization".into())
        }
        e => e.into(),
    })?;
    let detail = serde_json::json!({
        "application_id": instance.application_id, "organization_id": instance.organization_id,
        "client_id": instance.client_id,
    });
    audit::record(storage, types::INSTANCE_CREATED, &caller.actor(), ("app-instance", &instance.id), detail).await;
    instance_view(protocol, instance).await
}

/// The applications with access to an organization: its instances.
pub async fn list_instances(
    protocol: &Protocol,
    caller: &Caller,
    organization_id: &str,
) -> Result<Vec<InstanceView>, RegistryError> {
    let storage = &protocol.storage;
    require_reader(storage, caller, Some(organization_id)).await?;
    organization(storage, organization_id).await?;
    let mut views = Vec::new();
    for instance in storage.find::<AppInstance>("organization", organization_id).await? {
        views.push(instance_view(protocol, instance).await?);
    }
    Ok(views)
}

/// Removes an instance: its tokens are inactive at once, and the application gets none
/// until it is added again.
pub async fn remove_instance(storage: &Storage, caller: &Caller, id: &str) -> Result<(), RegistryError> {
    let instance =
        storage.get::<AppInstance>(id).await?.ok_or_else(|| RegistryError::NotFound(format!("no instance `{id}`")))?;
    if let Caller::User(user) = caller
        && !caller.is_administrator()
    {
        let roles = roles_in(storage, &user.id, &instance.organization_id).await?;
        if !may_manage_organization_apps(&roles) {
            return Err(RegistryError::Forbidden(
                "the caller may not remove applications from this organization".into(),
            ));
        }
    }
    storage.remove_instance(&instance).await?;
    let detail = serde_json::json!({
        "application_id": instance.application_id, "organization_id": instance.organization_id,
    });
    audit::record(storage, types::INSTANCE_DELETED, &caller.actor(), ("app-instance", &instance.id), detail).await;
    Ok(())
}

// Trying a scope policy on stored records

/// What to simulate: a grant for a stored client and user, through the host's rules and a
/// scope policy, with nothing issued or stored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulateGrant {
    /// The client's id.
    pub client_id: String,
    /// The user's username (or id); none for the client's own grant (client credentials).
    pub user: Option<String>,
    /// The scopes asked for; none: a request without a `scope` parameter.
    pub scopes: Option<Vec<String>>,
    /// A loaded scope policy to ask in place of the client's own.
    pub plugin: Option<String>,
    /// The grant type (`authorization_code` when unset).
    pub grant_type: Option<String>,
}

/// What a real request would have been refused with: its OAuth error code and description.
#[derive(Debug, Serialize)]
pub struct SimulatedDenial {
    pub error: &'static str,
    pub error_description: String,
}

/// What the host's rules took out: requested scopes the client may not be granted (the
/// policy is told them, and the host keeps none of them whatever it answers), scopes the
/// policy granted past what the client may be granted, and claims the server owns.
#[derive(Debug, Default, Serialize)]
pub struct RemovedByHost {
    pub requested_not_allowed: Vec<String>,
    pub policy_scopes: Vec<String>,
    pub policy_claims: Vec<String>,
}

/// A simulation's answer: what the grant would get, or why it would be refused.
#[derive(Debug, Serialize)]
pub struct Simulation {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub grant_type: String,
    /// The scopes asked for; absent: no `scope` parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_scopes: Option<Vec<String>>,
    /// Every scope the client may be granted, as its records decide.
    pub allowed_scopes: Vec<String>,
    /// The roles the policy is told the user holds: everywhere, and as a member of the
    /// client's organization (empty for the client's own grant).
    pub user_roles: Vec<String>,
    /// The scope policy asked.
    pub plugin: String,
    /// The client's own scope policy (the one its real requests ask).
    pub client_plugin: String,
    pub granted: bool,
    /// The scopes granted (none when denied).
    pub scopes: Vec<String>,
    /// The claims the policy adds, and where they go.
    pub claims: Vec<ExtraClaim>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied: Option<SimulatedDenial>,
    pub removed_by_host: RemovedByHost,
}

/// The grant types a simulation asks for: those that start a grant (a refresh and a token
/// exchange are bounded by the grant they derive from), and the extension grants loaded.
fn simulated_grant_type(protocol: &Protocol, name: &str) -> Result<Option<GrantType>, RegistryError> {
    match GrantType::parse(name) {
        Some(GrantType::RefreshToken | GrantType::TokenExchange) => Err(RegistryError::field(
            "grant_type",
            format!("`{name}` is bounded by the grant it derives from; simulate the grant that issues it"),
        )),
        Some(g) => Ok(Some(g)),
        None if protocol.host.grant_plugin_for(name).is_some() => Ok(None),
        None => Err(RegistryError::field("grant_type", format!("`{name}` is no grant type this server answers"))),
    }
}

/// What the scope policy would grant `simulate.user` on `simulate.client_id`'s request, on
/// the records as they are now: the path a real grant takes (the host's rules, then the
/// client's scope policy or `simulate.plugin` in its place), with nothing issued, stored or
/// audited. A refusal a real request would get is the answer's `denied`; a policy that
/// fails is the error the real request would get: for administrators.
pub async fn simulate_grant(
    protocol: &Protocol,
    caller: &Caller,
    simulate: SimulateGrant,
) -> Result<Simulation, RegistryError> {
    caller.require_administrator()?;
    let storage = &protocol.storage;
    let grant_name = simulate.grant_type.unwrap_or_else(|| GrantType::AuthorizationCode.as_str().to_owned());
    let grant_type = simulated_grant_type(protocol, &grant_name)?;
    // Bounded and checked as a request's `scope` parameter is, one scope token per item.
    let requested = match &simulate.scopes {
        Some(scopes) => {
            if let Some(s) = scopes.iter().find(|s| s.contains(' ')) {
                return Err(RegistryError::field("scopes", format!("`{s}` is not one scope token")));
            }
            let parsed = crate::oauth::params::parse_scope(Some(&scopes.join(" ")))
                .map_err(|e| RegistryError::field("scopes", e.description()))?;
            Some(parsed)
        }
        None => None,
    };
    if let Some(name) = &simulate.plugin
        && !protocol.host.is_loaded(crate::plugin::PluginKind::ScopePolicy, name)
    {
        let reason = match protocol.host.loaded().get(name) {
            Some(p) => format!("`{name}` is a {} plugin, not a scope policy", p.manifest.kind),
            None => format!("no scope policy `{name}` is loaded"),
        };
        return Err(RegistryError::field("plugin", reason));
    }
    let no_client = || RegistryError::NotFound(format!("no client `{}`", simulate.client_id));
    if simulate.client_id.len() > limits::MAX_CLIENT_ID_BYTES {
        return Err(no_client());
    }
    let context = storage.client_context(&simulate.client_id).await?.ok_or_else(no_client)?;
    let user = match simulate.user.as_deref() {
        Some(name) => {
            let found = match storage.find_user(name).await? {
                Some(u) => Some(u),
                None => storage.get_user(name).await?,
            };
            let user = found.ok_or_else(|| RegistryError::NotFound(format!("no user `{name}`")))?;
            if user.doc.disabled {
                return Err(RegistryError::Conflict(format!(
                    "the user `{}` is disabled: a disabled user signs in nowhere and gets no token",
                    user.username
                )));
            }
            Some(user)
        }
        None => None,
    };
    match (grant_type, &user) {
        (Some(GrantType::ClientCredentials), Some(_)) => {
            return Err(RegistryError::field("user", "the client credentials grant is the client's own: no user"));
        }
        (Some(g), None) if g != GrantType::ClientCredentials => {
            return Err(RegistryError::field("user", format!("the `{grant_name}` grant is a user's: name the user")));
        }
        _ => {}
    }
    let client_plugin = context.client.doc.scope_policy.clone().unwrap_or_else(|| protocol.host.defaults.scope.clone());
    let plugin = simulate.plugin.clone().unwrap_or_else(|| client_plugin.clone());
    let allowed_scopes = context.allowed_scopes().to_vec();
    let user_roles =
        scope_policy::user_roles(protocol, &context, user.as_ref()).await.map_err(RegistryError::Policy)?;
    let requested_not_allowed: Vec<String> =
        requested.iter().flatten().filter(|s| !allowed_scopes.contains(s)).cloned().collect();
    let mut simulation = Simulation {
        client_id: context.client.id.clone(),
        user_id: user.as_ref().map(|u| u.id.clone()),
        username: user.as_ref().map(|u| u.username.clone()),
        grant_type: grant_name.clone(),
        requested_scopes: requested.clone(),
        allowed_scopes,
        user_roles,
        plugin: plugin.clone(),
        client_plugin,
        granted: false,
        scopes: Vec::new(),
        claims: Vec::new(),
        denied: None,
        removed_by_host: RemovedByHost { requested_not_allowed, ..Default::default() },
    };
    // The token and authorization endpoints' own refusals, before any policy is asked.
    let registered = match grant_type {
        Some(g) => context.client.allows_grant(g),
        None => context.client.doc.grant_types.contains(&grant_name),
    };
    let refused_first = if context.client.is_expired(protocol.clock.now()) {
        Some(crate::error::OAuthError::invalid_client("the client has expired", false))
    } else if let Some(why) = context.unusable() {
        Some(crate::error::OAuthError::UnauthorizedClient(why.into()))
    } else if !registered {
        let why = format!("this client may not use the `{grant_name}` grant");
        Some(crate::error::OAuthError::UnauthorizedClient(why))
    } else {
        None
    };
    let result = match refused_first {
        Some(refusal) => Err(refusal),
        None => {
            let requested_scopes = requested.as_deref().unwrap_or_default();
            let ask = Ask::new(&grant_name, user.as_ref(), requested_scopes, requested.is_some());
            scope_policy::resolve_with(protocol, &context, ask, Some(&plugin)).await
        }
    };
    match result {
        Ok(resolution) => {
            simulation.granted = true;
            simulation.scopes = resolution.decision.scopes;
            simulation.claims = resolution.decision.claims;
            simulation.removed_by_host.policy_scopes = resolution.dropped_scopes;
            simulation.removed_by_host.policy_claims = resolution.dropped_claims;
        }
        Err(refused) if !refused.status().is_server_error() => {
            simulation.denied =
                Some(SimulatedDenial { error: refused.code(), error_description: refused.description() });
        }
        Err(failed) => return Err(RegistryError::Policy(failed)),
    }
    Ok(simulation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn provider_developer_needs_another_role() {
        assert!(may_manage_organization_apps(&v(&[PROVIDER_ADMINISTRATOR])));
        assert!(!may_manage_organization_apps(&v(&[PROVIDER_DEVELOPER])));
        assert!(may_manage_organization_apps(&v(&[PROVIDER_DEVELOPER, "provider-service-manager"])));
        assert!(!may_manage_organization_apps(&v(&["member"])));
    }

    #[test]
    fn excess_names_what_is_not_held() {
        assert_eq!(excess(&v(&["a", "b", "c"]), &v(&["b"])), ["a", "c"]);
        assert!(excess(&v(&["b"]), &v(&["a", "b"])).is_empty());
    }
}
