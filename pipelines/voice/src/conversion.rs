//! Speech in one voice → the same words in the person's voice, the way RVC's inference
//! pipeline does it: 16 kHz audio, high-passed; content features from HuBERT/ContentVec
//! (avatar-content); F0 at 100 Hz from RMVPE (RVC's default; avatar-rmvpe) or FCPE
//! (avatar-fcpe) when their weights are installed, else YIN; the pitch moved to the person's register; RVC's synthesiser (avatar-rvc) with
//! retrieval over the voice's feature index.

use crate::decode::Audio;
use avatar_content::{ContentEncoder, RvcVersion};
use avatar_rvc::{ConvertParams, FeatureIndex, Synthesizer, Version};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("content features: {0}")]
    Content(#[from] avatar_content::ContentError),
    #[error("voice model: {0}")]
    Rvc(#[from] avatar_rvc::RvcError),
    #[error("pitch (FCPE): {0}")]
    Fcpe(#[from] avatar_fcpe::FcpeError),
    #[error("pitch (RMVPE): {0}")]
    Rmvpe(#[from] avatar_rmvpe::RmvpeError),
    #[error("resampling: {0}")]
    Resample(#[from] crate::dsp::ResampleError),
    #[error("the voice model {model} takes {want}-dim content features, the content encoder gives {got}")]
    Mismatch {
        model: String,
        want: usize,
        got: usize,
    },
    #[error("too little speech to convert ({0} ms)")]
    TooShort(u64),
}

/// How F0 is tracked for conversion.
pub enum PitchTracker {
    /// RVC's own F0 model (robust to noise and accompaniment); `rmvpe.pt` is the user's to supply.
    Rmvpe(Box<avatar_rmvpe::Rmvpe>),
    /// torchfcpe's network, ported (more robust than YIN on breathy or noisy speech).
    Fcpe(Box<avatar_fcpe::Fcpe>),
    /// The DSP tracker, always available.
    Yin,
}

impl PitchTracker {
    /// RMVPE when `rmvpe.pt` is in the models folder, else FCPE when `infra/fetch-models.sh
    /// fcpe` installed its weights, else YIN.
    pub fn best_available() -> PitchTracker {
        if let Ok(r) = avatar_rmvpe::Rmvpe::load(avatar_rmvpe::Rmvpe::default_path()) {
            return PitchTracker::Rmvpe(Box::new(r));
        }
        let path = avatar_fcpe::Fcpe::default_path();
        match avatar_fcpe::Fcpe::load(&path) {
            Ok(f) => PitchTracker::Fcpe(Box::new(f)),
            Err(_) => PitchTracker::Yin,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            PitchTracker::Rmvpe(_) => "RMVPE",
            PitchTracker::Fcpe(_) => "FCPE",
            PitchTracker::Yin => "YIN",
        }
    }

    /// F0 in Hz per 10 ms frame (0 = unvoiced) of 16 kHz audio.
    pub fn track(&self, at_16k: &[f32]) -> Result<Vec<f32>, ConversionError> {
        Ok(match self {
            PitchTracker::Rmvpe(r) => r.f0(at_16k, avatar_rmvpe::DEFAULT_THRESHOLD)?,
            PitchTracker::Fcpe(f) => f.f0(at_16k, 16_000)?,
            PitchTracker::Yin => crate::pitch::track(at_16k, 16_000)?,
        })
    }
}

/// An RVC voice model (`.pth` from RVC WebUI or Applio; Avatar's own trainer is issue 10)
/// with its optional feature index (`.index`).
pub struct VoiceModel {
    pub synth: Synthesizer,
    pub index: Option<FeatureIndex>,
    pub path: PathBuf,
}

impl VoiceModel {
    pub fn load(pth: &Path, index: Option<&Path>) -> Result<VoiceModel, ConversionError> {
        let synth = Synthesizer::load(pth)?;
        let index = index.map(FeatureIndex::read).transpose()?;
        Ok(VoiceModel {
            synth,
            index,
            path: pth.to_path_buf(),
        })
    }

    /// "RVC v2, 40 kHz, with pitch" and the file name, for telling the user what spoke.
    pub fn describe(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!(
            "{file} (RVC {}, {} kHz, {}{})",
            self.synth.version().as_str(),
            self.synth.sample_rate() / 1000,
            if self.synth.has_pitch() {
                "with pitch"
            } else {
                "without pitch"
            },
            if self.index.is_some() {
                ", feature index"
            } else {
                ""
            }
        )
    }
}

/// What a conversion did besides the audio.
pub struct Conversion {
    pub audio: Audio,
    /// Pitch shift applied, in semitones.
    pub semitones: f32,
    /// Median F0 of the input speech, Hz.
    pub source_median_hz: Option<f32>,
}

/// Converts `samples` (any rate) into the voice of `model`. With `target_median_hz` (the
/// person's median F0) the pitch shift is set from the ratio of medians, as the issue asks;
/// otherwise `params.f0_up_key` is used as given.
pub fn convert(
    content: &ContentEncoder,
    pitch: &PitchTracker,
    model: &VoiceModel,
    samples: &[f32],
    rate: u32,
    target_median_hz: Option<f32>,
    params: &ConvertParams,
) -> Result<Conversion, ConversionError> {
    let at_16k = crate::dsp::resample(samples, rate, 16_000)?;
    // RVC high-passes its input at 48 Hz (hum and rumble carry no speech).
    let at_16k = crate::dsp::highpass(&at_16k, 16_000, 48.0);
    if at_16k.len() < avatar_content::RECEPTIVE_FIELD * 2 {
        return Err(ConversionError::TooShort(at_16k.len() as u64 / 16));
    }
    let version = match model.synth.version() {
        Version::V1 => RvcVersion::V1,
        Version::V2 => RvcVersion::V2,
    };
    let frames = content.encode_frames(&at_16k, version)?;
    let got = frames.first().map(Vec::len).unwrap_or(0);
    let want = model.synth.feature_dim();
    if got != want {
        return Err(ConversionError::Mismatch {
            model: model.describe(),
            want,
            got,
        });
    }
    let features: Vec<f32> = frames.into_iter().flatten().collect();
    let f0 = if model.synth.has_pitch() {
        pitch.track(&at_16k)?
    } else {
        Vec::new()
    };
    let source_median_hz = crate::pitch::median(&f0);
    let mut params = *params;
    if let (Some(target), Some(source)) = (target_median_hz, source_median_hz) {
        params.f0_up_key = crate::pitch::semitones(source, target);
    }
    let out = avatar_rvc::convert(
        &model.synth,
        model.index.as_ref(),
        &features,
        &f0,
        &params,
        None,
    )?;
    Ok(Conversion {
        audio: Audio {
            samples: out,
            sample_rate: model.synth.sample_rate(),
            channels: 1,
            codec: "rvc".into(),
            skipped_packets: 0,
        },
        semitones: params.f0_up_key,
        source_median_hz,
    })
}
