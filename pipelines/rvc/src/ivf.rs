//! Building a faiss-compatible IVF-Flat feature index from training features (k-means), as RVC does.
//!
//! RVC WebUI's `train_index`: above 200 000 rows the features are first reduced to 10 000
//! mini-batch k-means centres; then `IVF{n_ivf},Flat` with
//! `n_ivf = min(16 sqrt(n), n / 39)` is trained (faiss: 25 Lloyd iterations on at most 256
//! points per centroid), every row is added to the list of its nearest centroid, and the file
//! is saved as `added_IVF{n_ivf}_Flat_nprobe_1_{name}_{version}.index`. RVC shuffles the rows
//! first; here ids stay in input order (retrieval does not depend on ids).
//!
//! Distances for k-means go through one matmul per block (`|x|^2 - 2 x.c + |c|^2`), which is
//! what makes 10 000 centres × 768 dims tractable on a few cores; the final list assignment
//! re-checks near-ties with the exact distance [`FeatureIndex::search`] uses.

use candle_core::{Device, Tensor};

use crate::config::Version;
use crate::error::{Result, RvcError};
use crate::index::{l2, FeatureIndex};
use crate::rng::Rng;

/// How the index is built. [`Default`] is RVC's behaviour.
#[derive(Debug, Clone)]
pub struct IvfOptions {
    /// More rows than this are first reduced by mini-batch k-means (RVC: 200 000).
    pub kmeans_threshold: usize,
    /// Centres the reduction keeps (RVC: 10 000).
    pub kmeans_centres: usize,
    /// Rows per mini-batch step. RVC uses 256 × CPU count; fixed here so the result does not
    /// depend on the machine.
    pub minibatch_size: usize,
    /// Mini-batch steps: a fixed budget instead of sklearn's early stopping, so the cost is
    /// bounded (the default, 300 × 1024 rows, updates each of 10 000 centres ~30 times).
    pub minibatch_steps: usize,
    /// Lloyd iterations training the IVF centroids (faiss: 25).
    pub iterations: usize,
    /// IVF training subsamples to this many rows per centroid (faiss: 256).
    pub max_points_per_centroid: usize,
    /// Seed for every random choice (sampling, initial centres, mini-batches).
    pub seed: u64,
}

impl Default for IvfOptions {
    fn default() -> Self {
        Self {
            kmeans_threshold: 200_000,
            kmeans_centres: 10_000,
            minibatch_size: 1024,
            minibatch_steps: 300,
            iterations: 25,
            max_points_per_centroid: 256,
            seed: 0x5256_4321,
        }
    }
}

/// RVC's list count for `rows` training rows: `min(int(16 sqrt(n)), n // 39)`, at least 1.
pub fn n_ivf(rows: usize) -> usize {
    ((16.0 * (rows as f64).sqrt()) as usize)
        .min(rows / 39)
        .max(1)
}

/// RVC's file name for the finished index, e.g. `added_IVF256_Flat_nprobe_1_alice_v2.index`.
pub fn rvc_index_name(n_ivf: usize, name: &str, version: Version) -> String {
    format!(
        "added_IVF{n_ivf}_Flat_nprobe_1_{name}_{}.index",
        version.as_str()
    )
}

/// Build RVC's retrieval index from all training feature rows (`[n, dim]`, row-major): reduce
/// by k-means above the threshold, train `n_ivf` centroids, fill the inverted lists
/// (nprobe 1).
pub fn build(rows: &[f32], dim: usize, opts: &IvfOptions) -> Result<FeatureIndex> {
    let n = check_rows(rows, dim)?;
    if opts.iterations == 0 || opts.max_points_per_centroid == 0 {
        return Err(RvcError::Input(
            "IVF training needs at least one iteration and one point per centroid".into(),
        ));
    }
    let mut rng = Rng::new(opts.seed);
    let vectors = if n > opts.kmeans_threshold && opts.kmeans_centres < n {
        minibatch_kmeans(rows, dim, opts, &mut rng)?
    } else {
        rows.to_vec()
    };
    let n = vectors.len() / dim;
    let nlist = n_ivf(n);
    let centroids = lloyd(
        &vectors,
        dim,
        nlist,
        opts.iterations,
        opts.max_points_per_centroid,
        &mut rng,
    )?;
    let mut lists = vec![Vec::new(); nlist];
    for (id, list) in assign_exact(&vectors, dim, &centroids)?
        .into_iter()
        .enumerate()
    {
        lists[list].push(id);
    }
    Ok(FeatureIndex::from_ivf(dim, vectors, centroids, lists, 1))
}

/// Reduce `rows` to `opts.kmeans_centres` centres with mini-batch k-means (sklearn's update:
/// each centre is the running mean of every row ever assigned to it, starting from a random
/// row).
fn minibatch_kmeans(
    rows: &[f32],
    dim: usize,
    opts: &IvfOptions,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let n = check_rows(rows, dim)?;
    let k = opts.kmeans_centres;
    if k == 0 || k > n || opts.minibatch_size == 0 {
        return Err(RvcError::Input(format!(
            "cannot reduce {n} rows to {k} centres in batches of {}",
            opts.minibatch_size
        )));
    }
    let mut centres = gather(rows, dim, &rng.distinct(n, k));
    let mut counts = vec![0f64; k];
    let mut batch = vec![0f32; opts.minibatch_size * dim];
    for _ in 0..opts.minibatch_steps {
        let ids: Vec<usize> = (0..opts.minibatch_size).map(|_| rng.below(n)).collect();
        for (dst, &id) in batch.chunks_exact_mut(dim).zip(&ids) {
            dst.copy_from_slice(&rows[id * dim..(id + 1) * dim]);
        }
        let nearest = assign(&batch, dim, &centres)?;
        // Rows grouped by centre, so only the centres this batch touched are updated.
        let mut order: Vec<usize> = (0..nearest.len()).collect();
        order.sort_by_key(|&i| nearest[i].0);
        let mut sum = vec![0f64; dim];
        for group in order.chunk_by(|&a, &b| nearest[a].0 == nearest[b].0) {
            let c = nearest[group[0]].0;
            sum.fill(0.0);
            for &i in group {
                for (s, &v) in sum.iter_mut().zip(&batch[i * dim..(i + 1) * dim]) {
                    *s += f64::from(v);
                }
            }
            let total = counts[c] + group.len() as f64;
            for (v, &s) in centres[c * dim..(c + 1) * dim].iter_mut().zip(&sum) {
                *v = ((f64::from(*v) * counts[c] + s) / total) as f32;
            }
            counts[c] = total;
        }
    }
    Ok(centres)
}

/// faiss-style Lloyd k-means: subsample to `max_points_per_centroid × k` rows, start from `k`
/// distinct random rows, `iterations` rounds of assign + mean; an empty cluster takes half
/// of the largest one (its centroid, nudged apart).
fn lloyd(
    rows: &[f32],
    dim: usize,
    k: usize,
    iterations: usize,
    max_points_per_centroid: usize,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let n = check_rows(rows, dim)?;
    if k == 0 || k > n {
        return Err(RvcError::Input(format!(
            "cannot train {k} centroids on {n} rows"
        )));
    }
    let sampled;
    let data = match k.checked_mul(max_points_per_centroid) {
        Some(cap) if cap < n => {
            let mut ids = rng.distinct(n, cap);
            ids.sort_unstable();
            sampled = gather(rows, dim, &ids);
            &sampled[..]
        }
        _ => rows,
    };
    let m = data.len() / dim;
    let mut centroids = gather(data, dim, &rng.distinct(m, k));
    for _ in 0..iterations {
        let nearest = assign(data, dim, &centroids)?;
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (x, &(c, _)) in data.chunks_exact(dim).zip(&nearest) {
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                *s += f64::from(v);
            }
        }
        for c in (0..k).filter(|&c| counts[c] > 0) {
            let inv = 1.0 / counts[c] as f64;
            for (v, &s) in centroids[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&sums[c * dim..(c + 1) * dim])
            {
                *v = (s * inv) as f32;
            }
        }
        split_empty(&mut centroids, &mut counts, dim);
    }
    Ok(centroids)
}

/// Give each empty cluster half of the currently largest one: copy its centroid and push
/// the two copies apart by a relative 1/1024 in opposite directions.
fn split_empty(centroids: &mut [f32], counts: &mut [usize], dim: usize) {
    const EPS: f32 = 1.0 / 1024.0;
    for empty in 0..counts.len() {
        if counts[empty] > 0 {
            continue;
        }
        let Some(big) = (0..counts.len()).max_by_key(|&c| (counts[c], usize::MAX - c)) else {
            return;
        };
        if counts[big] < 2 {
            return;
        }
        for j in 0..dim {
            let v = centroids[big * dim + j];
            let step = if j % 2 == 0 { EPS } else { -EPS } * (v.abs() + 1e-6);
            centroids[empty * dim + j] = v + step;
            centroids[big * dim + j] = v - step;
        }
        counts[empty] = counts[big] / 2;
        counts[big] -= counts[empty];
    }
}

/// Nearest centroid and squared distance for each row, via `x.c^T` matmuls in blocks.
/// Ties go to the lower centroid number.
fn assign(rows: &[f32], dim: usize, centroids: &[f32]) -> Result<Vec<(usize, f32)>> {
    let mut out = Vec::with_capacity(rows.len() / dim);
    scores(rows, dim, centroids, |_, xn, s, cn| {
        let (best, v) = argmin(s, cn);
        out.push((best, (xn + v).max(0.0)));
    })?;
    Ok(out)
}

/// The list each row goes to: the centroid nearest by [`l2`] (what the search probes),
/// with the matmul scores only narrowing down the candidates.
fn assign_exact(rows: &[f32], dim: usize, centroids: &[f32]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(rows.len() / dim);
    scores(rows, dim, centroids, |x, xn, s, cn| {
        let (best, v) = argmin(s, cn);
        // Rounding of |x|^2 - 2 x.c + |c|^2 is far below this margin.
        let margin = 1e-4 * (xn.abs() + cn[best].abs()) + f32::MIN_POSITIVE;
        let mut pick = (best, l2(x, &centroids[best * dim..(best + 1) * dim]));
        for (c, (&sc, &n)) in s.iter().zip(cn).enumerate() {
            if c != best && n - 2.0 * sc <= v + margin {
                let d = l2(x, &centroids[c * dim..(c + 1) * dim]);
                if d < pick.1 || (d == pick.1 && c < pick.0) {
                    pick = (c, d);
                }
            }
        }
        out.push(pick.0);
    })?;
    Ok(out)
}

/// `|c|^2 - 2 x.c` minimum over centroids, lowest index on ties.
fn argmin(dots: &[f32], cn: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (c, (&s, &n)) in dots.iter().zip(cn).enumerate() {
        let v = n - 2.0 * s;
        if v < best.1 {
            best = (c, v);
        }
    }
    best
}

/// Calls `f(row, |row|^2, row.c for every centroid, |c|^2 for every centroid)` per row.
fn scores(
    rows: &[f32],
    dim: usize,
    centroids: &[f32],
    mut f: impl FnMut(&[f32], f32, &[f32], &[f32]),
) -> Result<()> {
    let k = centroids.len() / dim;
    let cn: Vec<f32> = centroids.chunks_exact(dim).map(norm2).collect();
    let ct = Tensor::from_slice(centroids, (k, dim), &Device::Cpu)?
        .t()?
        .contiguous()?;
    // About 16 MiB of scores per block.
    let block = ((1 << 22) / k).max(1);
    for chunk in rows.chunks(block * dim) {
        let m = chunk.len() / dim;
        let x = Tensor::from_slice(chunk, (m, dim), &Device::Cpu)?;
        let dots = x.matmul(&ct)?.flatten_all()?.to_vec1::<f32>()?;
        for (row, s) in chunk.chunks_exact(dim).zip(dots.chunks_exact(k)) {
            f(row, norm2(row), s, &cn);
        }
    }
    Ok(())
}

fn norm2(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum()
}

fn gather(rows: &[f32], dim: usize, ids: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &i in ids {
        out.extend_from_slice(&rows[i * dim..(i + 1) * dim]);
    }
    out
}

/// Row count, or why `rows` is not usable training data.
fn check_rows(rows: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || !rows.len().is_multiple_of(dim) {
        return Err(RvcError::Input(format!(
            "{} feature values do not form rows of width {dim}",
            rows.len()
        )));
    }
    if rows.is_empty() {
        return Err(RvcError::Index(
            "no training features to build an index from".into(),
        ));
    }
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(RvcError::Input(format!(
            "feature row {} holds a non-finite value ({})",
            i / dim,
            rows[i]
        )));
    }
    Ok(rows.len() / dim)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Clustered rows: `clusters` random centres, points scattered around them.
    fn blobs(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut unit = move || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let centres: Vec<f32> = (0..clusters * dim).map(|_| 8.0 * unit()).collect();
        let mut rows = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = i % clusters;
            for j in 0..dim {
                rows.push(centres[c * dim + j] + unit());
            }
        }
        rows
    }

    #[test]
    fn n_ivf_follows_rvc() {
        assert_eq!(n_ivf(10_000), 256);
        assert_eq!(n_ivf(100_000), 2564);
        assert_eq!(n_ivf(1_000_000), 16_000);
        assert_eq!(n_ivf(10), 1);
        assert_eq!(
            rvc_index_name(256, "alice", Version::V2),
            "added_IVF256_Flat_nprobe_1_alice_v2.index"
        );
    }

    #[test]
    fn ivf_round_trips_through_faiss_bytes() {
        let dim = 16;
        let rows = blobs(2000, dim, 12, 1);
        let index = build(&rows, dim, &IvfOptions::default()).unwrap();
        assert_eq!(index.nlist(), Some(n_ivf(2000)));
        assert_eq!(index.vectors(), &rows[..]);
        let back = FeatureIndex::parse(&index.to_bytes().unwrap()).unwrap();
        assert_eq!(back.dim(), dim);
        assert_eq!(back.vectors(), index.vectors());
        assert_eq!(back.lists(), index.lists());
        assert_eq!(back.centroids(), index.centroids());
        // Every id is in exactly one list.
        let mut ids: Vec<usize> = back.lists().unwrap().iter().flatten().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..2000).collect::<Vec<_>>());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(rvc_index_name(51, "t", Version::V1));
        index.write(&path).unwrap();
        assert_eq!(FeatureIndex::read(&path).unwrap().vectors(), &rows[..]);
    }

    #[test]
    fn ivf_sparse_list_sizes_round_trip() {
        // Most lists empty: faiss stores (list, size) pairs ("sprs") instead of all sizes.
        let dim = 2;
        let vectors = vec![0.0, 0.0, 1.0, 1.0, 5.0, 5.0];
        let centroids: Vec<f32> = (0..8).flat_map(|i| [i as f32, i as f32]).collect();
        let lists = vec![
            vec![0],
            vec![1],
            vec![],
            vec![],
            vec![],
            vec![2],
            vec![],
            vec![],
        ];
        let index = FeatureIndex::from_ivf(dim, vectors.clone(), centroids, lists, 1);
        let bytes = index.to_bytes().unwrap();
        assert!(bytes.windows(4).any(|w| w == b"sprs"));
        let back = FeatureIndex::parse(&bytes).unwrap();
        assert_eq!(back.lists(), index.lists());
        assert_eq!(back.vectors(), &vectors[..]);
    }

    #[test]
    fn ivf_flat_index_round_trips() {
        let index = FeatureIndex::from_vectors(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).unwrap();
        let bytes = index.to_bytes().unwrap();
        assert_eq!(&bytes[..4], b"IxF2");
        let back = FeatureIndex::parse(&bytes).unwrap();
        assert_eq!((back.dim(), back.vectors()), (3, index.vectors()));
        assert_eq!(back.nlist(), None);
    }

    #[test]
    fn ivf_search_with_nprobe_1_finds_stored_points() {
        let dim = 32;
        let rows = blobs(3000, dim, 40, 3);
        let index = build(&rows, dim, &IvfOptions::default()).unwrap();
        let index = FeatureIndex::parse(&index.to_bytes().unwrap()).unwrap();
        for id in (0..3000).step_by(7) {
            let hits = index.search(&rows[id * dim..(id + 1) * dim], 1).unwrap();
            assert_eq!(hits[0].1, 0.0, "row {id}");
            assert_eq!(
                &index.vectors()[hits[0].0 * dim..][..dim],
                &rows[id * dim..][..dim]
            );
        }
    }

    #[test]
    fn ivf_reduction_above_threshold() {
        let dim = 8;
        let rows = blobs(5000, dim, 30, 4);
        let opts = IvfOptions {
            kmeans_threshold: 4000,
            kmeans_centres: 600,
            minibatch_size: 256,
            minibatch_steps: 40,
            ..IvfOptions::default()
        };
        let index = build(&rows, dim, &opts).unwrap();
        assert_eq!(index.len(), 600);
        assert_eq!(index.nlist(), Some(n_ivf(600)));
        // Below the threshold nothing is reduced.
        let small = build(&rows[..4000 * dim], dim, &opts).unwrap();
        assert_eq!(small.len(), 4000);
        // The centres stay near the data: each is close to some row's cluster.
        for c in index.vectors().chunks_exact(dim) {
            let nearest = rows
                .chunks_exact(dim)
                .map(|r| l2(r, c))
                .fold(f32::INFINITY, f32::min);
            assert!(nearest < dim as f32, "centre far from data: {nearest}");
        }
    }

    #[test]
    fn ivf_kmeans_is_deterministic_for_a_seed() {
        let dim = 8;
        let rows = blobs(3000, dim, 20, 5);
        let opts = IvfOptions {
            kmeans_threshold: 1000,
            kmeans_centres: 200,
            minibatch_size: 128,
            minibatch_steps: 30,
            ..IvfOptions::default()
        };
        let a = build(&rows, dim, &opts).unwrap();
        let b = build(&rows, dim, &opts).unwrap();
        assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
        let c = build(&rows, dim, &IvfOptions { seed: 7, ..opts }).unwrap();
        assert_ne!(a.vectors(), c.vectors());
        let l1 = lloyd(&rows, dim, 20, 25, 256, &mut Rng::new(9)).unwrap();
        let l2_ = lloyd(&rows, dim, 20, 25, 256, &mut Rng::new(9)).unwrap();
        assert_eq!(l1, l2_);
    }

    #[test]
    fn ivf_lloyd_converges_to_cluster_means() {
        // After 25 rounds on well separated blobs Lloyd has settled: every centroid is the
        // mean of the rows nearest to it, and none is empty.
        let dim = 6;
        let k = 12;
        let rows = blobs(1200, dim, 5, 6);
        let cents = lloyd(&rows, dim, k, 25, 256, &mut Rng::new(1)).unwrap();
        let nearest = assign(&rows, dim, &cents).unwrap();
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (r, &(c, _)) in rows.chunks_exact(dim).zip(&nearest) {
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(r) {
                *s += f64::from(v);
            }
        }
        for c in 0..k {
            assert!(counts[c] > 0, "centroid {c} is empty");
            for j in 0..dim {
                let mean = sums[c * dim + j] / counts[c] as f64;
                assert!((mean - f64::from(cents[c * dim + j])).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn ivf_rejects_bad_input() {
        let opts = IvfOptions::default();
        assert!(matches!(build(&[], 4, &opts), Err(RvcError::Index(_))));
        assert!(matches!(
            build(&[0.0; 10], 4, &opts),
            Err(RvcError::Input(_))
        ));
        let mut rows = vec![0.5f32; 40];
        rows[13] = f32::NAN;
        let e = build(&rows, 4, &opts).unwrap_err();
        assert!(e.to_string().contains("row 3"), "{e}");
    }

    /// Writes an index and its rows for `reference/check_ivf_faiss.py` (set `IVF_CHECK_DIR`).
    #[test]
    #[ignore = "writes files for the faiss check script"]
    fn ivf_write_sample_for_faiss() {
        let Ok(dir) = std::env::var("IVF_CHECK_DIR") else {
            return;
        };
        let dir = std::path::Path::new(&dir);
        for (name, n, dim, clusters) in [("v2", 20_000, 768, 60), ("v1", 3000, 256, 40)] {
            let rows = blobs(n, dim, clusters, 11);
            let index = build(&rows, dim, &IvfOptions::default()).unwrap();
            let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("{name}_rows.f32")), bytes).unwrap();
            index.write(dir.join(format!("{name}.index"))).unwrap();
        }
    }
}
