//! Snapshots of the local tier: written on shutdown, loaded on start.
//!
//! Format (version 1), JSON lines:
//!
//! ```text
//! {"format":"semrouter-cache-snapshot","version":1,"model_id":"...","dimension":384,"created_ms":...,"entries":N}
//! {entry record}            N lines, least recently used first
//! {"end":true,"entries":N,"sha256":"<hex of every byte before this line>"}
//! ```
//!
//! The file is written to `PATH.tmp` and renamed into place, so a crash never leaves half a
//! snapshot under the real name. On load, a file that is unreadable, truncated (no footer),
//! corrupt (checksum or JSON), of another version, or for another embedding model or
//! dimension is refused as a whole with a [`SnapshotError`]; the caller logs it and starts
//! empty. Expired entries are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::local::{Origin, SemanticCache};
use super::record::EntryRecord;

/// The format name in the header.
const FORMAT: &str = "semrouter-cache-snapshot";
/// Entries per parallel insert batch when loading (large enough to keep every core busy,
/// small enough that a batch's vectors stay a few MiB).
const LOAD_BATCH: usize = 4096;
/// The format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Why a snapshot was not written or not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be read or written.
    #[error("cache snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a snapshot, is cut short, or does not match its checksum.
    #[error("cache snapshot {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The snapshot is of another format version or another embedding space.
    #[error("cache snapshot {path} is incompatible: {reason}")]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    model_id: String,
    dimension: usize,
    created_ms: u64,
    entries: usize,
}

#[derive(Serialize, Deserialize)]
struct Footer {
    end: bool,
    entries: usize,
    sha256: String,
}

/// What a load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotLoaded {
    /// Entries stored.
    pub loaded: usize,
    /// Entries skipped: expired since the snapshot, or refused (too large, bad vector).
    pub skipped: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SemanticCache {
    /// Writes every live entry to `path` (atomically: a temporary file renamed into place).
    /// Returns the number of entries written.
    pub fn save_snapshot(&self, path: &Path) -> Result<usize, SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        };
        let records = self.export();
        let tmp = path.with_extension("tmp");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut out = BufWriter::new(File::create(&tmp).map_err(io)?);
        let mut hasher = Sha256::new();
        let header = Header {
            format: FORMAT.to_string(),
            version: SNAPSHOT_VERSION,
            model_id: self.space().model_id.clone(),
            dimension: self.space().dimension,
            created_ms: SystemTimeMs::now(),
            entries: records.len(),
        };
        let mut write_line = |line: String| -> std::io::Result<()> {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")
        };
        write_line(to_json(&header)).map_err(io)?;
        for record in &records {
            write_line(to_json(record)).map_err(io)?;
        }
        let footer = Footer {
            end: true,
            entries: records.len(),
            sha256: hex(&hasher.finalize()),
        };
        out.write_all(to_json(&footer).as_bytes()).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(records.len())
    }

    /// Loads a snapshot written by [`SemanticCache::save_snapshot`]. Nothing is loaded
    /// unless the whole file checks out. Entries are not published to the shared tier.
    pub fn load_snapshot(&self, path: &Path) -> Result<SnapshotLoaded, SnapshotError> {
        let corrupt = |reason: String| SnapshotError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let io = |source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        };
        let reader = BufReader::new(File::open(path).map_err(io)?);
        let mut lines = reader.lines();
        let mut hasher = Sha256::new();

        let header_line = lines
            .next()
            .ok_or_else(|| corrupt("the file is empty".into()))?
            .map_err(|e| corrupt(e.to_string()))?;
        hasher.update(header_line.as_bytes());
        hasher.update(b"\n");
        let header: Header =
            serde_json::from_str(&header_line).map_err(|e| corrupt(format!("bad header: {e}")))?;
        if header.format != FORMAT {
            return Err(corrupt(format!(
                "not a cache snapshot (format `{}`)",
                header.format
            )));
        }
        let incompatible = |reason: String| SnapshotError::Incompatible {
            path: path.to_path_buf(),
            reason,
        };
        if header.version != SNAPSHOT_VERSION {
            return Err(incompatible(format!(
                "format version {} (this build reads {SNAPSHOT_VERSION})",
                header.version
            )));
        }
        if header.model_id != self.space().model_id || header.dimension != self.space().dimension {
            return Err(incompatible(format!(
                "made with {} ({}-d), the cache uses {} ({}-d)",
                header.model_id,
                header.dimension,
                self.space().model_id,
                self.space().dimension
            )));
        }

        let mut records = Vec::with_capacity(header.entries.min(1 << 20));
        let mut footer = None;
        for line in lines {
            let line = line.map_err(|e| corrupt(e.to_string()))?;
            if footer.is_some() {
                return Err(corrupt("data after the end line".into()));
            }
            if line.starts_with("{\"end\"") {
                footer = Some(
                    serde_json::from_str::<Footer>(&line)
                        .map_err(|e| corrupt(format!("bad end line: {e}")))?,
                );
                continue;
            }
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
            let record: EntryRecord = serde_json::from_str(&line)
                .map_err(|e| corrupt(format!("entry {}: {e}", records.len() + 1)))?;
            records.push(record);
        }
        let footer = footer.ok_or_else(|| {
            corrupt(format!(
                "truncated: no end line after {} entries",
                records.len()
            ))
        })?;
        if !footer.end || footer.entries != records.len() || footer.entries != header.entries {
            return Err(corrupt(format!(
                "the end line counts {} entries, the file holds {}",
                footer.entries,
                records.len()
            )));
        }
        if footer.sha256 != hex(&hasher.finalize()) {
            return Err(corrupt("checksum mismatch".into()));
        }

        // In parallel batches: a snapshot of a full cache holds up to `max_entries` vectors,
        // and HNSW inserts one by one would hold up the start for minutes.
        let mut report = SnapshotLoaded::default();
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<EntryRecord> = records.by_ref().take(LOAD_BATCH).collect();
            for result in self.import_batch(chunk, Origin::Snapshot) {
                match result {
                    Ok(true) => report.loaded += 1,
                    Ok(false) | Err(_) => report.skipped += 1,
                }
            }
        }
        Ok(report)
    }

    /// Loads `cache.snapshot.path` if configured with `load_on_start`; a failure is logged
    /// (without entry contents) and the cache starts empty. Returns the entries loaded.
    pub fn load_configured_snapshot(&self) -> usize {
        let snapshot = &self.config().snapshot;
        let Some(path) = snapshot.path.as_deref().filter(|_| snapshot.load_on_start) else {
            return 0;
        };
        if !path.exists() {
            tracing::info!(path = %path.display(), "no cache snapshot to load");
            return 0;
        }
        match self.load_snapshot(path) {
            Ok(report) => {
                tracing::info!(path = %path.display(), loaded = report.loaded, skipped = report.skipped, "cache snapshot loaded");
                report.loaded
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache snapshot skipped; starting with an empty cache");
                0
            }
        }
    }

    /// Writes `cache.snapshot.path` if configured with `save_on_shutdown`; a failure is
    /// logged. Returns the entries written.
    pub fn save_configured_snapshot(&self) -> usize {
        let snapshot = &self.config().snapshot;
        let Some(path) = snapshot
            .path
            .as_deref()
            .filter(|_| snapshot.save_on_shutdown)
        else {
            return 0;
        };
        match self.save_snapshot(path) {
            Ok(written) => {
                tracing::info!(path = %path.display(), entries = written, "cache snapshot written");
                written
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache snapshot not written");
                0
            }
        }
    }
}

/// The wall clock for the header (the cache's own clock may be a test clock).
struct SystemTimeMs;

impl SystemTimeMs {
    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// JSON of a value that cannot fail to serialise: plain structs of strings and numbers and
/// JSON values. An empty object would make the checksum fail loudly on load if it ever did.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}
