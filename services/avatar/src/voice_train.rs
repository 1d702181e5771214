//! `avatar train voice`: the person's clips → RVC training examples (content features and
//! pitch) → RVC v2 training in candle (avatar-rvc-train) → the voice model `avatar speak`
//! uses (DATA/models/AVATAR/voice/model.pth + model.index), also as safetensors + JSON.
//!
//! A full-size RVC step costs ~25 CPU-seconds here (batch 4), so real training wants a GPU
//! (`--features cuda`); on a CPU it suits tests (`--size tiny`) and short fine-tunes
//! from RVC's pretrained base.

use crate::commands::Ctx;
use anyhow::{bail, Context, Result};
use avatar_content::{ContentEncoder, RvcVersion};
use avatar_runtime::{BlobStore, EventLog};
use avatar_rvc::{SynthConfig, Version};
use avatar_rvc_train::discriminator::Discriminator;
use avatar_rvc_train::export::{self, VoiceCard};
use avatar_rvc_train::generator::Generator;
use avatar_rvc_train::train::has_checkpoint;
use avatar_rvc_train::{Example, Losses, TrainConfig, Trainer};
use avatar_schemas::{Envelope, Payload, TrainResult};
use avatar_voice::conversion::PitchTracker;
use avatar_voice::training_data::{prepare, SegmentOptions, SpeechAmount, TrainingExample};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Options of `avatar train voice`.
#[derive(clap::Args, Debug, Clone)]
pub struct VoiceTrainArgs {
    /// Train until this many steps in all (a resumed run continues up to it).
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Utterances per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// 10 ms frames per training utterance (RVC trains on whole 3.7 s slices: 370).
    #[arg(long, default_value_t = 370)]
    pub frames: usize,
    /// RVC generation: v2 (768-dim HuBERT features, RVC's default) or v1 (256-dim).
    #[arg(long, default_value = "v2", value_parser = ["v1", "v2"])]
    pub version: String,
    /// `standard`: RVC's 40 kHz model (36.5 M parameters; GPU recommended). `tiny`: a model
    /// small enough to train in seconds on a CPU, for trying the pipeline; not a usable voice.
    #[arg(long, default_value = "standard", value_parser = ["standard", "tiny"])]
    pub size: String,
    /// RVC's pretrained generator to start from (default: f0G40k.pth in MODELS/rvc/ when present;
    /// v1 models use pretrained/, v2 pretrained_v2/ in RVC's layout).
    #[arg(long)]
    pub pretrained_g: Option<PathBuf>,
    /// RVC's pretrained discriminator (default: f0D40k.pth beside the generator).
    #[arg(long)]
    pub pretrained_d: Option<PathBuf>,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Save a checkpoint (and render a sample wav) every N steps.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: u64,
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Ignore an existing checkpoint and start over.
    #[arg(long)]
    pub fresh: bool,
    /// Which clips are the person's (as `avatar voice clips`).
    #[arg(long, default_value_t = avatar_voice::speakers::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    #[arg(long)]
    pub json: bool,
}

/// What a run did (`--json`).
#[derive(Debug, Serialize)]
pub struct VoiceTrainReport {
    pub steps: u64,
    pub resumed_from: u64,
    pub clips: usize,
    pub examples: usize,
    pub speech_minutes: f64,
    pub base: String,
    pub first_losses: Option<Losses>,
    pub final_losses: Option<Losses>,
    /// Mean mel loss over the run's first and last (up to) 10 steps: the trend.
    pub mel_start: Option<f32>,
    pub mel_end: Option<f32>,
    pub seconds_per_step: f64,
    pub model: String,
    pub index: Option<String>,
    pub samples: Vec<String>,
    pub interrupted: bool,
}

pub fn voice_dir(data: &Path, avatar: &str) -> PathBuf {
    data.join("models").join(avatar).join("voice")
}

fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}

/// RVC's standard 40 kHz model, or the tiny one (same layers, a few channels).
fn synth_config(size: &str) -> Result<SynthConfig> {
    let list = match size {
        "tiny" => {
            r#"[1025, 4, 8, 8, 16, 2, 1, 3, 0, "1", [3], [[1,3,5]], [10,10,2,2], 32, [16,16,4,4], 1, 8, 40000]"#
        }
        _ => {
            r#"[1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3,7,11], [[1,3,5],[1,3,5],[1,3,5]], [10,10,2,2], 512, [16,16,4,4], 109, 256, 40000]"#
        }
    };
    let list: Vec<serde_json::Value> = serde_json::from_str(list)?;
    Ok(SynthConfig::from_list(&list)?)
}

/// The pretrained base files to start from, when given or installed.
fn pretrained(args: &VoiceTrainArgs) -> (Option<PathBuf>, Option<PathBuf>) {
    if args.size != "standard" {
        return (None, None);
    }
    let sub = if args.version == "v1" {
        "pretrained"
    } else {
        "pretrained_v2"
    };
    let dir = avatar_llm::load::models_root().join("rvc").join(sub);
    let g = args
        .pretrained_g
        .clone()
        .or_else(|| Some(dir.join("f0G40k.pth")).filter(|p| p.is_file()));
    let d = args.pretrained_d.clone().or_else(|| {
        g.as_ref()
            .and_then(|g| g.parent().map(|p| p.join("f0D40k.pth")))
            .filter(|p| p.is_file())
    });
    (g, d)
}

fn bar(len: u64, quiet: bool, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The person's clips as training examples, with a note per clip that could not be used.
fn examples(
    ctx: &Ctx,
    app: &crate::app::App,
    clips: &[avatar_schemas::VoiceClip],
    version: RvcVersion,
) -> Result<Vec<TrainingExample>> {
    let (content, _) = ContentEncoder::load_default().context(
        "voice training needs the HuBERT content encoder (hubert_base.pt in ~/.cache/avatar/models/hubert/; see `avatar speak --help`)",
    )?;
    let pitch = PitchTracker::best_available();
    let opts = SegmentOptions::default();
    let progress = bar(
        clips.len() as u64,
        ctx.quiet,
        "  features [{bar:30}] {pos}/{len} clips {msg} (ETA {eta})",
    );
    progress.set_message(format!("pitch: {}", pitch.name()));
    let mut out = Vec::new();
    for c in clips {
        let got = app
            .blobs
            .get(&c.audio)
            .with_context(|| format!("clip {} has no audio", c.id))
            .and_then(|bytes| Ok(avatar_voice::decode("clip.wav", &bytes)?))
            .and_then(|audio| {
                Ok(prepare(
                    &audio.samples,
                    audio.sample_rate,
                    &c.id,
                    40_000,
                    version,
                    &content,
                    &pitch,
                    &opts,
                )?)
            });
        match got {
            Ok(e) => out.extend(e),
            Err(e) => progress.println(format!("  skipped clip {}: {e:#}", c.id)),
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(out)
}

fn dataset_hash(clips: &[avatar_schemas::VoiceClip], args: &VoiceTrainArgs) -> String {
    let mut ids: Vec<&str> = clips.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    let mut h = sha2::Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    h.update(format!("{} {} {}", args.version, args.size, args.frames).as_bytes());
    hex::encode(h.finalize())
}

/// Render the first example through the model being trained (the user listens to progress).
fn render_sample(trainer: &Trainer, path: &Path) -> Result<()> {
    let ck = export::inference_checkpoint(&trainer.generator)?;
    let synth = avatar_rvc::Synthesizer::new(&ck)?;
    let e = trainer
        .examples()
        .first()
        .context("no example to render a sample from")?;
    let audio = synth.infer(&avatar_rvc::SynthInput {
        features: &e.features,
        pitch: Some(&e.f0_coarse),
        f0: Some(&e.f0),
        speaker: 0,
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        path,
        avatar_voice::wav::encode_wav(&audio, synth.sample_rate()),
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn rel(data: &Path, p: &Path) -> String {
    p.strip_prefix(data)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

pub fn train_voice(ctx: &Ctx, args: &VoiceTrainArgs) -> Result<VoiceTrainReport> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let (clips, _, confirmed) = crate::voice::persons_clips(&app, &avatar, args.threshold)?;
    if clips.is_empty() {
        bail!(
            "{} has no voice clips yet: ingest recordings of them first (avatar ingest FILE.wav)",
            avatar.name
        );
    }
    if !confirmed && !ctx.quiet {
        eprintln!(
            "note: training on all {} clips; name one of the person's with `avatar voice person CLIP` to leave other voices out",
            clips.len()
        );
    }
    let (version, rvc_version) = match args.version.as_str() {
        "v1" => (Version::V1, RvcVersion::V1),
        _ => (Version::V2, RvcVersion::V2),
    };
    let prepared = examples(ctx, &app, &clips, rvc_version)?;
    let amount = SpeechAmount::of(&prepared);
    if prepared.is_empty() {
        bail!(
            "none of the {} clips gave a training example (each needs at least 0.4 s of speech)",
            clips.len()
        );
    }
    if !ctx.quiet {
        eprintln!("{amount}");
        if amount.too_little() {
            eprintln!("note: with this little speech the voice will be rough; RVC recommends 10–50 minutes");
        }
    }
    let n_examples = prepared.len();
    // Moved, not copied: ten minutes of speech is hundreds of MB of features and audio.
    let examples: Vec<Example> = prepared
        .into_iter()
        .map(|e| Example {
            features: e.features,
            f0: e.f0,
            f0_coarse: e.f0_coarse,
            wav: e.wav,
            frames: e.frames,
        })
        .collect();

    let dev = device();
    let cfg = synth_config(&args.size)?;
    let narrow = if args.size == "tiny" { 16 } else { 1 };
    let dir = voice_dir(&app.dir, &avatar.avatar_id);
    let train_dir = dir.join("train");
    let ckpt = train_dir.join("checkpoint");
    let hash = dataset_hash(&clips, args);
    let hash_file = train_dir.join("dataset.sha256");
    let same_data = std::fs::read_to_string(&hash_file).is_ok_and(|h| h.trim() == hash);
    if args.fresh || !same_data {
        if has_checkpoint(&ckpt) && !args.fresh && !ctx.quiet {
            eprintln!("the clips changed since the last run: starting over");
        }
        let _ = std::fs::remove_dir_all(&train_dir);
    }
    std::fs::create_dir_all(&train_dir)?;
    std::fs::write(&hash_file, &hash)?;

    let generator = Generator::new(&cfg, version, args.seed, &dev)?;
    let discriminator = Discriminator::new(args.seed, narrow, &dev)?;
    let (pre_g, pre_d) = pretrained(args);
    let mut base = "scratch".to_string();
    let config = TrainConfig {
        batch: args.batch,
        frames: args.frames,
        seed: args.seed,
        optimizer: avatar_rvc_train::adamw::AdamWConfig {
            lr: args.lr,
            ..avatar_rvc_train::adamw::AdamWConfig::rvc()
        },
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(generator, discriminator, examples, config, &dev)?;
    let resumed_from = if has_checkpoint(&ckpt) {
        trainer.resume(&ckpt).with_context(|| {
            format!(
                "cannot resume from {} (use --fresh to start over)",
                ckpt.display()
            )
        })?;
        trainer.step
    } else {
        if let Some(g) = &pre_g {
            export::load_pretrained_generator(&trainer.generator, g)
                .with_context(|| format!("cannot start from {}", g.display()))?;
            base = g.display().to_string();
        }
        if let Some(d) = &pre_d {
            export::load_pretrained_discriminator(&trainer.discriminator, d)
                .with_context(|| format!("cannot start from {}", d.display()))?;
        }
        0
    };
    if resumed_from > 0 && !ctx.quiet {
        eprintln!("resuming from step {resumed_from}");
    }

    let stop = avatar_email::shutdown_flag();
    let progress = bar(
        args.steps,
        ctx.quiet,
        "     voice [{bar:30}] {pos}/{len} {msg} (ETA {eta})",
    );
    progress.set_position(trainer.step.min(args.steps));
    let started = Instant::now();
    let mut done = 0u64;
    let mut samples = Vec::new();
    let mut interrupted = false;
    while trainer.step < args.steps {
        let l = trainer.train_step()?;
        done += 1;
        progress.set_position(trainer.step);
        progress.set_message(format!(
            "mel {:.2} · kl {:.2} · gen {:.2} · fm {:.2} · disc {:.2}",
            l.mel, l.kl, l.gen, l.fm, l.disc
        ));
        let at_checkpoint = args.checkpoint_every > 0 && trainer.step % args.checkpoint_every == 0;
        let stopping = stop.load(Ordering::SeqCst);
        if at_checkpoint || stopping || trainer.step >= args.steps {
            trainer.save_checkpoint(&ckpt)?;
            let sample = train_dir
                .join("samples")
                .join(format!("step-{:06}.wav", trainer.step));
            render_sample(&trainer, &sample)?;
            samples.push(rel(&app.dir, &sample));
        }
        if stopping {
            interrupted = true;
            break;
        }
    }
    progress.finish_and_clear();
    let seconds_per_step = started.elapsed().as_secs_f64() / done.max(1) as f64;

    // The model `avatar speak` uses, RVC's layout, plus Avatar's own.
    let pth = dir.join("model.pth");
    // A new model without the forgotten recordings replaces the removed one.
    let _ = std::fs::remove_file(dir.join("stale.json"));
    let info = format!("{}step Avatar {}", trainer.step, env!("CARGO_PKG_VERSION"));
    export::export_rvc(&trainer.generator, &pth, &info)?;
    let final_losses = trainer.history.last().map(|(_, l)| *l);
    let card = VoiceCard {
        config: trainer.generator.cfg.to_list(),
        version: version.as_str().into(),
        sample_rate: trainer.generator.cfg.sr,
        f0: true,
        steps: trainer.step,
        base: base.clone(),
        speech_seconds: amount.seconds,
        examples: n_examples,
        final_losses,
    };
    export::export_own(&trainer.generator, &dir, "model", &card)?;
    // RVC's retrieval index over the training features (HuBERT's own 50 Hz rows).
    let dim = version.feature_dim();
    let rows: Vec<f32> = trainer
        .examples()
        .iter()
        .flat_map(|e| e.features.chunks(dim).step_by(2).flatten().copied())
        .collect();
    let index_path = dir.join("model.index");
    let index = match avatar_rvc::ivf::build(&rows, dim, &avatar_rvc::ivf::IvfOptions::default()) {
        Ok(ix) => {
            ix.write(&index_path)?;
            Some(rel(&app.dir, &index_path))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&index_path);
            eprintln!("no feature index: {e}");
            None
        }
    };
    app.log.append(&[Envelope::new(
        avatar.avatar_id.clone(),
        "cli:train",
        Payload::TrainResult(TrainResult {
            model: "voice".into(),
            base: base.clone(),
            steps: trainer.step as u32,
            final_loss: final_losses.map(|l| l.gen_all as f64),
            dataset_sha256: hash,
            output: rel(&app.dir, &pth),
            interrupted,
        }),
    )])?;
    let mels: Vec<f32> = trainer.history.iter().map(|(_, l)| l.mel).collect();
    let n = mels.len().min(10);
    let mean = |s: &[f32]| (!s.is_empty()).then(|| s.iter().sum::<f32>() / s.len() as f32);
    Ok(VoiceTrainReport {
        mel_start: mean(&mels[..n]),
        mel_end: mean(&mels[mels.len() - n..]),
        steps: trainer.step,
        resumed_from,
        clips: clips.len(),
        examples: n_examples,
        speech_minutes: amount.minutes(),
        base,
        first_losses: trainer.history.first().map(|(_, l)| *l),
        final_losses,
        seconds_per_step,
        model: rel(&app.dir, &pth),
        index,
        samples,
        interrupted,
    })
}

/// `avatar train voice`.
pub fn run(ctx: &Ctx, args: &VoiceTrainArgs) -> Result<()> {
    let r = train_voice(ctx, args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let data = &ctx.data;
    if r.resumed_from > 0 {
        println!("resumed from step {}", r.resumed_from);
    }
    let fmt = |l: &Option<Losses>| {
        l.map(|l| format!("mel {:.2}, kl {:.2}, total {:.2}", l.mel, l.kl, l.gen_all))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "trained to step {} on {:.1} min of speech ({} pieces from {} clips), from {}; {:.1} s/step",
        r.steps, r.speech_minutes, r.examples, r.clips, r.base, r.seconds_per_step
    );
    println!(
        "losses: {} → {}",
        fmt(&r.first_losses),
        fmt(&r.final_losses)
    );
    println!(
        "voice model (RVC WebUI/Applio .pth): {}",
        data.join(&r.model).display()
    );
    if let Some(ix) = &r.index {
        println!("feature index: {}", data.join(ix).display());
    }
    if let Some(s) = r.samples.last() {
        println!("listen: {}", data.join(s).display());
    }
    if r.interrupted {
        println!("stopped early; run the same command again to continue");
    }
    Ok(())
}
