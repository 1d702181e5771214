//! Recordings end to end: `avatar ingest` and the recordings-folder connector turn audio into
//! clips of speech (blobs + `records.recording` events); bad recordings become dead letters with
//! the reason; `avatar voice clips` lists and exports them; replay gives the same clips;
//! `forget --source` removes a recording's clips and their audio.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const RATE: u32 = 22_050;

/// A mono 16-bit WAV, as the voice pipeline writes its clips.
fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    avatar_voice::wav::encode_wav(samples, rate)
}

/// Speech-like sound (a buzz with harmonics in syllables of 250 ms, pauses between words)
/// between stretches of near-silence: `pattern` is (seconds, speaking?).
fn recording(pattern: &[(f64, bool)]) -> Vec<f32> {
    let mut seed = 99u32;
    let mut out = Vec::new();
    for &(seconds, speaking) in pattern {
        for i in 0..(seconds * RATE as f64) as usize {
            let t = i as f64 / RATE as f64;
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = ((seed >> 8) as f64 / (1u32 << 24) as f64 - 0.5) * 0.001;
            let v = if speaking {
                let syllable = ((t * 4.0).fract() * std::f64::consts::PI).sin().powi(2);
                let gap = if t.fract() > 0.8 { 0.0 } else { 1.0 };
                let f0 = 140.0 + 25.0 * (t * 1.7).sin();
                let buzz: f64 = (1..8)
                    .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                    .sum();
                0.15 * syllable * gap * buzz
            } else {
                0.0
            };
            out.push((v + noise) as f32);
        }
    }
    out
}

fn clips(data: &Path) -> Vec<serde_json::Value> {
    json_lines(&ok(data, &["voice", "clips", "--json"]))
}

fn status(data: &Path) -> serde_json::Value {
    serde_json::from_slice(&ok(data, &["status", "--json"]).stdout).unwrap()
}

#[test]
fn recordings_become_clips_and_bad_ones_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let inbox = tmp.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    // Two stretches of speech (5 s and 4 s) with silence around and between.
    let story = recording(&[
        (1.5, false),
        (5.0, true),
        (2.0, false),
        (4.0, true),
        (1.0, false),
    ]);
    std::fs::write(inbox.join("grandma story.wav"), wav(&story, RATE)).unwrap();
    std::fs::write(
        inbox.join("pocket.wav"),
        wav(&recording(&[(4.0, false)]), RATE),
    )
    .unwrap();
    let full = wav(&story, RATE);
    std::fs::write(inbox.join("cut.wav"), &full[..40]).unwrap();
    std::fs::write(
        inbox.join("notes.txt"),
        "Grandma told the story of the flood.",
    )
    .unwrap();

    let out = ok(&data, &["ingest", inbox.to_str().unwrap()]);
    let said = stdout(&out);
    // The buzz is not words: Whisper may hear nothing in it, so only the count of clips
    // transcribed is checked here (real speech is in the test below).
    assert!(
        said.contains("1 record(s), 2 clip(s) of speech") && said.contains(", 2 dead letter(s)"),
        "{said}"
    );

    let list = clips(&data);
    assert_eq!(list.len(), 2, "{list:?}");
    let first = &list[0];
    assert!(
        first["source"]
            .as_str()
            .unwrap()
            .ends_with("grandma%20story.wav")
            || first["source"]
                .as_str()
                .unwrap()
                .ends_with("grandma story.wav"),
        "{first}"
    );
    let (s0, e0) = (
        first["start_ms"].as_u64().unwrap(),
        first["end_ms"].as_u64().unwrap(),
    );
    assert!(
        (1_200..=1_600).contains(&s0) && (6_300..=6_800).contains(&e0),
        "{first}"
    );
    let s1 = list[1]["start_ms"].as_u64().unwrap();
    assert!((8_200..=8_600).contains(&s1), "{}", list[1]);
    assert_eq!(first["sample_rate"], RATE);

    // The dead letters say why, per file.
    let st = status(&data);
    let dead = st["dead_letters"].as_array().unwrap();
    let reason = |name: &str| {
        dead.iter()
            .find(|d| d["name"].as_str().is_some_and(|n| n.ends_with(name)))
            .map(|d| d["reason"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert!(
        reason("pocket.wav").contains("no speech to keep"),
        "{dead:?}"
    );
    assert!(reason("pocket.wav").contains("silence"), "{dead:?}");
    assert!(!reason("cut.wav").is_empty(), "{dead:?}");

    // Exported clips are WAV files of the right length.
    let export = tmp.path().join("export");
    let exported = json_lines(&ok(
        &data,
        &[
            "voice",
            "clips",
            "--json",
            "--export",
            export.to_str().unwrap(),
        ],
    ));
    for c in &exported {
        let file = PathBuf::from(c["file"].as_str().unwrap());
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        let ms = c["end_ms"].as_u64().unwrap() - c["start_ms"].as_u64().unwrap();
        let samples = (bytes.len() - 44) / 2;
        assert!(
            (samples as i64 - (ms * RATE as u64 / 1000) as i64).abs() < 30,
            "{file:?}"
        );
    }
    let human = stdout(&ok(&data, &["voice", "clips"]));
    assert!(human.contains("2 clip(s)"), "{human}");

    // Ingesting again changes nothing; a replay makes the very same clips.
    let again = stdout(&ok(&data, &["ingest", inbox.to_str().unwrap()]));
    assert!(again.contains("0 new file(s)"), "{again}");
    assert_eq!(clips(&data).len(), 2);
    let replayed = tmp.path().join("replayed");
    ok(&data, &["replay", "--into", replayed.to_str().unwrap()]);
    let ids = |l: &[serde_json::Value]| -> Vec<(String, String)> {
        l.iter()
            .map(|c| (c["id"].to_string(), c["audio"].to_string()))
            .collect()
    };
    assert_eq!(ids(&clips(&replayed)), ids(&list));

    // Forgetting the recording removes its clips and their audio.
    let audio: Vec<String> = list
        .iter()
        .map(|c| c["audio"].as_str().unwrap().to_string())
        .collect();
    let blob = |sha: &str| data.join("blobs").join(&sha[..2]).join(&sha[2..]);
    assert!(blob(&audio[0]).is_file());
    let story_path = inbox.join("grandma story.wav");
    let report: serde_json::Value = serde_json::from_slice(
        &ok(
            &data,
            &["forget", "--source", story_path.to_str().unwrap(), "--json"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(
        report["blobs_removed"], 3,
        "the recording and its 2 clips: {report}"
    );
    assert!(clips(&data).is_empty());
    assert!(!blob(&audio[0]).exists() && !blob(&audio[1]).exists());
}

#[test]
fn the_recordings_folder_connector_reads_settled_audio_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let folder = tmp.path().join("voice-notes");
    std::fs::create_dir_all(&folder).unwrap();
    let note = recording(&[(0.5, false), (3.0, true), (0.5, false)]);
    std::fs::write(folder.join("note1.wav"), wav(&note, RATE)).unwrap();
    std::fs::write(folder.join("thumbnail.jpg"), [0xFFu8, 0xD8, 0xFF, 0xE0]).unwrap();
    std::fs::write(folder.join("index.txt"), "not a recording").unwrap();
    let config = |settle: &str| {
        let p = tmp.path().join(format!("connectors-{settle}.toml"));
        std::fs::write(
            &p,
            format!(
                "[[recordings]]\navatar = \"ada-lovelace\"\npath = {:?}\nsettle = \"{settle}\"\n",
                folder.display().to_string()
            ),
        )
        .unwrap();
        p
    };
    let pass = |cfg: &Path| {
        stdout(&ok(
            &data,
            &[
                "serve",
                "ingest",
                "--connectors",
                cfg.to_str().unwrap(),
                "--once",
            ],
        ))
    };
    // Just written: still "changing" for a one-hour settle time.
    let waiting = pass(&config("1h"));
    assert!(waiting.contains("1 file(s) still changing"), "{waiting}");
    assert!(clips(&data).is_empty());
    // Settled: read once; the picture and the text file are not recordings.
    let read = pass(&config("0s"));
    assert!(read.contains("recordings"), "{read}");
    assert!(read.contains("1 new file(s)"), "{read}");
    assert!(read.contains("1 clip(s) of speech"), "{read}");
    assert_eq!(clips(&data).len(), 1);
    // No text was read from the picture or the text file; only the clip's transcript (if
    // Whisper heard words in the buzz) is a record.
    let records = json_lines(&ok(&data, &["records", "--json"]));
    assert!(
        records.iter().all(|r| r["kind"] == "transcript"),
        "{records:?}"
    );
    let idle = pass(&config("0s"));
    assert!(!idle.contains("new file"), "{idle}");
}

/// Real (espeak-ng) speech from ../shared/reference, when present.
#[test]
fn real_speech_is_clipped_whole() {
    let Some(dir) = fixtures().map(|f| f.join("../reference")) else {
        return;
    };
    let src = dir.join("speech_a.wav");
    if !src.is_file() {
        eprintln!("skipping: {} not found", src.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    ok(&data, &["ingest", src.to_str().unwrap()]);
    let list = clips(&data);
    assert_eq!(list.len(), 1, "{list:?}");
    let ms = list[0]["end_ms"].as_u64().unwrap() - list[0]["start_ms"].as_u64().unwrap();
    assert!(ms > 6_000, "{}", list[0]);
}

/// Two voices (espeak-ng's en-gb female and en-us male, ../shared/reference) with the speaker
/// encoder installed: told apart, and once one clip is named the person's, only theirs listed.
/// espeak voices are alike to resemblyzer (cosine 0.83, see the reference README), hence the
/// strict threshold here.
#[test]
fn voices_are_told_apart_and_the_person_is_confirmed_by_one_clip() {
    let Some(dir) = fixtures().map(|f| f.join("../reference")) else {
        return;
    };
    if installed_model("resemblyzer/pretrained.pt", "resemblyzer").is_none() {
        return;
    }
    let (a, b) = (dir.join("speech_a.wav"), dir.join("speech_b.wav"));
    if !a.is_file() || !b.is_file() {
        eprintln!("skipping: reference speech not found");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    ok(&data, &["ingest", a.to_str().unwrap(), b.to_str().unwrap()]);
    let strict = ["--threshold", "0.9"];
    let list = |extra: &[&str]| {
        let mut args = vec!["voice", "clips", "--json"];
        args.extend_from_slice(&strict);
        args.extend_from_slice(extra);
        json_lines(&ok(&data, &args))
    };
    let all = list(&[]);
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0]["speaker"].as_u64(), all[1]["speaker"].as_u64()),
        (Some(1), Some(2))
    );
    let human = stdout(&ok(&data, &["voice", "clips", "--threshold", "0.9"]));
    assert!(
        human.contains("2 voice(s)") && human.contains("avatar voice person"),
        "{human}"
    );

    let theirs = all[0]["id"].as_str().unwrap();
    let said = stdout(&ok(
        &data,
        &["voice", "person", theirs, "--threshold", "0.9"],
    ));
    assert!(said.contains("1 clip(s) sound like"), "{said}");
    let only = list(&[]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["id"], theirs);
    assert_eq!(only[0]["person"], true);
    let every = list(&["--all"]);
    assert_eq!(every.len(), 2);
    assert_eq!(every[1]["person"], false);

    let bad = cmd(&data)
        .args(["voice", "person", "no-such-clip"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("avatar voice clips"));
}

/// `avatar speak` and `avatar voice eval` with the base TTS voice (espeak-ng, when installed)
/// and the two reference speech files as the person's clips.
#[test]
fn speak_uses_the_base_voice_and_says_so_and_eval_reports_the_figures() {
    let Some(dir) = fixtures().map(|f| f.join("../reference")) else {
        return;
    };
    if installed_model("resemblyzer/pretrained.pt", "resemblyzer").is_none() {
        return;
    }
    if !installed_program("espeak-ng", "espeak-ng") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    // Before any recording: the default pitch, and still a clear statement of which voice.
    let early = tmp.path().join("early.wav");
    let said = stdout(&ok(
        &data,
        &[
            "speak",
            "Hello there.",
            "-o",
            early.to_str().unwrap(),
            "--tts",
            "espeak",
        ],
    ));
    assert!(
        said.contains("base TTS voice") && said.contains("default pitch"),
        "{said}"
    );
    let (a, b) = (dir.join("speech_a.wav"), dir.join("speech_b.wav"));
    let said = stdout(&ok(
        &data,
        &["ingest", a.to_str().unwrap(), b.to_str().unwrap()],
    ));
    let whisper = installed_model("whisper-tiny.en/model.bin", "whisper-tiny.en").is_some();
    if whisper {
        // What was said is searchable, and the hit leads to the moment in the recording.
        assert!(said.contains("2 clip(s) transcribed"), "{said}");
        let hits = json_lines(&ok(
            &data,
            &["search", "market Saturday", "--json", "--mode", "bm25"],
        ));
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(
            hits[0]["source"]
                .as_str()
                .unwrap()
                .ends_with("speech_a.wav"),
            "{hits:?}"
        );
        let records = json_lines(&ok(&data, &["records", "--json"]));
        let story = records
            .iter()
            .find(|r| r["kind"] == "transcript" && r["text"].as_str().unwrap().contains("apples"))
            .unwrap_or_else(|| panic!("no transcript record: {records:?}"));
        assert_eq!(
            story["text"],
            "When I was a girl we walked to the market every Saturday. My father sold apples and I counted the coins."
        );
        assert!(
            story["title"]
                .as_str()
                .unwrap()
                .starts_with("speech_a.wav 0:00–0:0"),
            "{story}"
        );
        // `avatar transcribe` prints the same words with times, without ingesting.
        let t: serde_json::Value = serde_json::from_slice(
            &ok(&data, &["transcribe", b.to_str().unwrap(), "--json"]).stdout,
        )
        .unwrap();
        assert_eq!(t["segments"][0]["text"], "Always finish what you started.");
        assert!(t["segments"][1]["start"].as_f64().unwrap() > 1.5, "{t}");
        let missing = cmd(&data)
            .args(["transcribe", "/no/such.wav", b.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stdout).contains("Always finish"));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such.wav"));
    }

    let out = tmp.path().join("advice.wav");
    let said = stdout(&ok(
        &data,
        &[
            "speak",
            "Always finish what you start.",
            "-o",
            out.to_str().unwrap(),
            "--tts",
            "espeak",
        ],
    ));
    assert!(said.contains("base TTS voice"), "{said}");
    assert!(said.contains("not their voice"), "{said}");
    assert!(
        said.contains("pitch matched to Ada Lovelace's median"),
        "{said}"
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    let seconds = (bytes.len() - 44) as f64 / 2.0 / rate as f64;
    assert!(seconds > 1.0 && seconds < 10.0, "{seconds} s");

    // Piper's neural voice is the default base voice when installed.
    let piper = installed_model("piper/en_US-joe-medium.onnx", "piper").is_some();
    if piper {
        let said = stdout(&ok(
            &data,
            &[
                "speak",
                "Always finish what you start.",
                "-o",
                out.to_str().unwrap(),
            ],
        ));
        assert!(
            said.contains("Piper en_US-joe-medium") && said.contains("not their voice"),
            "{said}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&ok(&data, &["voice", "eval", "--json"]).stdout).unwrap();
    assert_eq!(
        report["base_tts"].as_str().unwrap().starts_with("Piper"),
        piper,
        "{report}"
    );
    if installed_model("dnsmos/sig_bak_ovr.onnx", "dnsmos").is_some() {
        for who in ["real_clips", "base_tts"] {
            let ovrl = report["mos"][who]["ovrl"].as_f64().unwrap();
            assert!((1.0..=5.0).contains(&ovrl), "{who}: {report}");
        }
        assert!(report["mos"]["generated"].is_null(), "{report}");
    }
    let sim = &report["speaker_similarity"];
    let real = sim["real_clips"].as_f64().unwrap();
    let base = sim["base_tts"].as_f64().unwrap();
    // The two espeak reference voices are 0.83 alike to resemblyzer (the reference README).
    assert!((real - 0.83).abs() < 0.03, "{report}");
    assert!((-1.0..=1.0).contains(&base), "{report}");
    assert!(sim["generated"].is_null(), "{report}");
    if whisper {
        // espeak's American voice is intelligible to Whisper: few words wrong.
        let wer = report["wer"]["base_tts"].as_f64().unwrap();
        assert!((0.0..0.35).contains(&wer), "{report}");
        assert!(report["wer"]["generated"].is_null(), "{report}");
    } else {
        assert!(report["wer"].is_null(), "{report}");
    }
    assert!(
        report["median_f0_hz"]["real"].as_f64().unwrap() > 80.0,
        "{report}"
    );
    assert_eq!(report["clips"], 2);
    let human = stdout(&ok(&data, &["voice", "eval"]));
    assert!(
        human.contains("not trained yet") && human.contains("WER"),
        "{human}"
    );
}

/// A voice note as phones send it (Ogg Opus, made here by libopus's own `opusenc` from the
/// reference speech): decoded, cut into a clip, transcribed and found by search.
#[test]
fn an_opus_voice_note_is_heard_and_searchable() {
    let Some(dir) = fixtures().map(|f| f.join("../reference")) else {
        return;
    };
    if !installed_program("opusenc", "opus-tools") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let note = tmp.path().join("PTT-20190412-WA0003.opus");
    let made = std::process::Command::new("opusenc")
        .args(["--quiet", "--bitrate", "24", "--speech"])
        .arg(dir.join("speech_a.wav"))
        .arg(&note)
        .status()
        .unwrap();
    assert!(made.success());
    let data = tmp.path().join("data");
    init_ada(&data);
    let said = stdout(&ok(&data, &["ingest", note.to_str().unwrap()]));
    assert!(said.contains("1 clip(s) of speech"), "{said}");
    let list = clips(&data);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["sample_rate"], 48_000);
    if installed_model("whisper-tiny.en/model.bin", "whisper-tiny.en").is_some() {
        let hits = json_lines(&ok(
            &data,
            &["search", "apples coins", "--json", "--mode", "bm25"],
        ));
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0]["source"].as_str().unwrap().ends_with(".opus"));
    }
}

/// `text` spoken by espeak-ng into a WAV at `path` (`extra`: more espeak-ng options).
fn espeak_wav(path: &Path, text: &str, extra: &[&str]) {
    let made = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(path)
        .args(extra)
        .arg(text)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// Ada, with a tiny random HuBERT installed: `(tmp, models, data)`; `None` (said why) where
/// espeak-ng, which makes the speech, cannot be installed.
fn voice_bed() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if !installed_program("espeak-ng", "espeak-ng") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let models = tiny_hubert_models(&tmp.path().join("models"));
    let data = tmp.path().join("data");
    init_ada(&data);
    Some((tmp, models, data))
}

/// A models folder whose `hubert/` holds avatar-content's tiny test HuBERT with a 256-wide
/// projection (RVC v1's feature width), listed in SHA256SUMS as a user would list theirs.
fn tiny_hubert_models(root: &Path) -> PathBuf {
    use sha2::Digest;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/content/testdata/hf");
    let dir = root.join("hubert");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let dev = candle_core::Device::Cpu;
    let mut tensors = candle_core::safetensors::load(src.join("model.safetensors"), &dev).unwrap();
    let hidden = tensors["final_proj.weight"].dims()[1];
    tensors.insert(
        "final_proj.weight".into(),
        candle_core::Tensor::randn(0f32, 0.2, (256, hidden), &dev).unwrap(),
    );
    tensors.insert(
        "final_proj.bias".into(),
        candle_core::Tensor::zeros(256, candle_core::DType::F32, &dev).unwrap(),
    );
    let model = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &model).unwrap();
    let sum = |f: &str| hex::encode(sha2::Sha256::digest(std::fs::read(dir.join(f)).unwrap()));
    std::fs::write(
        dir.join("SHA256SUMS"),
        format!(
            "{}  model.safetensors\n{}  config.json\n",
            sum("model.safetensors"),
            sum("config.json")
        ),
    )
    .unwrap();
    let _ = model;
    root.to_path_buf()
}

/// `avatar speak --voice MODEL.pth`: the base voice converted by an RVC model (tiny random
/// test models: this checks the wiring, the parts are checked against PyTorch in their crates),
/// then the avatar's own model from its models folder, and a clear error without HuBERT.
#[test]
fn an_rvc_voice_model_speaks_and_says_whose_voice() {
    let Some((tmp, models, data)) = voice_bed() else {
        return;
    };
    let voice = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/rvc/testdata/v1_f0_48k.pth");
    let out = tmp.path().join("said.wav");
    let speak = |models: &Path, extra: &[&str]| {
        let mut c = cmd(&data);
        c.env("AVATAR_MODELS", models)
            .args([
                "speak",
                "Always finish what you start.",
                "-o",
                out.to_str().unwrap(),
            ])
            .args(extra);
        c.output().unwrap()
    };
    let said = speak(&models, &["--voice", voice.to_str().unwrap()]);
    assert_no_panic(&said);
    let text = String::from_utf8_lossy(&said.stdout);
    assert!(
        said.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&said.stderr)
    );
    assert!(
        text.contains("voice model v1_f0_48k.pth (RVC v1, 48 kHz, with pitch)")
            && text.contains("converting the base TTS voice"),
        "{text}"
    );
    let wav = std::fs::read(&out).unwrap();
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        48_000
    );
    assert!(wav.len() > 44 + 48_000, "{} bytes", wav.len());

    // The avatar's own model is used without --voice.
    let own = data.join("models/ada-lovelace/voice");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::copy(&voice, own.join("model.pth")).unwrap();
    let said = speak(&models, &[]);
    let text = String::from_utf8_lossy(&said.stdout);
    assert!(text.contains("voice model model.pth (RVC v1"), "{text}");

    // The quality gate on generated speech: a random voice model makes noise, which Whisper
    // cannot understand — the WER says so even where similarity might not.
    let real = fixtures().map(|f| f.join("../reference"));
    let installed = |rel: &str| installed_model(rel, rel);
    if let (Some(refdir), Some(resemblyzer)) = (real, installed("resemblyzer/pretrained.pt")) {
        for dir in [
            "resemblyzer",
            "whisper-tiny.en",
            "fcpe",
            "piper",
            "onnxruntime",
        ] {
            let real_dir = resemblyzer.parent().unwrap().parent().unwrap().join(dir);
            if real_dir.is_dir() {
                std::os::unix::fs::symlink(&real_dir, models.join(dir)).unwrap();
            }
        }
        let (a, b) = (refdir.join("speech_a.wav"), refdir.join("speech_b.wav"));
        let mut c = cmd(&data);
        c.env("AVATAR_MODELS", &models)
            .args(["ingest", a.to_str().unwrap(), b.to_str().unwrap()]);
        assert!(c.output().unwrap().status.success());
        let mut c = cmd(&data);
        c.env("AVATAR_MODELS", &models)
            .args(["voice", "eval", "--json"]);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let sim = report["speaker_similarity"]["generated"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&sim), "{report}");
        assert!(
            report["voice_model"]
                .as_str()
                .unwrap()
                .contains("model.pth"),
            "{report}"
        );
        assert!(report["pitch_shift_semitones"].is_number(), "{report}");
        if !report["wer"].is_null() {
            let (base, generated) = (
                report["wer"]["base_tts"].as_f64().unwrap(),
                report["wer"]["generated"].as_f64().unwrap(),
            );
            assert!(
                generated > base + 0.3,
                "random voice, WER {generated} vs base {base}: {report}"
            );
        }
    }

    // No content encoder: says what to put where.
    let empty = tmp.path().join("no-models");
    std::fs::create_dir_all(&empty).unwrap();
    let said = speak(&empty, &[]);
    assert!(!said.status.success());
    let err = String::from_utf8_lossy(&said.stderr);
    assert!(err.contains("hubert"), "{err}");
}

/// Issue 10: `avatar train voice` trains the person's voice from their clips (speech made
/// with espeak-ng; the tiny model and a tiny random HuBERT, so it runs in seconds), the
/// losses fall, a checkpoint renders a sample, the exported model is what `avatar speak`
/// then uses, and a second run resumes where the first stopped.
#[test]
fn the_persons_voice_is_trained_from_their_clips_and_speaks() {
    let Some((tmp, models, data)) = voice_bed() else {
        return;
    };
    let said = tmp.path().join("story.wav");
    espeak_wav(
        &said,
        "When I was young we walked to school along the river. In winter the ice sang \
             under our boots, and my brother counted the crows on the fence every morning.",
        &["-s", "150"],
    );
    let run = |args: &[&str]| {
        let mut c = cmd(&data);
        c.env("AVATAR_MODELS", &models).args(args);
        let out = c.output().unwrap();
        assert_no_panic(&out);
        out
    };
    let out = run(&["ingest", said.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The tiny training every run below does; only the steps and the checkpoints differ.
    let train_args = |steps: &'static str, checkpoint_every: &'static str| {
        [
            "train",
            "voice",
            "--size",
            "tiny",
            "--version",
            "v1",
            "--steps",
            steps,
            "--batch",
            "2",
            "--frames",
            "60",
            "--lr",
            "2e-3",
            "--checkpoint-every",
            checkpoint_every,
        ]
    };
    let train = |steps: &'static str| {
        let mut args = train_args(steps, "40").to_vec();
        args.push("--json");
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let report = train("80");
    assert_eq!(report["steps"], 80, "{report}");
    assert_eq!(report["resumed_from"], 0, "{report}");
    assert!(report["examples"].as_u64().unwrap() >= 2, "{report}");
    let (start, end) = (
        report["mel_start"].as_f64().unwrap(),
        report["mel_end"].as_f64().unwrap(),
    );
    assert!(end < start * 0.9, "mel loss {start} -> {end}: {report}");
    let voice = data.join("models/ada-lovelace/voice");
    for f in [
        "model.pth",
        "model.index",
        "model.safetensors",
        "model.json",
    ] {
        assert!(voice.join(f).is_file(), "{f}: {report}");
    }
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2, "{report}");
    let sample = std::fs::read(data.join(samples[1].as_str().unwrap())).unwrap();
    assert!(sample.len() > 44 + 1000);

    // The trained model speaks.
    let out_wav = tmp.path().join("hello.wav");
    let out = run(&[
        "speak",
        "See you tomorrow.",
        "-o",
        out_wav.to_str().unwrap(),
        "--tts",
        "espeak",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("voice model model.pth (RVC v1, 40 kHz, with pitch, feature index)"),
        "{text}"
    );
    let wav = std::fs::read(&out_wav).unwrap();
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        40_000
    );

    // Run again with more steps: it continues from the checkpoint.
    let report = train("82");
    assert_eq!(report["resumed_from"], 80, "{report}");
    assert_eq!(report["steps"], 82, "{report}");

    // Killed (SIGKILL, no chance to clean up) after a checkpoint: the next run resumes from
    // it, not from scratch.
    let mut child = cmd(&data)
        .env("AVATAR_MODELS", &models)
        .args(train_args("100000", "5"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = voice.join("train/checkpoint/state.json");
    let t0 = std::time::Instant::now();
    let step_of = || -> u64 {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["step"].as_u64())
            .unwrap_or(0)
    };
    while step_of() < 87 {
        assert!(
            t0.elapsed().as_secs() < 300,
            "no checkpoint after 5 minutes"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("training ended before it could be killed: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let report = train("1");
    let resumed = report["resumed_from"].as_u64().unwrap();
    assert!(resumed >= 87, "{report}");
    assert_eq!(report["steps"].as_u64().unwrap(), resumed, "{report}");
    assert!(voice.join("model.pth").is_file());
}

/// The trainer service retrains the voice when enough new clips of the person arrived, and
/// not again until more do.
#[test]
fn the_trainer_service_retrains_the_voice_when_clips_arrive() {
    let Some((tmp, models, data)) = voice_bed() else {
        return;
    };
    let said = tmp.path().join("note.wav");
    espeak_wav(
        &said,
        "Remember to water the tomatoes before the sun is high, and close the gate behind you.",
        &[],
    );
    let run = |args: &[&str]| {
        let mut c = cmd(&data);
        c.env("AVATAR_MODELS", &models).args(args);
        let out = c.output().unwrap();
        assert_no_panic(&out);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run(&["ingest", said.to_str().unwrap()]);
    let service = [
        "serve",
        "trainer",
        "--once",
        "--min-new",
        "100000",
        "--voice-min-new",
        "1",
        "--voice-size",
        "tiny",
        "--voice-version",
        "v1",
        "--voice-steps",
        "2",
    ];
    let first = run(&service);
    assert!(
        first.contains("training the voice (1 new clip(s))"),
        "{first}"
    );
    assert!(first.contains("voice trained to step 2"), "{first}");
    assert!(data.join("models/ada-lovelace/voice/model.pth").is_file());
    let again = run(&service);
    assert!(!again.contains("training the voice"), "{again}");

    // Forgetting the recording removes the voice model that learned from it (model, index,
    // checkpoints, samples); the service trains a new one once there is speech again.
    let voice = data.join("models/ada-lovelace/voice");
    let report: serde_json::Value =
        serde_json::from_str(run(&["forget", "--source", said.to_str().unwrap(), "--json"]).trim())
            .unwrap();
    assert_eq!(report["voice_model_removed"], true, "{report}");
    for f in ["model.pth", "model.index", "model.safetensors", "train"] {
        assert!(!voice.join(f).exists(), "{f} survived forget");
    }
    assert!(voice.join("stale.json").is_file());
    let nothing = run(&service);
    assert!(
        !nothing.contains("training the voice"),
        "no clips left: {nothing}"
    );
    let other = tmp.path().join("other.wav");
    espeak_wav(
        &other,
        "The bread is better the second day, toasted, with a little butter and salt.",
        &[],
    );
    run(&["ingest", other.to_str().unwrap()]);
    let retrained = run(&service);
    assert!(
        retrained.contains("training the voice (the last one learned from forgotten recordings)"),
        "{retrained}"
    );
    assert!(voice.join("model.pth").is_file() && !voice.join("stale.json").exists());
}
