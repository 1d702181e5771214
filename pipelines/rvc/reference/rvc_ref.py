"""Shared helpers for the avatar-rvc reference and benchmark scripts.

Imports the RVC model code from the rvc-python wheel (model definitions only;
its package __init__ pulls in audio dependencies we do not need, so the package
is registered by hand). Point RVC_PY at the unpacked wheel, e.g.
/work/scratch/rvc-py/whl (see make_reference.py for how to get it).
"""

import math
import os
import sys
import types

import torch

RVC_PY = os.environ.get("RVC_PY", "/work/scratch/rvc-py/whl")


def rvc_models():
    """The rvc_python.lib.infer_pack.models module, without rvc_python/__init__.py."""
    if "rvc_python" not in sys.modules:
        pkg = types.ModuleType("rvc_python")
        pkg.__path__ = [os.path.join(RVC_PY, "rvc_python")]
        sys.modules["rvc_python"] = pkg
    from rvc_python.lib.infer_pack import models  # noqa: E402

    return models


CLASSES = {
    ("v1", 1): "SynthesizerTrnMs256NSFsid",
    ("v2", 1): "SynthesizerTrnMs768NSFsid",
    ("v1", 0): "SynthesizerTrnMs256NSFsid_nono",
    ("v2", 0): "SynthesizerTrnMs768NSFsid_nono",
}


def build(version, f0, config):
    """An RVC synthesiser for a WebUI config list, without the training-only enc_q."""
    models = rvc_models()
    cls = getattr(models, CLASSES[(version, f0)])
    net = cls(*config, is_half=False)
    del net.enc_q
    net.eval()
    return net


def randomize(net, seed):
    """Non-trivial random weights (RVC zero-initialises the flow's post convs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif "emb_rel" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            elif name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def webui_state_dict(net, half):
    """State dict as RVC WebUI saves it: no enc_q, optionally float16."""
    sd = {}
    for k, v in net.state_dict().items():
        if "enc_q" in k:
            continue
        sd[k] = v.detach().clone().half() if half else v.detach().clone()
    return sd


def applio_names(sd):
    """Rename weight_g/weight_v to the torch parametrizations names newer trainers write."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".weight_g"):
            out[k[: -len("weight_g")] + "parametrizations.weight.original0"] = v
        elif k.endswith(".weight_v"):
            out[k[: -len("weight_v")] + "parametrizations.weight.original1"] = v
        else:
            out[k] = v
    return out


class NoiseRecorder:
    """Records every torch.randn_like draw made during RVC inference.

    RVC draws the prior noise (randn_like(m_p)) and then the sine generator's
    additive noise (randn_like(sine_waves)), in that order.
    """

    def __enter__(self):
        self.draws = []
        self._orig = torch.randn_like

        def rec(x, *a, **k):
            r = self._orig(x, *a, **k)
            self.draws.append(r.detach().clone())
            return r

        torch.randn_like = rec
        return self

    def __exit__(self, *exc):
        torch.randn_like = self._orig
        return False
