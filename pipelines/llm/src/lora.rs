//! LoRA: a frozen base projection plus a trainable low-rank update `scale · B·A`.
//!
//! candle has no LoRA layer, so this is ours. A and B live as `Var`s in a caller-owned `VarMap`
//! under the names PEFT writes to `adapter_model.safetensors`
//! (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`), so `varmap.save(...)`
//! produces an adapter Python users can load, and `varmap.all_vars()` is exactly the set of
//! parameters to hand to the optimiser: the base weights are plain tensors and never get
//! gradients. A is initialised from our own seeded RNG (not candle's global one) so that the same
//! seed always gives the same adapter, on any device.
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Storage, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::{LlmError, Result};

/// The projections LoRA may wrap, by their Hugging Face module names.
pub const ALL_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// LoRA hyper-parameters; serialised into `adapter_config.json` by the trainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Scale numerator: the update is multiplied by `alpha / r`.
    pub alpha: f64,
    /// Dropout on the LoRA input during training (not applied yet; kept for the PEFT config).
    #[serde(default)]
    pub dropout: f32,
    /// Module names to adapt (`q_proj`, ..., `down_proj`).
    #[serde(default = "default_targets")]
    pub target_modules: Vec<String>,
}

fn default_targets() -> Vec<String> {
    ALL_TARGETS.iter().map(|s| s.to_string()).collect()
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.0,
            target_modules: default_targets(),
        }
    }
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.r.max(1) as f64
    }

    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|m| m == module)
    }
}

/// The PEFT name prefix of a projection: `base_model.model.model.layers.{layer}.{group}.{module}`
/// where group is `self_attn` or `mlp`.
pub fn peft_prefix(layer: usize, module: &str) -> String {
    let group = if matches!(module, "gate_proj" | "up_proj" | "down_proj") {
        "mlp"
    } else {
        "self_attn"
    };
    format!("base_model.model.model.layers.{layer}.{group}.{module}")
}

/// A small deterministic generator (SplitMix64): same seed, same numbers, everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A stream for one named parameter, independent of the order parameters are created in.
    pub fn for_name(seed: u64, name: &str) -> Self {
        // FNV-1a of the name, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        SplitMix64(seed ^ h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, 1) with 24 random bits (all an f32 holds).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-bound, bound).
    pub fn uniform(&mut self, bound: f32) -> f32 {
        (self.next_f32() * 2.0 - 1.0) * bound
    }
}

/// A linear projection `y = x·Wᵀ + b (+ scale · x·Aᵀ·Bᵀ)` with a frozen `W`.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    base: Tensor,
    bias: Option<Tensor>,
    a: Option<Var>,
    b: Option<Var>,
    scale: f64,
}

impl LoraLinear {
    /// A frozen projection without adapter. `base` is `[out, in]` as in Hugging Face checkpoints.
    pub fn frozen(base: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out, _) = base.dims2()?;
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(LlmError::Model(format!(
                    "bias shape {:?} does not match weight rows {out}",
                    b.dims()
                )));
            }
        }
        Ok(LoraLinear {
            base,
            bias,
            a: None,
            b: None,
            scale: 0.0,
        })
    }

    /// A projection with a LoRA adapter whose A/B are fetched from `varmap` under
    /// `{prefix}.lora_A.weight` / `{prefix}.lora_B.weight`, or created there: A `[r, in]`
    /// kaiming-uniform (PEFT's bound `1/sqrt(in)`) from a seeded stream, B `[out, r]` zeros, so a
    /// fresh adapter computes exactly the base projection. Existing vars (an adapter loaded
    /// before building the model) are reused after a shape check.
    pub fn with_lora(
        base: Tensor,
        bias: Option<Tensor>,
        cfg: &LoraConfig,
        prefix: &str,
        varmap: &VarMap,
        seed: u64,
    ) -> Result<Self> {
        if cfg.r == 0 {
            return Err(LlmError::Config("LoRA rank r must be positive".into()));
        }
        let mut lin = Self::frozen(base, bias)?;
        let (out, inp) = lin.base.dims2()?;
        let device = lin.base.device().clone();
        let a_name = format!("{prefix}.lora_A.weight");
        let b_name = format!("{prefix}.lora_B.weight");
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| LlmError::Model("LoRA VarMap lock poisoned".into()))?;
        let a = match data.get(&a_name) {
            Some(v) => v.clone(),
            None => {
                let mut rng = SplitMix64::for_name(seed, &a_name);
                let bound = 1.0 / (inp as f32).sqrt();
                let vals: Vec<f32> = (0..cfg.r * inp).map(|_| rng.uniform(bound)).collect();
                let var = Var::from_tensor(&Tensor::from_vec(vals, (cfg.r, inp), &device)?)?;
                data.insert(a_name.clone(), var.clone());
                var
            }
        };
        let b = match data.get(&b_name) {
            Some(v) => v.clone(),
            None => {
                let var = Var::zeros((out, cfg.r), DType::F32, &device)?;
                data.insert(b_name.clone(), var.clone());
                var
            }
        };
        drop(data);
        if a.dims() != [cfg.r, inp] || b.dims() != [out, cfg.r] {
            return Err(LlmError::Model(format!(
                "LoRA {prefix}: A {:?} / B {:?} do not fit rank {} on a [{out}, {inp}] weight",
                a.dims(),
                b.dims(),
                cfg.r
            )));
        }
        lin.a = Some(a);
        lin.b = Some(b);
        lin.scale = cfg.scale();
        Ok(lin)
    }

    /// `x [.., in]` → `[.., out]`; differentiable with respect to A and B (and `x`).
    ///
    /// On the CPU this is one fused op whose backward computes only what training needs:
    /// candle's own matmul backward also computes the gradient of the frozen weight (as many
    /// FLOPs as the forward, plus a weight-sized buffer per projection per step), which nobody
    /// reads. Elsewhere it is [`LoraLinear::forward_reference`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 || self.base.dtype() != DType::F32 {
            return self.forward_reference(x);
        }
        let dims = x.dims().to_vec();
        let (inp, lead) = match dims.split_last() {
            Some((inp, lead)) => (*inp, lead),
            None => return Err(LlmError::Model("LoRA input is a scalar".into())),
        };
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, inp))?.contiguous()?;
        let mut y = match (&self.a, &self.b) {
            (Some(a), Some(b)) => x2.apply_op3(
                a.as_tensor(),
                b.as_tensor(),
                LoraMatmul {
                    w: self.base.clone(),
                    scale: self.scale,
                },
            )?,
            _ => x2.apply_op1(FrozenMatmul {
                w: self.base.clone(),
            })?,
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out_dims = lead.to_vec();
        out_dims.push(self.out_dim());
        Ok(y.reshape(out_dims)?)
    }

    /// The same projection from plain candle ops (any device, any dtype): the reference the
    /// fused CPU op is tested against.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (inp, lead) = match dims.split_last() {
            Some((inp, lead)) => (*inp, lead),
            None => return Err(LlmError::Model("LoRA input is a scalar".into())),
        };
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, inp))?;
        let mut y = x2.matmul(&self.base.t()?)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let (Some(a), Some(b)) = (&self.a, &self.b) {
            let delta = x2
                .matmul(&a.as_tensor().t()?)?
                .matmul(&b.as_tensor().t()?)?;
            y = (y + (delta * self.scale)?)?;
        }
        let mut out_dims = lead.to_vec();
        out_dims.push(self.out_dim());
        Ok(y.reshape(out_dims)?)
    }

    /// The merged weight `W + scale·B·A` (just `W` without adapter), detached from the graph.
    pub fn merge(&self) -> Result<Tensor> {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) => {
                let delta = b.as_detached_tensor().matmul(&a.as_detached_tensor())?;
                Ok((&self.base + (delta * self.scale)?)?)
            }
            _ => Ok(self.base.clone()),
        }
    }

    /// A frozen copy with the adapter folded into the weight (for export and fast inference).
    pub fn merged(&self) -> Result<LoraLinear> {
        Self::frozen(self.merge()?, self.bias.clone())
    }

    pub fn base(&self) -> &Tensor {
        &self.base
    }
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    pub fn a(&self) -> Option<&Var> {
        self.a.as_ref()
    }
    pub fn b(&self) -> Option<&Var> {
        self.b.as_ref()
    }
    pub fn scale(&self) -> f64 {
        self.scale
    }
    pub fn has_adapter(&self) -> bool {
        self.a.is_some()
    }
    pub fn out_dim(&self) -> usize {
        self.base.dims().first().copied().unwrap_or(0)
    }
    pub fn in_dim(&self) -> usize {
        self.base.dims().get(1).copied().unwrap_or(0)
    }
}

/// The f32 slice a contiguous CPU storage holds.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        (CpuStorage::F32(_), None) => candle_core::bail!("fused LoRA op: input not contiguous"),
        _ => candle_core::bail!("fused LoRA op: f32 expected"),
    }
}

/// `lhs [m, k] · rhsᵀ` where `rhs` is `[n, k]` (a weight in HF layout), on CPU storages.
fn matmul_t(
    lhs: &CpuStorage,
    ll: &Layout,
    rhs: &CpuStorage,
    rl: &Layout,
) -> candle_core::Result<(CpuStorage, usize, usize)> {
    let (m, k) = ll.shape().dims2()?;
    let (n, k2) = rl.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("fused LoRA op: [{m}, {k}] · [{n}, {k2}]ᵀ");
    }
    Ok((
        lhs.matmul(rhs, (1, m, n, k), ll, &rl.transpose(0, 1)?)?,
        m,
        n,
    ))
}

/// Runs `f` on the CPU storage of the frozen weight `w`.
fn with_weight<R>(
    w: &Tensor,
    f: impl FnOnce(&CpuStorage, &Layout) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let (guard, layout) = w.storage_and_layout();
    match &*guard {
        Storage::Cpu(s) => f(s, layout),
        _ => candle_core::bail!("fused LoRA op: weight not on the CPU"),
    }
}

/// Whether backprop will read the gradient of `t` (a var, or computed from one).
fn needs_grad(t: &Tensor) -> bool {
    t.track_op()
}

/// `x [rows, in] → x·Wᵀ` with `W` frozen: the backward gives `x` its gradient `g·W` and
/// nothing to `W`.
struct FrozenMatmul {
    w: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, m, n) = with_weight(&self.w, |ws, wl| matmul_t(s, l, ws, wl))?;
        Ok((y, Shape::from((m, n))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        if !needs_grad(x) {
            return Ok(None);
        }
        Ok(Some(g.detach().matmul(&self.w)?))
    }
}

/// `(x [rows, in], A [r, in], B [out, r]) → x·Wᵀ + scale·(x·Aᵀ)·Bᵀ` with `W` frozen.
struct LoraMatmul {
    w: Tensor,
    scale: f64,
}

impl CustomOp3 for LoraMatmul {
    fn name(&self) -> &'static str {
        "lora-matmul"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (mut y, m, n) = with_weight(&self.w, |ws, wl| matmul_t(xs, xl, ws, wl))?;
        let (u, _, r) = matmul_t(xs, xl, a, al)?;
        let (d, _, _) = matmul_t(&u, &Layout::contiguous((m, r)), b, bl)?;
        let d = f32_slice(&d, &Layout::contiguous((m, n)))?;
        let s = self.scale as f32;
        match &mut y {
            CpuStorage::F32(y) => {
                for (y, d) in y.iter_mut().zip(d) {
                    *y += s * d;
                }
            }
            _ => candle_core::bail!("fused LoRA op: f32 expected"),
        }
        Ok((y, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x0, a0, b0, g) = (x.detach(), a.detach(), b.detach(), g.detach());
        // u = x·Aᵀ [rows, r]; y = x·Wᵀ + s·u·Bᵀ.
        let u = x0.matmul(&a0.t()?)?;
        let du = (g.matmul(&b0)? * self.scale)?;
        let db = (g.t()?.matmul(&u)? * self.scale)?;
        let da = du.t()?.matmul(&x0)?;
        let dx = if needs_grad(x) {
            Some((g.matmul(&self.w)? + du.matmul(&a0)?)?)
        } else {
            None
        };
        Ok((dx, Some(da), Some(db)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
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

    fn rand(shape: (usize, usize), seed: u64) -> Tensor {
        let mut r = SplitMix64::new(seed);
        let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| r.uniform(1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn fresh_adapter_equals_base_and_merge_matches_forward() {
        let w = rand((6, 5), 1);
        let bias = Tensor::new(&[0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6], &Device::Cpu).unwrap();
        let cfg = LoraConfig {
            r: 2,
            alpha: 4.0,
            ..LoraConfig::default()
        };
        let vm = VarMap::new();
        let prefix = peft_prefix(0, "q_proj");
        let lin =
            LoraLinear::with_lora(w.clone(), Some(bias.clone()), &cfg, &prefix, &vm, 7).unwrap();
        let frozen = LoraLinear::frozen(w, Some(bias)).unwrap();
        let x = rand((3, 5), 2).reshape((1, 3, 5)).unwrap();
        let y = lin.forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 3, 6]);
        assert_eq!(max_abs(&y, &frozen.forward(&x).unwrap()), 0.0);

        // Names exactly as PEFT saves them.
        let names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        assert!(names.contains(
            &"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".to_string()
        ));
        assert!(names.contains(
            &"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight".to_string()
        ));
        assert_eq!(
            peft_prefix(3, "down_proj"),
            "base_model.model.model.layers.3.mlp.down_proj"
        );

        lin.b().unwrap().set(&rand((6, 2), 3)).unwrap();
        let y = lin.forward(&x).unwrap();
        assert!(max_abs(&y, &frozen.forward(&x).unwrap()) > 1e-3);
        let merged = lin.merged().unwrap();
        assert!(max_abs(&y, &merged.forward(&x).unwrap()) < 1e-5);
    }

    #[test]
    fn same_seed_same_adapter_and_kaiming_bound() {
        let w = rand((8, 16), 1);
        let cfg = LoraConfig::default();
        let make = |seed| {
            let vm = VarMap::new();
            let l = LoraLinear::with_lora(w.clone(), None, &cfg, "p", &vm, seed).unwrap();
            l.a().unwrap().as_tensor().clone()
        };
        let a1 = make(42);
        assert_eq!(max_abs(&a1, &make(42)), 0.0);
        assert!(max_abs(&a1, &make(43)) > 1e-3);
        let bound = 1.0 / 16f32.sqrt();
        let m = a1.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let m = m.to_scalar::<f32>().unwrap();
        assert!(
            m <= bound && m > bound * 0.5,
            "max |A| {m} vs bound {bound}"
        );
    }

    #[test]
    fn existing_vars_are_reused_and_shapes_checked() {
        let w = rand((4, 3), 1);
        let cfg = LoraConfig {
            r: 2,
            ..LoraConfig::default()
        };
        let vm = VarMap::new();
        let l1 = LoraLinear::with_lora(w.clone(), None, &cfg, "p", &vm, 1).unwrap();
        l1.b().unwrap().set(&rand((4, 2), 9)).unwrap();
        let l2 = LoraLinear::with_lora(w.clone(), None, &cfg, "p", &vm, 2).unwrap();
        assert_eq!(
            max_abs(&l1.merge().unwrap(), &l2.merge().unwrap()),
            0.0,
            "second build shares the vars"
        );
        let r3 = LoraConfig {
            r: 3,
            ..LoraConfig::default()
        };
        assert!(LoraLinear::with_lora(w, None, &r3, "p", &vm, 1).is_err());
    }

    /// The fused CPU op against plain candle ops: same output, same gradients for x, A and B.
    #[test]
    fn fused_op_matches_reference_forward_and_gradients() {
        let cfg = LoraConfig {
            r: 3,
            alpha: 6.0,
            ..LoraConfig::default()
        };
        let vm = VarMap::new();
        let lin = LoraLinear::with_lora(rand((7, 5), 1), None, &cfg, "p", &vm, 4).unwrap();
        lin.b().unwrap().set(&rand((7, 3), 5)).unwrap();
        let frozen = LoraLinear::frozen(rand((7, 5), 1), None).unwrap();
        let xv = Var::from_tensor(&rand((6, 5), 2).reshape((2, 3, 5)).unwrap()).unwrap();
        let x = xv.as_tensor();
        let w = rand((6, 7), 9).reshape((2, 3, 7)).unwrap();
        for l in [&lin, &frozen] {
            let fast = l.forward(x).unwrap();
            let slow = l.forward_reference(x).unwrap();
            assert!(max_abs(&fast, &slow) < 1e-5);
            // A weighted sum so every output element has its own gradient.
            let gf = (fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gs = (slow * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let mut tracked = vec![x];
            if let (Some(a), Some(b)) = (l.a(), l.b()) {
                tracked.push(a.as_tensor());
                tracked.push(b.as_tensor());
            }
            for t in tracked {
                let (f, s) = (gf.get(t).unwrap(), gs.get(t).unwrap());
                assert!(max_abs(f, s) < 1e-4, "gradient differs: {}", max_abs(f, s));
                assert!(
                    s.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                        > 0.0
                );
            }
            // The frozen weight gets no gradient from the fused op.
            assert!(gf.get(l.base()).is_none());
        }
    }

    #[test]
    fn config_serde_defaults() {
        let cfg: LoraConfig = serde_json::from_str(r#"{"r":4,"alpha":8}"#).unwrap();
        assert_eq!(cfg.target_modules.len(), 7);
        assert_eq!(cfg.scale(), 2.0);
        assert!(cfg.targets("down_proj") && !cfg.targets("lm_head"));
    }
}
