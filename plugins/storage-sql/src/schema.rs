//! Numbered schema migrations, recorded in `portcullis_migrations`.
//!
//! Each migration runs in its own transaction that first inserts its version row. Two
//! replicas migrating one PostgreSQL at once: the second blocks on that row's key until
//! the first commits, then gets a duplicate key, rolls back and skips the migration
//! (or applies it, if the first rolled back). On SQLite the write lock serializes them.
//!
//! Statements are plain SQL for both dialects.
//! A released migration is never edited: a schema change is a new migration.

use portcullis_sdk::storage::db::{self, Dialect, Value};

use crate::{E, R, execute, insert, query, transaction};

/// `(version, statements)`, in order.
///
/// Version 1 (one table per record type, contract 0.1.0) is gone with that contract: a
/// database that has it keeps its old tables, unread, beside the generic ones.
const MIGRATIONS: &[(i64, &[&str])] = &[(
    2,
    &[
        "CREATE TABLE IF NOT EXISTS records (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            body TEXT NOT NULL,
            expires_at BIGINT,
            revision BIGINT NOT NULL,
            consumed BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, id)
        )",
        "CREATE INDEX IF NOT EXISTS records_expires_at ON records (expires_at)",
        // Secondary keys: looked up by (kind, name, value), removed by (kind, id).
        "CREATE TABLE IF NOT EXISTS record_keys (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            id TEXT NOT NULL,
            PRIMARY KEY (kind, name, value, id)
        )",
        "CREATE INDEX IF NOT EXISTS record_keys_record ON record_keys (kind, id)",
    ],
)];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS portcullis_migrations (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

pub fn migrate() -> R<()> {
    let dialect = db::dialect();
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
                execute(statement, &[])?;
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
