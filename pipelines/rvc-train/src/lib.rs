//! Training an RVC v2 voice model in candle.
