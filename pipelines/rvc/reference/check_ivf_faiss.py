"""Check by hand that real faiss reads the IVF-Flat indexes `avatar_rvc::ivf::build` writes.

Not run in CI. Needs faiss-cpu and numpy, e.g.
    PYTHONPATH=/work/scratch/pylib ~/.cache/avatar/bench-venv/bin/python \
        pipelines/rvc/reference/check_ivf_faiss.py
It runs the ignored Rust test `ivf_write_sample_for_faiss` (release build) to write sample
indexes plus their rows, then per sample:
  * `faiss.read_index`: type, ntotal, nlist, nprobe;
  * `reconstruct_n(0, ntotal)` (what RVC's inference calls) equals the rows bit for bit;
  * searching stored rows with nprobe 1 finds them at distance 0;
  * a faiss IndexIVFFlat given the same centroids and the same rows serialises to the same
    bytes (format identical, and faiss assigns every row to the same list);
  * the mean squared distance of rows to their list centroid next to faiss' own training
    (`index_factory("IVF{n},Flat")` + train), as a k-means quality check.
"""

import os
import subprocess
import sys
import tempfile
import time

import faiss
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SAMPLES = {"v2": 768, "v1": 256}


def write_samples(out_dir):
    env = dict(os.environ, IVF_CHECK_DIR=out_dir)
    env.setdefault("CARGO_TARGET_DIR", "/work/target")
    t = time.time()
    subprocess.run(
        ["cargo", "test", "--release", "-q", "-p", "avatar-rvc", "--lib",
         "ivf_write_sample_for_faiss", "--", "--ignored"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )
    print(f"rust build + write: {time.time() - t:.1f} s (includes compiling)")


def quantisation_error(rows, centroids):
    q = faiss.IndexFlatL2(rows.shape[1])
    q.add(centroids)
    d, _ = q.search(rows, 1)
    return float(d.mean())


def check(out_dir, name, dim):
    rows = np.fromfile(os.path.join(out_dir, f"{name}_rows.f32"), dtype="<f4").reshape(-1, dim)
    path = os.path.join(out_dir, f"{name}.index")
    index = faiss.read_index(path)
    ivf = faiss.extract_index_ivf(index)
    print(f"[{name}] {type(index).__name__}: d={index.d} ntotal={index.ntotal} "
          f"nlist={ivf.nlist} nprobe={ivf.nprobe} rows={rows.shape[0]}")
    assert isinstance(index, faiss.IndexIVFFlat)
    assert index.ntotal == rows.shape[0] and index.d == dim and ivf.nprobe == 1
    n_ivf = min(int(16 * np.sqrt(rows.shape[0])), rows.shape[0] // 39)
    assert ivf.nlist == n_ivf, (ivf.nlist, n_ivf)

    rec = index.reconstruct_n(0, index.ntotal)
    assert np.array_equal(rec, rows), "reconstruct_n differs from the rows"
    print(f"[{name}] reconstruct_n(0, ntotal) == rows: True")

    probe = rows[::37]
    dist, ids = index.search(probe, 8)
    exact = np.all(dist[:, 0] == 0) and np.array_equal(rows[ids[:, 0]], probe)
    full = int((ids[:, 7] >= 0).sum())  # a list with under 8 rows leaves -1 ids
    print(f"[{name}] search of {len(probe)} stored rows (k=8, nprobe=1): nearest at distance 0: "
          f"{exact}; {full} got all 8 neighbours")
    assert exact

    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    ours = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, ivf.nlist)
    ours.quantizer.add(centroids)
    ours.is_trained = True
    ours.nprobe = 1
    ours.add(rows)
    same = bytes(faiss.serialize_index(ours)) == open(path, "rb").read()
    print(f"[{name}] faiss with the same centroids + rows serialises to identical bytes: {same}")
    if not same:
        _, faiss_list = ivf.quantizer.search(rows, 1)
        ours_list = np.empty(len(rows), dtype=np.int64)
        for l in range(ivf.nlist):
            ours_list[faiss.rev_swig_ptr(ivf.invlists.get_ids(l), ivf.invlists.list_size(l))] = l
        print(f"[{name}]   rows assigned to a different list than faiss': "
              f"{int((faiss_list[:, 0] != ours_list).sum())}")

    t = time.time()
    ref = faiss.index_factory(dim, f"IVF{n_ivf},Flat")
    ref.train(rows)
    ref_centroids = faiss.extract_index_ivf(ref).quantizer.reconstruct_n(0, n_ivf)
    print(f"[{name}] mean squared distance to list centroid: ours "
          f"{quantisation_error(rows, centroids):.4f}, faiss' training "
          f"{quantisation_error(rows, ref_centroids):.4f} (faiss trained in {time.time() - t:.1f} s)")


def main():
    with tempfile.TemporaryDirectory() as out_dir:
        write_samples(out_dir)
        for name, dim in SAMPLES.items():
            check(out_dir, name, dim)
    print(f"faiss {faiss.__version__}: all checks passed")


if __name__ == "__main__":
    sys.exit(main())
