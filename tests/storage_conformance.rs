//! One conformance suite for storage plugins, run on every backend: embedded SQLite and
//! PostgreSQL. A backend is done when this suite is green. Each test gets a fresh database.
//!
//! PostgreSQL is expected at `PORTCULLIS_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the suite fails, not skips, without it.

mod support;

use portcullis::model::*;
use portcullis::plugin::database::Database;
use portcullis::plugin::{Defaults, PolicyHost, watch};
use portcullis::storage::{Redemption, Rotation, Storage, StorageError};

fn defaults() -> Defaults {
    Defaults { storage: "storage-sql".into(), scope: "scope-template".into(), consent: "consent-default".into() }
}

async fn storage_for(url: &str) -> Storage {
    let db = Database::connect(url, 8).await.expect("database");
    let host = PolicyHost::new(db, defaults(), None).expect("host");
    watch::load_dir(&host, &support::policies_dir()).await.expect("policies load");
    Storage::new(host)
}

struct Backend {
    storage: Storage,
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/conformance.db", dir.path().display());
    Backend { storage: storage_for(&url).await, _guard: Some(Box::new(dir)) }
}

async fn postgres() -> Backend {
    let (url, guard) = support::fresh_postgres("conf").await;
    Backend { storage: storage_for(&url).await, _guard: Some(Box::new(guard)) }
}

fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        secret_hash: Some("ab".repeat(32)),
        organization_id: None,
        created_at: now(),
        doc: ClientDocument { name: format!("client {id}"), scopes: vec!["openid".into()], ..Default::default() },
    }
}

fn grant(id: &str, client_id: &str, user: Option<&str>) -> Grant {
    Grant {
        id: id.into(),
        client_id: client_id.into(),
        user_id: user.map(str::to_owned),
        created_at: now(),
        expires_at: now() + 3600,
        revoked: false,
        doc: GrantDocument { scopes: vec!["openid".into()], auth_time: Some(now()), claims: vec![] },
    }
}

fn refresh(grant_id: &str, client_id: &str) -> RefreshToken {
    RefreshToken {
        grant_id: grant_id.into(),
        created_at: now(),
        expires_at: now() + 3600,
        state: RefreshState::Active,
        doc: RefreshDocument { client_id: client_id.into(), access_jti: None },
    }
}

async fn clients_round_trip(s: &Storage) {
    s.create_client(&client("c1")).await.unwrap();
    assert!(matches!(s.create_client(&client("c1")).await, Err(StorageError::Duplicate)));
    let got = s.get_client("c1").await.unwrap().expect("stored");
    assert_eq!(got.doc.name, "client c1");
    assert_eq!(got.secret_hash.as_deref(), Some("ab".repeat(32).as_str()));
    let mut updated = got.clone();
    updated.doc.name = "renamed".into();
    s.update_client(&updated).await.unwrap();
    assert_eq!(s.get_client("c1").await.unwrap().unwrap().doc.name, "renamed");
    s.create_client(&Client { secret_hash: None, ..client("c2") }).await.unwrap();
    assert_eq!(s.list_clients().await.unwrap().len(), 2);
    assert!(s.get_client("c2").await.unwrap().unwrap().secret_hash.is_none());
    assert!(s.delete_client("c2").await.unwrap());
    assert!(!s.delete_client("c2").await.unwrap());
    assert!(s.get_client("c2").await.unwrap().is_none());
}

async fn users_round_trip(s: &Storage) {
    let user = User {
        id: "u1".into(),
        username: "alice".into(),
        password_hash: "$argon2id$v=19$...".into(),
        created_at: now(),
        doc: UserDocument { email: "alice@example.com".into(), company: Some("ACME".into()), ..Default::default() },
    };
    s.create_user(&user).await.unwrap();
    let dup = User { id: "u2".into(), ..user.clone() };
    assert!(matches!(s.create_user(&dup).await, Err(StorageError::Duplicate)), "usernames are unique");
    assert_eq!(s.find_user("alice").await.unwrap().unwrap().id, "u1");
    assert_eq!(s.get_user("u1").await.unwrap().unwrap().doc.company.as_deref(), Some("ACME"));
    assert!(s.find_user("nobody").await.unwrap().is_none());
    assert_eq!(s.list_users().await.unwrap().len(), 1);
}

async fn codes_redeem_once(s: &Storage) {
    s.create_client(&client("c1")).await.unwrap();
    s.create_grant(&grant("g1", "c1", Some("u1"))).await.unwrap();
    let code = Code {
        grant_id: "g1".into(),
        expires_at: now() + 600,
        doc: CodeDocument { client_id: "c1".into(), ..Default::default() },
    };
    s.create_code("h1", &code).await.unwrap();
    // Concurrent redemptions: exactly one is fresh.
    let attempts = (0..6).map(|_| s.redeem_code("h1"));
    let results = futures::future::join_all(attempts).await;
    let fresh = results.iter().filter(|r| matches!(r, Ok(Some(Redemption::Fresh(_))))).count();
    let replayed = results.iter().filter(|r| matches!(r, Ok(Some(Redemption::Replayed(_))))).count();
    assert_eq!((fresh, replayed), (1, 5));
    assert!(s.redeem_code("unknown").await.unwrap().is_none());
}

async fn refresh_rotation_has_one_winner(s: &Storage) {
    s.create_client(&client("c1")).await.unwrap();
    s.create_grant(&grant("g1", "c1", Some("u1"))).await.unwrap();
    s.create_refresh_token("r0", &refresh("g1", "c1")).await.unwrap();
    assert_eq!(s.get_refresh_token("r0").await.unwrap().unwrap().grant_id, "g1");
    let attempts = (0..6).map(|i| {
        let successor = format!("r1-{i}");
        async move { s.rotate_refresh_token("r0", &successor, &refresh("g1", "c1")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let rotated = results.iter().filter(|r| matches!(r, Ok(Some(Rotation::Rotated(_))))).count();
    assert_eq!(
        s.get_refresh_token("r0").await.unwrap().unwrap().state,
        RefreshState::Rotated,
        "a rotated token is still found"
    );
    let reused = results.iter().filter(|r| matches!(r, Ok(Some(Rotation::Reused(_))))).count();
    assert_eq!((rotated, reused), (1, 5), "{:?}", results.iter().map(|r| r.is_ok()).collect::<Vec<_>>());
    assert!(s.rotate_refresh_token("missing", "x", &refresh("g1", "c1")).await.unwrap().is_none());
}

async fn grants_revoke_and_list(s: &Storage) {
    s.create_client(&client("c1")).await.unwrap();
    s.create_grant(&grant("g1", "c1", Some("u1"))).await.unwrap();
    s.create_grant(&grant("g2", "c1", Some("u1"))).await.unwrap();
    s.create_grant(&Grant { expires_at: now() - 1, ..grant("g3", "c1", Some("u1")) }).await.unwrap();
    assert_eq!(s.list_user_grants("u1", now()).await.unwrap().len(), 2, "expired grants are not listed");
    s.create_refresh_token("rg1", &refresh("g1", "c1")).await.unwrap();
    assert!(s.revoke_grant("g1").await.unwrap());
    assert!(s.get_grant("g1").await.unwrap().unwrap().revoked);
    assert_eq!(s.get_refresh_token("rg1").await.unwrap().unwrap().state, RefreshState::Revoked);
    assert_eq!(s.list_user_grants("u1", now()).await.unwrap().len(), 1);
    assert!(!s.revoke_grant("nope").await.unwrap());
}

async fn token_ids_consents_keys_sessions_interactions(s: &Storage) {
    assert!(!s.is_token_id_revoked("j1").await.unwrap());
    s.revoke_token_id("j1", now() + 60).await.unwrap();
    s.revoke_token_id("j1", now() + 60).await.unwrap();
    assert!(s.is_token_id_revoked("j1").await.unwrap());

    s.put_consent(&Consent {
        user_id: "u1".into(),
        client_id: "c1".into(),
        scopes: vec!["openid".into(), "email".into()],
        granted_at: now(),
    })
    .await
    .unwrap();
    s.put_consent(&Consent {
        user_id: "u1".into(),
        client_id: "c1".into(),
        scopes: vec!["openid".into()],
        granted_at: now(),
    })
    .await
    .unwrap();
    assert_eq!(s.get_consent("u1", "c1").await.unwrap().unwrap().scopes, vec!["openid".to_string()]);
    s.delete_consent("u1", "c1").await.unwrap();
    assert!(s.get_consent("u1", "c1").await.unwrap().is_none());

    let key = SigningKeyRecord {
        kid: "k1".into(),
        algorithm: "ES256".into(),
        sealed_private_key: vec![0, 1, 2, 255],
        public_jwk: "{}".into(),
        created_at: now(),
        retire_at: None,
    };
    s.put_key(&key).await.unwrap();
    s.put_key(&SigningKeyRecord { retire_at: Some(now() + 5), ..key.clone() }).await.unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].sealed_private_key, vec![0, 1, 2, 255]);
    assert!(keys[0].retire_at.is_some());

    s.create_session("s1", &Session { user_id: "u1".into(), auth_time: now(), expires_at: now() + 60 }).await.unwrap();
    assert_eq!(s.get_session("s1").await.unwrap().unwrap().user_id, "u1");
    s.delete_session("s1").await.unwrap();
    assert!(s.get_session("s1").await.unwrap().is_none());

    let interaction = Interaction { csrf: "x".into(), ..Default::default() };
    s.put_interaction("i1", now() + 60, &interaction).await.unwrap();
    assert_eq!(s.get_interaction("i1").await.unwrap().unwrap().1.csrf, "x");
    s.delete_interaction("i1").await.unwrap();
    assert!(s.get_interaction("i1").await.unwrap().is_none());

    s.put_interaction("old", now() - 10, &interaction).await.unwrap();
    s.revoke_token_id("j-old", now() - 10).await.unwrap();
    assert!(s.purge_expired(now()).await.unwrap() >= 2);
    assert!(s.get_interaction("old").await.unwrap().is_none());
    assert!(!s.is_token_id_revoked("j-old").await.unwrap());
}

async fn deleting_a_client_deletes_what_it_was_issued(s: &Storage) {
    s.create_client(&client("c1")).await.unwrap();
    s.create_grant(&grant("g1", "c1", Some("u1"))).await.unwrap();
    s.create_refresh_token("r1", &refresh("g1", "c1")).await.unwrap();
    assert!(s.delete_client("c1").await.unwrap());
    let grant = s.get_grant("g1").await.unwrap();
    assert!(grant.is_none_or(|g| g.revoked));
    let rotation = s.rotate_refresh_token("r1", "r2", &refresh("g1", "c1")).await.unwrap();
    assert!(!matches!(rotation, Some(Rotation::Rotated(_))));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(&super::sqlite().await.storage).await } )*
        }
        mod postgres_backend {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(&super::postgres().await.storage).await } )*
        }
    };
}

conformance!(
    clients_round_trip,
    users_round_trip,
    codes_redeem_once,
    refresh_rotation_has_one_winner,
    grants_revoke_and_list,
    token_ids_consents_keys_sessions_interactions,
    deleting_a_client_deletes_what_it_was_issued,
);
