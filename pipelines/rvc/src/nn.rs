//! Channel-major layers for the encoder and flow (1-D convs, linear, leaky relu), run at the
//! frame rate; loaded from [`Weights`] with shapes checked. The decoder uses `timemajor`.

use candle_core::{Module, Tensor};

use crate::checkpoint::Weights;
use crate::error::Result;

/// Hyper-parameters of a 1-D convolution beyond its channel counts.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub bias: bool,
}

impl ConvSpec {
    /// Stride 1, no dilation, `same` padding for odd kernels, with bias.
    pub fn same(kernel: usize) -> Self {
        Self {
            kernel,
            stride: 1,
            padding: kernel / 2,
            dilation: 1,
            bias: true,
        }
    }
}

/// `torch.nn.Conv1d` on `[1, c_in, len]`.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Option<Tensor>,
    spec: ConvSpec,
}

impl Conv1d {
    pub fn load(
        w: &Weights,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        spec: ConvSpec,
    ) -> Result<Self> {
        let weight = w.get(&format!("{prefix}.weight"), &[c_out, c_in, spec.kernel])?;
        let bias = if spec.bias {
            Some(
                w.get(&format!("{prefix}.bias"), &[c_out])?
                    .reshape((1, c_out, 1))?,
            )
        } else {
            None
        };
        Ok(Self { weight, bias, spec })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = if self.spec.kernel == 1 && self.spec.stride == 1 && self.spec.padding == 0 {
            // A pointwise conv is a matmul; skip im2col.
            let (c_out, c_in, _) = self.weight.dims3()?;
            let (b, _, l) = x.dims3()?;
            let w = self.weight.reshape((c_out, c_in))?;
            w.broadcast_left(b)?
                .matmul(&x.contiguous()?)?
                .reshape((b, c_out, l))?
        } else {
            x.contiguous()?.conv1d(
                &self.weight,
                self.spec.padding,
                self.spec.stride,
                self.spec.dilation,
                1,
            )?
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// `torch.nn.Linear` on `[.., in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    pub fn load(w: &Weights, prefix: &str, d_in: usize, d_out: usize) -> Result<Self> {
        let weight = w.get(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let bias = w.get(&format!("{prefix}.bias"), &[d_out])?;
        Ok(Self {
            inner: candle_nn::Linear::new(weight, Some(bias)),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.inner.forward(x)?)
    }
}

/// `F.leaky_relu(x, slope)`.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    // max(x, slope * x) is leaky relu for 0 < slope < 1.
    Ok(x.maximum(&(x * slope)?)?)
}
