//! The network's plumbing without the real weights: a tiny random checkpoint that torchfcpe
//! itself saved and ran (`testdata/tiny_random.pt`, `tiny_random_reference.json`, both from
//! `reference/make_reference.py`), random weights built here, and malformed inputs and files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use avatar_fcpe::{F0Options, Fcpe, FcpeConfig, FcpeError};
use candle_core::{Device, Tensor};
use serde_json::Value;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn read_s16(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(testdata(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
        .collect()
}

fn ok<T>(r: avatar_fcpe::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Load `testdata/{name}.pt`, compare with `{name}_reference.json`; returns the worst
/// activation difference.
fn check_tiny(name: &str, hidden: usize, layers: usize, max_diff: f32) -> Fcpe {
    let fcpe = ok(Fcpe::load(testdata(&format!("{name}.pt"))));
    let cfg = fcpe.config();
    assert_eq!(
        (cfg.mel.num_mels, cfg.mel.n_fft, cfg.mel.fmax),
        (16, 512, 7000.0)
    );
    assert_eq!(
        (
            cfg.model.hidden_dims,
            cfg.model.n_layers,
            cfg.model.out_dims
        ),
        (hidden, layers, 20)
    );
    assert_eq!(fcpe.cent_table().len(), 20);

    let text = std::fs::read_to_string(testdata(&format!("{name}_reference.json")))
        .unwrap_or_else(|e| panic!("{e}"));
    let r: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let audio = read_s16("glide_16k.s16");

    let mel = ok(fcpe.mel(&audio));
    assert_eq!(mel.len(), 301 * 16);
    for (m, (g, w)) in mel[100 * 16..101 * 16]
        .iter()
        .zip(floats(&r["mel_frame_100"]))
        .enumerate()
    {
        let (gl, wl) = (g.exp(), w.exp());
        assert!((gl - wl).abs() < 1e-6 + 1e-4 * wl, "mel {m}: {g} vs {w}");
    }

    let act = ok(fcpe.activations(&audio, 16000));
    assert_eq!(act.len(), 301 * 20);
    let mut worst = 0f32;
    let rows = r["activations_first_40"]
        .as_array()
        .unwrap_or_else(|| panic!("activations_first_40"));
    for (i, row) in rows.iter().enumerate() {
        for (g, w) in act[i * 20..(i + 1) * 20].iter().zip(floats(row)) {
            worst = worst.max((g - w).abs());
        }
    }
    for (g, w) in act[200 * 20..201 * 20]
        .iter()
        .zip(floats(&r["activations_frame_200"]))
    {
        worst = worst.max((g - w).abs());
    }
    eprintln!("{name}: worst |activation difference| {worst:.2e}");
    assert!(worst < max_diff, "{name}: activations differ by {worst}");

    let theirs = floats(&r["f0"]);
    let ours = ok(fcpe.f0_with(&audio, 16000, &F0Options::raw(0.006)));
    assert_eq!(ours.len(), theirs.len());
    let close = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| (*a - *b).abs() <= 1e-3 * b.max(1.0))
        .count();
    // A random net has near-tied peaks; allow one frame in a hundred to pick the other one.
    assert!(
        close * 100 >= ours.len() * 99,
        "{name}: {close} of {} frames agree",
        ours.len()
    );
    fcpe
}

#[test]
fn tiny_checkpoint_matches_torchfcpe_and_its_config_drives_the_sizes() {
    // Weights 3x torch's init make this net a strong amplifier: float32 rounding in the mel and
    // matmuls grows to ~1e-4 here (silent frames, far from the tone, differ by ~2e-6). A wrong
    // layer or mel setting moves activations by 1e-1.
    check_tiny("tiny_random", 8, 2, 5e-4);
}

#[test]
fn performer_attention_layers_match_torchfcpe() {
    // tiny_attention_nonorm.pt is also an archive the zip crate's offset detection (and so
    // candle's pickle::read_all) rejects; the loader opens it at offset 0.
    for name in ["tiny_attention", "tiny_attention_nonorm"] {
        let fcpe = check_tiny(name, 16, 1, 5e-4);
        // Attention sees every frame: a small chunk size must not change anything.
        let audio = read_s16("glide_16k.s16");
        let whole = ok(fcpe.activations(&audio, 16000));
        let chunked = ok(fcpe.with_chunk_frames(50).activations(&audio, 16000));
        assert_eq!(whole, chunked);
    }
}

/// A deterministic generator for weights (no rand dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
    }

    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next() * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
    }
}

const MELS: usize = 128;
const HIDDEN: usize = 8;
const OUT: usize = 24;
const LAYERS: usize = 2;

fn tiny_config() -> FcpeConfig {
    let mut cfg = FcpeConfig::default();
    cfg.model.hidden_dims = HIDDEN;
    cfg.model.out_dims = OUT;
    cfg.model.n_layers = LAYERS;
    cfg
}

fn random_weights() -> HashMap<String, Tensor> {
    let mut g = Lcg(7);
    let mut w = HashMap::new();
    let mut put = |name: &str, shape: &[usize], scale: f32| {
        w.insert(name.to_string(), g.tensor(shape, scale));
    };
    put("input_stack.0.weight", &[HIDDEN, MELS, 3], 0.1);
    put("input_stack.0.bias", &[HIDDEN], 0.1);
    put("input_stack.1.weight", &[HIDDEN], 1.0);
    put("input_stack.1.bias", &[HIDDEN], 0.1);
    put("input_stack.3.weight", &[HIDDEN, HIDDEN, 3], 0.3);
    put("input_stack.3.bias", &[HIDDEN], 0.1);
    for i in 0..LAYERS {
        let p = format!("net.encoder_layers.{i}.conformer.net");
        put(&format!("{p}.0.weight"), &[HIDDEN], 1.0);
        put(&format!("{p}.0.bias"), &[HIDDEN], 0.1);
        put(&format!("{p}.2.weight"), &[4 * HIDDEN, HIDDEN, 1], 0.5);
        put(&format!("{p}.2.bias"), &[4 * HIDDEN], 0.1);
        put(&format!("{p}.4.conv.weight"), &[2 * HIDDEN, 1, 31], 0.3);
        put(&format!("{p}.4.conv.bias"), &[2 * HIDDEN], 0.1);
        put(&format!("{p}.6.weight"), &[HIDDEN, 2 * HIDDEN, 1], 0.5);
        put(&format!("{p}.6.bias"), &[HIDDEN], 0.1);
    }
    put("norm.weight", &[HIDDEN], 1.0);
    put("norm.bias", &[HIDDEN], 0.1);
    put("output_proj.weight_g", &[OUT, 1], 2.0);
    put("output_proj.weight_v", &[OUT, HIDDEN], 1.0);
    put("output_proj.bias", &[OUT], 0.5);
    w
}

fn tone(rate: u32, seconds: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.4 * (2.0 * std::f32::consts::PI * 180.0 * t).sin() * (1.0 + 0.5 * (3.0 * t).sin())
        })
        .collect()
}

#[test]
fn shapes_and_ranges_from_random_weights() {
    let fcpe = ok(Fcpe::from_tensors(&random_weights(), tiny_config()));
    let audio = tone(16000, 1.234);
    let act = ok(fcpe.activations(&audio, 16000));
    let frames = audio.len() / 160 + 1;
    assert_eq!(act.len(), frames * OUT);
    assert!(act.iter().all(|v| *v > 0.0 && *v < 1.0));
    let f0 = ok(fcpe.f0(&audio, 16000));
    assert_eq!(f0.len(), frames);
    assert!(f0.iter().all(|f| *f == 0.0 || (50.0..=1100.0).contains(f)));
    // The raw output is what the cent table spans: 32.7 .. 1975.5 Hz.
    let raw = ok(fcpe.f0_with(&audio, 16000, &F0Options::raw(0.0)));
    assert!(raw.iter().all(|f| *f >= 32.0 && *f <= 1976.0), "{raw:?}");
    // A threshold of 1 leaves nothing voiced.
    let none = ok(fcpe.f0_with(&audio, 16000, &F0Options::raw(1.0)));
    assert!(none.iter().all(|f| *f == 0.0));
}

#[test]
fn chunked_runs_equal_one_pass() {
    let fcpe = ok(Fcpe::from_tensors(&random_weights(), tiny_config()));
    let audio = tone(16000, 2.0);
    let whole = ok(fcpe.activations(&audio, 16000));
    let direct = ok(fcpe.activations_from_mel(&ok(fcpe.mel(&audio))));
    for chunk in [1usize, 7, 64, 150] {
        let fcpe =
            ok(Fcpe::from_tensors(&random_weights(), tiny_config())).with_chunk_frames(chunk);
        let got = ok(fcpe.activations(&audio, 16000));
        assert_eq!(got.len(), whole.len());
        let d = got
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "chunk {chunk}: {d}");
    }
    let d = direct
        .iter()
        .zip(&whole)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "{d}");
}

#[test]
fn other_rates_are_resampled_to_100_frames_per_second() {
    let fcpe = ok(Fcpe::from_tensors(&random_weights(), tiny_config()));
    for rate in [8000u32, 22050, 44100, 48000] {
        let audio = tone(rate, 1.5);
        let f0 = ok(fcpe.f0(&audio, rate));
        let n16 = (audio.len() as u64 * 16000 / rate as u64) as usize;
        assert_eq!(f0.len(), n16 / 160 + 1, "rate {rate}");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let fcpe = ok(Fcpe::from_tensors(&random_weights(), tiny_config()));
    assert!(matches!(fcpe.f0(&[0.0; 100], 0), Err(FcpeError::Input(_))));
    let mut audio = tone(16000, 0.1);
    audio[5] = f32::NAN;
    assert!(matches!(fcpe.f0(&audio, 16000), Err(FcpeError::Input(_))));
    assert!(ok(fcpe.f0(&[], 16000)).is_empty());
    // Shorter than a window: still len / 160 + 1 frames (zero padding, as torchfcpe).
    assert_eq!(ok(fcpe.f0(&[0.1; 10], 16000)).len(), 1);
    assert_eq!(ok(fcpe.f0(&[0.1; 400], 16000)).len(), 3);
}

fn format_error(tensors: &HashMap<String, Tensor>, cfg: FcpeConfig) -> String {
    match Fcpe::from_tensors(tensors, cfg) {
        Ok(_) => panic!("accepted a malformed state dict"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_or_misshapen_tensors_are_named() {
    let mut w = random_weights();
    w.remove("net.encoder_layers.1.conformer.net.6.bias");
    let e = format_error(&w, tiny_config());
    assert!(
        e.contains("net.encoder_layers.1.conformer.net.6.bias"),
        "{e}"
    );

    let mut w = random_weights();
    w.insert(
        "net.encoder_layers.0.conformer.net.4.conv.weight".into(),
        Lcg(1).tensor(&[2 * HIDDEN, 1, 5], 1.0),
    );
    let e = format_error(&w, tiny_config());
    assert!(e.contains("conv.weight") && e.contains("[16, 1, 5]"), "{e}");

    let mut cfg = tiny_config();
    cfg.model.n_layers = 3;
    let e = format_error(&random_weights(), cfg);
    assert!(e.contains("2 encoder layers"), "{e}");

    // Attention weights in a conv-only config, and a config with attention but no weights.
    let mut w = random_weights();
    w.insert(
        "net.encoder_layers.0.attn.to_q.weight".into(),
        Lcg(1).tensor(&[4, 4], 1.0),
    );
    let e = format_error(&w, tiny_config());
    assert!(e.contains("conv_only"), "{e}");

    let mut cfg = tiny_config();
    cfg.model.conv_only = false;
    let e = format_error(&random_weights(), cfg);
    assert!(e.contains("net.encoder_layers.0.attn.to_q.weight"), "{e}");

    // Other model types and mel types are refused as unsupported, not misread.
    let mut cfg = tiny_config();
    cfg.model.kind = "CFNaiveMelPEONNX".into();
    assert!(matches!(
        Fcpe::from_tensors(&random_weights(), cfg),
        Err(FcpeError::Unsupported(_))
    ));
    let mut cfg = tiny_config();
    cfg.mel.kind = Some("stft".into());
    assert!(matches!(
        Fcpe::from_tensors(&random_weights(), cfg),
        Err(FcpeError::Unsupported(_))
    ));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{e}"));
    p
}

fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            z.start_file(*name, opts).unwrap_or_else(|e| panic!("{e}"));
            z.write_all(data).unwrap_or_else(|e| panic!("{e}"));
        }
        z.finish().unwrap_or_else(|e| panic!("{e}"));
    }
    buf.into_inner()
}

#[test]
fn malformed_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let err = |p: PathBuf| match Fcpe::load(&p) {
        Ok(_) => panic!("{} loaded", p.display()),
        Err(e) => e.to_string(),
    };

    let e = err(dir.path().join("absent.pt"));
    assert!(e.contains("absent.pt"), "{e}");

    let e = err(write(dir.path(), "garbage.pt", b"this is not a checkpoint"));
    assert!(e.contains("not a zip"), "{e}");

    let e = err(write(dir.path(), "empty.pt", b""));
    assert!(e.contains("empty.pt"), "{e}");

    let e = err(write(
        dir.path(),
        "nopkl.pt",
        &zip_with(&[("a/other.txt", b"hi")]),
    ));
    assert!(e.contains("no data.pkl"), "{e}");

    // Protocol 2 pickle of the int 7: a checkpoint must be a dict.
    let e = err(write(
        dir.path(),
        "int.pt",
        &zip_with(&[("a/data.pkl", b"\x80\x02K\x07.")]),
    ));
    assert!(e.contains("not a dict"), "{e}");

    // An empty dict: no tensors.
    let e = err(write(
        dir.path(),
        "empty_dict.pt",
        &zip_with(&[("a/data.pkl", b"\x80\x02}q\x00.")]),
    ));
    assert!(e.contains("no tensors"), "{e}");

    // A pickle cut short.
    let e = err(write(
        dir.path(),
        "cut.pt",
        &zip_with(&[("a/data.pkl", b"\x80\x02}q\x00(X\x05\x00\x00\x00mod")]),
    ));
    assert!(e.contains("data.pkl"), "{e}");

    // The real tiny checkpoint cut in half, and with one tensor's storage dropped.
    let bytes = std::fs::read(testdata("tiny_random.pt")).unwrap_or_else(|e| panic!("{e}"));
    let e = err(write(dir.path(), "half.pt", &bytes[..bytes.len() / 2]));
    assert!(e.contains("half.pt"), "{e}");

    let mut src =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..src.len() {
        let mut f = src.by_index(i).unwrap_or_else(|e| panic!("{e}"));
        let name = f.name().unwrap_or_else(|e| panic!("{e}")).into_owned();
        if name.ends_with("/data/3") {
            continue;
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap_or_else(|e| panic!("{e}"));
        kept.push((name, data));
    }
    let entries: Vec<(&str, &[u8])> = kept
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let e = err(write(dir.path(), "hole.pt", &zip_with(&entries)));
    assert!(e.contains("hole.pt"), "{e}");
}

#[test]
fn the_model_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Fcpe>();
}
