//! Numbered schema migrations, recorded in `portcullis_migrations`.
//!
//! Each migration runs in its own transaction that first inserts its version row. Two
//! replicas migrating one PostgreSQL at once: the second blocks on that row's key until
//! the first commits, then gets a duplicate key, rolls back and skips the migration
//! (or applies it, if the first rolled back). On SQLite the write lock serializes them.
//!
//! Statements are plain SQL for both dialects, except where one names each dialect's own.
//! A released migration is never edited: a schema change is a new migration.

use portcullis_sdk::storage::db::{self, Dialect, Value};

use crate::{E, R, execute, insert, query, transaction};

/// One statement of a migration.
enum Sql {
    /// The same text for SQLite and PostgreSQL.
    Both(&'static str),
    /// Each dialect's own text.
    Each { sqlite: &'static str, postgres: &'static str },
}

use Sql::{Both, Each};

/// `(version, statements)`, in order.
///
/// Version 1 (one table per record type, contract 0.1.0) is gone with that contract: a
/// database that has it keeps its old tables, unread, beside the generic ones.
const MIGRATIONS: &[(i64, &[Sql])] = &[
    (
        2,
        &[
            Both(
                "CREATE TABLE IF NOT EXISTS records (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            body TEXT NOT NULL,
            expires_at BIGINT,
            revision BIGINT NOT NULL,
            consumed BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, id)
        )",
            ),
            Both("CREATE INDEX IF NOT EXISTS records_expires_at ON records (expires_at)"),
            // Secondary keys: looked up by (kind, name, value), removed by (kind, id).
            Both(
                "CREATE TABLE IF NOT EXISTS record_keys (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            id TEXT NOT NULL,
            PRIMARY KEY (kind, name, value, id)
        )",
            ),
            Both("CREATE INDEX IF NOT EXISTS record_keys_record ON record_keys (kind, id)"),
        ],
    ),
    (
        3,
        &[
            // Each record lists its own keys (`crate::key_list`), so that they are removed by
            // their primary key and `record_keys` needs no second index: a record with keys
            // costs one B-tree fewer to write. The list holds for the revision in
            // `keys_revision`; a plugin older than this migration, still running on another
            // replica, writes rows whose list is NULL or whose revision moved on without it,
            // and their keys are then removed by (kind, id) as before.
            Both("ALTER TABLE records ADD COLUMN key_list TEXT"),
            Both("ALTER TABLE records ADD COLUMN keys_revision BIGINT"),
            Each {
                sqlite: "UPDATE records SET keys_revision = revision, key_list = COALESCE((SELECT group_concat(\
                    CAST(length(k.name) AS TEXT) || ':' || k.name || \
                    CAST(length(k.value) AS TEXT) || ':' || k.value, '') \
                    FROM record_keys k WHERE k.kind = records.kind AND k.id = records.id), '')",
                postgres: "UPDATE records SET keys_revision = revision, key_list = COALESCE((SELECT string_agg(\
                    CAST(length(k.name) AS TEXT) || ':' || k.name || \
                    CAST(length(k.value) AS TEXT) || ':' || k.value, '') \
                    FROM record_keys k WHERE k.kind = records.kind AND k.id = records.id), '')",
            },
            Both("DROP INDEX IF EXISTS record_keys_record"),
        ],
    ),
];

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
    let mut record = String::from("INSERT INTO portcullis_migrations (version, applied_at) VALUES (?, ");
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
                let sql = match (statement, dialect) {
                    (Both(sql), _) | (Each { sqlite: sql, .. }, Dialect::Sqlite) => sql,
                    (Each { postgres: sql, .. }, Dialect::Postgres) => sql,
                };
                execute(sql, &[])?;
            }
            Ok(())
        });
        match result {
            Ok(()) => portcullis_sdk::log::info(&["applied schema migration ", &version.to_string()].concat()),
            // Another replica applied it meanwhile.
            Err(E::Duplicate) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
