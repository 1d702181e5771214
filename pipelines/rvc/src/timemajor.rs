//! Time-major (`[len, channels]`, row-major) 1-D convolutions for the decoder, where nearly
//! all of RVC's compute is (up to 400k samples x 32..256 channels per 10 s).
//!
//! candle's conv1d works channel-major: it builds a full-length im2col buffer (hundreds of
//! MB at these sizes), runs the matmul, then copies the result into `[channels, len]`.
//! Here im2col is built a cache-sized block of rows at a time and each block is one matmul
//! straight into time-major output, so nothing is transposed and memory stays bounded.

use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;

use crate::error::{Result, RvcError};

/// Target size of one im2col block, in floats (4 MB: fits L3, amortises per-matmul overhead).
const BLOCK_FLOATS: usize = 1 << 20;
/// Elementwise work is split into pieces of this many floats across threads.
const PAR_CHUNK: usize = 1 << 16;

/// `[len, channels]` activations.
#[derive(Debug, Clone)]
pub struct Seq {
    pub data: Vec<f32>,
    pub len: usize,
    pub channels: usize,
}

impl Seq {
    pub fn new(data: Vec<f32>, len: usize, channels: usize) -> Result<Self> {
        if data.len() != len * channels {
            return Err(RvcError::Input(format!(
                "sequence of {} values is not {len} x {channels}",
                data.len()
            )));
        }
        Ok(Self {
            data,
            len,
            channels,
        })
    }

    /// From a channel-major `[channels, len]` tensor.
    pub fn from_channel_major(t: &Tensor) -> Result<Self> {
        let (c, l) = t.dims2()?;
        let data = t.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        Self::new(data, l, c)
    }

    /// `self += other` (same shape).
    pub fn add_assign(&mut self, other: &Seq) -> Result<()> {
        if self.data.len() != other.data.len() {
            return Err(RvcError::Input(format!(
                "adding {}x{} to {}x{}",
                other.len, other.channels, self.len, self.channels
            )));
        }
        self.data
            .par_chunks_mut(PAR_CHUNK)
            .zip(other.data.par_chunks(PAR_CHUNK))
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
        Ok(())
    }

    /// Add one value per channel to every row.
    pub fn add_row(&mut self, row: &[f32]) {
        let rows = (PAR_CHUNK / self.channels.max(1)).max(1);
        self.data
            .par_chunks_mut(rows * self.channels.max(1))
            .for_each(|block| {
                for r in block.chunks_exact_mut(self.channels) {
                    r.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                }
            });
    }

    /// Multiply every value by `k`.
    pub fn scale(&mut self, k: f32) {
        self.data
            .par_chunks_mut(PAR_CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v *= k));
    }
}

pub fn leaky_relu_in_place(x: &mut [f32], slope: f32) {
    x.iter_mut()
        .for_each(|v| *v = if *v < 0.0 { *v * slope } else { *v });
}

/// `torch.nn.Conv1d` on time-major input.
#[derive(Debug, Clone)]
pub struct Conv {
    /// `[kernel * c_in, c_out]`: row `j * c_in + ci` is tap `j` of input channel `ci`.
    w: Tensor,
    bias: Vec<f32>,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
}

impl Conv {
    /// From torch's `[c_out, c_in, kernel]` weight.
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Result<Self> {
        let (c_out, c_in, kernel) = weight.dims3()?;
        let w = weight
            .permute((2, 1, 0))?
            .reshape((kernel * c_in, c_out))?
            .contiguous()?;
        let bias = match bias {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; c_out],
        };
        Ok(Self {
            w,
            bias,
            c_in,
            c_out,
            kernel,
            stride,
            padding,
            dilation,
        })
    }

    pub fn out_len(&self, len: usize) -> usize {
        let span = self.dilation * (self.kernel - 1) + 1;
        (len + 2 * self.padding).saturating_sub(span) / self.stride + 1
    }

    pub fn forward(&self, x: &Seq) -> Result<Seq> {
        self.forward_act(x, None)
    }

    /// The conv of `leaky_relu(x, slope)` (when `slope` is given), the activation applied
    /// while gathering im2col rows instead of in a separate pass over `x`.
    pub fn forward_act(&self, x: &Seq, slope: Option<f32>) -> Result<Seq> {
        if x.channels != self.c_in {
            return Err(RvcError::Input(format!(
                "conv expects {} channels, got {}",
                self.c_in, x.channels
            )));
        }
        let l_out = self.out_len(x.len);
        let width = self.kernel * self.c_in;
        let rows = (BLOCK_FLOATS / width).max(16);
        let mut out = Vec::with_capacity(l_out * self.c_out);
        let mut t0 = 0;
        while t0 < l_out {
            let t1 = (t0 + rows).min(l_out);
            let mut col = vec![0f32; (t1 - t0) * width];
            col.par_chunks_mut(width)
                .zip(t0..t1)
                .for_each(|(row, t)| self.gather_row(x, t, slope, row));
            let col = Tensor::from_vec(col, (t1 - t0, width), &Device::Cpu)?;
            extend_from_tensor(&mut out, &col.matmul(&self.w)?)?;
            t0 = t1;
        }
        let mut out = Seq::new(out, l_out, self.c_out)?;
        out.add_row(&self.bias);
        Ok(out)
    }

    /// im2col row for output step `t`: the taps `t * stride + j * dilation - padding`,
    /// zeros outside the input.
    fn gather_row(&self, x: &Seq, t: usize, slope: Option<f32>, row: &mut [f32]) {
        let base = (t * self.stride) as isize - self.padding as isize;
        for (j, dst) in row.chunks_exact_mut(self.c_in).enumerate() {
            let src = base + (j * self.dilation) as isize;
            if src < 0 || src as usize >= x.len {
                continue;
            }
            let s = src as usize * self.c_in;
            let src = &x.data[s..s + self.c_in];
            match slope {
                Some(a) => dst
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &v)| *d = if v < 0.0 { v * a } else { v }),
                None => dst.copy_from_slice(src),
            }
        }
    }
}

/// Append a contiguous f32 tensor's values without an intermediate Vec.
fn extend_from_tensor(out: &mut Vec<f32>, t: &Tensor) -> Result<()> {
    let n = t.elem_count();
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.is_contiguous()) {
        (Storage::Cpu(cpu), true) => {
            let start = layout.start_offset();
            let s = cpu.as_slice::<f32>()?;
            let s = s
                .get(start..start + n)
                .ok_or_else(|| RvcError::Input("matmul output shorter than its shape".into()))?;
            out.extend_from_slice(s);
        }
        _ => {
            drop(storage);
            out.extend_from_slice(&t.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    Ok(())
}

/// `torch.nn.ConvTranspose1d` (stride `rate`, padding `p`) on time-major input: one matmul
/// gives every tap's contribution per input row, which is then scattered to `t * rate + j - p`.
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    /// `[c_in, kernel * c_out]`: column `j * c_out + co`.
    w: Tensor,
    bias: Vec<f32>,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl ConvTranspose {
    /// From torch's `[c_in, c_out, kernel]` weight.
    pub fn new(weight: &Tensor, bias: &Tensor, stride: usize, padding: usize) -> Result<Self> {
        let (c_in, c_out, kernel) = weight.dims3()?;
        let w = weight
            .permute((0, 2, 1))?
            .reshape((c_in, kernel * c_out))?
            .contiguous()?;
        Ok(Self {
            w,
            bias: bias.to_vec1::<f32>()?,
            c_out,
            kernel,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Seq) -> Result<Seq> {
        let full = (x.len.saturating_sub(1)) * self.stride + self.kernel;
        let l_out = full.saturating_sub(2 * self.padding);
        let co = self.c_out;
        let mut out = vec![0f32; l_out * co];
        let width = self.kernel * co;
        let rows = (BLOCK_FLOATS / width.max(x.channels)).max(16);
        let mut t0 = 0;
        while t0 < x.len {
            let t1 = (t0 + rows).min(x.len);
            let xs = Tensor::from_slice(
                &x.data[t0 * x.channels..t1 * x.channels],
                (t1 - t0, x.channels),
                &Device::Cpu,
            )?;
            let y = xs.matmul(&self.w)?.flatten_all()?.to_vec1::<f32>()?;
            // Output rows this block reaches; each gathers its taps from the block's rows.
            let (u, p, k) = (
                self.stride as isize,
                self.padding as isize,
                self.kernel as isize,
            );
            let lo = (t0 as isize * u - p).max(0) as usize;
            let hi = (((t1 as isize - 1) * u + k - p).max(0) as usize).min(l_out);
            if lo < hi {
                out[lo * co..hi * co]
                    .par_chunks_mut(co)
                    .enumerate()
                    .for_each(|(i, dst)| {
                        let pos = (lo + i) as isize;
                        for j in 0..k {
                            let q = pos + p - j;
                            if q < 0 || q % u != 0 {
                                continue;
                            }
                            let t = (q / u) as usize;
                            if t < t0 || t >= t1 {
                                continue;
                            }
                            let s = (t - t0) * width + j as usize * co;
                            dst.iter_mut().zip(&y[s..s + co]).for_each(|(a, b)| *a += b);
                        }
                    });
            }
            t0 = t1;
        }
        let mut out = Seq::new(out, l_out, co)?;
        out.add_row(&self.bias);
        Ok(out)
    }
}
