"""Reference numbers for avatar-fcpe from torchfcpe itself (the same fcpe_c_v001.pt).

How to run (from the repository root; takes ~10 s on a CPU):

    pip install --no-deps --target /work/scratch/pydeps-fcpe \
        /work/scratch/wheels/torchfcpe-0.0.4-py3-none-any.whl einops 'local-attention==1.8.6'
    (torchfcpe imports local_attention but does not use it for these models; releases after
    1.8.x import `hyper_connections`, which would be one more package)
    PYTHONPATH=/work/scratch/pydeps-fcpe ~/.cache/avatar/bench-venv/bin/python \
        pipelines/fcpe/reference/make_reference.py

The venv has torch 2.15 (CPU), numpy and scipy. torchfcpe's wheel is the one `pip download
torchfcpe==0.0.4` gives; its mel module imports `torchaudio.transforms.Resample`, and no torchaudio
build matches torch 2.15, so a stand-in module is installed below that fails if it is ever called.
It never is: every signal is handed to torchfcpe at 16 kHz, its model rate, so its resampler is
skipped. Both sides must see the same 16 kHz samples, so the speech recordings
(/work/shared/reference/speech_{a,b}.wav, 22.05 kHz) are resampled here (scipy resample_poly
320/441), rounded to 16-bit and written to pipelines/fcpe/testdata/*.s16 (raw little-endian); the
synthetic glide is written the same way. torchfcpe gets exactly those 16-bit values / 32768.

Writes pipelines/fcpe/testdata/reference.json: per signal the raw torchfcpe f0 of every frame
(`infer(..., decoder_mode='local_argmax', threshold=0.006)`, no f0_min/f0_max post-processing),
each frame's confidence (max of the 360 sigmoid outputs; a frame is voiced when it is > threshold),
voiced counts and median voiced f0; and for the synthetic signal five full mel frames (log mel,
128 bins) from torchfcpe's Wav2Mel.

It also writes testdata/tiny_random.pt, a randomly initialised CFNaiveMelPE (seed 0) with other
hyper-parameters than the bundled one (16 mels, n_fft 512, fmax 7000, hidden 8, 2 layers, 20
bins, torch's parametrised weight norm), saved the way torchfcpe's checkpoints are
({'global_step', 'model', 'config_dict'}), and testdata/tiny_random_reference.json: its activations
and f0 on the glide as torchfcpe's spawn_infer_model_from_pt computes them. That pins down that
the port reads its sizes from the checkpoint's config. testdata/tiny_attention{,_nonorm}.pt and
their *_reference.json do the same for one Performer-attention layer (conv_only = false, with
and without use_fa_norm) that the bundled checkpoint does not have.
"""

import json
import pathlib
import sys
import types
import wave

import numpy as np
import scipy.signal
import torch

REPO = pathlib.Path(__file__).resolve().parents[3]
OUT = REPO / "pipelines" / "fcpe" / "testdata"
SHARED = pathlib.Path("/work/shared/reference")
SR = 16000
THRESHOLD = 0.006


def install_torchaudio_stand_in():
    """torchfcpe imports torchaudio.transforms.Resample at module load; only 16 kHz input is used."""

    class Resample:  # noqa: D401 - a stand-in
        def __init__(self, *args, **kwargs):
            raise RuntimeError("torchaudio stand-in: resampling must not be needed (input is 16 kHz)")

    ta = types.ModuleType("torchaudio")
    tr = types.ModuleType("torchaudio.transforms")
    tr.Resample = Resample
    ta.transforms = tr
    sys.modules["torchaudio"] = ta
    sys.modules["torchaudio.transforms"] = tr


def glide(seconds_silence=0.5, seconds_steady=1.0, seconds_glide=1.0):
    """0.5 s silence, 1 s of 220 Hz, 1 s gliding 220 -> 440 Hz (exponential), 0.5 s silence.

    Amplitude 0.5 plus a 0.15 second harmonic (voice-like); phase is continuous. The Rust tests
    build the same signal (tests/common) only for shape checks; the exact comparison uses the file.
    """
    n_sil = int(seconds_silence * SR)
    n_st = int(seconds_steady * SR)
    n_gl = int(seconds_glide * SR)
    t_st = np.arange(n_st) / SR
    phase_st = 2 * np.pi * 220.0 * t_st
    t_gl = np.arange(n_gl) / SR
    # f(t) = 220 * 2^(t / T): phase = 2 pi 220 T (2^(t/T) - 1) / ln 2
    phase_gl = phase_st[-1] + 2 * np.pi * 220.0 / SR + 2 * np.pi * 220.0 * seconds_glide * (
        np.power(2.0, t_gl / seconds_glide) - 1.0) / np.log(2.0)
    phase = np.concatenate([phase_st, phase_gl])
    voiced = 0.5 * np.sin(phase) + 0.15 * np.sin(2 * phase)
    sil = np.zeros(n_sil)
    return np.concatenate([sil, voiced, sil])


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    return data, rate


def to_s16(x):
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


def main():
    install_torchaudio_stand_in()
    import torchfcpe  # noqa: E402  (after the stand-in)

    torch.set_num_threads(2)
    model = torchfcpe.spawn_bundled_infer_model(device="cpu")
    OUT.mkdir(parents=True, exist_ok=True)

    signals = {"glide": glide()}
    for name in ("speech_a", "speech_b"):
        x, rate = read_wav(SHARED / f"{name}.wav")
        signals[name] = scipy.signal.resample_poly(x, 320, 441) \
            if rate == 22050 else scipy.signal.resample_poly(x, SR, rate)

    result = {
        "source": "pipelines/fcpe/reference/make_reference.py",
        "torch": torch.__version__,
        "torchfcpe": "0.0.4",
        "checkpoint": "torchfcpe/assets/fcpe_c_v001.pt",
        "threshold": THRESHOLD,
        "signals": {},
    }
    for name, x in signals.items():
        s16 = to_s16(x)
        (OUT / f"{name}_16k.s16").write_bytes(s16.tobytes())
        wav = torch.from_numpy(s16.astype(np.float32) / 32768.0)[None, :, None]
        with torch.no_grad():
            mel = model.wav2mel(wav, SR)
            latent = model.model.forward(mel)
            f0 = model.infer(wav, SR, decoder_mode="local_argmax", threshold=THRESHOLD)
        f0 = f0[0, :, 0].numpy().astype(np.float64)
        conf = latent[0].max(dim=-1).values.numpy().astype(np.float64)
        voiced = f0 > 0
        entry = {
            "file": f"{name}_16k.s16",
            "samples": int(len(s16)),
            "frames": int(len(f0)),
            "voiced": int(voiced.sum()),
            "median_voiced_hz": float(np.median(f0[voiced])) if voiced.any() else 0.0,
            "f0": [round(float(v), 4) for v in f0],
            "confidence": [round(float(v), 6) for v in conf],
        }
        if name == "glide":
            frames = [0, 1, 50, 150, len(f0) - 1]
            entry["mel_frames"] = {str(i): [round(float(v), 5) for v in mel[0, i].numpy()] for i in frames}
        result["signals"][name] = entry
        print(f"{name}: {len(s16)} samples, {len(f0)} frames, {entry['voiced']} voiced, "
              f"median {entry['median_voiced_hz']:.2f} Hz")

    (OUT / "reference.json").write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", OUT / "reference.json")
    tiny(torchfcpe, signals["glide"], "tiny_random", TINY_CONFIG, 3.0)
    for name, fa_norm in (("tiny_attention", True), ("tiny_attention_nonorm", False)):
        cfg = json.loads(json.dumps(TINY_CONFIG))
        cfg["model"].update({"hidden_dims": 16, "n_layers": 1, "conv_only": False, "use_fa_norm": fa_norm})
        tiny(torchfcpe, signals["glide"], name, cfg, 1.5)


TINY_CONFIG = {
    "mel": {"sr": 16000, "num_mels": 16, "n_fft": 512, "win_size": 512, "hop_size": 160,
            "fmin": 0, "fmax": 7000},
    "model": {"type": "CFNaiveMelPE", "out_dims": 20, "hidden_dims": 8, "n_layers": 2,
              "n_heads": 2, "f0_min": 32.7, "f0_max": 1975.5, "use_fa_norm": False,
              "conv_only": True},
}


def tiny(torchfcpe, glide_signal, name, config, gain):
    """A small random model through torchfcpe's own loading and inference path."""
    torch.manual_seed(0)
    net = torchfcpe.spawn_model(torchfcpe.tools.DotDict(config))
    with torch.no_grad():
        # Larger than the default init so the activations are not all ~0.5.
        for p in net.parameters():
            p.mul_(gain)
    path = OUT / f"{name}.pt"
    torch.save({"global_step": 0, "model": net.state_dict(), "config_dict": config}, path)
    model = torchfcpe.spawn_infer_model_from_pt(str(path), device="cpu")
    s16 = to_s16(glide_signal)
    wav = torch.from_numpy(s16.astype(np.float32) / 32768.0)[None, :, None]
    with torch.no_grad():
        mel = model.wav2mel(wav, SR)
        latent = model.model.forward(mel)
        f0 = model.infer(wav, SR, decoder_mode="local_argmax", threshold=THRESHOLD)
    out = {
        "source": "pipelines/fcpe/reference/make_reference.py",
        "input": "glide_16k.s16",
        "frames": int(latent.shape[1]),
        "state_dict_keys": sorted(net.state_dict().keys()),
        "mel_frame_100": [round(float(v), 5) for v in mel[0, 100].numpy()],
        "activations_first_40": [[round(float(v), 6) for v in row] for row in latent[0, :40].numpy()],
        "activations_frame_200": [round(float(v), 6) for v in latent[0, 200].numpy()],
        "f0": [round(float(v), 4) for v in f0[0, :, 0].numpy()],
    }
    (OUT / f"{name}_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", path, f"({path.stat().st_size} bytes) and {name}_reference.json")


if __name__ == "__main__":
    main()
