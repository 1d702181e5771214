"""Reference numbers for the avatar-rvc tests: tiny random RVC models run by RVC's own PyTorch code.

How to run (from /work/main; writes pipelines/rvc/testdata/, ~1 MB in all):

  # RVC's model definitions, from the rvc-python wheel, without its dependencies:
  mkdir -p /work/scratch/rvc-py && cd /work/scratch/rvc-py
  ~/.cache/avatar/bench-venv/bin/python -m pip download --no-deps rvc-python==0.1.5 -d .
  unzip -o rvc_python-0.1.5-py3-none-any.whl -d whl
  # faiss, to write RVC's IndexIVFFlat feature index:
  ~/.cache/avatar/bench-venv/bin/python -m pip install --no-deps --target /work/scratch/pylib faiss-cpu
  cd /work/main
  RVC_PY=/work/scratch/rvc-py/whl PYTHONPATH=/work/scratch/pylib \
      ~/.cache/avatar/bench-venv/bin/python pipelines/rvc/reference/make_reference.py

Packages: torch (CPU), numpy, safetensors (all in the bench venv), rvc-python 0.1.5
(model code only: lib/infer_pack), faiss-cpu.

Each model is saved as RVC WebUI saves a trained voice (a dict with "weight",
"config", "info", "sr", "f0", "version"): v2+pitch 40k (float32, weight_g/weight_v),
v1+pitch 48k (float16), v2 no-pitch 32k (parametrizations.weight.original0/1 names, as
newer trainers such as Applio write) and v1 no-pitch 32k (float16 + parametrizations).
The reference inference runs in float32 with exactly the weights stored in the
file (float16 weights are widened first), so the Rust side can be held to ~1e-4.
RVC draws random noise during inference; it is recorded and saved with the outputs.
"""

import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvc_ref  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")

# WebUI config list order: spec_channels, segment_size, inter_channels, hidden_channels,
# filter_channels, n_heads, n_layers, kernel_size, p_dropout, resblock,
# resblock_kernel_sizes, resblock_dilation_sizes, upsample_rates,
# upsample_initial_channel, upsample_kernel_sizes, spk_embed_dim, gin_channels, sr.
# Lists are distinct objects, as in real checkpoints (json-loaded): candle's unpickler memoises
# a list before it is filled, so a list pickled twice by reference would read back empty.
MODELS = [
    dict(name="v2_f0_40k", version="v2", f0=1, sr="40k", half=False, applio=False,
         config=[1025, 32, 8, 8, 16, 2, 2, 3, 0, "1", [3, 7, 11], [[1, 3, 5] for _ in range(3)],
                 [10, 10, 2, 2], 32, [16, 16, 4, 4], 3, 8, 40000]),
    dict(name="v1_f0_48k", version="v1", f0=1, sr="48k", half=True, applio=False,
         config=[1025, 32, 8, 8, 16, 2, 2, 3, 0, "1", [3, 7, 11], [[1, 3, 5] for _ in range(3)],
                 [10, 6, 2, 2, 2], 32, [16, 16, 4, 4, 4], 3, 8, 48000]),
    dict(name="v2_nono_32k", version="v2", f0=0, sr="32k", half=False, applio=True,
         config=[1025, 32, 8, 8, 16, 2, 2, 3, 0, "2", [3, 7, 11], [[1, 3], [1, 3], [1, 3]],
                 [10, 8, 2, 2], 32, [20, 16, 4, 4], 3, 8, 32000]),
    dict(name="v1_nono_32k", version="v1", f0=0, sr="32k", half=True, applio=True,
         config=[513, 32, 8, 8, 16, 2, 1, 3, 0, "1", [3, 5], [[1, 3, 5] for _ in range(2)],
                 [10, 8, 4], 16, [16, 16, 8], 2, 8, 32000]),
]

F0_MIN, F0_MAX = 50.0, 1100.0


def coarse(f0):
    """RVC's pitch quantisation: mel scale between 50 and 1100 Hz onto 1..255 (0 Hz -> 1)."""
    mel_min = 1127 * np.log(1 + F0_MIN / 700)
    mel_max = 1127 * np.log(1 + F0_MAX / 700)
    mel = 1127 * np.log(1 + f0 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - mel_min) * 254 / (mel_max - mel_min) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int64)


def f0_contour(t, rng):
    f0 = 150 + 80 * np.sin(np.arange(t) / 3.0) + rng.uniform(-5, 5, t)
    f0[:3] = 0
    f0[t // 2 : t // 2 + 3] = 0
    return f0.astype(np.float32)


def run_case(net, spec, t, seed):
    rng = np.random.default_rng(seed)
    dim = 768 if spec["version"] == "v2" else 256
    phone = torch.from_numpy(rng.standard_normal((1, t, dim)).astype(np.float32))
    f0 = f0_contour(t, rng)
    pitch = torch.from_numpy(coarse(f0.astype(np.float64))).unsqueeze(0)
    pitchf = torch.from_numpy(f0).unsqueeze(0)
    sid = torch.tensor([1], dtype=torch.long)
    lengths = torch.tensor([t], dtype=torch.long)
    torch.manual_seed(seed)
    with torch.no_grad(), rvc_ref.NoiseRecorder() as rec:
        if spec["f0"]:
            o, _, (z, _z_p, m_p, logs_p) = net.infer(phone, lengths, pitch, pitchf, sid)
        else:
            o, _, (z, _z_p, m_p, logs_p) = net.infer(phone, lengths, sid)
    out = {
        "phone": phone[0].contiguous(),
        "sid": sid,
        "noise_prior": rec.draws[0][0].contiguous(),
        "m_p": m_p[0].contiguous(),
        "logs_p": logs_p[0].contiguous(),
        "z": z[0].contiguous(),
        "audio": o[0, 0].contiguous(),
    }
    if spec["f0"]:
        out["pitch"] = pitch[0].contiguous()
        out["pitchf"] = pitchf[0].contiguous()
        out["noise_sine"] = rec.draws[1][0, :, 0].contiguous()
    return out


def make_models():
    for i, spec in enumerate(MODELS):
        net = rvc_ref.build(spec["version"], spec["f0"], spec["config"])
        rvc_ref.randomize(net, seed=100 + i)
        sd = rvc_ref.webui_state_dict(net, spec["half"])
        # Run with exactly the stored weights (float16 ones widened back to float32).
        net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
        if spec["applio"]:
            sd = rvc_ref.applio_names(sd)
        ckpt = {
            "weight": sd,
            "config": spec["config"],
            "info": "avatar-rvc reference: random weights",
            "sr": spec["sr"],
            "f0": spec["f0"],
            "version": spec["version"],
        }
        torch.save(ckpt, os.path.join(OUT, spec["name"] + ".pth"))
        cases = {"long": run_case(net, spec, 24, seed=7 + i)}
        if i == 0:
            cases["short"] = run_case(net, spec, 7, seed=77)
        for case, tensors in cases.items():
            save_file(tensors, os.path.join(OUT, f"{spec['name']}_{case}.safetensors"))
        print(spec["name"], {k: tuple(v.shape) for k, v in cases["long"].items()})


def make_helpers():
    """f0 quantisation, pitch shift, protect, 2x upsampling and index retrieval as RVC's pipeline does them."""
    import faiss

    rng = np.random.default_rng(5)
    f0 = np.array([0, 10, 49.9, 50, 50.1, 80, 110, 220, 440, 880, 1099, 1100, 1200, 3000, 137.5, 261.63],
                  dtype=np.float64)
    shifted = f0 * pow(2, 3 / 12)  # f0_up_key = 3
    helpers = {
        "f0": torch.from_numpy(f0),
        "coarse": torch.from_numpy(coarse(f0.copy())),
        "f0_up3": torch.from_numpy(shifted),
        "coarse_up3": torch.from_numpy(coarse(shifted.copy())),
    }

    # Feature index: RVC trains IVF(min(16*sqrt(n), n//39)),Flat with nprobe 1.
    n, dim, t = 400, 16, 12
    big = rng.standard_normal((n, dim)).astype(np.float32)
    n_ivf = min(int(16 * np.sqrt(n)), n // 39)
    index = faiss.index_factory(dim, "IVF%s,Flat" % n_ivf)
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(big)
    index.add(big)
    faiss.write_index(index, os.path.join(OUT, "features.index"))
    index = faiss.read_index(os.path.join(OUT, "features.index"))
    big_npy = index.reconstruct_n(0, index.ntotal)
    feats = rng.standard_normal((t, dim)).astype(np.float32)
    score, ix = index.search(feats, k=8)
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    retrieved = np.sum(big_npy[ix] * np.expand_dims(weight, axis=2), axis=1)
    index_rate = 0.75
    blended = retrieved * index_rate + (1 - index_rate) * feats
    helpers.update({
        "index_vectors": torch.from_numpy(big_npy),
        "index_query": torch.from_numpy(feats),
        "index_ids": torch.from_numpy(ix.astype(np.int64)),
        "index_dists": torch.from_numpy(score),
        "index_blended_075": torch.from_numpy(blended.astype(np.float32)),
    })

    # 2x upsampling (F.interpolate nearest) and protect, on the blended features.
    feats0 = torch.from_numpy(feats).unsqueeze(0)
    featsb = torch.from_numpy(blended.astype(np.float32)).unsqueeze(0)
    up = torch.nn.functional.interpolate(featsb.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
    up0 = torch.nn.functional.interpolate(feats0.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
    pitchf = torch.from_numpy(f0_contour(2 * t, rng)).unsqueeze(0)
    protect = 0.33
    pitchff = pitchf.clone()
    pitchff[pitchf > 0] = 1
    pitchff[pitchf < 1] = protect
    pitchff = pitchff.unsqueeze(-1)
    protected = up * pitchff + up0 * (1 - pitchff)
    helpers.update({
        "up": up[0].contiguous(),
        "up0": up0[0].contiguous(),
        "protect_pitchf": pitchf[0].contiguous(),
        "protected_033": protected[0].contiguous(),
    })
    save_file(helpers, os.path.join(OUT, "helpers.safetensors"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_models()
    make_helpers()
