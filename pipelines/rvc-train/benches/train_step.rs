//! `cargo bench -p avatar-rvc-train --features testing --bench train_step -- [options]`:
//! training steps per second on the CPU for RVC v2 40k at its real sizes (G ≈ 36.5 M,
//! D ≈ 71.4 M parameters, random weights, synthetic voiced audio), then RVC's PyTorch
//! step on the same batch shape and thread count (bench/torch_train_step.py; skipped when
//! Python or torch is missing), and the ratio PyTorch time / candle time (> 1: candle is
//! faster; the PyTorch run goes first). A last candle pass re-runs the step phase by
//! phase, to show where the time and memory go.
//!
//! Options (all optional): `--steps N` timed steps (2), `--warmup W` untimed first steps
//! (1), `--batch B` (2: at 4, RVC's CPU batch, four steps need more than 24 GB while the
//! trainer's resident memory grows each step), `--frames T` frames per utterance (370 = RVC's 3.7 s slices),
//! `--threads K` (`RAYON_NUM_THREADS`, else every core), `--breakdown N` phase-timed steps
//! (1; 0 skips), `--detach-grads` (the breakdown pass hands AdamW detached gradients, to
//! show what graph-carrying gradients cost in memory), `--no-torch`. `AVATAR_BENCH_PYTHON`
//! picks the Python for the baseline (default `~/.cache/avatar/bench-venv/bin/python`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use avatar_rvc::{SynthConfig, Version};
use avatar_rvc_train::adamw::AdamW;
use avatar_rvc_train::discriminator::Discriminator;
use avatar_rvc_train::generator::Generator;
use avatar_rvc_train::loss::discriminator_loss;
use avatar_rvc_train::ops::scalar;
use avatar_rvc_train::params::Params;
use avatar_rvc_train::train::tests::synthetic_examples;
use avatar_rvc_train::{TrainConfig, Trainer};
use candle_core::backprop::GradStore;
use candle_core::Device;

type BenchResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// RVC's v2 40k model list (configs/v2/40k.json "model", constructor order).
const CONFIG_40K_V2: &str = r#"[1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3,7,11],
    [[1,3,5],[1,3,5],[1,3,5]], [10,10,2,2], 512, [16,16,4,4], 109, 256, 40000]"#;

struct Opts {
    steps: usize,
    warmup: usize,
    batch: usize,
    frames: usize,
    threads: usize,
    breakdown: usize,
    /// Breakdown pass only: hand AdamW detached gradients (see `tracked_grads`).
    detach_grads: bool,
    torch: bool,
}

fn parse_opts() -> BenchResult<Opts> {
    let env_threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = Opts {
        steps: 2,
        warmup: 1,
        batch: 2,
        frames: 370,
        threads: env_threads.unwrap_or(cores),
        breakdown: 1,
        detach_grads: false,
        torch: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> BenchResult<usize> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            Ok(v.parse::<usize>().map_err(|e| format!("{name} {v}: {e}"))?)
        };
        match a.as_str() {
            "--steps" => o.steps = num("--steps")?.max(1),
            "--warmup" => o.warmup = num("--warmup")?,
            "--batch" => o.batch = num("--batch")?.max(1),
            "--frames" => o.frames = num("--frames")?,
            "--threads" => o.threads = num("--threads")?.max(1),
            "--breakdown" => o.breakdown = num("--breakdown")?,
            "--no-torch" => o.torch = false,
            "--detach-grads" => o.detach_grads = true,
            // cargo bench passes `--bench` to harness-less benches.
            "--bench" => {}
            other => {
                return Err(format!("unknown option {other} (see the file's doc comment)").into())
            }
        }
    }
    Ok(o)
}

/// A memory line of /proc/self/status (`VmHWM`: peak resident, `VmRSS`: now), in MiB.
fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// CPU seconds (user + system, all threads) this process has used; on a shared machine
/// this moves less than wall time when other jobs compete for the cores.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(rest) = stat.rsplit(')').next() else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime, stime; USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AVATAR_BENCH_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/avatar/bench-venv/bin/python")
}

/// Seconds spent in each part of one step (`Trainer::step_on`, re-done with timers).
#[derive(Default, Clone, Copy)]
struct Phases {
    g_forward: f64,
    d_forward: f64,
    d_backward: f64,
    d_adamw: f64,
    g_losses: f64,
    g_backward: f64,
    g_adamw: f64,
    /// Resident MiB after each phase (same order), i.e. what the graph holds by then.
    rss: [f64; 7],
}

impl Phases {
    fn total(&self) -> f64 {
        self.g_forward
            + self.d_forward
            + self.d_backward
            + self.d_adamw
            + self.g_losses
            + self.g_backward
            + self.g_adamw
    }

    fn add(&mut self, o: &Phases) {
        self.g_forward += o.g_forward;
        self.d_forward += o.d_forward;
        self.d_backward += o.d_backward;
        self.d_adamw += o.d_adamw;
        self.g_losses += o.g_losses;
        self.g_backward += o.g_backward;
        self.g_adamw += o.g_adamw;
    }
}

fn lap(t: &mut Instant, rss: &mut [f64; 7], i: usize) -> f64 {
    let s = t.elapsed().as_secs_f64();
    rss[i] = rss_mib();
    *t = Instant::now();
    s
}

/// Of `params`' gradients, how many still carry an autograd graph. Such a gradient keeps
/// the step's tensors alive for as long as something holds it (AdamW's moments are
/// computed from it), so resident memory then grows from step to step.
fn tracked_grads(params: &Params, grads: &GradStore) -> (Vec<String>, usize) {
    let mut tracked = Vec::new();
    let mut n = 0;
    for (name, v) in params.vars() {
        if let Some(g) = grads.get(v.as_tensor()) {
            n += 1;
            if g.track_op() {
                tracked.push(name.to_string());
            }
        }
    }
    (tracked, n)
}

/// Drop the graphs of `params`' gradients, in place.
fn detach_grads(params: &Params, grads: &mut GradStore) {
    for (_, v) in params.vars() {
        if let Some(g) = grads.remove(v.as_tensor()) {
            grads.insert(v.as_tensor(), g.detach());
        }
    }
}

/// The same computation as `Trainer::step_on` (D step, then G step against the updated
/// D), with a clock read between phases. Candle runs eagerly on the CPU, so each phase's
/// time is its own.
fn timed_step(
    tr: &mut Trainer,
    detach: bool,
    opt_g: &mut AdamW,
    opt_d: &mut AdamW,
    step: u64,
) -> BenchResult<Phases> {
    let batch = tr.batch(step)?;
    let noise = tr.noise(step)?;
    let lr = tr.learning_rate();
    let mut p = Phases::default();
    let mut rss = [0.0; 7];
    let mut t = Instant::now();
    let out = tr.generator.forward(&batch, &noise)?;
    p.g_forward = lap(&mut t, &mut rss, 0);
    let (y, spec) = batch.slices(&tr.generator.cfg, &out.slice_starts)?;
    let d_real = tr.discriminator.forward(&y, false)?;
    let d_fake = tr.discriminator.forward(&out.y_hat.detach(), false)?;
    let disc = discriminator_loss(&d_real, &d_fake)?;
    p.d_forward = lap(&mut t, &mut rss, 1);
    let mut grads = disc.backward()?;
    p.d_backward = lap(&mut t, &mut rss, 2);
    let (d_tracked, d_n) = tracked_grads(&tr.discriminator.params, &grads);
    if detach {
        detach_grads(&tr.discriminator.params, &mut grads);
    }
    opt_d.step(&tr.discriminator.params, &grads, lr)?;
    drop(grads);
    p.d_adamw = lap(&mut t, &mut rss, 3);
    let terms = tr.generator_terms(&out, &y, &spec, disc)?;
    let total = terms.gen_all()?;
    p.g_losses = lap(&mut t, &mut rss, 4);
    let mut grads = total.backward()?;
    p.g_backward = lap(&mut t, &mut rss, 5);
    let (g_tracked, g_n) = tracked_grads(&tr.generator.params, &grads);
    if detach {
        detach_grads(&tr.generator.params, &mut grads);
    }
    opt_g.step(&tr.generator.params, &grads, lr)?;
    p.g_adamw = lap(&mut t, &mut rss, 6);
    p.rss = rss;
    let (d, g) = (scalar(&terms.disc)?, scalar(&total)?);
    println!(
        "  breakdown step: {:.2} s (loss_disc {d:.3}, loss_gen_all {g:.3}); RSS after each phase {:?} MiB",
        p.total(),
        rss.map(|m| m.round())
    );
    println!(
        "  gradients that still carry a graph: D {} of {d_n}, G {} of {g_n}{} (e.g. {:?})",
        d_tracked.len(),
        g_tracked.len(),
        if detach {
            ", detached before AdamW"
        } else {
            ""
        },
        g_tracked
            .iter()
            .chain(&d_tracked)
            .take(4)
            .collect::<Vec<_>>()
    );
    Ok(p)
}

/// RVC's PyTorch step on the same shapes; `None` (with the reason printed) when skipped.
fn torch_baseline(o: &Opts) -> Option<serde_json::Value> {
    let py = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/torch_train_step.py");
    let run = Command::new(&py)
        .arg(&script)
        .args(["--steps", &o.steps.to_string()])
        .args(["--warmup", &o.warmup.to_string()])
        .args(["--batch", &o.batch.to_string()])
        .args(["--frames", &o.frames.to_string()])
        .args(["--threads", &o.threads.to_string()])
        .arg("--json")
        .output();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            println!(
                "PyTorch: skipped ({} not runnable: {e}; set AVATAR_BENCH_PYTHON to a Python with torch)",
                py.display()
            );
            return None;
        }
    };
    let err = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        let why = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or_else(|| format!("exited with {}", run.status), str::to_string);
        println!("PyTorch: skipped ({}: {why})", py.display());
        return None;
    }
    for l in err.lines() {
        println!("  {l}");
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    match line.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(v)) => Some(v),
        _ => {
            println!("PyTorch: skipped (the script printed no JSON result)");
            None
        }
    }
}

fn main() -> BenchResult {
    let o = parse_opts()?;
    // Before any candle op: candle's CPU kernels size their rayon pool from these.
    std::env::set_var("RAYON_NUM_THREADS", o.threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", o.threads.to_string());
    // PyTorch first: the candle trainer holds its memory until the end, and both at
    // once may not fit.
    let torch = if o.torch {
        println!("PyTorch RVC (bench/torch_train_step.py), same batch, frames and threads:");
        torch_baseline(&o)
    } else {
        println!("PyTorch: skipped (--no-torch)");
        None
    };
    let dev = Device::Cpu;
    let list: Vec<serde_json::Value> = serde_json::from_str(CONFIG_40K_V2)?;
    let cfg = SynthConfig::from_list(&list)?;
    let t = Instant::now();
    let g = Generator::new(&cfg, Version::V2, 1, &dev)?;
    let d = Discriminator::new(1, 1, &dev)?;
    let (n_g, n_d) = (g.params.count(), d.params.count());
    println!(
        "RVC v2 40k, real sizes: G {n_g} params ({:.1} M), D {n_d} params ({:.1} M), built in {:.1} s",
        n_g as f64 / 1e6,
        n_d as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    println!(
        "batch {} x {} frames, {} threads, load average {}",
        o.batch,
        o.frames,
        o.threads,
        load_average()
    );
    let config = TrainConfig {
        batch: o.batch,
        frames: o.frames,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(g, d, synthetic_examples(o.batch, o.frames), config, &dev)?;

    for i in 0..o.warmup {
        let t = Instant::now();
        let l = tr.train_step()?;
        println!(
            "candle warmup {i}: {:.2} s (loss_disc {:.3}, loss_gen_all {:.3}); RSS {:.0} MiB, peak {:.0} MiB",
            t.elapsed().as_secs_f64(),
            l.disc,
            l.gen_all,
            rss_mib(),
            peak_rss_mib()
        );
    }
    let (mut wall, mut cpu) = (0.0, 0.0);
    for i in 0..o.steps {
        let (t, c) = (Instant::now(), cpu_seconds());
        let l = tr.train_step()?;
        let (w, c) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        wall += w;
        cpu += c;
        println!(
            "candle step {i}: {w:.2} s wall, {c:.1} s CPU (loss_disc {:.3}, gen {:.3}, fm {:.3}, mel {:.3}, kl {:.3}, gen_all {:.3}); RSS {:.0} MiB, peak {:.0} MiB",
            l.disc, l.gen, l.fm, l.mel, l.kl, l.gen_all, rss_mib(), peak_rss_mib()
        );
    }
    let candle_s = wall / o.steps as f64;
    let candle_cpu = cpu / o.steps as f64;
    let candle_rss = peak_rss_mib();
    println!(
        "candle: {candle_s:.2} s/step, {:.4} steps/s, {:.1} CPU-s/step, peak RSS {candle_rss:.0} MiB, load average {}",
        1.0 / candle_s,
        cpu / o.steps as f64,
        load_average()
    );

    if o.breakdown > 0 {
        println!("candle step phase by phase ({} steps):", o.breakdown);
        let (mut opt_g, mut opt_d) = (
            AdamW::new(tr.config.optimizer),
            AdamW::new(tr.config.optimizer),
        );
        let mut sum = Phases::default();
        for k in 0..o.breakdown {
            let step = tr.step + k as u64;
            let p = timed_step(&mut tr, o.detach_grads, &mut opt_g, &mut opt_d, step)?;
            sum.add(&p);
        }
        let n = o.breakdown as f64;
        let total = sum.total();
        let row = |name: &str, s: f64| {
            println!(
                "  {name:<44} {:7.2} s/step  {:5.1} %",
                s / n,
                100.0 * s / total
            )
        };
        row("G forward (encoders, flow, decoder)", sum.g_forward);
        row("D forward x2 (real, fake.detach) + loss", sum.d_forward);
        row("D backward", sum.d_backward);
        row("D AdamW", sum.d_adamw);
        row("D forward x2 (frozen) + mel/KL/fm/adv losses", sum.g_losses);
        row("G backward (through frozen D)", sum.g_backward);
        row("G AdamW", sum.g_adamw);
        row("total", total);
    }

    let Some(v) = torch else {
        return Ok(());
    };
    let torch_s = v["s_per_step"].as_f64().unwrap_or(f64::NAN);
    println!(
        "PyTorch {}: {torch_s:.2} s/step, {:.4} steps/s, {:.1} CPU-s/step, peak RSS {:.0} MiB (G {}, D {} params)",
        v["torch"].as_str().unwrap_or("?"),
        1.0 / torch_s,
        v["cpu_s_per_step"].as_f64().unwrap_or(f64::NAN),
        v["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
        v["g_params"],
        v["d_params"]
    );
    // On a shared machine CPU-seconds move less with the load than wall time.
    println!(
        "by CPU-seconds: candle {candle_cpu:.1}, PyTorch {:.1} per step, ratio {:.3}",
        v["cpu_s_per_step"].as_f64().unwrap_or(f64::NAN),
        v["cpu_s_per_step"].as_f64().unwrap_or(f64::NAN) / candle_cpu
    );
    println!(
        "candle {candle_s:.2} s/step, PyTorch {torch_s:.2} s/step, ratio (PyTorch time / candle time) {:.3} (batch {} x {} frames, {} threads, load average {})",
        torch_s / candle_s,
        o.batch,
        o.frames,
        o.threads,
        load_average()
    );
    Ok(())
}
