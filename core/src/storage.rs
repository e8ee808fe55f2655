//! Every persistent record goes through the active storage plugin. This module is the
//! typed face of that plugin: one fresh instance per operation, records converted to the
//! protocol's types, documents (de)serialised here and nowhere else.

use std::sync::Arc;

use crate::model::*;
use crate::plugin::bindings::storage_world::exports::portcullis::plugin::storage as wit;
use crate::plugin::{PluginError, PolicyHost};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("a record with that key exists")]
    Duplicate,
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("stored document is unreadable: {0}")]
    Document(#[from] serde_json::Error),
}

/// The outcome of redeeming an authorization code.
pub enum Redemption {
    Fresh(Code),
    Replayed(Code),
}

/// The outcome of rotating a refresh token.
pub enum Rotation {
    Rotated(RefreshToken),
    Reused(RefreshToken),
}

#[derive(Clone)]
pub struct Storage {
    host: Arc<PolicyHost>,
}

/// `Ok(None)` for not-found; every other storage error is an error.
fn found<T>(r: Result<T, wit::StorageError>) -> Result<Option<T>, StorageError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(wit::StorageError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl From<wit::StorageError> for StorageError {
    fn from(e: wit::StorageError) -> Self {
        match e {
            wit::StorageError::NotFound => StorageError::Backend("record not found".into()),
            wit::StorageError::Duplicate => StorageError::Duplicate,
            wit::StorageError::Backend(m) if m.contains("unavailable") || m.contains("timed out") => {
                StorageError::Unavailable(m)
            }
            wit::StorageError::Backend(m) => StorageError::Backend(m),
        }
    }
}

/// Calls one storage function on a fresh plugin instance.
macro_rules! call {
    ($self:ident, $method:ident $(, $arg:expr)*) => {{
        let mut call = $self.host.storage().await?;
        let api = call.instance.portcullis_plugin_storage();
        match api.$method(&mut call.store $(, $arg)*).await {
            Ok(r) => r,
            Err(e) => return Err(StorageError::Plugin(call.trap(e))),
        }
    }};
}

impl Storage {
    pub fn new(host: Arc<PolicyHost>) -> Self {
        Self { host }
    }

    // Clients

    pub async fn create_client(&self, c: &Client) -> Result<(), StorageError> {
        let record = client_record(c)?;
        Ok(call!(self, call_create_client, &record)?)
    }

    pub async fn update_client(&self, c: &Client) -> Result<(), StorageError> {
        let record = client_record(c)?;
        Ok(call!(self, call_update_client, &record)?)
    }

    pub async fn get_client(&self, id: &str) -> Result<Option<Client>, StorageError> {
        found(call!(self, call_get_client, id))?.map(client).transpose()
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>, StorageError> {
        call!(self, call_list_clients)?.into_iter().map(client).collect()
    }

    /// Deletes a client; `false` when there was none.
    pub async fn delete_client(&self, id: &str) -> Result<bool, StorageError> {
        Ok(found(call!(self, call_delete_client, id))?.is_some())
    }

    // Users

    pub async fn create_user(&self, u: &User) -> Result<(), StorageError> {
        let record = wit::UserRecord {
            id: u.id.clone(),
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            created_at: u.created_at,
            document: serde_json::to_string(&u.doc)?,
        };
        Ok(call!(self, call_create_user, &record)?)
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>, StorageError> {
        found(call!(self, call_get_user, id))?.map(user).transpose()
    }

    pub async fn find_user(&self, username: &str) -> Result<Option<User>, StorageError> {
        found(call!(self, call_find_user, username))?.map(user).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        call!(self, call_list_users)?.into_iter().map(user).collect()
    }

    // Grants

    pub async fn create_grant(&self, g: &Grant) -> Result<(), StorageError> {
        let record = wit::GrantRecord {
            id: g.id.clone(),
            client_id: g.client_id.clone(),
            user_id: g.user_id.clone(),
            created_at: g.created_at,
            expires_at: g.expires_at,
            revoked: g.revoked,
            document: serde_json::to_string(&g.doc)?,
        };
        Ok(call!(self, call_create_grant, &record)?)
    }

    pub async fn get_grant(&self, id: &str) -> Result<Option<Grant>, StorageError> {
        found(call!(self, call_get_grant, id))?.map(grant).transpose()
    }

    pub async fn list_user_grants(&self, user_id: &str, now: i64) -> Result<Vec<Grant>, StorageError> {
        call!(self, call_list_user_grants, user_id, now)?.into_iter().map(grant).collect()
    }

    pub async fn revoke_grant(&self, id: &str) -> Result<bool, StorageError> {
        Ok(found(call!(self, call_revoke_grant, id))?.is_some())
    }

    // Authorization codes

    pub async fn create_code(&self, code_hash: &str, c: &Code) -> Result<(), StorageError> {
        let record = wit::CodeRecord {
            code_hash: code_hash.to_owned(),
            grant_id: c.grant_id.clone(),
            expires_at: c.expires_at,
            document: serde_json::to_string(&c.doc)?,
        };
        Ok(call!(self, call_create_code, &record)?)
    }

    pub async fn redeem_code(&self, code_hash: &str) -> Result<Option<Redemption>, StorageError> {
        Ok(match found(call!(self, call_redeem_code, code_hash))? {
            None => None,
            Some(wit::Redemption::Fresh(r)) => Some(Redemption::Fresh(code(r)?)),
            Some(wit::Redemption::Replayed(r)) => Some(Redemption::Replayed(code(r)?)),
        })
    }

    // Refresh tokens

    pub async fn create_refresh_token(&self, token_hash: &str, t: &RefreshToken) -> Result<(), StorageError> {
        let record = refresh_record(token_hash, t)?;
        Ok(call!(self, call_create_refresh_token, &record)?)
    }

    pub async fn get_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, StorageError> {
        found(call!(self, call_get_refresh_token, token_hash))?.map(refresh).transpose()
    }

    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor_hash: &str,
        successor: &RefreshToken,
    ) -> Result<Option<Rotation>, StorageError> {
        let record = refresh_record(successor_hash, successor)?;
        Ok(match found(call!(self, call_rotate_refresh_token, token_hash, &record))? {
            None => None,
            Some(wit::Rotation::Rotated(r)) => Some(Rotation::Rotated(refresh(r)?)),
            Some(wit::Rotation::Reused(r)) => Some(Rotation::Reused(refresh(r)?)),
        })
    }

    // Access token revocation (by `jti`)

    pub async fn revoke_token_id(&self, jti: &str, expires_at: i64) -> Result<(), StorageError> {
        Ok(call!(self, call_revoke_token_id, jti, expires_at)?)
    }

    pub async fn is_token_id_revoked(&self, jti: &str) -> Result<bool, StorageError> {
        Ok(call!(self, call_is_token_id_revoked, jti)?)
    }

    // Consents

    pub async fn put_consent(&self, c: &Consent) -> Result<(), StorageError> {
        let record = wit::ConsentRecord {
            user_id: c.user_id.clone(),
            client_id: c.client_id.clone(),
            scopes: c.scopes.clone(),
            granted_at: c.granted_at,
        };
        Ok(call!(self, call_put_consent, &record)?)
    }

    pub async fn get_consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StorageError> {
        Ok(found(call!(self, call_get_consent, user_id, client_id))?.map(|r| Consent {
            user_id: r.user_id,
            client_id: r.client_id,
            scopes: r.scopes,
            granted_at: r.granted_at,
        }))
    }

    pub async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<(), StorageError> {
        found(call!(self, call_delete_consent, user_id, client_id))?;
        Ok(())
    }

    // Signing keys

    pub async fn put_key(&self, k: &SigningKeyRecord) -> Result<(), StorageError> {
        let record = wit::KeyRecord {
            kid: k.kid.clone(),
            algorithm: k.algorithm.clone(),
            sealed_private_key: k.sealed_private_key.clone(),
            public_jwk: k.public_jwk.clone(),
            created_at: k.created_at,
            retire_at: k.retire_at,
        };
        Ok(call!(self, call_put_key, &record)?)
    }

    pub async fn list_keys(&self) -> Result<Vec<SigningKeyRecord>, StorageError> {
        Ok(call!(self, call_list_keys)?
            .into_iter()
            .map(|r| SigningKeyRecord {
                kid: r.kid,
                algorithm: r.algorithm,
                sealed_private_key: r.sealed_private_key,
                public_jwk: r.public_jwk,
                created_at: r.created_at,
                retire_at: r.retire_at,
            })
            .collect())
    }

    // Login sessions

    pub async fn create_session(&self, id_hash: &str, s: &Session) -> Result<(), StorageError> {
        let record = wit::SessionRecord {
            id_hash: id_hash.to_owned(),
            user_id: s.user_id.clone(),
            auth_time: s.auth_time,
            expires_at: s.expires_at,
            document: "{}".into(),
        };
        Ok(call!(self, call_create_session, &record)?)
    }

    pub async fn get_session(&self, id_hash: &str) -> Result<Option<Session>, StorageError> {
        Ok(found(call!(self, call_get_session, id_hash))?.map(|r| Session {
            user_id: r.user_id,
            auth_time: r.auth_time,
            expires_at: r.expires_at,
        }))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StorageError> {
        found(call!(self, call_delete_session, id_hash))?;
        Ok(())
    }

    // Interactions (authorization requests waiting for login or consent)

    pub async fn put_interaction(&self, id: &str, expires_at: i64, i: &Interaction) -> Result<(), StorageError> {
        let record = wit::InteractionRecord { id: id.to_owned(), expires_at, document: serde_json::to_string(i)? };
        Ok(call!(self, call_put_interaction, &record)?)
    }

    pub async fn get_interaction(&self, id: &str) -> Result<Option<(i64, Interaction)>, StorageError> {
        match found(call!(self, call_get_interaction, id))? {
            Some(r) => Ok(Some((r.expires_at, serde_json::from_str(&r.document)?))),
            None => Ok(None),
        }
    }

    pub async fn delete_interaction(&self, id: &str) -> Result<(), StorageError> {
        found(call!(self, call_delete_interaction, id))?;
        Ok(())
    }

    pub async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        Ok(call!(self, call_purge_expired, now)?)
    }
}

fn client_record(c: &Client) -> Result<wit::ClientRecord, StorageError> {
    Ok(wit::ClientRecord {
        id: c.id.clone(),
        secret_hash: c.secret_hash.clone(),
        organization_id: c.organization_id.clone(),
        created_at: c.created_at,
        document: serde_json::to_string(&c.doc)?,
    })
}

fn client(r: wit::ClientRecord) -> Result<Client, StorageError> {
    Ok(Client {
        id: r.id,
        secret_hash: r.secret_hash,
        organization_id: r.organization_id,
        created_at: r.created_at,
        doc: serde_json::from_str(&r.document)?,
    })
}

fn user(r: wit::UserRecord) -> Result<User, StorageError> {
    Ok(User {
        id: r.id,
        username: r.username,
        password_hash: r.password_hash,
        created_at: r.created_at,
        doc: serde_json::from_str(&r.document)?,
    })
}

fn grant(r: wit::GrantRecord) -> Result<Grant, StorageError> {
    Ok(Grant {
        id: r.id,
        client_id: r.client_id,
        user_id: r.user_id,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked: r.revoked,
        doc: serde_json::from_str(&r.document)?,
    })
}

fn code(r: wit::CodeRecord) -> Result<Code, StorageError> {
    Ok(Code { grant_id: r.grant_id, expires_at: r.expires_at, doc: serde_json::from_str(&r.document)? })
}

fn refresh_record(token_hash: &str, t: &RefreshToken) -> Result<wit::RefreshRecord, StorageError> {
    Ok(wit::RefreshRecord {
        token_hash: token_hash.to_owned(),
        grant_id: t.grant_id.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        state: wit::RefreshState::Active,
        document: serde_json::to_string(&t.doc)?,
    })
}

fn refresh(r: wit::RefreshRecord) -> Result<RefreshToken, StorageError> {
    Ok(RefreshToken {
        grant_id: r.grant_id,
        created_at: r.created_at,
        expires_at: r.expires_at,
        state: match r.state {
            wit::RefreshState::Active => RefreshState::Active,
            wit::RefreshState::Rotated => RefreshState::Rotated,
            wit::RefreshState::Revoked => RefreshState::Revoked,
        },
        doc: serde_json::from_str(&r.document)?,
    })
}
