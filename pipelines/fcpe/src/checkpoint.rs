//! Reading torchfcpe's zip-format `.pt`: the state dict under `model` and the `config_dict`.
//!
//! The pickle is parsed with candle's reader (`Stack`, `Object::into_tensor_info`), but the zip
//! is opened here with the archive offset fixed at 0: the zip crate's offset detection (which
//! candle's `read_all` relies on) rejects some valid PyTorch archives ("Invalid Central
//! Directory header"; `testdata/tiny_attention_nonorm.pt` is one).

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{Device, Tensor};

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
        let mut zip = open_zip(BufReader::new(file)).map_err(err)?;
        let (top, dir) = top_object(&mut zip).map_err(err)?;
        let entries = match top {
            Object::Dict(entries) => entries,
            other => {
                return Err(FcpeError::Format(format!(
                    "top-level object is not a dict: {}",
                    kind(&other)
                )))
            }
        };
        let mut model = None;
        let mut config_json = None;
        let mut rest = Vec::new();
        for (k, v) in entries {
            match &k {
                Object::Unicode(name) if name == "model" => model = Some(v),
                Object::Unicode(name) if name == "config_dict" => config_json = Some(to_json(v)),
                _ => rest.push((k, v)),
            }
        }
        let state = match model {
            Some(Object::Dict(entries)) => entries,
            Some(other) => {
                return Err(FcpeError::Format(format!(
                    "`model` is not a state dict: {}",
                    kind(&other)
                )))
            }
            None => rest,
        };
        let mut tensors = HashMap::new();
        for (name, value) in state {
            let info = value
                .into_tensor_info(name, &dir)
                .map_err(|e| FcpeError::Format(format!("state dict entry: {e}")))?;
            if let Some(info) = info {
                let t =
                    read_tensor(&mut zip, &info).map_err(|e| err(format!("{}: {e}", info.name)))?;
                tensors.insert(info.name, t);
            }
        }
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

fn open_zip<R: Read + Seek>(reader: R) -> std::result::Result<zip::ZipArchive<R>, String> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    zip::ZipArchive::with_config(config, reader).map_err(|e| format!("not a zip archive: {e}"))
}

/// The unpickled `data.pkl` and the archive folder its storages live in.
fn top_object<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
) -> std::result::Result<(Object, PathBuf), String> {
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or("no data.pkl in the archive (not a PyTorch zip checkpoint)")?;
    let dir = PathBuf::from(name.strip_suffix(".pkl").unwrap_or(&name));
    let entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut BufReader::new(entry))
        .map_err(|e| format!("unpickling {name}: {e}"))?;
    let obj = stack
        .finalize()
        .map_err(|e| format!("unpickling {name}: {e}"))?;
    Ok((obj, dir))
}

/// One tensor from its storage file: contiguous (or Fortran-ordered) views only, as candle.
fn read_tensor<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    info: &TensorInfo,
) -> std::result::Result<Tensor, String> {
    let layout = &info.layout;
    let fortran = layout.is_fortran_contiguous() && !layout.is_contiguous();
    if !layout.is_contiguous() && !fortran {
        return Err(format!("strided tensor {:?}", layout));
    }
    let bytes = layout.shape().elem_count() * info.dtype.size_in_bytes();
    let mut entry = zip
        .by_name(&info.path)
        .map_err(|e| format!("storage {}: {e}", info.path))?;
    let mut buf = Vec::with_capacity(bytes);
    std::io::copy(
        &mut entry.by_ref().take(layout.start_offset() as u64),
        &mut std::io::sink(),
    )
    .map_err(|e| e.to_string())?;
    entry
        .take(bytes as u64)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() != bytes {
        return Err(format!(
            "storage {} holds {} bytes, the tensor needs {bytes}",
            info.path,
            buf.len()
        ));
    }
    let dims = layout.dims();
    if fortran {
        let reversed: Vec<usize> = dims.iter().rev().copied().collect();
        let t = Tensor::from_raw_buffer(&buf, info.dtype, &reversed, &Device::Cpu)
            .map_err(|e| e.to_string())?;
        let order: Vec<usize> = (0..dims.len()).rev().collect();
        t.permute(order).map_err(|e| e.to_string())
    } else {
        Tensor::from_raw_buffer(&buf, info.dtype, dims, &Device::Cpu).map_err(|e| e.to_string())
    }
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
