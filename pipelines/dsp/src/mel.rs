//! `librosa.filters.mel` with its default Slaney area normalisation, in librosa's own order of
//! operations (f64), so a model sees the filters it was trained with.

/// The mel scale the band edges are spaced on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MelScale {
    /// librosa's default (`htk=False`): linear below 1 kHz, logarithmic above.
    Slaney,
    /// `htk=True`: 2595 · log10(1 + f / 700).
    Htk,
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

pub fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Slaney if f >= MIN_LOG_HZ => MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep(),
        MelScale::Slaney => f / F_SP,
    }
}

pub fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Slaney if m >= MIN_LOG_MEL => MIN_LOG_HZ * (logstep() * (m - MIN_LOG_MEL)).exp(),
        MelScale::Slaney => F_SP * m,
    }
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk)` (norm="slaney"), row-major
/// `[n_mels, n_fft / 2 + 1]`, in f64; librosa returns it cast to f32, which callers do as the
/// model they feed expects.
pub fn mel_filters(
    sr: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    scale: MelScale,
) -> Vec<f64> {
    let bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    // np.linspace over mel: start + i·step, the end point exact.
    let (lo, hi) = (hz_to_mel(fmin, scale), hz_to_mel(fmax, scale));
    let n_pts = n_mels + 2;
    let step = (hi - lo) / (n_pts - 1) as f64;
    let edges: Vec<f64> = (0..n_pts)
        .map(|i| {
            let m = if i == n_pts - 1 {
                hi
            } else {
                lo + i as f64 * step
            };
            mel_to_hz(m, scale)
        })
        .collect();
    let mut out = vec![0f64; n_mels * bins];
    for (b, row) in out.chunks_exact_mut(bins).enumerate() {
        let (f0, f1, f2) = (edges[b], edges[b + 1], edges[b + 2]);
        let enorm = 2.0 / (f2 - f0);
        for (w, &f) in row.iter_mut().zip(&fft_freqs) {
            let lower = -(f0 - f) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            *w = lower.min(upper).max(0.0) * enorm;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_trip_and_meet_at_1_khz() {
        for scale in [MelScale::Slaney, MelScale::Htk] {
            for f in [0.0, 30.0, 999.0, 1000.0, 4321.0, 20_000.0] {
                let back = mel_to_hz(hz_to_mel(f, scale), scale);
                assert!(
                    (back - f).abs() < 1e-9 * f.max(1.0),
                    "{scale:?} {f} -> {back}"
                );
            }
        }
        assert!((hz_to_mel(1000.0, MelScale::Slaney) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(1000.0, MelScale::Htk) - 999.985_6).abs() < 1e-3);
    }

    /// Slaney normalisation gives every band unit area in Hz (height 2 / (f2 - f0) over a base
    /// of f2 - f0), so a band spanning several bins sums to about 1 / Δf; each is one triangle.
    #[test]
    fn bands_are_triangles_of_equal_area() {
        let (sr, n_fft, n_mels) = (16_000.0, 400, 40);
        let w = mel_filters(sr, n_fft, n_mels, 0.0, sr / 2.0, MelScale::Slaney);
        let bins = n_fft / 2 + 1;
        assert_eq!(w.len(), n_mels * bins);
        let df = sr / n_fft as f64;
        for (b, row) in w.chunks_exact(bins).enumerate().skip(8) {
            // Wide enough bands that the sampled triangle's sum is its area / Δf.
            let sum: f64 = row.iter().sum();
            assert!((sum * df - 1.0).abs() < 0.05, "band {b}: {}", sum * df);
            assert!(row.iter().all(|&v| v >= 0.0));
            let peak = row.iter().cloned().fold(0.0, f64::max);
            let first = row.iter().position(|&v| v > 0.0).unwrap();
            let last = row.iter().rposition(|&v| v > 0.0).unwrap();
            // Rising then falling: no second peak.
            let argmax = row.iter().position(|&v| v == peak).unwrap();
            assert!(
                row[first..=argmax].windows(2).all(|p| p[0] <= p[1]),
                "band {b}"
            );
            assert!(
                row[argmax..=last].windows(2).all(|p| p[0] >= p[1]),
                "band {b}"
            );
        }
    }

    #[test]
    fn htk_edges_span_fmin_to_fmax() {
        // RMVPE's front end: 128 HTK bands from 30 Hz to 8 kHz on 1024-point frames.
        let w = mel_filters(16_000.0, 1024, 128, 30.0, 8000.0, MelScale::Htk);
        let bins = 513;
        let df = 16_000.0 / 1024.0;
        let first = &w[..bins];
        let last = &w[127 * bins..];
        // Nothing below 30 Hz in the first band, nothing above 8 kHz in the last (8 kHz itself, the
        // top edge, gets librosa's rounding residue).
        assert!(first
            .iter()
            .enumerate()
            .all(|(k, &v)| v == 0.0 || k as f64 * df > 30.0));
        assert!(last
            .iter()
            .enumerate()
            .all(|(k, &v)| v == 0.0 || k as f64 * df <= 8000.0));
        assert!(last.iter().any(|&v| v > 0.0));
    }
}
