//! The encryption key that seals the signing keys (and `client_secret_jwt` secrets) at rest:
//! where it comes from (`keys.encryption_key`, else `data_dir/encryption.key`), and whether it
//! is the key the stored signing keys were sealed with, told by its fingerprint
//! (`crypto::Sealer::fingerprint`, kept on each key's record). A key file is made only for a
//! database that holds no sealed key; a missing or another key fails the start, naming the
//! fingerprint the stored keys were sealed with, and writes nothing.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::crypto::{SealError, Sealer};
use crate::model::SigningKeyRecord;
use crate::storage::{Storage, StorageError};

/// The key file's name in the data directory, used when `keys.encryption_key` is unset.
pub const KEY_FILE: &str = "encryption.key";

/// What a record written before fingerprints were kept is said to be sealed with.
const UNKNOWN: &str = "unknown (sealed before fingerprints were kept)";

#[derive(Debug, thiserror::Error)]
pub enum EncryptionKeyError {
    #[error("cannot read the encryption key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the encryption key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the encryption key from {from} is unusable: {source}")]
    Unusable { from: Source, source: SealError },
    #[error(
        "the encryption key file {path} is missing, but the database holds {count} signing key(s) sealed with \
         the encryption key of fingerprint {sealed_with}: restore that file, or set keys.encryption_key to that key \
         (no new key file was written)"
    )]
    Missing { path: PathBuf, count: usize, sealed_with: String },
    #[error(
        "the encryption key from {from} (fingerprint {given}) is not the one the database's signing keys were \
         sealed with (fingerprint {sealed_with}): configure that key"
    )]
    Wrong { from: Source, given: String, sealed_with: String },
    #[error("no encryption key: set keys.encryption_key, or put the key in {path}")]
    None { path: PathBuf },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where the encryption key was read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `keys.encryption_key`.
    Configuration,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Configuration => f.write_str("keys.encryption_key"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The key file's path for this configuration.
pub fn key_file(config: &Config) -> PathBuf {
    config.server.data_dir.join(KEY_FILE)
}

/// The configured key, or the key file's, when there is one; nothing is written.
pub fn configured(config: &Config) -> Result<Option<(Sealer, Source)>, EncryptionKeyError> {
    if let Some(key) = &config.keys.encryption_key {
        let sealer = Sealer::from_base64(key)
            .map_err(|source| EncryptionKeyError::Unusable { from: Source::Configuration, source })?;
        return Ok(Some((sealer, Source::Configuration)));
    }
    let path = key_file(config);
    match std::fs::read_to_string(&path) {
        Ok(key) => {
            let from = Source::File(path);
            let sealer = Sealer::from_base64(&key)
                .map_err(|source| EncryptionKeyError::Unusable { from: from.clone(), source })?;
            Ok(Some((sealer, from)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EncryptionKeyError::Read { path, source }),
    }
}

/// The key the server starts with: the configured one or the key file's, checked against the
/// stored signing keys; a new key file only when there is neither and no key is stored.
pub async fn at_start(config: &Config, storage: &Storage) -> Result<Sealer, EncryptionKeyError> {
    let records = storage.list_keys().await?;
    match configured(config)? {
        Some((sealer, from)) => {
            check(&sealer, &from, &records)?;
            Ok(sealer)
        }
        None if records.is_empty() => generate(&key_file(config)),
        None => Err(EncryptionKeyError::Missing {
            path: key_file(config),
            count: records.len(),
            sealed_with: sealed_with(&records[0]).to_owned(),
        }),
    }
}

/// The key an operation on an existing database works with (export): configured, and the one
/// its signing keys were sealed with.
pub async fn existing(config: &Config, storage: &Storage) -> Result<Sealer, EncryptionKeyError> {
    let Some((sealer, from)) = configured(config)? else {
        return Err(EncryptionKeyError::None { path: key_file(config) });
    };
    check(&sealer, &from, &storage.list_keys().await?)?;
    Ok(sealer)
}

/// Whether every stored key was sealed with `sealer`'s key: by the fingerprint on its record,
/// or, on a record written before fingerprints were kept, by opening it.
fn check(sealer: &Sealer, from: &Source, records: &[SigningKeyRecord]) -> Result<(), EncryptionKeyError> {
    for r in records {
        let ours = match &r.sealed_with {
            Some(f) => f == sealer.fingerprint(),
            None => sealer.open(&r.sealed_private_key, r.kid.as_bytes()).is_ok(),
        };
        if !ours {
            return Err(EncryptionKeyError::Wrong {
                from: from.clone(),
                given: sealer.fingerprint().to_owned(),
                sealed_with: sealed_with(r).to_owned(),
            });
        }
    }
    Ok(())
}

fn sealed_with(r: &SigningKeyRecord) -> &str {
    r.sealed_with.as_deref().unwrap_or(UNKNOWN)
}

fn generate(path: &Path) -> Result<Sealer, EncryptionKeyError> {
    let key = Sealer::generate_key();
    write_new_private(path, key.as_bytes())
        .map_err(|source| EncryptionKeyError::Write { path: path.into(), source })?;
    tracing::warn!(path = %path.display(), "generated a key-encryption key; back it up, and set keys.encryption_key to share one across replicas");
    Sealer::from_base64(&key).map_err(|source| EncryptionKeyError::Unusable { from: Source::File(path.into()), source })
}

/// Writes a new file readable by its owner only (0600 on unix); an existing one is an error.
pub(crate) fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kid: &str, sealer: &Sealer, sealed_with: Option<&str>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            algorithm: "ES256".into(),
            sealed_private_key: sealer.seal(b"private key", kid.as_bytes()),
            public_jwk: String::new(),
            created_at: 0,
            signs_from: None,
            serial: 0,
            longest_token_lifetime: 0,
            retire_at: None,
            sealed_with: sealed_with.map(str::to_owned),
        }
    }

    #[test]
    fn keys_are_told_apart_by_fingerprint_or_else_by_opening_them() {
        let ours = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let other = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let from = Source::Configuration;
        let fingerprinted = record("a", &ours, Some(ours.fingerprint()));
        let legacy = record("b", &ours, None);
        assert!(check(&ours, &from, &[fingerprinted.clone(), legacy.clone()]).is_ok());
        match check(&other, &from, std::slice::from_ref(&fingerprinted)) {
            Err(EncryptionKeyError::Wrong { given, sealed_with, .. }) => {
                assert_eq!(given, other.fingerprint());
                assert_eq!(sealed_with, ours.fingerprint());
            }
            e => panic!("{e:?}"),
        }
        match check(&other, &from, &[legacy]) {
            Err(EncryptionKeyError::Wrong { sealed_with, .. }) => assert_eq!(sealed_with, UNKNOWN),
            e => panic!("{e:?}"),
        }
    }
}
