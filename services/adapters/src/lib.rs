//! Storage adapters: the embedded-mode implementations of the `avatar-runtime` traits.
//!
//! Everything here is what `avatar up` uses with nothing installed: a SQLite file for the event
//! log and checkpoints, another for the materialised records, content-addressed files for blobs,
//! a tantivy directory for full-text search and Parquet files for datasets. Each adapter keeps
//! the runtime's promise that output and checkpoint move together, so a crash (even SIGKILL)
//! never loses or duplicates work.

mod fs_blobs;
#[cfg(feature = "kafka")]
mod kafka_log;
#[cfg(feature = "object-store")]
mod object_blobs;
mod records_parquet;
mod sqlite_log;
mod sqlite_records;
mod tantivy_index;
mod vector_edge;
#[cfg(feature = "qdrant-server")]
mod vector_qdrant;

pub use fs_blobs::FsBlobStore;
#[cfg(feature = "kafka")]
pub use kafka_log::{
    partition_for, GroupMember, KafkaConfig, KafkaLog, KafkaPartitionLog, ResetTo,
};
#[cfg(feature = "object-store")]
pub use object_blobs::ObjectBlobStore;
pub use records_parquet::{read_records_parquet, records_arrow_schema, write_records_parquet};
pub use sqlite_log::SqliteEventLog;
pub use sqlite_records::SqliteRecordStore;
pub use tantivy_index::TantivyIndex;
pub use vector_edge::{EdgeStats, EdgeVectorStore};
#[cfg(feature = "qdrant-server")]
pub use vector_qdrant::QdrantServerStore;

use avatar_runtime::{Result, StoreError};
use avatar_schemas::RecordKind;
use std::path::Path;

/// Maps any backend error (SQLite, tantivy, Parquet, Arrow) to [`StoreError::Backend`]. A
/// trait rather than `From` impls because both the error types and `StoreError` are foreign
/// to this crate.
pub(crate) trait OrBackend<T> {
    fn backend(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> OrBackend<T> for std::result::Result<T, E> {
    fn backend(self) -> Result<T> {
        self.map_err(|e| StoreError::Backend(e.to_string()))
    }
}

/// The two parts of blob `sha256`'s place in every blob store (`ab` / `cdef…`: the fan-out
/// keeps folders small), or `None` unless it is 64 lowercase hex digits, so a key can never
/// name anything outside the store.
pub(crate) fn blob_key_parts(sha256: &str) -> Option<(&str, &str)> {
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then(|| sha256.split_at(2))
}

/// The inverse of [`RecordKind::as_str`], for stores that keep the kind as text.
pub(crate) fn record_kind_from_str(s: &str) -> Option<RecordKind> {
    Some(match s {
        "message" => RecordKind::Message,
        "email" => RecordKind::Email,
        "document" => RecordKind::Document,
        "memory" => RecordKind::Memory,
        "transcript" => RecordKind::Transcript,
        _ => return None,
    })
}

/// Makes a rename inside `dir` durable: without fsyncing the directory, a power loss after
/// `rename` can leave the old name. A no-op where directories cannot be opened (Windows).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

/// A name for a temporary file that no other writer (thread or process) picks at the same time.
pub(crate) fn temp_name(final_name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{final_name}.tmp-{}-{n}", std::process::id())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_support {
    use avatar_schemas::{Record, RecordKind};

    /// A record with every optional field filled, for store tests.
    pub fn record(id: &str, avatar: &str, text: &str) -> Record {
        Record {
            id: id.into(),
            avatar: avatar.into(),
            source: "file:///inbox.mbox".into(),
            format: "mbox".into(),
            kind: RecordKind::Email,
            thread: "thread-1".into(),
            timestamp: Some("2021-03-04T05:06:07.123456Z".parse().unwrap()),
            author: Some("Ada Lovelace <ada@example.org>".into()),
            author_is_person: true,
            text: text.into(),
            title: Some("Re: engines".into()),
            message_id: Some(format!("<{id}@example.org>")),
            in_reply_to: None,
            artifact: "ab".repeat(32),
            ordinal: 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn record_kind_text_round_trips() {
        for k in [
            RecordKind::Message,
            RecordKind::Email,
            RecordKind::Document,
            RecordKind::Memory,
            RecordKind::Transcript,
        ] {
            assert_eq!(record_kind_from_str(k.as_str()), Some(k));
        }
        assert_eq!(record_kind_from_str("Message"), None);
    }

    #[test]
    fn temp_names_are_unique_and_hidden() {
        let a = temp_name("x");
        let b = temp_name("x");
        assert_ne!(a, b);
        assert!(a.starts_with(".x.tmp-"));
    }
}
