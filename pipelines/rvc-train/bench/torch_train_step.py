"""PyTorch baseline for one RVC v2 40k training step (fp32, CPU), as RVC's train_and_evaluate does it.

The candle trainer in pipelines/rvc-train is compared against this number:
G forward on a batch of utterances, D step (loss_disc, backward, AdamW), then
G step (D on y_hat, mel x45 + KL + feature matching + adversarial, backward,
AdamW). Inputs are random tensors of the right shapes; RVC's own random draws
(posterior noise, slice starts, sine noise) are left as they are.

Usage: ~/.cache/avatar/bench-venv/bin/python torch_train_step.py [--steps N] [--warmup W]
       [--batch B] [--frames T] [--threads K] [--json]
--json prints one JSON line on stdout (human-readable lines go to stderr).
"""

import argparse
import contextlib
import json
import os
import resource
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import rvc_losses as L  # noqa: E402

warnings.filterwarnings("ignore")

# RVC's v2 40k model config list (configs/40k.json "model" section, in constructor order).
CONFIG_40K_V2 = [1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], [[1, 3, 5], [1, 3, 5], [1, 3, 5]], [10, 10, 2, 2], 512, [16, 16, 4, 4], 109, 256, 40000]


def make_batch(batch, frames, gen):
    wav = 0.1 * torch.randn(batch, 1, frames * L.HOP, generator=gen)
    return dict(
        phone=torch.randn(batch, frames, 768, generator=gen),
        pitch=torch.randint(1, 256, (batch, frames), generator=gen),
        pitchf=100.0 + 200.0 * torch.rand(batch, frames, generator=gen),
        wav=wav,
        spec=L.spectrogram_torch(wav.squeeze(1)),  # RVC's loader caches spec; not part of the step
        lengths=torch.full((batch,), frames, dtype=torch.int64),
        sid=torch.randint(0, CONFIG_40K_V2[15], (batch,), generator=gen),
    )


def train_step(net_g, net_d, optim_g, optim_d, commons, b):
    seg_frames = L.SEGMENT_SAMPLES // L.HOP
    y_hat, ids_slice, _x_mask, z_mask, (_z, z_p, m_p, logs_p, _m_q, logs_q) = net_g(
        b["phone"], b["lengths"], b["pitch"], b["pitchf"], b["spec"], b["lengths"], b["sid"]
    )
    mel = L.spec_to_mel_torch(b["spec"])
    y_mel = commons.slice_segments(mel, ids_slice, seg_frames)
    y_hat_mel = L.mel_spectrogram_torch(y_hat.float().squeeze(1))
    wave = commons.slice_segments(b["wav"], ids_slice * L.HOP, L.SEGMENT_SAMPLES)

    # Discriminator
    y_d_hat_r, y_d_hat_g, _, _ = net_d(wave, y_hat.detach())
    loss_disc = L.discriminator_loss(y_d_hat_r, y_d_hat_g)
    optim_d.zero_grad()
    loss_disc.backward()
    optim_d.step()

    # Generator
    _, y_d_hat_g, fmap_r, fmap_g = net_d(wave, y_hat)
    loss_mel = F.l1_loss(y_mel, y_hat_mel) * L.C_MEL
    loss_kl = L.kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * L.C_KL
    loss_fm = L.feature_loss(fmap_r, fmap_g)
    loss_gen = L.generator_loss(y_d_hat_g)
    loss_gen_all = loss_gen + loss_fm + loss_mel + loss_kl
    optim_g.zero_grad()
    loss_gen_all.backward()
    optim_g.step()
    return loss_disc.item(), loss_gen_all.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=370, help="frames per utterance (370 = 3.7 s, RVC's slice length)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.frames < L.SEGMENT_SAMPLES // L.HOP:
        ap.error(f"--frames must be at least the {L.SEGMENT_SAMPLES // L.HOP}-frame training segment")
    torch.set_num_threads(args.threads)
    log = sys.stderr if args.json else sys.stdout

    models = L.rvc_models()
    torch.manual_seed(0)
    with contextlib.redirect_stdout(log):
        net_g = models.SynthesizerTrnMs768NSFsid(*CONFIG_40K_V2, is_half=False)
    net_d = models.MultiPeriodDiscriminatorV2(use_spectral_norm=False)
    net_g.train()
    net_d.train()
    optim_g = torch.optim.AdamW(net_g.parameters(), L.LR, betas=L.BETAS, eps=L.EPS)
    optim_d = torch.optim.AdamW(net_d.parameters(), L.LR, betas=L.BETAS, eps=L.EPS)
    n_g = sum(p.numel() for p in net_g.parameters())
    n_d = sum(p.numel() for p in net_d.parameters())
    print(f"torch {torch.__version__}, {args.threads} threads; G {n_g:,} params, D {n_d:,} params", file=log)

    batch = make_batch(args.batch, args.frames, torch.Generator().manual_seed(1))
    for i in range(args.warmup):
        t0 = time.perf_counter()
        ld, lg = train_step(net_g, net_d, optim_g, optim_d, models.commons, batch)
        print(f"warmup {i}: {time.perf_counter() - t0:.2f} s (loss_disc {ld:.3f}, loss_gen_all {lg:.3f})", file=log)

    wall, cpu = [], []
    for i in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        ld, lg = train_step(net_g, net_d, optim_g, optim_d, models.commons, batch)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        print(f"step {i}: {wall[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU (loss_disc {ld:.3f}, loss_gen_all {lg:.3f})", file=log)

    s_per_step = sum(wall) / len(wall)
    cpu_per_step = sum(cpu) / len(cpu)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"batch {args.batch} x {args.frames} frames: {s_per_step:.2f} s/step, {1 / s_per_step:.4f} steps/s, "
        f"{cpu_per_step:.1f} CPU-s/step, peak RSS {peak_rss_mb:.0f} MiB",
        file=log,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "baseline": "pytorch-rvc",
                    "steps_per_s": 1 / s_per_step,
                    "s_per_step": s_per_step,
                    "cpu_s_per_step": cpu_per_step,
                    "batch": args.batch,
                    "frames": args.frames,
                    "threads": args.threads,
                    "peak_rss_mb": peak_rss_mb,
                    "g_params": n_g,
                    "d_params": n_d,
                    "torch": torch.__version__,
                }
            )
        )


if __name__ == "__main__":
    main()
