//! Writing RVC `.pth` files (torch zip + pickle) and reading training checkpoints with their weight-norm pairs intact.
//!
//! The trainer starts from RVC's pretrained `f0G40k.pth`/`f0D40k.pth`, saves `G_*.pth`-style
//! states and exports voices RVC WebUI / Applio users can load, so both directions speak
//! torch's own zip serialisation (what `torch.save` writes):
//! `archive/data.pkl` (a protocol-2 pickle whose tensors point at storages by persistent id),
//! `archive/data/<key>` (raw little-endian storage bytes, stored, 64-byte aligned),
//! `archive/byteorder` and `archive/version`. The pickle uses only globals
//! `torch.load(weights_only=True)` allows: `collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2` and the typed storage classes.
//!
//! `.format_version` is deliberately not written: it would let torch compute storage offsets
//! from its own header layout (data descriptors included), which this writer does not copy.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Tensor};
use serde_json::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::config::{SynthConfig, Version};
use crate::error::{Result, RvcError};

/// A Python value as it will be pickled into a `.pth` file.
#[derive(Debug, Clone)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    /// A plain `dict` with string keys, in this order.
    Dict(Vec<(String, PyValue)>),
    /// A state dict: an `OrderedDict` of tensors, as `module.state_dict()` is.
    Tensors(Vec<(String, Tensor)>),
}

impl PyValue {
    /// JSON as Python would have it: configs kept as `serde_json::Value` pickle like `json.load`'s output.
    pub fn from_json(v: &Value) -> Self {
        match v {
            Value::Null => Self::None,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Self::Str(s.clone()),
            Value::Array(a) => Self::List(a.iter().map(Self::from_json).collect()),
            Value::Object(o) => Self::Dict(
                o.iter()
                    .map(|(k, v)| (k.clone(), Self::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// The directory every record of a file we write lives under (what torch uses for buffers).
const ARCHIVE: &str = "archive";
/// Storage alignment inside the zip, as torch writes it (lets torch mmap the storages).
const ALIGN: u16 = 64;
/// Torch pads local headers with an extra field of id "FB"; the same id keeps the files alike.
const TORCH_PAD_ID: u16 = u16::from_le_bytes(*b"FB");
/// Python's pickler flushes SETITEMS/APPENDS every 1000 items.
const BATCH: usize = 1000;

fn ckpt_err(path: &Path, msg: impl Into<String>) -> RvcError {
    RvcError::Checkpoint {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RvcError + '_ {
    move |source| RvcError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Protocol-2 pickle emitter; tensors become persistent ids whose storages are collected.
struct Pickler {
    out: Vec<u8>,
    /// Storage `i` (key `"i"`), already in the dtype it is written in.
    storages: Vec<Tensor>,
    float_dtype: DType,
}

impl Pickler {
    fn new(float_dtype: DType) -> Self {
        // PROTO 2
        Self {
            out: vec![0x80, 2],
            storages: Vec::new(),
            float_dtype,
        }
    }

    fn op(&mut self, code: u8) {
        self.out.push(code);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn str(&mut self, s: &str) {
        self.op(b'X'); // BINUNICODE
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, i: i64) {
        if (0..=0xff).contains(&i) {
            self.op(b'K'); // BININT1
            self.out.push(i as u8);
        } else if (0..=0xffff).contains(&i) {
            self.op(b'M'); // BININT2
            self.out.extend_from_slice(&(i as u16).to_le_bytes());
        } else if let Ok(i) = i32::try_from(i) {
            self.op(b'J'); // BININT
            self.out.extend_from_slice(&i.to_le_bytes());
        } else {
            // LONG1: minimal little-endian two's complement.
            let mut bytes = i.to_le_bytes().to_vec();
            while bytes.len() > 1 {
                let last = bytes[bytes.len() - 1];
                let sign_of_prev = bytes[bytes.len() - 2] & 0x80;
                if (last == 0 && sign_of_prev == 0) || (last == 0xff && sign_of_prev != 0) {
                    bytes.pop();
                } else {
                    break;
                }
            }
            self.op(0x8a);
            self.out.push(bytes.len() as u8);
            self.out.extend_from_slice(&bytes);
        }
    }

    fn float(&mut self, f: f64) {
        self.op(b'G'); // BINFLOAT, big-endian
        self.out.extend_from_slice(&f.to_be_bytes());
    }

    fn int_tuple(&mut self, v: &[usize]) {
        match v.len() {
            0 => self.op(b')'),
            n @ 1..=3 => {
                for &x in v {
                    self.int(x as i64);
                }
                self.op(0x84 + n as u8); // TUPLE1..3
            }
            _ => {
                self.op(b'(');
                for &x in v {
                    self.int(x as i64);
                }
                self.op(b't');
            }
        }
    }

    /// `collections.OrderedDict()`, empty, on the stack.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')');
        self.op(b'R');
    }

    fn value(&mut self, v: &PyValue) -> Result<()> {
        match v {
            PyValue::None => self.op(b'N'),
            PyValue::Bool(true) => self.op(0x88),
            PyValue::Bool(false) => self.op(0x89),
            PyValue::Int(i) => self.int(*i),
            PyValue::Float(f) => self.float(*f),
            PyValue::Str(s) => self.str(s),
            PyValue::List(items) => {
                self.op(b']');
                for chunk in items.chunks(BATCH) {
                    self.op(b'(');
                    for item in chunk {
                        self.value(item)?;
                    }
                    self.op(b'e'); // APPENDS
                }
            }
            PyValue::Tuple(items) => {
                self.op(b'(');
                for item in items {
                    self.value(item)?;
                }
                self.op(b't');
            }
            PyValue::Dict(items) => {
                self.op(b'}');
                for chunk in items.chunks(BATCH) {
                    self.op(b'(');
                    for (k, item) in chunk {
                        self.str(k);
                        self.value(item)?;
                    }
                    self.op(b'u'); // SETITEMS
                }
            }
            PyValue::Tensors(items) => {
                let mut seen = HashSet::new();
                if let Some((dup, _)) = items.iter().find(|(k, _)| !seen.insert(k.as_str())) {
                    return Err(RvcError::Input(format!("state dict names `{dup}` twice")));
                }
                self.ordered_dict();
                for chunk in items.chunks(BATCH) {
                    self.op(b'(');
                    for (k, t) in chunk {
                        self.str(k);
                        self.tensor(k, t)?;
                    }
                    self.op(b'u');
                }
            }
        }
        Ok(())
    }

    /// `_rebuild_tensor_v2(persistent storage, 0, size, contiguous stride, False, OrderedDict())`.
    fn tensor(&mut self, name: &str, t: &Tensor) -> Result<()> {
        let stored = match t.dtype() {
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => t.to_dtype(self.float_dtype)?,
            DType::I64 | DType::U8 => t.clone(),
            other => {
                return Err(RvcError::Input(format!(
                    "tensor `{name}` is {other:?}; a .pth holds float, int64 or uint8 tensors here"
                )))
            }
        };
        let class = match stored.dtype() {
            DType::F32 => "FloatStorage",
            DType::F16 => "HalfStorage",
            DType::I64 => "LongStorage",
            DType::U8 => "ByteStorage",
            other => {
                return Err(RvcError::Input(format!(
                    "cannot store `{name}` as {other:?} (F32 or F16 only)"
                )))
            }
        };
        let dims = stored.dims().to_vec();
        let mut stride = vec![1usize; dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * dims[i + 1];
        }
        let key = self.storages.len().to_string();
        let numel = stored.elem_count();
        self.storages.push(stored);

        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b'(');
        self.op(b'(');
        self.str("storage");
        self.global("torch", class);
        self.str(&key);
        self.str("cpu");
        self.int(numel as i64);
        self.op(b't');
        self.op(b'Q'); // BINPERSID
        self.int(0);
        self.int_tuple(&dims);
        self.int_tuple(&stride);
        self.op(0x89); // requires_grad False
        self.ordered_dict(); // backward hooks
        self.op(b't');
        self.op(b'R');
        Ok(())
    }
}

/// Write `top` as `torch.save` would, float tensors as `dtype` (F32 or F16).
///
/// The file is written next to `path` and renamed into place, so a crash mid-save never
/// leaves a truncated checkpoint where the previous one was.
pub fn write_pth(path: &Path, top: &PyValue, dtype: DType) -> Result<()> {
    if !matches!(dtype, DType::F32 | DType::F16) {
        return Err(RvcError::Input(format!(
            "a .pth is written as F32 or F16, not {dtype:?}"
        )));
    }
    let mut p = Pickler::new(dtype);
    p.value(top)?;
    p.op(b'.'); // STOP
    let partial = partial_path(path);
    let written = write_zip(&partial, &p.out, &p.storages)
        .and_then(|()| std::fs::rename(&partial, path).map_err(io_err(path)));
    if written.is_err() {
        // Best effort: the error that matters is the one being returned.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn write_zip(path: &Path, pkl: &[u8], storages: &[Tensor]) -> Result<()> {
    let zerr = |e: zip::result::ZipError| ckpt_err(path, format!("writing zip: {e}"));
    let file = File::create(path).map_err(io_err(path))?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .with_alignment_and_header_id(ALIGN, TORCH_PAD_ID);
    let record = |zip: &mut ZipWriter<BufWriter<File>>, name: &str, bytes: &[u8]| -> Result<()> {
        let opts = opts.large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{ARCHIVE}/{name}"), opts)
            .map_err(zerr)?;
        zip.write_all(bytes).map_err(io_err(path))
    };
    record(&mut zip, "data.pkl", pkl)?;
    record(&mut zip, "byteorder", b"little")?;
    let mut bytes = Vec::new();
    for (key, t) in storages.iter().enumerate() {
        bytes.clear();
        t.write_bytes(&mut bytes)?;
        record(&mut zip, &format!("data/{key}"), &bytes)?;
    }
    record(&mut zip, "version", b"3\n")?;
    let mut out = zip.finish().map_err(zerr)?;
    out.flush().map_err(io_err(path))?;
    out.get_ref().sync_all().map_err(io_err(path))
}

/// Export a voice exactly as RVC WebUI's `savee`/`extract_small_model` does:
/// `{"weight": float16 state dict without enc_q, "config": [18 values], "info", "sr", "f0", "version"}`.
///
/// `weights` may hold `weight_g`/`weight_v` pairs (as training leaves them); they are kept,
/// as RVC keeps them. `sr_label` is RVC's rate label ("40k"); `info` is free text
/// (WebUI writes e.g. "20epoch").
pub fn save_voice(
    path: &Path,
    config: &SynthConfig,
    version: Version,
    f0: bool,
    sr_label: &str,
    info: &str,
    weights: &[(String, Tensor)],
) -> Result<()> {
    config.validate()?;
    // RVC drops every key containing "enc_q": the posterior encoder only serves training.
    let weight: Vec<(String, Tensor)> = weights
        .iter()
        .filter(|(name, _)| !name.contains("enc_q"))
        .cloned()
        .collect();
    if weight.is_empty() {
        return Err(RvcError::Input(
            "no weights to export (all were enc_q or none were given)".into(),
        ));
    }
    let top = PyValue::Dict(vec![
        ("weight".into(), PyValue::Tensors(weight)),
        (
            "config".into(),
            PyValue::List(config.to_list().iter().map(PyValue::from_json).collect()),
        ),
        ("info".into(), PyValue::Str(info.into())),
        ("sr".into(), PyValue::Str(sr_label.into())),
        ("f0".into(), PyValue::Int(i64::from(f0))),
        ("version".into(), PyValue::Str(version.as_str().into())),
    ]);
    write_pth(path, &top, DType::F16)
}

/// Save a training state as RVC's `save_checkpoint` lays out `G_*.pth`/`D_*.pth`:
/// `{"model": state dict (float32), "iteration": int, "optimizer": None, "learning_rate": float}`.
///
/// RVC stores its Adam state under `"optimizer"`; there is none to give here, so RVC's own
/// `load_checkpoint(..., optimizer)` cannot resume from this file (it falls back to the
/// pretrained weights), while `torch.load(f)["model"]` and [`load_state`] read it.
pub fn save_training_state(
    path: &Path,
    model: &[(String, Tensor)],
    iteration: i64,
    learning_rate: f64,
) -> Result<()> {
    let top = PyValue::Dict(vec![
        ("model".into(), PyValue::Tensors(model.to_vec())),
        ("iteration".into(), PyValue::Int(iteration)),
        ("optimizer".into(), PyValue::None),
        ("learning_rate".into(), PyValue::Float(learning_rate)),
    ]);
    write_pth(path, &top, DType::F32)
}

/// A training checkpoint's bookkeeping, when present (pretrained files carry only `"model"`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingMeta {
    pub iteration: Option<i64>,
    pub learning_rate: Option<f64>,
}

/// `iteration` and `learning_rate` of a `G_*.pth`-style file, for resuming where it stopped.
pub fn load_training_meta(path: &Path) -> Result<TrainingMeta> {
    let (_, top) = read_pickle(&mut open_zip(path)?, path)?;
    let Object::Dict(entries) = top else {
        return Err(ckpt_err(path, "top-level object is not a dict"));
    };
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| matches!(key, Object::Unicode(s) if s == k))
            .map(|(_, v)| v)
    };
    let iteration = match get("iteration") {
        None | Some(Object::None) => None,
        Some(Object::Int(i)) => Some(i64::from(*i)),
        Some(Object::Long(i)) => Some(*i),
        Some(other) => return Err(ckpt_err(path, format!("`iteration` is {other:?}"))),
    };
    let learning_rate = match get("learning_rate") {
        None | Some(Object::None) => None,
        Some(Object::Float(f)) => Some(*f),
        Some(Object::Int(i)) => Some(f64::from(*i)),
        Some(other) => return Err(ckpt_err(path, format!("`learning_rate` is {other:?}"))),
    };
    Ok(TrainingMeta {
        iteration,
        learning_rate,
    })
}

pub(crate) fn open_zip(path: &Path) -> Result<ZipArchive<BufReader<File>>> {
    let file = File::open(path).map_err(io_err(path))?;
    ZipArchive::new(BufReader::new(file)).map_err(|e| {
        ckpt_err(
            path,
            format!("not a zip-format torch file (legacy torch.save files are not supported): {e}"),
        )
    })
}

/// The archive's record prefix (`"archive/"`) and its unpickled top-level object.
pub(crate) fn read_pickle(
    zip: &mut ZipArchive<BufReader<File>>,
    path: &Path,
) -> Result<(String, Object)> {
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or_else(|| ckpt_err(path, "no data.pkl in the archive"))?;
    let mut bytes = Vec::new();
    zip.by_name(&name)
        .map_err(|e| ckpt_err(path, format!("reading {name}: {e}")))?
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut std::io::Cursor::new(bytes))
        .map_err(|e| ckpt_err(path, format!("unpickling: {e}")))?;
    let top = stack
        .finalize()
        .map_err(|e| ckpt_err(path, format!("unpickling: {e}")))?;
    let prefix = name
        .strip_suffix("data.pkl")
        .unwrap_or_default()
        .to_string();
    Ok((prefix, top))
}

/// Every tensor of the file's state dict, in file order, with weight norm left as stored
/// (`weight_g`/`weight_v` stay separate, unlike [`crate::Checkpoint::load`]).
///
/// `key` picks the state dict inside the top-level dict: `Some("model")` for `G_*.pth` and
/// RVC's pretrained `f0G40k.pth`/`f0D40k.pth`, `Some("weight")` for exported voices; `None`
/// when the file is a bare state dict. Float tensors come back as F32 on the CPU (integer
/// ones keep their dtype); non-tensor entries are skipped.
pub fn load_state(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let mut zip = open_zip(path)?;
    let (prefix, top) = read_pickle(&mut zip, path)?;
    let what = key.map_or("the top-level object".to_string(), |k| format!("`{k}`"));
    let state = match (key, top) {
        (None, top) => top,
        (Some(k), Object::Dict(entries)) => {
            let keys: Vec<String> = entries
                .iter()
                .filter_map(|(name, _)| match name {
                    Object::Unicode(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            entries
                .into_iter()
                .find(|(name, _)| matches!(name, Object::Unicode(s) if s == k))
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    ckpt_err(
                        path,
                        format!("no `{k}` entry (top-level keys: {})", keys.join(", ")),
                    )
                })?
        }
        (Some(k), _) => {
            return Err(ckpt_err(
                path,
                format!("top-level object is not a dict, so it has no `{k}` entry"),
            ))
        }
    };
    let Object::Dict(entries) = state else {
        return Err(ckpt_err(path, format!("{what} is not a dict of tensors")));
    };
    let data_dir = PathBuf::from(format!("{prefix}data"));
    let mut out = Vec::with_capacity(entries.len());
    for (name, value) in file_order(entries) {
        let Object::Unicode(label) = &name else {
            continue;
        };
        let label = label.clone();
        let info = value
            .into_tensor_info(name, &data_dir)
            .map_err(|e| ckpt_err(path, format!("tensor `{label}`: {e}")))?;
        // Torch's `_metadata` and other non-tensor entries.
        let Some(info) = info else { continue };
        let t = read_tensor(&mut zip, &info, path)?;
        out.push((label, t));
    }
    if out.is_empty() {
        return Err(ckpt_err(path, format!("{what} holds no tensors")));
    }
    Ok(out)
}

/// Dict entries in the order the file lists them.
///
/// candle's unpickler pops each SETITEMS batch off its stack back to front, so every batch
/// comes out reversed. Python's pickler (and [`write_pth`]) writes batches of exactly
/// [`BATCH`] items, so reversing each run of that many restores the order; entries a BUILD
/// appended after the items (torch's `_metadata`) only move within the last run.
fn file_order<T>(mut entries: Vec<T>) -> Vec<T> {
    for run in entries.chunks_mut(BATCH) {
        run.reverse();
    }
    entries
}

fn read_tensor(
    zip: &mut ZipArchive<BufReader<File>>,
    info: &TensorInfo,
    path: &Path,
) -> Result<Tensor> {
    let name = &info.name;
    if !info.layout.is_contiguous() {
        return Err(ckpt_err(
            path,
            format!("tensor `{name}` is stored non-contiguously, which is not supported"),
        ));
    }
    let mut entry = zip
        .by_name(&info.path)
        .map_err(|e| ckpt_err(path, format!("tensor `{name}`: storage {}: {e}", info.path)))?;
    let start = info.layout.start_offset() as u64;
    let need = start + (info.layout.shape().elem_count() * info.dtype.size_in_bytes()) as u64;
    if entry.size() < need {
        return Err(ckpt_err(
            path,
            format!(
                "tensor `{name}` needs {need} bytes of storage {}, which holds {}",
                info.path,
                entry.size()
            ),
        ));
    }
    std::io::copy(&mut (&mut entry).take(start), &mut std::io::sink()).map_err(io_err(path))?;
    let mut bytes = vec![0u8; (need - start) as usize];
    entry.read_exact(&mut bytes).map_err(io_err(path))?;
    let t = Tensor::from_raw_buffer(
        &bytes,
        info.dtype,
        info.layout.dims(),
        &candle_core::Device::Cpu,
    )
    .map_err(|e| ckpt_err(path, format!("tensor `{name}`: {e}")))?;
    Ok(if t.dtype().is_float() {
        t.to_dtype(DType::F32)?
    } else {
        t
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::{f0_to_coarse, Checkpoint, Noise, SynthInput, Synthesizer};
    use candle_core::Device;

    /// A file torch itself wrote (`torch.save`, torch 2.15: `testdata/tiny_state.pth`, the
    /// pretrained-base layout with an fp16 tensor) reads back in order, as f32.
    #[test]
    fn reads_a_torch_written_training_state() {
        let path = testdata("tiny_state.pth");
        let state = load_state(&path, Some("model")).unwrap();
        let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["enc_p.proj.weight_g", "enc_p.proj.weight_v", "emb_g.weight"]
        );
        assert_eq!(state[0].1.dims(), &[2, 1, 1]);
        assert_eq!(state[2].1.dtype(), DType::F32);
        let ones = state[0].1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(ones, [1.0, 1.0]);
        let meta = load_training_meta(&path).unwrap();
        assert_eq!(meta.iteration, Some(7));
        assert_eq!(meta.learning_rate, Some(1e-4));
    }

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn testdata(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    /// Copies for `reference/check_export.py` when `AVATAR_RVC_EXPORT_DIR` is set.
    fn keep_copy(file: &Path, name: &str) -> TestResult {
        if let Some(dir) = std::env::var_os("AVATAR_RVC_EXPORT_DIR") {
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(file, Path::new(&dir).join(name))?;
        }
        Ok(())
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .unwrap()
    }

    /// Audio for fixed inputs and noise, so two synthesisers can be compared sample by sample.
    fn audio(s: &Synthesizer, noise: &Noise, frames: usize) -> Vec<f32> {
        let dim = s.feature_dim();
        let features: Vec<f32> = (0..frames * dim)
            .map(|i| ((i as f32) * 0.37).sin() * 1.5)
            .collect();
        let f0: Vec<f32> = (0..frames)
            .map(|i| {
                if i < 3 {
                    0.0
                } else {
                    150.0 + 60.0 * (i as f32 / 3.0).sin()
                }
            })
            .collect();
        let pitch = f0_to_coarse(&f0);
        let input = SynthInput {
            features: &features,
            pitch: s.has_pitch().then_some(pitch.as_slice()),
            f0: s.has_pitch().then_some(f0.as_slice()),
            speaker: 1,
        };
        s.infer_with_noise(&input, noise).unwrap().audio
    }

    fn max_abs(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn exported_voices_reload_and_sound_the_same() -> TestResult {
        let dir = tempfile::tempdir()?;
        for (name, stored_half) in [
            ("v2_f0_40k", false),
            ("v1_f0_48k", true),
            ("v2_nono_32k", false),
        ] {
            let src = testdata(&format!("{name}.pth"));
            let orig = Checkpoint::load(&src)?;
            let raw = load_state(&src, Some("weight"))?;
            // Weight norm is left as stored: WebUI pairs or Applio's parametrizations.
            assert!(raw.iter().any(|(n, _)| n.ends_with("weight_v")
                || n.ends_with("parametrizations.weight.original1")));
            let mut with_enc_q = raw.clone();
            with_enc_q.push((
                "enc_q.pre.weight".into(),
                Tensor::ones((4, 4, 1), DType::F32, &Device::Cpu)?,
            ));

            let out = dir.path().join(format!("{name}.pth"));
            save_voice(
                &out,
                &orig.config,
                orig.version,
                orig.f0,
                orig.sr_label.as_deref().unwrap_or("40k"),
                "20epoch",
                &with_enc_q,
            )?;
            keep_copy(&out, &format!("voice_{name}.pth"))?;

            let back = Checkpoint::load(&out)?;
            assert_eq!(back.config, orig.config);
            assert_eq!(back.config.to_list(), orig.config.to_list());
            assert_eq!((back.version, back.f0), (orig.version, orig.f0));
            assert_eq!(back.sr_label, orig.sr_label);
            assert_eq!(back.info.as_deref(), Some("20epoch"));

            // Same names in the same order, values rounded to float16 and nothing else; no enc_q.
            let back_raw = load_state(&out, Some("weight"))?;
            let names =
                |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(names(&back_raw), names(&raw));
            for ((n, a), (_, b)) in raw.iter().zip(&back_raw) {
                assert_eq!(a.dims(), b.dims(), "{n}");
                let rounded = values(&a.to_dtype(DType::F16)?);
                assert_eq!(values(b), rounded, "{n}");
            }

            let s_orig = Synthesizer::new(&orig)?;
            let s_back = Synthesizer::new(&back)?;
            let frames = 24;
            let noise = s_orig.random_noise(frames)?;
            let (a, b) = (
                audio(&s_orig, &noise, frames),
                audio(&s_back, &noise, frames),
            );
            let err = max_abs(&a, &b);
            let peak = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            println!("{name}: float16 export, max abs audio difference {err:e} (peak {peak})");
            if stored_half {
                // Already float16: the export is lossless.
                assert_eq!(a, b);
            } else {
                assert!(err < 1e-2, "{name}: {err}");
            }
        }
        Ok(())
    }

    #[test]
    fn float32_voice_is_bit_exact() -> TestResult {
        let dir = tempfile::tempdir()?;
        let src = testdata("v2_f0_40k.pth");
        let orig = Checkpoint::load(&src)?;
        let top = PyValue::Dict(vec![
            (
                "weight".into(),
                PyValue::Tensors(load_state(&src, Some("weight"))?),
            ),
            (
                "config".into(),
                PyValue::List(
                    orig.config
                        .to_list()
                        .iter()
                        .map(PyValue::from_json)
                        .collect(),
                ),
            ),
            ("info".into(), PyValue::Str("f32".into())),
            ("sr".into(), PyValue::Str("40k".into())),
            ("f0".into(), PyValue::Int(1)),
            ("version".into(), PyValue::Str("v2".into())),
        ]);
        let out = dir.path().join("f32.pth");
        write_pth(&out, &top, DType::F32)?;
        let (s_orig, s_back) = (Synthesizer::new(&orig)?, Synthesizer::load(&out)?);
        let noise = s_orig.random_noise(16)?;
        assert_eq!(audio(&s_orig, &noise, 16), audio(&s_back, &noise, 16));
        Ok(())
    }

    #[test]
    fn training_state_round_trips() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut model = load_state(&testdata("v2_f0_40k.pth"), Some("weight"))?;
        model.push((
            "enc_q.enc.in_layers.0.weight_g".into(),
            Tensor::randn(0f32, 1.0, (16, 1, 1), &Device::Cpu)?,
        ));
        model.push(("steps".into(), Tensor::new(&[3i64, -7], &Device::Cpu)?));
        let out = dir.path().join("G_2333333.pth");
        let iteration = 123_456_789_012;
        save_training_state(&out, &model, iteration, 1e-4)?;
        keep_copy(&out, "G_test.pth")?;

        let back = load_state(&out, Some("model"))?;
        assert_eq!(back.len(), model.len());
        for ((n, a), (m, b)) in model.iter().zip(&back) {
            assert_eq!(n, m);
            assert_eq!(a.dims(), b.dims(), "{n}");
            assert_eq!(a.dtype(), b.dtype(), "{n}");
            if a.dtype() == DType::I64 {
                assert_eq!(a.to_vec1::<i64>()?, b.to_vec1::<i64>()?);
            } else {
                assert_eq!(values(a), values(b), "{n}");
            }
        }
        assert_eq!(
            load_training_meta(&out)?,
            TrainingMeta {
                iteration: Some(iteration),
                learning_rate: Some(1e-4)
            }
        );
        // A training state is not a voice: both readers say what is there instead.
        let err = load_state(&out, Some("weight")).unwrap_err().to_string();
        assert!(
            err.contains("no `weight` entry") && err.contains("model"),
            "{err}"
        );
        let err = Checkpoint::load(&out).unwrap_err().to_string();
        assert!(err.contains("training checkpoint"), "{err}");
        Ok(())
    }

    #[test]
    fn float16_state_dict_with_odd_shapes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let dev = Device::Cpu;
        let tensors = vec![
            ("scalar".to_string(), Tensor::new(2.5f32, &dev)?),
            (
                "empty".to_string(),
                Tensor::zeros((0, 3), DType::F32, &dev)?,
            ),
            (
                "rank4".to_string(),
                Tensor::randn(0f32, 1.0, (2, 3, 4, 5), &dev)?,
            ),
            // Non-contiguous input is written in logical order.
            (
                "transposed".to_string(),
                Tensor::randn(0f32, 1.0, (3, 5), &dev)?.t()?,
            ),
            (
                "half".to_string(),
                Tensor::randn(0f32, 1.0, 7, &dev)?.to_dtype(DType::F16)?,
            ),
        ];
        for dtype in [DType::F16, DType::F32] {
            let out = dir.path().join(format!("{dtype:?}.pth"));
            write_pth(&out, &PyValue::Tensors(tensors.clone()), dtype)?;
            let back = load_state(&out, None)?;
            assert_eq!(back.len(), tensors.len());
            for ((n, a), (m, b)) in tensors.iter().zip(&back) {
                assert_eq!((n, a.dims()), (m, b.dims()));
                assert_eq!(b.dtype(), DType::F32);
                assert_eq!(values(&a.to_dtype(dtype)?), values(b), "{n} as {dtype:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn state_dict_order_survives_pickle_batches() -> TestResult {
        // More entries than one SETITEMS batch, as a large discriminator has.
        let dir = tempfile::tempdir()?;
        let tensors: Vec<(String, Tensor)> = (0..2345)
            .map(|i| {
                (
                    format!("t{i}"),
                    Tensor::new(&[i as f32], &Device::Cpu).unwrap(),
                )
            })
            .collect();
        let out = dir.path().join("many.pth");
        write_pth(&out, &PyValue::Tensors(tensors.clone()), DType::F32)?;
        let back = load_state(&out, None)?;
        let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, want);
        for (i, (_, t)) in back.iter().enumerate() {
            assert_eq!(values(t), [i as f32]);
        }
        Ok(())
    }

    #[test]
    fn pickled_values_read_back() -> TestResult {
        let dir = tempfile::tempdir()?;
        let many: Vec<PyValue> = (0..1500).map(PyValue::Int).collect();
        let top = PyValue::Dict(vec![
            ("none".into(), PyValue::None),
            ("yes".into(), PyValue::Bool(true)),
            ("no".into(), PyValue::Bool(false)),
            (
                "ints".into(),
                PyValue::List(
                    [
                        0,
                        255,
                        256,
                        65535,
                        65536,
                        -1,
                        -5,
                        i32::MAX as i64,
                        i32::MIN as i64,
                        1 << 40,
                    ]
                    .into_iter()
                    .map(PyValue::Int)
                    .collect(),
                ),
            ),
            ("float".into(), PyValue::Float(-0.1)),
            ("text".into(), PyValue::Str("grüße 40k".into())),
            (
                "tuple".into(),
                PyValue::Tuple(vec![PyValue::Int(1), PyValue::Str("a".into())]),
            ),
            ("many".into(), PyValue::List(many)),
            (
                "json".into(),
                PyValue::from_json(&serde_json::json!({"a": [1, 2.5, "x", null]})),
            ),
            (
                "state".into(),
                PyValue::Tensors(vec![(
                    "w".into(),
                    Tensor::ones(2, DType::F32, &Device::Cpu)?,
                )]),
            ),
        ]);
        let out = dir.path().join("values.pth");
        write_pth(&out, &top, DType::F32)?;
        let mut zip = open_zip(&out)?;
        let (prefix, obj) = read_pickle(&mut zip, &out)?;
        assert_eq!(prefix, "archive/");
        let Object::Dict(entries) = obj else {
            panic!("not a dict: {obj:?}")
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(n, _)| *n == Object::Unicode(k.into()))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("none"), Object::None);
        assert_eq!(get("yes"), Object::Bool(true));
        assert_eq!(get("no"), Object::Bool(false));
        let int = |i: i64| i32::try_from(i).map_or(Object::Long(i), Object::Int);
        assert_eq!(
            get("ints"),
            Object::List(
                [
                    0,
                    255,
                    256,
                    65535,
                    65536,
                    -1,
                    -5,
                    i32::MAX as i64,
                    i32::MIN as i64,
                    1 << 40
                ]
                .into_iter()
                .map(int)
                .collect()
            )
        );
        assert_eq!(get("float"), Object::Float(-0.1));
        assert_eq!(get("text"), Object::Unicode("grüße 40k".into()));
        assert_eq!(
            get("tuple"),
            Object::Tuple(vec![Object::Int(1), Object::Unicode("a".into())])
        );
        assert_eq!(
            get("many"),
            Object::List((0..1500).map(Object::Int).collect())
        );
        let Object::Dict(json) = get("json") else {
            panic!()
        };
        assert_eq!(
            json,
            vec![(
                Object::Unicode("a".into()),
                Object::List(vec![
                    Object::Int(1),
                    Object::Float(2.5),
                    Object::Unicode("x".into()),
                    Object::None
                ])
            )]
        );

        // Torch's record layout: stored, storages 64-byte aligned.
        let names: Vec<String> = zip
            .file_names()
            .filter_map(|n| n.ok())
            .map(String::from)
            .collect();
        assert_eq!(
            names,
            [
                "archive/data.pkl",
                "archive/byteorder",
                "archive/data/0",
                "archive/version"
            ]
        );
        for name in &names {
            let f = zip.by_name(name)?;
            assert_eq!(f.compression(), CompressionMethod::Stored);
            assert_eq!(f.data_start().map(|s| s % 64), Some(0), "{name}");
        }
        let mut version = String::new();
        zip.by_name("archive/version")?
            .read_to_string(&mut version)?;
        assert_eq!(version, "3\n");
        Ok(())
    }

    #[test]
    fn bad_input_and_files_are_errors() -> TestResult {
        let dir = tempfile::tempdir()?;
        let dev = Device::Cpu;
        let out = dir.path().join("x.pth");
        let t = Tensor::ones(2, DType::F32, &dev)?;
        assert!(matches!(
            write_pth(
                &out,
                &PyValue::Tensors(vec![("a".into(), t.clone())]),
                DType::BF16
            ),
            Err(RvcError::Input(_))
        ));
        let dup = PyValue::Tensors(vec![("a".into(), t.clone()), ("a".into(), t.clone())]);
        assert!(matches!(
            write_pth(&out, &dup, DType::F32),
            Err(RvcError::Input(_))
        ));
        let u32s = PyValue::Tensors(vec![("a".into(), Tensor::new(&[1u32], &dev)?)]);
        assert!(matches!(
            write_pth(&out, &u32s, DType::F32),
            Err(RvcError::Input(_))
        ));
        // Nothing was left behind by the refused writes.
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);

        std::fs::write(&out, b"not a zip")?;
        let err = load_state(&out, Some("model")).unwrap_err();
        assert!(
            err.to_string().contains("not a zip-format torch file"),
            "{err}"
        );
        assert!(matches!(
            load_state(&dir.path().join("absent.pth"), None),
            Err(RvcError::Io { .. })
        ));
        // `info` is a string, not a state dict; a voice's top level is not one either.
        let voice = testdata("v2_f0_40k.pth");
        let err = load_state(&voice, Some("info")).unwrap_err().to_string();
        assert!(err.contains("not a dict of tensors"), "{err}");
        let err = load_state(&voice, None).unwrap_err().to_string();
        assert!(err.contains("holds no tensors"), "{err}");
        let err = load_state(&voice, Some("model")).unwrap_err().to_string();
        assert!(
            err.contains("no `model` entry") && err.contains("weight"),
            "{err}"
        );
        Ok(())
    }
}
