//! Time-major (`[len, channels]`, row-major) 1-D convolutions for the decoder, where nearly
//! all of RVC's compute is (up to 400k samples x 32..256 channels per 10 s).
//!
//! candle's conv1d works channel-major: it builds a full-length im2col buffer (hundreds of
//! MB at these sizes), runs the matmul, then copies the result into `[channels, len]`.
//! Here im2col is built a cache-sized block of rows at a time and each block is one matmul
//! straight into time-major output, so nothing is transposed and memory stays bounded.

use candle_core::{Device, Tensor};

use crate::error::{Result, RvcError};

/// Target size of one im2col block, in floats (4 MB: fits L3, amortises per-matmul overhead).
const BLOCK_FLOATS: usize = 1 << 20;

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

    /// `F.leaky_relu(x, slope)` into a new sequence.
    pub fn leaky_relu(&self, slope: f32) -> Self {
        let mut out = self.clone();
        leaky_relu_in_place(&mut out.data, slope);
        out
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
            .iter_mut()
            .zip(&other.data)
            .for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Add one value per channel to every row.
    pub fn add_row(&mut self, row: &[f32]) {
        for r in self.data.chunks_exact_mut(self.channels) {
            r.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
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
            for (r, t) in (t0..t1).enumerate() {
                let base = (t * self.stride) as isize - self.padding as isize;
                for j in 0..self.kernel {
                    let src = base + (j * self.dilation) as isize;
                    if src >= 0 && (src as usize) < x.len {
                        let s = src as usize * self.c_in;
                        let d = r * width + j * self.c_in;
                        col[d..d + self.c_in].copy_from_slice(&x.data[s..s + self.c_in]);
                    }
                }
            }
            let col = Tensor::from_vec(col, (t1 - t0, width), &Device::Cpu)?;
            let y = col.matmul(&self.w)?.flatten_all()?.to_vec1::<f32>()?;
            out.extend_from_slice(&y);
            t0 = t1;
        }
        let mut out = Seq::new(out, l_out, self.c_out)?;
        out.add_row(&self.bias);
        Ok(out)
    }
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
            for (r, t) in (t0..t1).enumerate() {
                for j in 0..self.kernel {
                    let pos = (t * self.stride + j) as isize - self.padding as isize;
                    if pos < 0 || pos as usize >= l_out {
                        continue;
                    }
                    let d = pos as usize * co;
                    let s = r * width + j * co;
                    out[d..d + co]
                        .iter_mut()
                        .zip(&y[s..s + co])
                        .for_each(|(a, b)| *a += b);
                }
            }
            t0 = t1;
        }
        let mut out = Seq::new(out, l_out, co)?;
        out.add_row(&self.bias);
        Ok(out)
    }
}
