//! RVC's real `rmvpe.pt` on a synthetic voice, when the user has put it at
//! `Rmvpe::default_path()`; skipped with a message otherwise (no package ships it).
//!
//! Tests panic on failure by design, so unwrapping here is the assertion.
#![allow(clippy::unwrap_used)]

use avatar_rmvpe::{Rmvpe, DEFAULT_THRESHOLD};

/// 4 s gliding 110 → 330 Hz with ten harmonics falling off as 1/k.
fn glide(n: usize) -> (Vec<f32>, Vec<f64>) {
    let mut phase = 0f64;
    let mut f = Vec::with_capacity(n);
    let x = (0..n)
        .map(|i| {
            let hz = 110.0 * 3f64.powf(i as f64 / n as f64);
            f.push(hz);
            phase += 2.0 * std::f64::consts::PI * hz / 16_000.0;
            (1..=10)
                .map(|k| 0.2 / k as f64 * (k as f64 * phase).sin())
                .sum::<f64>() as f32
        })
        .collect();
    (x, f)
}

#[test]
fn real_rmvpe_tracks_a_harmonic_glide() {
    let path = Rmvpe::default_path();
    if !path.is_file() {
        eprintln!(
            "SKIP: {} missing (download RVC's rmvpe.pt there to run this test)",
            path.display()
        );
        return;
    }
    let model = Rmvpe::load(&path).unwrap();
    let (audio, truth) = glide(64_000);
    let f0 = model.f0(&audio, DEFAULT_THRESHOLD).unwrap();
    // Frames well inside the signal: frame i is centred on sample 160·i.
    let mut errors = Vec::new();
    let mut unvoiced = 0;
    for (i, f) in f0.iter().enumerate().take(380).skip(20) {
        if *f > 0.0 {
            errors.push((f64::from(*f) / truth[i * 160]).log2().abs() * 1200.0);
        } else {
            unvoiced += 1;
        }
    }
    errors.sort_by(f64::total_cmp);
    let median = errors
        .get(errors.len() / 2)
        .copied()
        .unwrap_or(f64::INFINITY);
    eprintln!("real rmvpe.pt: median error {median:.1} cents, {unvoiced}/360 frames unvoiced");
    // A trained RMVPE follows a clean harmonic tone to a few cents; 50 is a loose bound that
    // still catches octave errors or a broken front end.
    assert!(median < 50.0, "median error {median} cents");
    assert!(unvoiced < 36, "{unvoiced} of 360 frames unvoiced");
}
