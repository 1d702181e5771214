//! The embedded vector store: a qdrant-edge shard in the data directory.
//!
//! qdrant-edge is the Qdrant engine in-process (HNSW, payload indexes, filtered search), so
//! `avatar up` gets the same search semantics as a Qdrant server with nothing installed.
//! Filters run inside the shard's query (an avatar never sees another's points, and `k` hits
//! are `k` matching ones). The checkpoint is a small file beside the shard, written after the
//! shard is flushed: a crash in between replays a batch whose upserts and filter-deletes are
//! idempotent, so nothing is lost or duplicated.
//!
//! Layout of the store directory: `shard/` (qdrant-edge's own files) and `checkpoint`; during
//! a compaction also `shard.new/`, `shard.old/` and `compact-pending` (see
//! [`EdgeVectorStore::compact`], which makes forgotten points leave the disk).
//! The payload and point-id conventions here are shared with the Qdrant server store, so both
//! hold the same data for the same log.

use crate::{sync_dir, temp_name, OrBackend};
use avatar_runtime::{
    ChunkPayload, Offset, Result, StoreError, VectorFilter, VectorHit, VectorPoint, VectorStore,
};
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition, CountRequest, Distance, EdgeConfig, EdgeConfigBuilder, EdgeOptimizersConfig,
    EdgeShard, EdgeVectorParamsBuilder, FieldCondition, Filter, JsonPath, Match, NamedQuery,
    Payload, PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStructPersisted, QueryEnum, QueryRequest, Range, ScoringQuery,
    ScrollRequest, SearchParams, UpdateOperation, VectorInternal, VectorStructInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// The shard's one named vector.
const VECTOR: &str = "chunk";
const SHARD_DIR: &str = "shard";
const CHECKPOINT_FILE: &str = "checkpoint";
/// HNSW beam width at query time. qdrant's default (the build-time `ef_construct`, 100) gave
/// recall@10 below target on clustered 384-dim data; see benches/vectors.rs.
const HNSW_EF: usize = 128;

/// Segments the optimiser keeps before merging. qdrant's default on a 2-core machine is 2,
/// which merges (and rebuilds the HNSW graph of) every point each time a new segment gets
/// indexed: quadratic ingestion. With 8, merges take the smallest segments, so each point is
/// re-indexed O(log n) times, and a query visits at most a handful of small graphs.
const SEGMENTS: usize = 8;
/// Vector bytes (KiB) an appendable segment holds before it is HNSW-indexed: about 13 000
/// chunks of 384 dimensions, which a brute-force scan still searches in a few milliseconds.
const INDEXING_THRESHOLD_KB: usize = 20_000;

/// Payload keys. `chunk_id` keeps the hex id the point UUID was derived from.
pub(crate) mod key {
    pub const CHUNK_ID: &str = "chunk_id";
    pub const AVATAR: &str = "avatar";
    pub const RECORD_IDS: &str = "record_ids";
    pub const SOURCE: &str = "source";
    pub const AUTHOR: &str = "author";
    pub const TIMESTAMP: &str = "timestamp";
    pub const KIND: &str = "kind";
    pub const TEXT: &str = "text";
    /// Indexed fields and whether each is an integer (else keyword).
    pub const INDEXED: [(&str, bool); 6] = [
        (AVATAR, false),
        (SOURCE, false),
        (AUTHOR, false),
        (TIMESTAMP, true),
        (KIND, false),
        (RECORD_IDS, false),
    ];
}

/// The point UUID of a chunk id: its first 16 bytes when it is hex of at least that length
/// (chunk ids are content hashes), else the first 16 bytes of its sha256, so any id maps to a
/// stable UUID.
pub(crate) fn point_uuid(chunk_id: &str) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    match chunk_id.get(..32).map(hex::decode) {
        Some(Ok(b)) if b.len() == 16 => bytes.copy_from_slice(&b),
        _ => {
            use sha2::{Digest, Sha256};
            bytes.copy_from_slice(&Sha256::digest(chunk_id.as_bytes())[..16]);
        }
    }
    uuid::Uuid::from_bytes(bytes)
}

/// The JSON payload stored with a point (the same for the embedded and the server store).
/// Absent author/timestamp are left out, so they match no exact or range condition.
pub(crate) fn payload_json(
    id: &str,
    p: &ChunkPayload,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value as J;
    let mut m = serde_json::Map::new();
    m.insert(key::CHUNK_ID.into(), J::from(id));
    m.insert(key::AVATAR.into(), J::from(p.avatar.as_str()));
    m.insert(
        key::RECORD_IDS.into(),
        J::Array(p.record_ids.iter().map(|r| J::from(r.as_str())).collect()),
    );
    m.insert(key::SOURCE.into(), J::from(p.source.as_str()));
    if let Some(a) = &p.author {
        m.insert(key::AUTHOR.into(), J::from(a.as_str()));
    }
    if let Some(t) = p.timestamp {
        m.insert(key::TIMESTAMP.into(), J::from(t));
    }
    m.insert(key::KIND.into(), J::from(p.kind.as_str()));
    m.insert(key::TEXT.into(), J::from(p.text.as_str()));
    m
}

/// The inverse of [`payload_json`]: the chunk id and its payload, or why the stored payload
/// is not one this crate wrote.
pub(crate) fn payload_from_json(
    m: &serde_json::Map<String, serde_json::Value>,
) -> std::result::Result<(String, ChunkPayload), String> {
    let text = |k: &str| -> std::result::Result<String, String> {
        m.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("payload field {k:?} missing or not text"))
    };
    let record_ids = m
        .get(key::RECORD_IDS)
        .and_then(|v| v.as_array())
        .ok_or("payload field \"record_ids\" missing or not a list")?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or("payload field \"record_ids\" holds a non-text value")?;
    let timestamp = match m.get(key::TIMESTAMP) {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or("payload field \"timestamp\" is not an integer")?,
        ),
    };
    let author = match m.get(key::AUTHOR) {
        None | Some(serde_json::Value::Null) => None,
        Some(_) => Some(text(key::AUTHOR)?),
    };
    Ok((
        text(key::CHUNK_ID)?,
        ChunkPayload {
            avatar: text(key::AVATAR)?,
            record_ids,
            source: text(key::SOURCE)?,
            author,
            timestamp,
            kind: text(key::KIND)?,
            text: text(key::TEXT)?,
        },
    ))
}

/// Refuses vectors of the wrong length before anything is written, with a message that names
/// the dimensions (the engine's own error is less clear and may come after a partial write).
pub(crate) fn check_dims(points: &[VectorPoint], dim: usize) -> Result<()> {
    match points.iter().find(|p| p.vector.len() != dim) {
        Some(p) => Err(StoreError::Backend(format!(
            "vector of chunk {} has dimension {}, the store holds dimension {dim}",
            p.id,
            p.vector.len()
        ))),
        None => Ok(()),
    }
}

pub(crate) fn check_query_dim(query: &[f32], dim: usize) -> Result<()> {
    if query.len() == dim {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "query vector has dimension {}, the store holds dimension {dim}",
            query.len()
        )))
    }
}

/// Reads the checkpoint file; 0 when it was never written.
pub(crate) fn read_checkpoint(path: &Path) -> Result<Offset> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse().map_err(|_| {
            StoreError::Backend(format!("checkpoint file {} is corrupt", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Writes the checkpoint file atomically (temp file, fsync, rename, fsync of the directory).
pub(crate) fn write_checkpoint(dir: &Path, next: Offset) -> Result<()> {
    let tmp = dir.join(temp_name(CHECKPOINT_FILE));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(next.to_string().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    sync_dir(dir)
}

/// A top-level payload key as a path (built directly: the parser returns a `Result` and
/// `JsonPath::new` exists only in qdrant-edge's tests).
fn field(name: &str) -> JsonPath {
    JsonPath {
        first_key: name.to_string(),
        rest: Vec::new(),
    }
}

/// The store query's filter: avatar always, then each optional bound as a `must` condition.
fn edge_filter(f: &VectorFilter) -> Filter {
    let mut must = vec![Condition::Field(FieldCondition::new_match(
        field(key::AVATAR),
        Match::from(f.avatar.clone()),
    ))];
    if let Some(s) = &f.source {
        must.push(Condition::Field(FieldCondition::new_match(
            field(key::SOURCE),
            Match::from(s.clone()),
        )));
    }
    if let Some(a) = &f.author {
        must.push(Condition::Field(FieldCondition::new_match(
            field(key::AUTHOR),
            Match::from(a.clone()),
        )));
    }
    if f.since.is_some() || f.until.is_some() {
        must.push(Condition::Field(FieldCondition::new_range(
            field(key::TIMESTAMP),
            Range {
                lt: None,
                gt: None,
                gte: f.since.map(|s| OrderedFloat(s as f64)),
                lte: f.until.map(|u| OrderedFloat(u as f64)),
            },
        )));
    }
    if !f.kinds.is_empty() {
        must.push(Condition::Filter(Filter {
            should: Some(
                f.kinds
                    .iter()
                    .map(|k| {
                        Condition::Field(FieldCondition::new_match(
                            field(key::KIND),
                            Match::from(k.clone()),
                        ))
                    })
                    .collect(),
            ),
            ..Filter::new()
        }));
    }
    Filter {
        must: Some(must),
        ..Filter::new()
    }
}

/// The shard's folder while [`EdgeVectorStore::compact`] builds it, and the old shard's
/// folder between the swap and its deletion. `open` finishes or undoes a swap a crash
/// interrupted (see [`finish_interrupted_swap`]).
const NEW_DIR: &str = "shard.new";
const OLD_DIR: &str = "shard.old";
/// Present while a compaction is owed or under way, so one that a crash or an error cut short
/// is redone (by `open` and by the next `apply`) instead of leaving forgotten bytes on disk.
const COMPACT_MARKER: &str = "compact-pending";
/// The file qdrant-edge writes first in a shard: its presence marks a shard folder.
const EDGE_CONFIG_FILE: &str = "edge_config.json";
const WAL_DIR: &str = "wal";
const SEGMENTS_DIR: &str = "segments";
/// Points copied per scroll page during a compaction.
const COMPACT_PAGE: usize = 1000;
/// qdrant-edge never acknowledges its WAL, so it grows with every write. `apply` compacts when
/// the WAL holds more than this many bytes and more than twice what it held right after the
/// last compaction (about the size of the live points): each compaction then copies the live
/// data once per as many bytes written, so the cost per write stays constant.
const WAL_FLOOR_BYTES: u64 = 64 << 20;
/// Upper bound of optimiser passes after a compaction's copy (each pass merges or indexes).
const MAX_OPTIMIZE_PASSES: usize = 16;

/// Runs a qdrant-edge call that panics instead of returning errors (0.7.2's `flush` does on
/// I/O failure) and turns the panic into a [`StoreError`].
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| StoreError::Backend(format!("qdrant-edge panicked during {what}")))
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("vector store lock poisoned".into())
}

/// The configuration of a new store: cosine vectors of `dim`, payload on disk, and the
/// optimiser settings explained at [`SEGMENTS`].
fn default_config(dim: usize) -> EdgeConfig {
    EdgeConfigBuilder::new()
        .on_disk_payload(true)
        .optimizers(EdgeOptimizersConfig {
            default_segment_number: Some(SEGMENTS),
            indexing_threshold: Some(INDEXING_THRESHOLD_KB),
            ..EdgeOptimizersConfig::default()
        })
        .vector(
            VECTOR,
            EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build(),
        )
        .build()
}

/// Creates an empty shard at `path` with `config` and the payload indexes filters need.
fn create_shard(path: &Path, config: EdgeConfig) -> Result<EdgeShard> {
    let shard = EdgeShard::new(path, config).backend()?;
    for (name, integer) in key::INDEXED {
        let schema = if integer {
            PayloadSchemaType::Integer
        } else {
            PayloadSchemaType::Keyword
        };
        shard
            .update(UpdateOperation::FieldIndexOperation(
                qdrant_edge::FieldIndexOperations::CreateIndex(qdrant_edge::CreateIndex {
                    field_name: field(name),
                    field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                }),
            ))
            .backend()?;
    }
    no_panic("flush", || shard.flush())?;
    Ok(shard)
}

/// Loads the shard at `path` and checks it holds vectors of `dim`.
fn load_shard(path: &Path, dim: usize) -> Result<EdgeShard> {
    let shard = EdgeShard::load(path, None).backend()?;
    let stored = shard.config().vectors.get(VECTOR).map(|v| v.size);
    match stored {
        Some(d) if d == dim => Ok(shard),
        Some(d) => Err(StoreError::Backend(format!(
            "vector store {} holds dimension {d}, asked for dimension {dim}",
            path.display()
        ))),
        None => Err(StoreError::Backend(format!(
            "{} is not a vector store of this version (no {VECTOR:?} vector)",
            path.display()
        ))),
    }
}

fn remove_dir_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn remove_file_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Completes or undoes a compaction's folder swap that a crash interrupted. The steps are:
/// build `shard.new` completely (synced), rename `shard` → `shard.old`, rename `shard.new` →
/// `shard`, delete `shard.old`. So a missing `shard` with `shard.old` present means `shard.new`
/// is complete and wins (or `shard.old` comes back when there is no `shard.new`); any
/// leftover `shard.new` beside a live `shard` is an unfinished build, and any `shard.old` beside
/// a live `shard` is the pre-compaction copy: both are deleted, so no forgotten byte survives.
fn finish_interrupted_swap(dir: &Path) -> Result<()> {
    let live = dir.join(SHARD_DIR);
    let new = dir.join(NEW_DIR);
    let old = dir.join(OLD_DIR);
    if !live.exists() && old.exists() {
        if new.join(EDGE_CONFIG_FILE).exists() {
            std::fs::rename(&new, &live)?;
        } else {
            std::fs::rename(&old, &live)?;
        }
        sync_dir(dir)?;
    }
    if new.exists() || old.exists() {
        remove_dir_if_present(&new)?;
        remove_dir_if_present(&old)?;
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs every file and folder under `path`, so a renamed-in shard is durable as a whole.
fn sync_tree(path: &Path) -> Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            sync_tree(&p)?;
        } else {
            std::fs::File::open(&p)?.sync_all()?;
        }
    }
    sync_dir(path)
}

/// Bytes that the files under `path` occupy on disk (allocated blocks where the platform says,
/// since qdrant preallocates its WAL segments as sparse 32 MiB files); 0 when it is missing.
fn disk_usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            total += disk_usage(&entry.path());
        } else {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                total += meta.blocks() * 512;
            }
            #[cfg(not(unix))]
            {
                total += meta.len();
            }
        }
    }
    total
}

/// What writers share under [`EdgeVectorStore::write`].
#[derive(Debug)]
struct WriteState {
    /// WAL bytes right after the last compaction (at open: the segments' size, a proxy for the
    /// live data); `apply` compacts once the WAL outgrows twice this and the floor.
    wal_baseline: u64,
}

/// [`VectorStore`] on an embedded qdrant-edge shard.
///
/// Forgetting is physical: qdrant only marks deleted points (its vacuum waits for 20 % deleted
/// and 1000 vectors) and qdrant-edge never truncates its WAL, so a forgotten chunk's text would
/// stay on disk. [`EdgeVectorStore::compact`] rebuilds the shard from its live points, and
/// `apply` runs it after every delete that removed a point and whenever the WAL grows too big.
pub struct EdgeVectorStore {
    dir: PathBuf,
    dim: usize,
    /// `None` only after a compaction failed to reload either shard; every call then errors.
    /// Readers share the lock; a compaction takes it exclusively only for the folder swap.
    shard: RwLock<Option<EdgeShard>>,
    /// Serialises writers: qdrant-edge's `flush` must not race another update or optimize,
    /// and a compaction must see no writes while it copies.
    write: Mutex<WriteState>,
    /// [`WAL_FLOOR_BYTES`], lowered by tests.
    wal_floor: u64,
}

impl std::fmt::Debug for EdgeVectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeVectorStore")
            .field("dir", &self.dir)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl EdgeVectorStore {
    /// Opens the store in `dir` (created when missing) for vectors of `dim` dimensions
    /// (cosine distance). Fails when `dir` already holds vectors of another dimension.
    /// Finishes a compaction that a crash interrupted.
    pub fn open(dir: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(StoreError::Backend("vector dimension must be > 0".into()));
        }
        std::fs::create_dir_all(dir)?;
        finish_interrupted_swap(dir)?;
        let shard_dir = dir.join(SHARD_DIR);
        std::fs::create_dir_all(&shard_dir)?;
        let shard = if shard_dir.join(EDGE_CONFIG_FILE).exists() {
            load_shard(&shard_dir, dim)?
        } else {
            create_shard(&shard_dir, default_config(dim))?
        };
        let store = Self {
            dir: dir.to_path_buf(),
            dim,
            shard: RwLock::new(Some(shard)),
            write: Mutex::new(WriteState {
                wal_baseline: disk_usage(&shard_dir.join(SEGMENTS_DIR)),
            }),
            wal_floor: WAL_FLOOR_BYTES,
        };
        if store.dir.join(COMPACT_MARKER).exists() {
            store.compact()?;
        }
        Ok(store)
    }

    /// Runs `f` on the shard under the shared lock.
    fn with_shard<T>(&self, f: impl FnOnce(&EdgeShard) -> Result<T>) -> Result<T> {
        let guard = self.shard.read().map_err(poisoned)?;
        match guard.as_ref() {
            Some(shard) => f(shard),
            None => Err(StoreError::Backend(format!(
                "vector store {} is closed after a failed compaction; reopen it",
                self.dir.display()
            ))),
        }
    }

    /// Builds HNSW indexes of segments that grew past qdrant's indexing threshold and merges
    /// small segments. qdrant-edge has no background optimiser, so [`VectorStore::apply`]
    /// calls this after each write; a call with nothing to do is cheap.
    pub fn optimize(&self) -> Result<bool> {
        let _g = self.write.lock().map_err(poisoned)?;
        self.with_shard(optimize_shard)
    }

    /// Rewrites the store so that nothing deleted remains on disk: every live point (payload
    /// and vector) is copied into a fresh shard beside the old one, which then replaces it and
    /// is deleted; the old WAL goes with it. The checkpoint, the live points and their search
    /// results stay the same. Searches keep running during the copy; writers wait.
    ///
    /// Deleted files' blocks are freed, not overwritten: on a disk without encryption a forensic
    /// tool may still find them, as with any file deletion.
    pub fn compact(&self) -> Result<()> {
        let mut state = self.write.lock().map_err(poisoned)?;
        self.compact_locked(&mut state)
    }

    fn compact_locked(&self, state: &mut WriteState) -> Result<()> {
        let marker = self.dir.join(COMPACT_MARKER);
        if !marker.exists() {
            std::fs::File::create(&marker)?.sync_all()?;
            sync_dir(&self.dir)?;
        }
        let new_dir = self.dir.join(NEW_DIR);
        remove_dir_if_present(&new_dir)?;
        std::fs::create_dir_all(&new_dir)?;
        // The copy, under the shared lock: searches go on, writers wait on `write`.
        self.with_shard(|old| {
            let config = old.config().clone();
            let new = create_shard(&new_dir, config)?;
            copy_points(old, &new)?;
            optimize_shard(&new)?;
            for _ in 1..MAX_OPTIMIZE_PASSES {
                if !optimize_shard(&new)? {
                    break;
                }
            }
            no_panic("close", || drop(new))
        })?;
        sync_tree(&new_dir)?;
        self.swap_in(&new_dir)?;
        state.wal_baseline = disk_usage(&self.dir.join(SHARD_DIR).join(WAL_DIR));
        remove_file_if_present(&marker)?;
        sync_dir(&self.dir)
    }

    /// Replaces the live shard with the complete one in `new_dir` (see
    /// [`finish_interrupted_swap`] for the order of steps). On failure the old shard comes back.
    fn swap_in(&self, new_dir: &Path) -> Result<()> {
        let live = self.dir.join(SHARD_DIR);
        let old_dir = self.dir.join(OLD_DIR);
        let mut guard = self.shard.write().map_err(poisoned)?;
        // Close the old shard first: its files must not be written after the rename.
        if let Some(old) = guard.take() {
            if let Err(e) = no_panic("close", || drop(old)) {
                *guard = Some(load_shard(&live, self.dim)?);
                return Err(e);
            }
        }
        remove_dir_if_present(&old_dir)?;
        let swapped = (|| {
            std::fs::rename(&live, &old_dir)?;
            std::fs::rename(new_dir, &live)?;
            sync_dir(&self.dir)?;
            load_shard(&live, self.dim)
        })();
        match swapped {
            Ok(shard) => {
                *guard = Some(shard);
                drop(guard);
                remove_dir_if_present(&old_dir)?;
                sync_dir(&self.dir)
            }
            Err(e) => {
                // Back to the old shard; the marker stays, so the compaction is retried.
                if old_dir.exists() {
                    remove_dir_if_present(&live)?;
                    std::fs::rename(&old_dir, &live)?;
                }
                remove_dir_if_present(new_dir)?;
                sync_dir(&self.dir)?;
                *guard = Some(load_shard(&live, self.dim)?);
                Err(e)
            }
        }
    }

    /// Size and shape of the store (for status and benchmarks); zeros when it is closed.
    pub fn stats(&self) -> EdgeStats {
        self.with_shard(|shard| {
            let info = shard.info();
            Ok(EdgeStats {
                points: info.points_count,
                indexed_vectors: info.indexed_vectors_count,
                segments: info.segments_count,
            })
        })
        .unwrap_or(EdgeStats {
            points: 0,
            indexed_vectors: 0,
            segments: 0,
        })
    }

    /// Bytes the WAL occupies on disk now.
    fn wal_bytes(&self) -> u64 {
        disk_usage(&self.dir.join(SHARD_DIR).join(WAL_DIR))
    }
}

fn optimize_shard(shard: &EdgeShard) -> Result<bool> {
    let changed = shard.optimize().backend()?;
    if changed {
        no_panic("flush", || shard.flush())?;
    }
    Ok(changed)
}

/// Copies every live point of `from` (payload and vector) into `to`, page by page.
fn copy_points(from: &EdgeShard, to: &EdgeShard) -> Result<usize> {
    let mut offset = None;
    let mut copied = 0;
    loop {
        let (records, next) = from
            .scroll(ScrollRequest {
                offset,
                limit: Some(COMPACT_PAGE),
                filter: None,
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(true),
                order_by: None,
            })
            .backend()?;
        let mut list = Vec::with_capacity(records.len());
        for r in records {
            let vector = r.vector.ok_or_else(|| {
                StoreError::Backend(format!("point {:?} came back without its vector", r.id))
            })?;
            list.push(PointStructPersisted {
                id: r.id,
                vector: VectorStructPersisted::from(vector),
                payload: r.payload,
            });
        }
        copied += list.len();
        if !list.is_empty() {
            to.update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
            ))
            .backend()?;
        }
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    no_panic("flush", || to.flush())?;
    Ok(copied)
}

/// What [`EdgeVectorStore::stats`] reports (qdrant's own estimates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeStats {
    pub points: usize,
    /// Vectors in HNSW-indexed segments; the rest are scanned.
    pub indexed_vectors: usize,
    pub segments: usize,
}

impl VectorStore for EdgeVectorStore {
    fn apply(&self, next: Offset, points: &[VectorPoint], delete_records: &[String]) -> Result<()> {
        check_dims(points, self.dim)?;
        let mut state = self.write.lock().map_err(poisoned)?;
        let removed = self.with_shard(|shard| {
            if !points.is_empty() {
                let mut list = Vec::with_capacity(points.len());
                for p in points {
                    let vector = VectorStructInternal::Named(HashMap::from([(
                        VECTOR.to_string(),
                        VectorInternal::Dense(p.vector.clone()),
                    )]));
                    list.push(PointStructPersisted {
                        id: PointId::Uuid(point_uuid(&p.id)),
                        vector: VectorStructPersisted::from(vector),
                        payload: Some(Payload(payload_json(&p.id, &p.payload))),
                    });
                }
                shard
                    .update(UpdateOperation::PointOperation(
                        PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
                    ))
                    .backend()?;
            }
            let mut removed = 0;
            if !delete_records.is_empty() {
                let cites = Filter::new_must(Condition::Field(FieldCondition::new_match(
                    field(key::RECORD_IDS),
                    Match::from(delete_records.to_vec()),
                )));
                // Counted first: only a delete that removed something needs a compaction.
                removed = shard
                    .count(CountRequest {
                        filter: Some(cites.clone()),
                        exact: true,
                    })
                    .backend()?;
                if removed > 0 {
                    shard
                        .update(UpdateOperation::PointOperation(
                            PointOperations::DeletePointsByFilter(cites),
                        ))
                        .backend()?;
                }
            }
            if !points.is_empty() || removed > 0 {
                no_panic("flush", || shard.flush())?;
                optimize_shard(shard)?;
            }
            Ok(removed)
        })?;
        // Before the checkpoint: a crash in between replays the batch, and the marker file
        // makes the next open finish the compaction even though the replay deletes nothing.
        if removed > 0
            || self.dir.join(COMPACT_MARKER).exists()
            || self.wal_bytes() > self.wal_floor.max(2 * state.wal_baseline)
        {
            self.compact_locked(&mut state)?;
        }
        write_checkpoint(&self.dir, next)
    }

    fn checkpoint(&self) -> Result<Offset> {
        read_checkpoint(&self.dir.join(CHECKPOINT_FILE))
    }

    fn search(&self, query: &[f32], filter: &VectorFilter, k: usize) -> Result<Vec<VectorHit>> {
        check_query_dim(query, self.dim)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                VectorInternal::Dense(query.to_vec()),
                VECTOR,
            )))),
            filter: Some(edge_filter(filter)),
            score_threshold: None,
            limit: k,
            offset: 0,
            params: Some(SearchParams {
                hnsw_ef: Some(HNSW_EF.max(k)),
                ..SearchParams::default()
            }),
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = self.with_shard(|shard| shard.query(request).backend())?;
        points
            .into_iter()
            .map(|sp| {
                let map = sp.payload.map(|p| p.0).unwrap_or_default();
                let (id, payload) = payload_from_json(&map).map_err(|e| {
                    StoreError::Backend(format!("point {:?} has a bad payload: {e}", sp.id))
                })?;
                Ok(VectorHit {
                    id,
                    score: sp.score,
                    payload,
                })
            })
            .collect()
    }

    fn count(&self, avatar: &str) -> Result<u64> {
        let request = CountRequest {
            filter: Some(edge_filter(&VectorFilter {
                avatar: avatar.to_string(),
                ..VectorFilter::default()
            })),
            exact: true,
        };
        let n = self.with_shard(|shard| shard.count(request).backend())?;
        Ok(n as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use avatar_runtime::conformance::{vector_store_suite, VECTOR_SUITE_DIM};

    #[test]
    fn edge_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors");
        vector_store_suite(&|| {
            Box::new(EdgeVectorStore::open(&path, VECTOR_SUITE_DIM).unwrap())
                as Box<dyn VectorStore>
        });
    }

    #[test]
    fn reopening_with_another_dimension_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EdgeVectorStore::open(dir.path(), 4).unwrap());
        let err = EdgeVectorStore::open(dir.path(), 5).unwrap_err();
        assert!(err.to_string().contains("dimension 4"), "{err}");
        assert!(EdgeVectorStore::open(dir.path(), 4).is_ok());
    }

    #[test]
    fn point_uuid_uses_the_hex_prefix_and_hashes_anything_else() {
        let id = "00112233445566778899aabbccddeeff0011";
        assert_eq!(
            point_uuid(id).to_string(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(point_uuid("short"), point_uuid("short"));
        assert_ne!(point_uuid("short"), point_uuid("shorter"));
        // Non-hex and non-ASCII ids do not panic.
        assert_ne!(
            point_uuid("zz".repeat(20).as_str()),
            point_uuid("é".repeat(20).as_str())
        );
    }

    #[test]
    fn payload_json_round_trips_and_rejects_foreign_payloads() {
        let p = ChunkPayload {
            avatar: "ada".into(),
            record_ids: vec!["r1".into(), "r2".into()],
            source: "file:///x".into(),
            author: None,
            timestamp: Some(-5),
            kind: "message".into(),
            text: "héllo".into(),
        };
        let m = payload_json("abc", &p);
        assert!(!m.contains_key(key::AUTHOR));
        assert_eq!(payload_from_json(&m).unwrap(), ("abc".to_string(), p));
        let mut bad = m.clone();
        bad.insert(key::TIMESTAMP.into(), serde_json::Value::from("noon"));
        assert!(payload_from_json(&bad).is_err());
        let mut bad = m;
        bad.remove(key::AVATAR);
        assert!(payload_from_json(&bad).unwrap_err().contains("avatar"));
    }

    #[test]
    fn checkpoint_file_round_trips_and_reports_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        assert_eq!(read_checkpoint(&path).unwrap(), 0);
        write_checkpoint(dir.path(), 42).unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), 42);
        std::fs::write(&path, "forty").unwrap();
        assert!(read_checkpoint(&path).is_err());
    }
}

/// Tests of forgetting on disk: every file under the store is read back as bytes.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod compact_tests {
    use super::*;
    use std::time::Instant;

    const DIM: usize = 8;

    /// splitmix64, so vectors are distinctive (no component representable as f16, which the
    /// WAL's CBOR would store in 2 bytes) and reproducible.
    fn vector(seed: u64, dim: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32 + 0.001
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    /// `i` as four letters from `base` on. Markers are letters and share no 4-byte run with
    /// each other or the payload's keys: the payload storage LZ4-compresses each payload, and
    /// a repeated run (say the digits of `i` in both text and record id) would become a
    /// back-reference, hiding the marker from a byte scan.
    fn code(i: usize, base: u8) -> String {
        format!("{i:04}")
            .bytes()
            .map(|d| char::from(base + d - b'0'))
            .collect()
    }

    /// The unique part of a point's text, what the byte scan looks for (the rest of the text
    /// may be compressed into references to other payload fields).
    fn marker(i: usize, keep: bool) -> String {
        if keep {
            format!("KEEPMARK{}", code(i, b'A'))
        } else {
            format!("ZEBRAQUARTZ{}", code(i, b'A'))
        }
    }

    fn text_of(i: usize, keep: bool) -> String {
        if keep {
            format!("kept chunk {}", marker(i, true))
        } else {
            format!("forgotten chunk {}", marker(i, false))
        }
    }

    fn record_of(i: usize, keep: bool) -> String {
        if keep {
            format!("keeprec-{}", code(i, b'k'))
        } else {
            format!("osprey{}", code(i, b'k'))
        }
    }

    /// Points 0..n; even ones are kept, odd ones get forgotten.
    fn points(n: usize, dim: usize) -> Vec<VectorPoint> {
        (0..n)
            .map(|i| {
                let keep = i % 2 == 0;
                VectorPoint {
                    id: avatar_runtime::sha256_hex(format!("chunk {i}").as_bytes()),
                    vector: vector(i as u64, dim),
                    payload: ChunkPayload {
                        avatar: "ada".into(),
                        record_ids: vec![record_of(i, keep)],
                        source: "file:///mail.mbox".into(),
                        author: Some("Ada".into()),
                        timestamp: Some(1_600_000_000 + i as i64),
                        kind: "email".into(),
                        text: text_of(i, keep),
                    },
                }
            })
            .collect()
    }

    fn filter() -> VectorFilter {
        VectorFilter {
            avatar: "ada".into(),
            ..VectorFilter::default()
        }
    }

    /// Every file under `dir` with its bytes.
    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                // Preallocated tails (the WAL's 32 MiB segments) are zeros: trimmed, since the
                // unoptimised test build scans slowly.
                let mut bytes = std::fs::read(&p).unwrap();
                const ZEROS: [u8; 4096] = [0; 4096];
                let mut end = bytes.len();
                while end >= 4096 && bytes[end - 4096..end] == ZEROS {
                    end -= 4096;
                }
                let end = bytes[..end]
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |e| e + 1);
                bytes.truncate(end);
                out.push((p.clone(), bytes));
            }
        }
        out
    }

    /// For each needle (at least 2 bytes), the files holding it. One pass per file, with a
    /// table of needles' first two bytes, since the unoptimised test build scans slowly.
    fn holders(all: &[(PathBuf, Vec<u8>)], needles: &[Vec<u8>]) -> Vec<Vec<PathBuf>> {
        let mut by_prefix: HashMap<[u8; 2], Vec<usize>> = HashMap::new();
        for (k, n) in needles.iter().enumerate() {
            by_prefix.entry([n[0], n[1]]).or_default().push(k);
        }
        let mut first = vec![false; 1 << 16];
        for p in by_prefix.keys() {
            first[usize::from(p[0]) << 8 | usize::from(p[1])] = true;
        }
        let mut out = vec![Vec::new(); needles.len()];
        for (path, bytes) in all {
            let mut hit = vec![false; needles.len()];
            for i in 0..bytes.len().saturating_sub(1) {
                if !first[usize::from(bytes[i]) << 8 | usize::from(bytes[i + 1])] {
                    continue;
                }
                for &k in &by_prefix[&[bytes[i], bytes[i + 1]]] {
                    hit[k] |= bytes[i..].starts_with(&needles[k]);
                }
            }
            for (k, h) in hit.into_iter().enumerate() {
                if h {
                    out[k].push(path.clone());
                }
            }
        }
        out
    }

    /// The byte patterns of point `i` that must vanish when it is forgotten: its text marker and
    /// record id, its input vector as the WAL's CBOR writes it (0xfa + big-endian f32 each),
    /// and the vector as stored (normalised, little-endian) in the segments.
    fn patterns(i: usize, stored: &HashMap<PointId, Vec<f32>>, p: &VectorPoint) -> Vec<Vec<u8>> {
        let cbor: Vec<u8> = p
            .vector
            .iter()
            .flat_map(|f| std::iter::once(0xfa).chain(f.to_be_bytes()))
            .collect();
        let le: Vec<u8> = stored[&PointId::Uuid(point_uuid(&p.id))]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        vec![
            marker(i, false).into_bytes(),
            record_of(i, false).into_bytes(),
            cbor,
            le,
        ]
    }

    /// Every point's vector as the shard stores it.
    fn stored_vectors(store: &EdgeVectorStore) -> HashMap<PointId, Vec<f32>> {
        store
            .with_shard(|s| {
                let (records, next) = s
                    .scroll(ScrollRequest {
                        offset: None,
                        limit: Some(100_000),
                        filter: None,
                        with_payload: Some(WithPayloadInterface::Bool(false)),
                        with_vector: WithVector::Bool(true),
                        order_by: None,
                    })
                    .backend()?;
                assert!(next.is_none());
                Ok(records
                    .into_iter()
                    .map(|r| match r.vector {
                        Some(VectorStructInternal::Named(mut m)) => match m.remove(VECTOR) {
                            Some(VectorInternal::Dense(v)) => (r.id, v),
                            other => panic!("unexpected vector {other:?}"),
                        },
                        other => panic!("unexpected vector {other:?}"),
                    })
                    .collect())
            })
            .unwrap()
    }

    /// Asserts each forgotten (odd) point's patterns are on disk (`present`) or nowhere.
    fn assert_forgotten(
        dir: &Path,
        pts: &[VectorPoint],
        stored: &HashMap<PointId, Vec<f32>>,
        present: bool,
    ) {
        let all = files(dir);
        let odd: Vec<(usize, &VectorPoint)> =
            pts.iter().enumerate().filter(|(i, _)| i % 2 == 1).collect();
        let needles: Vec<Vec<u8>> = odd
            .iter()
            .flat_map(|&(i, p)| patterns(i, stored, p))
            .collect();
        let found = holders(&all, &needles);
        for (n, files) in found.iter().enumerate() {
            let (i, k) = (odd[n / 4].0, n % 4);
            if present {
                // Where each pattern lives before compaction: proof that the scan sees it.
                let places: &[&str] = match k {
                    0 | 1 => &["payload_storage", "/wal/"],
                    2 => &["/wal/"],
                    _ => &["vector_storage"],
                };
                for place in places {
                    assert!(
                        files.iter().any(|f| f.to_string_lossy().contains(place)),
                        "pattern {k} of point {i} not found in {place}: the scan is blind \
                         ({files:?})"
                    );
                }
            } else {
                assert!(
                    files.is_empty(),
                    "pattern {k} of forgotten point {i} still in {files:?}"
                );
            }
        }
    }

    /// Kept (even) points: the text is on disk and each one is its own best hit.
    fn assert_kept(store: &EdgeVectorStore, dir: &Path, pts: &[VectorPoint]) {
        let all = files(dir);
        let kept: Vec<usize> = (0..pts.len()).step_by(2).collect();
        let texts: Vec<Vec<u8>> = kept.iter().map(|&i| marker(i, true).into_bytes()).collect();
        for (i, files) in kept.iter().zip(holders(&all, &texts)) {
            assert!(!files.is_empty(), "kept text {i} is on disk");
        }
        for (i, p) in pts.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            let hits = store.search(&p.vector, &filter(), 3).unwrap();
            assert_eq!(hits[0].id, p.id, "kept point {i} is its own nearest");
            assert_eq!(hits[0].payload.text, text_of(i, true));
            assert!(hits
                .iter()
                .all(|h| !h.payload.text.starts_with("forgotten")));
        }
    }

    fn hits(store: &EdgeVectorStore, dim: usize) -> Vec<Vec<(String, f32)>> {
        (0..12)
            .map(|q| {
                store
                    .search(&vector(1000 + q, dim), &filter(), 10)
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.id, h.score))
                    .collect()
            })
            .collect()
    }

    fn assert_same_hits(a: &[Vec<(String, f32)>], b: &[Vec<(String, f32)>]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            let ids = |v: &[(String, f32)]| v.iter().map(|h| h.0.clone()).collect::<Vec<_>>();
            assert_eq!(ids(x), ids(y));
            assert_eq!(x.len(), 10);
            for (h, g) in x.iter().zip(y) {
                assert!((h.1 - g.1).abs() < 1e-5, "score {} vs {}", h.1, g.1);
            }
        }
    }

    fn no_leftovers(dir: &Path) {
        for name in [NEW_DIR, OLD_DIR, COMPACT_MARKER] {
            assert!(!dir.join(name).exists(), "{name} left behind");
        }
    }

    /// A delete as qdrant does it: the points of `gone` records are only marked deleted.
    fn mark_deleted(store: &EdgeVectorStore, gone: Vec<String>) {
        store
            .with_shard(|s| {
                s.update(UpdateOperation::PointOperation(
                    PointOperations::DeletePointsByFilter(Filter::new_must(Condition::Field(
                        FieldCondition::new_match(field(key::RECORD_IDS), Match::from(gone)),
                    ))),
                ))
                .backend()?;
                no_panic("flush", || s.flush())
            })
            .unwrap();
    }

    fn odd_records(n: usize) -> Vec<String> {
        (1..n).step_by(2).map(|i| record_of(i, false)).collect()
    }

    #[test]
    fn forgetting_through_apply_leaves_no_bytes_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vectors");
        let pts = points(40, DIM);
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        store.apply(1, &pts, &[]).unwrap();
        let stored = stored_vectors(&store);
        assert_forgotten(&dir, &pts, &stored, true);

        store.apply(2, &[], &odd_records(40)).unwrap();
        assert_eq!(store.count("ada").unwrap(), 20);
        assert_eq!(store.checkpoint().unwrap(), 2);
        assert_forgotten(&dir, &pts, &stored, false);
        assert_kept(&store, &dir, &pts);
        no_leftovers(&dir);

        drop(store);
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        assert_eq!(store.count("ada").unwrap(), 20);
        assert_eq!(store.checkpoint().unwrap(), 2);
        assert_kept(&store, &dir, &pts);
        assert_forgotten(&dir, &pts, &stored, false);
        // Writes after a compaction still land (point versions restart in the new shard).
        let mut again = pts[..2].to_vec();
        again[0].payload.text = "rewritten after compaction".into();
        store.apply(3, &again, &[]).unwrap();
        let h = store.search(&again[0].vector, &filter(), 1).unwrap();
        assert_eq!(h[0].payload.text, "rewritten after compaction");
        assert_eq!(store.count("ada").unwrap(), 21);
    }

    #[test]
    fn compact_removes_marked_deletes_and_keeps_search_results() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vectors");
        let pts = points(60, DIM);
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        store.apply(7, &pts, &[]).unwrap();
        let stored = stored_vectors(&store);
        mark_deleted(&store, odd_records(60));
        // The leak this store fixes: marked points keep their bytes.
        assert_forgotten(&dir, &pts, &stored, true);
        let before = hits(&store, DIM);
        let wal_before = store.wal_bytes();

        store.compact().unwrap();
        assert_forgotten(&dir, &pts, &stored, false);
        assert_same_hits(&before, &hits(&store, DIM));
        assert_eq!(store.checkpoint().unwrap(), 7);
        assert_eq!(store.count("ada").unwrap(), 30);
        assert!(
            store.wal_bytes() < wal_before,
            "{} >= {wal_before}",
            store.wal_bytes()
        );
        no_leftovers(&dir);

        drop(store);
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        assert_same_hits(&before, &hits(&store, DIM));
        assert_kept(&store, &dir, &pts);
        assert_eq!(store.checkpoint().unwrap(), 7);
    }

    #[test]
    fn open_finishes_or_undoes_an_interrupted_compaction() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |name: &str, n: usize| {
            let dir = tmp.path().join(name);
            let store = EdgeVectorStore::open(&dir, DIM).unwrap();
            store.apply(1, &points(n, DIM), &[]).unwrap();
            drop(store);
            dir
        };
        // Crash between the two renames: the complete new shard wins, the old one goes.
        let dir = make("a", 4);
        let other = make("b", 6);
        std::fs::rename(dir.join(SHARD_DIR), dir.join(OLD_DIR)).unwrap();
        std::fs::rename(other.join(SHARD_DIR), dir.join(NEW_DIR)).unwrap();
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        assert_eq!(store.count("ada").unwrap(), 6);
        no_leftovers(&dir);
        drop(store);

        // Crash during the build: the half-built shard goes, the live one stays.
        let dir = make("c", 4);
        std::fs::create_dir_all(dir.join(NEW_DIR).join("segments")).unwrap();
        std::fs::write(dir.join(NEW_DIR).join("junk"), text_of(1, false)).unwrap();
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        assert_eq!(store.count("ada").unwrap(), 4);
        no_leftovers(&dir);
        drop(store);

        // Crash after the first rename with no new shard: the old one comes back.
        let dir = make("d", 4);
        std::fs::rename(dir.join(SHARD_DIR), dir.join(OLD_DIR)).unwrap();
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        assert_eq!(store.count("ada").unwrap(), 4);
        no_leftovers(&dir);
        drop(store);

        // A compaction still owed (its marker) runs at open: marked deletes leave the disk.
        let dir = tmp.path().join("e");
        let pts = points(10, DIM);
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        store.apply(1, &pts, &[]).unwrap();
        let stored = stored_vectors(&store);
        mark_deleted(&store, odd_records(10));
        drop(store);
        assert_forgotten(&dir, &pts, &stored, true);
        std::fs::write(dir.join(COMPACT_MARKER), b"").unwrap();
        let store = EdgeVectorStore::open(&dir, DIM).unwrap();
        assert_forgotten(&dir, &pts, &stored, false);
        assert_eq!(store.count("ada").unwrap(), 5);
        no_leftovers(&dir);
    }

    #[test]
    fn the_wal_stays_bounded_under_rewrites() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vectors");
        let dim = 64;
        let mut store = EdgeVectorStore::open(&dir, dim).unwrap();
        store.wal_floor = 512 << 10;
        let base = points(100, dim);
        let mut peak = 0;
        let mut shrank = false;
        let mut last = store.wal_bytes();
        for round in 0..40 {
            let batch: Vec<VectorPoint> = base
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    p.payload.text = format!("{} round {round}", p.payload.text);
                    p
                })
                .collect();
            store.apply(round + 1, &batch, &[]).unwrap();
            let wal = store.wal_bytes();
            shrank |= wal < last;
            last = wal;
            peak = peak.max(wal);
        }
        // 4000 upserts of ~0.5 KiB each would leave ~2 MiB of WAL without compaction.
        assert!(shrank, "the WAL never shrank");
        assert!(peak < 1 << 20, "WAL peaked at {peak} bytes");
        assert_eq!(store.count("ada").unwrap(), 100);
        let h = store.search(&base[0].vector, &filter(), 1).unwrap();
        assert!(
            h[0].payload.text.ends_with("round 39"),
            "{}",
            h[0].payload.text
        );
    }

    /// Timing and WAL growth for the report: `cargo test -p avatar-adapters --lib
    /// compact_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn compact_timing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vectors");
        let dim = 384;
        let store = EdgeVectorStore::open(&dir, dim).unwrap();
        let pts = points(2000, dim);
        let wal0 = store.wal_bytes();
        for (b, chunk) in pts.chunks(500).enumerate() {
            store.apply(b as u64 + 1, chunk, &[]).unwrap();
        }
        let wal1 = store.wal_bytes();
        println!(
            "WAL: {} bytes per 1000 upserts ({dim} dims, ~35-byte texts)",
            (wal1 - wal0) / 2
        );
        let t = Instant::now();
        store.compact().unwrap();
        println!(
            "compact of 2000 points: {:?}; WAL after: {} bytes",
            t.elapsed(),
            store.wal_bytes()
        );
        let t = Instant::now();
        store.apply(9, &[], &odd_records(2000)).unwrap();
        println!(
            "forget of 1000 points (delete + compact): {:?}",
            t.elapsed()
        );
        assert_eq!(store.count("ada").unwrap(), 1000);
    }
}
