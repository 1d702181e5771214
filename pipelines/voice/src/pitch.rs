//! Pitch (F0) with YIN (de Cheveigné & Kawahara, 2002): the DSP tracker that is always
//! available, where the neural trackers (FCPE, RMVPE) need weights. RVC conditions its
//! synthesiser on it, the pitch shift between a TTS voice and the person is the ratio of their
//! medians, and the quality report's F0 error compares two tracks.
//!
//! Frames every 10 ms (100 Hz), search range 50–1100 Hz, on a 16 kHz copy of the audio.

use crate::dsp;

pub const FRAME_RATE: u32 = 100;
pub const F0_MIN: f32 = 50.0;
pub const F0_MAX: f32 = 1100.0;
const RATE: u32 = 16_000;
/// YIN's absolute threshold on the cumulative-mean-normalised difference.
const THRESHOLD: f32 = 0.15;
/// Frames quieter than this (dBFS RMS) are unvoiced without looking.
const SILENCE_DB: f32 = -50.0;

/// F0 per 10 ms frame in Hz, 0 where unvoiced. Frame `i` is centred at `i * 10 ms`.
pub fn track(samples: &[f32], sample_rate: u32) -> Result<Vec<f32>, dsp::ResampleError> {
    let x = dsp::resample(samples, sample_rate, RATE)?;
    let hop = (RATE / FRAME_RATE) as usize;
    let tau_max = (RATE as f32 / F0_MIN).ceil() as usize; // 320
    let tau_min = (RATE as f32 / F0_MAX).floor() as usize; // 14
    let window = 2 * tau_max; // 40 ms: two periods of the lowest pitch
    let frames = x.len() / hop + usize::from(!x.len().is_multiple_of(hop));
    let mut out = Vec::with_capacity(frames);
    let mut d = vec![0f32; tau_max + 2];
    let mut frame = vec![0f32; window + tau_max + 2];
    for i in 0..frames {
        // Centre the analysis on the frame time; zeros beyond the ends.
        let start = (i * hop) as isize - (window / 2) as isize;
        for (k, v) in frame.iter_mut().enumerate() {
            let j = start + k as isize;
            *v = if j >= 0 && (j as usize) < x.len() {
                x[j as usize]
            } else {
                0.0
            };
        }
        if dsp::rms_dbfs(&frame[..window]) < SILENCE_DB {
            out.push(0.0);
            continue;
        }
        // Difference function.
        for (tau, dv) in d.iter_mut().enumerate().take(tau_max + 2).skip(1) {
            let mut s = 0f32;
            for j in 0..window {
                let diff = frame[j] - frame[j + tau];
                s += diff * diff;
            }
            *dv = s;
        }
        // Cumulative mean normalised difference.
        let mut running = 0f32;
        let mut cmnd = vec![1f32; tau_max + 2];
        for tau in 1..tau_max + 2 {
            running += d[tau];
            cmnd[tau] = if running > 0.0 {
                d[tau] * tau as f32 / running
            } else {
                1.0
            };
        }
        // First dip under the threshold, followed down to its local minimum.
        let mut chosen = None;
        let mut tau = tau_min.max(2);
        while tau <= tau_max {
            if cmnd[tau] < THRESHOLD {
                while tau < tau_max && cmnd[tau + 1] < cmnd[tau] {
                    tau += 1;
                }
                chosen = Some(tau);
                break;
            }
            tau += 1;
        }
        let Some(tau) = chosen else {
            out.push(0.0);
            continue;
        };
        // Parabolic interpolation for sub-sample period.
        let (a, b, c) = (cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]);
        let denom = a - 2.0 * b + c;
        let shift = if denom.abs() > 1e-12 {
            0.5 * (a - c) / denom
        } else {
            0.0
        };
        let period = tau as f32 + shift.clamp(-1.0, 1.0);
        let f0 = RATE as f32 / period;
        out.push(if (F0_MIN..=F0_MAX).contains(&f0) {
            f0
        } else {
            0.0
        });
    }
    Ok(out)
}

/// Median F0 of the voiced frames.
pub fn median(f0: &[f32]) -> Option<f32> {
    let mut v: Vec<f32> = f0.iter().copied().filter(|&f| f > 0.0).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    Some(v[v.len() / 2])
}

/// Semitones that take pitch `from` to `to` (RVC's `f0_up_key`).
pub fn semitones(from: f32, to: f32) -> f32 {
    12.0 * (to / from).log2()
}

/// F0 error between two tracks of the same speech: the mean absolute difference in cents over
/// frames voiced in both, and the share of frames where exactly one of them is voiced.
pub fn f0_error(reference: &[f32], other: &[f32]) -> Option<(f32, f32)> {
    let n = reference.len().min(other.len());
    let (mut cents, mut both, mut mismatch) = (0f64, 0usize, 0usize);
    for i in 0..n {
        let (r, o) = (reference[i], other[i]);
        match (r > 0.0, o > 0.0) {
            (true, true) => {
                cents += (1200.0 * (o as f64 / r as f64).log2()).abs();
                both += 1;
            }
            (false, false) => {}
            _ => mismatch += 1,
        }
    }
    (n > 0 && both > 0).then(|| ((cents / both as f64) as f32, mismatch as f32 / n as f32))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn buzz(f0: impl Fn(f64) -> f64, rate: u32, seconds: f64, harmonics: &[f64]) -> Vec<f32> {
        let mut phase = 0.0f64;
        (0..(seconds * rate as f64) as usize)
            .map(|i| {
                let t = i as f64 / rate as f64;
                phase += 2.0 * std::f64::consts::PI * f0(t) / rate as f64;
                let v: f64 = harmonics
                    .iter()
                    .enumerate()
                    .map(|(h, a)| a * (phase * (h + 1) as f64).sin())
                    .sum();
                (0.3 * v) as f32
            })
            .collect()
    }

    #[test]
    fn pure_and_harmonic_tones_get_their_fundamental() {
        for (f, rate) in [
            (220.0, 16_000),
            (100.0, 44_100),
            (55.0, 16_000),
            (880.0, 48_000),
        ] {
            let t = track(&buzz(|_| f, rate, 1.0, &[1.0]), rate).unwrap();
            assert_eq!(t.len(), 100);
            let m = median(&t).unwrap();
            assert!((m - f as f32).abs() < 0.01 * f as f32, "{f} Hz: {m}");
        }
        // A weak fundamental under a strong second harmonic: still 150 Hz, not an octave up.
        let t = track(&buzz(|_| 150.0, 16_000, 1.0, &[0.4, 1.0, 0.5, 0.3]), 16_000).unwrap();
        let m = median(&t).unwrap();
        assert!((m - 150.0).abs() < 2.0, "{m}");
    }

    #[test]
    fn a_glide_is_followed_and_silence_is_unvoiced() {
        // 120 → 240 Hz over 2 s.
        let t = track(
            &buzz(|t| 120.0 * 2f64.powf(t / 2.0), 16_000, 2.0, &[1.0, 0.5]),
            16_000,
        )
        .unwrap();
        for (i, &f) in t.iter().enumerate().skip(5).take(190) {
            let want = 120.0 * 2f32.powf(i as f32 / 200.0);
            assert!((f - want).abs() < 0.03 * want, "frame {i}: {f} vs {want}");
        }
        let s = track(&vec![0.0; 16_000], 16_000).unwrap();
        assert!(s.iter().all(|&f| f == 0.0));
        assert_eq!(median(&s), None);
        // White noise has no pitch.
        let mut seed = 1u32;
        let noise: Vec<f32> = (0..16_000)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.5
            })
            .collect();
        let n = track(&noise, 16_000).unwrap();
        let voiced = n.iter().filter(|&&f| f > 0.0).count();
        assert!(voiced < 10, "{voiced} noise frames voiced");
    }

    #[test]
    fn shifts_and_errors() {
        assert!((semitones(110.0, 220.0) - 12.0).abs() < 1e-4);
        assert!((semitones(200.0, 150.0) + 4.98).abs() < 0.01);
        let a = [100.0, 100.0, 0.0, 200.0];
        let b = [100.0, 200.0, 0.0, 0.0];
        let (cents, mismatch) = f0_error(&a, &b).unwrap();
        assert!((cents - 600.0).abs() < 1e-3 && (mismatch - 0.25).abs() < 1e-6);
        assert_eq!(f0_error(&[0.0], &[0.0]), None);
    }

    #[test]
    fn espeak_voices_have_their_pitch() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
        let mut medians = Vec::new();
        for name in ["speech_a.wav", "speech_b.wav"] {
            let Ok(bytes) = std::fs::read(dir.join(name)) else {
                eprintln!("skipping: ../shared/reference/{name} not found");
                return;
            };
            let audio = crate::decode(name, &bytes).unwrap();
            let t = track(&audio.samples, audio.sample_rate).unwrap();
            let voiced = t.iter().filter(|&&f| f > 0.0).count() as f32 / t.len() as f32;
            eprintln!("{name}: {voiced} of frames voiced");
            assert!(voiced > 0.2, "{name}: only {voiced} voiced");
            medians.push(median(&t).unwrap());
        }
        eprintln!(
            "median F0: speech_a {} Hz, speech_b {} Hz",
            medians[0], medians[1]
        );
        // An independent estimate (normalised autocorrelation, 40 ms frames, peaks > 0.5,
        // numpy, run once by hand) gives medians of 100.7 and 106.5 Hz: espeak-ng's en-gb+f3
        // and en-us+m3 here are both low voices.
        assert!((medians[0] - 100.7).abs() < 5.0, "{medians:?}");
        assert!((medians[1] - 106.5).abs() < 5.0, "{medians:?}");
    }
}
