//! A person's clips → RVC training examples (40 kHz audio, content features, pitch, spectrogram).
//!
//! What RVC WebUI's preprocessing and feature extraction write to disk before training, as pure
//! functions: each voice-activity clip is high-passed at 48 Hz, cut into 3.7 s pieces that
//! overlap by 0.3 s, each piece peak-normalised (pieces peaking above 2.5 are dropped, as RVC's
//! "filtered" check does), resampled to the training rate and to 16 kHz; the 16 kHz copy gives
//! HuBERT/ContentVec features (RVC v2: layer 12, 50 Hz) and F0 at 100 Hz. The features are
//! repeated to 100 Hz and everything is trimmed to one frame count, as RVC's data loader does,
//! so frame `i` is spectrogram column `i` at a hop of 10 ms.
//!
//! One difference from RVC: the 48 Hz high-pass is [`dsp::highpass`] (4th-order Butterworth run
//! forwards and backwards) where RVC runs a 5th-order one forwards only (`lfilter`); both leave
//! speech untouched, theirs avoids pre-ringing before sharp onsets, ours shifts no phase.

use crate::conversion::{ConversionError, PitchTracker};
use crate::dsp;
use avatar_content::{ContentEncoder, RvcVersion};

/// One training piece: the target audio and its frame-aligned conditioning.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingExample {
    /// Mono audio at `sample_rate`, exactly `frames * sample_rate / 100` samples.
    pub wav: Vec<f32>,
    pub sample_rate: u32,
    /// `[frames, dim]` row-major at 100 Hz: the 50 Hz content features, each row twice.
    pub features: Vec<f32>,
    pub dim: usize,
    /// `[frames]` F0 in Hz, 0 where unvoiced (RVC's `pitchf`).
    pub f0: Vec<f32>,
    /// `[frames]` F0 quantised to 1..=255 on the mel scale (RVC's `pitch`), 1 where unvoiced.
    pub f0_coarse: Vec<u32>,
    pub frames: usize,
    /// The clip id and the piece's index within it, `"{clip}#{index}"`, for error messages and logs.
    pub source: String,
}

impl TrainingExample {
    /// Length of the audio in seconds.
    pub fn seconds(&self) -> f64 {
        self.wav.len() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// Samples per frame at this example's rate (400 at 40 kHz).
    pub fn hop(&self) -> usize {
        (self.sample_rate / FRAME_RATE) as usize
    }
}

/// Frames per second of the synthesiser's conditioning (F0 hop of 10 ms).
pub const FRAME_RATE: u32 = 100;
/// The rate the content encoder and the F0 trackers read.
const ANALYSIS_RATE: u32 = avatar_content::SAMPLE_RATE;

/// RVC's preprocessing constants (`preprocess.py`), adjustable for tests and low-memory runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentOptions {
    /// Piece length in seconds (RVC's `per`; 3.0 in its low-memory mode).
    pub per: f64,
    /// Seconds each piece shares with the next.
    pub overlap: f64,
    /// Peak the normalisation aims at (RVC's `max`).
    pub max: f32,
    /// Share of the peak-normalised signal in the mix with the original (RVC's `alpha`): 0.75
    /// normalises most of the way while keeping some of the clip's own level.
    pub alpha: f32,
    /// Pieces peaking above this are dropped: such values are not audio, they are a broken
    /// decode or a badly scaled file.
    pub filter_peak: f32,
    /// High-pass cutoff in Hz (0 = none): rumble and mains hum carry no speech.
    pub highpass_hz: f64,
    /// Pieces with fewer 10 ms frames are skipped by [`prepare`]: the trainer cuts random
    /// windows of 32–40 frames (12 800 samples at 32/40 kHz, 17 280 at 48 kHz), so a shorter
    /// piece cannot fill one.
    pub min_frames: usize,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            per: 3.7,
            overlap: 0.3,
            max: 0.9,
            alpha: 0.75,
            filter_peak: 2.5,
            highpass_hz: 48.0,
            min_frames: 40,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainingDataError {
    #[error(
        "training sample rate {0} Hz: it must be a positive multiple of 100 Hz, so that a \
         10 ms frame is a whole number of samples (RVC trains at 32, 40 or 48 kHz)"
    )]
    TargetRate(u32),
    #[error("{clip}: the clip's sample rate is 0 Hz")]
    ClipRate { clip: String },
    #[error("{piece}: {error}")]
    Piece {
        piece: String,
        #[source]
        error: Box<ConversionError>,
    },
}

/// RVC's cutting and normalisation of one voice-activity clip: high-pass, pieces of `per`
/// seconds starting every `per - overlap` seconds while more than `per + overlap` seconds are
/// left, then one last piece with all the rest (so no piece is longer than `per + overlap`
/// and the end is never lost); each piece normalised to
/// `x / max|x| * (max * alpha) + (1 - alpha) * x`. Pieces peaking above `filter_peak`, silent
/// ones and ones holding NaN or infinity are left out.
pub fn segment(samples: &[f32], sample_rate: u32, opts: &SegmentOptions) -> Vec<Vec<f32>> {
    if samples.is_empty() || sample_rate == 0 {
        return Vec::new();
    }
    let audio = dsp::highpass(samples, sample_rate, opts.highpass_hz);
    let sr = f64::from(sample_rate);
    // Computed as RVC does (`int(sr * (per - overlap) * i)`), so piece boundaries match its.
    let step = opts.per - opts.overlap;
    let piece_len = (sr * opts.per) as usize;
    let tail = (opts.per + opts.overlap) * sr;
    let mut pieces = Vec::new();
    for i in 0usize.. {
        let start = ((sr * step * i as f64) as usize).min(audio.len());
        let rest = &audio[start..];
        let last = rest.len() as f64 <= tail || step <= 0.0;
        let piece = if last {
            rest
        } else {
            &rest[..piece_len.min(rest.len())]
        };
        if let Some(p) = normalise(piece, opts) {
            pieces.push(p);
        }
        if last {
            break;
        }
    }
    pieces
}

/// RVC's `norm_write` without the writing; `None` for a piece it would not (or could not) keep.
fn normalise(piece: &[f32], opts: &SegmentOptions) -> Option<Vec<f32>> {
    if piece.is_empty() || piece.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let peak = piece.iter().fold(0f32, |m, x| m.max(x.abs()));
    if peak > opts.filter_peak || peak == 0.0 {
        return None;
    }
    let gain = opts.max * opts.alpha / peak + (1.0 - opts.alpha);
    Some(piece.iter().map(|x| x * gain).collect())
}

/// One clip → training examples at `target_sr`: [`segment`], then per piece the audio at
/// `target_sr`, content features for RVC `version` (v2: the encoder's last layer, unprojected; v1: projected to 256) and F0 from
/// `pitch`, both on a 16 kHz copy, aligned to one frame count. Pieces too short to give
/// `opts.min_frames` frames are skipped; an empty result is not an error.
pub fn prepare(
    clip_samples: &[f32],
    clip_rate: u32,
    source: &str,
    target_sr: u32,
    version: RvcVersion,
    content: &ContentEncoder,
    pitch: &PitchTracker,
    opts: &SegmentOptions,
) -> Result<Vec<TrainingExample>, TrainingDataError> {
    if target_sr == 0 || !target_sr.is_multiple_of(FRAME_RATE) {
        return Err(TrainingDataError::TargetRate(target_sr));
    }
    if clip_rate == 0 {
        return Err(TrainingDataError::ClipRate {
            clip: source.to_string(),
        });
    }
    let hop = (target_sr / FRAME_RATE) as usize;
    let mut out = Vec::new();
    for (index, piece) in segment(clip_samples, clip_rate, opts).iter().enumerate() {
        let name = format!("{source}#{index}");
        let example = align(
            piece,
            clip_rate,
            target_sr,
            hop,
            version,
            content,
            pitch,
            name.clone(),
        )
        .map_err(|error| TrainingDataError::Piece {
            piece: name,
            error: Box::new(error),
        })?;
        if let Some(e) = example.filter(|e| e.frames >= opts.min_frames.max(1)) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Features and F0 for one normalised piece, trimmed to the frames all three sources cover;
/// `None` when the piece is too short for the encoder to give any frame.
fn align(
    piece: &[f32],
    rate: u32,
    target_sr: u32,
    hop: usize,
    version: RvcVersion,
    content: &ContentEncoder,
    pitch: &PitchTracker,
    source: String,
) -> Result<Option<TrainingExample>, ConversionError> {
    // Both copies come from the piece itself rather than one from the other, so neither is
    // resampled twice; `dsp::resample` keeps timing, so they stay aligned.
    let at_16k = dsp::resample(piece, rate, ANALYSIS_RATE)?;
    if content.frame_count(at_16k.len()) == 0 {
        return Ok(None);
    }
    let mut wav = dsp::resample(piece, rate, target_sr)?;
    let rows = content.encode_frames(&at_16k, version)?;
    let dim = rows.first().map(Vec::len).unwrap_or(0);
    let mut f0 = pitch.track(&at_16k)?;
    // RVC's loader: phone = np.repeat(phone, 2, axis=0), then everything cut to the shortest.
    let frames = (rows.len() * 2).min(f0.len()).min(wav.len() / hop);
    if frames == 0 || dim == 0 {
        return Ok(None);
    }
    let features: Vec<f32> = rows
        .iter()
        .flat_map(|r| [r, r])
        .take(frames)
        .flatten()
        .copied()
        .collect();
    f0.truncate(frames);
    wav.truncate(frames * hop);
    let f0_coarse = avatar_rvc::f0_to_coarse(&f0);
    Ok(Some(TrainingExample {
        wav,
        sample_rate: target_sr,
        features,
        dim,
        f0,
        f0_coarse,
        frames,
        source,
    }))
}

/// RVC's advice on how much speech a voice model wants, in minutes.
pub const RECOMMENDED_MINUTES: (f64, f64) = (10.0, 50.0);

/// How much speech the examples hold, for telling the user whether it is enough.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpeechAmount {
    /// Seconds of audio the model trains on. Consecutive pieces of a clip share `overlap`
    /// (0.3 s of 3.7 s), so this is up to ~9 % above the clips' own total.
    pub seconds: f64,
    pub examples: usize,
}

impl SpeechAmount {
    pub fn of(examples: &[TrainingExample]) -> SpeechAmount {
        SpeechAmount {
            seconds: examples.iter().map(TrainingExample::seconds).sum(),
            examples: examples.len(),
        }
    }

    pub fn minutes(&self) -> f64 {
        self.seconds / 60.0
    }

    /// Below RVC's recommended range (the voice will be rough or unstable).
    pub fn too_little(&self) -> bool {
        self.minutes() < RECOMMENDED_MINUTES.0
    }
}

impl std::fmt::Display for SpeechAmount {
    /// "12.5 min of speech in 203 pieces; RVC recommends 10–50".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} min of speech in {} pieces; RVC recommends {}–{}",
            self.minutes(),
            self.examples,
            RECOMMENDED_MINUTES.0,
            RECOMMENDED_MINUTES.1
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const SR: u32 = 40_000;

    fn no_highpass() -> SegmentOptions {
        SegmentOptions {
            highpass_hz: 0.0,
            ..SegmentOptions::default()
        }
    }

    /// A voiced sound: `f0` Hz with four harmonics, peak about `amp`.
    fn voiced(f0: f32, rate: u32, seconds: f32, amp: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (1..5)
                    .map(|h| {
                        amp / 2.0 / h as f32 * (std::f32::consts::TAU * f0 * h as f32 * t).sin()
                    })
                    .sum()
            })
            .collect()
    }

    fn peak(x: &[f32]) -> f32 {
        x.iter().fold(0f32, |m, v| m.max(v.abs()))
    }

    #[test]
    fn pieces_are_3_7_s_every_3_4_s_and_the_last_keeps_the_tail() {
        // A ramp, so each piece's position in the clip can be read back from its values.
        let n = SR as usize * 10;
        let ramp: Vec<f32> = (0..n).map(|i| 0.1 + 0.4 * i as f32 / n as f32).collect();
        let pieces = segment(&ramp, SR, &no_highpass());
        // Starts 0, 3.4, 6.8 s; at 6.8 s only 3.2 s (≤ 4.0) is left, so that piece takes it all.
        let lens: Vec<usize> = pieces.iter().map(Vec::len).collect();
        assert_eq!(lens, [148_000, 148_000, 128_000]);
        // Undo each piece's gain (x * g) with its first sample and check where it started.
        for (piece, start) in pieces.iter().zip([0usize, 136_000, 272_000]) {
            let g = piece[0] / ramp[start];
            for (k, &v) in piece.iter().enumerate().step_by(997) {
                assert!((v / g - ramp[start + k]).abs() < 1e-5, "{start}+{k}");
            }
        }
        // 0.3 s of overlap: the end of one piece is the start of the next.
        let (a, b) = (&pieces[0], &pieces[1]);
        let g = (a[0] / ramp[0], b[0] / ramp[136_000]);
        assert!(((a[136_000] / g.0) - (b[0] / g.1)).abs() < 1e-6);
        assert!(((a[147_999] / g.0) - (b[11_999] / g.1)).abs() < 1e-6);
    }

    #[test]
    fn boundaries_of_the_tail_rule() {
        let opts = no_highpass();
        let lens = |samples: usize| -> Vec<usize> {
            segment(&vec![0.5; samples], SR, &opts)
                .iter()
                .map(Vec::len)
                .collect()
        };
        // Up to 4.0 s is one piece, however long.
        assert_eq!(lens(40_000), [40_000]);
        assert_eq!(lens(160_000), [160_000]);
        // Just over 4.0 s: 3.7 s, then the 0.6 s from 3.4 s on.
        assert_eq!(lens(160_001), [148_000, 24_001]);
        assert_eq!(lens(296_000), [148_000, 160_000]);
        assert_eq!(lens(296_001), [148_000, 148_000, 24_001]);
        assert!(segment(&[], SR, &opts).is_empty());
        assert!(segment(&[0.1; 100], 0, &opts).is_empty());
    }

    #[test]
    fn normalisation_is_rvcs_mix_and_loud_pieces_are_filtered() {
        let opts = no_highpass();
        // peak p → 0.9 * 0.75 + 0.25 * p.
        for amp in [0.05f32, 0.3, 1.0, 2.0] {
            let x = voiced(150.0, SR, 2.0, amp);
            let p = peak(&x);
            let pieces = segment(&x, SR, &opts);
            assert_eq!(pieces.len(), 1);
            let want = 0.675 + 0.25 * p;
            assert!(
                (peak(&pieces[0]) - want).abs() < 1e-5,
                "{amp}: {}",
                peak(&pieces[0])
            );
            // The shape is unchanged: one gain for the whole piece.
            let g = pieces[0][1000] / x[1000];
            assert!(pieces[0]
                .iter()
                .zip(&x)
                .all(|(y, x)| (y - g * x).abs() < 1e-5));
        }
        // 10 s, with a peak of 3.0 inside the second piece only (at 5 s; pieces 0–3.7, 3.4–7.1,
        // 6.8–10): that piece goes, the others stay.
        let mut x = voiced(150.0, SR, 10.0, 0.5);
        x[SR as usize * 5] = 3.0;
        let pieces = segment(&x, SR, &opts);
        assert_eq!(
            pieces.iter().map(Vec::len).collect::<Vec<_>>(),
            [148_000, 128_000]
        );
        // Silence and NaN are left out rather than turned into NaN pieces.
        assert!(segment(&vec![0.0; 40_000], SR, &opts).is_empty());
        let mut nan = voiced(150.0, SR, 1.0, 0.5);
        nan[10] = f32::NAN;
        assert!(segment(&nan, SR, &opts).is_empty());
    }

    #[test]
    fn the_default_high_pass_removes_rumble() {
        let rate = 16_000;
        let rumble: Vec<f32> = (0..rate as usize * 2)
            .map(|i| 0.5 * (std::f32::consts::TAU * 15.0 * i as f32 / rate as f32).sin())
            .collect();
        let mixed: Vec<f32> = voiced(200.0, rate, 2.0, 0.2)
            .iter()
            .zip(&rumble)
            .map(|(a, b)| a + b)
            .collect();
        let with = segment(&mixed, rate, &SegmentOptions::default());
        let without = segment(&mixed, rate, &no_highpass());
        // Without the filter the 15 Hz rumble dominates the peak and the voice is left quiet;
        // with it the voice is what gets normalised.
        let mid = |x: &[f32]| peak(&x[8_000..24_000]);
        let voice_only = segment(&voiced(200.0, rate, 2.0, 0.2), rate, &no_highpass());
        assert!(
            (mid(&with[0]) - mid(&voice_only[0])).abs() < 0.05,
            "{}",
            mid(&with[0])
        );
        assert!(mid(&without[0]) > mid(&voice_only[0]) + 0.1);
    }

    /// avatar-content's small random HuBERT (12 layers, 32 wide): real code, tiny weights.
    fn tiny_content() -> ContentEncoder {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../content/testdata/hf");
        ContentEncoder::load(dir).unwrap()
    }

    #[test]
    fn prepare_aligns_audio_features_and_pitch() {
        let content = tiny_content();
        // 8 s at 48 kHz (clips are kept at their own rate): pieces of 3.7, 3.7 and 1.2 s.
        let clip = voiced(140.0, 48_000, 8.0, 0.3);
        let examples = prepare(
            &clip,
            48_000,
            "clip-7",
            40_000,
            RvcVersion::V2,
            &content,
            &PitchTracker::Yin,
            &SegmentOptions::default(),
        )
        .unwrap();
        assert_eq!(examples.len(), 3);
        for (i, e) in examples.iter().enumerate() {
            assert_eq!(e.source, format!("clip-7#{i}"));
            assert_eq!(e.sample_rate, 40_000);
            assert_eq!(e.hop(), 400);
            assert_eq!(e.dim, 32);
            assert_eq!(e.wav.len(), e.frames * 400);
            assert_eq!(e.features.len(), e.frames * e.dim);
            assert_eq!(e.f0.len(), e.frames);
            assert_eq!(e.f0_coarse.len(), e.frames);
            assert!(e.f0_coarse.iter().all(|c| (1..=255).contains(c)));
            // Each 50 Hz feature row appears twice.
            for pair in e.features.chunks_exact(2 * e.dim) {
                assert_eq!(pair[..e.dim], pair[e.dim..]);
            }
            assert!(e.features.iter().all(|v| v.is_finite()));
            // Within a frame or two of the piece: nothing lost but the last partial frames.
            let piece_frames = if i < 2 { 370 } else { 120 };
            assert!(
                e.frames <= piece_frames && e.frames + 3 >= piece_frames,
                "{i}: {} frames",
                e.frames
            );
            // Voiced at 140 Hz away from the ends (YIN has no signal past them).
            let inner = &e.f0[5..e.frames - 5];
            let voiced = inner.iter().filter(|&&f| (f - 140.0).abs() < 3.0).count();
            assert!(
                voiced * 10 >= inner.len() * 9,
                "{i}: {voiced}/{}",
                inner.len()
            );
            let voiced_coarse = e.f0_coarse[e.frames / 2];
            assert!(voiced_coarse > 1, "{voiced_coarse}");
        }
        let amount = SpeechAmount::of(&examples);
        assert_eq!(amount.examples, 3);
        // 3.7 + 3.7 + 1.2 s less the trimmed partial frames.
        assert!((amount.seconds - 8.6).abs() < 0.1, "{}", amount.seconds);
        assert!(amount.too_little());
        assert_eq!(
            amount.to_string(),
            "0.1 min of speech in 3 pieces; RVC recommends 10–50"
        );
    }

    #[test]
    fn prepare_skips_short_pieces_and_rejects_bad_rates() {
        let content = tiny_content();
        let opts = SegmentOptions::default();
        // 0.3 s = 30 frames, under the 40 a training window needs.
        let short = voiced(140.0, 16_000, 0.3, 0.3);
        let none = prepare(
            &short,
            16_000,
            "s",
            40_000,
            RvcVersion::V2,
            &content,
            &PitchTracker::Yin,
            &opts,
        );
        assert!(none.unwrap().is_empty());
        // Too short for even one HuBERT frame.
        let tiny = voiced(140.0, 16_000, 0.01, 0.3);
        let none = prepare(
            &tiny,
            16_000,
            "t",
            40_000,
            RvcVersion::V2,
            &content,
            &PitchTracker::Yin,
            &opts,
        );
        assert!(none.unwrap().is_empty());
        // 32 and 48 kHz give hops of 320 and 480.
        let clip = voiced(140.0, 22_050, 1.0, 0.3);
        for (sr, hop) in [(32_000, 320), (48_000, 480)] {
            let e = prepare(
                &clip,
                22_050,
                "c",
                sr,
                RvcVersion::V2,
                &content,
                &PitchTracker::Yin,
                &opts,
            )
            .unwrap();
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].wav.len(), e[0].frames * hop);
        }
        let err = prepare(
            &clip,
            22_050,
            "c",
            22_050,
            RvcVersion::V2,
            &content,
            &PitchTracker::Yin,
            &opts,
        );
        assert!(matches!(err, Err(TrainingDataError::TargetRate(22_050))));
        let err = prepare(
            &clip,
            0,
            "c",
            40_000,
            RvcVersion::V2,
            &content,
            &PitchTracker::Yin,
            &opts,
        );
        assert!(err.unwrap_err().to_string().contains("c: "));
    }

    /// 7.2 s of recorded speech (avatar-fcpe's test input, 16-bit little-endian at 16 kHz).
    fn speech_16k() -> Vec<f32> {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fcpe/testdata/speech_a_16k.s16");
        std::fs::read(path)
            .unwrap()
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect()
    }

    #[test]
    fn prepare_real_speech_with_the_best_installed_pitch_tracker() {
        // RMVPE or FCPE when their weights are installed, else YIN again.
        let pitch = PitchTracker::best_available();
        let speech = speech_16k();
        let examples = prepare(
            &speech,
            16_000,
            "speech_a",
            40_000,
            RvcVersion::V2,
            &tiny_content(),
            &pitch,
            &SegmentOptions::default(),
        )
        .unwrap();
        // 7.2 s: 0–3.7 s, then 3.4 s to the end (3.8 s, under the 4.0 s tail limit).
        assert_eq!(examples.len(), 2);
        for e in &examples {
            assert_eq!(e.wav.len(), e.frames * 400);
            assert_eq!(e.features.len(), e.frames * e.dim);
            assert_eq!(e.f0.len(), e.frames);
            assert!(e.f0_coarse.iter().all(|c| (1..=255).contains(c)));
            let voiced: Vec<f32> = e.f0.iter().copied().filter(|&f| f > 0.0).collect();
            let median = crate::pitch::median(&e.f0).unwrap();
            println!(
                "{} ({}): {} frames, {} voiced, median {median:.0} Hz",
                e.source,
                pitch.name(),
                e.frames,
                voiced.len()
            );
            assert!(voiced.len() * 4 >= e.frames, "{}: too few voiced", e.source);
            assert!((70.0..400.0).contains(&median), "{median}");
            // Voiced frames and only they have coarse pitch above 1.
            for (f, c) in e.f0.iter().zip(&e.f0_coarse) {
                assert_eq!(*f > 0.0, *c > 1, "{f} Hz -> {c}");
            }
        }
    }
}
