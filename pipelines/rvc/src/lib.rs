//! RVC voice conversion in candle: the synthesiser (v1/v2, with and without pitch, NSF-HiFiGAN), RVC WebUI/Applio .pth loading, feature-index blending
