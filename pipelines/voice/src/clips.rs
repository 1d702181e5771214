//! Voice-activity slicing: a recording → 2–12 s clips of speech, the unit voice training and
//! speaker clustering work on, plus what was rejected and why.
//!
//! Detection works on a 16 kHz copy in 10 ms frames. The threshold adapts to the recording
//! (its noise floor + 10 dB, never below −55 dBFS), because a phone voice note and a camcorder
//! in a kitchen have floors 30 dB apart. Active stretches are joined over short pauses,
//! padded, and cut at the quietest frame when longer than the maximum.
//!
//! Rejected stretches: **silence** (too quiet overall), **clipping** (the recorder overloaded:
//! flat-topped waves teach a voice model distortion), **music** (sustained sound without the
//! pauses of speech: the share of low-energy frames, Scheirer & Slaney's classic
//! speech/music feature, is low for music and high for speech), **too short**.

use crate::dsp;

/// Analysis rate: voice activity needs nothing above 8 kHz.
pub const ANALYSIS_RATE: u32 = 16_000;
const FRAME_MS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    pub min_ms: u64,
    pub max_ms: u64,
    /// Pauses shorter than this stay inside one clip.
    pub join_gap_ms: u64,
    /// Silence kept before and after speech.
    pub pad_ms: u64,
    /// Loudness every clip is normalised to (LUFS), with a −1 dBFS peak ceiling.
    pub target_lufs: f64,
    /// Rumble below this is removed (Hz).
    pub highpass_hz: f64,
    /// Clips are stored at the recording's rate, but never above this (Hz).
    pub max_rate: u32,
    /// A clip whose samples reach full scale more often than this share is clipped.
    pub max_clipped_share: f32,
    /// A clip whose low-energy-frame share is below this is music, not speech.
    pub min_low_energy_share: f32,
}

impl Default for ClipConfig {
    fn default() -> Self {
        ClipConfig {
            min_ms: 2_000,
            max_ms: 12_000,
            join_gap_ms: 400,
            pad_ms: 150,
            target_lufs: -20.0,
            highpass_hz: 48.0,
            max_rate: 48_000,
            max_clipped_share: 0.001,
            min_low_energy_share: 0.12,
        }
    }
}

/// Why a stretch of a recording did not become a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Silence,
    Clipping,
    Music,
    TooShort,
}

impl Rejected {
    pub fn as_str(&self) -> &'static str {
        match self {
            Rejected::Silence => "silence",
            Rejected::Clipping => "clipping",
            Rejected::Music => "music",
            Rejected::TooShort => "too short",
        }
    }
}

/// One clip of speech, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Where it is in the recording (milliseconds from its start).
    pub start_ms: u64,
    pub end_ms: u64,
    /// High-passed, loudness-normalised mono samples at `sample_rate`.
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Level before normalisation (dBFS RMS), a hint of how far the speaker was.
    pub rms_dbfs: f32,
    /// Share of 10 ms frames well below the clip's mean level (speech pauses).
    pub low_energy_share: f32,
}

/// What slicing a recording gave.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Slicing {
    pub clips: Vec<Clip>,
    /// (start_ms, end_ms, why) of every stretch of sound that was not kept.
    pub rejected: Vec<(u64, u64, Rejected)>,
    pub duration_ms: u64,
}

impl Slicing {
    pub fn speech_ms(&self) -> u64 {
        self.clips.iter().map(|c| c.end_ms - c.start_ms).sum()
    }

    /// "3 clips (24.1 s of speech); rejected: 2 music, 1 too short".
    pub fn summary(&self) -> String {
        let mut counts: Vec<(Rejected, usize)> = Vec::new();
        for (_, _, r) in &self.rejected {
            match counts.iter_mut().find(|(k, _)| k == r) {
                Some((_, n)) => *n += 1,
                None => counts.push((*r, 1)),
            }
        }
        let mut s = format!(
            "{} clip(s) ({:.1} s of speech in {:.1} s)",
            self.clips.len(),
            self.speech_ms() as f64 / 1000.0,
            self.duration_ms as f64 / 1000.0
        );
        if !counts.is_empty() {
            let list: Vec<String> = counts
                .iter()
                .map(|(r, n)| format!("{n} {}", r.as_str()))
                .collect();
            s.push_str(&format!("; rejected: {}", list.join(", ")));
        }
        s
    }
}

/// Frame levels (dBFS) of 10 ms frames.
fn frame_db(x: &[f32], rate: u32) -> Vec<f32> {
    let n = rate as usize * FRAME_MS / 1000;
    x.chunks(n.max(1)).map(dsp::rms_dbfs).collect()
}

fn percentile(values: &[f32], p: f32) -> f32 {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f32::NEG_INFINITY;
    }
    v.sort_by(f32::total_cmp);
    let i = ((v.len() - 1) as f32 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Share of frames whose power is below half the mean power of the stretch.
fn low_energy_share(db: &[f32]) -> f32 {
    let powers: Vec<f64> = db
        .iter()
        .map(|&d| {
            if d.is_finite() {
                10f64.powf(d as f64 / 10.0)
            } else {
                0.0
            }
        })
        .collect();
    if powers.is_empty() {
        return 0.0;
    }
    let mean = powers.iter().sum::<f64>() / powers.len() as f64;
    powers.iter().filter(|&&p| p < 0.5 * mean).count() as f32 / powers.len() as f32
}

/// Slices `samples` (mono, at `rate`) into clips of speech.
pub fn slice_clips(
    samples: &[f32],
    rate: u32,
    config: &ClipConfig,
) -> Result<Slicing, dsp::ResampleError> {
    let duration_ms = if rate == 0 {
        0
    } else {
        samples.len() as u64 * 1000 / rate as u64
    };
    let mut out = Slicing {
        duration_ms,
        ..Slicing::default()
    };
    if !crate::decode::RATES.contains(&rate) || samples.is_empty() {
        // Nothing a recording can hold: no clips (decode never yields such a rate).
        return Ok(out);
    }
    let analysis = dsp::highpass(
        &dsp::resample(samples, rate, ANALYSIS_RATE)?,
        ANALYSIS_RATE,
        config.highpass_hz,
    );
    let db = frame_db(&analysis, ANALYSIS_RATE);
    let floor = percentile(&db, 0.1);
    let threshold = (floor + 10.0).max(-55.0);
    let active: Vec<bool> = db.iter().map(|&d| d > threshold).collect();

    // Runs of active frames, joined over short pauses.
    let join = (config.join_gap_ms as usize / FRAME_MS).max(1);
    let mut runs: Vec<(usize, usize)> = Vec::new(); // [start, end) in frames
    let mut i = 0;
    while i < active.len() {
        if !active[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < active.len() && active[i] {
            i += 1;
        }
        match runs.last_mut() {
            Some(last) if start - last.1 < join => last.1 = i,
            _ => runs.push((start, i)),
        }
    }
    if runs.is_empty() {
        // Nothing rose above the floor: the whole recording is silence (or constant noise).
        out.rejected.push((0, duration_ms, Rejected::Silence));
        return Ok(out);
    }

    // Padding, then cuts at the quietest frame so no piece is longer than the maximum.
    let pad = config.pad_ms as usize / FRAME_MS;
    let max = (config.max_ms as usize / FRAME_MS).max(2);
    let min = config.min_ms as usize / FRAME_MS;
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    for (s, e) in runs {
        let (mut s, e) = (s.saturating_sub(pad), (e + pad).min(db.len()));
        while e - s > max {
            // Cut in the second half of the allowed length, at its quietest frame.
            let lo = s + max / 2;
            let hi = s + max;
            let cut = (lo..hi)
                .min_by(|&a, &b| db[a].total_cmp(&db[b]))
                .unwrap_or(hi);
            pieces.push((s, cut));
            s = cut;
        }
        pieces.push((s, e));
    }

    let out_rate = rate.min(config.max_rate);
    let stored = if out_rate == rate {
        samples.to_vec()
    } else {
        dsp::resample(samples, rate, out_rate)?
    };
    let stored = dsp::highpass(&stored, out_rate, config.highpass_hz);
    let frame_ms = FRAME_MS as u64;
    for (s, e) in pieces {
        let (start_ms, end_ms) = (s as u64 * frame_ms, (e as u64 * frame_ms).min(duration_ms));
        if e - s < min {
            out.rejected.push((start_ms, end_ms, Rejected::TooShort));
            continue;
        }
        // Clipping is judged on the original samples: the high-pass rounds flat tops.
        let (a, b) = (
            (start_ms * rate as u64 / 1000) as usize,
            ((end_ms * rate as u64 / 1000) as usize).min(samples.len()),
        );
        let original = &samples[a.min(b)..b];
        let clipped = original.iter().filter(|v| v.abs() >= 0.999).count() as f32;
        if clipped / original.len().max(1) as f32 > config.max_clipped_share {
            out.rejected.push((start_ms, end_ms, Rejected::Clipping));
            continue;
        }
        let low = low_energy_share(&db[s..e]);
        if low < config.min_low_energy_share {
            out.rejected.push((start_ms, end_ms, Rejected::Music));
            continue;
        }
        let (a, b) = (
            (start_ms * out_rate as u64 / 1000) as usize,
            ((end_ms * out_rate as u64 / 1000) as usize).min(stored.len()),
        );
        let mut clip = stored[a.min(b)..b].to_vec();
        let rms = dsp::rms_dbfs(&clip);
        if rms < -60.0 {
            out.rejected.push((start_ms, end_ms, Rejected::Silence));
            continue;
        }
        dsp::normalize_loudness(&mut clip, out_rate, config.target_lufs, 0.891);
        out.clips.push(Clip {
            start_ms,
            end_ms,
            samples: clip,
            sample_rate: out_rate,
            rms_dbfs: rms,
            low_energy_share: low,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    /// Speech-like sound: a 150 Hz buzz with harmonics whose level follows syllables (4 per
    /// second, with a gap between words), deterministic noise added.
    fn speechlike(seconds: f64, rate: u32, amp: f32) -> Vec<f32> {
        let n = (seconds * rate as f64) as usize;
        let mut seed = 12345u32;
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let syllable = ((t * 4.0).fract() * std::f64::consts::PI).sin().powi(2);
                let word_gap = if (t * 1.0).fract() > 0.8 { 0.0 } else { 1.0 };
                let f0 = 150.0 + 20.0 * (t * 1.3).sin();
                let voice: f64 = (1..8)
                    .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                    .sum();
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (seed >> 8) as f64 / (1u32 << 24) as f64 - 0.5;
                (amp as f64 * (syllable * word_gap * voice * 0.5 + 0.02 * noise)) as f32
            })
            .collect()
    }

    fn silence(seconds: f64, rate: u32) -> Vec<f32> {
        let mut seed = 7u32;
        (0..(seconds * rate as f64) as usize)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.0005
            })
            .collect()
    }

    /// Music-like sound: a sustained chord with slow vibrato, no pauses.
    fn chord(seconds: f64, rate: u32) -> Vec<f32> {
        (0..(seconds * rate as f64) as usize)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let v: f64 = [220.0, 277.2, 329.6, 440.0]
                    .iter()
                    .map(|f| {
                        (2.0 * std::f64::consts::PI * f * t * (1.0 + 0.002 * (t * 5.0).sin())).sin()
                    })
                    .sum();
                (0.15 * v) as f32
            })
            .collect()
    }

    #[test]
    fn speech_between_silences_becomes_clips_at_the_right_times() {
        let mut x = silence(2.0, RATE);
        x.extend(speechlike(5.0, RATE, 0.3));
        x.extend(silence(3.0, RATE));
        x.extend(speechlike(4.0, RATE, 0.05)); // a quieter speaker further away
        x.extend(silence(1.0, RATE));
        let s = slice_clips(&x, RATE, &ClipConfig::default()).unwrap();
        assert_eq!(s.clips.len(), 2, "{}", s.summary());
        let c = &s.clips[0];
        assert!(c.start_ms >= 1_700 && c.start_ms <= 2_100, "{}", c.start_ms);
        assert!(c.end_ms >= 6_700 && c.end_ms <= 7_300, "{}", c.end_ms);
        let d = &s.clips[1];
        assert!(
            d.start_ms >= 9_700 && d.start_ms <= 10_100,
            "{}",
            d.start_ms
        );
        // Both normalised to the same loudness although recorded 16 dB apart.
        let l0 = dsp::loudness_lufs(&c.samples, RATE).unwrap();
        let l1 = dsp::loudness_lufs(&d.samples, RATE).unwrap();
        assert!((l0 - l1).abs() < 1.0, "{l0} vs {l1}");
        assert!(c.rms_dbfs > d.rms_dbfs + 10.0);
        assert!(s.summary().starts_with("2 clip(s)"), "{}", s.summary());
    }

    #[test]
    fn long_speech_is_cut_into_pieces_no_longer_than_the_maximum() {
        let x = speechlike(40.0, RATE, 0.3);
        let cfg = ClipConfig::default();
        let s = slice_clips(&x, RATE, &cfg).unwrap();
        assert!(s.clips.len() >= 4, "{}", s.summary());
        for c in &s.clips {
            assert!(
                c.end_ms - c.start_ms <= cfg.max_ms,
                "{}..{}",
                c.start_ms,
                c.end_ms
            );
        }
        // Pieces follow each other: together they cover the speech.
        assert!(s.speech_ms() + 2_500 >= 40_000, "{}", s.summary());
    }

    #[test]
    fn silence_clipping_music_and_short_bursts_are_rejected_with_reasons() {
        let s = slice_clips(&silence(5.0, RATE), RATE, &ClipConfig::default()).unwrap();
        assert!(s.clips.is_empty());
        assert_eq!(s.rejected, vec![(0, 5_000, Rejected::Silence)]);

        let mut x = silence(1.0, RATE);
        x.extend(chord(6.0, RATE));
        x.extend(silence(1.0, RATE));
        let s = slice_clips(&x, RATE, &ClipConfig::default()).unwrap();
        assert!(s.clips.is_empty(), "{}", s.summary());
        assert!(
            s.rejected.iter().any(|r| r.2 == Rejected::Music),
            "{:?}",
            s.rejected
        );

        let mut x = silence(1.0, RATE);
        x.extend(
            speechlike(5.0, RATE, 3.0)
                .into_iter()
                .map(|v| v.clamp(-1.0, 1.0)),
        );
        x.extend(silence(1.0, RATE));
        let s = slice_clips(&x, RATE, &ClipConfig::default()).unwrap();
        assert!(s.clips.is_empty(), "{}", s.summary());
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].2, Rejected::Clipping);

        let mut x = silence(2.0, RATE);
        x.extend(speechlike(0.7, RATE, 0.3));
        x.extend(silence(2.0, RATE));
        let s = slice_clips(&x, RATE, &ClipConfig::default()).unwrap();
        assert!(s.clips.is_empty());
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].2, Rejected::TooShort);
        assert!(s.summary().contains("1 too short"), "{}", s.summary());
    }

    #[test]
    fn clips_keep_the_recording_rate_up_to_the_maximum() {
        let mut x = silence(0.5, 44_100);
        x.extend(speechlike(3.0, 44_100, 0.3));
        x.extend(silence(0.5, 44_100));
        let s = slice_clips(&x, 44_100, &ClipConfig::default()).unwrap();
        assert_eq!(s.clips.len(), 1, "{}", s.summary());
        let c = &s.clips[0];
        assert_eq!(c.sample_rate, 44_100);
        let expected = (c.end_ms - c.start_ms) as usize * 44_100 / 1000;
        assert!(
            (c.samples.len() as i64 - expected as i64).abs() <= 44,
            "{}",
            c.samples.len()
        );
        let peak = c.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak <= 0.892, "{peak}");
        let s96 = slice_clips(
            &crate::dsp::resample(&x, 44_100, 96_000).unwrap(),
            96_000,
            &ClipConfig::default(),
        )
        .unwrap();
        assert_eq!(s96.clips[0].sample_rate, 48_000);
    }

    #[test]
    fn real_speech_is_kept_and_not_called_music() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
        for name in ["speech_a.wav", "speech_b.wav"] {
            let Ok(bytes) = std::fs::read(dir.join(name)) else {
                eprintln!("skipping: ../shared/reference/{name} not found");
                return;
            };
            let audio = crate::decode(name, &bytes).unwrap();
            let s = slice_clips(&audio.samples, audio.sample_rate, &ClipConfig::default()).unwrap();
            assert!(!s.clips.is_empty(), "{name}: {}", s.summary());
            assert!(
                s.speech_ms() as f64 >= 0.6 * audio.duration_ms() as f64,
                "{name}: {}",
                s.summary()
            );
            assert!(
                !s.rejected.iter().any(|r| r.2 == Rejected::Music),
                "{name}: {:?}",
                s.rejected
            );
            eprintln!(
                "{name}: {}; low-energy shares {:?}",
                s.summary(),
                s.clips
                    .iter()
                    .map(|c| c.low_energy_share)
                    .collect::<Vec<_>>()
            );
        }
    }
}
