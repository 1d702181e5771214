//! RMVPE neural pitch estimation (RVC's default F0 model) in candle.
