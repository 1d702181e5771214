//! Semantic memory in the embedded deployment: the candle embedder and the qdrant-edge store
//! under the data directory, and hybrid search over BM25 + vectors with citations.
//!
//! Hybrid search embeds the own text of its top fused candidates at query time and re-orders
//! them by words and meaning together ([`avatar_retrieve::rerank`]); bm25 and vector modes are
//! the plain single rankings (no rerank), so `eval retrieval` compares them honestly.

use crate::app::App;
use anyhow::{bail, Context, Result};
use avatar_adapters::EdgeVectorStore;
use avatar_retrieve::{Bm25Hit, Candidates, Cited, FusionConfig, Mode, VectorHit};
use avatar_runtime::{RecordStore, SearchIndex, StoreError, TextEmbedder, VectorFilter};
use avatar_schemas::{Record, RecordKind};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The candle embedder behind the runtime's [`TextEmbedder`] seam.
pub struct CandleEmbedder(pub avatar_embed::Embedder);

impl TextEmbedder for CandleEmbedder {
    fn embed(&self, texts: &[&str]) -> avatar_runtime::Result<Vec<Vec<f32>>> {
        self.0
            .embed(texts)
            .map_err(|e| StoreError::Backend(format!("embedding failed: {e}")))
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.0.count_tokens(text)
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn model_id(&self) -> &str {
        self.0.model_id()
    }
}

/// The embedder and its vector store, when a model is installed.
pub struct SemanticParts {
    pub embedder: CandleEmbedder,
    /// qdrant-edge in the data directory, or a Qdrant server collection (AVATAR_QDRANT_URL).
    pub store: Box<dyn avatar_runtime::VectorStore>,
    /// Record-level embeddings for reranking, by record id: a record's text never changes
    /// under its id, and an `eval` or a chat asks about the same records again and again.
    record_vectors: Mutex<HashMap<String, Vec<f32>>>,
}

impl SemanticParts {
    /// Cosine of `query` (a unit vector) with each record's [`avatar_retrieve::rerank_text`],
    /// embedding only the records not seen before in this process.
    fn record_cosines(&self, query: &[f32], records: &[&Record]) -> Result<HashMap<String, f32>> {
        let cache_lock = || {
            self.record_vectors
                .lock()
                .map_err(|_| anyhow::anyhow!("the record embedding cache is poisoned"))
        };
        let missing: Vec<&Record> = {
            let cache = cache_lock()?;
            records
                .iter()
                .copied()
                .filter(|r| !cache.contains_key(&r.id))
                .collect()
        };
        // Embedded without holding the cache: two searches may embed the same record twice,
        // which costs a little time but never blocks one search behind another's model call.
        if !missing.is_empty() {
            let texts: Vec<String> = missing
                .iter()
                .map(|r| avatar_retrieve::rerank_text(r.title.as_deref(), &r.text))
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = self.embedder.embed(&refs)?;
            if vectors.len() != missing.len() {
                bail!(
                    "the embedder returned {} vectors for {} texts",
                    vectors.len(),
                    missing.len()
                );
            }
            let mut cache = cache_lock()?;
            for (r, v) in missing.iter().zip(vectors) {
                cache.insert(r.id.clone(), v);
            }
        }
        let cache = cache_lock()?;
        Ok(records
            .iter()
            .filter_map(|r| {
                let v = cache.get(&r.id)?;
                // Both sides are L2-normalised (mean pooling + L2), so the dot is the cosine.
                let dot = v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>();
                Some((r.id.clone(), dot))
            })
            .collect())
    }
}

/// Loads the embedding model (`$AVATAR_EMBED_MODEL`, else the default model folder) and opens
/// its vector store under `DIR/vectors/<model>`. `Ok(None)` when no model is installed: search
/// then falls back to BM25 and says so.
pub fn open(data: &Path) -> Result<Option<Arc<SemanticParts>>> {
    let dir = match std::env::var_os("AVATAR_EMBED_MODEL") {
        Some(d) if d == "none" => return Ok(None),
        Some(d) => std::path::PathBuf::from(d),
        None => avatar_embed::default_model_dir().join(avatar_embed::DEFAULT_MODEL),
    };
    if !dir.join("config.json").is_file() {
        return Ok(None);
    }
    let embedder = avatar_embed::Embedder::load(&dir)
        .with_context(|| format!("cannot load the embedding model in {}", dir.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let store: Box<dyn avatar_runtime::VectorStore> = match std::env::var("AVATAR_QDRANT_URL") {
        Ok(url) if !url.is_empty() => {
            // One collection per data directory (or Kafka partition) and model: the store's
            // checkpoint is per collection, like the embedded store's is per folder.
            let collection = collection_name(data, &name);
            Box::new(
                avatar_adapters::QdrantServerStore::connect(&url, &collection, embedder.dim())
                    .with_context(|| {
                        format!("cannot open collection {collection} on the Qdrant server {url}")
                    })?,
            )
        }
        _ => {
            let store_dir = data.join("vectors").join(name);
            std::fs::create_dir_all(&store_dir)?;
            Box::new(
                EdgeVectorStore::open(&store_dir, embedder.dim()).with_context(|| {
                    format!("cannot open the vector store in {}", store_dir.display())
                })?,
            )
        }
    };
    Ok(Some(Arc::new(SemanticParts {
        embedder: CandleEmbedder(embedder),
        store,
        record_vectors: Mutex::new(HashMap::new()),
    })))
}

/// The Qdrant collection of a store folder: `avatar_` + a short hash of the folder's absolute
/// path + the model, so two data directories (or partitions) never share a checkpoint.
pub fn collection_name(store_dir: &Path, model: &str) -> String {
    let abs = std::fs::canonicalize(store_dir).unwrap_or_else(|_| store_dir.to_path_buf());
    let h = avatar_runtime::sha256_hex(abs.to_string_lossy().as_bytes());
    let model: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("avatar_{}_{model}", &h[..12])
}

/// Search filters, applied in the store queries.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub source: Option<String>,
    pub author: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Filters {
    fn admits(&self, r: &Record) -> bool {
        self.source
            .as_ref()
            .is_none_or(|s| r.source == *s || r.source.starts_with(&format!("{s}#")))
            && self
                .author
                .as_ref()
                .is_none_or(|a| r.author.as_deref() == Some(a.as_str()))
            && self
                .since
                .is_none_or(|t| r.timestamp.is_some_and(|ts| ts >= t))
            && self
                .until
                .is_none_or(|t| r.timestamp.is_some_and(|ts| ts <= t))
    }

    fn vector_filter(&self, avatar: &str, kinds: Vec<String>) -> VectorFilter {
        VectorFilter {
            avatar: avatar.to_string(),
            source: self.source.clone(),
            author: self.author.clone(),
            since: self.since.map(|t| t.timestamp()),
            until: self.until.map(|t| t.timestamp()),
            kinds,
        }
    }

    fn is_empty(&self) -> bool {
        self.source.is_none()
            && self.author.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

/// Fusion weights: the defaults, overridden by `AVATAR_BM25_WEIGHT`, `AVATAR_VECTOR_WEIGHT`,
/// `AVATAR_RRF_K0`, `AVATAR_RERANK_BM25_WEIGHT` and `AVATAR_RERANK_DEPTH` (0 turns the
/// record-level rerank of hybrid search off); tune them with `avatar eval retrieval` on your
/// own queries.
pub fn fusion_config() -> FusionConfig {
    let mut cfg = FusionConfig {
        bm25_weight: DEFAULT_BM25_WEIGHT,
        ..FusionConfig::default()
    };
    let read = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(w) = read("AVATAR_BM25_WEIGHT") {
        cfg.bm25_weight = w;
    }
    if let Some(w) = read("AVATAR_VECTOR_WEIGHT") {
        cfg.vector_weight = w;
    }
    if let Some(k0) = read("AVATAR_RRF_K0") {
        cfg.k0 = k0;
    }
    if let Some(w) = read("AVATAR_RERANK_BM25_WEIGHT") {
        cfg.rerank_bm25_weight = w;
    }
    if let Some(d) = std::env::var("AVATAR_RERANK_DEPTH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        cfg.rerank_depth = d;
    }
    cfg
}

/// BM25 counts less than meaning by default: measured on samples/eval/retrieval.jsonl.
const DEFAULT_BM25_WEIGHT: f64 = 1.0;

/// Function words match nearly every record and drown the words that matter; BM25's idf
/// only softens that. Quoted phrases and operators are left as written.
fn without_stopwords(query: &str) -> String {
    const STOP: &[&str] = &[
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "did", "do", "does", "for", "from",
        "had", "has", "have", "he", "her", "him", "his", "how", "i", "in", "is", "it", "its", "me",
        "my", "of", "on", "or", "she", "so", "that", "the", "their", "them", "they", "this", "to",
        "was", "we", "were", "what", "when", "where", "which", "who", "why", "with", "you", "your",
    ];
    if query.contains('"') {
        return query.to_string();
    }
    let kept: Vec<&str> = query
        .split_whitespace()
        .filter(|w| {
            let bare = w
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            !STOP.contains(&bare.as_str())
        })
        .collect();
    if kept.is_empty() {
        query.to_string()
    } else {
        kept.join(" ")
    }
}

/// One hit with the record it cites.
pub struct Hit {
    pub cited: Cited,
    pub record: Record,
}

/// BM25 candidates over-fetch when filters apply, since tantivy's side filters afterwards.
const FILTER_OVERFETCH: usize = 10;
/// Memories are always candidates: fetch this many of them regardless of k.
const MEMORY_CANDIDATES: usize = 20;

/// Search `avatar`'s records in `mode`, returning at most `k` cited hits, best first.
pub fn search(
    app: &App,
    avatar: &str,
    query: &str,
    mode: Mode,
    k: usize,
    filters: &Filters,
) -> Result<Vec<Hit>> {
    search_with(
        &|| Ok(app),
        app.semantic.as_deref(),
        avatar,
        query,
        mode,
        k,
        filters,
    )
}

/// [`search`] for a shared data directory: `lock` is taken only for the store reads, while the
/// embedding of the query and of the rerank candidates (the slow part, ~10–100 ms) runs
/// outside it, so concurrent searches of a server overlap instead of queueing on one lock.
pub fn search_with<G: std::ops::Deref<Target = App>>(
    lock: &dyn Fn() -> Result<G>,
    semantic: Option<&SemanticParts>,
    avatar: &str,
    query: &str,
    mode: Mode,
    k: usize,
    filters: &Filters,
) -> Result<Vec<Hit>> {
    let wants_vectors = mode != Mode::Bm25;
    let mode = match (wants_vectors, semantic) {
        (true, None) if mode == Mode::Vector => bail!(
            "vector search needs the embedding model: run `infra/fetch-models.sh` (or set AVATAR_EMBED_MODEL to a BERT-family model folder)"
        ),
        (true, None) => {
            eprintln!("note: no embedding model installed (run infra/fetch-models.sh): searching by words only");
            Mode::Bm25
        }
        _ => mode,
    };
    let fetch = if filters.is_empty() {
        k.max(1) * 2
    } else {
        k.max(1) * FILTER_OVERFETCH
    };
    // The query's vector first, before the lock.
    let query_vector = match (mode != Mode::Bm25, semantic) {
        (true, Some(sem)) => Some(
            sem.embedder
                .embed(&[query])?
                .into_iter()
                .next()
                .context("the embedder returned no vector")?,
        ),
        _ => None,
    };
    let app = lock()?;
    let mut bm25 = Vec::new();
    let mut memory_bm25 = Vec::new();
    if mode != Mode::Vector {
        for h in app.index.search(
            avatar,
            &without_stopwords(query),
            fetch.max(MEMORY_CANDIDATES * 2),
        )? {
            let Some(r) = app.records.get_of(avatar, &h.record_id)? else {
                continue;
            };
            if !filters.admits(&r) {
                continue;
            }
            let hit = Bm25Hit {
                record_id: h.record_id,
                score: h.score,
                snippet: Some(h.snippet),
                memory: r.kind == RecordKind::Memory,
            };
            if hit.memory {
                memory_bm25.push(hit);
            } else if bm25.len() < fetch {
                bm25.push(hit);
            }
        }
    }
    let mut vector = Vec::new();
    let mut memory_vector = Vec::new();
    if let (Some(q), Some(sem)) = (&query_vector, semantic) {
        let to_hit = |h: avatar_runtime::VectorHit| VectorHit {
            chunk_id: h.id,
            record_ids: h.payload.record_ids,
            score: h.score,
            text: h.payload.text,
            memory: h.payload.kind == "memory",
        };
        vector = sem
            .store
            .search(q, &filters.vector_filter(avatar, vec![]), fetch)?
            .into_iter()
            .map(to_hit)
            .collect();
        memory_vector = sem
            .store
            .search(
                q,
                &filters.vector_filter(avatar, vec!["memory".into()]),
                MEMORY_CANDIDATES,
            )?
            .into_iter()
            .map(to_hit)
            .collect();
    }
    let cfg = fusion_config();
    let rerank = match (mode, semantic, query_vector) {
        (Mode::Hybrid, Some(sem), Some(q)) if cfg.rerank_depth > 0 => Some((sem, q)),
        _ => None,
    };
    let depth = match rerank {
        Some(_) => k.max(cfg.rerank_depth),
        None => k,
    };
    let candidates = Candidates {
        bm25: &bm25,
        vector: &vector,
        memory_bm25: &memory_bm25,
        memory_vector: &memory_vector,
    };
    let cited = avatar_retrieve::fuse(query, mode, candidates, &cfg, depth);
    let mut records = HashMap::with_capacity(cited.len());
    for c in &cited {
        if let Some(record) = app.records.get_of(avatar, &c.record_id)? {
            records.insert(c.record_id.clone(), record);
        }
    }
    drop(app);
    let cited = match rerank {
        Some((sem, q)) => {
            let head: Vec<&Record> = cited
                .iter()
                .take(cfg.rerank_depth)
                .filter_map(|c| records.get(&c.record_id))
                .collect();
            let cosines = sem.record_cosines(&q, &head)?;
            avatar_retrieve::rerank(cited, candidates, &cosines, &cfg, k)
        }
        None => cited,
    };
    Ok(cited
        .into_iter()
        .filter_map(|c| {
            let record = records.remove(&c.record_id)?;
            Some(Hit { cited: c, record })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_differ_per_folder_and_are_valid_names() {
        let a = collection_name(Path::new("/srv/a"), "all-MiniLM-L6-v2");
        let b = collection_name(Path::new("/srv/b"), "all-MiniLM-L6-v2");
        assert_ne!(a, b);
        assert_eq!(a, collection_name(Path::new("/srv/a"), "all-MiniLM-L6-v2"));
        assert!(a.starts_with("avatar_") && a.ends_with("_all_minilm_l6_v2"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
}
