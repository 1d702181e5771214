//! Reading torchfcpe's zip-format `.pt`: the state dict under `model` and the `config_dict`.
//!
//! candle's pickle reader gives the tensors; the config lives in the same `data.pkl`, so that
//! pickle is parsed once more here and its plain values (dicts, numbers, strings) become JSON.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use candle_core::pickle::{read_all_with_key, Object, Stack};
use candle_core::Tensor;

use crate::config::FcpeConfig;
use crate::error::{FcpeError, Result};

/// Tensors by state-dict name plus the config when the checkpoint carries one.
pub struct Checkpoint {
    pub tensors: HashMap<String, Tensor>,
    pub config: Option<FcpeConfig>,
}

impl Checkpoint {
    /// Read `path`; a bare state dict (no `model` key) is accepted too, with no config.
    pub fn read(path: &Path) -> Result<Self> {
        let err = |reason: String| FcpeError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let top = top_object(BufReader::new(file)).map_err(err)?;
        let entries = match top {
            Object::Dict(entries) => entries,
            other => {
                return Err(FcpeError::Format(format!(
                    "top-level object is not a dict: {}",
                    kind(&other)
                )))
            }
        };
        let mut has_model = false;
        let mut config_json = None;
        for (k, v) in entries {
            match k {
                Object::Unicode(k) if k == "model" => has_model = true,
                Object::Unicode(k) if k == "config_dict" => config_json = Some(to_json(v)),
                _ => {}
            }
        }
        let key = has_model.then_some("model");
        let tensors: HashMap<String, Tensor> = read_all_with_key(path, key)
            .map_err(|e| err(e.to_string()))?
            .into_iter()
            .collect();
        if tensors.is_empty() {
            return Err(FcpeError::Format("no tensors in the state dict".into()));
        }
        let config = config_json
            .as_ref()
            .map(FcpeConfig::from_json)
            .transpose()?;
        Ok(Self { tensors, config })
    }
}

/// The unpickled `data.pkl` of a PyTorch zip archive.
fn top_object<R: Read + Seek>(reader: R) -> std::result::Result<Object, String> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| format!("not a zip archive: {e}"))?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or("no data.pkl in the archive (not a PyTorch zip checkpoint)")?;
    let entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut BufReader::new(entry))
        .map_err(|e| format!("unpickling {name}: {e}"))?;
    stack
        .finalize()
        .map_err(|e| format!("unpickling {name}: {e}"))
}

/// Plain pickle values as JSON; tensors, classes and the like become null (the config has none).
fn to_json(obj: Object) -> serde_json::Value {
    use serde_json::Value;
    match obj {
        Object::Int(i) => Value::from(i),
        Object::Long(i) => Value::from(i),
        Object::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Object::Unicode(s) => Value::String(s),
        Object::Bool(b) => Value::Bool(b),
        Object::List(v) | Object::Tuple(v) => Value::Array(v.into_iter().map(to_json).collect()),
        Object::Dict(entries) => Value::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Object::Unicode(k) => Some((k, to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn kind(obj: &Object) -> &'static str {
    match obj {
        Object::Class { .. } => "class",
        Object::Int(_) | Object::Long(_) => "int",
        Object::Float(_) => "float",
        Object::Unicode(_) => "str",
        Object::Bool(_) => "bool",
        Object::None => "None",
        Object::Tuple(_) => "tuple",
        Object::List(_) => "list",
        Object::Mark => "mark",
        Object::Dict(_) => "dict",
        Object::Reduce { .. } => "reduce",
        Object::Build { .. } => "build",
        Object::PersistentLoad(_) => "persistent load",
    }
}
