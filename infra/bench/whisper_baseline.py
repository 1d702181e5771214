"""faster-whisper (CTranslate2) on the same model.bin and audio as avatar-transcribe's bench.

Usage: python whisper_baseline.py MODEL_DIR AUDIO_F32LE_16K REPS  → prints seconds per run
(greedy, beam 1, temperature 0, no VAD: the decoding avatar-transcribe does), then the text.
"""
import sys
import time

import numpy as np
from faster_whisper import WhisperModel

model_dir, audio_path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
audio = np.fromfile(audio_path, dtype="<f4")
model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)


def run():
    segments, _ = model.transcribe(audio, beam_size=1, temperature=0.0,
                                   condition_on_previous_text=False, vad_filter=False)
    return " ".join(s.text.strip() for s in segments)


run()  # warm-up
t = time.perf_counter()
for _ in range(reps):
    text = run()
print((time.perf_counter() - t) / reps)
print(text)
