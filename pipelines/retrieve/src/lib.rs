//! Ranking: fuse BM25 and vector results into one cited, record-level list.
//!
//! BM25 (tantivy) is good at exact words (names, numbers, rare terms); vectors are good at
//! meaning (a question phrased in other words). Neither score is comparable with the other,
//! so [`fuse`] combines *ranks* with reciprocal rank fusion:
//! `score = Σ wᵢ / (k0 + rankᵢ)` (Cormack et al., 2009; `k0 = 60`).
//!
//! The two searches do not even return the same things: BM25 indexes records, the vector
//! store indexes chunks (a chat session, a section) that hold several records. Fusion happens
//! at record level, because a citation points at a record: a record's vector rank is the rank
//! of the best chunk that holds it.
//!
//! RRF is good at *finding* (recall) but poor at *ordering* the top: it counts presence, so a
//! record that BM25 ranks 7th on a common word and vectors rank 9th beats the one record both
//! of whose meaning scores are the best; and chunk-level vectors cannot order the records
//! *inside* a chunk (a ten-message chat session gives ten records one vector rank). So hybrid
//! search is two-stage: [`fuse`] gathers candidates by RRF, then [`rerank`] re-orders the top
//! [`FusionConfig::rerank_depth`] by a score-aware convex combination (Bruch et al., 2023,
//! "An analysis of fusion functions for hybrid retrieval"):
//! `α · bm25 / max bm25 + (1 − α) · (chunk cosine + record cosine) / 2`, where the record
//! cosine is that of the record's *own* text (see [`rerank_text`]), embedded by the caller at
//! query time. The embedding is I/O and lives with the caller; the arithmetic is here.
//!
//! Memories the user added are special: they were written *for* the avatar, so when one is
//! relevant it is ranked ahead of everything else (see [`FusionConfig::memory_boost`]).
//!
//! The store applies filters (avatar, source, author, time, kind) before ranking; this crate
//! is pure and knows nothing of stores. [`eval`] scores rankings against a hand-made test set.

pub mod eval;
mod snippet;

pub use eval::{mrr, parse_queries, recall_at_k, Eval, EvalQuery, EvalReport, Summary};
pub use snippet::snippet_around;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::str::FromStr;

/// Errors of this crate: all are the caller's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetrieveError {
    #[error("unknown search mode `{0}` (expected bm25, vector or hybrid)")]
    UnknownMode(String),
    #[error("queries file line {line}: {message}")]
    BadQuery { line: usize, message: String },
}

/// Which rankings contribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bm25,
    Vector,
    #[default]
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Bm25, Mode::Vector, Mode::Hybrid];

    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Bm25 => "bm25",
            Mode::Vector => "vector",
            Mode::Hybrid => "hybrid",
        }
    }

    fn uses_bm25(&self) -> bool {
        matches!(self, Mode::Bm25 | Mode::Hybrid)
    }

    fn uses_vector(&self) -> bool {
        matches!(self, Mode::Vector | Mode::Hybrid)
    }
}

impl FromStr for Mode {
    type Err = RetrieveError;
    fn from_str(s: &str) -> Result<Mode, RetrieveError> {
        match s.to_ascii_lowercase().as_str() {
            "bm25" | "text" | "keyword" => Ok(Mode::Bm25),
            "vector" | "semantic" => Ok(Mode::Vector),
            "hybrid" => Ok(Mode::Hybrid),
            _ => Err(RetrieveError::UnknownMode(s.to_string())),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A memory found only by words counts as relevant within this many BM25 ranks.
const MEMORY_TOP_BM25: usize = 3;

/// How the rankings are weighed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionConfig {
    /// RRF damping constant: larger flattens the advantage of the very first ranks.
    pub k0: f64,
    pub bm25_weight: f64,
    pub vector_weight: f64,
    /// Added to the score of a relevant memory, which is also sorted ahead of every
    /// non-boosted hit whatever the value; 0 turns the memory priority off.
    pub memory_boost: f64,
    /// A memory whose cosine similarity reaches this is relevant even outside the top k
    /// (all-MiniLM-L6-v2 puts paraphrases around 0.5–0.8 and unrelated text below 0.2).
    pub memory_min_cosine: f32,
    /// Words in a snippet cut from a chunk.
    pub snippet_words: usize,
    /// α of [`rerank`]: the share of the normalised BM25 score, the rest being meaning.
    /// BM25 scores are normalised by the query's best, so even a query whose words barely
    /// match has a 1.0 somewhere; a small α keeps that from outweighing a strong cosine.
    pub rerank_bm25_weight: f64,
    /// How many fused candidates [`rerank`] re-orders: each costs one short embedding per
    /// query (about 40 ms each on a busy 2-core CPU), so keep it small but well above k;
    /// 0 turns reranking off.
    pub rerank_depth: usize,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            k0: 60.0,
            bm25_weight: 1.0,
            vector_weight: 1.0,
            memory_boost: 1.0,
            memory_min_cosine: 0.4,
            snippet_words: 40,
            rerank_bm25_weight: 0.2,
            rerank_depth: 20,
        }
    }
}

/// A BM25 hit: one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bm25Hit {
    pub record_id: String,
    pub score: f32,
    /// The index's highlighted passage, if it made one.
    pub snippet: Option<String>,
    /// The record is a memory the user added.
    pub memory: bool,
}

/// A vector hit: one chunk, which may hold several records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorHit {
    pub chunk_id: String,
    pub record_ids: Vec<String>,
    /// Cosine similarity.
    pub score: f32,
    pub text: String,
    pub memory: bool,
}

/// What the two searches returned for one query.
#[derive(Debug, Clone, Copy, Default)]
pub struct Candidates<'a> {
    /// BM25 hits, best first (the top k or more).
    pub bm25: &'a [Bm25Hit],
    /// Vector hits, best first (the top k or more).
    pub vector: &'a [VectorHit],
    /// BM25 hits over the avatar's memories only, not cut at k.
    pub memory_bm25: &'a [Bm25Hit],
    /// Vector hits over the avatar's memories only, not cut at k.
    pub memory_vector: &'a [VectorHit],
}

/// One fused, citable hit at record level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cited {
    pub record_id: String,
    /// Fused score (RRF, or [`rerank`]'s combination for the reranked hits), plus the memory
    /// boost when it applies; hits are sorted by it (relevant memories first).
    pub score: f64,
    /// 1-based rank in the BM25 list (memories merged in by score), if it was there.
    pub bm25_rank: Option<usize>,
    /// 1-based rank of the best chunk holding the record; records of one chunk share it.
    pub vector_rank: Option<usize>,
    /// The BM25 score behind `bm25_rank`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25_score: Option<f32>,
    /// Cosine of the best chunk holding the record (behind `vector_rank`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_score: Option<f32>,
    /// Cosine of the record's own text with the query, when [`rerank`] used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_cosine: Option<f32>,
    /// The matched passage: the BM25 snippet, else the best chunk cut around the query words.
    pub snippet: String,
    pub memory: bool,
    /// A relevant memory, sorted ahead of every other hit.
    #[serde(default)]
    pub boosted: bool,
}

/// Per-record evidence gathered from both lists.
#[derive(Debug, Default)]
struct Evidence {
    bm25_rank: Option<usize>,
    bm25_score: Option<f32>,
    bm25_snippet: Option<String>,
    vector_rank: Option<usize>,
    vector_score: f32,
    chunk_text: Option<String>,
    memory: bool,
    /// Order of first sight, for stable ties.
    seen: usize,
}

/// Merge a main list with the memory list by score (best first), dropping repeated keys.
fn merged<'h, H>(
    main: &'h [H],
    memories: &'h [H],
    key: impl Fn(&H) -> &str,
    score: impl Fn(&H) -> f32,
) -> Vec<&'h H> {
    let mut all: Vec<&H> = main.iter().chain(memories.iter()).collect();
    // Stable: among equal scores the main list's order wins.
    all.sort_by(|a, b| score(b).total_cmp(&score(a)));
    let mut seen = std::collections::HashSet::new();
    all.retain(|h| seen.insert(key(h).to_string()));
    all
}

/// Fuse the rankings of one query into at most `k` cited records, best first.
///
/// `query` is used only to cut snippets out of chunk text.
pub fn fuse(
    query: &str,
    mode: Mode,
    c: Candidates<'_>,
    cfg: &FusionConfig,
    k: usize,
) -> Vec<Cited> {
    let mut ev: HashMap<String, Evidence> = HashMap::new();

    if mode.uses_bm25() {
        let list = merged(c.bm25, c.memory_bm25, |h| h.record_id.as_str(), |h| h.score);
        for (i, h) in list.into_iter().enumerate() {
            let e = entry(&mut ev, &h.record_id);
            e.bm25_rank = Some(i + 1);
            e.bm25_score = Some(h.score);
            e.bm25_snippet = h.snippet.clone().filter(|s| !s.trim().is_empty());
            e.memory |= h.memory;
        }
    }
    if mode.uses_vector() {
        let list = merged(
            c.vector,
            c.memory_vector,
            |h| h.chunk_id.as_str(),
            |h| h.score,
        );
        for (i, h) in list.into_iter().enumerate() {
            for id in &h.record_ids {
                let e = entry(&mut ev, id);
                if e.vector_rank.is_none() {
                    e.vector_rank = Some(i + 1);
                    e.vector_score = h.score;
                    e.chunk_text = Some(h.text.clone());
                }
                e.memory |= h.memory;
            }
        }
    }

    let mut out: Vec<Ranked> = ev
        .into_iter()
        .map(|(id, e)| {
            let mut score = 0.0;
            if let Some(r) = e.bm25_rank {
                score += cfg.bm25_weight / (cfg.k0 + r as f64);
            }
            if let Some(r) = e.vector_rank {
                score += cfg.vector_weight / (cfg.k0 + r as f64);
            }
            // Relevant by meaning (close enough in embedding space), or a top word match when
            // there are no vectors. Merely being among the top k is not enough: with few
            // memories, an unrelated one can be there on a stop word.
            let relevant = (e.vector_rank.is_some() && e.vector_score >= cfg.memory_min_cosine)
                || (e.vector_rank.is_none()
                    && e.bm25_rank.is_some_and(|r| r <= k.min(MEMORY_TOP_BM25)));
            let boosted = e.memory && relevant && cfg.memory_boost > 0.0;
            if boosted {
                score += cfg.memory_boost;
            }
            let snippet = match (e.bm25_snippet, e.chunk_text) {
                (Some(s), _) => s,
                (None, Some(t)) => snippet_around(&t, query, cfg.snippet_words),
                (None, None) => String::new(),
            };
            let cited = Cited {
                record_id: id,
                score,
                bm25_rank: e.bm25_rank,
                vector_rank: e.vector_rank,
                bm25_score: e.bm25_score,
                vector_score: e.vector_rank.map(|_| e.vector_score),
                record_cosine: None,
                snippet,
                memory: e.memory,
                boosted,
            };
            (e.seen, cited)
        })
        .collect();
    sort_hits(&mut out);
    out.into_iter().take(k).map(|(_, c)| c).collect()
}

/// A hit with its position in the list it came from, for stable ties.
type Ranked = (usize, Cited);

/// Relevant memories first, then by score, then by the best single rank, then by `.0`
/// (order of first sight), so equal scores keep a stable order.
fn sort_hits(hits: &mut [Ranked]) {
    hits.sort_by(|(sa, a), (sb, b)| {
        b.boosted
            .cmp(&a.boosted)
            .then(b.score.total_cmp(&a.score))
            .then(best_rank(a).cmp(&best_rank(b)))
            .then(sa.cmp(sb))
    });
}

/// The text of a record that [`rerank`] compares with the query: its title (an email's
/// subject, a note's name) when the text does not already start with it, then the text. A
/// short reply ("Worse. The soup is grey.") means little alone; its subject gives it context.
pub fn rerank_text(title: Option<&str>, text: &str) -> String {
    let text = text.trim();
    match title.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if !text.starts_with(t) && !text.starts_with(&format!("# {t}")) => {
            format!("{t}\n{text}")
        }
        _ => text.to_string(),
    }
}

/// Re-order the reranked head of `fused` by score and cut to `k` (the second stage of hybrid
/// search; see the crate docs).
///
/// `cosines` holds, for the record ids the caller embedded (normally the first
/// [`FusionConfig::rerank_depth`] of `fused`), the cosine of the record's own text with the
/// query. Those hits get `α · bm25 / max bm25 + (1 − α) · (chunk + record cosine) / 2` as
/// their score and go first (relevant memories still ahead of all), in that order; the hits
/// without a cosine follow in their fused order. A record that no returned chunk holds has a
/// chunk cosine below the lowest one returned, so that bound (or its own cosine, if lower)
/// stands in for it rather than 0: a record found only by a rare word is not sunk for it.
/// `c` must be the candidates `fused` came from (for the maximum and minimum scores).
pub fn rerank(
    fused: Vec<Cited>,
    c: Candidates<'_>,
    cosines: &HashMap<String, f32>,
    cfg: &FusionConfig,
    k: usize,
) -> Vec<Cited> {
    let bm25_max = c
        .bm25
        .iter()
        .chain(c.memory_bm25)
        .map(|h| h.score)
        .fold(0.0f32, f32::max);
    let vector_min = c
        .vector
        .iter()
        .chain(c.memory_vector)
        .map(|h| h.score)
        .reduce(f32::min);
    let alpha = cfg.rerank_bm25_weight.clamp(0.0, 1.0);
    let (mut head, tail): (Vec<Ranked>, Vec<Ranked>) = fused
        .into_iter()
        .enumerate()
        .partition(|(_, h)| cosines.contains_key(&h.record_id));
    for (_, h) in &mut head {
        let Some(&own) = cosines.get(&h.record_id) else {
            continue;
        };
        let chunk = match (h.vector_score, vector_min) {
            (Some(s), _) => s,
            (None, Some(min)) => own.min(min),
            (None, None) => own,
        };
        let words = match h.bm25_score {
            Some(s) if bm25_max > 0.0 => f64::from(s / bm25_max),
            _ => 0.0,
        };
        let meaning = (f64::from(chunk) + f64::from(own)) / 2.0;
        h.record_cosine = Some(own);
        h.score = alpha * words + (1.0 - alpha) * meaning;
        if h.boosted {
            h.score += cfg.memory_boost;
        }
    }
    head.sort_by(|(sa, a), (sb, b)| {
        b.boosted
            .cmp(&a.boosted)
            .then(b.score.total_cmp(&a.score))
            .then(sa.cmp(sb))
    });
    head.into_iter()
        .chain(tail)
        .take(k)
        .map(|(_, h)| h)
        .collect()
}

fn best_rank(c: &Cited) -> usize {
    c.bm25_rank
        .into_iter()
        .chain(c.vector_rank)
        .min()
        .unwrap_or(usize::MAX)
}

fn entry<'m>(ev: &'m mut HashMap<String, Evidence>, id: &str) -> &'m mut Evidence {
    let seen = ev.len();
    ev.entry(id.to_string()).or_insert_with(|| Evidence {
        seen,
        ..Evidence::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b(id: &str, score: f32) -> Bm25Hit {
        Bm25Hit {
            record_id: id.into(),
            score,
            snippet: Some(format!("bm25 snippet of {id}")),
            memory: false,
        }
    }

    fn v(chunk: &str, ids: &[&str], score: f32) -> VectorHit {
        VectorHit {
            chunk_id: chunk.into(),
            record_ids: ids.iter().map(|s| s.to_string()).collect(),
            score,
            text: format!("chunk {chunk} text"),
            memory: false,
        }
    }

    fn mem_b(id: &str, score: f32) -> Bm25Hit {
        Bm25Hit {
            memory: true,
            ..b(id, score)
        }
    }

    fn mem_v(id: &str, score: f32) -> VectorHit {
        VectorHit {
            memory: true,
            ..v(&format!("c-{id}"), &[id], score)
        }
    }

    fn order(hits: &[Cited]) -> Vec<&str> {
        hits.iter().map(|c| c.record_id.as_str()).collect()
    }

    #[test]
    fn rrf_rewards_agreement() {
        let bm25 = [b("a", 9.0), b("b", 5.0), b("c", 1.0)];
        let vector = [
            v("c1", &["c"], 0.9),
            v("c2", &["b"], 0.8),
            v("c3", &["d"], 0.7),
        ];
        let c = Candidates {
            bm25: &bm25,
            vector: &vector,
            ..Default::default()
        };
        let cfg = FusionConfig::default();
        let hits = fuse("q", Mode::Hybrid, c, &cfg, 10);
        // c: 1/63 + 1/61 edges b: 2/62; both beat a (1/61) and d (1/63), found by one list.
        assert_eq!(order(&hits), vec!["c", "b", "a", "d"]);
        let b_hit = &hits[1];
        assert_eq!((b_hit.bm25_rank, b_hit.vector_rank), (Some(2), Some(2)));
        assert!((b_hit.score - 2.0 / 62.0).abs() < 1e-12);
        assert_eq!(b_hit.snippet, "bm25 snippet of b");
        // d came only from vectors: its snippet is the chunk's text.
        assert_eq!(hits[3].snippet, "chunk c3 text");
        assert_eq!(hits[3].bm25_rank, None);
    }

    #[test]
    fn modes_use_one_list_and_weights_tilt_hybrid() {
        let bm25 = [b("a", 9.0), b("b", 5.0)];
        let vector = [v("c1", &["b"], 0.9), v("c2", &["a"], 0.8)];
        let c = Candidates {
            bm25: &bm25,
            vector: &vector,
            ..Default::default()
        };
        let cfg = FusionConfig::default();
        assert_eq!(order(&fuse("q", Mode::Bm25, c, &cfg, 10)), vec!["a", "b"]);
        assert_eq!(order(&fuse("q", Mode::Vector, c, &cfg, 10)), vec!["b", "a"]);
        let hits = fuse("q", Mode::Vector, c, &cfg, 10);
        assert!(hits.iter().all(|h| h.bm25_rank.is_none()));
        let favour_vectors = FusionConfig {
            vector_weight: 2.0,
            ..cfg
        };
        assert_eq!(
            order(&fuse("q", Mode::Hybrid, c, &favour_vectors, 10)),
            vec!["b", "a"]
        );
        let favour_bm25 = FusionConfig {
            bm25_weight: 2.0,
            ..cfg
        };
        assert_eq!(
            order(&fuse("q", Mode::Hybrid, c, &favour_bm25, 10)),
            vec!["a", "b"]
        );
        assert_eq!(fuse("q", Mode::Hybrid, c, &cfg, 1).len(), 1);
        assert!(fuse("q", Mode::Hybrid, Candidates::default(), &cfg, 10).is_empty());
    }

    #[test]
    fn chunk_records_share_the_chunk_rank_and_keep_their_best() {
        let vector = [
            v("c1", &["m1", "m2", "m3"], 0.9),
            v("c2", &["m3", "m4"], 0.8),
        ];
        let c = Candidates {
            vector: &vector,
            ..Default::default()
        };
        let hits = fuse("q", Mode::Vector, c, &FusionConfig::default(), 10);
        assert_eq!(order(&hits), vec!["m1", "m2", "m3", "m4"]);
        let ranks: Vec<Option<usize>> = hits.iter().map(|h| h.vector_rank).collect();
        assert_eq!(ranks, vec![Some(1), Some(1), Some(1), Some(2)]);
        // A repeated chunk (from the main and the memory list) counts once.
        let again = [v("c1", &["m1"], 0.9)];
        let c = Candidates {
            vector: &again,
            memory_vector: &again,
            ..Default::default()
        };
        assert_eq!(
            fuse("q", Mode::Vector, c, &FusionConfig::default(), 10).len(),
            1
        );
    }

    #[test]
    fn relevant_memories_come_first() {
        let bm25: Vec<Bm25Hit> = (0..5)
            .map(|i| b(&format!("r{i}"), 10.0 - i as f32))
            .collect();
        let vector: Vec<VectorHit> = (0..5)
            .map(|i| v(&format!("c{i}"), &[&format!("r{i}")], 0.9 - i as f32 / 10.0))
            .collect();
        // The memory is last in BM25 among the memories' scores but has a good cosine.
        let memory_bm25 = [mem_b("mem", 1.0)];
        let memory_vector = [mem_v("mem", 0.45), mem_v("weak", 0.1)];
        let c = Candidates {
            bm25: &bm25,
            vector: &vector,
            memory_bm25: &memory_bm25,
            memory_vector: &memory_vector,
        };
        let cfg = FusionConfig::default();
        let hits = fuse("q", Mode::Hybrid, c, &cfg, 3);
        assert_eq!(order(&hits), vec!["mem", "r0", "r1"]);
        assert!(hits[0].memory);
        assert!(hits[0].score > 1.0);
        // The weak memory (cosine 0.1) is never boosted: being within the top k by rank is not
        // relevance when the vectors say it is unrelated.
        let ten = fuse("q", Mode::Hybrid, c, &cfg, 10);
        assert_eq!(order(&ten)[..2], ["mem", "r0"]);
        assert!(ten
            .iter()
            .filter(|h| h.record_id == "weak")
            .all(|h| h.score < 1.0));
        // A stricter cosine threshold keeps `mem` (rank 6 > k = 3) out of the boost.
        let strict = FusionConfig {
            memory_min_cosine: 0.5,
            ..cfg
        };
        assert_eq!(
            order(&fuse("q", Mode::Hybrid, c, &strict, 3)),
            vec!["r0", "r1", "r2"]
        );
        // Without the boost the memory competes on rank alone.
        let flat = FusionConfig {
            memory_boost: 0.0,
            ..cfg
        };
        assert_eq!(
            order(&fuse("q", Mode::Hybrid, c, &flat, 3)),
            vec!["r0", "r1", "r2"]
        );
    }

    #[test]
    fn memory_in_the_top_k_by_bm25_alone_is_boosted_in_bm25_mode() {
        let bm25 = [b("a", 9.0), b("b", 5.0)];
        let memory_bm25 = [mem_b("m", 6.0)];
        let c = Candidates {
            bm25: &bm25,
            memory_bm25: &memory_bm25,
            ..Default::default()
        };
        let hits = fuse("q", Mode::Bm25, c, &FusionConfig::default(), 2);
        assert_eq!(order(&hits), vec!["m", "a"]);
        assert_eq!(hits[0].bm25_rank, Some(2));
        // Ranked 3rd of 3 with k = 1 it is not relevant, so no boost.
        let memory_bm25 = [mem_b("m", 1.0)];
        let c = Candidates {
            bm25: &bm25,
            memory_bm25: &memory_bm25,
            ..Default::default()
        };
        assert_eq!(
            order(&fuse("q", Mode::Bm25, c, &FusionConfig::default(), 1)),
            vec!["a"]
        );
    }

    #[test]
    fn snippet_is_cut_around_the_query_for_long_chunks() {
        let mut text = "filler ".repeat(60);
        text.push_str("the caraway seed cake recipe");
        text.push_str(&" filler".repeat(60));
        let vector = [VectorHit {
            text,
            ..v("c", &["r"], 0.8)
        }];
        let c = Candidates {
            vector: &vector,
            ..Default::default()
        };
        let cfg = FusionConfig {
            snippet_words: 8,
            ..FusionConfig::default()
        };
        let hits = fuse("caraway cake", Mode::Hybrid, c, &cfg, 5);
        assert!(
            hits[0].snippet.contains("caraway seed cake"),
            "{}",
            hits[0].snippet
        );
        assert!(hits[0].snippet.starts_with("… ") && hits[0].snippet.ends_with(" …"));
        // An empty BM25 snippet falls back to the chunk.
        let bm25 = [Bm25Hit {
            snippet: Some(" ".into()),
            ..b("r", 1.0)
        }];
        let c = Candidates {
            bm25: &bm25,
            vector: &vector,
            ..Default::default()
        };
        assert!(fuse("caraway", Mode::Hybrid, c, &cfg, 5)[0]
            .snippet
            .contains("caraway"));
    }

    /// The fused head of a hybrid search for `q`, ready for [`rerank`].
    fn head<'a>(c: Candidates<'a>, cfg: &FusionConfig) -> Vec<Cited> {
        fuse("q", Mode::Hybrid, c, cfg, 30)
    }

    fn cos(pairs: &[(&str, f32)]) -> HashMap<String, f32> {
        pairs.iter().map(|(id, s)| (id.to_string(), *s)).collect()
    }

    #[test]
    fn rerank_orders_the_records_of_one_chunk_by_their_own_text() {
        // A chat session: three messages share chunk rank 1; BM25 likes m1 on a common word.
        let bm25 = [b("m1", 2.0), b("x", 1.0)];
        let vector = [v("s", &["m1", "m2", "m3"], 0.6), v("t", &["x"], 0.3)];
        let c = Candidates {
            bm25: &bm25,
            vector: &vector,
            ..Default::default()
        };
        let cfg = FusionConfig::default();
        let fused = head(c, &cfg);
        assert_eq!(order(&fused)[0], "m1", "RRF: presence in both lists wins");
        let own = cos(&[("m1", 0.1), ("m2", 0.8), ("m3", 0.3), ("x", 0.2)]);
        let hits = rerank(fused, c, &own, &cfg, 10);
        // m2: 0.8·(0.6 + 0.8)/2 = 0.56 beats m1: 0.2·1 + 0.8·(0.6 + 0.1)/2 = 0.48.
        assert_eq!(order(&hits), vec!["m2", "m1", "m3", "x"]);
        assert!((hits[0].score - 0.56).abs() < 1e-6, "{}", hits[0].score);
        assert!((hits[1].score - 0.48).abs() < 1e-6, "{}", hits[1].score);
        assert_eq!(hits[0].record_cosine, Some(0.8));
        assert_eq!(hits[0].vector_score, Some(0.6));
        assert_eq!(hits[1].bm25_score, Some(2.0));
        // Ranks are kept for the citation, whatever the new order.
        assert_eq!((hits[1].bm25_rank, hits[1].vector_rank), (Some(1), Some(1)));
        // All words (α = 1) is BM25's order again.
        let words = FusionConfig {
            rerank_bm25_weight: 1.0,
            ..cfg
        };
        assert_eq!(
            order(&rerank(head(c, &words), c, &own, &words, 2)),
            vec!["m1", "x"]
        );
    }

    #[test]
    fn a_record_found_only_by_words_is_not_sunk_by_its_missing_chunk() {
        // "Matteucci": vectors know nothing of the name, BM25 does.
        let bm25 = [b("name", 8.0)];
        let vector = [v("c1", &["a"], 0.35), v("c2", &["b"], 0.3)];
        let c = Candidates {
            bm25: &bm25,
            vector: &vector,
            ..Default::default()
        };
        let cfg = FusionConfig::default();
        let own = cos(&[("name", 0.25), ("a", 0.35), ("b", 0.3)]);
        let hits = rerank(head(c, &cfg), c, &own, &cfg, 10);
        // name: 0.2 + 0.8·(0.25 + min(0.25, 0.3))/2 = 0.4 > a: 0.8·0.35 = 0.28.
        assert_eq!(order(&hits), vec!["name", "a", "b"]);
        assert!((hits[0].score - 0.4).abs() < 1e-6, "{}", hits[0].score);
        // Its own cosine above the lowest chunk's is capped there: no chunk held it.
        let own = cos(&[("name", 0.9), ("a", 0.35), ("b", 0.3)]);
        let hits = rerank(head(c, &cfg), c, &own, &cfg, 10);
        assert!((hits[0].score - (0.2 + 0.8 * (0.9 + 0.3) / 2.0)).abs() < 1e-6);
    }

    #[test]
    fn rerank_keeps_memories_first_and_the_unembedded_tail_in_order() {
        let bm25 = [b("r0", 5.0), b("r1", 4.0), b("r2", 3.0), b("r3", 2.0)];
        let vector = [v("c0", &["r0"], 0.5)];
        let memory_vector = [mem_v("mem", 0.45)];
        let c = Candidates {
            bm25: &bm25,
            vector: &vector,
            memory_vector: &memory_vector,
            ..Default::default()
        };
        let cfg = FusionConfig::default();
        let fused = head(c, &cfg);
        assert_eq!(order(&fused), vec!["mem", "r0", "r1", "r2", "r3"]);
        // Only the first three were embedded (depth 3): r1 overtakes r0, r2 and r3 follow.
        let own = cos(&[("mem", 0.0), ("r0", 0.0), ("r1", 0.9)]);
        let hits = rerank(fused.clone(), c, &own, &cfg, 10);
        assert_eq!(order(&hits), vec!["mem", "r1", "r0", "r2", "r3"]);
        assert!(hits[0].boosted && hits[0].score > 1.0);
        assert_eq!(hits[3].record_cosine, None);
        assert_eq!(rerank(fused.clone(), c, &own, &cfg, 2).len(), 2);
        // No cosines: the fused order, cut at k.
        assert_eq!(
            order(&rerank(fused, c, &HashMap::new(), &cfg, 3)),
            vec!["mem", "r0", "r1"]
        );
    }

    #[test]
    fn rerank_text_gives_a_reply_its_subject() {
        assert_eq!(
            rerank_text(Some("Re: Fyne Court"), " Dear Ada, come. "),
            "Re: Fyne Court\nDear Ada, come."
        );
        assert_eq!(
            rerank_text(Some("Flyology"), "# Flyology\n\nI mean to fly."),
            "# Flyology\n\nI mean to fly."
        );
        assert_eq!(rerank_text(Some(" "), "text"), "text");
        assert_eq!(rerank_text(None, "text"), "text");
    }

    #[test]
    fn modes_parse_and_print() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert_eq!("Hybrid".parse::<Mode>().unwrap(), Mode::Hybrid);
        assert_eq!(Mode::default(), Mode::Hybrid);
        assert!(matches!(
            "fuzzy".parse::<Mode>(),
            Err(RetrieveError::UnknownMode(_))
        ));
        let cfg: FusionConfig = serde_json::from_str(r#"{"vector_weight": 2}"#).unwrap();
        assert_eq!(cfg.k0, 60.0);
        assert_eq!(cfg.vector_weight, 2.0);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn output_is_unique_sorted_and_at_most_k(
            bm in proptest::collection::vec((0..20u8, 0.0f32..10.0, any::<bool>()), 0..20),
            ve in proptest::collection::vec((proptest::collection::vec(0..20u8, 1..4), 0.0f32..1.0, any::<bool>()), 0..20),
            k in 1..15usize,
        ) {
            let mut bm25: Vec<Bm25Hit> = bm.iter().map(|(id, s, m)| Bm25Hit {
                record_id: format!("r{id}"), score: *s, snippet: None, memory: *m,
            }).collect();
            bm25.sort_by(|a, b| b.score.total_cmp(&a.score));
            let mut vector: Vec<VectorHit> = ve.iter().enumerate().map(|(i, (ids, s, m))| VectorHit {
                chunk_id: format!("c{i}"), record_ids: ids.iter().map(|id| format!("r{id}")).collect(),
                score: *s, text: "t".into(), memory: *m,
            }).collect();
            vector.sort_by(|a, b| b.score.total_cmp(&a.score));
            let c = Candidates { bm25: &bm25, vector: &vector, ..Default::default() };
            for mode in Mode::ALL {
                let hits = fuse("q", mode, c, &FusionConfig::default(), k);
                prop_assert!(hits.len() <= k);
                let mut ids: Vec<&str> = hits.iter().map(|h| h.record_id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), hits.len());
                for w in hits.windows(2) {
                    prop_assert!(w[0].score >= w[1].score || (w[0].memory && !w[1].memory));
                }
                for h in &hits {
                    prop_assert!(h.bm25_rank.is_some() || h.vector_rank.is_some());
                }
            }
        }

        #[test]
        fn rerank_is_a_reordering_of_the_fused_hits(
            bm in proptest::collection::vec((0..20u8, 0.0f32..10.0, any::<bool>()), 0..20),
            ve in proptest::collection::vec((proptest::collection::vec(0..20u8, 1..4), -1.0f32..1.0, any::<bool>()), 0..20),
            own in proptest::collection::vec(-1.0f32..1.0, 20),
            depth in 0..25usize,
            k in 1..15usize,
        ) {
            let bm25: Vec<Bm25Hit> = bm.iter().map(|(id, s, m)| Bm25Hit {
                record_id: format!("r{id}"), score: *s, snippet: None, memory: *m,
            }).collect();
            let vector: Vec<VectorHit> = ve.iter().enumerate().map(|(i, (ids, s, m))| VectorHit {
                chunk_id: format!("c{i}"), record_ids: ids.iter().map(|id| format!("r{id}")).collect(),
                score: *s, text: "t".into(), memory: *m,
            }).collect();
            let c = Candidates { bm25: &bm25, vector: &vector, ..Default::default() };
            let cfg = FusionConfig::default();
            let fused = fuse("q", Mode::Hybrid, c, &cfg, 40);
            let cosines: HashMap<String, f32> = fused.iter().take(depth)
                .map(|h| {
                    let n: usize = h.record_id[1..].parse().unwrap();
                    (h.record_id.clone(), own[n])
                })
                .collect();
            let hits = rerank(fused.clone(), c, &cosines, &cfg, k);
            prop_assert_eq!(hits.len(), fused.len().min(k));
            let mut ids: Vec<&str> = hits.iter().map(|h| h.record_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), hits.len());
            // Relevant memories stay ahead; the reranked head is sorted by its new score.
            for w in hits.windows(2) {
                prop_assert!(w[0].boosted || !w[1].boosted);
                if w[0].boosted == w[1].boosted && w[0].record_cosine.is_some() && w[1].record_cosine.is_some() {
                    prop_assert!(w[0].score >= w[1].score);
                }
                prop_assert!(w[0].record_cosine.is_some() || w[1].record_cosine.is_none() || w[1].boosted);
            }
        }
    }
}
