//! Batch-1 convolutions for the U-Net as one matrix product each.
//!
//! candle's CPU conv2d gathers its im2col tile by tile element-wise, which dominates RMVPE's
//! time (few channels, 1024 × 128 planes). Here the 3×3 im2col is built from row slices
//! (a shifted copy of each plane per tap) and the transposed convolution multiplies first and
//! scatters after (col2im), so all arithmetic is in candle's matmul.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::error::Result;

/// 3×3, stride 1, zero padding 1. `x`: (1, cin, h, w); `weight`: (cout, cin·9) in PyTorch's
/// (cin, kh, kw) order; returns (1, cout, h, w) without bias.
pub fn conv3x3(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (_, cin, h, w) = x.dims4()?;
    let cout = weight.dim(0)?;
    let plane = h * w;
    if plane == 0 || cin == 0 {
        return Ok(Tensor::zeros((1, cout, h, w), DType::F32, &Device::Cpu)?);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let mut cols = vec![0f32; cin * 9 * plane];
    cols.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(row, dst)| {
            let (ci, tap) = (row / 9, row % 9);
            let (kh, kw) = (tap / 3, tap % 3);
            let src = &xs[ci * plane..(ci + 1) * plane];
            for t in 0..h {
                // Output row t reads input row t + kh - 1 shifted by kw - 1 columns.
                let Some(st) = (t + kh).checked_sub(1).filter(|s| *s < h) else {
                    continue;
                };
                let d = &mut dst[t * w..(t + 1) * w];
                let s = &src[st * w..(st + 1) * w];
                match kw {
                    0 => d[1..].copy_from_slice(&s[..w - 1]),
                    1 => d.copy_from_slice(s),
                    _ => d[..w - 1].copy_from_slice(&s[1..]),
                }
            }
        });
    let cols = Tensor::from_vec(cols, (cin * 9, plane), &Device::Cpu)?;
    Ok(weight.matmul(&cols)?.reshape((1, cout, h, w))?)
}

/// 1×1 convolution: `weight` (cout, cin) times the planes.
pub fn conv1x1(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (_, cin, h, w) = x.dims4()?;
    let cout = weight.dim(0)?;
    let planes = x.reshape((cin, h * w))?;
    Ok(weight.matmul(&planes)?.reshape((1, cout, h, w))?)
}

/// ConvTranspose2d with kernel 3, stride 2, padding 1, output padding 1 (RVC's decoder):
/// (1, cin, h, w) → (1, cout, 2h, 2w). `weight_t` is (cout·9, cin): PyTorch's (cin, cout, 3, 3)
/// reshaped to (cin, cout·9) and transposed.
pub fn conv_transpose3x3_s2(x: &Tensor, weight_t: &Tensor) -> Result<Tensor> {
    let (_, cin, h, w) = x.dims4()?;
    let cout = weight_t.dim(0)? / 9;
    if h * w == 0 || cin == 0 {
        return Ok(Tensor::zeros(
            (1, cout, 2 * h, 2 * w),
            DType::F32,
            &Device::Cpu,
        )?);
    }
    let cols: Vec<f32> = weight_t
        .matmul(&x.reshape((cin, h * w))?)?
        .flatten_all()?
        .to_vec1()?;
    let (oh, ow) = (2 * h, 2 * w);
    let mut out = vec![0f32; cout * oh * ow];
    out.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(co, dst)| {
            for tap in 0..9 {
                let (kh, kw) = (tap / 3, tap % 3);
                let src = &cols[(co * 9 + tap) * h * w..(co * 9 + tap + 1) * h * w];
                for i in 0..h {
                    // Input (i, j) lands on output (2i + kh - 1, 2j + kw - 1).
                    let Some(oi) = (2 * i + kh).checked_sub(1).filter(|o| *o < oh) else {
                        continue;
                    };
                    let row = &mut dst[oi * ow..(oi + 1) * ow];
                    for (j, v) in src[i * w..(i + 1) * w].iter().enumerate() {
                        if let Some(oj) = (2 * j + kw).checked_sub(1).filter(|o| *o < ow) {
                            row[oj] += v;
                        }
                    }
                }
            }
        });
    Ok(Tensor::from_vec(out, (1, cout, oh, ow), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap_or(f32::INFINITY)
    }

    #[test]
    fn matches_candle_convolutions() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 5, 12, 10), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (7, 5, 3, 3), &dev)?;
        let want = x.conv2d(&k, 1, 1, 1, 1)?;
        let got = conv3x3(&x, &k.reshape((7, 45))?)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        assert!(max_diff(&got, &want) < 1e-4);

        let k1 = Tensor::randn(0f32, 1.0, (7, 5, 1, 1), &dev)?;
        let want = x.conv2d(&k1, 0, 1, 1, 1)?;
        let got = conv1x1(&x, &k1.reshape((7, 5))?)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        assert!(max_diff(&got, &want) < 1e-4);

        let kt = Tensor::randn(0f32, 1.0, (5, 4, 3, 3), &dev)?;
        let want = x.conv_transpose2d(&kt, 1, 1, 2, 1)?;
        let wt = kt.reshape((5, 36))?.t()?.contiguous()?;
        let got =
            conv_transpose3x3_s2(&x, &wt).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        assert_eq!(got.dims(), want.dims());
        assert!(max_diff(&got, &want) < 1e-4);
        Ok(())
    }
}
