//! Audio signal processing that several speech models share. Whisper, the speaker encoder,
//! RMVPE, FCPE and RVC's training loss were each trained on librosa's mel filterbank with
//! different settings; one implementation here keeps them from drifting apart.

pub mod mel;
