//! RVC's DeepUnet for inference: BatchNorm folded into the convolutions that precede it.
//!
//! Layout is NCHW with H = frames and W = 128 mel bands, as `E2E.forward` feeds it. Sizes
//! (levels, blocks, channels) are read from the state dict; the pooling / upsampling factor is
//! RVC's `kernel_size = (2, 2)`, which the state dict does not record.

use candle_core::Tensor;

use crate::checkpoint::Weights;
use crate::conv;
use crate::error::Result;

/// PyTorch's BatchNorm2d default; not stored in the state dict.
const BN_EPS: f64 = 1e-5;

/// Per-channel `(scale, shift)` of an eval-mode BatchNorm2d.
fn batch_norm(w: &Weights, prefix: &str, channels: usize) -> Result<(Tensor, Tensor)> {
    let gamma = w.get(&format!("{prefix}.weight"), &[channels])?;
    let beta = w.get(&format!("{prefix}.bias"), &[channels])?;
    let mean = w.get(&format!("{prefix}.running_mean"), &[channels])?;
    let var = w.get(&format!("{prefix}.running_var"), &[channels])?;
    let scale = gamma.broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
    let shift = (beta - mean.mul(&scale)?)?;
    Ok((scale, shift))
}

/// A 3×3 (or 1×1) convolution with bias, possibly with a BatchNorm folded in.
struct Conv {
    /// (cout, cin·k·k), the layout [`conv::conv3x3`] multiplies by.
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
}

impl Conv {
    /// `conv` (no bias) followed by BatchNorm `bn`.
    fn with_bn(w: &Weights, conv: &str, bn: &str, cin: usize, cout: usize) -> Result<Self> {
        let weight = w.get(&format!("{conv}.weight"), &[cout, cin, 3, 3])?;
        let (scale, shift) = batch_norm(w, bn, cout)?;
        Ok(Self {
            weight: weight
                .broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?
                .reshape((cout, cin * 9))?,
            bias: shift,
            kernel: 3,
        })
    }

    /// A plain convolution with its own bias.
    fn plain(w: &Weights, name: &str, cin: usize, cout: usize, k: usize) -> Result<Self> {
        Ok(Self {
            weight: w
                .get(&format!("{name}.weight"), &[cout, cin, k, k])?
                .reshape((cout, cin * k * k))?,
            bias: w.get(&format!("{name}.bias"), &[cout])?,
            kernel: k,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.bias.dims1()?;
        let y = if self.kernel == 1 {
            conv::conv1x1(x, &self.weight)?
        } else {
            conv::conv3x3(x, &self.weight)?
        };
        Ok(y.broadcast_add(&self.bias.reshape((1, c, 1, 1))?)?)
    }
}

/// `ConvBlockRes`: two conv-BN-ReLU and a residual (1×1 conv when channels change).
struct ResBlock {
    conv1: Conv,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl ResBlock {
    fn load(w: &Weights, p: &str, cin: usize, cout: usize) -> Result<Self> {
        let shortcut = if cin != cout {
            Some(Conv::plain(w, &format!("{p}.shortcut"), cin, cout, 1)?)
        } else {
            None
        };
        Ok(Self {
            conv1: Conv::with_bn(w, &format!("{p}.conv.0"), &format!("{p}.conv.1"), cin, cout)?,
            conv2: Conv::with_bn(
                w,
                &format!("{p}.conv.3"),
                &format!("{p}.conv.4"),
                cout,
                cout,
            )?,
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward(x)?.relu()?;
        let y = self.conv2.forward(&y)?.relu()?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        Ok((y + skip)?)
    }
}

/// A run of `ConvBlockRes` under `prefix.{i}` (as many as the state dict holds).
fn load_blocks(w: &Weights, prefix: &str, cin: usize, cout: usize) -> Result<Vec<ResBlock>> {
    let mut blocks = vec![ResBlock::load(w, &format!("{prefix}.0"), cin, cout)?];
    while w.has(&format!("{prefix}.{}.conv.0.weight", blocks.len())) {
        blocks.push(ResBlock::load(
            w,
            &format!("{prefix}.{}", blocks.len()),
            cout,
            cout,
        )?);
    }
    Ok(blocks)
}

fn run(blocks: &[ResBlock], mut x: Tensor) -> Result<Tensor> {
    for b in blocks {
        x = b.forward(&x)?;
    }
    Ok(x)
}

/// `ResDecoderBlock`: ConvTranspose2d (stride 2, output padding 1) + BN + ReLU, concatenation
/// with the encoder's skip tensor, then residual blocks.
struct DecoderLevel {
    up_weight: Tensor,
    up_bias: Tensor,
    blocks: Vec<ResBlock>,
}

impl DecoderLevel {
    fn load(w: &Weights, p: &str, cin: usize, cout: usize) -> Result<Self> {
        // ConvTranspose2d weights are (in, out, kh, kw): BN scales dimension 1.
        let weight = w.get(&format!("{p}.conv1.0.weight"), &[cin, cout, 3, 3])?;
        let (scale, shift) = batch_norm(w, &format!("{p}.conv1.1"), cout)?;
        Ok(Self {
            up_weight: weight
                .broadcast_mul(&scale.reshape((1, cout, 1, 1))?)?
                .reshape((cin, cout * 9))?
                .t()?
                .contiguous()?,
            up_bias: shift.reshape((1, cout, 1, 1))?,
            blocks: load_blocks(w, &format!("{p}.conv2"), 2 * cout, cout)?,
        })
    }

    fn forward(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        let y = conv::conv_transpose3x3_s2(x, &self.up_weight)?;
        let y = y.broadcast_add(&self.up_bias)?.relu()?;
        run(&self.blocks, Tensor::cat(&[&y, skip], 1)?)
    }
}

/// Encoder (input BatchNorm, residual levels with 2×2 average pooling), intermediate levels,
/// decoder (upsampling with skip connections).
pub struct DeepUnet {
    input_scale: f64,
    input_shift: f64,
    encoder: Vec<Vec<ResBlock>>,
    intermediate: Vec<Vec<ResBlock>>,
    decoder: Vec<DecoderLevel>,
    /// Channels of the first encoder level, which the decoder returns to.
    pub out_channels: usize,
}

impl DeepUnet {
    pub fn load(w: &Weights) -> Result<Self> {
        let first = w.dims("unet.encoder.layers.0.conv.0.conv.0.weight")?;
        let base = first.first().copied().unwrap_or(0);
        if first.len() != 4 || base == 0 {
            return Err(crate::RmvpeError::Shape {
                name: "unet.encoder.layers.0.conv.0.conv.0.weight".into(),
                expected: vec![16, 1, 3, 3],
                got: first,
            });
        }
        let (scale, shift) = batch_norm(w, "unet.encoder.bn", 1)?;
        let (input_scale, input_shift) = (
            f64::from(scale.to_vec1::<f32>()?[0]),
            f64::from(shift.to_vec1::<f32>()?[0]),
        );
        let mut encoder = Vec::new();
        let (mut cin, mut cout) = (1, base);
        while w.has(&format!(
            "unet.encoder.layers.{}.conv.0.conv.0.weight",
            encoder.len()
        )) {
            let p = format!("unet.encoder.layers.{}.conv", encoder.len());
            encoder.push(load_blocks(w, &p, cin, cout)?);
            cin = cout;
            cout *= 2;
        }
        // Each level halves the 128 mel bands.
        if encoder.len() > 7 {
            return Err(crate::RmvpeError::Unsupported(format!(
                "{} encoder levels; 128 mel bands allow at most 7",
                encoder.len()
            )));
        }
        // Intermediate: from the deepest encoder width to twice that, then constant.
        let mut intermediate = Vec::new();
        while w.has(&format!(
            "unet.intermediate.layers.{}.conv.0.conv.0.weight",
            intermediate.len()
        )) {
            let p = format!("unet.intermediate.layers.{}.conv", intermediate.len());
            let from = if intermediate.is_empty() { cin } else { cout };
            intermediate.push(load_blocks(w, &p, from, cout)?);
        }
        if intermediate.is_empty() {
            return Err(crate::RmvpeError::MissingTensor(
                "unet.intermediate.layers.0.conv.0.conv.0.weight".into(),
            ));
        }
        let mut decoder = Vec::new();
        let mut c = cout;
        for i in 0..encoder.len() {
            decoder.push(DecoderLevel::load(
                w,
                &format!("unet.decoder.layers.{i}"),
                c,
                c / 2,
            )?);
            c /= 2;
        }
        Ok(Self {
            input_scale,
            input_shift,
            encoder,
            intermediate,
            decoder,
            out_channels: base,
        })
    }

    /// Levels of 2× pooling; frames must be a multiple of `2^levels`.
    pub fn levels(&self) -> usize {
        self.encoder.len()
    }

    /// `x`: (1, 1, frames, 128) → (1, base channels, frames, 128).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.affine(self.input_scale, self.input_shift)?;
        let mut skips = Vec::with_capacity(self.encoder.len());
        for level in &self.encoder {
            let t = run(level, x)?;
            x = t.avg_pool2d(2)?;
            skips.push(t);
        }
        for level in &self.intermediate {
            x = run(level, x)?;
        }
        for (level, skip) in self.decoder.iter().zip(skips.iter().rev()) {
            x = level.forward(&x, skip)?;
        }
        Ok(x)
    }
}

/// The final 3×3 convolution to 3 channels (`E2E.cnn`).
pub struct OutConv(Conv);

impl OutConv {
    pub fn load(w: &Weights, cin: usize) -> Result<Self> {
        Ok(Self(Conv::plain(w, "cnn", cin, 3, 3)?))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
}
