//! FCPE neural pitch estimation in candle with torchfcpe's weights
