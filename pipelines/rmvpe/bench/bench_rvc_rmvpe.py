"""RVC's side of `cargo bench -p avatar-rmvpe --bench f0` (run by the bench, not by hand).

    PYTHONPATH=/work/scratch/pydeps-rmvpe RVC_LIB=/work/scratch/rmvpe-whl/unpacked/rvc_python/lib \
        ~/.cache/avatar/bench-venv/bin/python pipelines/rmvpe/bench/bench_rvc_rmvpe.py \
        WEIGHTS.safetensors AUDIO.f32 RUNS THREADS

Loads the bench's random real-size weights into RVC's `E2E(4, 1, (2, 2))` (rvc-python 0.1.5's
rmvpe.py, set up as in reference/make_reference.py), times `RMVPE.infer_from_audio(audio, 0.03)`
(mel + network + decode; one warm-up, then RUNS timed runs) on the raw little-endian f32 16 kHz
file and prints one JSON line: {"median_s": ..., "runs": [...], "f0": [...]}.
"""

import json
import os
import sys
import time
import types

import numpy as np
import torch
from safetensors.torch import load_file


def main():
    weights, audio_path, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    lib = os.environ.get("RVC_LIB", "/work/scratch/rmvpe-whl/unpacked/rvc_python/lib")
    for name in ["rvc_python", "rvc_python.lib", "rvc_python.lib.jit"]:
        sys.modules[name] = types.ModuleType(name)
    sys.path.insert(0, lib)
    import rmvpe as rvc

    model = rvc.E2E(4, 1, (2, 2))
    missing, unexpected = model.load_state_dict(load_file(weights), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"weights do not fit E2E(4, 1, (2, 2)): {missing[:3]} {unexpected[:3]}")
    model.eval()

    r = rvc.RMVPE.__new__(rvc.RMVPE)
    r.is_half = False
    r.device = "cpu"
    r.mel_extractor = rvc.MelSpectrogram(False, 128, 16000, 1024, 160, None, 30, 8000)
    r.model = model
    r.cents_mapping = np.pad(20 * np.arange(360) + 1997.3794084376191, (4, 4))

    audio = np.fromfile(audio_path, dtype="<f4")
    f0 = r.infer_from_audio(audio, thred=0.03)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r.infer_from_audio(audio, thred=0.03)
        times.append(time.perf_counter() - t)
    print(json.dumps({"median_s": float(np.median(times)), "runs": times, "f0": f0.tolist()}))


if __name__ == "__main__":
    main()
