//! Why the server did not start, in one line an operator can act on: the policies directory
//! that was configured and is not there, the database that cannot be reached (its host, never
//! its credentials, and the cause), the address that cannot be listened on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `policies.dir` was set (in a file or the environment) to what is no directory. The
    /// default directory may be absent: the built-in policies are used then.
    #[error("policies.dir `{dir}` (set in {set_in}) is not a directory")]
    PoliciesDir { dir: PathBuf, set_in: String },
    #[error("cannot reach the database at {host}: {cause}")]
    Database { host: String, cause: String },
    #[error("cannot listen on {address}: {cause}")]
    Listen { address: SocketAddr, cause: std::io::Error },
}

impl StartError {
    /// The database at `url` could not be opened. A pool that timed out retrying a refused
    /// connection says nothing of why: one connection is tried alone (within `wait`) for it.
    pub async fn database(url: &str, error: sqlx::Error, wait: Duration) -> Self {
        let cause = match error {
            sqlx::Error::PoolTimedOut if !url.starts_with("sqlite:") => {
                match tokio::time::timeout(wait, <sqlx::PgConnection as sqlx::Connection>::connect(url)).await {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => error.to_string(),
                    Err(_) => format!("no answer within {} ms", wait.as_millis()),
                }
            }
            error => error.to_string(),
        };
        Self::Database { host: database_host(url), cause: one_line(&cause) }
    }
}

/// Where a database URL points, without user or password: `host:port` for PostgreSQL, the
/// file for SQLite.
fn database_host(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        return rest.split('?').next().unwrap_or(rest).to_owned();
    }
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("localhost");
            format!("{host}:{}", parsed.port().unwrap_or(5432))
        }
        Err(_) => "an unreadable database.url".into(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_named_by_its_host_never_its_password() {
        assert_eq!(database_host("postgres://user:secret@db.example.com:5433/portcullis"), "db.example.com:5433");
        assert_eq!(database_host("postgres://db.example.com/portcullis"), "db.example.com:5432");
        assert_eq!(
            database_host("sqlite:///var/lib/portcullis/portcullis.db?mode=rwc"),
            "/var/lib/portcullis/portcullis.db"
        );
    }
}
