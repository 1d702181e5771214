//! RVC's feature index: reading the faiss `IndexIVFFlat` file (`added_*.index`) and the
//! retrieval blend (k = 8 neighbours weighted by 1/d^2, mixed in with `index_rate`).
//!
//! Only the parts of the faiss binary format RVC files use are read: `IwFl` (IVF-Flat with
//! array inverted lists) and `IxF2` (flat L2, also the IVF's coarse quantiser).

use std::path::Path;

use crate::error::{Result, RvcError};

/// Neighbours RVC retrieves per frame.
pub const RVC_K: usize = 8;

/// Training features of a voice with faiss' search structure.
#[derive(Debug, Clone)]
pub struct FeatureIndex {
    dim: usize,
    /// `[ntotal, dim]` by id (what `index.reconstruct_n(0, ntotal)` returns).
    vectors: Vec<f32>,
    ivf: Option<Ivf>,
}

#[derive(Debug, Clone)]
struct Ivf {
    /// `[nlist, dim]`
    centroids: Vec<f32>,
    /// Ids per inverted list.
    lists: Vec<Vec<usize>>,
    nprobe: usize,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                RvcError::Index(format!("file ends inside {what} (offset {})", self.pos))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A count stored as int64/size_t, bounded so corrupt files cannot ask for huge buffers.
    fn count(&mut self, what: &str) -> Result<usize> {
        let n = self.i64(what)?;
        let remaining = (self.buf.len() - self.pos) as i64;
        if n < 0 || n > remaining.max(1 << 20) {
            return Err(RvcError::Index(format!("implausible {what}: {n}")));
        }
        Ok(n as usize)
    }

    fn fourcc(&mut self, what: &str) -> Result<[u8; 4]> {
        self.array(what)
    }

    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| RvcError::Index(format!("{what} too large")))?,
            what,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// `write_index_header`: d, ntotal, two dummies, is_trained, metric (+ arg for exotic metrics).
fn header(r: &mut Reader) -> Result<(usize, usize)> {
    let d = r.i32("dimension")?;
    let ntotal = r.i64("ntotal")?;
    r.i64("header padding")?;
    r.i64("header padding")?;
    r.u8("is_trained")?;
    let metric = r.i32("metric type")?;
    if metric != 1 {
        return Err(RvcError::Index(format!(
            "metric type {metric} is not L2 (RVC indexes are L2)"
        )));
    }
    if d <= 0 || ntotal < 0 {
        return Err(RvcError::Index(format!(
            "bad header: d={d}, ntotal={ntotal}"
        )));
    }
    Ok((d as usize, ntotal as usize))
}

/// `IxF2` body after the fourcc: header, then the stored vectors.
fn flat_l2(r: &mut Reader) -> Result<(usize, Vec<f32>)> {
    let (d, ntotal) = header(r)?;
    let n = r.count("flat code count")?;
    if Some(n) != d.checked_mul(ntotal) {
        return Err(RvcError::Index(format!(
            "flat index holds {n} floats, expected {ntotal} x {d}"
        )));
    }
    Ok((d, r.f32s(n, "flat vectors")?))
}

impl FeatureIndex {
    /// Exact search over plain vectors (`[n, dim]` row-major), e.g. RVC's `total_fea.npy`.
    pub fn from_vectors(vectors: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 || vectors.is_empty() || !vectors.len().is_multiple_of(dim) {
            return Err(RvcError::Index(format!(
                "{} values do not form rows of width {dim}",
                vectors.len()
            )));
        }
        Ok(Self {
            dim,
            vectors,
            ivf: None,
        })
    }

    /// Read a faiss index file as RVC writes it (`IVF<n>,Flat` or flat L2).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| RvcError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parse faiss index bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { buf: bytes, pos: 0 };
        match &r.fourcc("index type")? {
            b"IxF2" => {
                let (dim, vectors) = flat_l2(&mut r)?;
                Self::from_vectors(vectors, dim)
            }
            b"IwFl" => Self::ivf_flat(&mut r),
            other => Err(RvcError::Index(format!(
                "unsupported faiss index type {:?} (expected IwFl or IxF2)",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    fn ivf_flat(r: &mut Reader) -> Result<Self> {
        let (dim, ntotal) = header(r)?;
        // Every vector is stored in the file, so a larger count is corruption, not a reason
        // to allocate.
        if ntotal
            .checked_mul(dim * 4)
            .is_none_or(|bytes| bytes > r.buf.len())
        {
            return Err(RvcError::Index(format!(
                "header claims {ntotal} vectors of width {dim}, more than the file holds"
            )));
        }
        let nlist = r.count("nlist")?;
        let nprobe = r.count("nprobe")?.max(1);
        if &r.fourcc("quantizer type")? != b"IxF2" {
            return Err(RvcError::Index(
                "IVF quantizer is not a flat L2 index".into(),
            ));
        }
        let (qd, centroids) = flat_l2(r)?;
        if qd != dim || centroids.len() != nlist * dim {
            return Err(RvcError::Index(format!(
                "quantizer holds {} centroids of width {qd}, expected {nlist} of width {dim}",
                centroids.len() / qd.max(1)
            )));
        }
        // Direct map: type byte, then a vector of ids (and a hashtable for type 2).
        let dm_type = r.u8("direct map type")?;
        let n = r.count("direct map size")?;
        r.take(n * 8, "direct map")?;
        if dm_type == 2 {
            let n = r.count("direct map hashtable size")?;
            r.take(n * 16, "direct map hashtable")?;
        }
        if &r.fourcc("inverted lists type")? != b"ilar" {
            return Err(RvcError::Index(
                "inverted lists are not array lists (ilar)".into(),
            ));
        }
        let il_nlist = r.count("inverted list count")?;
        let code_size = r.count("code size")?;
        if il_nlist != nlist || code_size != dim * 4 {
            return Err(RvcError::Index(format!(
                "inverted lists: {il_nlist} lists of {code_size}-byte codes, expected {nlist} of {}",
                dim * 4
            )));
        }
        let mut sizes = vec![0usize; nlist];
        match &r.fourcc("list size format")? {
            b"full" => {
                let n = r.count("list sizes")?;
                if n != nlist {
                    return Err(RvcError::Index(format!("{n} list sizes for {nlist} lists")));
                }
                for s in sizes.iter_mut() {
                    *s = r.count("list size")?;
                }
            }
            b"sprs" => {
                let n = r.count("sparse list sizes")?;
                for _ in 0..n / 2 {
                    let list = r.count("list number")?;
                    let size = r.count("list size")?;
                    *sizes.get_mut(list).ok_or_else(|| {
                        RvcError::Index(format!("list number {list} >= {nlist}"))
                    })? = size;
                }
            }
            other => {
                return Err(RvcError::Index(format!(
                    "unknown list size format {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        }
        if sizes.iter().sum::<usize>() != ntotal {
            return Err(RvcError::Index(format!(
                "inverted lists hold {} vectors, header says {ntotal}",
                sizes.iter().sum::<usize>()
            )));
        }
        let mut vectors = vec![0f32; ntotal * dim];
        let mut seen = vec![false; ntotal];
        let mut lists = Vec::with_capacity(nlist);
        for &size in &sizes {
            let codes = r.f32s(size * dim, "inverted list codes")?;
            let mut ids = Vec::with_capacity(size);
            for k in 0..size {
                let id = r.i64("vector id")?;
                let id = usize::try_from(id)
                    .ok()
                    .filter(|&i| i < ntotal && !seen[i])
                    .ok_or_else(|| RvcError::Index(format!("bad or repeated vector id {id}")))?;
                seen[id] = true;
                vectors[id * dim..(id + 1) * dim].copy_from_slice(&codes[k * dim..(k + 1) * dim]);
                ids.push(id);
            }
            lists.push(ids);
        }
        Ok(Self {
            dim,
            vectors,
            ivf: Some(Ivf {
                centroids,
                lists,
                nprobe,
            }),
        })
    }

    /// An IVF-Flat index from parts already built (see [`crate::ivf::build`]): `lists` must
    /// hold every id below `vectors.len() / dim` exactly once.
    pub(crate) fn from_ivf(
        dim: usize,
        vectors: Vec<f32>,
        centroids: Vec<f32>,
        lists: Vec<Vec<usize>>,
        nprobe: usize,
    ) -> Self {
        Self {
            dim,
            vectors,
            ivf: Some(Ivf {
                centroids,
                lists,
                nprobe,
            }),
        }
    }

    /// The faiss bytes `faiss.write_index` produces for this index: `IwFl` (IVF-Flat, array
    /// inverted lists, no direct map) or `IxF2` for a flat one.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let d = self.dim;
        let mut w = Writer(Vec::with_capacity(self.vectors.len() * 4 + 1024));
        let Some(ivf) = &self.ivf else {
            w.flat_l2(d, &self.vectors)?;
            return Ok(w.0);
        };
        let nlist = ivf.lists.len();
        if ivf.centroids.len() != nlist * d
            || ivf.lists.iter().map(Vec::len).sum::<usize>() != self.len()
        {
            return Err(RvcError::Index(format!(
                "inconsistent IVF: {} centroid values and {} listed ids for {nlist} lists of \
                 width {d} and {} vectors",
                ivf.centroids.len(),
                ivf.lists.iter().map(Vec::len).sum::<usize>(),
                self.len()
            )));
        }
        w.0.extend_from_slice(b"IwFl");
        w.header(d, self.len())?;
        w.u64(nlist);
        w.u64(ivf.nprobe);
        w.flat_l2(d, &ivf.centroids)?;
        // Direct map: none (type 0) with an empty id array, as after `index.add`.
        w.0.push(0);
        w.u64(0);
        w.0.extend_from_slice(b"ilar");
        w.u64(nlist);
        w.u64(d * 4);
        // faiss stores sizes densely when more than half the lists are used, else as
        // (list, size) pairs of the non-empty ones.
        let used = ivf.lists.iter().filter(|l| !l.is_empty()).count();
        if used > nlist / 2 {
            w.0.extend_from_slice(b"full");
            w.u64(nlist);
            for l in &ivf.lists {
                w.u64(l.len());
            }
        } else {
            w.0.extend_from_slice(b"sprs");
            w.u64(used * 2);
            for (i, l) in ivf.lists.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
                w.u64(i);
                w.u64(l.len());
            }
        }
        for l in &ivf.lists {
            for &id in l {
                let row = self.vectors.get(id * d..(id + 1) * d).ok_or_else(|| {
                    RvcError::Index(format!("listed id {id} beyond {} vectors", self.len()))
                })?;
                w.f32s(row);
            }
            for &id in l {
                w.u64(id);
            }
        }
        Ok(w.0)
    }

    /// Write the index as faiss does (`faiss.read_index` and [`FeatureIndex::read`] load it).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).map_err(|source| RvcError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Number of inverted lists (`None` for a flat index).
    pub fn nlist(&self) -> Option<usize> {
        self.ivf.as_ref().map(|ivf| ivf.lists.len())
    }

    /// Ids per inverted list, in stored order (`None` for a flat index).
    pub fn lists(&self) -> Option<&[Vec<usize>]> {
        self.ivf.as_ref().map(|ivf| ivf.lists.as_slice())
    }

    /// Coarse centroids `[nlist, dim]` (`None` for a flat index).
    pub fn centroids(&self) -> Option<&[f32]> {
        self.ivf.as_ref().map(|ivf| ivf.centroids.as_slice())
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// The stored vectors by id, `[len, dim]`.
    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    /// The `k` nearest stored vectors to `query` as `(id, squared L2 distance)`, nearest
    /// first, searching the `nprobe` closest inverted lists as faiss does (all for flat).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(usize, f32)>> {
        if query.len() != self.dim {
            return Err(RvcError::Input(format!(
                "query has {} values, index width is {}",
                query.len(),
                self.dim
            )));
        }
        let d = self.dim;
        let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
        let mut consider = |id: usize| {
            let dist = l2(query, &self.vectors[id * d..(id + 1) * d]);
            if best.len() < k || best.last().is_some_and(|&(_, w)| dist < w) {
                let pos = best.partition_point(|&(_, x)| x <= dist);
                best.insert(pos, (id, dist));
                best.truncate(k);
            }
        };
        match &self.ivf {
            None => (0..self.len()).for_each(&mut consider),
            Some(ivf) => {
                let mut coarse: Vec<(usize, f32)> = ivf
                    .centroids
                    .chunks_exact(d)
                    .enumerate()
                    .map(|(i, c)| (i, l2(query, c)))
                    .collect();
                coarse.sort_by(|a, b| a.1.total_cmp(&b.1));
                for &(list, _) in coarse.iter().take(ivf.nprobe) {
                    ivf.lists[list].iter().copied().for_each(&mut consider);
                }
            }
        }
        Ok(best)
    }

    /// RVC's retrieval for `[frames, dim]` features: each frame becomes the 1/d^2-weighted
    /// mean of its 8 nearest training features, then
    /// `index_rate * retrieved + (1 - index_rate) * original`. A neighbour at distance 0
    /// (where RVC would divide by zero) takes all the weight.
    pub fn blend(&self, features: &[f32], index_rate: f32) -> Result<Vec<f32>> {
        let d = self.dim;
        if !features.len().is_multiple_of(d) {
            return Err(RvcError::Input(format!(
                "features hold {} values, not rows of width {d}",
                features.len()
            )));
        }
        let mut out = Vec::with_capacity(features.len());
        for row in features.chunks_exact(d) {
            let hits = self.search(row, RVC_K)?;
            if hits.is_empty() {
                // An empty inverted list: nothing to retrieve (RVC would produce NaN here).
                out.extend_from_slice(row);
                continue;
            }
            let exact = hits.iter().find(|&&(_, dist)| dist <= 0.0);
            let weights: Vec<(usize, f64)> = match exact {
                Some(&(id, _)) => vec![(id, 1.0)],
                None => hits
                    .iter()
                    .map(|&(id, dist)| (id, 1.0 / (f64::from(dist) * f64::from(dist))))
                    .collect(),
            };
            let total: f64 = weights.iter().map(|w| w.1).sum();
            let mut retrieved = vec![0f64; d];
            for &(id, w) in &weights {
                for (acc, &v) in retrieved
                    .iter_mut()
                    .zip(&self.vectors[id * d..(id + 1) * d])
                {
                    *acc += w / total * f64::from(v);
                }
            }
            out.extend(
                retrieved
                    .iter()
                    .zip(row)
                    .map(|(&r, &o)| index_rate * r as f32 + (1.0 - index_rate) * o),
            );
        }
        Ok(out)
    }
}

/// Little-endian faiss serialisation (the inverse of [`Reader`]).
struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: usize) {
        self.0.extend_from_slice(&(v as u64).to_le_bytes());
    }

    fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// `write_index_header` with faiss' dummy fields (both 1 << 20), trained, L2.
    fn header(&mut self, d: usize, ntotal: usize) -> Result<()> {
        let d = i32::try_from(d)
            .map_err(|_| RvcError::Index(format!("dimension {d} does not fit faiss' int")))?;
        self.0.extend_from_slice(&d.to_le_bytes());
        self.u64(ntotal);
        self.u64(1 << 20);
        self.u64(1 << 20);
        self.0.push(1);
        self.0.extend_from_slice(&1i32.to_le_bytes());
        Ok(())
    }

    /// A flat L2 index (`IxF2`) holding `vectors` (`[n, d]`).
    fn flat_l2(&mut self, d: usize, vectors: &[f32]) -> Result<()> {
        self.0.extend_from_slice(b"IxF2");
        self.header(d, vectors.len() / d.max(1))?;
        self.u64(vectors.len());
        self.f32s(vectors);
        Ok(())
    }
}

/// Squared L2 distance, summed in the order [`FeatureIndex::search`] uses (the IVF builder
/// assigns lists with it so searching a stored vector probes the list that holds it).
pub(crate) fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    /// Found by the `rvc_index` fuzz target: a flat index whose header claims d × ntotal
    /// beyond usize made the size check itself overflow.
    #[test]
    fn huge_header_counts_are_errors() {
        let mut b = b"IxF2".to_vec();
        b.extend_from_slice(&0x1000_0000i32.to_le_bytes()); // d
        b.extend_from_slice(&i64::MAX.to_le_bytes()); // ntotal
        b.extend_from_slice(&[0; 16]); // padding
        b.push(1); // is_trained
        b.extend_from_slice(&1i32.to_le_bytes()); // L2
        b.extend_from_slice(&16i64.to_le_bytes()); // code count
        b.extend_from_slice(&[0; 64]);
        assert!(matches!(FeatureIndex::parse(&b), Err(RvcError::Index(_))));
    }
}
