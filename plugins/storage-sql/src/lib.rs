//! SQL storage for SQLite and PostgreSQL, through the `database` capability the host lends.
//!
//! One code path serves both dialects: `?` placeholders (the host renumbers them for
//! PostgreSQL), BIGINT integers, booleans as BIGINT 0/1, `CAST(? AS BIGINT)` wherever a
//! NULL may go to an integer column, and `INSERT ... ON CONFLICT ... DO UPDATE` upserts.
//! Only the schema (DDL) looks at the dialect, for the binary column type.
//!
//! Concurrency: several server replicas may share one PostgreSQL. Code redemption and
//! refresh-token rotation are conditional UPDATEs whose row count says who won, so
//! exactly one caller sees `fresh` / `rotated`. Migrations insert their version row
//! first, inside the migration's transaction: a replica racing another one blocks on
//! that key and, once the other commits, gets a duplicate key and skips the migration.

mod schema;

use portcullis_sdk::storage::db::{self, DbError, Rows, Value};
use portcullis_sdk::storage::{
    ClientRecord, CodeRecord, ConsentRecord, GrantRecord, Guest, InteractionRecord, KeyRecord,
    Redemption, RefreshRecord, RefreshState, Rotation, SessionRecord, StorageError, UserRecord,
};

struct SqlStorage;

/// What can go wrong inside the plugin, before it becomes a `storage-error`.
enum E {
    NotFound,
    Duplicate,
    Db(DbError),
    /// A row had a shape the schema does not produce.
    Decode(String),
}

type R<T> = Result<T, E>;

impl From<E> for StorageError {
    fn from(e: E) -> Self {
        match e {
            E::NotFound => StorageError::NotFound,
            E::Duplicate => StorageError::Duplicate,
            E::Db(e) => StorageError::Backend(db_error_text(&e)),
            E::Decode(s) => StorageError::Backend(s),
        }
    }
}

fn db_error_text(e: &DbError) -> String {
    let (kind, text) = match e {
        DbError::Constraint(t) => ("constraint violated", t),
        DbError::Statement(t) => ("bad statement", t),
        DbError::Conflict(t) => ("transaction conflict", t),
        DbError::Unavailable(t) => ("database unavailable", t),
    };
    let mut s = String::with_capacity(kind.len() + 2 + text.len());
    s.push_str(kind);
    s.push_str(": ");
    s.push_str(text);
    s
}

fn out<T>(r: R<T>) -> Result<T, StorageError> {
    r.map_err(StorageError::from)
}

// ---------------------------------------------------------------------------------------
// Database access

fn query(sql: &str, params: &[Value]) -> R<Rows> {
    db::query(sql, params).map_err(E::Db)
}

fn execute(sql: &str, params: &[Value]) -> R<u64> {
    db::execute(sql, params).map_err(E::Db)
}

/// An INSERT: a constraint violation means the key exists.
fn insert(sql: &str, params: &[Value]) -> R<()> {
    match db::execute(sql, params) {
        Ok(_) => Ok(()),
        Err(DbError::Constraint(_)) => Err(E::Duplicate),
        Err(e) => Err(E::Db(e)),
    }
}

/// An UPDATE or DELETE of one record: no row changed means there is no such record.
fn change_one(sql: &str, params: &[Value]) -> R<()> {
    match execute(sql, params)? {
        0 => Err(E::NotFound),
        _ => Ok(()),
    }
}

/// Runs `f` inside a transaction: committed when it returns `Ok`, rolled back otherwise.
/// A serialization conflict is retried a few times.
fn transaction<T>(mut f: impl FnMut() -> R<T>) -> R<T> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        db::begin().map_err(E::Db)?;
        let result = f().and_then(|v| db::commit().map(|()| v).map_err(E::Db));
        match result {
            Ok(v) => return Ok(v),
            Err(e) => {
                let _ = db::rollback();
                match e {
                    E::Db(DbError::Conflict(_)) if attempts < 3 => continue,
                    e => return Err(e),
                }
            }
        }
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt_text(s: &Option<String>) -> Value {
    match s {
        Some(s) => Value::Text(s.clone()),
        None => Value::Null,
    }
}

fn int(i: i64) -> Value {
    Value::Integer(i)
}

/// An optional integer for a `CAST(? AS BIGINT)` placeholder. The host binds NULL as
/// text, so the number goes as text too: one statement then always binds the same type
/// (PostgreSQL fixes a prepared statement's parameter types on first use).
fn opt_int(i: Option<i64>) -> Value {
    i.map_or(Value::Null, |i| Value::Text(i.to_string()))
}

/// The first row, or `not-found`.
fn one(rows: Rows) -> R<Vec<Value>> {
    rows.rows.into_iter().next().ok_or(E::NotFound)
}

/// Reads typed columns out of a row, by position.
struct Row(std::vec::IntoIter<Value>);

impl Row {
    fn new(row: Vec<Value>) -> Self {
        Row(row.into_iter())
    }

    fn next(&mut self) -> R<Value> {
        self.0
            .next()
            .ok_or_else(|| E::Decode("a row has fewer columns than selected".into()))
    }

    fn string(&mut self) -> R<String> {
        match self.next()? {
            Value::Text(s) => Ok(s),
            Value::Blob(b) => {
                String::from_utf8(b).map_err(|_| E::Decode("a text column holds bytes".into()))
            }
            Value::Null => Err(E::Decode("a required text column is NULL".into())),
            Value::Integer(i) => Ok(i.to_string()),
            Value::Real(_) => Err(E::Decode("a text column holds a number".into())),
        }
    }

    fn opt_string(&mut self) -> R<Option<String>> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            Value::Blob(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| E::Decode("a text column holds bytes".into())),
            _ => Err(E::Decode("a text column holds a number".into())),
        }
    }

    fn int(&mut self) -> R<i64> {
        self.opt_int()?
            .ok_or_else(|| E::Decode("a required integer column is NULL".into()))
    }

    fn opt_int(&mut self) -> R<Option<i64>> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Integer(i) => Ok(Some(i)),
            Value::Real(f) => Ok(Some(f as i64)),
            Value::Text(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| E::Decode("an integer column holds text".into())),
            Value::Blob(_) => Err(E::Decode("an integer column holds bytes".into())),
        }
    }

    fn bool(&mut self) -> R<bool> {
        Ok(self.int()? != 0)
    }

    fn bytes(&mut self) -> R<Vec<u8>> {
        match self.next()? {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            Value::Null => Ok(Vec::new()),
            _ => Err(E::Decode("a binary column holds a number".into())),
        }
    }
}

fn all<T>(rows: Rows, decode: fn(Vec<Value>) -> R<T>) -> R<Vec<T>> {
    rows.rows.into_iter().map(decode).collect()
}

// ---------------------------------------------------------------------------------------
// Records

const CLIENT_COLUMNS: &str = "id, secret_hash, organization_id, created_at, document";

fn client(row: Vec<Value>) -> R<ClientRecord> {
    let mut r = Row::new(row);
    Ok(ClientRecord {
        id: r.string()?,
        secret_hash: r.opt_string()?,
        organization_id: r.opt_string()?,
        created_at: r.int()?,
        document: r.string()?,
    })
}

const USER_COLUMNS: &str = "id, username, password_hash, created_at, document";

fn user(row: Vec<Value>) -> R<UserRecord> {
    let mut r = Row::new(row);
    Ok(UserRecord {
        id: r.string()?,
        username: r.string()?,
        password_hash: r.string()?,
        created_at: r.int()?,
        document: r.string()?,
    })
}

const GRANT_COLUMNS: &str = "id, client_id, user_id, created_at, expires_at, revoked, document";

fn grant(row: Vec<Value>) -> R<GrantRecord> {
    let mut r = Row::new(row);
    Ok(GrantRecord {
        id: r.string()?,
        client_id: r.string()?,
        user_id: r.opt_string()?,
        created_at: r.int()?,
        expires_at: r.int()?,
        revoked: r.bool()?,
        document: r.string()?,
    })
}

const CODE_COLUMNS: &str = "code_hash, grant_id, expires_at, document";

fn code(row: Vec<Value>) -> R<CodeRecord> {
    let mut r = Row::new(row);
    Ok(CodeRecord {
        code_hash: r.string()?,
        grant_id: r.string()?,
        expires_at: r.int()?,
        document: r.string()?,
    })
}

const REFRESH_COLUMNS: &str = "token_hash, grant_id, created_at, expires_at, state, document";

fn refresh(row: Vec<Value>) -> R<RefreshRecord> {
    let mut r = Row::new(row);
    Ok(RefreshRecord {
        token_hash: r.string()?,
        grant_id: r.string()?,
        created_at: r.int()?,
        expires_at: r.int()?,
        state: match r.string()?.as_str() {
            "active" => RefreshState::Active,
            "rotated" => RefreshState::Rotated,
            _ => RefreshState::Revoked,
        },
        document: r.string()?,
    })
}

fn consent(row: Vec<Value>) -> R<ConsentRecord> {
    let mut r = Row::new(row);
    Ok(ConsentRecord {
        user_id: r.string()?,
        client_id: r.string()?,
        scopes: r
            .string()?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        granted_at: r.int()?,
    })
}

fn key(row: Vec<Value>) -> R<KeyRecord> {
    let mut r = Row::new(row);
    Ok(KeyRecord {
        kid: r.string()?,
        algorithm: r.string()?,
        sealed_private_key: r.bytes()?,
        public_jwk: r.string()?,
        created_at: r.int()?,
        retire_at: r.opt_int()?,
    })
}

const SESSION_COLUMNS: &str = "id_hash, user_id, auth_time, expires_at, document";

fn session(row: Vec<Value>) -> R<SessionRecord> {
    let mut r = Row::new(row);
    Ok(SessionRecord {
        id_hash: r.string()?,
        user_id: r.string()?,
        auth_time: r.int()?,
        expires_at: r.int()?,
        document: r.string()?,
    })
}

fn interaction(row: Vec<Value>) -> R<InteractionRecord> {
    let mut r = Row::new(row);
    Ok(InteractionRecord {
        id: r.string()?,
        expires_at: r.int()?,
        document: r.string()?,
    })
}

/// `SELECT {columns} FROM {table} WHERE {rest}`, built without formatting machinery.
fn select(columns: &str, table: &str, rest: &str) -> String {
    let mut s = String::with_capacity(20 + columns.len() + table.len() + rest.len());
    s.push_str("SELECT ");
    s.push_str(columns);
    s.push_str(" FROM ");
    s.push_str(table);
    s.push(' ');
    s.push_str(rest);
    s
}

// ---------------------------------------------------------------------------------------
// The storage interface

impl Guest for SqlStorage {
    fn migrate() -> Result<(), StorageError> {
        out(schema::migrate())
    }

    // --- clients

    fn create_client(c: ClientRecord) -> Result<(), StorageError> {
        out(insert(
            "INSERT INTO clients (id, secret_hash, organization_id, created_at, document) VALUES (?, ?, ?, ?, ?)",
            &[
                text(&c.id),
                opt_text(&c.secret_hash),
                opt_text(&c.organization_id),
                int(c.created_at),
                text(&c.document),
            ],
        ))
    }

    fn get_client(id: String) -> Result<ClientRecord, StorageError> {
        out(query(
            &select(CLIENT_COLUMNS, "clients", "WHERE id = ?"),
            &[text(&id)],
        )
        .and_then(one)
        .and_then(client))
    }

    fn update_client(c: ClientRecord) -> Result<(), StorageError> {
        out(change_one(
            "UPDATE clients SET secret_hash = ?, organization_id = ?, created_at = ?, document = ? WHERE id = ?",
            &[
                opt_text(&c.secret_hash),
                opt_text(&c.organization_id),
                int(c.created_at),
                text(&c.document),
                text(&c.id),
            ],
        ))
    }

    fn list_clients() -> Result<Vec<ClientRecord>, StorageError> {
        out(
            query(&select(CLIENT_COLUMNS, "clients", "ORDER BY id"), &[])
                .and_then(|r| all(r, client)),
        )
    }

    fn delete_client(id: String) -> Result<(), StorageError> {
        out(transaction(|| {
            let p = [text(&id)];
            change_one("DELETE FROM clients WHERE id = ?", &p)?;
            execute("DELETE FROM consents WHERE client_id = ?", &p)?;
            execute(
                "DELETE FROM codes WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)",
                &p,
            )?;
            execute(
                "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)",
                &p,
            )?;
            execute("DELETE FROM grants WHERE client_id = ?", &p)?;
            Ok(())
        }))
    }

    // --- users

    fn create_user(u: UserRecord) -> Result<(), StorageError> {
        out(insert(
            "INSERT INTO users (id, username, password_hash, created_at, document) VALUES (?, ?, ?, ?, ?)",
            &[
                text(&u.id),
                text(&u.username),
                text(&u.password_hash),
                int(u.created_at),
                text(&u.document),
            ],
        ))
    }

    fn get_user(id: String) -> Result<UserRecord, StorageError> {
        out(
            query(&select(USER_COLUMNS, "users", "WHERE id = ?"), &[text(&id)])
                .and_then(one)
                .and_then(user),
        )
    }

    fn find_user(username: String) -> Result<UserRecord, StorageError> {
        out(query(
            &select(USER_COLUMNS, "users", "WHERE username = ?"),
            &[text(&username)],
        )
        .and_then(one)
        .and_then(user))
    }

    fn list_users() -> Result<Vec<UserRecord>, StorageError> {
        out(
            query(&select(USER_COLUMNS, "users", "ORDER BY username"), &[])
                .and_then(|r| all(r, user)),
        )
    }

    // --- grants

    fn create_grant(g: GrantRecord) -> Result<(), StorageError> {
        out(insert(
            "INSERT INTO grants (id, client_id, user_id, created_at, expires_at, revoked, document) VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[
                text(&g.id),
                text(&g.client_id),
                opt_text(&g.user_id),
                int(g.created_at),
                int(g.expires_at),
                int(g.revoked as i64),
                text(&g.document),
            ],
        ))
    }

    fn get_grant(id: String) -> Result<GrantRecord, StorageError> {
        out(query(
            &select(GRANT_COLUMNS, "grants", "WHERE id = ?"),
            &[text(&id)],
        )
        .and_then(one)
        .and_then(grant))
    }

    fn list_user_grants(user_id: String, now: i64) -> Result<Vec<GrantRecord>, StorageError> {
        out(query(
            &select(
                GRANT_COLUMNS,
                "grants",
                "WHERE user_id = ? AND revoked = 0 AND expires_at > ? ORDER BY created_at, id",
            ),
            &[text(&user_id), int(now)],
        )
        .and_then(|r| all(r, grant)))
    }

    fn revoke_grant(id: String) -> Result<(), StorageError> {
        out(transaction(|| {
            let p = [text(&id)];
            change_one("UPDATE grants SET revoked = 1 WHERE id = ?", &p)?;
            execute(
                "UPDATE refresh_tokens SET state = 'revoked' WHERE grant_id = ? AND state <> 'revoked'",
                &p,
            )?;
            // A code not redeemed yet can no longer be: redeeming it now reports a replay.
            execute(
                "UPDATE codes SET redeemed = 1 WHERE grant_id = ? AND redeemed = 0",
                &p,
            )?;
            Ok(())
        }))
    }

    // --- authorization codes

    fn create_code(c: CodeRecord) -> Result<(), StorageError> {
        out(insert(
            "INSERT INTO codes (code_hash, grant_id, expires_at, redeemed, document) VALUES (?, ?, ?, 0, ?)",
            &[
                text(&c.code_hash),
                text(&c.grant_id),
                int(c.expires_at),
                text(&c.document),
            ],
        ))
    }

    fn redeem_code(code_hash: String) -> Result<Redemption, StorageError> {
        out(transaction(|| {
            let p = [text(&code_hash)];
            // Only one caller can flip `redeemed` from 0 to 1: a concurrent one waits for
            // the row lock and then finds nothing to change.
            let won = execute(
                "UPDATE codes SET redeemed = 1 WHERE code_hash = ? AND redeemed = 0",
                &p,
            )? == 1;
            let record = query(&select(CODE_COLUMNS, "codes", "WHERE code_hash = ?"), &p)
                .and_then(one)
                .and_then(code)?;
            Ok(if won {
                Redemption::Fresh(record)
            } else {
                Redemption::Replayed(record)
            })
        }))
    }

    // --- refresh tokens

    fn create_refresh_token(t: RefreshRecord) -> Result<(), StorageError> {
        out(insert_refresh(&t))
    }

    /// The token in any state: the host tells reuse of a rotated token from a forgery.
    fn get_refresh_token(token_hash: String) -> Result<RefreshRecord, StorageError> {
        out(query(
            &select(REFRESH_COLUMNS, "refresh_tokens", "WHERE token_hash = ?"),
            &[text(&token_hash)],
        )
        .and_then(one)
        .and_then(refresh))
    }

    fn rotate_refresh_token(
        token_hash: String,
        successor: RefreshRecord,
    ) -> Result<Rotation, StorageError> {
        out(transaction(|| {
            let p = [text(&token_hash)];
            let won = execute(
                "UPDATE refresh_tokens SET state = 'rotated' WHERE token_hash = ? AND state = 'active'",
                &p,
            )? == 1;
            let old = query(
                &select(REFRESH_COLUMNS, "refresh_tokens", "WHERE token_hash = ?"),
                &p,
            )
            .and_then(one)
            .and_then(refresh)?;
            if won {
                insert_refresh(&successor)?;
                Ok(Rotation::Rotated(old))
            } else {
                Ok(Rotation::Reused(old))
            }
        }))
    }

    // --- revoked access tokens

    fn revoke_token_id(jti: String, expires_at: i64) -> Result<(), StorageError> {
        out(execute(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at",
            &[text(&jti), int(expires_at)],
        )
        .map(drop))
    }

    fn is_token_id_revoked(jti: String) -> Result<bool, StorageError> {
        out(
            query("SELECT 1 FROM revoked_tokens WHERE jti = ?", &[text(&jti)])
                .map(|r| !r.rows.is_empty()),
        )
    }

    // --- consents

    fn put_consent(c: ConsentRecord) -> Result<(), StorageError> {
        let mut scopes = String::new();
        for (i, s) in c.scopes.iter().enumerate() {
            if i > 0 {
                scopes.push(' ');
            }
            scopes.push_str(s);
        }
        out(execute(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
            &[text(&c.user_id), text(&c.client_id), Value::Text(scopes), int(c.granted_at)],
        )
        .map(drop))
    }

    fn get_consent(user_id: String, client_id: String) -> Result<ConsentRecord, StorageError> {
        out(query(
            "SELECT user_id, client_id, scopes, granted_at FROM consents WHERE user_id = ? AND client_id = ?",
            &[text(&user_id), text(&client_id)],
        )
        .and_then(one)
        .and_then(consent))
    }

    fn delete_consent(user_id: String, client_id: String) -> Result<(), StorageError> {
        out(change_one(
            "DELETE FROM consents WHERE user_id = ? AND client_id = ?",
            &[text(&user_id), text(&client_id)],
        ))
    }

    // --- signing keys

    fn put_key(k: KeyRecord) -> Result<(), StorageError> {
        out(execute(
            "INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_jwk, created_at, retire_at) \
             VALUES (?, ?, ?, ?, ?, CAST(? AS BIGINT)) \
             ON CONFLICT (kid) DO UPDATE SET algorithm = excluded.algorithm, \
             sealed_private_key = excluded.sealed_private_key, public_jwk = excluded.public_jwk, \
             created_at = excluded.created_at, retire_at = excluded.retire_at",
            &[
                text(&k.kid),
                text(&k.algorithm),
                Value::Blob(k.sealed_private_key),
                text(&k.public_jwk),
                int(k.created_at),
                opt_int(k.retire_at),
            ],
        )
        .map(drop))
    }

    fn list_keys() -> Result<Vec<KeyRecord>, StorageError> {
        out(query(
            "SELECT kid, algorithm, sealed_private_key, public_jwk, created_at, retire_at FROM signing_keys ORDER BY created_at, kid",
            &[],
        )
        .and_then(|r| all(r, key)))
    }

    // --- sessions

    fn create_session(s: SessionRecord) -> Result<(), StorageError> {
        out(insert(
            "INSERT INTO sessions (id_hash, user_id, auth_time, expires_at, document) VALUES (?, ?, ?, ?, ?)",
            &[
                text(&s.id_hash),
                text(&s.user_id),
                int(s.auth_time),
                int(s.expires_at),
                text(&s.document),
            ],
        ))
    }

    fn get_session(id_hash: String) -> Result<SessionRecord, StorageError> {
        out(query(
            &select(SESSION_COLUMNS, "sessions", "WHERE id_hash = ?"),
            &[text(&id_hash)],
        )
        .and_then(one)
        .and_then(session))
    }

    fn delete_session(id_hash: String) -> Result<(), StorageError> {
        out(change_one(
            "DELETE FROM sessions WHERE id_hash = ?",
            &[text(&id_hash)],
        ))
    }

    // --- interactions

    fn put_interaction(i: InteractionRecord) -> Result<(), StorageError> {
        out(execute(
            "INSERT INTO interactions (id, expires_at, document) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, document = excluded.document",
            &[text(&i.id), int(i.expires_at), text(&i.document)],
        )
        .map(drop))
    }

    fn get_interaction(id: String) -> Result<InteractionRecord, StorageError> {
        out(query(
            "SELECT id, expires_at, document FROM interactions WHERE id = ?",
            &[text(&id)],
        )
        .and_then(one)
        .and_then(interaction))
    }

    fn delete_interaction(id: String) -> Result<(), StorageError> {
        out(change_one(
            "DELETE FROM interactions WHERE id = ?",
            &[text(&id)],
        ))
    }

    // --- housekeeping

    fn purge_expired(now: i64) -> Result<u64, StorageError> {
        let n = [int(now)];
        let nn = [int(now), int(now)];
        out((|| {
            let mut count = 0;
            count += execute(
                "DELETE FROM codes WHERE expires_at < ? OR grant_id IN (SELECT id FROM grants WHERE expires_at < ?)",
                &nn,
            )?;
            count += execute(
                "DELETE FROM refresh_tokens WHERE expires_at < ? OR grant_id IN (SELECT id FROM grants WHERE expires_at < ?)",
                &nn,
            )?;
            count += execute("DELETE FROM grants WHERE expires_at < ?", &n)?;
            count += execute("DELETE FROM interactions WHERE expires_at < ?", &n)?;
            count += execute("DELETE FROM sessions WHERE expires_at < ?", &n)?;
            count += execute("DELETE FROM revoked_tokens WHERE expires_at < ?", &n)?;
            Ok(count)
        })())
    }
}

fn insert_refresh(t: &RefreshRecord) -> R<()> {
    insert(
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, state, document) VALUES (?, ?, ?, ?, 'active', ?)",
        &[
            text(&t.token_hash),
            text(&t.grant_id),
            int(t.created_at),
            int(t.expires_at),
            text(&t.document),
        ],
    )
}

portcullis_sdk::export_storage!(SqlStorage);
