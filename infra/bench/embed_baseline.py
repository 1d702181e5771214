"""Baseline for `cargo bench -p avatar-embed --bench embed`: sentence-transformers (PyTorch, CPU)
embedding the same chunks with the same local model directory.

Usage: embed_baseline.py MODEL_DIR CHUNKS_JSON [BATCH_SIZE]
CHUNKS_JSON is a JSON list of strings (written by the Rust bench). Prints one JSON object:
{"impl", "n", "seconds", "chunks_per_s", "threads", "first": [first 4 vectors]} so the bench can
also check that both sides computed the same vectors. Falls back to plain transformers with the
same pooling (mean over the attention mask, L2) when sentence-transformers is not installed.
"""
import json
import sys
import time

import torch

model_dir, chunks_path = sys.argv[1], sys.argv[2]
batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 32
chunks = json.load(open(chunks_path, encoding="utf-8"))
torch.set_grad_enabled(False)

try:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    name = "sentence-transformers"

    def encode(texts):
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
except ImportError:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    bert = AutoModel.from_pretrained(model_dir).eval()
    name = "transformers+mean-pooling"

    def encode(texts):
        # Same length sorting as sentence-transformers' encode, so both pad as little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = [None] * len(texts)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=256,
                      return_tensors="pt")
            h = bert(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)
            for i, v in zip(idx, e):
                out[i] = v.numpy()
        return out

encode(chunks[:64])  # warm-up: first-call allocations and thread-pool start
t = time.perf_counter()
vectors = encode(chunks)
dt = time.perf_counter() - t
print(json.dumps({
    "impl": f"{name} (torch {torch.__version__})",
    "n": len(chunks),
    "seconds": dt,
    "chunks_per_s": len(chunks) / dt,
    "threads": torch.get_num_threads(),
    "first": [[float(x) for x in v] for v in vectors[:4]],
}))
