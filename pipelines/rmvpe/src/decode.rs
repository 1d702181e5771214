//! RVC's decoding of the 360-bin salience into F0 (`RMVPE.decode`, `to_local_average_cents`).

/// Bin `i` is `20·i + 1997.379…` cents above 10 Hz (RVC's `cents_mapping`).
pub const N_BINS: usize = 360;
const CENTS_OFFSET: f64 = 1_997.379_408_437_619;

/// F0 in Hz per frame from `salience` (`frames × 360`, row-major): the salience-weighted mean
/// of the cents within ±4 bins of the argmax (bins past the ends count as 0), 0 Hz where the
/// frame's peak is `<= threshold`. Computed in f64 as RVC does with numpy.
pub fn decode(salience: &[f32], threshold: f32) -> Vec<f32> {
    salience
        .chunks_exact(N_BINS)
        .map(|row| {
            // np.argmax: the first maximum.
            let (centre, peak) =
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    });
            if peak <= threshold {
                return 0.0;
            }
            let lo = centre.saturating_sub(4);
            let hi = (centre + 5).min(N_BINS);
            let (mut num, mut den) = (0f64, 0f64);
            for (i, &s) in row.iter().enumerate().take(hi).skip(lo) {
                let s = f64::from(s);
                num += s * (20.0 * i as f64 + CENTS_OFFSET);
                den += s;
            }
            let cents = num / den;
            let f0 = 10.0 * 2f64.powf(cents / 1200.0);
            // RVC maps exactly 10 Hz (0 cents) to unvoiced.
            if f0 == 10.0 {
                0.0
            } else {
                f0 as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_peak_gives_its_bin() {
        let mut s = vec![0f32; N_BINS];
        s[100] = 0.9;
        let f = decode(&s, 0.03)[0];
        let want = 10.0 * 2f64.powf((2000.0 + CENTS_OFFSET) / 1200.0);
        assert!((f64::from(f) - want).abs() < 1e-3, "{f} vs {want}");
    }

    #[test]
    fn below_threshold_is_unvoiced() {
        let s = vec![0.03f32; 2 * N_BINS];
        assert_eq!(decode(&s, 0.03), vec![0.0, 0.0]);
    }

    #[test]
    fn edge_peak_uses_zero_padding() {
        // Peak at bin 0 with a neighbour: only bins 0..=4 exist, as RVC's zero padding.
        let mut s = vec![0f32; N_BINS];
        s[0] = 0.5;
        s[1] = 0.5;
        let f = f64::from(decode(&s, 0.03)[0]);
        let want = 10.0 * 2f64.powf((10.0 + CENTS_OFFSET) / 1200.0);
        assert!((f - want).abs() < 1e-3);
    }
}
