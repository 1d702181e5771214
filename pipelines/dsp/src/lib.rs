//! Audio signal processing that several speech models share. Whisper, the speaker encoder,
//! RMVPE, FCPE and RVC's training loss were each trained on librosa's mel filterbank with
//! different settings, and each takes audio at its own rate; one implementation of each here
//! keeps them from drifting apart.

pub mod mel;
pub mod resample;
