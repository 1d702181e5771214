//! The candle trainer against RVC's own PyTorch training step.
//!
//! `testdata/train_reference.safetensors` was written by `reference/make_train_reference.py`
//! from RVC's model code (rvc-python wheel) with every random draw passed in: a tiny
//! generator's weights, the full-size `MultiPeriodDiscriminatorV2` rebuilt from a sin
//! formula (restated here), the batch, the noise, RVC's outputs, losses, gradients and one
//! AdamW step of D then G. Each check prints its worst difference.
//!
//! Differences are measured per tensor as `max |ours − rvc| / max |rvc|` (relative to the
//! tensor's scale; element-wise ratios are meaningless where values cross zero).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use candle_core::{backprop::GradStore, DType, Device, Tensor};

use avatar_rvc::{SynthConfig, Version};
use avatar_rvc_train::discriminator::Discriminator;
use avatar_rvc_train::generator::{Batch, GenNoise, Generator};
use avatar_rvc_train::mel::{slaney_mel, Mel, MelConfig};
use avatar_rvc_train::params::Params;
use avatar_rvc_train::train::LossTerms;
use avatar_rvc_train::{Example, TrainConfig, Trainer};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/train_reference.safetensors"
);
/// RVC's AdamW learning rate (step 0, before any decay).
const LR: f64 = 1e-4;

struct Reference {
    t: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Reference {
    fn get(&self, name: &str) -> &Tensor {
        self.t
            .get(name)
            .unwrap_or_else(|| panic!("reference has no `{name}`"))
    }

    fn scalar(&self, name: &str) -> f32 {
        self.get(name)
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// `g.*` without the prefix: the generator's state dict.
    fn g_state(&self) -> Vec<(String, Tensor)> {
        let mut s: Vec<_> = self
            .t
            .iter()
            .filter_map(|(k, t)| k.strip_prefix("g.").map(|n| (n.to_string(), t.clone())))
            .collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    }

    fn g_config(&self) -> SynthConfig {
        let list: Vec<serde_json::Value> = serde_json::from_str(&self.meta["g_config"]).unwrap();
        SynthConfig::from_list(&list).unwrap()
    }

    /// RVC's discriminator parameter names and shapes (metadata `d_params`).
    fn d_params(&self) -> BTreeMap<String, Vec<usize>> {
        let list: Vec<(String, Vec<usize>)> = serde_json::from_str(&self.meta["d_params"]).unwrap();
        list.into_iter().collect()
    }
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let t = candle_core::safetensors::load(FILE, &Device::Cpu).unwrap();
        // candle does not expose the metadata: read the safetensors header directly.
        let bytes = std::fs::read(FILE).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let meta = serde_json::from_value(header["__metadata__"].clone()).unwrap();
        Reference { t, meta }
    })
}

/// The script's D weights: `scale * sin(0.7 i + phase)` in f64, then f32, row-major, with
/// `phase = (sum of the name's UTF-8 bytes) % 997 * 0.001`.
fn d_values(name: &str, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let phase = (name.bytes().map(u64::from).sum::<u64>() % 997) as f64 * 0.001;
    let scale = if name.ends_with("weight_g") {
        1.0
    } else if name.ends_with("weight_v") {
        0.1
    } else if name.ends_with("bias") {
        0.01
    } else {
        panic!("unexpected D parameter {name}")
    };
    let v: Vec<f32> = (0..n)
        .map(|i| (scale * (0.7 * i as f64 + phase).sin()) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn generator(r: &Reference) -> Generator {
    let g = Generator::new(&r.g_config(), Version::V2, 0, &Device::Cpu).unwrap();
    let unused = g.params.load_state(&r.g_state(), "reference").unwrap();
    assert!(unused.is_empty(), "reference G tensors we lack: {unused:?}");
    g
}

fn discriminator() -> Discriminator {
    let d = Discriminator::new(0, 1, &Device::Cpu).unwrap();
    let state: Vec<(String, Tensor)> = d
        .params
        .vars()
        .map(|(n, v)| (n.to_string(), d_values(n, v.dims())))
        .collect();
    d.params.load_state(&state, "formula").unwrap();
    d
}

fn batch(r: &Reference) -> Batch {
    Batch {
        phone: r.get("in.phone").clone(),
        pitch: r.get("in.pitch").to_dtype(DType::U32).unwrap(),
        pitchf: r.get("in.pitchf").to_vec2::<f32>().unwrap(),
        spec: r.get("in.spec").clone(),
        wav: r.get("in.wav").clone(),
        sid: r.get("in.sid").to_dtype(DType::U32).unwrap(),
    }
}

fn noise(r: &Reference) -> GenNoise {
    GenNoise {
        posterior: r.get("noise.enc_q").clone(),
        slice_starts: r
            .get("noise.ids_slice")
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|s| s as usize)
            .collect(),
        sine: r
            .get("noise.sine")
            .squeeze(2)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
    }
}

/// A trainer whose examples are the reference's two utterances, whole (8 frames).
fn trainer(r: &Reference) -> Trainer {
    let phone = r.get("in.phone").to_vec3::<f32>().unwrap();
    let pitchf = r.get("in.pitchf").to_vec2::<f32>().unwrap();
    let pitch = r
        .get("in.pitch")
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec2::<u32>()
        .unwrap();
    let wav = r
        .get("in.wav")
        .squeeze(1)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let examples = (0..2)
        .map(|i| Example {
            features: phone[i].concat(),
            f0: pitchf[i].clone(),
            f0_coarse: pitch[i].clone(),
            wav: wav[i].clone(),
            frames: 8,
        })
        .collect();
    let cfg = TrainConfig {
        batch: 2,
        frames: 8,
        ..TrainConfig::default()
    };
    Trainer::new(generator(r), discriminator(), examples, cfg, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `max |ours − rvc| / max |rvc|` (the absolute difference where the reference is all zero).
fn rel_diff(ours: &Tensor, rvc: &Tensor) -> f64 {
    assert_eq!(ours.dims(), rvc.dims(), "shapes differ");
    let (a, b) = (values(ours), values(rvc));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

fn check(label: &str, ours: &Tensor, rvc: &Tensor, tol: f64) -> f64 {
    let d = rel_diff(ours, rvc);
    println!("{label:40} rel diff {d:.3e} (tolerance {tol:.0e})");
    assert!(d <= tol, "{label}: relative difference {d:.3e} > {tol:.0e}");
    d
}

fn check_scalar(label: &str, ours: f32, rvc: f32, tol: f64) -> f64 {
    let d = ((ours - rvc).abs() / rvc.abs()) as f64;
    println!("{label:40} ours {ours:.6} rvc {rvc:.6} rel diff {d:.3e} (tolerance {tol:.0e})");
    assert!(
        d <= tol,
        "{label}: {ours} vs {rvc}, relative {d:.3e} > {tol:.0e}"
    );
    d
}

fn shapes(p: &Params) -> BTreeMap<String, Vec<usize>> {
    p.vars()
        .map(|(n, v)| (n.to_string(), v.dims().to_vec()))
        .collect()
}

fn grad_or_zeros(grads: &GradStore, p: &Params, name: &str) -> Tensor {
    let t = p.get(name).unwrap();
    grads
        .get(&t)
        .cloned()
        .unwrap_or_else(|| t.zeros_like().unwrap())
}

/// Every parameter name and shape is RVC's, so RVC checkpoints load and exports are RVC's.
#[test]
fn parameter_names_and_shapes_are_rvcs() {
    let r = reference();
    let g = Generator::new(&r.g_config(), Version::V2, 0, &Device::Cpu).unwrap();
    let rvc_g: BTreeMap<String, Vec<usize>> = r
        .g_state()
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .collect();
    let ours_g = shapes(&g.params);
    let only = |a: &BTreeMap<String, Vec<usize>>, b: &BTreeMap<String, Vec<usize>>| {
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(only(&ours_g, &rvc_g), Vec::<String>::new(), "G: ours only");
    assert_eq!(only(&rvc_g, &ours_g), Vec::<String>::new(), "G: RVC only");
    assert_eq!(ours_g, rvc_g, "G shapes");
    let d = Discriminator::new(0, 1, &Device::Cpu).unwrap();
    let (ours_d, rvc_d) = (shapes(&d.params), r.d_params());
    assert_eq!(only(&ours_d, &rvc_d), Vec::<String>::new(), "D: ours only");
    assert_eq!(only(&rvc_d, &ours_d), Vec::<String>::new(), "D: RVC only");
    assert_eq!(ours_d, rvc_d, "D shapes");
    println!(
        "G: {} tensors, D: {} tensors ({} scalars), names and shapes equal RVC's",
        ours_g.len(),
        ours_d.len(),
        d.params.count()
    );
}

/// The mel front end: filters, spectrogram, mel of a spectrogram, mel of audio.
/// All are one f32 matmul (2048-term DFT sums, 1025-term mel sums) from the input, and
/// torch's STFT is an FFT: differences of a few 1e-6 of the largest value are rounding.
/// The log mel is compared where it matters (the loss): log amplifies rounding in
/// near-zero bins only up to the 1e-5 clamp, so the absolute error stays ~1e-4 on values ~10.
#[test]
fn spectrogram_and_mel_match() {
    let r = reference();
    let mel = Mel::new(MelConfig::rvc(40_000), &Device::Cpu).unwrap();
    let basis = slaney_mel(40_000, 2048, 125);
    let basis = Tensor::from_vec(
        basis.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        (125, 1025),
        &Device::Cpu,
    )
    .unwrap();
    check(
        "mel filters (librosa slaney)",
        &basis,
        r.get("mel.basis"),
        1e-6,
    );
    let wav = r.get("in.wav").squeeze(1).unwrap();
    let spec = mel.spectrogram(&wav).unwrap();
    check(
        "spectrogram(in.wav) vs in.spec",
        &spec,
        r.get("in.spec"),
        1e-5,
    );
    let starts = noise(r).slice_starts;
    let slices: Vec<Tensor> = starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            r.get("in.spec")
                .narrow(0, i, 1)
                .unwrap()
                .narrow(2, s, 4)
                .unwrap()
        })
        .collect();
    let mel_real = mel.spec_to_mel(&Tensor::cat(&slices, 0).unwrap()).unwrap();
    check(
        "mel of real slice vs out.mel_real",
        &mel_real,
        r.get("out.mel_real"),
        1e-5,
    );
    let mel_fake = mel.mel(&r.get("out.y_hat").squeeze(1).unwrap()).unwrap();
    check(
        "mel(out.y_hat) vs out.mel_fake",
        &mel_fake,
        r.get("out.mel_fake"),
        1e-4,
    );
}

/// Generator forward and all five losses. The forward is ~40 f32 layers (16-layer WaveNet,
/// 4 flows, attention, 4 upsampling stages) summed in other orders than torch's kernels;
/// rounding reaches ~2e-6 of each tensor's scale (y_hat), ~4e-7 for the losses (means of
/// many terms). Tolerances of 2e-5 / 1e-5 leave 10x room for another BLAS and still catch
/// any real difference (a wrong padding, slope or noise scaling is off by 1e-2 or more).
/// The mel of y_hat keeps 1e-4: log amplifies rounding in near-silent bins.
#[test]
fn forward_and_losses_match() {
    let r = reference();
    let t = trainer(r);
    let (b, n) = (batch(r), noise(r));
    let out = t.generator.forward(&b, &n).unwrap();
    let mut worst = 0f64;
    for (name, ours) in [
        ("y_hat", &out.y_hat),
        ("z_p", &out.z_p),
        ("m_p", &out.m_p),
        ("logs_p", &out.logs_p),
        ("m_q", &out.m_q),
        ("logs_q", &out.logs_q),
    ] {
        worst = worst.max(check(name, ours, r.get(&format!("out.{name}")), 2e-5));
    }
    let l: LossTerms = t.losses(&b, &n).unwrap();
    check("mel_real", &l.mel_real, r.get("out.mel_real"), 1e-5);
    check("mel_fake", &l.mel_fake, r.get("out.mel_fake"), 1e-4);
    let s = |x: &Tensor| x.to_scalar::<f32>().unwrap();
    for (name, ours) in [
        ("loss_disc", &l.disc),
        ("loss_gen", &l.gen),
        ("loss_fm", &l.fm),
        ("loss_mel", &l.mel),
        ("loss_kl", &l.kl),
    ] {
        worst = worst.max(check_scalar(
            name,
            s(ours),
            r.scalar(&format!("out.{name}")),
            1e-5,
        ));
    }
    let all = s(&l.gen) + s(&l.fm) + s(&l.mel) + s(&l.kl);
    check_scalar("loss_gen_all", all, r.scalar("out.loss_gen_all"), 1e-5);
    println!("forward: worst rel diff {worst:.3e}");
}

/// Gradients of loss_gen_all for every generator parameter, and of loss_disc for the two
/// stored D parameters. Backward doubles the depth of f32 rounding (worst seen: 2.4e-5 of
/// a gradient's scale, in the decoder's first resblock); 2e-4 leaves ~10x room, while a
/// wrong term (a missing factor, a cut path) shows up as O(1e-2..1). D's gradients come
/// from one backward through fewer layers (worst 7e-6); 1e-4.
#[test]
fn gradients_match() {
    let r = reference();
    let t = trainer(r);
    let l = t.losses(&batch(r), &noise(r)).unwrap();
    let total = l.gen_all().unwrap();
    let grads = total.backward().unwrap();
    let mut diffs: Vec<(f64, String)> = Vec::new();
    let names: Vec<String> = t
        .generator
        .params
        .vars()
        .map(|(n, _)| n.to_string())
        .collect();
    let max_abs = |x: &Tensor| values(x).iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
    let mut zero_checked = 0;
    for name in &names {
        let ours = grad_or_zeros(&grads, &t.generator.params, name);
        let rvc = r.get(&format!("grad.{name}"));
        if let Some(layer) = name.strip_suffix(".conv_k.bias") {
            // The key bias adds the same q·b to every score of a query, which softmax
            // ignores: its gradient is exactly 0, and both sides hold only rounding
            // (RVC's is ~1e-7 of the key weight's). Check that it is that small.
            let scale = max_abs(r.get(&format!("grad.{layer}.conv_k.weight")));
            let (o, v) = (max_abs(&ours), max_abs(rvc));
            println!(
                "  {name:50} analytically 0: ours {o:.1e}, rvc {v:.1e} (key weight's {scale:.1e})"
            );
            assert!(o <= 1e-5 * scale && v <= 1e-5 * scale, "{name}: {o} / {v}");
            zero_checked += 1;
            continue;
        }
        diffs.push((rel_diff(&ours, rvc), name.clone()));
    }
    assert_eq!(
        diffs.len() + zero_checked,
        r.t.keys().filter(|k| k.starts_with("grad.")).count(),
        "every grad.* tensor compared"
    );
    diffs.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("G gradients, {} tensors, worst 8:", diffs.len());
    for (d, n) in diffs.iter().take(8) {
        println!("  {n:50} rel diff {d:.3e}");
    }
    let bad: Vec<_> = diffs.iter().filter(|(d, _)| *d > 2e-4).collect();
    assert!(bad.is_empty(), "G gradients off by more than 2e-4: {bad:?}");
    drop(grads);

    let dgrads = l.disc.backward().unwrap();
    for key in r.t.keys().filter(|k| k.starts_with("dgrad.")) {
        let name = &key["dgrad.".len()..];
        let ours = grad_or_zeros(&dgrads, &t.discriminator.params, name);
        check(&format!("D grad {name}"), &ours, r.get(key), 1e-4);
    }
}

/// One RVC step: AdamW on D, the generator losses against the updated D, AdamW on G.
/// Adam's first step moves every parameter by ~±lr whatever the gradient's size, so the
/// updates are compared in units of lr (a flipped sign would be 2). The G losses see a D
/// that moved by ~lr per weight; they agree as closely as the step-0 losses.
#[test]
fn one_step_matches() {
    let r = reference();
    let mut t = trainer(r);
    let w0 = t.generator.params.get("dec.conv_post.weight").unwrap();
    let b0 = t
        .discriminator
        .params
        .get("discriminators.3.conv_post.bias")
        .unwrap();
    let losses = t.step_on(&batch(r), &noise(r)).unwrap();
    check_scalar(
        "step1 loss_disc (before D's step)",
        losses.disc,
        r.scalar("out.loss_disc"),
        1e-5,
    );
    for (name, ours) in [
        ("loss_gen", losses.gen),
        ("loss_fm", losses.fm),
        ("loss_mel", losses.mel),
        ("loss_kl", losses.kl),
        ("loss_gen_all", losses.gen_all),
    ] {
        check_scalar(
            &format!("step1 {name}"),
            ours,
            r.scalar(&format!("step1.{name}")),
            1e-5,
        );
    }
    let w1 = t.generator.params.get("dec.conv_post.weight").unwrap();
    let b1 = t
        .discriminator
        .params
        .get("discriminators.3.conv_post.bias")
        .unwrap();
    for (label, before, after, key) in [
        (
            "G dec.conv_post.weight",
            &w0,
            &w1,
            "step1.g.dec.conv_post.weight",
        ),
        (
            "D discriminators.3.conv_post.bias",
            &b0,
            &b1,
            "step1.d.discriminators.3.conv_post.bias",
        ),
    ] {
        let rvc = r.get(key);
        check(&format!("step1 {label}"), after, rvc, 1e-5);
        let ours_step = (after - before).unwrap();
        let rvc_step = (rvc - before).unwrap();
        let d = values(&(ours_step - rvc_step).unwrap())
            .iter()
            .map(|x| x.abs() as f64 / LR)
            .fold(0.0, f64::max);
        println!("step1 {label:34} update diff {d:.3e} lr (tolerance 1e-2)");
        assert!(d <= 1e-2, "{label}: update differs by {d} lr");
    }
}
