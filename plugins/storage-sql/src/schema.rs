//! Numbered schema migrations, recorded in `portcullis_migrations`.
//!
//! Each migration runs in its own transaction that first inserts its version row. Two
//! replicas migrating one PostgreSQL at once: the second blocks on that row's key until
//! the first commits, then gets a duplicate key, rolls back and skips the migration
//! (or applies it, if the first rolled back). On SQLite the write lock serializes them.
//!
//! Statements are plain SQL for both dialects; `{blob}` stands for the binary column type
//! (`BLOB` on SQLite, `BYTEA` on PostgreSQL), the only place the dialect matters.
//! A released migration is never edited: a schema change is a new migration.

use portcullis_sdk::storage::db::{self, Dialect, Value};

use crate::{E, R, execute, insert, query, transaction};

/// `(version, statements)`, in order.
const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE IF NOT EXISTS clients (
            id TEXT PRIMARY KEY,
            secret_hash TEXT,
            organization_id TEXT,
            created_at BIGINT NOT NULL,
            document TEXT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS users (
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            document TEXT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS grants (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            user_id TEXT,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            revoked BIGINT NOT NULL DEFAULT 0,
            document TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS grants_user_id ON grants (user_id)",
        "CREATE INDEX IF NOT EXISTS grants_client_id ON grants (client_id)",
        "CREATE INDEX IF NOT EXISTS grants_expires_at ON grants (expires_at)",
        "CREATE TABLE IF NOT EXISTS codes (
            code_hash TEXT PRIMARY KEY,
            grant_id TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            redeemed BIGINT NOT NULL DEFAULT 0,
            document TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS codes_grant_id ON codes (grant_id)",
        "CREATE INDEX IF NOT EXISTS codes_expires_at ON codes (expires_at)",
        "CREATE TABLE IF NOT EXISTS refresh_tokens (
            token_hash TEXT PRIMARY KEY,
            grant_id TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            state TEXT NOT NULL DEFAULT 'active',
            document TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS refresh_tokens_grant_id ON refresh_tokens (grant_id)",
        "CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at ON refresh_tokens (expires_at)",
        "CREATE TABLE IF NOT EXISTS revoked_tokens (
            jti TEXT PRIMARY KEY,
            expires_at BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at ON revoked_tokens (expires_at)",
        "CREATE TABLE IF NOT EXISTS consents (
            user_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            scopes TEXT NOT NULL,
            granted_at BIGINT NOT NULL,
            PRIMARY KEY (user_id, client_id)
        )",
        "CREATE INDEX IF NOT EXISTS consents_client_id ON consents (client_id)",
        "CREATE TABLE IF NOT EXISTS signing_keys (
            kid TEXT PRIMARY KEY,
            algorithm TEXT NOT NULL,
            sealed_private_key {blob} NOT NULL,
            public_jwk TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            retire_at BIGINT
        )",
        "CREATE TABLE IF NOT EXISTS sessions (
            id_hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            auth_time BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            document TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id)",
        "CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at)",
        "CREATE TABLE IF NOT EXISTS interactions (
            id TEXT PRIMARY KEY,
            expires_at BIGINT NOT NULL,
            document TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS interactions_expires_at ON interactions (expires_at)",
    ],
)];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS portcullis_migrations (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

pub fn migrate() -> R<()> {
    let dialect = db::dialect();
    let blob = match dialect {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "BYTEA",
    };
    // The plugin has no clock: the database stamps the migration.
    let now = match dialect {
        Dialect::Sqlite => "CAST(strftime('%s', 'now') AS BIGINT)",
        Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) AS BIGINT)",
    };
    let mut record =
        String::from("INSERT INTO portcullis_migrations (version, applied_at) VALUES (?, ");
    record.push_str(now);
    record.push(')');

    // Two replicas creating the table at once can make PostgreSQL report a duplicate
    // catalog entry for the loser; by the next try the table exists.
    let mut attempt = 0;
    while let Err(e) = execute(MIGRATIONS_TABLE, &[]) {
        attempt += 1;
        if attempt == 3 {
            return Err(e);
        }
    }

    let applied: Vec<i64> = query("SELECT version FROM portcullis_migrations", &[])?
        .rows
        .into_iter()
        .filter_map(|row| match row.into_iter().next() {
            Some(Value::Integer(v)) => Some(v),
            Some(Value::Text(v)) => v.parse().ok(),
            _ => None,
        })
        .collect();

    for &(version, statements) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        let result = transaction(|| {
            insert(&record, &[Value::Integer(version)])?;
            for statement in statements {
                execute(&statement.replace("{blob}", blob), &[])?;
            }
            Ok(())
        });
        match result {
            Ok(()) => portcullis_sdk::log::info(
                &["applied schema migration ", &version.to_string()].concat(),
            ),
            // Another replica applied it meanwhile.
            Err(E::Duplicate) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
