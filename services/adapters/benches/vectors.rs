//! Vector store benchmark (issue 6): 100 000 clustered, normalised 384-dim vectors in the
//! embedded qdrant-edge store; insert throughput, query latency p50/p95 over 200 queries with
//! an avatar filter, and recall@10 against exact brute-force search on the same data.
//!
//! Run: `cargo bench -p avatar-adapters --bench vectors` (sizes: `VECTORS_N`, `VECTORS_QUERIES`).
//! Exits non-zero when recall@10 is below 0.95, so it doubles as a quality gate.

use avatar_adapters::EdgeVectorStore;
use avatar_runtime::{ChunkPayload, VectorFilter, VectorPoint, VectorStore};
use std::time::Instant;

const DIM: usize = 384;
const CLUSTERS: usize = 200;
const BATCH: usize = 1000;
const K: usize = 10;
const MIN_RECALL: f64 = 0.95;

/// splitmix64: a tiny deterministic generator, so runs are comparable without a rand crate.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f32 {
        let u = self.uniform().max(1e-12);
        let v = self.uniform();
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// A point near a random cluster centre: centre + isotropic noise of comparable norm, so
/// clusters overlap and neighbours are not trivially the centre's members.
fn near(rng: &mut Rng, centres: &[Vec<f32>], noise: f32) -> Vec<f32> {
    let c = &centres[(rng.next_u64() % centres.len() as u64) as usize];
    let scale = noise / (DIM as f32).sqrt();
    let mut v: Vec<f32> = c.iter().map(|x| x + scale * rng.normal()).collect();
    normalise(&mut v);
    v
}

/// Chunk ids are content hashes in the pipeline; the store derives point UUIDs from their
/// first 16 bytes, so the benchmark's ids must be hashes too.
fn chunk_id(i: usize) -> String {
    avatar_runtime::sha256_hex(i.to_string().as_bytes())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("vectors: benchmark runs only under `cargo bench`");
        return Ok(());
    }
    let n = env_usize("VECTORS_N", 100_000);
    let queries = env_usize("VECTORS_QUERIES", 200);
    let mut rng = Rng(0x5EED);
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| rng.normal()).collect();
            normalise(&mut c);
            c
        })
        .collect();
    // 70% of the chunks are ada's, the rest split between two other avatars: the filter
    // keeps a realistic majority, and the others' points must never come back.
    let avatar = |i: usize| match i % 10 {
        0..=6 => "ada",
        7 | 8 => "bob",
        _ => "cy",
    };
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| near(&mut rng, &centres, 1.0)).collect();

    let tmp = tempfile::tempdir()?;
    let store = EdgeVectorStore::open(tmp.path(), DIM)?;
    let start = Instant::now();
    for (b, chunk) in vectors.chunks(BATCH).enumerate() {
        let points: Vec<VectorPoint> = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = b * BATCH + j;
                VectorPoint {
                    id: chunk_id(i),
                    vector: v.clone(),
                    payload: ChunkPayload {
                        avatar: avatar(i).into(),
                        record_ids: vec![format!("r{i}")],
                        source: "file:///bench".into(),
                        author: None,
                        timestamp: Some(1_600_000_000 + i as i64),
                        kind: "message".into(),
                        text: format!("chunk {i}"),
                    },
                }
            })
            .collect();
        store.apply(b as u64 + 1, &points, &[])?;
        if (b + 1) % 20 == 0 {
            eprintln!(
                "  {} inserted, {:.1} s",
                (b + 1) * BATCH,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let insert_s = start.elapsed().as_secs_f64();
    let stats = store.stats();
    println!(
        "insert: {n} vectors in {insert_s:.1} s = {:.0} vectors/s (batches of {BATCH}, \
         flush + optimise per batch); {} points, {} in HNSW segments, {} segments; \
         on disk {:.0} MiB",
        n as f64 / insert_s,
        stats.points,
        stats.indexed_vectors,
        stats.segments,
        dir_size(tmp.path()) as f64 / (1 << 20) as f64
    );

    let filter = VectorFilter {
        avatar: "ada".into(),
        ..VectorFilter::default()
    };
    let mut latencies = Vec::with_capacity(queries);
    let mut recall_sum = 0.0;
    for _ in 0..queries {
        let q = near(&mut rng, &centres, 1.0);
        let t = Instant::now();
        let hits = store.search(&q, &filter, K)?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        if hits.iter().any(|h| h.payload.avatar != "ada") {
            return Err("avatar filter leaked another avatar's point".into());
        }
        let mut exact: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| avatar(*i) == "ada")
            .map(|(i, v)| (dot(&q, v), i))
            .collect();
        exact.select_nth_unstable_by(K - 1, |a, b| b.0.total_cmp(&a.0));
        let truth: Vec<String> = exact[..K].iter().map(|(_, i)| chunk_id(*i)).collect();
        let found = hits.iter().filter(|h| truth.contains(&h.id)).count();
        recall_sum += found as f64 / K as f64;
    }
    latencies.sort_by(f64::total_cmp);
    let recall = recall_sum / queries as f64;
    println!(
        "query (k={K}, avatar filter, {} of {n} points match): p50 {:.2} ms, p95 {:.2} ms \
         over {queries} queries",
        store.count("ada")?,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95)
    );
    println!("recall@{K} against exact search: {recall:.4} (target >= {MIN_RECALL})");
    if recall < MIN_RECALL {
        return Err(format!("recall@{K} {recall:.4} below {MIN_RECALL}").into());
    }
    Ok(())
}
