//! Reading RVC WebUI / Applio `.pth` voice files: config, flags and float32 weights.
//!
//! The file is a zip-format torch pickle of a dict such as
//! `{"weight": state_dict, "config": [...], "f0": 1, "version": "v2", "sr": "40k", "info": ...}`.
//! Weight-normalised layers are stored as `weight_g`/`weight_v` (WebUI) or as
//! `parametrizations.weight.original0/1` (newer torch, Applio); both are folded into plain
//! `weight` tensors here so the modules never see weight norm.

use std::collections::HashMap;
use std::path::Path;

use candle_core::pickle::{Object, PthTensors};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use crate::config::{SynthConfig, Version};
use crate::error::{Result, RvcError};

/// Named float32 tensors with shape-checked lookup.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    /// Wrap already-folded float32 tensors (tests and callers building models by hand).
    pub fn new(tensors: HashMap<String, Tensor>) -> Self {
        Self { tensors }
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| RvcError::MissingWeight(name.to_string()))?;
        if t.dims() != shape {
            return Err(RvcError::WeightShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                actual: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// The tensor `name` whatever its shape (for sizes read off the weights themselves).
    pub fn get_any(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| RvcError::MissingWeight(name.to_string()))
    }

    /// Add or replace a tensor (tests, hand-built models).
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) -> Option<Tensor> {
        self.tensors.insert(name.into(), t)
    }

    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }
}

/// A loaded RVC voice model file.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub config: SynthConfig,
    pub version: Version,
    /// Whether the model was trained with pitch (NSF decoder, `emb_pitch`).
    pub f0: bool,
    /// The `sr` label as stored ("40k"), when present.
    pub sr_label: Option<String>,
    /// Free-text `info` (e.g. training epochs), when present.
    pub info: Option<String>,
    pub weights: Weights,
}

fn ckpt_err(path: &Path, msg: impl Into<String>) -> RvcError {
    RvcError::Checkpoint {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// Plain pickle values (numbers, strings, lists) as JSON; tensors and classes give `None`.
fn to_json(obj: &Object) -> Option<Value> {
    Some(match obj {
        Object::Int(i) => Value::from(*i),
        Object::Long(i) => Value::from(*i),
        Object::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number)?,
        Object::Unicode(s) => Value::String(s.clone()),
        Object::Bool(b) => Value::Bool(*b),
        Object::None => Value::Null,
        Object::List(v) | Object::Tuple(v) => {
            Value::Array(v.iter().map(to_json).collect::<Option<Vec<_>>>()?)
        }
        _ => return None,
    })
}

/// The top-level pickle object of a zip-format torch file.
fn read_top_object(path: &Path) -> Result<Object> {
    let mut zip = crate::export::open_zip(path)?;
    crate::export::read_pickle(&mut zip, path).map(|(_, top)| top)
}

/// Fold torch weight norm (dim 0): `w = g * v / ||v||`, the norm over all dims but the first.
pub fn fold_weight_norm(g: &Tensor, v: &Tensor) -> Result<Tensor> {
    let rank = v.rank();
    if rank < 2 {
        return Err(RvcError::Input(format!(
            "weight_v must have at least 2 dims, has shape {:?}",
            v.dims()
        )));
    }
    let out = v.dims()[0];
    let flat = v.reshape((out, ()))?;
    let norm = flat.sqr()?.sum_keepdim(1)?.sqrt()?;
    let g = g.reshape((out, 1))?;
    let w = flat.broadcast_mul(&g.broadcast_div(&norm)?)?;
    Ok(w.reshape(v.dims())?)
}

/// Replace every weight-norm pair by its folded `weight`.
fn fold_all(mut raw: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    const PAIRS: [(&str, &str); 2] = [
        ("weight_g", "weight_v"),
        (
            "parametrizations.weight.original0",
            "parametrizations.weight.original1",
        ),
    ];
    let mut out = HashMap::new();
    let names: Vec<String> = raw.keys().cloned().collect();
    for name in names {
        for (gs, vs) in PAIRS {
            let Some(prefix) = name.strip_suffix(gs) else {
                continue;
            };
            let vname = format!("{prefix}{vs}");
            let g = raw
                .remove(&name)
                .ok_or_else(|| RvcError::MissingWeight(name.clone()))?;
            let v = raw
                .remove(&vname)
                .ok_or_else(|| RvcError::MissingWeight(vname.clone()))?;
            if g.elem_count() != v.dims().first().copied().unwrap_or(0) {
                return Err(RvcError::WeightShape {
                    name: name.clone(),
                    expected: vec![v.dims().first().copied().unwrap_or(0)],
                    actual: g.dims().to_vec(),
                });
            }
            let key = match gs {
                "weight_g" => format!("{prefix}weight"),
                _ => format!(
                    "{}weight",
                    prefix.strip_suffix("parametrizations.").unwrap_or(prefix)
                ),
            };
            out.insert(key, fold_weight_norm(&g, &v)?);
        }
    }
    for (name, t) in raw {
        if name.ends_with("weight_v") || name.ends_with("parametrizations.weight.original1") {
            return Err(RvcError::MissingWeight(format!(
                "weight-norm gain for `{name}`"
            )));
        }
        out.insert(name, t);
    }
    Ok(out)
}

impl Checkpoint {
    /// Load an RVC `.pth` voice file; every weight ends up float32 on the CPU.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let top = read_top_object(path)?;
        let Object::Dict(entries) = top else {
            return Err(ckpt_err(path, "top-level object is not a dict"));
        };
        let mut meta: HashMap<String, Option<Value>> = HashMap::new();
        let mut has_weight = false;
        for (k, v) in &entries {
            if let Object::Unicode(k) = k {
                if k == "weight" {
                    has_weight = true;
                } else {
                    meta.insert(k.clone(), to_json(v));
                }
            }
        }
        if !has_weight {
            return Err(ckpt_err(
                path,
                "no `weight` entry (is this a training checkpoint G_*.pth rather than an exported voice model?)",
            ));
        }
        let field = |k: &str| meta.get(k).cloned().flatten();
        let config_list = match field("config") {
            Some(Value::Array(list)) => list,
            Some(other) => return Err(ckpt_err(path, format!("`config` is not a list: {other}"))),
            None => return Err(ckpt_err(path, "missing `config` list")),
        };
        // RVC's defaults for checkpoints that predate these keys.
        let version = match field("version") {
            Some(Value::String(s)) => Version::parse(&s)?,
            None => Version::V1,
            Some(other) => {
                return Err(ckpt_err(
                    path,
                    format!("`version` is not a string: {other}"),
                ))
            }
        };
        let f0 = match field("f0") {
            Some(v) => match v.as_i64() {
                Some(1) => true,
                Some(0) => false,
                _ => return Err(ckpt_err(path, format!("`f0` should be 0 or 1, got {v}"))),
            },
            None => true,
        };
        if let Some(Value::String(vocoder)) = field("vocoder") {
            if vocoder != "HiFi-GAN" {
                return Err(RvcError::Unsupported(format!(
                    "vocoder `{vocoder}` (only HiFi-GAN / NSF-HiFiGAN decoders are implemented)"
                )));
            }
        }
        let mut config = SynthConfig::from_list(&config_list)?;

        let pth = PthTensors::new(path, Some("weight"))
            .map_err(|e| ckpt_err(path, format!("reading weights: {e}")))?;
        let mut raw = HashMap::new();
        for name in pth.tensor_infos().keys() {
            let t = pth
                .get(name)
                .map_err(|e| ckpt_err(path, format!("reading tensor `{name}`: {e}")))?
                .ok_or_else(|| ckpt_err(path, format!("tensor `{name}` vanished")))?;
            let t = t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
            raw.insert(name.clone(), t);
        }
        if raw.is_empty() {
            return Err(ckpt_err(path, "`weight` holds no tensors"));
        }
        let weights = Weights::new(fold_all(raw)?);
        // As RVC's own loader does: the speaker count is whatever emb_g holds.
        if let Ok(emb) = weights.get_any("emb_g.weight") {
            if let [n, _] = emb.dims() {
                config.spk_embed_dim = *n;
            }
        }
        Ok(Self {
            config,
            version,
            f0,
            sr_label: field("sr").and_then(|v| v.as_str().map(str::to_string)),
            info: field("info").and_then(|v| v.as_str().map(str::to_string)),
            weights,
        })
    }
}
