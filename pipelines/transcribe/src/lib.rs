//! Speech to text: Whisper in candle from CTranslate2 model.bin or Hugging Face weights, timestamps, word error rate
