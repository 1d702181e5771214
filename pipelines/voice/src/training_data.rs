//! A person's clips → RVC training examples (40 kHz audio, content features, pitch, spectrogram).
