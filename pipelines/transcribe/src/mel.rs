//! Whisper's log-mel front end: 25 ms Hann windows every 10 ms on 16 kHz audio, Slaney mel
//! filters, log10, the top 80 dB kept, scaled to about [-1, 1]. Computed as faster-whisper does
//! (160 zero samples appended, centred frames with reflection at the edges, the last frame
//! dropped), so the same model sees the same input here as in CTranslate2.

use realfft::RealFftPlanner;

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Frames in Whisper's 30 s window.
pub const WINDOW_FRAMES: usize = 3000;

/// Slaney-style mel filterbank (librosa's default, which Whisper was trained with):
/// `n_mels` rows of `N_FFT / 2 + 1` weights, row-major.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let sr = SAMPLE_RATE as f64;
    avatar_dsp::mel::mel_filters(
        sr,
        N_FFT,
        n_mels,
        0.0,
        sr / 2.0,
        avatar_dsp::mel::MelScale::Slaney,
    )
    .into_iter()
    .map(|w| w as f32)
    .collect()
}

/// Index into a signal padded by reflection (without repeating the edge sample), for any
/// distance past the edges — short inputs reflect more than once.
fn reflect(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let mut j = i.rem_euclid(period);
    if j >= len as isize {
        j = period - j;
    }
    j as usize
}

/// The log-mel spectrogram of 16 kHz samples: `(values, frames)` with values row-major
/// `[n_mels][frames]` and one frame per 10 ms.
pub fn log_mel(samples: &[f32], n_mels: usize) -> (Vec<f32>, usize) {
    let filters = mel_filters(n_mels);
    let bins = N_FFT / 2 + 1;
    let mut padded = Vec::with_capacity(samples.len() + HOP);
    padded.extend_from_slice(samples);
    padded.extend(std::iter::repeat_n(0.0, HOP));
    let len = padded.len();
    // Centred frames over the reflection-padded signal; the last one is dropped.
    let frames = (len + 2 * (N_FFT / 2) - N_FFT) / HOP;
    let window: Vec<f32> = (0..N_FFT)
        .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32)
        .collect();
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(N_FFT);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut power = vec![0f32; bins];
    let mut mel = vec![0f32; n_mels * frames];
    for t in 0..frames {
        let start = (t * HOP) as isize - (N_FFT / 2) as isize;
        for (n, x) in input.iter_mut().enumerate() {
            *x = padded[reflect(start + n as isize, len)] * window[n];
        }
        if fft.process(&mut input, &mut spectrum).is_err() {
            // Only fails on wrong buffer lengths, which the planner sized.
            continue;
        }
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        for m in 0..n_mels {
            let row = &filters[m * bins..(m + 1) * bins];
            mel[m * frames + t] = row.iter().zip(&power).map(|(w, p)| w * p).sum();
        }
    }
    let mut max = f32::NEG_INFINITY;
    for v in mel.iter_mut() {
        *v = v.max(1e-10).log10();
        max = max.max(*v);
    }
    for v in mel.iter_mut() {
        *v = (v.max(max - 8.0) + 4.0) / 4.0;
    }
    (mel, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_librosa_slaney() {
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (faster-whisper's own copy of that
        // computation printed the same): row 0 peaks at bin 1, row 79 ends at bin 200.
        let f = mel_filters(80);
        let bins = 201;
        assert_eq!(f.len(), 80 * bins);
        let row0 = &f[..bins];
        assert!((row0[1] - 0.024_862_59).abs() < 1e-6, "{}", row0[1]);
        assert_eq!(row0[0], 0.0);
        assert!(row0[3..].iter().all(|&w| w == 0.0));
        let last = &f[79 * bins..];
        assert!(last[..170].iter().all(|&w| w == 0.0));
        assert!(last[190] > 0.0);
        // Slaney normalisation: each triangle has the same area in Hz.
        for m in [10, 40, 70] {
            let area: f32 = f[m * bins..(m + 1) * bins].iter().sum::<f32>() * 40.0;
            assert!((area - 1.0).abs() < 0.12, "row {m}: area {area}");
        }
    }

    #[test]
    fn frame_count_and_range() {
        let samples: Vec<f32> = (0..16_000)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 0.5)
            .collect();
        let (mel, frames) = log_mel(&samples, 80);
        assert_eq!(frames, 101);
        assert_eq!(mel.len(), 80 * frames);
        let max = mel.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let min = mel.iter().cloned().fold(f32::INFINITY, f32::min);
        assert!((max - min - 2.0).abs() < 1e-5, "80 dB range: {min}..{max}");
        // 440 Hz lands in a low band: that row's energy is the loudest in the middle frame.
        let loudest = (0..80)
            .max_by(|&a, &b| mel[a * frames + 50].total_cmp(&mel[b * frames + 50]))
            .unwrap_or(0);
        assert!((8..=14).contains(&loudest), "loudest band {loudest}");
    }

    #[test]
    fn matches_faster_whisper_feature_extractor() {
        // faster_whisper.feature_extractor.FeatureExtractor(feature_size=80) on 0.5 s of
        // 0.3 sin(220 Hz) + 0.2 sin(1250 Hz) + 0.05 sin(3100 Hz) (reference/make_reference.py).
        let samples: Vec<f32> = (0..8000)
            .map(|n| {
                let t = n as f64 * std::f64::consts::TAU / 16_000.0;
                (0.3 * (220.0 * t).sin() + 0.2 * (1250.0 * t).sin() + 0.05 * (3100.0 * t).sin())
                    as f32
            })
            .collect();
        let (mel, frames) = log_mel(&samples, 80);
        assert_eq!(frames, 51);
        let expected = [
            ((0, 0), 1.055679),
            ((5, 10), 1.301853),
            ((20, 25), -0.481138),
            ((40, 49), -0.072057),
            ((60, 30), -0.69814),
            ((79, 50), -0.05488),
            ((12, 0), 0.566145),
        ];
        for ((band, frame), want) in expected {
            let got = mel[band * frames + frame];
            assert!(
                (got - want).abs() < 2e-4,
                "band {band} frame {frame}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn reflection_handles_any_length() {
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(-4, 5), 4);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(-9, 5), 1);
        assert_eq!(reflect(7, 1), 0);
        let (_, frames) = log_mel(&[0.1, -0.1, 0.2], 80);
        assert_eq!(frames, 1);
    }
}
