//! LoRA adapters in Hugging Face PEFT's on-disk layout, so a Python user can load the person's
//! adapter with `PeftModel.from_pretrained(base, dir)` and we can load theirs.
//!
//! Layout: `adapter_config.json` + `adapter_model.safetensors`, tensor names
//! `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight` (what PEFT
//! writes for the default adapter; the VarMap already uses exactly these names).

use crate::lora::LoraConfig;
use crate::{LlmError, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The fields of PEFT's `LoraConfig` that matter for loading; unknown ones are ignored so
/// adapters written by newer PEFT versions still load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f32,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "none_bias")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_rslora: bool,
}

fn none_bias() -> String {
    "none".into()
}

impl AdapterConfig {
    pub fn new(lora: &LoraConfig, base: Option<String>) -> Self {
        AdapterConfig {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: lora.r,
            lora_alpha: lora.alpha,
            lora_dropout: lora.dropout,
            target_modules: lora.target_modules.clone(),
            base_model_name_or_path: base,
            bias: "none".into(),
            fan_in_fan_out: false,
            inference_mode: true,
            use_rslora: false,
        }
    }

    pub fn lora(&self) -> LoraConfig {
        LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules: self.target_modules.clone(),
        }
    }
}

/// Writes the adapter in `varmap` to `dir` (created if needed).
pub fn save_adapter(dir: &Path, varmap: &VarMap, config: &AdapterConfig) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let tensors: HashMap<String, Tensor> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| LlmError::Model("adapter variables are poisoned".into()))?;
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    };
    if tensors.is_empty() {
        return Err(LlmError::Model("no LoRA weights to save".into()));
    }
    let tmp = dir.join(format!("{WEIGHTS_FILE}.part"));
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, dir.join(WEIGHTS_FILE))?;
    std::fs::write(dir.join(CONFIG_FILE), serde_json::to_vec_pretty(config)?)?;
    Ok(())
}

/// Reads an adapter into a fresh VarMap (pass it to `Llama::new` with `config.lora()`, which
/// reuses the vars found there).
pub fn load_adapter(dir: &Path, device: &Device) -> Result<(AdapterConfig, VarMap)> {
    let cfg_path = dir.join(CONFIG_FILE);
    let config: AdapterConfig = serde_json::from_slice(
        &std::fs::read(&cfg_path)
            .map_err(|e| LlmError::Model(format!("no adapter at {}: {e}", cfg_path.display())))?,
    )?;
    if config.peft_type != "LORA" {
        return Err(LlmError::Model(format!(
            "adapter type {} is not LoRA",
            config.peft_type
        )));
    }
    if config.use_rslora || config.fan_in_fan_out {
        return Err(LlmError::Model(
            "rsLoRA and fan_in_fan_out adapters are not supported".into(),
        ));
    }
    let tensors = candle_core::safetensors::load(dir.join(WEIGHTS_FILE), device)?;
    let varmap = VarMap::new();
    {
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| LlmError::Model("adapter variables are poisoned".into()))?;
        for (name, t) in tensors {
            // PEFT also accepts names with the adapter name inside; normalise to ours.
            let name = name
                .replace(".lora_A.default.", ".lora_A.")
                .replace(".lora_B.default.", ".lora_B.");
            data.insert(name, Var::from_tensor(&t)?);
        }
    }
    Ok((config, varmap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use crate::model::{random_weights, Llama};

    #[test]
    fn an_adapter_saved_and_loaded_gives_the_same_logits() {
        let cfg = LlamaConfig::tiny();
        let w = random_weights(&cfg, 1).unwrap();
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        };
        let vm = VarMap::new();
        let m = Llama::new(&cfg, &w, Some(&lora), &vm, 3).unwrap();
        // Make B non-zero so the adapter changes the output.
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.contains("lora_B") {
                let t = (var.as_tensor().ones_like().unwrap() * 0.01).unwrap();
                var.set(&t).unwrap();
            }
        }
        let ids = Tensor::new(&[[1u32, 5, 9, 2]], &Device::Cpu).unwrap();
        let before = m.forward_train(&ids).unwrap();
        let base = Llama::new(&cfg, &w, None, &VarMap::new(), 0).unwrap();
        let plain = base.forward_train(&ids).unwrap();
        let moved = (&before - &plain)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(moved > 1e-4, "the adapter must change the logits");

        let dir = tempfile::tempdir().unwrap();
        let ac = AdapterConfig::new(&lora, Some("tiny".into()));
        save_adapter(dir.path(), &vm, &ac).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(json["peft_type"], "LORA");
        assert_eq!(json["r"], 4);
        let names =
            candle_core::safetensors::load(dir.path().join(WEIGHTS_FILE), &Device::Cpu).unwrap();
        assert!(
            names.contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        );
        assert!(names.contains_key("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"));

        let (loaded_cfg, loaded) = load_adapter(dir.path(), &Device::Cpu).unwrap();
        let again = Llama::new(&cfg, &w, Some(&loaded_cfg.lora()), &loaded, 99).unwrap();
        let after = again.forward_train(&ids).unwrap();
        let d = (&before - &after)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "reloaded adapter differs by {d}");
    }

    #[test]
    fn a_missing_adapter_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = match load_adapter(dir.path(), &Device::Cpu) {
            Ok(_) => panic!("loaded an adapter from an empty folder"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("no adapter"), "{err}");
    }
}
