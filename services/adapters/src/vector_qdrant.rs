//! The distributed mode's vector store: a collection on a Qdrant server, over gRPC.
//!
//! Same data as the embedded store (point UUIDs, payload fields and indexes come from
//! `vector_edge`), so switching modes only changes where the index lives. The trait is
//! synchronous while qdrant-client is async: the store owns a current-thread tokio runtime
//! and blocks on each call (callers already run stores off their async threads).
//!
//! Every write waits for the server to apply it (`wait=true`), then the checkpoint is written
//! to the collection's metadata: a crash in between replays idempotent upserts and deletes.

use crate::vector_edge::{
    check_dims, check_query_dim, key, payload_from_json, payload_json, point_uuid,
};
use crate::OrBackend;
use avatar_runtime::{
    Offset, Result, StoreError, VectorFilter, VectorHit, VectorPoint, VectorStore,
};
use qdrant_client::qdrant::{
    value::Kind, vectors_config, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    PointStruct, QueryPointsBuilder, Range, SearchParamsBuilder, UpdateCollectionBuilder,
    UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};
use std::collections::HashMap;

/// Collection metadata key holding the checkpoint (as decimal text).
const CHECKPOINT_KEY: &str = "avatar_checkpoint";
const HNSW_EF: u64 = 128;

/// [`VectorStore`] on a Qdrant server collection.
pub struct QdrantServerStore {
    client: Qdrant,
    collection: String,
    dim: usize,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for QdrantServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantServerStore")
            .field("collection", &self.collection)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

/// The server-side filter: the same conditions as the embedded store's.
fn server_filter(f: &VectorFilter) -> Filter {
    let mut must = vec![Condition::matches(key::AVATAR, f.avatar.clone())];
    if let Some(s) = &f.source {
        must.push(Condition::matches(key::SOURCE, s.clone()));
    }
    if let Some(a) = &f.author {
        must.push(Condition::matches(key::AUTHOR, a.clone()));
    }
    if f.since.is_some() || f.until.is_some() {
        must.push(Condition::range(
            key::TIMESTAMP,
            Range {
                gte: f.since.map(|s| s as f64),
                lte: f.until.map(|u| u as f64),
                ..Range::default()
            },
        ));
    }
    if !f.kinds.is_empty() {
        must.push(
            Filter::should(
                f.kinds
                    .iter()
                    .map(|k| Condition::matches(key::KIND, k.clone())),
            )
            .into(),
        );
    }
    Filter::must(must)
}

impl QdrantServerStore {
    /// Connects to the server at `url` (gRPC, e.g. `http://localhost:6334`) and opens
    /// `collection`, creating it (cosine distance, payload indexes) when missing. Fails when
    /// the collection holds vectors of another dimension.
    pub fn connect(url: &str, collection: &str, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(StoreError::Backend("vector dimension must be > 0".into()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = Qdrant::from_url(url).build().backend()?;
        let store = Self {
            client,
            collection: collection.to_string(),
            dim,
            rt,
        };
        store.rt.block_on(store.ensure_collection())?;
        Ok(store)
    }

    async fn ensure_collection(&self) -> Result<()> {
        let c = &self.collection;
        if self.client.collection_exists(c).await.backend()? {
            let info = self.client.collection_info(c).await.backend()?;
            let size = info
                .result
                .and_then(|i| i.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| v.config)
                .and_then(|v| match v {
                    vectors_config::Config::Params(p) => Some(p.size),
                    vectors_config::Config::ParamsMap(_) => None,
                });
            return match size {
                Some(d) if d == self.dim as u64 => Ok(()),
                Some(d) => Err(StoreError::Backend(format!(
                    "collection {c} holds dimension {d}, asked for dimension {}",
                    self.dim
                ))),
                None => Err(StoreError::Backend(format!(
                    "collection {c} has named vectors: not a vector store of this version"
                ))),
            };
        }
        self.client
            .create_collection(
                CreateCollectionBuilder::new(c)
                    .vectors_config(VectorParamsBuilder::new(self.dim as u64, Distance::Cosine)),
            )
            .await
            .backend()?;
        for (name, integer) in key::INDEXED {
            let t = if integer {
                FieldType::Integer
            } else {
                FieldType::Keyword
            };
            self.client
                .create_field_index(CreateFieldIndexCollectionBuilder::new(c, name, t).wait(true))
                .await
                .backend()?;
        }
        Ok(())
    }

    async fn apply_async(
        &self,
        next: Offset,
        points: &[VectorPoint],
        delete_records: &[String],
    ) -> Result<()> {
        let c = &self.collection;
        if !points.is_empty() {
            let structs: Vec<PointStruct> = points
                .iter()
                .map(|p| {
                    PointStruct::new(
                        point_uuid(&p.id).to_string(),
                        p.vector.clone(),
                        Payload::from(payload_json(&p.id, &p.payload)),
                    )
                })
                .collect();
            self.client
                .upsert_points(UpsertPointsBuilder::new(c, structs).wait(true))
                .await
                .backend()?;
        }
        if !delete_records.is_empty() {
            let cites =
                Filter::must([Condition::matches(key::RECORD_IDS, delete_records.to_vec())]);
            self.client
                .delete_points(DeletePointsBuilder::new(c).points(cites).wait(true))
                .await
                .backend()?;
        }
        let meta = HashMap::from([(
            CHECKPOINT_KEY.to_string(),
            serde_json::Value::from(next.to_string()),
        )]);
        self.client
            .update_collection(UpdateCollectionBuilder::new(c).metadata(meta))
            .await
            .backend()?;
        Ok(())
    }

    async fn checkpoint_async(&self) -> Result<Offset> {
        let info = self
            .client
            .collection_info(&self.collection)
            .await
            .backend()?;
        let value = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.metadata.get(CHECKPOINT_KEY).cloned())
            .and_then(|v| v.kind);
        match value {
            None => Ok(0),
            Some(Kind::StringValue(s)) => s.parse().map_err(|_| {
                StoreError::Backend(format!(
                    "checkpoint {s:?} in collection metadata is corrupt"
                ))
            }),
            Some(other) => Err(StoreError::Backend(format!(
                "checkpoint in collection metadata is not text: {other:?}"
            ))),
        }
    }
}

impl VectorStore for QdrantServerStore {
    fn apply(&self, next: Offset, points: &[VectorPoint], delete_records: &[String]) -> Result<()> {
        check_dims(points, self.dim)?;
        self.rt
            .block_on(self.apply_async(next, points, delete_records))
    }

    fn checkpoint(&self) -> Result<Offset> {
        self.rt.block_on(self.checkpoint_async())
    }

    fn search(&self, query: &[f32], filter: &VectorFilter, k: usize) -> Result<Vec<VectorHit>> {
        check_query_dim(query, self.dim)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let request = QueryPointsBuilder::new(&self.collection)
            .query(query.to_vec())
            .filter(server_filter(filter))
            .limit(k as u64)
            .with_payload(true)
            .params(SearchParamsBuilder::default().hnsw_ef(HNSW_EF.max(k as u64)));
        let response = self.rt.block_on(self.client.query(request)).backend()?;
        response
            .result
            .into_iter()
            .map(|sp| {
                let map = serde_json::Map::from(Payload::from(sp.payload));
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
        let filter = server_filter(&VectorFilter {
            avatar: avatar.to_string(),
            ..VectorFilter::default()
        });
        let response = self
            .rt
            .block_on(
                self.client.count(
                    CountPointsBuilder::new(&self.collection)
                        .filter(filter)
                        .exact(true),
                ),
            )
            .backend()?;
        Ok(response.result.map_or(0, |r| r.count))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use avatar_runtime::conformance::{vector_store_suite, VECTOR_SUITE_DIM};

    /// Runs the shared suite against a real server when `QDRANT_URL` is set (see
    /// infra/qdrant.sh), in a fresh collection that is dropped afterwards.
    #[test]
    fn server_store_conforms() {
        let Ok(url) = std::env::var("QDRANT_URL") else {
            println!("skipping: QDRANT_URL not set");
            return;
        };
        let collection = format!(
            "avatar_conformance_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        vector_store_suite(&|| {
            Box::new(QdrantServerStore::connect(&url, &collection, VECTOR_SUITE_DIM).unwrap())
                as Box<dyn VectorStore>
        });
        let store = QdrantServerStore::connect(&url, &collection, VECTOR_SUITE_DIM).unwrap();
        let err = QdrantServerStore::connect(&url, &collection, VECTOR_SUITE_DIM + 1).unwrap_err();
        assert!(err.to_string().contains("dimension"), "{err}");
        store
            .rt
            .block_on(store.client.delete_collection(&collection))
            .unwrap();
    }

    #[test]
    fn filter_has_one_must_condition_per_bound() {
        let f = VectorFilter {
            avatar: "ada".into(),
            source: Some("s".into()),
            author: Some("a".into()),
            since: Some(1),
            until: None,
            kinds: vec!["email".into(), "memory".into()],
        };
        let filter = server_filter(&f);
        assert_eq!(filter.must.len(), 5);
        assert!(filter.should.is_empty());
        assert_eq!(server_filter(&VectorFilter::default()).must.len(), 1);
    }
}
