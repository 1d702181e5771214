//! Signal conditioning shared by the voice pipeline: resampling (avatar-dsp's), a zero-phase
//! high-pass (RVC removes rumble below 48 Hz before training) and loudness per ITU-R BS.1770
//! (so clips from a quiet phone and a loud camera train alike).

pub use avatar_dsp::resample::{resample, ResampleError};

/// A second-order IIR section (direct form I), coefficients normalised by a0.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    fn new(b0: f64, b1: f64, b2: f64, a0: f64, a1: f64, a2: f64) -> Self {
        Biquad {
            b: [b0 / a0, b1 / a0, b2 / a0],
            a: [a1 / a0, a2 / a0],
        }
    }

    /// RBJ cookbook high-pass at `fc` Hz with quality `q`.
    fn highpass(fs: f64, fc: f64, q: f64) -> Self {
        let w0 = 2.0 * std::f64::consts::PI * fc / fs;
        let (s, c) = w0.sin_cos();
        let alpha = s / (2.0 * q);
        Biquad::new(
            (1.0 + c) / 2.0,
            -(1.0 + c),
            (1.0 + c) / 2.0,
            1.0 + alpha,
            -2.0 * c,
            1.0 - alpha,
        )
    }

    fn run(&self, x: &mut [f64]) {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in x.iter_mut() {
            let x0 = *v;
            let y0 =
                self.b[0] * x0 + self.b[1] * x1 + self.b[2] * x2 - self.a[0] * y1 - self.a[1] * y2;
            x2 = x1;
            x1 = x0;
            y2 = y1;
            y1 = y0;
            *v = y0;
        }
    }
}

/// BS.1770's K-weighting (a +4 dB shelf above ~1.7 kHz, then a 38 Hz high-pass) at any rate,
/// from the analogue prototypes as libebur128 derives them; at 48 kHz these are the
/// standard's own coefficients.
fn k_weighting(fs: f64) -> [Biquad; 2] {
    let (f0, g, q) = (
        1_681.974_450_955_533,
        3.999_843_853_973_347,
        0.707_175_236_955_419_6,
    );
    let k = (std::f64::consts::PI * f0 / fs).tan();
    let vh = 10f64.powf(g / 20.0);
    let vb = vh.powf(0.499_666_774_154_541_6);
    let shelf = Biquad::new(
        vh + vb * k / q + k * k,
        2.0 * (k * k - vh),
        vh - vb * k / q + k * k,
        1.0 + k / q + k * k,
        2.0 * (k * k - 1.0),
        1.0 - k / q + k * k,
    );
    let (f0, q) = (38.135_470_876_024_44, 0.500_327_037_323_877_3);
    let k = (std::f64::consts::PI * f0 / fs).tan();
    let a0 = 1.0 + k / q + k * k;
    let highpass = Biquad {
        b: [1.0, -2.0, 1.0],
        a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    };
    [shelf, highpass]
}

/// Zero-phase 4th-order Butterworth high-pass at `cutoff` Hz (run forwards and backwards, as
/// scipy's filtfilt does in RVC's preprocessing), so speech onsets do not shift in time.
pub fn highpass(samples: &[f32], sample_rate: u32, cutoff: f64) -> Vec<f32> {
    let fs = sample_rate as f64;
    if samples.is_empty() || cutoff <= 0.0 || cutoff >= fs / 2.0 {
        return samples.to_vec();
    }
    // Butterworth 4th order = two sections with these Qs.
    let sections = [
        Biquad::highpass(fs, cutoff, 0.541_196_100_146_197),
        Biquad::highpass(fs, cutoff, 1.306_562_964_876_376_6),
    ];
    let mut x: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    for s in &sections {
        s.run(&mut x);
    }
    x.reverse();
    for s in &sections {
        s.run(&mut x);
    }
    x.reverse();
    x.into_iter().map(|v| v as f32).collect()
}

/// Integrated loudness in LUFS (ITU-R BS.1770-4, mono: K-weighting, 400 ms blocks with 75 %
/// overlap, absolute gate −70 LUFS, relative gate −10 LU). `None` for audio shorter than one
/// block or entirely below the absolute gate (silence).
pub fn loudness_lufs(samples: &[f32], sample_rate: u32) -> Option<f64> {
    let fs = sample_rate as f64;
    let block = (0.4 * fs) as usize;
    let step = (0.1 * fs) as usize;
    if block == 0 || step == 0 || samples.len() < block {
        return None;
    }
    let mut x: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    for stage in k_weighting(fs) {
        stage.run(&mut x);
    }
    // Prefix sums of squares make each block O(1).
    let mut prefix = Vec::with_capacity(x.len() + 1);
    prefix.push(0.0);
    let mut acc = 0.0;
    for v in &x {
        acc += v * v;
        prefix.push(acc);
    }
    let powers: Vec<f64> = (0..=(x.len() - block) / step)
        .map(|i| (prefix[i * step + block] - prefix[i * step]) / block as f64)
        .collect();
    let lufs = |p: f64| -0.691 + 10.0 * p.log10();
    let above_abs: Vec<f64> = powers
        .iter()
        .copied()
        .filter(|&p| p > 0.0 && lufs(p) > -70.0)
        .collect();
    if above_abs.is_empty() {
        return None;
    }
    let relative = lufs(above_abs.iter().sum::<f64>() / above_abs.len() as f64) - 10.0;
    let gated: Vec<f64> = above_abs
        .into_iter()
        .filter(|&p| lufs(p) > relative)
        .collect();
    if gated.is_empty() {
        return None;
    }
    Some(lufs(gated.iter().sum::<f64>() / gated.len() as f64))
}

/// Scales `samples` to `target_lufs`, but never so far that the peak passes `ceiling` (a linear
/// amplitude, e.g. 0.89 = −1 dBFS): a gain limited by the peak is better than clipping.
/// Returns the gain applied; silence is left alone (gain 1).
pub fn normalize_loudness(
    samples: &mut [f32],
    sample_rate: u32,
    target_lufs: f64,
    ceiling: f32,
) -> f32 {
    let Some(current) = loudness_lufs(samples, sample_rate) else {
        return 1.0;
    };
    let mut gain = 10f64.powf((target_lufs - current) / 20.0) as f32;
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak > 0.0 && peak * gain > ceiling {
        gain = ceiling / peak;
    }
    for s in samples.iter_mut() {
        *s *= gain;
    }
    gain
}

/// RMS level in dBFS (−inf for digital silence).
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let ms = samples
        .iter()
        .map(|&s| (s as f64) * (s as f64))
        .sum::<f64>()
        / samples.len() as f64;
    (10.0 * ms.log10()) as f32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, seconds: f64, amp: f64) -> Vec<f32> {
        (0..(rate as f64 * seconds) as usize)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as f32
            })
            .collect()
    }

    /// Amplitude of `freq` in `x` by correlation with a sine and cosine (a one-bin DFT).
    fn amplitude(x: &[f32], freq: f64, rate: u32) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64;
            re += v as f64 * ph.cos();
            im += v as f64 * ph.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    #[test]
    fn k_weighting_at_48k_is_the_standards() {
        // ITU-R BS.1770-4, tables 1 and 2.
        let [shelf, hp] = k_weighting(48_000.0);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-8;
        assert!(close(shelf.b[0], 1.535_124_859_586_97), "{:?}", shelf.b);
        assert!(close(shelf.b[1], -2.691_696_189_406_38));
        assert!(close(shelf.b[2], 1.198_392_810_852_85));
        assert!(close(shelf.a[0], -1.690_659_293_182_41));
        assert!(close(shelf.a[1], 0.732_480_774_215_85));
        assert!(close(hp.a[0], -1.990_047_454_833_98), "{:?}", hp.a);
        assert!(close(hp.a[1], 0.990_072_250_366_21));
    }

    #[test]
    fn bs1770_full_scale_1k_sine_is_minus_3_lufs() {
        // The standard's own check: a 0 dBFS 1 kHz sine in one channel reads −3.01 LKFS.
        for rate in [48_000, 44_100, 16_000] {
            let l = loudness_lufs(&sine(1000.0, rate, 3.0, 1.0), rate).unwrap();
            assert!((l + 3.01).abs() < 0.05, "{rate} Hz: {l}");
        }
        // 20 dB quieter is 20 LU lower.
        let l = loudness_lufs(&sine(1000.0, 48_000, 3.0, 0.1), 48_000).unwrap();
        assert!((l + 23.01).abs() < 0.05, "{l}");
        assert_eq!(loudness_lufs(&vec![0.0; 48_000], 48_000), None);
        assert_eq!(loudness_lufs(&[0.5; 100], 48_000), None);
    }

    #[test]
    fn normalisation_reaches_the_target_or_stops_at_the_ceiling() {
        let mut quiet = sine(1000.0, 16_000, 2.0, 0.01);
        normalize_loudness(&mut quiet, 16_000, -20.0, 0.89);
        let l = loudness_lufs(&quiet, 16_000).unwrap();
        assert!((l + 20.0).abs() < 0.1, "{l}");
        let mut loud = sine(1000.0, 16_000, 2.0, 0.5);
        let gain = normalize_loudness(&mut loud, 16_000, 0.0, 0.89);
        let peak = loud.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(
            (peak - 0.89).abs() < 1e-3 && (gain - 1.78).abs() < 0.01,
            "{peak} {gain}"
        );
        let mut silence = vec![0.0; 16_000];
        assert_eq!(normalize_loudness(&mut silence, 16_000, -20.0, 0.89), 1.0);
    }

    #[test]
    fn highpass_removes_rumble_and_keeps_voice() {
        let rate = 16_000;
        let rumble = highpass(&sine(20.0, rate, 2.0, 0.5), rate, 48.0);
        let voice = highpass(&sine(200.0, rate, 2.0, 0.5), rate, 48.0);
        // Measured in the middle, away from the filter's start-up at both ends.
        let mid = |x: &[f32]| x[rate as usize / 2..rate as usize * 3 / 2].to_vec();
        let a20 = amplitude(&mid(&rumble), 20.0, rate);
        let a200 = amplitude(&mid(&voice), 200.0, rate);
        assert!(a20 < 0.5 * 0.01, "20 Hz kept at {a20}");
        assert!((a200 - 0.5).abs() < 0.01, "200 Hz changed to {a200}");
    }

    #[test]
    fn resampling_keeps_pitch_length_and_timing() {
        for (from, to) in [
            (44_100, 16_000),
            (16_000, 40_000),
            (22_050, 16_000),
            (48_000, 48_000),
        ] {
            let x = sine(440.0, from, 1.0, 0.5);
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len(), to as usize, "{from}->{to}");
            let mid = &y[to as usize / 4..to as usize * 3 / 4];
            let a = amplitude(mid, 440.0, to);
            assert!((a - 0.5).abs() < 0.01, "{from}->{to}: 440 Hz amplitude {a}");
        }
        // An impulse stays at the same time (the delay is removed).
        let mut x = vec![0.0f32; 22_050];
        x[11_025] = 1.0;
        let y = resample(&x, 22_050, 16_000).unwrap();
        let peak = y
            .iter()
            .enumerate()
            .fold(
                (0, 0.0f32),
                |m, (i, &v)| if v.abs() > m.1 { (i, v.abs()) } else { m },
            )
            .0;
        assert!((peak as i64 - 8_000).abs() <= 2, "impulse moved to {peak}");
    }
}
