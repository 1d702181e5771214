//! Reading RVC's `rmvpe.pt` (a torch zip holding a bare state dict) or a safetensors file.
//!
//! The pickle is parsed with candle's reader, but the zip is opened here with the archive
//! offset fixed at 0: the zip crate's offset detection (which candle's `read_all` relies on)
//! rejects some valid PyTorch archives ("Invalid Central Directory header").

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Device, Tensor};

use crate::error::{Result, RmvpeError};

/// Float tensors of a state dict by name, as f32 on the CPU.
#[derive(Debug)]
pub struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    /// Read `path`: a torch zip (`torch.save` of a state dict, optionally under `model` or
    /// `state_dict`) or, when the file is not a zip, safetensors.
    pub fn read(path: &Path) -> Result<Self> {
        let err = |reason: String| RmvpeError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RmvpeError::NotFound {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let mut magic = [0u8; 2];
        let is_zip = file.read_exact(&mut magic).is_ok() && &magic == b"PK";
        drop(file);
        let raw = if is_zip {
            read_torch_zip(path).map_err(err)?
        } else {
            candle_core::safetensors::load(path, &Device::Cpu)
                .map_err(|e| err(format!("neither a torch zip nor safetensors: {e}")))?
        };
        Self::from_tensors(raw)
    }

    /// Keep the float tensors (as f32); integer ones such as `num_batches_tracked` are dropped.
    pub fn from_tensors(raw: HashMap<String, Tensor>) -> Result<Self> {
        let mut tensors = HashMap::new();
        for (name, t) in raw {
            if t.dtype().is_float() {
                tensors.insert(name, t.to_dtype(DType::F32)?);
            }
        }
        Ok(Self { tensors })
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| RmvpeError::MissingTensor(name.to_string()))?;
        if t.dims() != shape {
            return Err(RmvpeError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// The tensor `name` of any shape (used to learn sizes the checkpoint decides).
    pub fn dims(&self, name: &str) -> Result<Vec<usize>> {
        self.tensors
            .get(name)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| RmvpeError::MissingTensor(name.to_string()))
    }

    /// All tensors, for re-saving (tests write safetensors from a `.pt`).
    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.tensors
    }
}

fn read_torch_zip(path: &Path) -> std::result::Result<HashMap<String, Tensor>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip = zip::ZipArchive::with_config(config, BufReader::new(file))
        .map_err(|e| format!("not a zip archive: {e}"))?;
    let (top, dir) = top_object(&mut zip)?;
    let Object::Dict(entries) = top else {
        return Err("the pickled object is not a state dict".into());
    };
    // RVC saves the bare state dict; other tools nest it under `model` or `state_dict`.
    let mut nested = None;
    let mut flat = Vec::new();
    for (k, v) in entries {
        match (&k, v) {
            (Object::Unicode(name), Object::Dict(inner))
                if name == "model" || name == "state_dict" =>
            {
                nested = Some(inner)
            }
            (_, v) => flat.push((k, v)),
        }
    }
    let state = nested.unwrap_or(flat);
    let mut tensors = HashMap::new();
    for (name, value) in state {
        let info = value
            .into_tensor_info(name, &dir)
            .map_err(|e| format!("state dict entry: {e}"))?;
        if let Some(info) = info {
            let t = read_tensor(&mut zip, &info).map_err(|e| format!("`{}`: {e}", info.name))?;
            tensors.insert(info.name, t);
        }
    }
    if tensors.is_empty() {
        return Err("no tensors in the state dict".into());
    }
    Ok(tensors)
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
        return Err(format!("strided tensor {layout:?}"));
    }
    let bytes = layout.shape().elem_count() * info.dtype.size_in_bytes();
    let offset = layout.start_offset() * info.dtype.size_in_bytes();
    let mut entry = zip
        .by_name(&info.path)
        .map_err(|e| format!("storage {}: {e}", info.path))?;
    std::io::copy(
        &mut entry.by_ref().take(offset as u64),
        &mut std::io::sink(),
    )
    .map_err(|e| format!("storage {}: {e}", info.path))?;
    let mut buf = Vec::with_capacity(bytes);
    entry
        .take(bytes as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("storage {}: {e}", info.path))?;
    if buf.len() != bytes {
        return Err(format!(
            "storage {} holds {} bytes, the tensor needs {bytes} (truncated file?)",
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
