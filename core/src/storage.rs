//! Every persistent record goes through the active storage plugin, as a generic record of a
//! kind (`plugin::store`). This module is the typed face of that: which kind each record of
//! `model` is, its id, the keys it is looked up by, and the cascades that keep the records
//! consistent (revoking a grant removes its refresh tokens; deleting a client removes
//! everything issued to it). They are written here, once, as atomic groups, so every
//! storage plugin gets them right by construction.
//!
//! Bodies are JSON, (de)serialised here and nowhere else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::{MAX_CACHED_CLIENTS, MAX_CLIENT_ID_BYTES, MAX_REMEMBERED_CODES, make_room};
use crate::model::*;
use crate::plugin::PolicyHost;
use crate::plugin::store::{KeyRef, Record, RecordRef, StoreError, Stored, Write};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("a record with that key exists")]
    Duplicate,
    /// A precondition of an atomic group failed: the index of the write.
    #[error("the precondition of write {0} did not hold")]
    Conflict(usize),
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("stored record is unreadable: {0}")]
    Document(#[from] serde_json::Error),
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Precondition(i) => StorageError::Conflict(i),
            StoreError::Backend(m) => StorageError::Backend(m),
            StoreError::Unavailable(m) => StorageError::Unavailable(m),
            StoreError::Plugin(p) => StorageError::Plugin(p),
        }
    }
}

/// A record type of `model` and the kind it is stored as.
pub trait Kind: Serialize + DeserializeOwned {
    const KIND: &'static str;
    fn id(&self) -> String;
    /// The secondary keys the host looks the record up by.
    fn keys(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    fn expires_at(&self) -> Option<i64> {
        None
    }
}

macro_rules! kind {
    ($t:ty, $kind:literal, |$r:ident| id: $id:expr $(, keys: $keys:expr)? $(, expires: $exp:expr)?) => {
        impl Kind for $t {
            const KIND: &'static str = $kind;
            fn id(&self) -> String {
                let $r = self;
                $id.to_string()
            }
            $(fn keys(&self) -> Vec<(&'static str, String)> {
                let $r = self;
                $keys
            })?
            $(fn expires_at(&self) -> Option<i64> {
                let $r = self;
                $exp
            })?
        }
    };
}

kind!(Client, "client", |c| id: &c.id, keys: {
    let mut k = Vec::new();
    if let Some(o) = &c.organization_id { k.push(("organization", o.clone())) }
    if let Some(t) = &c.doc.template_id { k.push(("template", t.clone())) }
    if let Some(a) = &c.doc.application_id { k.push(("application", a.clone())) }
    if let Some(u) = &c.doc.owner { k.push(("owner", u.clone())) }
    // Which clients' browser applications run at an origin, asked by CORS preflights.
    k.extend(c.origins().into_iter().map(|o| ("origin", o)));
    k
});
kind!(Application, "application", |a| id: &a.id, keys: {
    let mut k = Vec::new();
    if let Some(o) = &a.organization_id { k.push(("organization", o.clone())) }
    if let Some(u) = &a.created_by { k.push(("created-by", u.clone())) }
    k
});
kind!(ClientTemplate, "client-template", |t| id: &t.id,
    keys: t.application_id.iter().map(|a| ("application", a.clone())).collect());
kind!(Organization, "organization", |o| id: &o.id);
kind!(Membership, "membership", |m| id: membership_id(&m.user_id, &m.organization_id),
    keys: vec![("user", m.user_id.clone()), ("organization", m.organization_id.clone())]);
kind!(AppInstance, "app-instance", |a| id: &a.id,
keys: vec![
    ("client", a.client_id.clone()),
    ("organization", a.organization_id.clone()),
    ("application", a.application_id.clone()),
]);
kind!(User, "user", |u| id: &u.id, keys: vec![("username", u.username.clone())]);
kind!(Grant, "grant", |g| id: &g.id,
    keys: {
        let mut k = vec![("client", g.client_id.clone())];
        if let Some(u) = &g.user_id { k.push(("user", u.clone())) }
        k
    },
    expires: Some(g.expires_at));
// A code is found by the connection it belongs to (its user and client), so that revoking
// the connection before the code is redeemed revokes the code too; redeeming consumes it.
kind!(Code, "code", |c| id: &c.hash,
    keys: c.grant.user_id.iter().map(|u| ("connection", consent_id(u, &c.grant.client_id))).collect(),
    expires: Some(c.expires_at));
kind!(RefreshToken, "refresh-token", |t| id: &t.hash,
    keys: vec![("grant", t.grant_id.clone()), ("client", t.client_id.clone())],
    expires: Some(t.expires_at));
kind!(Consent, "consent", |c| id: consent_id(&c.user_id, &c.client_id),
    keys: vec![("user", c.user_id.clone()), ("client", c.client_id.clone())]);
kind!(RevokedAccessToken, "revoked-access-token", |r| id: &r.jti, expires: Some(r.expires_at));
kind!(SigningKeyRecord, "signing-key", |k| id: &k.kid);
kind!(ClientRegistration, "client-registration", |r| id: &r.client_id);
kind!(InitialAccessToken, "initial-access-token", |t| id: &t.id, expires: Some(t.expires_at));
kind!(Session, "session", |s| id: &s.hash, keys: vec![("user", s.user_id.clone())], expires: Some(s.expires_at));
kind!(Interaction, "interaction", |i| id: &i.id, expires: Some(i.expires_at));
kind!(DeviceAuthorization, "device-authorization", |d| id: &d.id,
    keys: vec![("user-code", d.user_code.clone())], expires: Some(d.expires_at));
kind!(PushedRequest, "pushed-request", |p| id: &p.id, expires: Some(p.expires_at));
kind!(UsedAssertion, "used-client-assertion", |a| id: &a.id, expires: Some(a.expires_at));
kind!(UsedGrantCredential, "used-grant-credential", |a| id: &a.id, expires: Some(a.expires_at));
kind!(UsedProof, "used-dpop-proof", |p| id: &p.id, expires: Some(p.expires_at));
kind!(Event, "event", |e| id: &e.id, expires: e.expires_at);
// A user's second factors: found by the handle their passkeys know them by, for a passkey
// sign-in that names no user.
kind!(UserFactors, "user-factors", |f| id: &f.user_id,
    keys: f.passkey_handle.iter().map(|h| ("passkey-handle", h.clone())).collect());

/// A change to stored records made once per database (a re-keying), remembered by its name
/// so that no replica makes it again.
#[derive(Serialize, serde::Deserialize)]
struct Migration {
    name: String,
    at: i64,
}
kind!(Migration, "migration", |m| id: &m.name);

/// The record that makes a username unique: created in the same group as its user.
#[derive(Serialize, serde::Deserialize)]
struct Username {
    username: String,
    user_id: String,
}
kind!(Username, "username", |u| id: &u.username);

/// The record that makes a module's external application unique: created in the same
/// group as its application.
#[derive(Serialize, serde::Deserialize)]
struct ModuleApplication {
    module: String,
    application_id: String,
}
kind!(ModuleApplication, "module-application", |m| id: &m.module);

/// The record that keeps an application to one instance: created with it.
#[derive(Serialize, serde::Deserialize)]
struct ApplicationAdded {
    application_id: String,
    instance_id: String,
}
kind!(ApplicationAdded, "application-added", |a| id: &a.application_id);

fn membership_id(user_id: &str, organization_id: &str) -> String {
    [user_id, " ", organization_id].concat()
}

fn consent_id(user_id: &str, client_id: &str) -> String {
    [user_id, " ", client_id].concat()
}

/// The next record of a [`Storage::get`] of several, decoded as the kind asked for there.
fn next_found<T: Kind>(found: &mut impl Iterator<Item = Option<Stored>>) -> Result<Option<T>, StorageError> {
    found.next().flatten().map(decode::<T>).transpose().map(|loaded| loaded.map(|l| l.value))
}

/// A code presented for redemption ([`Storage::code_to_redeem`]).
pub struct CodeToRedeem {
    pub code: Code,
    /// Whether it was consumed when read.
    pub consumed: bool,
    /// Whether it came from this replica's memory of the codes it issued, not from a read.
    pub remembered: bool,
}

/// A record read back, with what the backend keeps beside the body.
pub struct Loaded<T> {
    pub value: T,
    pub revision: u64,
    pub consumed: bool,
}

fn decode<T: Kind>(s: Stored) -> Result<Loaded<T>, StorageError> {
    Ok(Loaded { value: serde_json::from_str(&s.body)?, revision: s.revision, consumed: s.consumed })
}

fn at<T: Kind>(id: &str) -> RecordRef {
    RecordRef { kind: T::KIND, id: id.to_owned() }
}

fn key<T: Kind>(name: &'static str, value: &str) -> KeyRef {
    KeyRef { kind: T::KIND, name, value: value.to_owned() }
}

fn record<T: Kind>(value: &T) -> Result<Record, StorageError> {
    Ok(Record {
        kind: T::KIND,
        id: value.id(),
        body: serde_json::to_string(value)?,
        keys: value.keys(),
        expires_at: value.expires_at(),
    })
}

/// Typed constructors of the writes of an atomic group.
pub mod write {
    use super::*;

    pub fn create<T: Kind>(value: &T) -> Result<Write, StorageError> {
        Ok(Write::Create(record(value)?))
    }
    pub fn put<T: Kind>(value: &T) -> Result<Write, StorageError> {
        Ok(Write::Put(record(value)?))
    }
    pub fn update<T: Kind>(value: &T, revision: u64) -> Result<Write, StorageError> {
        Ok(Write::Update(record(value)?, revision))
    }
    pub fn consume<T: Kind>(id: &str) -> Write {
        Write::Consume(at::<T>(id))
    }
    pub fn delete<T: Kind>(id: &str) -> Write {
        Write::Delete(at::<T>(id))
    }
    pub fn delete_by_key<T: Kind>(name: &'static str, value: &str) -> Write {
        Write::DeleteByKey(key::<T>(name, value))
    }
}

/// How long a replica trusts a client it read: its own changes reach it at once, another's
/// on PostgreSQL as soon as it is announced, and within this time in any case.
const CLIENT_CACHE_TTL: Duration = Duration::from_secs(1);

/// The kinds a client's context is read from (`Storage::client_context`): a write of one
/// clears the client cache.
const CLIENT_KINDS: [&str; 5] =
    [Client::KIND, Application::KIND, ClientTemplate::KIND, Organization::KIND, AppInstance::KIND];

/// The kinds whose writes are announced to the other processes on the database.
const ANNOUNCED_KINDS: [&str; 6] = [
    Client::KIND,
    Application::KIND,
    ClientTemplate::KIND,
    Organization::KIND,
    AppInstance::KIND,
    SigningKeyRecord::KIND,
];

fn write_kind(w: &Write) -> &'static str {
    match w {
        Write::Create(r) | Write::Put(r) | Write::Update(r, _) => r.kind,
        Write::Consume(r) | Write::Delete(r) => r.kind,
        Write::DeleteByKey(k) => k.kind,
    }
}

/// A listing reads records page by page.
const PAGE: u32 = 500;

/// A client with the records its policy input needs, read together and cached together.
#[derive(Debug, Clone)]
pub struct ClientContext {
    pub client: Client,
    pub application: Option<Application>,
    pub template: Option<ClientTemplate>,
    pub organization: Option<Organization>,
    /// The application's instance in its organization, when it has been added to one.
    pub instance: Option<AppInstance>,
    /// How tokens are issued to the client, resolved once when the context is read.
    tokens: TokenSettings,
}

impl ClientContext {
    /// Every scope the client may be granted: an instance's, fixed when it was added; else
    /// its template's, as the template is now; else those it was registered with.
    pub fn allowed_scopes(&self) -> &[String] {
        match (&self.instance, &self.template) {
            (Some(i), _) => &i.scopes,
            (None, Some(t)) => &t.scopes,
            (None, None) => &self.client.doc.scopes,
        }
    }

    /// Why the client may get no token now, when it may not: its application is disabled,
    /// or has not been added to an organization.
    pub fn unusable(&self) -> Option<&'static str> {
        match &self.application {
            Some(a) if !a.enabled => Some("the client's application is disabled"),
            Some(a) if a.requires_instance && self.instance.is_none() => {
                Some("the client's application has not been added to an organization")
            }
            _ => None,
        }
    }

    /// How tokens are issued to the client: its own settings, then its template's, then its
    /// application's (unset fields are the server's).
    pub fn token_settings(&self) -> &TokenSettings {
        &self.tokens
    }

    fn resolve_token_settings(
        client: &Client,
        template: Option<&ClientTemplate>,
        application: Option<&Application>,
    ) -> TokenSettings {
        let d = &client.doc;
        let own = TokenSettings {
            code_ttl: d.code_ttl,
            access_token_ttl: d.access_token_ttl,
            refresh_token_ttl: d.refresh_token_ttl,
            refresh_tokens: d.always_issue_refresh_token.then_some(RefreshTokens::Always),
            ..TokenSettings::default()
        };
        let none = TokenSettings::default();
        let template = template.map_or(&none, |t| &t.tokens);
        let application = application.map_or(&none, |a| &a.tokens);
        own.or(template).or(application)
    }
}

/// Answers read from the clients' records, by key, each with when it was read; kept for
/// [`CLIENT_CACHE_TTL`] and cleared by this replica's writes to clients.
struct ClientCache<V> {
    entries: RwLock<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> ClientCache<V> {
    fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.read();
        let (read, value) = entries.get(key)?;
        (read.elapsed() < CLIENT_CACHE_TTL).then(|| value.clone())
    }

    fn insert(&self, key: &str, value: V) {
        let mut entries = self.entries.write();
        make_room(&mut entries, MAX_CACHED_CLIENTS, |_, (read, _)| read.elapsed() < CLIENT_CACHE_TTL);
        entries.insert(key.to_owned(), (Instant::now(), value));
    }

    fn clear(&self) {
        self.entries.write().clear();
    }
}

impl<V> Default for ClientCache<V> {
    fn default() -> Self {
        Self { entries: RwLock::default() }
    }
}

#[derive(Clone)]
pub struct Storage {
    host: Arc<PolicyHost>,
    /// Client contexts by client id (`None`: no such client).
    clients: Arc<ClientCache<Option<Arc<ClientContext>>>>,
    /// Whether some client registered an origin, by origin.
    origins: Arc<ClientCache<bool>>,
    /// Codes this replica stored and has not seen presented, by hash.
    issued_codes: Arc<parking_lot::Mutex<HashMap<String, Code>>>,
}

impl Storage {
    pub fn new(host: Arc<PolicyHost>) -> Self {
        Self { host, clients: Arc::default(), origins: Arc::default(), issued_codes: Arc::default() }
    }

    // Authorization codes

    /// Remembers a code this replica has just stored, so that its redemption here needs no
    /// read: what the read would give is what was written (a code changes only by being
    /// consumed, which the redemption's own group does, or deleted by a cascade, which that
    /// group's `consume` then finds). At most [`MAX_REMEMBERED_CODES`], the expired going first.
    pub fn remember_issued_code(&self, code: Code, now: i64) {
        let mut codes = self.issued_codes.lock();
        make_room(&mut codes, MAX_REMEMBERED_CODES, |_, c| c.expires_at > now);
        codes.insert(code.hash.clone(), code);
    }

    /// The code stored under `hash`, as its redemption reads it: taken from what this replica
    /// remembers having issued (then `remembered`, and not consumed as far as this replica
    /// knows: the redemption's `consume` decides), or else read.
    pub async fn code_to_redeem(&self, hash: &str) -> Result<Option<CodeToRedeem>, StorageError> {
        if let Some(code) = self.issued_codes.lock().remove(hash) {
            return Ok(Some(CodeToRedeem { code, consumed: false, remembered: true }));
        }
        Ok(self.get_loaded::<Code>(hash).await?.map(|l| CodeToRedeem {
            code: l.value,
            consumed: l.consumed,
            remembered: false,
        }))
    }

    // Generic access

    pub async fn get<T: Kind>(&self, id: &str) -> Result<Option<T>, StorageError> {
        Ok(self.get_loaded::<T>(id).await?.map(|l| l.value))
    }

    pub async fn get_loaded<T: Kind>(&self, id: &str) -> Result<Option<Loaded<T>>, StorageError> {
        let mut found = self.host.store_get(&[at::<T>(id)]).await?;
        found.pop().flatten().map(decode).transpose()
    }

    /// Two records of any kinds, in one storage call.
    pub async fn get_pair<A: Kind, B: Kind>(&self, a: &str, b: &str) -> Result<(Option<A>, Option<B>), StorageError> {
        let mut found = self.host.store_get(&[at::<A>(a), at::<B>(b)]).await?.into_iter();
        Ok((next_found(&mut found)?, next_found(&mut found)?))
    }

    /// Three records of any kinds, in one storage call.
    pub async fn get_triple<A: Kind, B: Kind, C: Kind>(
        &self,
        a: &str,
        b: &str,
        c: &str,
    ) -> Result<(Option<A>, Option<B>, Option<C>), StorageError> {
        let mut found = self.host.store_get(&[at::<A>(a), at::<B>(b), at::<C>(c)]).await?.into_iter();
        Ok((next_found(&mut found)?, next_found(&mut found)?, next_found(&mut found)?))
    }

    pub async fn find<T: Kind>(&self, name: &'static str, value: &str) -> Result<Vec<T>, StorageError> {
        self.host.store_find(&key::<T>(name, value)).await?.into_iter().map(|s| decode(s).map(|l| l.value)).collect()
    }

    /// Every record of a kind, ordered by id.
    pub async fn list<T: Kind>(&self) -> Result<Vec<T>, StorageError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.host.store_list(T::KIND, after.as_deref(), PAGE).await?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|s| s.id.clone());
            for s in page {
                all.push(decode::<T>(s)?.value);
            }
            if !full {
                return Ok(all);
            }
        }
    }

    /// The writes as one atomic group. A failed precondition is `Conflict(index)`. Writes of
    /// the kinds other processes keep in memory (clients and what their contexts are read
    /// from, signing keys) are announced to them once done.
    pub async fn apply(&self, writes: Vec<Write>) -> Result<(), StorageError> {
        let mut announced: Vec<&'static str> = Vec::new();
        for kind in writes.iter().map(write_kind) {
            if ANNOUNCED_KINDS.contains(&kind) && !announced.contains(&kind) {
                announced.push(kind);
            }
        }
        let result = self.host.store_apply(writes).await;
        if announced.iter().any(|k| CLIENT_KINDS.contains(k)) {
            self.clients.clear();
            self.origins.clear();
        }
        result?;
        for kind in announced {
            // The write is done: another process that misses this hears of it by the clock.
            if let Err(e) = self.host.database().announce(kind).await {
                tracing::warn!(kind, error = %e, "announcing a write to the other replicas failed");
            }
        }
        Ok(())
    }

    /// Another process wrote records of `kind` (`None`: what it wrote is unknown): what this
    /// one keeps of them in memory is read again. The signing keys are the keys' own.
    pub(crate) fn heard(&self, kind: Option<&str>) {
        if kind.is_none_or(|k| CLIENT_KINDS.contains(&k)) {
            self.clients.clear();
            self.origins.clear();
        }
    }

    /// Writes every client back once, so that clients stored before their records carried
    /// `origin` keys get them (CORS preflights find clients by them). Done once per database;
    /// a client written meanwhile by someone else already has its keys.
    pub async fn key_clients_by_origin(&self, now: i64) -> Result<(), StorageError> {
        const NAME: &str = "client-origin-keys";
        if self.get::<Migration>(NAME).await?.is_some() {
            return Ok(());
        }
        for client in self.list::<Client>().await? {
            if let Some(loaded) = self.get_loaded::<Client>(&client.id).await? {
                match self.apply(vec![write::update(&loaded.value, loaded.revision)?]).await {
                    Ok(()) | Err(StorageError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match self.apply(vec![write::create(&Migration { name: NAME.into(), at: now })?]).await {
            Ok(()) | Err(StorageError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// At most `limit` records of a kind, ordered by id, from the first after `after`.
    pub async fn list_after<T: Kind>(&self, after: Option<&str>, limit: u32) -> Result<Vec<T>, StorageError> {
        let page = self.host.store_list(T::KIND, after, limit).await?;
        page.into_iter().map(|s| decode::<T>(s).map(|l| l.value)).collect()
    }

    pub async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        Ok(self.host.store_purge_expired(now).await?)
    }

    // Clients

    /// A client and what its policy needs, cached for [`CLIENT_CACHE_TTL`]. An id longer
    /// than [`MAX_CLIENT_ID_BYTES`] names no client, and is not looked up.
    pub async fn client_context(&self, id: &str) -> Result<Option<Arc<ClientContext>>, StorageError> {
        if id.len() > MAX_CLIENT_ID_BYTES {
            return Ok(None);
        }
        if let Some(cached) = self.clients.get(id) {
            return Ok(cached);
        }
        // Boxed: the storage calls' future is large, and nearly every request finds its client
        // cached; inline, each of those requests' futures would be as large.
        Box::pin(self.load_client_context(id)).await
    }

    /// [`Self::client_context`] not found in the cache: read, and remembered.
    async fn load_client_context(&self, id: &str) -> Result<Option<Arc<ClientContext>>, StorageError> {
        let context = match self.get::<Client>(id).await? {
            None => None,
            Some(client) => Some(Arc::new(self.load_context(client).await?)),
        };
        // Only an id some client could have is remembered as naming none: no other caller's
        // id is kept, whatever it sent.
        if context.is_some() || Client::has_issued_shape(id) {
            self.clients.insert(id, context.clone());
        }
        Ok(context)
    }

    /// Whether a client unexpired at `now` registered `origin` (its `origin` key), cached for
    /// [`CLIENT_CACHE_TTL`] like the clients themselves.
    pub async fn origin_registered(&self, origin: &str, now: i64) -> Result<bool, StorageError> {
        if let Some(cached) = self.origins.get(origin) {
            return Ok(cached);
        }
        let registered = self.find::<Client>("origin", origin).await?.iter().any(|c| !c.is_expired(now));
        self.origins.insert(origin, registered);
        Ok(registered)
    }

    /// The records a client's policy input needs. A client of no application, template or
    /// organization costs no further read; one of an application that must be added to an
    /// organization, one more (its instance).
    async fn load_context(&self, client: Client) -> Result<ClientContext, StorageError> {
        let (t, o, a) = (&client.doc.template_id, &client.organization_id, &client.doc.application_id);
        let (mut template, mut organization, mut application) = (None, None, None);
        if t.is_some() || o.is_some() || a.is_some() {
            let refs = [
                at::<ClientTemplate>(t.as_deref().unwrap_or("")),
                at::<Organization>(o.as_deref().unwrap_or("")),
                at::<Application>(a.as_deref().unwrap_or("")),
            ];
            let mut found = self.host.store_get(&refs).await?.into_iter();
            template = found.next().flatten().map(decode::<ClientTemplate>).transpose()?.map(|l| l.value);
            organization = found.next().flatten().map(decode::<Organization>).transpose()?.map(|l| l.value);
            application = found.next().flatten().map(decode::<Application>).transpose()?.map(|l| l.value);
        }
        let instance = match &application {
            Some(a) if a.requires_instance => self.find::<AppInstance>("client", &client.id).await?.into_iter().next(),
            _ => None,
        };
        if organization.is_none()
            && let Some(i) = &instance
        {
            organization = self.get::<Organization>(&i.organization_id).await?;
        }
        let tokens = ClientContext::resolve_token_settings(&client, template.as_ref(), application.as_ref());
        Ok(ClientContext { client, application, template, organization, instance, tokens })
    }

    /// How many client ids the cache holds an answer for (a client, or that there is none).
    pub fn cached_clients(&self) -> usize {
        self.clients.entries.read().len()
    }

    pub async fn get_client(&self, id: &str) -> Result<Option<Client>, StorageError> {
        Ok(self.client_context(id).await?.map(|c| c.client.clone()))
    }

    pub async fn create_client(&self, c: &Client) -> Result<(), StorageError> {
        self.apply(vec![write::create(c)?]).await.map_err(duplicate_at(0))
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>, StorageError> {
        self.list::<Client>().await
    }

    /// Deletes a client and everything issued to it; `false` when there was none.
    pub async fn delete_client(&self, id: &str) -> Result<bool, StorageError> {
        if self.get::<Client>(id).await?.is_none() {
            return Ok(false);
        }
        self.apply(Self::delete_client_writes(id)).await?;
        Ok(true)
    }

    /// The writes that delete a client and everything issued to it.
    fn delete_client_writes(id: &str) -> Vec<Write> {
        vec![
            write::delete::<Client>(id),
            write::delete_by_key::<Grant>("client", id),
            write::delete_by_key::<RefreshToken>("client", id),
            write::delete_by_key::<Consent>("client", id),
            write::delete_by_key::<AppInstance>("client", id),
            write::delete::<ClientRegistration>(id),
        ]
    }

    // Applications, their templates and instances

    /// Creates an application and the clients that come with it, in one group. A module has
    /// at most one application: a second is `Duplicate`.
    pub async fn create_application(&self, a: &Application, clients: &[Client]) -> Result<(), StorageError> {
        let mut writes = Vec::new();
        if let Some(module) = &a.module {
            writes.push(write::create(&ModuleApplication { module: module.clone(), application_id: a.id.clone() })?);
        }
        writes.push(write::create(a)?);
        for c in clients {
            writes.push(write::create(c)?);
        }
        self.apply(writes).await.map_err(|e| match e {
            StorageError::Conflict(_) => StorageError::Duplicate,
            e => e,
        })
    }

    /// Replaces an application read at `revision`, with its clients' new registrations, in
    /// one group; `Conflict` when it changed meanwhile.
    pub async fn update_application(
        &self,
        a: &Application,
        revision: u64,
        clients: &[Client],
    ) -> Result<(), StorageError> {
        let mut writes = vec![write::update(a, revision)?];
        for c in clients {
            writes.push(write::put(c)?);
        }
        self.apply(writes).await
    }

    /// Deletes an application with its module slot, templates, instances and clients, and
    /// everything issued to those clients, in one group; `false` when there was none.
    pub async fn delete_application(&self, id: &str) -> Result<bool, StorageError> {
        let Some(application) = self.get::<Application>(id).await? else { return Ok(false) };
        let mut writes = vec![write::delete::<Application>(id)];
        if let Some(module) = &application.module {
            writes.push(write::delete::<ModuleApplication>(module));
        }
        writes.push(write::delete_by_key::<ClientTemplate>("application", id));
        writes.push(write::delete_by_key::<AppInstance>("application", id));
        writes.push(write::delete::<ApplicationAdded>(id));
        for client in self.find::<Client>("application", id).await? {
            writes.extend(Self::delete_client_writes(&client.id));
        }
        self.apply(writes).await?;
        Ok(true)
    }

    /// Adds an application to an organization: at most one instance per application.
    pub async fn add_instance(&self, i: &AppInstance) -> Result<(), StorageError> {
        let added = ApplicationAdded { application_id: i.application_id.clone(), instance_id: i.id.clone() };
        self.apply(vec![write::create(&added)?, write::create(i)?]).await.map_err(duplicate_at(0))
    }

    /// Removes an instance: its client gets no token, and its tokens are inactive, at once.
    pub async fn remove_instance(&self, i: &AppInstance) -> Result<(), StorageError> {
        self.apply(vec![write::delete::<AppInstance>(&i.id), write::delete::<ApplicationAdded>(&i.application_id)])
            .await
    }

    /// Deletes a template no client was created from; `Conflict` when one was.
    pub async fn delete_template(&self, id: &str) -> Result<bool, StorageError> {
        if self.get::<ClientTemplate>(id).await?.is_none() {
            return Ok(false);
        }
        if !self.find::<Client>("template", id).await?.is_empty() {
            return Err(StorageError::Conflict(0));
        }
        self.apply(vec![write::delete::<ClientTemplate>(id)]).await?;
        Ok(true)
    }

    // Organizations and memberships

    pub async fn membership(&self, user_id: &str, organization_id: &str) -> Result<Option<Membership>, StorageError> {
        self.get::<Membership>(&membership_id(user_id, organization_id)).await
    }

    /// Ends a user's membership of an organization.
    pub async fn delete_membership(&self, user_id: &str, organization_id: &str) -> Result<(), StorageError> {
        self.apply(vec![write::delete::<Membership>(&membership_id(user_id, organization_id))]).await
    }

    // Users

    pub async fn create_user(&self, u: &User) -> Result<(), StorageError> {
        let unique = Username { username: u.username.clone(), user_id: u.id.clone() };
        self.apply(vec![write::create(&unique)?, write::create(u)?]).await.map_err(|e| match e {
            StorageError::Conflict(_) => StorageError::Duplicate,
            e => e,
        })
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>, StorageError> {
        self.get::<User>(id).await
    }

    pub async fn find_user(&self, username: &str) -> Result<Option<User>, StorageError> {
        Ok(self.find::<User>("username", username).await?.into_iter().find(|u| u.username == username))
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        let mut users = self.list::<User>().await?;
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }

    // Grants

    /// The live grants of a user.
    pub async fn list_user_grants(&self, user_id: &str, now: i64) -> Result<Vec<Grant>, StorageError> {
        let mut grants: Vec<Grant> =
            self.find::<Grant>("user", user_id).await?.into_iter().filter(|g| g.expires_at > now).collect();
        grants.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(grants)
    }

    /// Revokes every grant a user gave a client and forgets the consent, in one group: the
    /// refresh tokens and the codes not yet redeemed die at once, the access tokens with
    /// their grants. `false` when the user had given the client nothing.
    pub async fn revoke_connection(&self, user_id: &str, client_id: &str) -> Result<bool, StorageError> {
        if client_id.len() > MAX_CLIENT_ID_BYTES {
            return Ok(false);
        }
        let grants: Vec<Grant> =
            self.find::<Grant>("user", user_id).await?.into_iter().filter(|g| g.client_id == client_id).collect();
        let consent = self.get::<Consent>(&consent_id(user_id, client_id)).await?;
        if grants.is_empty() && consent.is_none() {
            return Ok(false);
        }
        let connection = consent_id(user_id, client_id);
        let mut writes =
            vec![write::delete::<Consent>(&connection), write::delete_by_key::<Code>("connection", &connection)];
        for g in &grants {
            writes.extend(Self::revoke_grant_writes(&g.id));
        }
        self.apply(writes).await?;
        Ok(true)
    }

    /// The writes that revoke a grant: it and its refresh tokens. (Its code was consumed
    /// when the grant was created; the access tokens name the grant and die with it.)
    pub fn revoke_grant_writes(grant_id: &str) -> Vec<Write> {
        vec![write::delete::<Grant>(grant_id), write::delete_by_key::<RefreshToken>("grant", grant_id)]
    }

    /// Revokes a grant and every token issued under it.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<(), StorageError> {
        self.apply(Self::revoke_grant_writes(grant_id)).await
    }

    // Access token revocation (by `jti`)

    pub async fn revoke_token_id(&self, jti: &str, expires_at: i64) -> Result<(), StorageError> {
        self.apply(vec![write::put(&RevokedAccessToken { jti: jti.to_owned(), expires_at })?]).await
    }

    // Consents

    /// Every client a user consented to, with what they allowed.
    pub async fn list_user_consents(&self, user_id: &str) -> Result<Vec<Consent>, StorageError> {
        Ok(self.find::<Consent>("user", user_id).await?.into_iter().filter(|c| c.user_id == user_id).collect())
    }

    pub async fn put_consent(&self, c: &Consent) -> Result<(), StorageError> {
        self.apply(vec![write::put(c)?]).await
    }

    pub async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<(), StorageError> {
        self.apply(vec![write::delete::<Consent>(&consent_id(user_id, client_id))]).await
    }

    /// A user and what they consented to for a client, in one storage call.
    pub async fn user_and_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<(Option<User>, Option<Consent>), StorageError> {
        self.get_pair::<User, Consent>(user_id, &consent_id(user_id, client_id)).await
    }

    /// A session, with the user it should be and what they consented to for a client, in one
    /// storage call: a signed-in authorization request's read, where the cookie names its user.
    pub async fn session_user_and_consent(
        &self,
        hash: &str,
        user_id: &str,
        client_id: &str,
    ) -> Result<(Option<Session>, Option<User>, Option<Consent>), StorageError> {
        self.get_triple::<Session, User, Consent>(hash, user_id, &consent_id(user_id, client_id)).await
    }

    // Signing keys

    /// New keys, in one group.
    pub(crate) async fn create_keys(&self, keys: &[SigningKeyRecord]) -> Result<(), StorageError> {
        self.apply(keys.iter().map(write::create).collect::<Result<_, _>>()?).await
    }

    pub(crate) async fn get_key(&self, kid: &str) -> Result<Option<Loaded<SigningKeyRecord>>, StorageError> {
        self.get_loaded::<SigningKeyRecord>(kid).await
    }

    pub async fn list_keys(&self) -> Result<Vec<SigningKeyRecord>, StorageError> {
        self.list::<SigningKeyRecord>().await
    }

    /// A key read at `revision`, changed; `Conflict` when it changed meanwhile.
    pub(crate) async fn update_key(&self, key: &SigningKeyRecord, revision: u64) -> Result<(), StorageError> {
        self.apply(vec![write::update(key, revision)?]).await
    }

    /// A key read at `revision`, retired, and the key that signs in its place, in one group:
    /// there is never a moment when its algorithm has no key that signs.
    pub(crate) async fn retire_key(
        &self,
        retired: &SigningKeyRecord,
        revision: u64,
        successor: Option<&SigningKeyRecord>,
    ) -> Result<(), StorageError> {
        let mut writes = vec![write::update(retired, revision)?];
        if let Some(successor) = successor {
            writes.push(write::create(successor)?);
        }
        self.apply(writes).await
    }

    // Login sessions

    pub async fn create_session(&self, s: &Session) -> Result<(), StorageError> {
        self.apply(vec![write::create(s)?]).await.map_err(duplicate_at(0))
    }

    pub async fn get_session(&self, hash: &str) -> Result<Option<Session>, StorageError> {
        self.get::<Session>(hash).await
    }

    pub async fn delete_session(&self, hash: &str) -> Result<(), StorageError> {
        self.apply(vec![write::delete::<Session>(hash)]).await
    }

    // Interactions (authorization requests waiting for login or consent)

    pub async fn put_interaction(&self, i: &Interaction) -> Result<(), StorageError> {
        self.apply(vec![write::put(i)?]).await
    }

    pub async fn get_interaction(&self, id: &str) -> Result<Option<Interaction>, StorageError> {
        self.get::<Interaction>(id).await
    }

    pub async fn delete_interaction(&self, id: &str) -> Result<(), StorageError> {
        self.apply(vec![write::delete::<Interaction>(id)]).await
    }

    // The lifecycle of clients and users

    /// Replaces a client read at `revision` (`Conflict` when it changed meanwhile). Like
    /// every client write, it clears this replica's client cache and is announced to the others.
    pub async fn update_client(&self, c: &Client, revision: u64) -> Result<(), StorageError> {
        self.apply(vec![write::update(c, revision)?]).await
    }

    /// Whether a plugin of `kind` named `name` is loaded now.
    pub fn plugin_loaded(&self, kind: crate::plugin::PluginKind, name: &str) -> bool {
        self.host.is_loaded(kind, name)
    }

    /// The plugins a client names (`scope_policy`, `consent_ui`) that are not loaded now:
    /// each with the field that names it and the kind it must be.
    pub fn missing_plugins(&self, c: &Client) -> Vec<MissingPlugin> {
        use crate::plugin::PluginKind;
        let named = [
            ("scope_policy", PluginKind::ScopePolicy, &c.doc.scope_policy),
            ("consent_ui", PluginKind::ConsentUi, &c.doc.consent_ui),
        ];
        named
            .into_iter()
            .filter_map(|(field, kind, name)| {
                let name = name.as_deref()?;
                (!self.plugin_loaded(kind, name)).then(|| MissingPlugin {
                    client_id: c.id.clone(),
                    field,
                    kind: kind.to_string(),
                    plugin: name.to_owned(),
                })
            })
            .collect()
    }

    /// Every client naming a plugin that is not loaded now (one entry per plugin it misses):
    /// such a client gets `server_error` until the plugin is back or the client is changed.
    pub async fn clients_missing_plugins(&self) -> Result<Vec<MissingPlugin>, StorageError> {
        Ok(self.list::<Client>().await?.iter().flat_map(|c| self.missing_plugins(c)).collect())
    }

    /// Replaces a user read at `revision`; `Conflict` when it changed meanwhile.
    pub async fn update_user(&self, u: &User, revision: u64) -> Result<(), StorageError> {
        self.apply(vec![write::update(u, revision)?]).await
    }

    /// Replaces a user read at `revision` and ends what they hold now, in one group: their
    /// sessions and, with `revoke_grants`, every grant they gave (with its refresh tokens;
    /// the access tokens name the grant and die with it). For disabling a user, or setting
    /// their password.
    pub async fn update_user_ending(&self, u: &User, revision: u64, revoke_grants: bool) -> Result<(), StorageError> {
        let mut writes = vec![write::update(u, revision)?, write::delete_by_key::<Session>("user", &u.id)];
        if revoke_grants {
            for g in self.find::<Grant>("user", &u.id).await? {
                writes.extend(Self::revoke_grant_writes(&g.id));
            }
        }
        self.apply(writes).await
    }

    /// Replaces a user read at `revision` and ends every session of theirs but `keep`, in one
    /// group: a person changing their own password stays signed in in the browser they did
    /// it from. Their grants stay.
    pub(crate) async fn update_user_keeping_session(
        &self,
        u: &User,
        revision: u64,
        keep: &str,
    ) -> Result<(), StorageError> {
        let mut writes = vec![write::update(u, revision)?];
        for s in self.find::<Session>("user", &u.id).await? {
            if s.hash != keep {
                writes.push(write::delete::<Session>(&s.hash));
            }
        }
        self.apply(writes).await
    }

    /// Removes a user's second factors and ends their sessions, in one group.
    pub async fn reset_factors(&self, user_id: &str) -> Result<(), StorageError> {
        self.apply(vec![write::delete::<UserFactors>(user_id), write::delete_by_key::<Session>("user", user_id)]).await
    }

    /// Deletes a user with their username, sessions, grants (and their refresh tokens),
    /// consents and memberships, in one group; `false` when there was none.
    pub async fn delete_user(&self, id: &str) -> Result<bool, StorageError> {
        let Some(user) = self.get::<User>(id).await? else { return Ok(false) };
        let mut writes = vec![
            write::delete::<User>(id),
            write::delete::<Username>(&user.username),
            write::delete::<UserFactors>(id),
            write::delete_by_key::<Session>("user", id),
            write::delete_by_key::<Consent>("user", id),
            write::delete_by_key::<Membership>("user", id),
        ];
        for g in self.find::<Grant>("user", id).await? {
            writes.extend(Self::revoke_grant_writes(&g.id));
        }
        self.apply(writes).await?;
        Ok(true)
    }
}

/// A plugin a client names that is not loaded.
#[derive(Debug, Clone, Serialize)]
pub struct MissingPlugin {
    pub client_id: String,
    /// The client's field naming it: `scope_policy` or `consent_ui`.
    pub field: &'static str,
    /// The kind of plugin it must be (`scope-policy`, `consent-ui`).
    pub kind: String,
    pub plugin: String,
}

/// A failed `create` precondition at `index` means the key exists.
fn duplicate_at(index: usize) -> impl Fn(StorageError) -> StorageError {
    move |e| match e {
        StorageError::Conflict(i) if i == index => StorageError::Duplicate,
        e => e,
    }
}

/// Every kind of record, each once, with how a record of it is made from a stored body:
/// what export and import go through (`backup.rs`), so that no kind is left out of a backup.
/// A test counts the kinds declared in this file against it.
macro_rules! every_kind {
    ($($t:ty),* $(,)?) => {
        pub(crate) const KINDS: &[KindOf] = &[$(KindOf { kind: <$t as Kind>::KIND, record: record_of_body::<$t> }),*];
    };
}

every_kind!(
    Client,
    Application,
    ClientTemplate,
    Organization,
    Membership,
    AppInstance,
    User,
    Grant,
    Code,
    RefreshToken,
    Consent,
    RevokedAccessToken,
    SigningKeyRecord,
    Session,
    Interaction,
    DeviceAuthorization,
    PushedRequest,
    UsedAssertion,
    UsedGrantCredential,
    UsedProof,
    Event,
    UserFactors,
    ClientRegistration,
    InitialAccessToken,
    Migration,
    Username,
    ModuleApplication,
    ApplicationAdded,
);

/// A kind of record, as [`KINDS`] lists it.
pub(crate) struct KindOf {
    pub kind: &'static str,
    /// The record a stored body is, read as its type: its id, keys and expiry computed again.
    pub record: fn(&str) -> Result<Record, StorageError>,
}

fn record_of_body<T: Kind>(body: &str) -> Result<Record, StorageError> {
    record(&serde_json::from_str::<T>(body)?)
}

impl Storage {
    /// A page of the stored records of a kind, as stored, ordered by id: those after `after`,
    /// at most `limit`.
    pub(crate) async fn list_stored(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Stored>, StorageError> {
        Ok(self.host.store_list(kind, after, limit).await?)
    }
}

#[cfg(test)]
mod every_kind_tests {
    #[test]
    fn every_kind_declared_here_is_listed_once() {
        let declared = include_str!("storage.rs").lines().filter(|l| l.starts_with("kind!(")).count();
        let mut kinds: Vec<&str> = super::KINDS.iter().map(|k| k.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), super::KINDS.len(), "a kind listed twice");
        assert_eq!(declared, super::KINDS.len(), "every `kind!` must be listed in `every_kind!`");
    }
}
