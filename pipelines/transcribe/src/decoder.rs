//! Whisper's text decoder with a key/value cache. candle-transformers' decoder re-runs every
//! token of the sequence at each step (its cache covers cross-attention only), which made
//! decoding 60 % of a transcription; here each step runs only the new token against the
//! cached keys and values. Same weights, same arithmetic (GELU, pre-norm blocks, q and k each
//! scaled by d_head^-1/4), so the tokens chosen are the same.

use candle_core::{DType, IndexOp, Module, Result, Tensor, D};
use candle_nn::{LayerNorm, Linear, VarBuilder};

fn linear(vb: &VarBuilder, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
    let w = vb.get((d_out, d_in), "weight")?;
    let b = if bias {
        Some(vb.get(d_out, "bias")?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

fn layer_norm(vb: &VarBuilder, d: usize) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(d, "weight")?,
        vb.get(d, "bias")?,
        1e-5,
    ))
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl Attention {
    fn load(vb: &VarBuilder, d: usize) -> Result<Attention> {
        Ok(Attention {
            q: linear(&vb.pp("q_proj"), d, d, true)?,
            k: linear(&vb.pp("k_proj"), d, d, false)?,
            v: linear(&vb.pp("v_proj"), d, d, true)?,
            out: linear(&vb.pp("out_proj"), d, d, true)?,
        })
    }
}

struct Block {
    attn_ln: LayerNorm,
    attn: Attention,
    cross_ln: LayerNorm,
    cross: Attention,
    mlp_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct CachedDecoder {
    embed: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    heads: usize,
}

/// Per-window state: cross-attention keys/values of the audio, self-attention cache.
pub struct DecodeState {
    cross: Vec<(Tensor, Tensor)>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl CachedDecoder {
    /// The decoder under `model.decoder` of the (Hugging Face named) Whisper tensors.
    pub fn load(
        vb: &VarBuilder,
        cfg: &candle_transformers::models::whisper::Config,
    ) -> Result<Self> {
        let vb = vb.pp("model.decoder");
        let d = cfg.d_model;
        let mut blocks = Vec::with_capacity(cfg.decoder_layers);
        for i in 0..cfg.decoder_layers {
            let b = vb.pp(format!("layers.{i}"));
            let mlp = d * 4;
            blocks.push(Block {
                attn_ln: layer_norm(&b.pp("self_attn_layer_norm"), d)?,
                attn: Attention::load(&b.pp("self_attn"), d)?,
                cross_ln: layer_norm(&b.pp("encoder_attn_layer_norm"), d)?,
                cross: Attention::load(&b.pp("encoder_attn"), d)?,
                mlp_ln: layer_norm(&b.pp("final_layer_norm"), d)?,
                fc1: linear(&b.pp("fc1"), d, mlp, true)?,
                fc2: linear(&b.pp("fc2"), mlp, d, true)?,
            });
        }
        Ok(CachedDecoder {
            embed: vb.pp("embed_tokens").get((cfg.vocab_size, d), "weight")?,
            positions: vb.get((cfg.max_target_positions, d), "embed_positions.weight")?,
            blocks,
            ln: layer_norm(&vb.pp("layer_norm"), d)?,
            heads: cfg.decoder_attention_heads,
        })
    }

    /// Heads first: `[1, t, d]` → `[1, heads, t, d_head]`.
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        x.reshape((b, t, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn scale(&self, d: usize) -> f64 {
        ((d / self.heads) as f64).powf(-0.25)
    }

    /// Starts a window: the audio features' keys and values for every block.
    pub fn start(&self, audio: &Tensor) -> Result<DecodeState> {
        let d = audio.dim(D::Minus1)?;
        let mut cross = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let k = (self.split(&b.cross.k.forward(audio)?)? * self.scale(d))?;
            let v = self.split(&b.cross.v.forward(audio)?)?;
            cross.push((k.transpose(2, 3)?.contiguous()?, v));
        }
        Ok(DecodeState {
            cross,
            cache: vec![None; self.blocks.len()],
            len: 0,
        })
    }

    fn attend(
        &self,
        q: &Tensor,
        k_t: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut w = q.matmul(k_t)?;
        if let Some(m) = mask {
            w = w.broadcast_add(m)?;
        }
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        let (b, _, t, _) = w.dims4()?;
        w.matmul(v)?.transpose(1, 2)?.reshape((b, t, ()))
    }

    /// Feeds `tokens` (the prompt, then one token at a time) and returns the logits after the
    /// last one.
    pub fn step(&self, state: &mut DecodeState, tokens: &[u32]) -> Result<Vec<f32>> {
        let n = tokens.len();
        let dev = self.embed.device();
        let ids = Tensor::new(tokens, dev)?;
        let mut x = self
            .embed
            .index_select(&ids, 0)?
            .broadcast_add(&self.positions.narrow(0, state.len, n)?)?
            .unsqueeze(0)?;
        let d = x.dim(D::Minus1)?;
        let scale = self.scale(d);
        // Causal mask among the new tokens (each also sees everything cached).
        let past = state.len;
        let mask = if n > 1 {
            let m: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..past + n).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Some(Tensor::from_vec(m, (n, past + n), dev)?)
        } else {
            None
        };
        for (i, b) in self.blocks.iter().enumerate() {
            let h = b.attn_ln.forward(&x)?;
            let q = (self.split(&b.attn.q.forward(&h)?)? * scale)?;
            let k = (self.split(&b.attn.k.forward(&h)?)? * scale)?;
            let v = self.split(&b.attn.v.forward(&h)?)?;
            let (k, v) = match &state.cache[i] {
                Some((ck, cv)) => (Tensor::cat(&[ck, &k], 2)?, Tensor::cat(&[cv, &v], 2)?),
                None => (k, v),
            };
            let a = self.attend(&q, &k.transpose(2, 3)?.contiguous()?, &v, mask.as_ref())?;
            state.cache[i] = Some((k, v));
            x = (x + b.attn.out.forward(&a)?)?;
            let h = b.cross_ln.forward(&x)?;
            let q = (self.split(&b.cross.q.forward(&h)?)? * scale)?;
            let (ck, cv) = &state.cross[i];
            let a = self.attend(&q, ck, cv, None)?;
            x = (x + b.cross.out.forward(&a)?)?;
            let h = b.mlp_ln.forward(&x)?;
            x = (x + b.fc2.forward(&b.fc1.forward(&h)?.gelu()?)?)?;
        }
        state.len += n;
        let last = self.ln.forward(&x.i((.., n - 1..n, ..))?)?;
        let logits = last.squeeze(0)?.matmul(&self.embed.t()?)?.squeeze(0)?;
        logits.to_dtype(DType::F32)?.to_vec1()
    }
}
