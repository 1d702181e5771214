"""PyTorch side of `cargo bench -p avatar-rvc --bench convert`: RVC's own model code on the
weights, inputs and noise the Rust bench wrote, timed the same way.

Usage: python torch_rvc.py IN.safetensors CONFIG.json OUT.safetensors
Prints one JSON line {"seconds": wall, "cpu_seconds": process CPU time, "threads": n}. Exits 3 if torch or the RVC model code is missing.
Needs torch, safetensors and the rvc-python wheel unpacked at $RVC_PY (see
reference/make_reference.py for how to get it).
"""

import json
import os
import sys
import time

try:
    import torch
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
    import rvc_ref

    rvc_ref.rvc_models()
except Exception as e:  # noqa: BLE001 - any import problem means: skip
    print(f"SKIP: {e}")
    sys.exit(3)


def main():
    data = load_file(sys.argv[1])
    with open(sys.argv[2]) as f:
        meta = json.load(f)
    net = rvc_ref.build(meta["version"], meta["f0"], meta["config"])
    # The bench's weights are already plain (weight-norm folded).
    net.dec.remove_weight_norm()
    net.flow.remove_weight_norm()
    weights = {k[len("w."):]: v for k, v in data.items() if k.startswith("w.")}
    net.load_state_dict(weights, strict=True)

    phone = data["in.features"].unsqueeze(0)
    t = phone.shape[1]
    lengths = torch.tensor([t], dtype=torch.long)
    pitch = data["in.pitch"].long().unsqueeze(0)
    pitchf = data["in.f0"].unsqueeze(0)
    sid = torch.tensor([0], dtype=torch.long)
    draws = [data["in.noise_prior"].unsqueeze(0), data["in.noise_sine"].view(1, -1, 1)]
    orig = torch.randn_like

    def given(x, *a, **k):
        return draws.pop(0) if draws else orig(x, *a, **k)

    torch.randn_like = given
    try:
        with torch.no_grad():
            start, cpu = time.perf_counter(), time.process_time()
            audio = net.infer(phone, lengths, pitch, pitchf, sid)[0][0, 0]
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        torch.randn_like = orig
    save_file({"audio": audio.contiguous()}, sys.argv[3])
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
