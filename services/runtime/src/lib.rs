//! The seams between services and storage. Services are written against these traits; the
//! implementations (SQLite, files, tantivy, Parquet, later Kafka and Qdrant) live in
//! `avatar-adapters`, each with an in-memory twin so every stage tests without servers.

use avatar_schemas::{Envelope, Record};

pub mod conformance;
mod memory;
pub use memory::{MemoryBlobStore, MemoryEventLog};

/// Position of an event in the log: 0-based, dense, increasing.
pub type Offset = u64;

/// An event as stored, with its offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub offset: Offset,
    pub event: Envelope,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The system's fault (disk, database, corrupt store): retrying or repairing may help.
    #[error("storage error: {0}")]
    Backend(String),
    /// An event in the log could not be decoded.
    #[error("event at offset {offset} cannot be read: {reason}")]
    BadEvent { offset: Offset, reason: String },
    #[error("blob {0} not found")]
    BlobMissing(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The append-only event log. Appends are idempotent by [`Envelope::dedup_key`]; consumers
/// keep named checkpoints that move in the same transaction as their output.
pub trait EventLog: Send + Sync {
    /// Appends events in order. An event whose dedup key is already in the log is skipped.
    /// Returns the offsets of the events actually appended.
    fn append(&self, events: &[Envelope]) -> Result<Vec<Offset>>;
    /// Up to `max` events with offset >= `from`, in order.
    fn read(&self, from: Offset, max: usize) -> Result<Vec<Stored>>;
    /// The offset the next appended event will get (= number of events).
    fn end(&self) -> Result<Offset>;
    /// The next offset consumer `name` has to read (0 when it never committed).
    fn checkpoint(&self, name: &str) -> Result<Offset>;
    /// Atomically appends `output` (deduplicated as in [`EventLog::append`]) and moves
    /// consumer `name`'s checkpoint to `next`. A crash leaves either both or neither.
    fn commit(&self, name: &str, next: Offset, output: &[Envelope]) -> Result<()>;
    /// Up to `max` events whose kind is one of `kinds`, with offset >= `from`. Logs that can
    /// filter in storage (SQLite) override this scan.
    fn read_kinds(&self, from: Offset, max: usize, kinds: &[&str]) -> Result<Vec<Stored>> {
        let mut out = Vec::new();
        let mut next = from;
        while out.len() < max {
            let batch = self.read(next, 4096)?;
            let Some(last) = batch.last() else { break };
            next = last.offset + 1;
            out.extend(
                batch
                    .into_iter()
                    .filter(|s| kinds.contains(&s.event.kind())),
            );
        }
        out.truncate(max);
        Ok(out)
    }
    /// Every event of the given kinds, in order.
    fn all_of_kinds(&self, kinds: &[&str]) -> Result<Vec<Stored>> {
        let mut out: Vec<Stored> = Vec::new();
        loop {
            let from = out.last().map_or(0, |s| s.offset + 1);
            let batch = self.read_kinds(from, 4096, kinds)?;
            if batch.is_empty() {
                return Ok(out);
            }
            out.extend(batch);
        }
    }
}

/// Content-addressed bytes. Putting the same bytes twice is a no-op.
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` (atomically) and returns their sha256 in lowercase hex.
    fn put(&self, bytes: &[u8]) -> Result<String>;
    fn get(&self, sha256: &str) -> Result<Vec<u8>>;
    fn contains(&self, sha256: &str) -> Result<bool>;
}

/// sha256 of `bytes` in lowercase hex: the blob key and the artifact idempotency key.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// The materialised records of every avatar (what `avatar records` lists and Parquet exports).
pub trait RecordStore: Send + Sync {
    /// Upserts `records`, deletes `deletes` (record ids) and sets consumer `name`'s checkpoint
    /// to `next`, all in one transaction.
    fn apply(&self, name: &str, next: Offset, records: &[Record], deletes: &[String])
        -> Result<()>;
    fn checkpoint(&self, name: &str) -> Result<Offset>;
    /// All records of `avatar` in dataset order: timestamp (undated first), then source, ordinal, id.
    fn records(&self, avatar: &str) -> Result<Vec<Record>>;
    fn get(&self, id: &str) -> Result<Option<Record>>;
    /// The record `id` if it is `avatar`'s, decided by the store's query (not by the caller
    /// looking at the result): what every read on behalf of a user goes through.
    fn get_of(&self, avatar: &str, id: &str) -> Result<Option<Record>>;
    /// The records of one artifact, in dataset order. The default scans.
    fn records_of_artifact(&self, avatar: &str, artifact: &str) -> Result<Vec<Record>> {
        Ok(self
            .records(avatar)?
            .into_iter()
            .filter(|r| r.artifact == artifact)
            .collect())
    }
    /// Ids of records removed by a tombstone in an `apply` whose `next` was greater than
    /// `after`, so later consumers can remove them too. Stores that keep no such list
    /// return nothing.
    fn forgotten_since(&self, _after: Offset) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// The record of `avatar` with this Message-ID (the parent of a reply), if any.
    /// The default scans; stores with an index on message_id should override it.
    fn find_by_message_id(&self, avatar: &str, message_id: &str) -> Result<Option<Record>> {
        Ok(self
            .records(avatar)?
            .into_iter()
            .find(|r| r.message_id.as_deref() == Some(message_id)))
    }
}

/// A search hit: the record id, its score and a snippet around the matched words.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub record_id: String,
    pub score: f32,
    pub snippet: String,
}

/// Full-text (BM25) index over records.
pub trait SearchIndex: Send + Sync {
    /// Adds/replaces `records`, removes `deletes` and records `next` as this index's
    /// checkpoint, atomically (one commit).
    fn apply(&self, next: Offset, records: &[Record], deletes: &[String]) -> Result<()>;
    fn checkpoint(&self) -> Result<Offset>;
    /// Top `k` hits for `query` among `avatar`'s records.
    fn search(&self, avatar: &str, query: &str, k: usize) -> Result<Vec<Hit>>;
}

/// What a vector point carries besides its vector: enough to filter by avatar, source,
/// author and time in the store query, and to cite without another lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPayload {
    pub avatar: String,
    /// Records the chunk was cut from (a chat session spans several messages).
    pub record_ids: Vec<String>,
    pub source: String,
    pub author: Option<String>,
    /// Unix seconds of the earliest record in the chunk.
    pub timestamp: Option<i64>,
    /// Record kind: message, email, document, memory.
    pub kind: String,
    pub text: String,
}

/// One embedded chunk. `id` is the chunk's stable content-derived id (hex); stores that need
/// numeric or UUID point ids derive them from it.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorPoint {
    pub id: String,
    pub vector: Vec<f32>,
    pub payload: ChunkPayload,
}

/// Filters applied inside the store query (never afterwards), so an avatar's search cannot
/// see another avatar's points and `k` results are `k` matching ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VectorFilter {
    pub avatar: String,
    pub source: Option<String>,
    pub author: Option<String>,
    /// Inclusive bounds, unix seconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only these record kinds (empty = all).
    pub kinds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub id: String,
    /// Cosine similarity (vectors are L2-normalised).
    pub score: f32,
    pub payload: ChunkPayload,
}

/// Nearest-neighbour search over chunk embeddings (qdrant-edge embedded, Qdrant server).
pub trait VectorStore: Send + Sync {
    /// Upserts `points`, removes every point citing one of `delete_records`, then records
    /// `next` as this store's checkpoint. Idempotent: replaying the same call is harmless.
    fn apply(&self, next: Offset, points: &[VectorPoint], delete_records: &[String]) -> Result<()>;
    fn checkpoint(&self) -> Result<Offset>;
    /// Top `k` points by cosine similarity to `query` among those matching `filter`.
    fn search(&self, query: &[f32], filter: &VectorFilter, k: usize) -> Result<Vec<VectorHit>>;
    /// Number of points of `avatar` (for status and tests).
    fn count(&self, avatar: &str) -> Result<u64>;
}

/// Turns text into normalised vectors (the candle embedder implements it). A trait so the
/// processor does not depend on a model runtime, and tests can pass a small one.
pub trait TextEmbedder: Send + Sync {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Tokens `text` takes in this model (the chunker sizes chunks with it).
    fn count_tokens(&self, text: &str) -> usize;
    fn dim(&self) -> usize;
    fn model_id(&self) -> &str;
}
