"""PyTorch baseline for `cargo bench -p avatar-voice --bench speaker`: resemblyzer's VoiceEncoder
forward (nn.LSTM(40, 256, 3) -> Linear(256, 256) -> ReLU -> L2 norm, partials averaged and
normalised), declared here as in resemblyzer/voice_encoder.py, on the very mel frames the Rust
bench computed, with the same pretrained.pt. Prints one JSON line: seconds per utterance and the
embedding (the Rust side checks it is the same embedding).

Usage: speaker_baseline.py PRETRAINED_PT MELS_F32 N_FRAMES N_SAMPLES REPS
"""
import json, math, sys, time

import numpy as np
import torch
from torch import nn

pt, mels_path, n_frames, n_samples, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(max(1, len(__import__("os").sched_getaffinity(0))))


class VoiceEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.relu = nn.ReLU()

    def forward(self, mels):
        _, (hidden, _) = self.lstm(mels)
        embeds_raw = self.relu(self.linear(hidden[-1]))
        return embeds_raw / torch.norm(embeds_raw, dim=1, keepdim=True)


enc = VoiceEncoder()
state = torch.load(pt, map_location="cpu", weights_only=False)["model_state"]
enc.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))})
enc.eval()

mels = np.fromfile(mels_path, dtype=np.float32).reshape(n_frames, 40)
# resemblyzer's compute_partial_slices (rate 1.3/s, 160-frame windows, min coverage 0.75).
step, win, hop = 77, 160, 160
frames = math.ceil((n_samples + 1) / hop)
steps = max(1, frames - win + step + 1)
starts = list(range(0, steps, step))
if len(starts) > 1 and (n_samples - starts[-1] * hop) / (win * hop) < 0.75:
    starts.pop()
batch = torch.from_numpy(np.stack([mels[s:s + win] for s in starts]))


def embed():
    with torch.inference_mode():
        partials = enc(batch)
        e = partials.mean(0)
        return e / torch.norm(e)


embed()  # warm-up
t = time.perf_counter()
for _ in range(reps):
    e = embed()
dt = (time.perf_counter() - t) / reps
print(json.dumps({"impl": f"PyTorch {torch.__version__} (resemblyzer's VoiceEncoder module)",
                  "threads": torch.get_num_threads(), "seconds": dt, "partials": len(starts),
                  "embedding": e.tolist()}))
