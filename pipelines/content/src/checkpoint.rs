//! Reading weight files into one canonical naming (fairseq's), whatever layout they came in.
//!
//! Three containers: safetensors, torch zip pickles (fairseq `{"model": state_dict, "cfg"...}` or a
//! bare Hugging Face `pytorch_model.bin`), and folders holding either plus `config.json`. Hugging
//! Face names are renamed to fairseq's so the model builder knows one set of names, and the
//! positional convolution's weight norm is folded here, once.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, PthTensors, Stack};
use candle_core::{DType, Device, Tensor};

use crate::error::{ContentError, Result};

/// Which naming the file used; reported so a caller can log what was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// fairseq `HubertModel` state dict (RVC's `hubert_base.pt`).
    Fairseq,
    /// Hugging Face `HubertModel` (optionally with a ContentVec `final_proj`).
    HuggingFace,
}

/// Facts about the architecture that the tensor shapes do not carry, read from the checkpoint's
/// own config where it has one. `None` means "not stated".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    pub heads: Option<usize>,
    /// fairseq `extractor_mode == "layer_norm"` / HF `feat_extract_norm == "layer"` (HuBERT-large).
    pub layer_norm_extractor: Option<bool>,
    /// fairseq `layer_norm_first` / HF `do_stable_layer_norm` (pre-norm transformer).
    pub layer_norm_first: Option<bool>,
    /// fairseq task `normalize` / HF `do_normalize`: whether the waveform is standardised first.
    pub normalize: Option<bool>,
    pub conv_kernels: Option<Vec<usize>>,
    pub conv_strides: Option<Vec<usize>>,
    pub layer_norm_eps: Option<f64>,
}

/// Tensors by fairseq name, all f32 on the CPU, pos-conv weight norm already folded.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub layout: Layout,
    pub tensors: HashMap<String, Tensor>,
    pub hints: Hints,
}

/// The name of the folded positional-convolution weight.
pub const POS_CONV_WEIGHT: &str = "encoder.pos_conv.0.weight";

/// Files tried, in order, when a folder is given.
pub const FOLDER_CANDIDATES: [&str; 3] =
    ["hubert_base.pt", "model.safetensors", "pytorch_model.bin"];

/// Read a checkpoint file, or the first of [`FOLDER_CANDIDATES`] in a folder.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let file = if path.is_dir() {
        FOLDER_CANDIDATES
            .iter()
            .map(|name| path.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| ContentError::NotACheckpoint {
                path: path.to_path_buf(),
                reason: format!("folder holds none of {}", FOLDER_CANDIDATES.join(", ")),
            })?
    } else {
        path.to_path_buf()
    };
    let (raw, mut hints) = match sniff(&file)? {
        Container::Safetensors => (read_safetensors(&file)?, Hints::default()),
        Container::TorchZip => read_torch_zip(&file)?,
    };
    let layout = if raw.keys().any(|k| is_hf_name(k)) {
        Layout::HuggingFace
    } else {
        Layout::Fairseq
    };
    if let Some(dir) = file.parent() {
        let config = dir.join("config.json");
        if layout == Layout::HuggingFace && config.is_file() {
            hints = hf_config_hints(&config)?;
        }
    }
    let mut tensors = HashMap::with_capacity(raw.len());
    for (name, t) in raw {
        let name = match layout {
            Layout::Fairseq => Some(name),
            Layout::HuggingFace => hf_to_fairseq(&name),
        };
        if let Some(name) = name {
            tensors.insert(name, t.to_dtype(DType::F32)?);
        }
    }
    fold_pos_conv(&mut tensors)?;
    Ok(Checkpoint {
        path: file,
        layout,
        tensors,
        hints,
    })
}

enum Container {
    Safetensors,
    TorchZip,
}

/// Tell the container from its first bytes rather than its extension (`.pt`, `.bin`, `.pth` are
/// all used for both torch formats).
fn sniff(path: &Path) -> Result<Container> {
    let io = |source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = [0u8; 9];
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut n = 0;
    while n < head.len() {
        let got = f.read(&mut head[n..]).map_err(io)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        Ok(Container::TorchZip)
    } else if head.len() == 9 && head[8] == b'{' {
        Ok(Container::Safetensors)
    } else if head.first() == Some(&0x80) {
        // A pickle PROTO opcode at byte 0: torch.save's format before PyTorch 1.6.
        Err(ContentError::LegacyPickle {
            path: path.to_path_buf(),
        })
    } else {
        Err(ContentError::NotACheckpoint {
            path: path.to_path_buf(),
            reason: "neither a torch zip checkpoint nor safetensors".into(),
        })
    }
}

fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|source| ContentError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A torch zip: the state dict is either the whole pickle (HF `pytorch_model.bin`) or its
/// `"model"` entry (fairseq), next to `"cfg"`/`"args"` that hold the hints.
fn read_torch_zip(path: &Path) -> Result<(HashMap<String, Tensor>, Hints)> {
    let read_err = |source| ContentError::Read {
        path: path.to_path_buf(),
        source,
    };
    let top = read_pickle_root(path)?;
    let key = ["model", "state_dict"]
        .into_iter()
        .find(|k| dict_get(&top, k).is_some());
    let hints = fairseq_hints(&top);
    let pth = PthTensors::new(path, key).map_err(read_err)?;
    let mut out = HashMap::with_capacity(pth.tensor_infos().len());
    for name in pth.tensor_infos().keys() {
        if let Some(t) = pth.get(name).map_err(read_err)? {
            out.insert(name.clone(), t);
        }
    }
    if out.is_empty() {
        return Err(ContentError::NotACheckpoint {
            path: path.to_path_buf(),
            reason:
                "the pickle holds no tensors (expected a state dict or {\"model\": state dict})"
                    .into(),
        });
    }
    Ok((out, hints))
}

/// The unpickled `data.pkl` of a torch zip, tensors left as persistent-load references.
fn read_pickle_root(path: &Path) -> Result<Object> {
    let bad = |reason: String| ContentError::NotACheckpoint {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("broken zip: {e}")))?;
    let pkl = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or_else(|| bad("zip has no data.pkl (not a torch.save file)".into()))?;
    let entry = zip
        .by_name(&pkl)
        .map_err(|e| bad(format!("cannot open {pkl}: {e}")))?;
    // candle's unpickler covers what torch.save writes (pickle protocol 2); anything else gets a
    // way out that needs no new code.
    let unpickle = |e: candle_core::Error| {
        bad(format!(
            "cannot unpickle {pkl}: {e}. Converting the weights to safetensors avoids the pickle: \
             `python -c \"import torch; from safetensors.torch import save_file; \
             m = torch.load('IN.pt', map_location='cpu', weights_only=False)['model']; \
             save_file({{k: v.contiguous() for k, v in m.items()}}, 'model.safetensors')\"`"
        ))
    };
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut std::io::BufReader::new(entry))
        .map_err(unpickle)?;
    stack.finalize().map_err(unpickle)
}

fn dict_get<'a>(obj: &'a Object, key: &str) -> Option<&'a Object> {
    match obj {
        Object::Dict(kv) => kv
            .iter()
            .find(|(k, _)| matches!(k, Object::Unicode(s) if s == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// First value stored under `key` anywhere in `obj` (dicts, an `argparse.Namespace`'s state,
/// OmegaConf containers saved as plain dicts). Called on `cfg`/`args` only, never on the state
/// dict (fairseq's `cfg` has its own `"model"` entry, the model's config).
fn find_key<'a>(obj: &'a Object, key: &str) -> Option<&'a Object> {
    match obj {
        Object::Dict(kv) => {
            if let Some(v) = dict_get(obj, key) {
                return Some(v);
            }
            kv.iter().find_map(|(_, v)| find_key(v, key))
        }
        Object::List(xs) | Object::Tuple(xs) => xs.iter().find_map(|x| find_key(x, key)),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            find_key(args, key).or_else(|| find_key(callable, key))
        }
        _ => None,
    }
}

fn as_int(obj: &Object) -> Option<i64> {
    match obj {
        Object::Int(i) => Some(i64::from(*i)),
        Object::Long(i) => Some(*i),
        _ => None,
    }
}

fn as_bool(obj: &Object) -> Option<bool> {
    match obj {
        Object::Bool(b) => Some(*b),
        _ => None,
    }
}

fn fairseq_hints(top: &Object) -> Hints {
    let cfg: Vec<&Object> = ["cfg", "args"]
        .iter()
        .filter_map(|k| dict_get(top, k))
        .collect();
    let find = |key: &str| cfg.iter().find_map(|c| find_key(c, key));
    Hints {
        heads: find("encoder_attention_heads")
            .and_then(as_int)
            .and_then(|h| usize::try_from(h).ok()),
        layer_norm_extractor: find("extractor_mode").and_then(|m| match m {
            Object::Unicode(s) => Some(s == "layer_norm"),
            _ => None,
        }),
        layer_norm_first: find("layer_norm_first").and_then(as_bool),
        normalize: find("normalize").and_then(as_bool),
        ..Hints::default()
    }
}

fn hf_config_hints(path: &Path) -> Result<Hints> {
    let text = std::fs::read_to_string(path).map_err(|source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ContentError::NotACheckpoint {
            path: path.to_path_buf(),
            reason: format!("config.json is not JSON: {e}"),
        })?;
    let usizes = |key: &str| {
        v.get(key)?
            .as_array()?
            .iter()
            .map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
            .collect::<Option<Vec<_>>>()
    };
    Ok(Hints {
        heads: v
            .get("num_attention_heads")
            .and_then(|x| x.as_u64())
            .and_then(|x| usize::try_from(x).ok()),
        layer_norm_extractor: v
            .get("feat_extract_norm")
            .and_then(|x| x.as_str())
            .map(|s| s == "layer"),
        layer_norm_first: v.get("do_stable_layer_norm").and_then(|x| x.as_bool()),
        normalize: None,
        conv_kernels: usizes("conv_kernel"),
        conv_strides: usizes("conv_stride"),
        layer_norm_eps: v.get("layer_norm_eps").and_then(|x| x.as_f64()),
    })
}

fn is_hf_name(name: &str) -> bool {
    let name = name.strip_prefix("hubert.").unwrap_or(name);
    name.starts_with("feature_projection.")
        || name.starts_with("encoder.pos_conv_embed.")
        || name.contains(".feed_forward.")
}

/// A Hugging Face `HubertModel` name in fairseq's naming; `None` for tensors the encoder never
/// uses (`masked_spec_embed`).
fn hf_to_fairseq(name: &str) -> Option<String> {
    let name = name.strip_prefix("hubert.").unwrap_or(name);
    if name == "masked_spec_embed" {
        return None;
    }
    if let Some(rest) = name.strip_prefix("feature_extractor.conv_layers.") {
        let (idx, rest) = rest.split_once('.')?;
        let rest = if let Some(r) = rest.strip_prefix("conv.") {
            format!("0.{r}")
        } else if let Some(r) = rest.strip_prefix("layer_norm.") {
            format!("2.{r}")
        } else {
            rest.to_string()
        };
        return Some(format!("feature_extractor.conv_layers.{idx}.{rest}"));
    }
    if let Some(r) = name.strip_prefix("feature_projection.layer_norm.") {
        return Some(format!("layer_norm.{r}"));
    }
    if let Some(r) = name.strip_prefix("feature_projection.projection.") {
        return Some(format!("post_extract_proj.{r}"));
    }
    if let Some(r) = name.strip_prefix("encoder.pos_conv_embed.conv.") {
        let r = match r {
            "parametrizations.weight.original0" => "weight_g",
            "parametrizations.weight.original1" => "weight_v",
            other => other,
        };
        return Some(format!("encoder.pos_conv.0.{r}"));
    }
    if let Some(rest) = name.strip_prefix("encoder.layers.") {
        let (idx, rest) = rest.split_once('.')?;
        let rest = if let Some(r) = rest.strip_prefix("attention.") {
            format!("self_attn.{r}")
        } else if let Some(r) = rest.strip_prefix("layer_norm.") {
            format!("self_attn_layer_norm.{r}")
        } else if let Some(r) = rest.strip_prefix("feed_forward.intermediate_dense.") {
            format!("fc1.{r}")
        } else if let Some(r) = rest.strip_prefix("feed_forward.output_dense.") {
            format!("fc2.{r}")
        } else {
            rest.to_string()
        };
        return Some(format!("encoder.layers.{idx}.{rest}"));
    }
    Some(name.to_string())
}

/// Replace `weight_g`/`weight_v` by the weight they stand for: `g * v / ||v||`, the norm taken
/// over every axis except the one `g` keeps. Both fairseq and transformers apply weight norm to
/// the positional convolution with `dim=2` (the kernel axis), so `g` is `(1, 1, kernel)`; a
/// `dim=0` `g` of `(out, 1, 1)` is folded correctly too.
fn fold_pos_conv(tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let g_name = "encoder.pos_conv.0.weight_g";
    let v_name = "encoder.pos_conv.0.weight_v";
    let (Some(g), Some(v)) = (tensors.remove(g_name), tensors.remove(v_name)) else {
        return Ok(());
    };
    let vd = v.dims().to_vec();
    let gd = g.dims().to_vec();
    if vd.len() != 3 || gd.len() != 3 {
        return Err(ContentError::BadShape {
            name: g_name.into(),
            expected: vec![1, 1, vd.get(2).copied().unwrap_or(0)],
            found: gd,
        });
    }
    let kept = (0..3)
        .filter(|&d| gd[d] != 1 || vd[d] == 1)
        .collect::<Vec<_>>();
    let dim = match kept.as_slice() {
        [d] if gd[*d] == vd[*d] => *d,
        _ => {
            return Err(ContentError::BadShape {
                name: g_name.into(),
                expected: vec![1, 1, vd[2]],
                found: gd,
            })
        }
    };
    let mut norm = v.sqr()?;
    for d in (0..3).filter(|&d| d != dim) {
        norm = norm.sum_keepdim(d)?;
    }
    let w = v.broadcast_mul(&g.broadcast_div(&norm.sqrt()?)?)?;
    tensors.insert(POS_CONV_WEIGHT.to_string(), w);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_names_map_to_fairseq() {
        let cases = [
            (
                "feature_extractor.conv_layers.0.conv.weight",
                "feature_extractor.conv_layers.0.0.weight",
            ),
            (
                "feature_extractor.conv_layers.0.layer_norm.bias",
                "feature_extractor.conv_layers.0.2.bias",
            ),
            (
                "feature_projection.projection.weight",
                "post_extract_proj.weight",
            ),
            ("feature_projection.layer_norm.weight", "layer_norm.weight"),
            (
                "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
                "encoder.pos_conv.0.weight_g",
            ),
            (
                "encoder.pos_conv_embed.conv.weight_v",
                "encoder.pos_conv.0.weight_v",
            ),
            (
                "encoder.layers.11.attention.q_proj.bias",
                "encoder.layers.11.self_attn.q_proj.bias",
            ),
            (
                "encoder.layers.3.layer_norm.weight",
                "encoder.layers.3.self_attn_layer_norm.weight",
            ),
            (
                "encoder.layers.3.feed_forward.output_dense.weight",
                "encoder.layers.3.fc2.weight",
            ),
            (
                "hubert.encoder.layer_norm.weight",
                "encoder.layer_norm.weight",
            ),
            ("final_proj.weight", "final_proj.weight"),
        ];
        for (hf, fs) in cases {
            assert_eq!(hf_to_fairseq(hf).as_deref(), Some(fs), "{hf}");
        }
        assert_eq!(hf_to_fairseq("masked_spec_embed"), None);
    }

    #[test]
    fn weight_norm_folds_over_all_but_the_kernel_axis() -> Result<()> {
        // v = ones(2, 3, 4): the norm over axes 0 and 1 is sqrt(6) for every kernel tap.
        let v = Tensor::ones((2, 3, 4), DType::F32, &Device::Cpu)?;
        let g = Tensor::new(&[[[1f32, 2., 3., 4.]]], &Device::Cpu)?;
        let mut t = HashMap::from([
            ("encoder.pos_conv.0.weight_g".to_string(), g),
            ("encoder.pos_conv.0.weight_v".to_string(), v),
        ]);
        fold_pos_conv(&mut t)?;
        let w = t
            .get(POS_CONV_WEIGHT)
            .ok_or_else(|| ContentError::MissingTensor {
                name: POS_CONV_WEIGHT.into(),
            })?
            .to_vec3::<f32>()?;
        let s = 6f32.sqrt();
        assert!((w[1][2][3] - 4.0 / s).abs() < 1e-6);
        assert!((w[0][0][0] - 1.0 / s).abs() < 1e-6);
        Ok(())
    }
}
