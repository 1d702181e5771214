"""Reference transcripts for avatar-transcribe's tests, from CTranslate2 itself (faster-whisper).

Run (the numbers are copied into pipelines/transcribe/tests/reference.rs):

    python -m pip install --target /tmp/fw ctranslate2==4.8.5 faster-whisper==1.2.1 av
    infra/fetch-models.sh whisper-tiny.en && infra/fetch-models.sh whisper-base
    PYTHONPATH=/tmp/fw python pipelines/transcribe/reference/make_reference.py

Greedy decoding (beam 1, temperature 0), no VAD, no conditioning on previous text: the same
decoding avatar-transcribe does. Inputs are the espeak-ng utterances in shared/reference (22.05 kHz;
faster-whisper resamples with PyAV, avatar with rubato, so the log-mel inputs differ slightly).
Also prints the log-mel values of a fixed three-sine signal checked in src/mel.rs.
"""
import os
import sys

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.feature_extractor import FeatureExtractor

models = os.environ.get("AVATAR_MODELS", os.path.expanduser("~/.cache/avatar/models"))
ref = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "reference")

for name in ["whisper-tiny.en", "whisper-base"]:
    model = WhisperModel(os.path.join(models, name), device="cpu", compute_type="float32")
    for wav in ["speech_a.wav", "speech_b.wav"]:
        segments, info = model.transcribe(
            os.path.join(ref, wav),
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        print(name, wav, info.language)
        for s in segments:
            print(f"  {s.start:.2f} {s.end:.2f} {s.text!r} {s.tokens}")

fe = FeatureExtractor(feature_size=80)
n = np.arange(8000)
t = n * 2 * np.pi / 16000
y = (0.3 * np.sin(220 * t) + 0.2 * np.sin(1250 * t) + 0.05 * np.sin(3100 * t)).astype(np.float32)
m = fe(y)
print("mel", m.shape, [(b, f, round(float(m[b, f]), 6)) for b, f in [(0, 0), (5, 10), (20, 25), (40, 49), (60, 30), (79, 50), (12, 0)]])
print("filter[0][1]", float(fe.mel_filters[0, 1]))
sys.exit(0)
