"""Reference numbers for the candle HuBERT in `avatar-content`.

Run from the workspace root (needs torch, transformers and safetensors; the project's benchmark
venv has all three):

    ~/.cache/avatar/bench-venv/bin/python pipelines/content/reference/make_reference.py

It builds a SMALL random HuBERT with the real structure (the same 7-layer conv stack, kernel and
stride, so 320 samples per frame; GroupNorm on the first conv; a grouped positional convolution of
kernel 128 with weight norm; post-norm transformer layers; 12 layers so RVC's layer 9 and 12
exist) plus a random `final_proj`, and writes to `pipelines/content/testdata/`:

  hf/config.json, hf/model.safetensors   Hugging Face `HubertModel` layout (f32) + `final_proj`
                                         (the ContentVec-in-HF layout)
  hf_bin/pytorch_model.bin, config.json  the same in HF layout as a torch pickle (OrderedDict, f16),
                                         as ContentVec's HF port is distributed
  fairseq.pt                             the same weights renamed into fairseq's layout, f16 like
                                         RVC's hubert_base.pt, weight_g/weight_v for the pos conv,
                                         saved as {"model": ..., "cfg": {...}, "args": None}
  fairseq_namespace.pt                   a tiny older-style container (argparse.Namespace "args")
                                         for the loader's config walk
  reference.safetensors                  "input" (the waveform), "features" (conv stack output),
                                         "hidden.N" for N = 0..12 (0 = after the encoder's
                                         LayerNorm, N = after layer N), "proj.9" and "proj.12"
                                         (final_proj of layers 9 and 12)

All weights are rounded to f16 first, so the f16 fairseq file and the f32 safetensors hold exactly
the same numbers. The reference runs in f32 (as PyTorch does in practice); the script also prints
how far that is from an f64 run, which is the scale of the tolerance the Rust tests use.
"""

import json
from collections import OrderedDict
import math
import os

import torch
from safetensors.torch import save_file
from transformers import HubertConfig, HubertModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")
LAYERS = 12
HIDDEN = 32
HEADS = 2
FFN = 64
CONV = 16
PROJ = 16
SAMPLES = 24000  # 1.5 s at 16 kHz -> 74 frames


def build_model():
    cfg = HubertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        conv_dim=(CONV,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        hidden_act="gelu",
        feat_extract_activation="gelu",
        layer_norm_eps=1e-5,
    )
    model = HubertModel(cfg).eval()
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("original0"):
                # weight-norm magnitudes: positive, around the scale of a real checkpoint
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else 4
                if p.dim() == 3:
                    fan_in = p.shape[1] * p.shape[2]
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / math.sqrt(fan_in)))
            p.copy_(p.half().float())
    final_proj = torch.nn.Linear(HIDDEN, PROJ)
    with torch.no_grad():
        final_proj.weight.copy_((torch.randn(PROJ, HIDDEN, generator=gen) / math.sqrt(HIDDEN)).half().float())
        final_proj.bias.copy_((0.1 * torch.randn(PROJ, generator=gen)).half().float())
    return cfg, model, final_proj


def signal():
    t = torch.arange(SAMPLES, dtype=torch.float64) / 16000.0
    chirp = torch.sin(2 * math.pi * (120 * t + 400 * t * t))
    tone = 0.3 * torch.sin(2 * math.pi * 1000 * t) * torch.sin(2 * math.pi * 3 * t)
    # deterministic "noise" that is easy to reproduce anywhere
    hiss = 0.05 * torch.sin(12345.678 * torch.arange(SAMPLES, dtype=torch.float64) ** 1.1)
    return (0.5 * chirp + tone + hiss).float()


def run(model, final_proj, wav):
    """Every intermediate we compare, captured with hooks so no output plumbing is assumed."""
    got = {}
    hooks = [
        model.feature_extractor.register_forward_hook(
            lambda m, i, o: got.__setitem__("features", o.transpose(1, 2)[0])
        ),
        model.encoder.layer_norm.register_forward_hook(lambda m, i, o: got.__setitem__("hidden.0", o[0])),
    ]
    for n, layer in enumerate(model.encoder.layers):
        hooks.append(
            layer.register_forward_hook(
                lambda m, i, o, n=n: got.__setitem__(f"hidden.{n + 1}", (o[0] if isinstance(o, tuple) else o)[0])
            )
        )
    with torch.no_grad():
        model(wav[None])
        for h in hooks:
            h.remove()
        got["proj.9"] = final_proj(got["hidden.9"])
        got["proj.12"] = final_proj(got["hidden.12"])
    return {k: v.detach().float().contiguous() for k, v in got.items()}


def to_fairseq(state, final_proj):
    """Hugging Face names -> fairseq names (the layout of RVC's hubert_base.pt)."""
    out = {}
    for k, v in state.items():
        k2 = k
        k2 = k2.replace("feature_extractor.conv_layers.0.layer_norm.", "feature_extractor.conv_layers.0.2.")
        for i in range(7):
            k2 = k2.replace(f"feature_extractor.conv_layers.{i}.conv.", f"feature_extractor.conv_layers.{i}.0.")
        k2 = k2.replace("feature_projection.layer_norm.", "layer_norm.")
        k2 = k2.replace("feature_projection.projection.", "post_extract_proj.")
        k2 = k2.replace("encoder.pos_conv_embed.conv.parametrizations.weight.original0", "encoder.pos_conv.0.weight_g")
        k2 = k2.replace("encoder.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv.0.weight_v")
        k2 = k2.replace("encoder.pos_conv_embed.conv.", "encoder.pos_conv.0.")
        k2 = k2.replace(".attention.", ".self_attn.")
        k2 = k2.replace(".layer_norm.", ".self_attn_layer_norm.") if ".layers." in k2 else k2
        k2 = k2.replace(".feed_forward.intermediate_dense.", ".fc1.")
        k2 = k2.replace(".feed_forward.output_dense.", ".fc2.")
        k2 = k2.replace("masked_spec_embed", "mask_emb")
        out[k2] = v
    out["final_proj.weight"] = final_proj.weight.detach()
    out["final_proj.bias"] = final_proj.bias.detach()
    out["label_embs_concat"] = torch.zeros(10, PROJ)
    # A real fairseq state dict is an OrderedDict carrying `_metadata`; keep that shape.
    od = OrderedDict((k, v.detach().half().contiguous()) for k, v in out.items())
    od._metadata = getattr(state, "_metadata", OrderedDict())
    return od


def write_namespace_checkpoint():
    """An older fairseq container: hyper-parameters in an argparse.Namespace under "args", plus the
    bookkeeping entries real checkpoints carry (optimizer history, floats, big ints, tuples,
    None). Only the loader's pickle walk is tested with it, so it holds one small tensor."""
    import argparse

    args = argparse.Namespace(
        arch="hubert", encoder_attention_heads=3, encoder_embed_dim=96, extractor_mode="default",
        layer_norm_first=False, normalize=False, dropout=0.1, conv_pos=128, label_rate=50.0,
        conv_feature_layers="[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
        labels=["km"], max_tokens=1400000, seed=1337, fp16=True, data=None, betas=(0.9, 0.98),
    )
    state = {
        "args": args,
        "cfg": None,
        "model": {"final_proj.weight": torch.arange(6, dtype=torch.float16).reshape(2, 3)},
        "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 400000,
                               "lr_scheduler_state": {"best": 2.5}}],
        "extra_state": {"epoch": 3, "val_loss": 1.5, "big": 2 ** 40, "neg": -7},
        "last_optimizer_state": None,
    }
    torch.save(state, os.path.join(OUT, "fairseq_namespace.pt"))


def main():
    torch.manual_seed(0)
    cfg, model, final_proj = build_model()
    wav = signal()
    ref = run(model, final_proj, wav)

    # How far f32 is from f64 for this model and input: the scale of an honest tolerance.
    model64 = HubertModel(cfg).eval().double()
    model64.load_state_dict(model.state_dict())
    ref64 = run(model64, final_proj.double(), wav.double())
    final_proj.float()
    for k in ["features", "hidden.0", "hidden.6", "hidden.9", "hidden.12", "proj.9", "proj.12"]:
        print(f"{k:9s} frames={ref[k].shape[0]} max|f32-f64|={(ref[k].double() - ref64[k]).abs().max().item():.2e}"
              f" max|x|={ref[k].abs().max().item():.2f}")

    os.makedirs(os.path.join(OUT, "hf"), exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    g = state["encoder.pos_conv_embed.conv.parametrizations.weight.original0"]
    v = state["encoder.pos_conv_embed.conv.parametrizations.weight.original1"]
    folded = torch._weight_norm(v, g, 2)
    assert torch.allclose(folded, model.encoder.pos_conv_embed.conv.weight), "weight norm is not dim=2"
    hf = dict(state)
    hf["final_proj.weight"] = final_proj.weight.detach().contiguous()
    hf["final_proj.bias"] = final_proj.bias.detach().contiguous()
    save_file(hf, os.path.join(OUT, "hf", "model.safetensors"))
    with open(os.path.join(OUT, "hf", "config.json"), "w") as f:
        d = cfg.to_dict()
        d["architectures"] = ["HubertModelWithFinalProj"]
        d["classifier_proj_size"] = PROJ
        json.dump(d, f, indent=1, sort_keys=True)

    # ContentVec in HF layout usually comes as pytorch_model.bin: a bare OrderedDict, f16 here.
    os.makedirs(os.path.join(OUT, "hf_bin"), exist_ok=True)
    sd = model.state_dict()
    bin_sd = OrderedDict((k, v.detach().half().contiguous()) for k, v in hf.items())
    bin_sd._metadata = sd._metadata
    torch.save(bin_sd, os.path.join(OUT, "hf_bin", "pytorch_model.bin"))
    with open(os.path.join(OUT, "hf", "config.json")) as src, \
            open(os.path.join(OUT, "hf_bin", "config.json"), "w") as dst:
        dst.write(src.read())

    fair = to_fairseq(sd, final_proj)
    task_cfg = {"normalize": False, "sample_rate": 16000}
    model_cfg = {
        "_name": "hubert",
        "extractor_mode": "default",
        "encoder_layers": LAYERS,
        "encoder_embed_dim": HIDDEN,
        "encoder_ffn_embed_dim": FFN,
        "encoder_attention_heads": HEADS,
        "conv_feature_layers": "[(16,10,5)] + [(16,3,2)] * 4 + [(16,2,2)] * 2",
        "conv_pos": 128,
        "conv_pos_groups": 16,
        "layer_norm_first": False,
        "final_dim": PROJ,
    }
    torch.save({"model": fair, "cfg": {"model": model_cfg, "task": task_cfg}, "args": None},
               os.path.join(OUT, "fairseq.pt"))
    save_file({"input": wav.contiguous(), **ref}, os.path.join(OUT, "reference.safetensors"))
    write_namespace_checkpoint()
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, OUT):28s} {os.path.getsize(p):8d} bytes")


if __name__ == "__main__":
    main()
