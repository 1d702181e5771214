"""Check that the .pth files avatar-rvc writes (src/export.rs) load in PyTorch and RVC.

Not part of CI. How to run (from /work/main; RVC's model code as make_reference.py sets up):

  AVATAR_RVC_EXPORT_DIR=/tmp/rvc-export CARGO_TARGET_DIR=/work/target \
      cargo test -p avatar-rvc --lib export
  RVC_PY=/work/scratch/rvc-py/whl ~/.cache/avatar/bench-venv/bin/python \
      pipelines/rvc/reference/check_export.py /tmp/rvc-export

The tests leave voice_<model>.pth (save_voice: each testdata model re-exported in float16,
plus an enc_q tensor that must have been dropped) and G_test.pth (save_training_state).
For each voice: torch.load(weights_only=True) and with mmap (needs the 64-byte aligned
storages), RVC's own synthesiser built from the file's config takes the weights with
load_state_dict(strict=False), and its infer runs; its audio is compared with the same
network holding the original testdata weights, same inputs and seed.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvc_ref  # noqa: E402

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")


def webui_names(sd):
    """Applio's parametrizations names back to the weight_g/weight_v RVC's model code uses."""
    out = {}
    for k, v in sd.items():
        k = k.replace("parametrizations.weight.original0", "weight_g")
        k = k.replace("parametrizations.weight.original1", "weight_v")
        out[k] = v
    return out


def load_into(net, sd):
    res = net.load_state_dict({k: v.float() for k, v in webui_names(sd).items()}, strict=False)
    return list(res.missing_keys), list(res.unexpected_keys)


def run(net, version, f0, t=24, seed=3):
    rng = np.random.default_rng(seed)
    dim = 768 if version == "v2" else 256
    phone = torch.from_numpy(rng.standard_normal((1, t, dim)).astype(np.float32))
    pitchf = torch.from_numpy((150 + 60 * np.sin(np.arange(t) / 3.0)).astype(np.float32)).unsqueeze(0)
    pitch = torch.from_numpy(np.clip(np.arange(t) * 5 + 20, 1, 255)).long().unsqueeze(0)
    lengths = torch.tensor([t], dtype=torch.long)
    sid = torch.tensor([1], dtype=torch.long)
    torch.manual_seed(seed)
    with torch.no_grad():
        if f0:
            o = net.infer(phone, lengths, pitch, pitchf, sid)[0]
        else:
            o = net.infer(phone, lengths, sid)[0]
    return o[0, 0]


def check_voice(path, name):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    w = ckpt["weight"]
    dtypes = sorted({str(v.dtype) for v in w.values()})
    enc_q = [k for k in w if "enc_q" in k]
    print(f"{name}: keys {list(ckpt)}; weight {type(w).__name__} of {len(w)} tensors {dtypes}; "
          f"enc_q keys {len(enc_q)}")
    print(f"  config {ckpt['config']} info={ckpt['info']!r} sr={ckpt['sr']!r} "
          f"f0={ckpt['f0']!r} version={ckpt['version']!r}")
    net = rvc_ref.build(ckpt["version"], ckpt["f0"], ckpt["config"])
    missing, unexpected = load_into(net, w)
    print(f"  load_state_dict(strict=False): missing {missing} unexpected {unexpected}")
    out = run(net, ckpt["version"], ckpt["f0"])

    orig = torch.load(os.path.join(TESTDATA, name + ".pth"), map_location="cpu", weights_only=True)
    ref = rvc_ref.build(orig["version"], orig["f0"], orig["config"])
    load_into(ref, orig["weight"])
    want = run(ref, orig["version"], orig["f0"])
    print(f"  RVC infer: {tuple(out.shape)} samples, finite {bool(torch.isfinite(out).all())}, "
          f"max abs vs original weights {float((out - want).abs().max()):.3g} "
          f"(peak {float(want.abs().max()):.3g})")
    return not missing and not unexpected and not enc_q


def check_training(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    m = ckpt["model"]
    print(f"G_test.pth: keys {list(ckpt)}; model {type(m).__name__} of {len(m)} tensors "
          f"{sorted({str(v.dtype) for v in m.values()})}; iteration={ckpt['iteration']!r} "
          f"learning_rate={ckpt['learning_rate']!r} optimizer={ckpt['optimizer']!r}")
    orig = torch.load(os.path.join(TESTDATA, "v2_f0_40k.pth"), map_location="cpu", weights_only=True)
    same = all(torch.equal(m[k], v) for k, v in orig["weight"].items())
    print(f"  model tensors equal to the testdata weights they were saved from: {same}; "
          f"extra: {[k for k in m if k not in orig['weight']]}")
    net = rvc_ref.build(orig["version"], orig["f0"], orig["config"])
    missing, unexpected = load_into(net, {k: v for k, v in m.items() if v.is_floating_point()})
    print(f"  load_state_dict(strict=False): missing {missing} unexpected {unexpected}")
    return same and not missing


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rvc-export"
    ok = True
    for name in ["v2_f0_40k", "v1_f0_48k", "v2_nono_32k"]:
        ok &= check_voice(os.path.join(d, f"voice_{name}.pth"), name)
    ok &= check_training(os.path.join(d, "G_test.pth"))
    print("ALL OK" if ok else "PROBLEMS ABOVE")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
