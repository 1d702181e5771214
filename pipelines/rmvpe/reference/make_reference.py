"""Reference data for avatar-rmvpe's tests, computed by RVC's own RMVPE code (rvc-python 0.1.5).

How to run (from /work/main; PyTorch comes from the bench venv, librosa from a --target folder):

    pip download --no-deps rvc-python==0.1.5 -d /work/scratch/rmvpe-whl
    unzip -o -q /work/scratch/rmvpe-whl/rvc_python-0.1.5-py3-none-any.whl -d /work/scratch/rmvpe-whl/unpacked
    ~/.cache/avatar/bench-venv/bin/python -m pip install --no-deps --target /work/scratch/pydeps-rmvpe \
        librosa lazy_loader numba llvmlite soxr audioread decorator joblib msgpack pooch \
        typing_extensions platformdirs requests
    PYTHONPATH=/work/scratch/pydeps-rmvpe RVC_LIB=/work/scratch/rmvpe-whl/unpacked/rvc_python/lib \
        ~/.cache/avatar/bench-venv/bin/python pipelines/rmvpe/reference/make_reference.py

Writes pipelines/rmvpe/testdata/:
  tiny_rmvpe.pt   state dict of a small random E2E, saved as RVC saves rmvpe.pt (torch.save of the dict)
  reference.pt    input audio, RVC's log-mel, the network's 360-bin salience and decoded F0
                  (at threshold 0.03 and at a high threshold so some frames are unvoiced)

The model is RVC's E2E with fewer encoder levels, channels and blocks (the constructor allows it);
its BiGRU is RVC's BiGRU class with hidden 16 instead of 256 (E2E hard-codes 256, which alone
would be ~4 MB of weights) and two layers, so the Rust side must infer sizes from the weights.
"""

import os
import sys
import types

import numpy as np
import torch

RVC_LIB = os.environ.get("RVC_LIB", "/work/scratch/rmvpe-whl/unpacked/rvc_python/lib")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")

# rmvpe.py imports `rvc_python.lib.jit` (only for its TorchScript path) and the package's
# __init__ imports the whole app; stub the package so only rmvpe.py itself is loaded.
for name in ["rvc_python", "rvc_python.lib", "rvc_python.lib.jit"]:
    sys.modules[name] = types.ModuleType(name)
sys.path.insert(0, RVC_LIB)
import rmvpe as rvc  # noqa: E402


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Small random weights and non-trivial BatchNorm statistics, so folding is exercised."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / np.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, torch.nn.GRU):
                for name, p in m.named_parameters():
                    p.copy_(0.3 * torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[-1]))


def build_tiny(gen: torch.Generator) -> torch.nn.Module:
    model = rvc.E2E(2, 1, (2, 2), en_de_layers=3, inter_layers=1, in_channels=1, en_out_channels=4)
    model.fc[0] = rvc.BiGRU(3 * 128, 16, 2)
    model.fc[1] = torch.nn.Linear(32, 360)
    randomise(model, gen)
    return model.eval()


def signal(sr: int = 16000, seconds: float = 1.5) -> np.ndarray:
    """A glide 110 -> 330 Hz with five harmonics, a little deterministic noise (so no mel band
    sits at the log clamp), and the last 0.2 s quieter."""
    t = np.arange(int(sr * seconds)) / sr
    f = 110.0 * 3.0 ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
    rng = np.random.default_rng(7)
    x = x + 0.003 * rng.standard_normal(len(t))
    x[t > seconds - 0.2] *= 0.05
    return x.astype(np.float32)


def main() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = build_tiny(gen)
    os.makedirs(OUT, exist_ok=True)
    model_path = os.path.join(OUT, "tiny_rmvpe.pt")
    torch.save(model.state_dict(), model_path)

    # RVC's RMVPE wrapper builds E2E(4, 1, (2, 2)) itself; build the pieces it uses directly.
    r = rvc.RMVPE.__new__(rvc.RMVPE)
    r.is_half = False
    r.device = "cpu"
    r.mel_extractor = rvc.MelSpectrogram(False, 128, 16000, 1024, 160, None, 30, 8000)
    r.model = model
    cents_mapping = 20 * np.arange(360) + 1997.3794084376191
    r.cents_mapping = np.pad(cents_mapping, (4, 4))

    audio = signal()
    with torch.no_grad():
        mel = r.mel_extractor(torch.from_numpy(audio).unsqueeze(0), center=True)
        hidden = r.mel2hidden(mel).squeeze(0).numpy()
    f0 = r.decode(hidden, thred=0.03)
    f0_ref = r.infer_from_audio(audio, thred=0.03)
    assert np.array_equal(f0, f0_ref)
    # A threshold between two neighbouring frame peaks near the median, at the widest gap, so
    # about half the frames are unvoiced and no peak sits within float error of it.
    peaks = np.sort(hidden.max(axis=1))
    lo, hi = len(peaks) // 4, 3 * len(peaks) // 4
    i = lo + int(np.argmax(np.diff(peaks[lo:hi + 1])))
    high = float((peaks[i] + peaks[i + 1]) / 2)
    f0_high = r.decode(hidden, thred=high)

    torch.save(
        {
            "audio": torch.from_numpy(audio),
            "mel": mel.squeeze(0).contiguous(),
            "salience": torch.from_numpy(hidden.copy()),
            "f0": torch.from_numpy(f0.astype(np.float32)),
            "high_threshold": torch.tensor([high], dtype=torch.float32),
            "f0_high": torch.from_numpy(f0_high.astype(np.float32)),
        },
        os.path.join(OUT, "reference.pt"),
    )
    print("mel", tuple(mel.shape), "salience", hidden.shape, "voiced@high", int((f0_high > 0).sum()),
          "margin", float(peaks[i + 1] - peaks[i]) / 2)
    print("salience range", hidden.min(), hidden.max(), "f0 range", f0.min(), f0.max())


if __name__ == "__main__":
    main()
