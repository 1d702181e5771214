//! torch.optim.AdamW, with its state saved so a resumed run continues exactly.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{backprop::GradStore, Device, Tensor};

use crate::error::{Result, TrainError};
use crate::params::Params;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// RVC's: lr 1e-4, betas (0.8, 0.99), eps 1e-9, torch's default weight decay 0.01.
    pub fn rvc() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-9,
            weight_decay: 0.01,
        }
    }
}

#[derive(Debug)]
pub struct AdamW {
    pub cfg: AdamWConfig,
    pub steps: u64,
    m: HashMap<String, Tensor>,
    v: HashMap<String, Tensor>,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Self {
        Self {
            cfg,
            steps: 0,
            m: HashMap::new(),
            v: HashMap::new(),
        }
    }

    /// One update at learning rate `lr` (the schedule's current value). Parameters
    /// without a gradient are left alone, as torch does.
    pub fn step(&mut self, params: &Params, grads: &GradStore, lr: f64) -> Result<()> {
        self.steps += 1;
        let c = self.cfg;
        let t = self.steps as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for (name, var) in params.vars() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            // candle leaves some variables' gradients attached to the step's graph; moments
            // built from them would keep every step's graph alive (GBs per step).
            let g = &g.detach();
            let p = var.as_tensor();
            let m = match self.m.get(name) {
                Some(m) => ((m * c.beta1)? + (g * (1.0 - c.beta1))?)?,
                None => (g * (1.0 - c.beta1))?,
            };
            let v = match self.v.get(name) {
                Some(v) => ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?,
                None => (g.sqr()? * (1.0 - c.beta2))?,
            };
            // torch: p *= 1 - lr*wd; denom = sqrt(v)/sqrt(bc2) + eps; p -= lr/bc1 * m/denom
            let decayed = (p * (1.0 - lr * c.weight_decay))?;
            let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
            let upd = ((&m / denom)? * (lr / bc1))?;
            var.set(&(decayed - upd)?.detach())?;
            self.m.insert(name.to_string(), m.detach());
            self.v.insert(name.to_string(), v.detach());
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        for (k, t) in &self.m {
            map.insert(format!("m.{k}"), t.clone());
        }
        for (k, t) in &self.v {
            map.insert(format!("v.{k}"), t.clone());
        }
        map.insert(
            "steps".to_string(),
            Tensor::new(&[self.steps as f32], &Device::Cpu)?,
        );
        candle_core::safetensors::save(&map, path).map_err(|e| TrainError::Checkpoint {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }

    pub fn load(cfg: AdamWConfig, path: &Path, device: &Device) -> Result<Self> {
        let map =
            candle_core::safetensors::load(path, device).map_err(|e| TrainError::Checkpoint {
                path: path.display().to_string(),
                msg: e.to_string(),
            })?;
        let mut opt = Self::new(cfg);
        for (k, t) in map {
            if let Some(name) = k.strip_prefix("m.") {
                opt.m.insert(name.to_string(), t);
            } else if let Some(name) = k.strip_prefix("v.") {
                opt.v.insert(name.to_string(), t);
            } else if k == "steps" {
                opt.steps = t
                    .to_device(&Device::Cpu)?
                    .to_vec1::<f32>()?
                    .first()
                    .copied()
                    .unwrap_or(0.0) as u64;
            }
        }
        Ok(opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Init;
    use crate::rng::Rng;

    /// Two AdamW steps on f(p) = sum(p²)/2 (gradient p), against torch.optim.AdamW's
    /// formula worked by hand for p0 = 1: step 1 moves by lr (Adam's first step is ±lr).
    #[test]
    fn first_step_moves_by_lr() {
        let mut params = Params::default();
        let mut init = Init {
            params: &mut params,
            rng: Rng::new(0),
            device: Device::Cpu,
        };
        init.ones("p", &[3]).unwrap();
        let mut opt = AdamW::new(AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::rvc()
        });
        let p = params.get("p").unwrap();
        let grads = (p.sqr().unwrap().sum_all().unwrap() * 0.5)
            .unwrap()
            .backward()
            .unwrap();
        opt.step(&params, &grads, 0.1).unwrap();
        let after = params.get("p").unwrap().to_vec1::<f32>().unwrap();
        assert!(after.iter().all(|&x| (x - 0.9).abs() < 1e-6), "{after:?}");
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = Params::default();
        let mut init = Init {
            params: &mut params,
            rng: Rng::new(0),
            device: Device::Cpu,
        };
        init.normal("p", &[4], 1.0).unwrap();
        let mut opt = AdamW::new(AdamWConfig::rvc());
        let grads = params
            .get("p")
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(&params, &grads, 1e-3).unwrap();
        let path = dir.path().join("opt.safetensors");
        opt.save(&path).unwrap();
        let back = AdamW::load(AdamWConfig::rvc(), &path, &Device::Cpu).unwrap();
        assert_eq!(back.steps, 1);
        assert_eq!(
            back.m["p"].to_vec1::<f32>().unwrap(),
            opt.m["p"].to_vec1::<f32>().unwrap()
        );
    }
}
