//! torchfcpe's "local argmax" decoder: the cent value of a frame is the activation-weighted mean
//! of the 9 bins around its peak; a peak at or below the threshold means unvoiced (0 Hz).

/// Bins on each side of the peak that the weighted mean uses.
const HALF_WINDOW: isize = 4;

/// f0 in Hz per frame of `latent` (rows of `cents.len()` activations); raw, not range-clamped.
pub fn local_argmax(latent: &[f32], cents: &[f32], threshold: f32) -> Vec<f32> {
    let n = cents.len();
    if n == 0 {
        return Vec::new();
    }
    latent
        .chunks_exact(n)
        .map(|y| {
            let (peak, confidence) =
                y.iter()
                    .enumerate()
                    .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    });
            // torch marks `confidence <= threshold` as -inf cents, i.e. 0 Hz (NaN too).
            if confidence.partial_cmp(&threshold) != Some(std::cmp::Ordering::Greater) {
                return 0.0;
            }
            // Indices past either end are clamped, so edge bins count more than once (as in torch).
            let (mut num, mut den) = (0f64, 0f64);
            for off in -HALF_WINDOW..=HALF_WINDOW {
                let i = (peak as isize + off).clamp(0, n as isize - 1) as usize;
                num += cents[i] as f64 * y[i] as f64;
                den += y[i] as f64;
            }
            cents_to_hz(num / den) as f32
        })
        .collect()
}

/// FCPE's cent scale is relative to 10 Hz.
pub fn cents_to_hz(cents: f64) -> f64 {
    10.0 * (cents / 1200.0).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peak_decodes_to_its_bin_and_low_confidence_to_zero() {
        let cents: Vec<f32> = (0..20).map(|i| 1000.0 + 100.0 * i as f32).collect();
        let mut y = vec![0.001f32; 40];
        y[10] = 0.9; // frame 0: peak at bin 10, symmetric floor → exactly bin 10
        y[20 + 3] = 0.005; // frame 1: below 0.006
        let f0 = local_argmax(&y, &cents, 0.006);
        assert!((f0[0] - cents_to_hz(2000.0) as f32).abs() < 1e-3);
        assert_eq!(f0[1], 0.0);
    }

    #[test]
    fn edge_peak_repeats_the_first_bin() {
        let cents: Vec<f32> = (0..10).map(|i| 1200.0 * i as f32).collect();
        let mut y = vec![0.0f32; 10];
        y[0] = 0.5;
        y[1] = 0.5;
        // window = [0,0,0,0,0,1,2,3,4]: five copies of bin 0 and one of bin 1.
        let want = cents_to_hz((5.0 * 0.0 * 0.5 + 1200.0 * 0.5) / (5.0 * 0.5 + 0.5)) as f32;
        let f0 = local_argmax(&y, &cents, 0.006);
        assert!((f0[0] - want).abs() < 1e-4, "{} vs {want}", f0[0]);
    }

    #[test]
    fn cents_scale_is_relative_to_10_hz() {
        assert!((cents_to_hz(0.0) - 10.0).abs() < 1e-12);
        assert!((cents_to_hz(1200.0) - 20.0).abs() < 1e-12);
    }
}
