//! Text to speech: the front end whose output RVC turns into the person's voice, and the voice
//! the avatar speaks with until one is trained. espeak-ng (Debian's `espeak-ng` package) is
//! the fallback that installs everywhere; it runs as a program, so nothing links against it.
//!
//! Its pitch can be matched to the person's: `-p` (0–99) is searched for the setting whose
//! median F0 on a probe sentence is closest to theirs.

use crate::decode::Audio;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng; or set AVATAR_ESPEAK to its path)")]
    Missing,
    #[error("espeak-ng failed: {0}")]
    Failed(String),
    #[error("no text to speak")]
    EmptyText,
}

/// The espeak-ng program.
#[derive(Debug, Clone)]
pub struct Espeak {
    bin: PathBuf,
}

/// Longest text spoken in one call (a paragraph); longer text is the caller's to split.
pub const MAX_CHARS: usize = 5_000;
const PROBE: &str = "When I was a girl we walked to school along the river every morning.";

impl Espeak {
    /// `$AVATAR_ESPEAK`, else `espeak-ng` on the PATH.
    pub fn find() -> Result<Espeak, TtsError> {
        let bin = std::env::var_os("AVATAR_ESPEAK")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("espeak-ng"));
        match Command::new(&bin).arg("--version").output() {
            Ok(o) if o.status.success() => Ok(Espeak { bin }),
            _ => Err(TtsError::Missing),
        }
    }

    /// Speaks `text` with espeak voice `voice` (e.g. `en-us`, `en-gb+f3`) at pitch `pitch`
    /// (0–99, espeak's default 50).
    pub fn speak(&self, text: &str, voice: &str, pitch: u8) -> Result<Audio, TtsError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TtsError::EmptyText);
        }
        let out = self.run(
            &["-v", voice, "-p", &pitch.min(99).to_string(), "--stdout"],
            text,
        )?;
        // espeak-ng writes a WAV whose header sizes are unset when streaming; symphonia reads
        // to the end of the data anyway.
        crate::decode("espeak.wav", &out)
            .map_err(|e| TtsError::Failed(format!("its output is not audio: {e}")))
    }

    /// Runs espeak-ng with `args`, `text` (at most MAX_CHARS of it) on stdin — never in argv:
    /// it may start with '-' or hold anything — and returns its stdout.
    fn run(&self, args: &[&str], text: &str) -> Result<Vec<u8>, TtsError> {
        let text: String = text.chars().take(MAX_CHARS).collect();
        let mut child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TtsError::Failed(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| TtsError::Failed(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| TtsError::Failed(e.to_string()))?;
        if !out.status.success() {
            return Err(TtsError::Failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(out.stdout)
    }

    /// `text` as espeak's IPA phonemes (what Piper voices were trained on), one line per
    /// clause espeak found, joined with spaces.
    pub fn ipa(&self, text: &str, voice: &str) -> Result<String, TtsError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(String::new());
        }
        let out = self.run(&["-q", "--ipa", "-v", voice], text)?;
        let lines: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        Ok(lines.join(" "))
    }

    /// The pitch setting (0–99) whose median F0 on a probe sentence is closest to `target_hz`,
    /// and that median.
    pub fn match_pitch(&self, voice: &str, target_hz: f32) -> Result<(u8, f32), TtsError> {
        let mut best: Option<(u8, f32)> = None;
        for pitch in (0..=99).step_by(11) {
            let audio = self.speak(PROBE, voice, pitch)?;
            let track = crate::pitch::track(&audio.samples, audio.sample_rate)
                .map_err(|e| TtsError::Failed(e.to_string()))?;
            let Some(median) = crate::pitch::median(&track) else {
                continue;
            };
            let off = crate::pitch::semitones(target_hz, median).abs();
            if best.is_none_or(|(_, m)| off < crate::pitch::semitones(target_hz, m).abs()) {
                best = Some((pitch, median));
            }
        }
        best.ok_or_else(|| TtsError::Failed("no pitch found in its speech".into()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn espeak_speaks_and_its_pitch_follows_the_setting() {
        let Ok(espeak) = Espeak::find() else {
            eprintln!("skipping: espeak-ng not installed (apt-get install espeak-ng)");
            return;
        };
        let audio = espeak
            .speak("-p 0 is text, not an option.", "en-us", 50)
            .unwrap();
        assert!(audio.duration_ms() > 1_000, "{} ms", audio.duration_ms());
        let median = |p: u8| {
            let a = espeak.speak(PROBE, "en-us", p).unwrap();
            crate::pitch::median(&crate::pitch::track(&a.samples, a.sample_rate).unwrap()).unwrap()
        };
        let (low, high) = (median(10), median(90));
        assert!(high > low * 1.3, "pitch 10 → {low} Hz, 90 → {high} Hz");
        let (p, m) = espeak.match_pitch("en-us", high).unwrap();
        assert!(p >= 77, "matched {p} ({m} Hz) for {high} Hz");
        assert!(matches!(
            espeak.speak("   ", "en-us", 50),
            Err(TtsError::EmptyText)
        ));
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let e = Espeak {
            bin: PathBuf::from("/nonexistent/espeak-ng"),
        };
        assert!(matches!(
            e.speak("hello", "en-us", 50),
            Err(TtsError::Failed(_))
        ));
    }
}
