//! Export and import (`portcullis export FILE`, `portcullis import FILE`): every record the
//! storage holds, of every kind `storage::KINDS` lists, through the storage plugin, so that a
//! backup made on one database (SQLite) restores onto another (PostgreSQL). Signing keys (and
//! `client_secret_jwt` secrets) stay sealed as stored: the file holds nothing the encryption
//! key does not still protect, and restoring it needs that key.
//!
//! The format, JSON lines (UTF-8, one object a line):
//!
//! 1. a header: `{"format": "portcullis-export", "version": 1, "exported_at": SECONDS,
//!    "encryption_key_fingerprint": HEX, "kinds": [KIND, ...]}`, the fingerprint that of the
//!    key the records are sealed with (`crypto::Sealer::fingerprint`, which reveals nothing of
//!    it);
//! 2. a record a line: `{"kind": KIND, "id": ID, "consumed": BOOL, "body": {...}}`, by kind in
//!    the header's order, then by id; records expired when exported are left out;
//! 3. a trailer: `{"end": true, "records": COUNT}`, so that a cut-off file is refused.
//!
//! Import refuses a file sealed with another encryption key (naming both fingerprints), a file
//! of another format or version, one that does not read whole, and a database that holds any
//! record: it restores into an empty database only, and reads the whole file before it writes.

use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crypto::Sealer;
use crate::limits::{BACKUP_RECORDS_PER_READ, BACKUP_WRITES_PER_GROUP};
use crate::plugin::store::{RecordRef, Write};
use crate::storage::{KINDS, Storage, StorageError};

/// The header's `format`.
pub const FORMAT: &str = "portcullis-export";
/// The header's `version`: the only one read.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} line {line}: {reason}")]
    Malformed { path: PathBuf, line: u64, reason: String },
    #[error("{path} is no Portcullis export, or one of another version (this server reads version {VERSION})")]
    Format { path: PathBuf },
    #[error("{path} ends before its trailer: the file is incomplete")]
    Truncated { path: PathBuf },
    #[error(
        "{path} was exported with the encryption key of fingerprint {file}, but this server's key has fingerprint \
         {ours}: configure the key the export was made with"
    )]
    OtherKey { path: PathBuf, file: String, ours: String },
    #[error(
        "{path} was exported with the encryption key of fingerprint {file}, and no encryption key is configured: set \
         keys.encryption_key, or put that key in {key_file}"
    )]
    NoKey { path: PathBuf, file: String, key_file: PathBuf },
    #[error("the database is not empty (it holds {kind} records): import restores into an empty database only")]
    NotEmpty { kind: &'static str },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    exported_at: i64,
    encryption_key_fingerprint: String,
    kinds: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    kind: String,
    id: String,
    #[serde(default)]
    consumed: bool,
    body: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: bool,
    records: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Record(Line),
    End(Trailer),
}

/// What an export or an import did.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub records: u64,
    pub encryption_key_fingerprint: String,
}

/// Writes every unexpired record at `now` to `path`, atomically: a new file beside it (0600),
/// renamed over it once complete.
pub async fn export(storage: &Storage, sealer: &Sealer, now: i64, path: &Path) -> Result<Summary, BackupError> {
    let io = |source| BackupError::Io { path: path.to_owned(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", crate::crypto::random_token(8)));
    let file = create_private(&temp).map_err(io)?;
    let written = write_records(storage, sealer, now, BufWriter::new(file), path).await;
    let renamed = written.and_then(|records| std::fs::rename(&temp, path).map(|()| records).map_err(io));
    match renamed {
        Ok(records) => Ok(Summary { records, encryption_key_fingerprint: sealer.fingerprint().to_owned() }),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

async fn write_records(
    storage: &Storage,
    sealer: &Sealer,
    now: i64,
    mut out: BufWriter<std::fs::File>,
    path: &Path,
) -> Result<u64, BackupError> {
    let io = |source| BackupError::Io { path: path.to_owned(), source };
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: now,
        encryption_key_fingerprint: sealer.fingerprint().to_owned(),
        kinds: KINDS.iter().map(|k| k.kind.to_owned()).collect(),
    };
    write_line(&mut out, &header).map_err(io)?;
    let mut records = 0;
    for kind in KINDS {
        let mut after: Option<String> = None;
        loop {
            let page = storage.list_stored(kind.kind, after.as_deref(), BACKUP_RECORDS_PER_READ).await?;
            let full = page.len() == BACKUP_RECORDS_PER_READ as usize;
            after = page.last().map(|s| s.id.clone());
            for s in page {
                if s.expires_at.is_some_and(|e| e <= now) {
                    continue;
                }
                let body = serde_json::from_str(&s.body).map_err(StorageError::Document)?;
                write_line(&mut out, &Line { kind: s.kind, id: s.id, consumed: s.consumed, body }).map_err(io)?;
                records += 1;
            }
            if !full {
                break;
            }
        }
    }
    write_line(&mut out, &Trailer { end: true, records }).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(records)
}

fn write_line<T: Serialize>(out: &mut impl std::io::Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Restores an export into an empty database. `sealer` is the configured encryption key (none
/// when there is none): it must be the one the export was made with. Records expired by `now`
/// are left out.
pub async fn import(
    storage: &Storage,
    sealer: Option<&Sealer>,
    key_file: &Path,
    now: i64,
    path: &Path,
) -> Result<Summary, BackupError> {
    let malformed = |line: u64, reason: String| BackupError::Malformed { path: path.to_owned(), line, reason };
    let file = std::fs::File::open(path).map_err(|source| BackupError::Io { path: path.to_owned(), source })?;
    let mut lines = BufReader::new(file).lines();
    let mut n: u64 = 0;
    let mut next = || -> Result<Option<(u64, String)>, BackupError> {
        n += 1;
        match lines.next() {
            None => Ok(None),
            Some(Err(source)) => Err(BackupError::Io { path: path.to_owned(), source }),
            Some(Ok(line)) => Ok(Some((n, line))),
        }
    };
    let format = || BackupError::Format { path: path.to_owned() };
    let (_, first) = next()?.ok_or_else(format)?;
    let header: Header = serde_json::from_str(&first).map_err(|_| format())?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(format());
    }
    let fingerprint = header.encryption_key_fingerprint;
    match sealer {
        None => return Err(BackupError::NoKey { path: path.to_owned(), file: fingerprint, key_file: key_file.into() }),
        Some(s) if s.fingerprint() != fingerprint => {
            return Err(BackupError::OtherKey {
                path: path.to_owned(),
                file: fingerprint,
                ours: s.fingerprint().into(),
            });
        }
        Some(_) => {}
    }

    // The whole file is read and every record checked before anything is written.
    let mut writes: Vec<Write> = Vec::new();
    let mut records: u64 = 0;
    let mut imported: u64 = 0;
    let ended = loop {
        let Some((line, text)) = next()? else { break false };
        match serde_json::from_str::<Entry>(&text).map_err(|e| malformed(line, e.to_string()))? {
            Entry::End(trailer) => {
                if !trailer.end || trailer.records != records {
                    return Err(malformed(
                        line,
                        format!("the trailer counts {} records, the file {records}", trailer.records),
                    ));
                }
                if let Some((after, rest)) = next()?
                    && !rest.trim().is_empty()
                {
                    return Err(malformed(after, "a line after the trailer".into()));
                }
                break true;
            }
            Entry::Record(r) => {
                records += 1;
                let kind = KINDS
                    .iter()
                    .find(|k| k.kind == r.kind)
                    .ok_or_else(|| malformed(line, format!("no kind `{}`", r.kind)))?;
                let record = (kind.record)(&r.body.to_string()).map_err(|e| malformed(line, e.to_string()))?;
                if record.id != r.id {
                    return Err(malformed(line, format!("the record's id is `{}`, not `{}`", record.id, r.id)));
                }
                if record.expires_at.is_some_and(|e| e <= now) {
                    continue;
                }
                writes.push(Write::Create(record));
                if r.consumed {
                    writes.push(Write::Consume(RecordRef { kind: kind.kind, id: r.id }));
                }
                imported += 1;
            }
        }
    };
    if !ended {
        return Err(BackupError::Truncated { path: path.to_owned() });
    }

    for kind in KINDS {
        if !storage.list_stored(kind.kind, None, 1).await?.is_empty() {
            return Err(BackupError::NotEmpty { kind: kind.kind });
        }
    }
    let mut writes = writes.into_iter().peekable();
    while writes.peek().is_some() {
        let mut group: Vec<Write> = writes.by_ref().take(BACKUP_WRITES_PER_GROUP).collect();
        // A record and its consumption go in one group.
        if matches!(group.last(), Some(Write::Create(_))) && matches!(writes.peek(), Some(Write::Consume(_))) {
            group.extend(writes.next());
        }
        storage.apply(group).await?;
    }
    Ok(Summary { records: imported, encryption_key_fingerprint: fingerprint })
}
