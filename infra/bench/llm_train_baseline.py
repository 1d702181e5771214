"""Baseline for `avatar bench llm`: LoRA training throughput of PyTorch + PEFT on the same GGUF.

Loads the GGUF with transformers (`gguf_file=`, weights dequantised to fp32, as candle does),
puts LoRA (rank R, alpha 2R, dropout 0) on every linear layer of the decoder, and runs AdamW steps
on the same synthetic token batches the Rust benchmark uses: token i of row b is
(b * 7919 + i * 104729 + 13) % vocab. Prints one JSON line:
{"tokens_per_sec", "step_seconds", "steps", "dtype", "matmul_gflops"}.
Usage: python llm_train_baseline.py MODEL.gguf [--steps 4] [--seq 256] [--batch 4] [--rank 16] [--bf16]
"""
import argparse, json, os, sys, time

import torch


def matmul_peak(n=2048, reps=10, dtype=torch.float32):
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    dt = time.perf_counter() - t
    return 2 * n**3 * reps / dt / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("gguf")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model

    d, f = os.path.split(os.path.abspath(a.gguf))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    cfg = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, cfg)
    model.train()
    vocab = model.config.vocab_size
    ids = torch.tensor([[(b * 7919 + i * 104729 + 13) % vocab for i in range(a.seq)] for b in range(a.batch)])
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        return float(loss)

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t) / a.steps
    print(json.dumps({
        "tokens_per_sec": a.batch * a.seq / dt,
        "step_seconds": dt,
        "steps": a.steps,
        "dtype": "bf16-autocast" if a.bf16 else "fp32",
        "matmul_gflops": matmul_peak(),
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    sys.exit(main())
