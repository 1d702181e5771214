//! RVC's `E2E`: DeepUnet → 3-channel conv → BiGRU → linear to 360 bins → sigmoid.

use candle_core::{Device, Tensor};

use crate::checkpoint::Weights;
use crate::decode::N_BINS;
use crate::error::Result;
use crate::gru::BiGru;
use crate::mel::N_MELS;
use crate::unet::{DeepUnet, OutConv};

/// `mel2hidden` pads the frame count to a multiple of 32 (five 2× poolings in RVC's model).
pub const FRAME_MULTIPLE: usize = 32;

pub struct E2E {
    unet: DeepUnet,
    cnn: OutConv,
    gru: BiGru,
    fc_weight_t: Tensor,
    fc_bias: Tensor,
}

impl E2E {
    pub fn load(w: &Weights) -> Result<Self> {
        let unet = DeepUnet::load(w)?;
        let cnn = OutConv::load(w, unet.out_channels)?;
        let gru = BiGru::load(w, 3 * N_MELS)?;
        let fc_weight_t = w
            .get("fc.1.weight", &[N_BINS, 2 * gru.hidden])?
            .t()?
            .contiguous()?;
        let fc_bias = w.get("fc.1.bias", &[N_BINS])?;
        Ok(Self {
            unet,
            cnn,
            gru,
            fc_weight_t,
            fc_bias,
        })
    }

    /// Salience `frames × 360` (row-major) of a log-mel `128 × frames` (band-major), as
    /// `mel2hidden`: zero-pad the frames to a multiple of 32, run, drop the padding.
    pub fn salience(&self, mel: &[f32], frames: usize) -> Result<Vec<f32>> {
        if frames == 0 {
            return Ok(Vec::new());
        }
        let multiple = FRAME_MULTIPLE.max(1 << self.unet.levels());
        let padded = frames.div_ceil(multiple) * multiple;
        // (frames, 128) time-major with zero rows appended: E2E's `mel.transpose(-1, -2)`.
        let mut x = vec![0f32; padded * N_MELS];
        for b in 0..N_MELS {
            for t in 0..frames {
                x[t * N_MELS + b] = mel[b * frames + t];
            }
        }
        let x = Tensor::from_vec(x, (1, 1, padded, N_MELS), &Device::Cpu)?;
        let y = self.cnn.forward(&self.unet.forward(&x)?)?; // (1, 3, T, 128)
        let y = y
            .squeeze(0)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((padded, 3 * N_MELS))?;
        let y = self.gru.forward(&y)?;
        let y = y
            .matmul(&self.fc_weight_t)?
            .broadcast_add(&self.fc_bias)?
            .narrow(0, 0, frames)?;
        let y = candle_nn::ops::sigmoid(&y)?;
        Ok(y.flatten_all()?.to_vec1()?)
    }
}
