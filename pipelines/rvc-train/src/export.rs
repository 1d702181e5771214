//! What training produces, in the formats users load: RVC WebUI/Applio's `.pth`, Avatar's
//! own safetensors + JSON, and the inference [`Checkpoint`] samples are rendered with.
//! Also RVC's pretrained base files (`f0G40k.pth`/`f0D40k.pth`) as starting points.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use avatar_rvc::checkpoint::Weights;
use avatar_rvc::export::{load_state, save_voice};
use avatar_rvc::Checkpoint;

use crate::discriminator::Discriminator;
use crate::error::{io_err, Result, TrainError};
use crate::generator::Generator;

/// RVC's sample-rate label ("40k").
pub fn sr_label(sr: u32) -> String {
    format!("{}k", sr / 1000)
}

/// Avatar's description of an exported voice (`model.json` beside `model.safetensors`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VoiceCard {
    /// RVC's 18-value config list.
    pub config: Vec<serde_json::Value>,
    pub version: String,
    pub sample_rate: u32,
    pub f0: bool,
    pub steps: u64,
    /// Where training started: a pretrained base file or "scratch".
    pub base: String,
    /// Seconds of speech trained on.
    pub speech_seconds: f64,
    pub examples: usize,
    pub final_losses: Option<crate::train::Losses>,
}

/// The `.pth` RVC WebUI and Applio load (`weights/NAME.pth`): fp16 weights with weight norm
/// kept as `weight_g`/`weight_v`, no posterior encoder, the config list and labels.
pub fn export_rvc(generator: &Generator, path: &Path, info: &str) -> Result<()> {
    let state = generator.params.state()?;
    save_voice(
        path,
        &generator.cfg,
        generator.version,
        true,
        &sr_label(generator.cfg.sr),
        info,
        &state,
    )?;
    Ok(())
}

/// Avatar's layout: `STEM.safetensors` (weights with weight norm folded, f32, no posterior
/// encoder) and `STEM.json` ([`VoiceCard`]).
pub fn export_own(generator: &Generator, dir: &Path, stem: &str, card: &VoiceCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let map: HashMap<String, Tensor> = generator
        .params
        .folded()?
        .into_iter()
        .filter(|(k, _)| !k.starts_with("enc_q."))
        .collect();
    let st = dir.join(format!("{stem}.safetensors"));
    candle_core::safetensors::save(&map, &st).map_err(|e| TrainError::Checkpoint {
        path: st.display().to_string(),
        msg: e.to_string(),
    })?;
    let js = dir.join(format!("{stem}.json"));
    let json = serde_json::to_vec_pretty(card)
        .map_err(|e| TrainError::Input(format!("voice card: {e}")))?;
    std::fs::write(&js, json).map_err(io_err(&js))
}

/// The generator as an inference model (weight norm folded), for rendering samples.
pub fn inference_checkpoint(generator: &Generator) -> Result<Checkpoint> {
    let weights: HashMap<String, Tensor> = generator
        .params
        .folded()?
        .into_iter()
        .filter(|(k, _)| !k.starts_with("enc_q."))
        .map(|(k, t)| Ok((k, t.to_device(&candle_core::Device::Cpu)?)))
        .collect::<Result<_>>()?;
    Ok(Checkpoint {
        config: generator.cfg.clone(),
        version: generator.version,
        f0: true,
        sr_label: Some(sr_label(generator.cfg.sr)),
        info: None,
        weights: Weights::new(weights),
    })
}

/// Start the generator from RVC's pretrained base (`f0G40k.pth` layout: `{"model": state}`,
/// or an exported voice with `{"weight": ..}`, which lacks the posterior encoder and so
/// is refused). Returns the names in the file the model does not have.
pub fn load_pretrained_generator(generator: &Generator, path: &Path) -> Result<Vec<String>> {
    let state = load_state(path, Some("model"))?;
    generator
        .params
        .load_state(&state, &path.display().to_string())
}

/// Start the discriminator from RVC's pretrained `f0D40k.pth`.
pub fn load_pretrained_discriminator(d: &Discriminator, path: &Path) -> Result<Vec<String>> {
    let state = load_state(path, Some("model"))?;
    d.params.load_state(&state, &path.display().to_string())
}

/// RVC's training-state layout (`G_*.pth`/`f0G40k.pth`: `{"model": state, "iteration", ..}`),
/// so a trained generator can seed RVC's own training or another Avatar run.
pub fn save_pretrained(
    params: &crate::params::Params,
    path: &Path,
    iteration: i64,
    lr: f64,
) -> Result<()> {
    avatar_rvc::export::save_training_state(path, &params.state()?, iteration, lr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::tiny_trainer;

    /// The exported `.pth` loads through the inference loader and converts (issue 10's
    /// "an exported .pth loads back through the part-1 loader and converts").
    #[test]
    fn exported_pth_loads_back_and_converts() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = tiny_trainer(4);
        t.train_step().unwrap();
        let pth = dir.path().join("voice.pth");
        export_rvc(&t.generator, &pth, "test").unwrap();
        let synth = avatar_rvc::Synthesizer::load(&pth).unwrap();
        assert_eq!(synth.sample_rate(), 40_000);
        let e = &t.examples()[0];
        let params = avatar_rvc::ConvertParams::default();
        // The content features are at 100 Hz; RVC's `convert` takes HuBERT's 50 Hz rows.
        let rows: Vec<f32> = e
            .features
            .chunks(768)
            .step_by(2)
            .flatten()
            .copied()
            .collect();
        let audio = avatar_rvc::convert(&synth, None, &rows, &e.f0, &params, None).unwrap();
        assert!(audio.len() > 1000);
        assert!(audio.iter().all(|x| x.is_finite()));
        assert!(audio.iter().any(|x| x.abs() > 1e-4));

        // Same weights as the in-memory inference checkpoint (fp16 rounding aside).
        let ck = inference_checkpoint(&t.generator).unwrap();
        let direct = avatar_rvc::Synthesizer::new(&ck).unwrap();
        let a = direct.config();
        assert_eq!(a, synth.config());

        // Pretrained layout round trip: G and D load back into fresh models.
        let g_path = dir.path().join("G_1.pth");
        save_pretrained(&t.generator.params, &g_path, 1, 1e-4).unwrap();
        let fresh = tiny_trainer(77);
        let unused = load_pretrained_generator(&fresh.generator, &g_path).unwrap();
        assert!(unused.is_empty(), "{unused:?}");
        let a = t.generator.params.get("dec.conv_post.weight").unwrap();
        let b = fresh.generator.params.get("dec.conv_post.weight").unwrap();
        assert_eq!(a.to_vec3::<f32>().unwrap(), b.to_vec3::<f32>().unwrap());
        let d_path = dir.path().join("D_1.pth");
        save_pretrained(&t.discriminator.params, &d_path, 1, 1e-4).unwrap();
        load_pretrained_discriminator(&fresh.discriminator, &d_path).unwrap();

        // Avatar's own layout.
        let card = VoiceCard {
            config: t.generator.cfg.to_list(),
            version: "v2".into(),
            sample_rate: 40_000,
            f0: true,
            steps: 1,
            base: "scratch".into(),
            speech_seconds: 1.0,
            examples: 3,
            final_losses: None,
        };
        export_own(&t.generator, dir.path(), "model", &card).unwrap();
        let back: VoiceCard =
            serde_json::from_slice(&std::fs::read(dir.path().join("model.json")).unwrap()).unwrap();
        assert_eq!(back, card);
        let st = candle_core::safetensors::load(
            dir.path().join("model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert!(st.contains_key("dec.ups.0.weight") && !st.keys().any(|k| k.starts_with("enc_q")));
    }
}
