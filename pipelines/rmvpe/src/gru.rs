//! RVC's BiGRU (`nn.GRU(batch_first=True, bidirectional=True)`), any number of layers.
//!
//! Input projections for all frames are one matrix product; the recurrence runs frame by
//! frame in plain f32 loops, the two directions in parallel.

use candle_core::{Device, Tensor};

use crate::checkpoint::Weights;
use crate::error::Result;

/// One direction of one layer: PyTorch's gate order r, z, n.
struct Direction {
    /// `(input, 3·hidden)`: transposed `weight_ih` for `x @ w`.
    w_ih_t: Tensor,
    b_ih: Tensor,
    /// `3·hidden × hidden`, row-major.
    w_hh: Vec<f32>,
    b_hh: Vec<f32>,
}

impl Direction {
    fn load(w: &Weights, suffix: &str, input: usize, hidden: usize) -> Result<Self> {
        let p = "fc.0.gru";
        Ok(Self {
            w_ih_t: w
                .get(&format!("{p}.weight_ih_{suffix}"), &[3 * hidden, input])?
                .t()?
                .contiguous()?,
            b_ih: w.get(&format!("{p}.bias_ih_{suffix}"), &[3 * hidden])?,
            w_hh: w
                .get(&format!("{p}.weight_hh_{suffix}"), &[3 * hidden, hidden])?
                .flatten_all()?
                .to_vec1()?,
            b_hh: w
                .get(&format!("{p}.bias_hh_{suffix}"), &[3 * hidden])?
                .to_vec1()?,
        })
    }

    /// Input projections `(frames, 3·hidden)` for every frame.
    fn project(&self, x: &Tensor) -> Result<Vec<f32>> {
        Ok(x.matmul(&self.w_ih_t)?
            .broadcast_add(&self.b_ih)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// Run the recurrence over projected inputs `gi`, forwards or backwards in time, writing
    /// each hidden state into `out` (`frames × hidden`).
    fn recur(&self, gi: &[f32], hidden: usize, reverse: bool) -> Vec<f32> {
        let frames = gi.len() / (3 * hidden);
        let mut out = vec![0f32; frames * hidden];
        let mut h = vec![0f32; hidden];
        let mut gh = vec![0f32; 3 * hidden];
        for step in 0..frames {
            let t = if reverse { frames - 1 - step } else { step };
            for (j, g) in gh.iter_mut().enumerate() {
                let row = &self.w_hh[j * hidden..(j + 1) * hidden];
                *g = self.b_hh[j] + row.iter().zip(&h).map(|(a, b)| a * b).sum::<f32>();
            }
            let x = &gi[t * 3 * hidden..(t + 1) * 3 * hidden];
            for k in 0..hidden {
                let r = sigmoid(x[k] + gh[k]);
                let z = sigmoid(x[hidden + k] + gh[hidden + k]);
                let n = (x[2 * hidden + k] + r * gh[2 * hidden + k]).tanh();
                h[k] = (1.0 - z) * n + z * h[k];
            }
            out[t * hidden..(t + 1) * hidden].copy_from_slice(&h);
        }
        out
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Stacked bidirectional GRU; each layer's output is `[forward ‖ backward]`.
pub struct BiGru {
    layers: Vec<(Direction, Direction)>,
    pub hidden: usize,
}

impl BiGru {
    /// `input` features of the first layer (3 × 128 in RVC); hidden size and layer count come
    /// from the state dict.
    pub fn load(w: &Weights, input: usize) -> Result<Self> {
        let dims = w.dims("fc.0.gru.weight_hh_l0")?;
        let hidden = dims.get(1).copied().unwrap_or(0);
        if dims.len() != 2 || hidden == 0 || dims[0] != 3 * hidden {
            return Err(crate::RmvpeError::Shape {
                name: "fc.0.gru.weight_hh_l0".into(),
                expected: vec![3 * hidden.max(1), hidden.max(1)],
                got: dims,
            });
        }
        let mut layers = Vec::new();
        let mut width = input;
        while layers.is_empty() || w.has(&format!("fc.0.gru.weight_ih_l{}", layers.len())) {
            let l = layers.len();
            layers.push((
                Direction::load(w, &format!("l{l}"), width, hidden)?,
                Direction::load(w, &format!("l{l}_reverse"), width, hidden)?,
            ));
            width = 2 * hidden;
        }
        Ok(Self { layers, hidden })
    }

    /// `x`: (frames, input) → (frames, 2·hidden).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let frames = x.dim(0)?;
        let h = self.hidden;
        let mut x = x.clone();
        for (fwd, bwd) in &self.layers {
            let gi_f = fwd.project(&x)?;
            let gi_b = bwd.project(&x)?;
            let (of, ob) = rayon::join(|| fwd.recur(&gi_f, h, false), || bwd.recur(&gi_b, h, true));
            let mut out = Vec::with_capacity(frames * 2 * h);
            for t in 0..frames {
                out.extend_from_slice(&of[t * h..(t + 1) * h]);
                out.extend_from_slice(&ob[t * h..(t + 1) * h]);
            }
            x = Tensor::from_vec(out, (frames, 2 * h), &Device::Cpu)?;
        }
        Ok(x)
    }
}
