"""Phoneme ids that piper-tts itself makes, for pipelines/voice/tests/piper.rs.

    python -m pip install --target /tmp/piper piper-tts==1.8.0 onnxruntime==1.31.1
    infra/fetch-models.sh piper
    PYTHONPATH=/tmp/piper python pipelines/voice/reference/piper_ids.py
"""
import os

from piper import PiperVoice

models = os.environ.get("AVATAR_MODELS", os.path.expanduser("~/.cache/avatar/models"))
voice = PiperVoice.load(os.path.join(models, "piper", "en_US-joe-medium.onnx"))
for text in [
    "Always finish what you start, and tell the truth.",
    "When I was a girl, we walked to school! Did you?",
]:
    phonemes = voice.phonemize(text)
    print(text)
    print("  phonemes", ["".join(p) for p in phonemes])
    print("  ids", [voice.phonemes_to_ids(p) for p in phonemes])
