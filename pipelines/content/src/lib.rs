//! Speech content features for voice conversion: HuBERT-base / ContentVec in candle (fairseq and Hugging Face layouts)
