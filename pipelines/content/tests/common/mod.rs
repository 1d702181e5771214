//! Paths to the committed test model and its PyTorch reference numbers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// `reference.safetensors` written by `reference/make_reference.py`.
pub fn reference() -> Result<HashMap<String, Tensor>, Box<dyn std::error::Error>> {
    Ok(candle_core::safetensors::load(
        testdata().join("reference.safetensors"),
        &Device::Cpu,
    )?)
}

pub fn get<'a>(m: &'a HashMap<String, Tensor>, k: &str) -> Result<&'a Tensor, String> {
    m.get(k).ok_or_else(|| format!("reference has no {k}"))
}

pub fn input(m: &HashMap<String, Tensor>) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    Ok(get(m, "input")?.to_vec1::<f32>()?)
}

/// Largest absolute difference; shapes must agree.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32, Box<dyn std::error::Error>> {
    if a.dims() != b.dims() {
        return Err(format!("shape {:?} vs {:?}", a.dims(), b.dims()).into());
    }
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}
