//! The embedded vector store: a qdrant-edge shard in the data directory.
//!
//! qdrant-edge is the Qdrant engine in-process (HNSW, payload indexes, filtered search), so
//! `avatar up` gets the same search semantics as a Qdrant server with nothing installed.
//! Filters run inside the shard's query (an avatar never sees another's points, and `k` hits
//! are `k` matching ones). The checkpoint is a small file beside the shard, written after the
//! shard is flushed: a crash in between replays a batch whose upserts and filter-deletes are
//! idempotent, so nothing is lost or duplicated.
//!
//! Layout of the store directory: `shard/` (qdrant-edge's own files) and `checkpoint`.
//! The payload and point-id conventions here are shared with the Qdrant server store, so both
//! hold the same data for the same log.

use crate::{sync_dir, temp_name, OrBackend};
use avatar_runtime::{
    ChunkPayload, Offset, Result, StoreError, VectorFilter, VectorHit, VectorPoint, VectorStore,
};
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition, CountRequest, Distance, EdgeConfigBuilder, EdgeOptimizersConfig, EdgeShard,
    EdgeVectorParamsBuilder, FieldCondition, Filter, JsonPath, Match, NamedQuery, Payload,
    PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations, PointOperations,
    PointStructPersisted, QueryEnum, QueryRequest, Range, ScoringQuery, SearchParams,
    UpdateOperation, VectorInternal, VectorStructInternal, VectorStructPersisted,
    WithPayloadInterface, WithVector,
};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Runs a qdrant-edge call that panics instead of returning errors (0.7.2's `flush` does on
/// I/O failure) and turns the panic into a [`StoreError`].
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| StoreError::Backend(format!("qdrant-edge panicked during {what}")))
}

/// [`VectorStore`] on an embedded qdrant-edge shard.
pub struct EdgeVectorStore {
    dir: PathBuf,
    dim: usize,
    shard: EdgeShard,
    /// Serialises writers: qdrant-edge's `flush` must not race another update or optimize.
    write: Mutex<()>,
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
    pub fn open(dir: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(StoreError::Backend("vector dimension must be > 0".into()));
        }
        let shard_dir = dir.join(SHARD_DIR);
        std::fs::create_dir_all(&shard_dir)?;
        let config_exists = shard_dir.join("edge_config.json").exists();
        let shard = if config_exists {
            let shard = EdgeShard::load(&shard_dir, None).backend()?;
            let stored = shard.config().vectors.get(VECTOR).map(|v| v.size);
            match stored {
                Some(d) if d == dim => shard,
                Some(d) => {
                    return Err(StoreError::Backend(format!(
                        "vector store {} holds dimension {d}, asked for dimension {dim}",
                        dir.display()
                    )))
                }
                None => {
                    return Err(StoreError::Backend(format!(
                        "{} is not a vector store of this version (no {VECTOR:?} vector)",
                        shard_dir.display()
                    )))
                }
            }
        } else {
            let config = EdgeConfigBuilder::new()
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
                .build();
            let shard = EdgeShard::new(&shard_dir, config).backend()?;
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
            shard
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            dim,
            shard,
            write: Mutex::new(()),
        })
    }

    /// Builds HNSW indexes of segments that grew past qdrant's indexing threshold and merges
    /// small segments. qdrant-edge has no background optimiser, so [`VectorStore::apply`]
    /// calls this after each write; a call with nothing to do is cheap.
    pub fn optimize(&self) -> Result<bool> {
        let _g = self
            .write
            .lock()
            .map_err(|_| StoreError::Backend("vector store lock poisoned".into()))?;
        self.optimize_locked()
    }

    fn optimize_locked(&self) -> Result<bool> {
        let changed = self.shard.optimize().backend()?;
        if changed {
            no_panic("flush", || self.shard.flush())?;
        }
        Ok(changed)
    }

    /// Size and shape of the store (for status and benchmarks).
    pub fn stats(&self) -> EdgeStats {
        let info = self.shard.info();
        EdgeStats {
            points: info.points_count,
            indexed_vectors: info.indexed_vectors_count,
            segments: info.segments_count,
        }
    }
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
        let _g = self
            .write
            .lock()
            .map_err(|_| StoreError::Backend("vector store lock poisoned".into()))?;
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
            self.shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
                ))
                .backend()?;
        }
        if !delete_records.is_empty() {
            let cites = Filter::new_must(Condition::Field(FieldCondition::new_match(
                field(key::RECORD_IDS),
                Match::from(delete_records.to_vec()),
            )));
            self.shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePointsByFilter(cites),
                ))
                .backend()?;
        }
        if !points.is_empty() || !delete_records.is_empty() {
            no_panic("flush", || self.shard.flush())?;
            self.optimize_locked()?;
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
        let points = self.shard.query(request).backend()?;
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
        let n = self
            .shard
            .count(CountRequest {
                filter: Some(edge_filter(&VectorFilter {
                    avatar: avatar.to_string(),
                    ..VectorFilter::default()
                })),
                exact: true,
            })
            .backend()?;
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
