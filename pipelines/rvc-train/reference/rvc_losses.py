"""RVC's training losses and mel front end, for the rvc-train reference and bench.

The rvc-python wheel ships the model code but not RVC's `losses.py` or
`mel_processing.py`, so this module restates their definitions (same maths,
same constants) in its own words. Everything is float32 like RVC's training.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

# RVC v2 40k data parameters (configs/40k.json).
FILTER_LENGTH = 2048
HOP = 400
WIN = 2048
N_MEL = 125
FMIN = 0.0
FMAX = None
SR = 40000
SEGMENT_SAMPLES = 12800
C_MEL = 45.0
C_KL = 1.0
LR = 1e-4
BETAS = (0.8, 0.99)
EPS = 1e-9


def rvc_models():
    """RVC's models module from the wheel, via the rvc pipeline's import helper."""
    here = os.path.dirname(os.path.abspath(__file__))
    helper = os.path.join(here, "..", "..", "rvc", "reference")
    if helper not in sys.path:
        sys.path.insert(0, helper)
    import rvc_ref  # noqa: E402

    return rvc_ref.rvc_models()


def discriminator_loss(real_outputs, fake_outputs):
    """Least-squares GAN loss for D: real pushed to 1, fake to 0, summed over sub-discriminators."""
    loss = 0.0
    for dr, dg in zip(real_outputs, fake_outputs):
        loss = loss + torch.mean((1.0 - dr.float()) ** 2) + torch.mean(dg.float() ** 2)
    return loss


def generator_loss(fake_outputs):
    """Least-squares GAN loss for G: fake pushed to 1."""
    loss = 0.0
    for dg in fake_outputs:
        loss = loss + torch.mean((1.0 - dg.float()) ** 2)
    return loss


def feature_loss(fmap_real, fmap_fake):
    """Feature matching: 2 x sum over every D layer of mean |real - fake|, real detached."""
    loss = 0.0
    for layers_r, layers_g in zip(fmap_real, fmap_fake):
        for r, g in zip(layers_r, layers_g):
            loss = loss + torch.mean(torch.abs(r.float().detach() - g.float()))
    return loss * 2.0


def kl_loss(z_p, logs_q, m_p, logs_p, mask):
    """KL between the flowed posterior sample and the prior, per unmasked frame.

    The divisor is sum(mask) with mask [B,1,T], i.e. frames, not frames x channels.
    """
    z_p, logs_q, m_p, logs_p, mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, mask))
    kl = logs_p - logs_q - 0.5
    kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)


def _hz_to_mel_slaney(hz):
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz_slaney(mel):
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_basis(sr=SR, n_fft=FILTER_LENGTH, n_mels=N_MEL, fmin=FMIN, fmax=FMAX):
    """librosa.filters.mel(htk=False, norm='slaney'): triangles on the Slaney scale, area-normalised.

    Computed in float64 and returned as float32 [n_mels, n_fft/2+1], as librosa does.
    """
    if fmax is None:
        fmax = sr / 2.0
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_pts = np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    mel_freqs = _mel_to_hz_slaney(mel_pts)
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels])
    weights *= enorm[:, None]
    return torch.from_numpy(weights.astype(np.float32))


_MEL_CACHE = {}


def spectrogram_torch(y, n_fft=FILTER_LENGTH, hop=HOP, win=WIN):
    """Linear magnitude spectrogram [B, n_fft/2+1, frames] of y [B, samples].

    Reflect-pads (n_fft-hop)/2 each side, periodic Hann window, no centring,
    magnitude sqrt(re^2 + im^2 + 1e-6); a clip of k*hop samples gives k frames.
    """
    pad = int((n_fft - hop) / 2)
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(win, dtype=y.dtype, device=y.device)
    spec = torch.stft(
        y,
        n_fft,
        hop_length=hop,
        win_length=win,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    spec = torch.view_as_real(spec)
    return torch.sqrt(spec.pow(2).sum(-1) + 1e-6)


def spec_to_mel_torch(spec, n_fft=FILTER_LENGTH, n_mels=N_MEL, sr=SR, fmin=FMIN, fmax=FMAX):
    """Log mel [B, n_mels, frames] of a magnitude spectrogram: log(clamp(basis @ spec, 1e-5))."""
    key = (n_fft, n_mels, sr, fmin, fmax, spec.dtype, spec.device)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = mel_basis(sr, n_fft, n_mels, fmin, fmax).to(dtype=spec.dtype, device=spec.device)
    mel = torch.matmul(_MEL_CACHE[key], spec)
    return torch.log(torch.clamp(mel, min=1e-5))


def mel_spectrogram_torch(y, n_fft=FILTER_LENGTH, n_mels=N_MEL, sr=SR, hop=HOP, win=WIN, fmin=FMIN, fmax=FMAX):
    """Log mel of a waveform [B, samples]: spectrogram_torch then spec_to_mel_torch."""
    return spec_to_mel_torch(spectrogram_torch(y, n_fft, hop, win), n_fft, n_mels, sr, fmin, fmax)
