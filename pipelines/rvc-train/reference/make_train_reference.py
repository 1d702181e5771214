"""Writes testdata/train_reference.safetensors: one RVC v2 training step, every random draw fixed.

The candle trainer in pipelines/rvc-train must reproduce RVC's losses and
gradients for the same weights, inputs and noise. This script runs RVC's own
model code (from the rvc-python wheel) on a tiny generator and the full-size
MultiPeriodDiscriminatorV2, with every random call of the forward pass replaced
by a tensor that is saved in the file. See README.md beside it.

Usage: ~/.cache/avatar/bench-venv/bin/python make_train_reference.py [--out PATH]
"""

import argparse
import contextlib
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvc_losses as L  # noqa: E402

warnings.filterwarnings("ignore")

# Tiny v2 40k generator: segment 4 frames, inter/hidden 8, filter 16, 2 heads, 1 layer,
# decoder 32 -> 16 -> 8 -> 4 -> 2 channels, 4 speakers, gin 8.
TINY_G = [1025, 4, 8, 8, 16, 2, 1, 3, 0, "1", [3], [[1, 3, 5]], [10, 10, 2, 2], 32, [16, 16, 4, 4], 4, 8, 40000]
B = 2
T = 8
SEG = 4
IDS_SLICE = [1, 3]

# Gradients the brief names explicitly; every G gradient is saved anyway.
KEY_G_GRADS = [
    "dec.conv_post.weight",  # not weight-normed in RVC (brief said weight_v)
    "dec.ups.0.weight_g",
    "enc_p.emb_phone.weight",
    "enc_p.encoder.attn_layers.0.conv_q.weight",
    "flow.flows.0.enc.in_layers.0.weight_v",
    "enc_q.proj.weight",
    "emb_g.weight",
    "dec.m_source.l_linear.weight",
]
KEY_D_GRADS = ["discriminators.0.convs.1.weight_v", "discriminators.3.conv_post.bias"]


def d_param_values(name, shape):
    """The deterministic D weights Rust rebuilds: scale * sin(0.7 i + phase), phase from the name."""
    n = math.prod(shape)
    phase = (sum(name.encode("utf-8")) % 997) * 0.001
    if name.endswith("weight_g"):
        scale = 1.0
    elif name.endswith("weight_v"):
        scale = 0.1
    elif name.endswith("bias"):
        scale = 0.01
    else:
        raise ValueError(f"unexpected D parameter {name}")
    vals = scale * np.sin(0.7 * np.arange(n, dtype=np.float64) + phase)
    return torch.from_numpy(vals.astype(np.float32).reshape(shape))


def f0_to_coarse(f0):
    """RVC's pitch quantisation: mel scale between 50 and 1100 Hz onto 1..255 (0 Hz -> 1)."""
    mel_min = 1127 * np.log(1 + 50.0 / 700)
    mel_max = 1127 * np.log(1 + 1100.0 / 700)
    mel = 1127 * np.log(1 + f0 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - mel_min) * 254 / (mel_max - mel_min) + 1
    mel = np.clip(mel, 1, 255)
    return np.rint(mel).astype(np.int64)


def make_inputs():
    gen = torch.Generator().manual_seed(1234)
    phone = torch.randn(B, T, 768, generator=gen)
    f0 = np.stack(
        [
            np.linspace(120.0, 220.0, T),
            np.linspace(210.0, 140.0, T),
        ]
    )
    f0[0, 3] = 0.0  # one unvoiced frame, inside utterance 0's slice (frames 1..4)
    pitchf = torch.from_numpy(f0.astype(np.float32))
    pitch = torch.from_numpy(f0_to_coarse(f0.copy()))
    t = np.arange(T * L.HOP, dtype=np.float64) / L.SR
    waves = []
    for k, (a, b_) in enumerate([(180.0, 530.0), (150.0, 760.0)]):
        w = 0.3 * np.sin(2 * np.pi * a * t) + 0.15 * np.sin(2 * np.pi * b_ * t + 0.5 * k) + 0.05 * np.sin(2 * np.pi * 2900.0 * t)
        waves.append(w)
    wav = torch.from_numpy(np.stack(waves).astype(np.float32))[:, None, :]
    wav = wav + 0.01 * torch.randn(wav.shape, generator=gen)
    spec = L.spectrogram_torch(wav.squeeze(1))
    sid = torch.tensor([0, 1], dtype=torch.int64)
    lengths = torch.full((B,), T, dtype=torch.int64)
    return dict(phone=phone, pitch=pitch, pitchf=pitchf, wav=wav, spec=spec, sid=sid, lengths=lengths)


def make_noise():
    gen = torch.Generator().manual_seed(4321)
    return {
        "enc_q": torch.randn(B, 8, T, generator=gen),
        "ids_slice": torch.tensor(IDS_SLICE, dtype=torch.int64),
        "sine": torch.randn(B, SEG * L.HOP, 1, generator=gen),
    }


@contextlib.contextmanager
def fixed_noise(commons, noise):
    """Replaces the forward pass's random draws with `noise`, failing on any unexpected draw.

    Patched: commons.rand_slice_segments (the models module calls it as
    commons.rand_slice_segments), torch.randn_like (PosteriorEncoder's z noise,
    then SineGen's additive noise, told apart by shape), torch.rand (SineGen's
    rand_ini [B, 1], which RVC zeroes anyway with harmonic_num = 0).
    """
    orig = (commons.rand_slice_segments, torch.randn_like, torch.rand)
    calls = []

    def rand_slice_segments(x, x_lengths=None, segment_size=4):
        calls.append("rand_slice_segments")
        ids = noise["ids_slice"].to(x.device)
        return commons.slice_segments(x, ids, segment_size), ids

    def randn_like(x, *args, **kwargs):
        shape = tuple(x.shape)
        for key in ("enc_q", "sine"):
            if tuple(noise[key].shape) == shape:
                calls.append(f"randn_like->{key}")
                return noise[key].to(dtype=x.dtype, device=x.device).clone()
        raise RuntimeError(f"unexpected torch.randn_like{shape}")

    def rand(*size, **kwargs):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else tuple(size)
        if shape != (B, 1):
            raise RuntimeError(f"unexpected torch.rand{shape}")
        calls.append("rand->zeros(rand_ini)")
        return torch.zeros(shape, device=kwargs.get("device"))

    commons.rand_slice_segments = rand_slice_segments
    torch.randn_like = randn_like
    torch.rand = rand
    try:
        yield calls
    finally:
        commons.rand_slice_segments, torch.randn_like, torch.rand = orig


def build_g(models):
    torch.manual_seed(0)
    net_g = models.SynthesizerTrnMs768NSFsid(*TINY_G, is_half=False)
    # RVC zero-initialises each coupling layer's `post` conv, which makes every
    # flow-internal gradient exactly zero at step 0; small values keep them a real check.
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in net_g.named_parameters():
            if name.startswith("flow.flows.") and ".post." in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    net_g.train()
    return net_g


def build_d(models):
    net_d = models.MultiPeriodDiscriminatorV2(use_spectral_norm=False)
    with torch.no_grad():
        for name, p in net_d.named_parameters():
            p.copy_(d_param_values(name, tuple(p.shape)))
    net_d.train()
    return net_d


def g_losses(net_d, wave, y_hat, y_mel, y_hat_mel, z_p, logs_q, m_p, logs_p, z_mask):
    _, y_d_hat_g, fmap_r, fmap_g = net_d(wave, y_hat)
    loss_mel = F.l1_loss(y_mel, y_hat_mel) * L.C_MEL
    loss_kl = L.kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * L.C_KL
    loss_fm = L.feature_loss(fmap_r, fmap_g)
    loss_gen = L.generator_loss(y_d_hat_g)
    return dict(gen=loss_gen, fm=loss_fm, mel=loss_mel, kl=loss_kl, gen_all=loss_gen + loss_fm + loss_mel + loss_kl)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "testdata", "train_reference.safetensors"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    models = L.rvc_models()
    commons = models.commons
    net_g = build_g(models)
    net_d = build_d(models)
    inp = make_inputs()
    noise = make_noise()

    out = {}
    for k, v in net_g.state_dict().items():
        out["g." + k] = v.detach().clone().contiguous()
    for k, v in inp.items():
        out["in." + k] = v.contiguous()
    for k, v in noise.items():
        out["noise." + k] = v.contiguous()
    out["mel.basis"] = L.mel_basis().contiguous()

    def forward():
        with fixed_noise(commons, noise) as calls:
            res = net_g(inp["phone"], inp["lengths"], inp["pitch"], inp["pitchf"], inp["spec"], inp["lengths"], inp["sid"])
        return res, list(calls)

    # Determinism check: a second forward under a different global seed must match bit for bit.
    torch.manual_seed(99)
    (y_hat_chk, *_), _ = forward()
    torch.manual_seed(5)
    (y_hat, ids_slice, x_mask, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q)), calls = forward()
    assert torch.equal(y_hat.detach(), y_hat_chk.detach()), "forward is not deterministic"
    print("patched calls, in order:", calls)

    mel = L.spec_to_mel_torch(inp["spec"])
    y_mel = commons.slice_segments(mel, ids_slice, SEG)
    y_hat_mel = L.mel_spectrogram_torch(y_hat.float().squeeze(1))
    wave = commons.slice_segments(inp["wav"], ids_slice * L.HOP, SEG * L.HOP)

    # D loss and its gradient, initial D.
    y_d_hat_r, y_d_hat_g, _, _ = net_d(wave, y_hat.detach())
    loss_disc = L.discriminator_loss(y_d_hat_r, y_d_hat_g)
    net_d.zero_grad(set_to_none=True)
    loss_disc.backward()
    d_params = dict(net_d.named_parameters())
    for name in KEY_D_GRADS:
        out["dgrad." + name] = d_params[name].grad.detach().clone()

    # G losses and gradients on the same, initial D (autograd.grad leaves D's .grad alone).
    losses = g_losses(net_d, wave, y_hat, y_mel, y_hat_mel, z_p, logs_q, m_p, logs_p, z_mask)
    g_named = list(net_g.named_parameters())
    grads = torch.autograd.grad(losses["gen_all"], [p for _, p in g_named], retain_graph=True, allow_unused=True)
    for (name, p), g in zip(g_named, grads):
        out["grad." + name] = (torch.zeros_like(p) if g is None else g).detach().clone()
    missing = [n for n in KEY_G_GRADS if "grad." + n not in out]
    assert not missing, missing

    out["out.y_hat"] = y_hat.detach()
    out["out.ids_slice"] = ids_slice.detach().clone()
    out["out.wav_slice"] = wave.detach()
    out["out.mel_real"] = y_mel.detach()
    out["out.mel_fake"] = y_hat_mel.detach()
    for k, v in dict(z=z, z_p=z_p, m_p=m_p, logs_p=logs_p, m_q=m_q, logs_q=logs_q).items():
        out["out." + k] = v.detach()
    out["out.loss_disc"] = loss_disc.detach().reshape(())
    for k, v in losses.items():
        out[f"out.loss_{k}"] = v.detach().reshape(())

    # RVC's step: D first (AdamW on loss_disc's gradient), then G losses on the updated D.
    optim_g = torch.optim.AdamW(net_g.parameters(), L.LR, betas=L.BETAS, eps=L.EPS)
    optim_d = torch.optim.AdamW(net_d.parameters(), L.LR, betas=L.BETAS, eps=L.EPS)
    optim_d.step()
    losses1 = g_losses(net_d, wave, y_hat, y_mel, y_hat_mel, z_p, logs_q, m_p, logs_p, z_mask)
    optim_g.zero_grad(set_to_none=True)
    losses1["gen_all"].backward()
    optim_g.step()
    for k, v in losses1.items():
        out[f"step1.loss_{k}"] = v.detach().reshape(())
    out["step1.g.dec.conv_post.weight"] = net_g.dec.conv_post.weight.detach().clone()
    out["step1.d.discriminators.3.conv_post.bias"] = d_params["discriminators.3.conv_post.bias"].detach().clone()

    out = {k: v.contiguous() for k, v in out.items()}
    d_shapes = [[n, list(p.shape)] for n, p in net_d.named_parameters()]
    meta = {
        "g_config": json.dumps(TINY_G),
        "d_params": json.dumps(d_shapes),
        "d_formula": "phase=(sum utf8 bytes of name)%997*0.001; v[i]=scale*sin(0.7*i+phase) f64->f32, "
        "scale 1.0 weight_g, 0.1 weight_v, 0.01 bias",
        "adamw": json.dumps({"lr": L.LR, "betas": L.BETAS, "eps": L.EPS, "weight_decay": optim_g.defaults["weight_decay"]}),
        "patched_calls": json.dumps(calls),
        "torch": torch.__version__,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(out, args.out, metadata=meta)

    print(f"wrote {args.out}: {len(out)} tensors, {os.path.getsize(args.out)} bytes")
    print(f"G params {sum(p.numel() for p in net_g.parameters())}, D params {sum(p.numel() for p in net_d.parameters())}")
    for k in sorted(out):
        if k.startswith(("out.loss", "step1.loss")):
            print(f"  {k:24s} {out[k].item():.6f}")
    for n in KEY_G_GRADS:
        g = out["grad." + n]
        print(f"  grad.{n:45s} |g|={g.norm().item():.6e}")
    for n in KEY_D_GRADS:
        g = out["dgrad." + n]
        print(f"  dgrad.{n:44s} |g|={g.norm().item():.6e}")


if __name__ == "__main__":
    main()
