//! Predicted MOS: Microsoft's DNSMOS P.835 (ONNX, from the `speechmos` wheel) rates speech
//! quality 1–5 without a reference — SIG (the speech), BAK (background), OVRL (overall) —
//! the way the DNS challenge scores it: 9.01 s windows every second (shorter audio repeated
//! to fill one), raw scores mapped by the published polynomials, averaged.

use std::path::Path;
use std::sync::Mutex;

pub const RATE: u32 = 16_000;
/// Seconds per window the model takes.
const WINDOW_SECONDS: f64 = 9.01;
/// Where `infra/fetch-models.sh dnsmos` puts the model, under the models folder.
pub const MODEL: &str = "dnsmos/sig_bak_ovr.onnx";

#[derive(Debug, thiserror::Error)]
pub enum MosError {
    #[error("{0} is missing: install DNSMOS with `infra/fetch-models.sh dnsmos`")]
    Missing(String),
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("no audio to rate")]
    Empty,
}

/// Mean opinion scores, 1 (bad) to 5 (excellent).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Mos {
    pub sig: f32,
    pub bak: f32,
    pub ovrl: f32,
}

/// The non-personalised P.835 polynomials (DNSMOS's `get_polyfit_val`).
fn polyfit(sig: f32, bak: f32, ovr: f32) -> Mos {
    let p = |c: [f64; 3], x: f32| {
        let x = x as f64;
        (c[0] * x * x + c[1] * x + c[2]) as f32
    };
    Mos {
        sig: p([-0.08397278, 1.22083953, 0.0052439], sig),
        bak: p([-0.13166888, 1.60915514, -0.39604546], bak),
        ovrl: p([-0.06766283, 1.11546468, 0.04602535], ovr),
    }
}

/// The windows DNSMOS rates: the audio doubled until it fills one, then 9.01 s every second.
pub fn windows(samples: &[f32]) -> Vec<Vec<f32>> {
    let len = (WINDOW_SECONDS * RATE as f64) as usize;
    if samples.is_empty() {
        return Vec::new();
    }
    let mut audio = samples.to_vec();
    while audio.len() < len {
        audio.extend_from_within(..);
    }
    let hops = ((audio.len() / RATE as usize) as f64 - WINDOW_SECONDS) as i64 + 1;
    (0..hops.max(0) as usize)
        .filter_map(|i| {
            let start = i * RATE as usize;
            let end = ((i as f64 + WINDOW_SECONDS) * RATE as f64) as usize;
            audio
                .get(start..end.min(audio.len()))
                .filter(|w| w.len() >= len)
                .map(<[f32]>::to_vec)
        })
        .collect()
}

pub struct Dnsmos {
    session: Mutex<ort::session::Session>,
}

impl Dnsmos {
    /// The model and runtime library under the models folder.
    pub fn load_default(models: &Path) -> Result<Dnsmos, MosError> {
        Self::load(&models.join(MODEL), &models.join(crate::onnx::RUNTIME_LIB))
    }

    pub fn load(model: &Path, lib: &Path) -> Result<Dnsmos, MosError> {
        if !model.is_file() {
            return Err(MosError::Missing(model.display().to_string()));
        }
        let env = crate::onnx::runtime(lib).map_err(MosError::Runtime)?;
        let run = |e: ort::Error| MosError::Runtime(e.to_string());
        let session = ort::session::Session::builder(env)
            .map_err(run)?
            .with_intra_threads(2)
            .map_err(|e| MosError::Runtime(e.to_string()))?
            .commit_from_file(model)
            .map_err(run)?;
        Ok(Dnsmos {
            session: Mutex::new(session),
        })
    }

    /// Scores of 16 kHz mono audio (values outside ±1 are clipped, as DNSMOS requires).
    pub fn rate(&self, samples_16k: &[f32]) -> Result<Mos, MosError> {
        let clipped: Vec<f32> = samples_16k.iter().map(|x| x.clamp(-1.0, 1.0)).collect();
        let windows = windows(&clipped);
        if windows.is_empty() {
            return Err(MosError::Empty);
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| MosError::Runtime("the DNSMOS session is poisoned".into()))?;
        let run = |e: ort::Error| MosError::Runtime(e.to_string());
        let (mut sig, mut bak, mut ovrl) = (0f32, 0f32, 0f32);
        for w in &windows {
            let n = w.len();
            let input = ort::value::Tensor::from_array(([1usize, n], w.clone())).map_err(run)?;
            let outputs = session.run(ort::inputs![input]).map_err(run)?;
            let (_, raw) = outputs[0].try_extract_tensor::<f32>().map_err(run)?;
            let [s, b, o] = raw
                .get(..3)
                .and_then(|r| <[f32; 3]>::try_from(r).ok())
                .ok_or_else(|| {
                    MosError::Runtime(format!("DNSMOS gave {} scores, not 3", raw.len()))
                })?;
            let m = polyfit(s, b, o);
            sig += m.sig;
            bak += m.bak;
            ovrl += m.ovrl;
        }
        let k = windows.len() as f32;
        Ok(Mos {
            sig: sig / k,
            bak: bak / k,
            ovrl: ovrl / k,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_repeat_short_audio_and_hop_by_a_second() {
        assert!(windows(&[]).is_empty());
        // 3 s doubles to 12 s: windows at 0, 1 and 2 s.
        let w = windows(&vec![0.1; 3 * 16_000]);
        assert_eq!(w.len(), 3);
        assert!(w.iter().all(|w| w.len() == 144_160));
        // 11 s: windows at 0 and 1 s (a third would end past the audio).
        assert_eq!(windows(&vec![0.1; 11 * 16_000]).len(), 2);
        assert_eq!(windows(&vec![0.1; 144_160]).len(), 1);
    }
}
