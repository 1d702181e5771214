#![allow(clippy::unwrap_used)]
//! DNSMOS P.835 with the real model (`infra/fetch-models.sh dnsmos`) against ONNX Runtime's
//! Python API running the same windows (`reference/dnsmos_reference.py`); skips when missing.

use avatar_voice::mos::Dnsmos;
use std::path::PathBuf;

fn models() -> PathBuf {
    match std::env::var_os("AVATAR_MODELS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/avatar/models")
        }
    }
}

/// The script's signal: a 150 Hz tone pulsing at 3 Hz plus LCG noise.
fn signal(n: usize) -> Vec<f32> {
    let mut seed: u32 = 7;
    (0..n)
        .map(|i| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = ((seed >> 8) as f64 / (1u32 << 24) as f64 - 0.5) * 0.05;
            let t = i as f64 / 16_000.0;
            (0.3 * (std::f64::consts::TAU * 150.0 * t).sin()
                * (0.5 + 0.5 * (std::f64::consts::TAU * 3.0 * t).sin())
                + noise) as f32
        })
        .collect()
}

#[test]
fn scores_equal_onnxruntime_python() {
    let mos = match Dnsmos::load_default(&models()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    // (samples, SIG, BAK, OVRL) printed by the reference script.
    for (n, sig, bak, ovrl) in [
        (16_000 * 3, 1.79072, 1.646056, 1.363673),
        (16_000 * 11, 1.745627, 1.594818, 1.34846),
    ] {
        let m = mos.rate(&signal(n)).unwrap();
        for (got, want) in [(m.sig, sig), (m.bak, bak), (m.ovrl, ovrl)] {
            assert!((got - want).abs() < 1e-3, "{n}: {m:?}");
        }
    }
    assert!(mos.rate(&[]).is_err());
}
