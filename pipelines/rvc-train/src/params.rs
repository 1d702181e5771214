//! Named trainable tensors, with RVC's state-dict names so pretrained files load and
//! exports are what RVC WebUI expects.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Result, TrainError};
use crate::rng::Rng;
use avatar_rvc::checkpoint::fold_weight_norm;

/// The parameters of one network (generator or discriminator), by name.
#[derive(Debug, Clone, Default)]
pub struct Params {
    vars: BTreeMap<String, Var>,
}

impl Params {
    pub fn get(&self, name: &str) -> Result<Tensor> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| TrainError::Input(format!("no parameter `{name}`")))
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total scalar count.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    fn add(&mut self, name: String, t: Tensor) -> Result<()> {
        self.vars.insert(name, Var::from_tensor(&t)?);
        Ok(())
    }

    /// Copy the values of `state` into same-named parameters. Every parameter must be
    /// present with its shape; extra entries (e.g. another speaker table) are reported.
    pub fn load_state(&self, state: &[(String, Tensor)], what: &str) -> Result<Vec<String>> {
        let given: BTreeMap<&str, &Tensor> = state.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let mut unused: Vec<String> = given
            .keys()
            .filter(|k| !self.vars.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        unused.sort();
        for (name, var) in &self.vars {
            let t = given
                .get(name.as_str())
                .ok_or_else(|| TrainError::Input(format!("{what} has no `{name}`")))?;
            if t.dims() != var.dims() {
                return Err(TrainError::Input(format!(
                    "{what}: `{name}` is {:?}, this model needs {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
        }
        Ok(unused)
    }

    /// Values as plain tensors (a snapshot).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.vars
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// The state with weight norm folded (`weight_g`/`weight_v` → `weight`), for inference.
    pub fn folded(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (k, v) in &self.vars {
            if let Some(prefix) = k.strip_suffix("weight_g") {
                let vname = format!("{prefix}weight_v");
                let w = fold_weight_norm(v.as_tensor(), &self.get(&vname)?)?;
                out.push((format!("{prefix}weight"), w));
            } else if !k.ends_with("weight_v") {
                out.push((k.clone(), v.as_tensor().copy()?));
            }
        }
        Ok(out)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let map: std::collections::HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&map, path).map_err(|e| TrainError::Checkpoint {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }

    pub fn load(&self, path: &Path, device: &Device) -> Result<()> {
        let map =
            candle_core::safetensors::load(path, device).map_err(|e| TrainError::Checkpoint {
                path: path.display().to_string(),
                msg: e.to_string(),
            })?;
        let state: Vec<(String, Tensor)> = map.into_iter().collect();
        self.load_state(&state, &path.display().to_string())?;
        Ok(())
    }
}

/// Creates parameters with PyTorch's default initialisations, from a seeded stream.
pub struct Init<'a> {
    pub params: &'a mut Params,
    pub rng: Rng,
    pub device: Device,
}

impl Init<'_> {
    fn tensor(&self, vals: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_vec(vals, shape, &self.device)?)
    }

    /// `nn.Conv1d`/`nn.Linear` default: U(±1/sqrt(fan_in)) for weight and bias.
    pub fn conv(&mut self, prefix: &str, shape: &[usize], bias: bool) -> Result<()> {
        let fan_in: usize = shape[1..].iter().product();
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let n = shape.iter().product();
        let vals = self.rng.uniforms(n, bound);
        let w = self.tensor(vals, shape)?;
        self.params.add(format!("{prefix}.weight"), w)?;
        if bias {
            let vals = self.rng.uniforms(shape[0], bound);
            let b = self.tensor(vals, &shape[..1])?;
            self.params.add(format!("{prefix}.bias"), b)?;
        }
        Ok(())
    }

    /// A weight-normed conv: `weight_v` as [`Init::conv`], `weight_g = ||v||` so the
    /// effective weight starts equal to `v`.
    pub fn wn_conv(&mut self, prefix: &str, shape: &[usize], bias: bool) -> Result<()> {
        let fan_in: usize = shape[1..].iter().product();
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let n: usize = shape.iter().product();
        let v = self.rng.uniforms(n, bound);
        let rows = shape[0];
        let per = n / rows.max(1);
        let g: Vec<f32> = v
            .chunks(per.max(1))
            .map(|r| r.iter().map(|x| x * x).sum::<f32>().sqrt())
            .collect();
        let mut gshape = vec![1usize; shape.len()];
        gshape[0] = rows;
        let gt = self.tensor(g, &gshape)?;
        let vt = self.tensor(v, shape)?;
        self.params.add(format!("{prefix}.weight_g"), gt)?;
        self.params.add(format!("{prefix}.weight_v"), vt)?;
        if bias {
            let vals = self.rng.uniforms(rows, bound);
            let b = self.tensor(vals, &[rows])?;
            self.params.add(format!("{prefix}.bias"), b)?;
        }
        Ok(())
    }

    pub fn zeros(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        let t = Tensor::zeros(shape, DType::F32, &self.device)?;
        self.params.add(name.to_string(), t)
    }

    pub fn ones(&mut self, name: &str, shape: &[usize]) -> Result<()> {
        let t = Tensor::ones(shape, DType::F32, &self.device)?;
        self.params.add(name.to_string(), t)
    }

    pub fn normal(&mut self, name: &str, shape: &[usize], std: f64) -> Result<()> {
        let n = shape.iter().product();
        let vals = self.rng.normals(n, std);
        let t = self.tensor(vals, shape)?;
        self.params.add(name.to_string(), t)
    }

    /// Xavier-uniform weight (VITS attention projections), default bias.
    pub fn xavier_conv(&mut self, prefix: &str, c_out: usize, c_in: usize) -> Result<()> {
        let bound = (6.0 / (c_in + c_out) as f64).sqrt();
        let vals = self.rng.uniforms(c_out * c_in, bound);
        let w = self.tensor(vals, &[c_out, c_in, 1])?;
        self.params.add(format!("{prefix}.weight"), w)?;
        let bb = 1.0 / (c_in as f64).sqrt();
        let vals = self.rng.uniforms(c_out, bb);
        let b = self.tensor(vals, &[c_out])?;
        self.params.add(format!("{prefix}.bias"), b)
    }

    /// Weight-normed ConvTranspose1d `[c_in, c_out, k]`: g has shape `[c_in, 1, 1]`
    /// (weight norm over dim 0), bias has `c_out` entries.
    pub fn wn_conv_t(&mut self, prefix: &str, c_in: usize, c_out: usize, k: usize) -> Result<()> {
        self.wn_conv(prefix, &[c_in, c_out, k], false)?;
        let bound = 1.0 / ((c_out * k) as f64).sqrt();
        let vals = self.rng.uniforms(c_out, bound);
        let b = self.tensor(vals, &[c_out])?;
        self.params.add(format!("{prefix}.bias"), b)
    }
}
