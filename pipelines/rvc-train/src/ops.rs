//! Differentiable layers written so candle's backward takes its fast paths.
//!
//! candle differentiates `conv1d` through `conv_transpose1d`, whose CPU kernel is only
//! fast (im2col/col2im + gemm) with no padding, no dilation and no output padding, and
//! it cannot differentiate `conv_transpose1d` at all. So padding is explicit, dilation
//! is done by splitting the signal into phases, strided inputs are trimmed to the
//! samples the output uses, and the decoder's transposed convolutions are plain
//! convolutions in polyphase form.

use candle_core::{DType, Device, Tensor, D};

use crate::error::Result;

/// `F.leaky_relu(x, slope)`.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(x.maximum(&(x * slope)?)?)
}

/// `torch.nn.functional.conv1d` on `[b, c_in, t]` with kernel `[c_out, c_in / groups, k]`.
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let y = if groups > 1 {
        let (_, c_in, _) = x.dims3()?;
        let c_out = w.dim(0)?;
        let (gi, go) = (c_in / groups, c_out / groups);
        let parts = (0..groups)
            .map(|g| {
                conv1d(
                    &x.narrow(1, g * gi, gi)?,
                    &w.narrow(0, g * go, go)?,
                    None,
                    stride,
                    padding,
                    dilation,
                    1,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 1)?
    } else {
        let x = if padding > 0 {
            x.pad_with_zeros(2, padding, padding)?
        } else {
            x.clone()
        };
        let w = w.contiguous()?;
        if dilation > 1 {
            dilated(&x, &w, dilation)?
        } else {
            conv_items_end_to_end(&x, &w, stride)?
        }
    };
    Ok(match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?)?,
        None => y,
    })
}

/// Unpadded, undilated conv1d of a batch, run as one batch-1 convolution over the items
/// laid end to end (outputs straddling two items are dropped). candle 0.11's CPU
/// `conv_transpose1d`, which its conv1d backward uses, is wrong for batches > 1 (see the
/// tests), and one long convolution is faster than an item-by-item loop anyway.
fn conv_items_end_to_end(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let (b, c, len) = x.dims3()?;
    let k = w.dim(2)?;
    if len < k {
        return Err(crate::error::TrainError::Shape(format!(
            "conv1d input of {len} samples is shorter than its kernel ({k})"
        )));
    }
    let out = (len - k) / stride + 1;
    if b == 1 {
        let used = (out - 1) * stride + k;
        return Ok(x
            .narrow(2, 0, used)?
            .contiguous()?
            .conv1d(w, 0, stride, 1, 1)?);
    }
    let lp = len.div_ceil(stride) * stride;
    let x = if lp > len {
        x.pad_with_zeros(2, 0, lp - len)?
    } else {
        x.clone()
    };
    let flat = x.transpose(0, 1)?.contiguous()?.reshape((1, c, b * lp))?;
    let y_len = (b * lp - k) / stride + 1;
    let used = (y_len - 1) * stride + k;
    let flat = if used < b * lp {
        flat.narrow(2, 0, used)?
    } else {
        flat
    };
    let y = flat.contiguous()?.conv1d(w, 0, stride, 1, 1)?;
    let per = lp / stride;
    let c_out = y.dim(1)?;
    let y = if y_len < b * per {
        y.pad_with_zeros(2, 0, b * per - y_len)?
    } else {
        y
    };
    Ok(y.reshape((c_out, b, per))?
        .narrow(2, 0, out)?
        .transpose(0, 1)?
        .contiguous()?)
}

/// Stride-1 dilated convolution as `d` undilated ones over the signal's phases.
fn dilated(x: &Tensor, w: &Tensor, d: usize) -> Result<Tensor> {
    let (b, c, len) = x.dims3()?;
    let k = w.dim(2)?;
    let span = d * (k - 1) + 1;
    if len < span {
        return Err(crate::error::TrainError::Shape(format!(
            "dilated conv1d input of {len} samples is shorter than its span ({span})"
        )));
    }
    let out = len - span + 1;
    let padded = len.div_ceil(d) * d;
    let x = if padded > len {
        x.pad_with_zeros(2, 0, padded - len)?
    } else {
        x.clone()
    };
    let m = padded / d;
    // [b, c, m, d] -> [b, d, c, m] -> [b*d, c, m]: phase r holds x[q*d + r].
    let phases = x
        .reshape((b, c, m, d))?
        .permute((0, 3, 1, 2))?
        .contiguous()?
        .reshape((b * d, c, m))?;
    let y = conv_items_end_to_end(&phases, w, 1)?; // [b*d, c_out, m - k + 1]
    let (_, c_out, n) = y.dims3()?;
    let y = y
        .reshape((b, d, c_out, n))?
        .permute((0, 2, 3, 1))?
        .contiguous()?
        .reshape((b, c_out, n * d))?;
    Ok(y.narrow(2, 0, out)?)
}

/// `torch.nn.functional.conv_transpose1d` with kernel `[c_in, c_out, k]`, in polyphase form:
/// output phase `r` (samples `q * stride + r`) is a plain convolution of the input with the
/// kernel taps `r, r + stride, …` flipped, so no multiply is spent on the zeros a transposed
/// convolution implicitly inserts (10× fewer for RVC's ×10 upsamplers), and every piece is a
/// convolution candle differentiates.
pub fn conv_transpose1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (b, _, t) = x.dims3()?;
    let (_, c_out, k) = w.dims3()?;
    let full = (t.max(1) - 1) * stride.max(1) + k;
    if stride == 0 || 2 * padding >= full {
        return Err(crate::error::TrainError::Shape(format!(
            "transposed conv stride {stride}, padding {padding} for kernel {k}"
        )));
    }
    let rows = full.div_ceil(stride);
    let mut phases = Vec::with_capacity(stride);
    for r in 0..stride {
        let taps: Vec<u32> = (r..k).step_by(stride).map(|j| j as u32).rev().collect();
        if taps.is_empty() {
            phases.push(Tensor::zeros((b, c_out, rows), x.dtype(), x.device())?);
            continue;
        }
        let kr = taps.len();
        let taps = Tensor::from_vec(taps, kr, w.device())?;
        let wr = w.index_select(&taps, 2)?.transpose(0, 1)?.contiguous()?;
        // z[q] = Σ_m x[q - m] · w[r + m·stride], q = 0 .. t + kr - 2.
        let z = conv1d(x, &wr, None, 1, kr - 1, 1, 1)?;
        let len = z.dim(2)?;
        phases.push(if len < rows {
            z.pad_with_zeros(2, 0, rows - len)?
        } else {
            z.narrow(2, 0, rows)?
        });
    }
    let y = Tensor::stack(&phases, 3)?
        .reshape((b, c_out, rows * stride))?
        .narrow(2, padding, full - 2 * padding)?;
    Ok(match bias {
        Some(bb) => y.broadcast_add(&bb.reshape((1, (), 1))?)?,
        None => y,
    })
}

/// Reflect-pad the last dim (`F.pad(.., mode="reflect")`) by gathering indices.
pub fn reflect_pad(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    let len = x.dim(D::Minus1)?;
    if left >= len || right >= len {
        return Err(crate::error::TrainError::Shape(format!(
            "reflect padding ({left}, {right}) needs more than {len} samples"
        )));
    }
    let idx: Vec<u32> = (0..left)
        .map(|i| (left - i) as u32)
        .chain((0..len).map(|i| i as u32))
        .chain((0..right).map(|i| (len - 2 - i) as u32))
        .collect();
    let n = idx.len();
    let idx = Tensor::from_vec(idx, n, x.device())?;
    Ok(x.index_select(&idx, x.rank() - 1)?)
}

/// VITS's channel LayerNorm on `[b, c, t]`.
pub fn layer_norm_channels(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(1)?;
    let y = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    Ok(y.broadcast_mul(&gamma.reshape((1, (), 1))?)?
        .broadcast_add(&beta.reshape((1, (), 1))?)?)
}

/// `[b, t]` integer ids → embedding rows `[b, t, d]`.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let d = table.dim(1)?;
    Ok(table
        .index_select(&ids.flatten_all()?, 0)?
        .reshape((b, t, d))?)
}

/// A `[n]` f32 tensor's values (for losses and logs).
pub fn scalar(x: &Tensor) -> Result<f32> {
    Ok(x.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .to_scalar::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::Var;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(Rng::new(seed).normals(n, 1.0), shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Against candle's own (slow-backward) convolution, values and gradients.
    #[test]
    fn conv1d_matches_candle_with_gradients() {
        for &(stride, padding, dilation, groups, k, len) in &[
            (1, 0, 1, 1, 3, 17),
            (1, 2, 1, 1, 5, 17),
            (1, 5, 5, 1, 3, 23),
            (1, 3, 3, 1, 3, 16),
            (3, 2, 1, 1, 5, 31),
            (4, 20, 1, 4, 41, 64),
            (10, 5, 1, 1, 20, 200),
        ] {
            let (c_in, c_out) = (8, 12);
            let x = Var::from_tensor(&rand(&[2, c_in, len], 1)).unwrap();
            let w = Var::from_tensor(&rand(&[c_out, c_in / groups, k], 2)).unwrap();
            let b = Var::from_tensor(&rand(&[c_out], 3)).unwrap();
            let ours = conv1d(&x, &w, Some(&b), stride, padding, dilation, groups).unwrap();
            let theirs = x
                .conv1d(&w, padding, stride, dilation, groups)
                .unwrap()
                .broadcast_add(&b.reshape((1, c_out, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims(), "{stride} {padding} {dilation}");
            assert!(max_diff(&ours, &theirs) < 1e-4);
            let probe = rand(ours.dims(), 4);
            let g1 = (&ours * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (&theirs * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
                let (a, c) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert_eq!(a.dims(), c.dims());
                let d = max_diff(a, c);
                if d > 1e-3 {
                    // The loss is linear in each argument: a finite difference is exact
                    // (up to rounding) and says which of the two is right.
                    let base = v
                        .as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap();
                    let loss = |vals: Vec<f32>| {
                        let t = Tensor::from_vec(vals, v.dims(), &Device::Cpu).unwrap();
                        let (xx, ww, bb) = match name {
                            "x" => (t, w.as_tensor().clone(), b.as_tensor().clone()),
                            "w" => (x.as_tensor().clone(), t, b.as_tensor().clone()),
                            _ => (x.as_tensor().clone(), w.as_tensor().clone(), t),
                        };
                        let o =
                            conv1d(&xx, &ww, Some(&bb), stride, padding, dilation, groups).unwrap();
                        (o * &probe)
                            .unwrap()
                            .sum_all()
                            .unwrap()
                            .to_scalar::<f32>()
                            .unwrap() as f64
                    };
                    let l0 = loss(base.clone());
                    let fa = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    let fc = c.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    for i in [0, base.len() / 2, base.len() - 1] {
                        let mut p = base.clone();
                        p[i] += 1.0;
                        let num = loss(p) - l0;
                        eprintln!(
                            "{name}[{i}]: numeric {num:.4} ours {:.4} candle {:.4}",
                            fa[i], fc[i]
                        );
                        assert!(
                            (num - fa[i] as f64).abs() < 1e-2 * (1.0 + num.abs()),
                            "ours wrong"
                        );
                    }
                }
            }
        }
    }

    /// Why convolutions run one item at a time: candle's own batched transposed conv
    /// disagrees with itself item by item. When this starts failing, candle is fixed.
    #[test]
    fn candle_batched_conv_transpose_is_still_wrong() {
        let x = rand(&[2, 3, 5], 11);
        let w = rand(&[3, 4, 3], 12);
        let full = x.conv_transpose1d(&w, 0, 0, 1, 1, 1).unwrap();
        let parts: Vec<Tensor> = (0..2)
            .map(|i| {
                x.narrow(0, i, 1)
                    .unwrap()
                    .conv_transpose1d(&w, 0, 0, 1, 1, 1)
                    .unwrap()
            })
            .collect();
        assert!(max_diff(&full, &Tensor::cat(&parts, 0).unwrap()) > 1e-3);
    }

    #[test]
    fn conv_transpose_matches_candle() {
        for &(stride, k, padding) in &[(10, 16, 3), (2, 4, 1), (1, 3, 1), (4, 3, 0), (3, 7, 2)] {
            let x = rand(&[2, 6, 9], 5);
            let w = rand(&[6, 4, k], 6);
            let ours = conv_transpose1d(&x, &w, None, stride, padding).unwrap();
            // Item by item: candle's own batched version is wrong without padding (see above).
            let items: Vec<Tensor> = (0..2)
                .map(|i| {
                    let xi = x.narrow(0, i, 1).unwrap();
                    xi.conv_transpose1d(&w, padding, 0, stride, 1, 1).unwrap()
                })
                .collect();
            let theirs = Tensor::cat(&items, 0).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-4, "{stride} {k} {padding}");
        }
    }

    #[test]
    fn reflect_pad_mirrors_without_the_edge() {
        let x = Tensor::new(&[[1f32, 2., 3., 4.]], &Device::Cpu).unwrap();
        let y = reflect_pad(&x, 2, 2).unwrap();
        assert_eq!(
            y.to_vec2::<f32>().unwrap(),
            vec![vec![3., 2., 1., 2., 3., 4., 3., 2.]]
        );
        assert!(reflect_pad(&x, 4, 0).is_err());
    }
}
