"""torchfcpe's side of `cargo bench -p avatar-fcpe --bench f0` (run by the bench, not by hand).

    PYTHONPATH=/work/scratch/pydeps-fcpe ~/.cache/avatar/bench-venv/bin/python \
        pipelines/fcpe/bench/bench_torchfcpe.py AUDIO.s16 RUNS THREADS

Times `infer(wav, 16000, decoder_mode='local_argmax', threshold=0.006)` on the raw 16-bit
little-endian 16 kHz file the bench wrote (one warm-up, then RUNS timed runs) and prints one JSON
line: {"median_s": ..., "runs": [...], "frames": ..., "voiced": ...}. torchaudio is replaced by a
stand-in as in reference/make_reference.py (no build matches torch 2.15; 16 kHz input never
resamples).
"""

import json
import sys
import time
import types

import numpy as np
import torch


def install_torchaudio_stand_in():
    class Resample:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("torchaudio stand-in: input must be 16 kHz")

    ta = types.ModuleType("torchaudio")
    tr = types.ModuleType("torchaudio.transforms")
    tr.Resample = Resample
    ta.transforms = tr
    sys.modules["torchaudio"] = ta
    sys.modules["torchaudio.transforms"] = tr


def main():
    path, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    install_torchaudio_stand_in()
    import torchfcpe

    torch.set_num_threads(threads)
    model = torchfcpe.spawn_bundled_infer_model(device="cpu")
    s16 = np.fromfile(path, dtype="<i2")
    wav = torch.from_numpy(s16.astype(np.float32) / 32768.0)[None, :, None]
    f0 = model.infer(wav, 16000, decoder_mode="local_argmax", threshold=0.006)  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f0 = model.infer(wav, 16000, decoder_mode="local_argmax", threshold=0.006)
        times.append(time.perf_counter() - t)
    f0 = f0[0, :, 0].numpy()
    print(json.dumps({
        "median_s": float(np.median(times)),
        "runs": times,
        "frames": int(len(f0)),
        "voiced": int((f0 > 0).sum()),
    }))


if __name__ == "__main__":
    main()
