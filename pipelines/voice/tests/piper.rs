#![allow(clippy::unwrap_used)]
//! Piper's en_US-joe-medium voice through ONNX Runtime, with the real weights and runtime
//! (`infra/fetch-models.sh piper`); skips with a message when they or espeak-ng are missing.
//! The phoneme ids are piper-tts 1.8.0's own for the same text (`PiperVoice.phonemize` and
//! `phonemes_to_ids`, printed by `reference/piper_ids.py`).

use avatar_voice::piper::PiperVoice;
use avatar_voice::tts::Espeak;
use std::path::PathBuf;

fn models() -> PathBuf {
    match std::env::var_os("AVATAR_MODELS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/avatar/models")
        }
    }
}

fn voice() -> Option<(PiperVoice, Espeak)> {
    let Ok(espeak) = Espeak::find() else {
        eprintln!("skipped: espeak-ng is not installed");
        return None;
    };
    match PiperVoice::load_default(&models()) {
        Ok(v) => Some((v, espeak)),
        Err(e @ avatar_voice::piper::PiperError::Missing(_)) => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn phoneme_ids_equal_piper_tts() {
    let Some((v, espeak)) = voice() else { return };
    let ids = v
        .ids(&espeak, "Always finish what you start, and tell the truth.")
        .unwrap();
    let want: Vec<i64> = vec![
        1, 0, 120, 0, 54, 0, 122, 0, 24, 0, 35, 0, 18, 0, 74, 0, 38, 0, 3, 0, 19, 0, 120, 0, 74, 0,
        26, 0, 74, 0, 96, 0, 3, 0, 35, 0, 102, 0, 32, 0, 3, 0, 22, 0, 33, 0, 122, 0, 3, 0, 31, 0,
        32, 0, 120, 0, 51, 0, 122, 0, 88, 0, 32, 0, 8, 0, 3, 0, 39, 0, 26, 0, 17, 0, 3, 0, 32, 0,
        120, 0, 61, 0, 24, 0, 3, 0, 41, 0, 59, 0, 3, 0, 32, 0, 88, 0, 120, 0, 33, 0, 122, 0, 126,
        0, 10, 0, 2,
    ];
    assert_eq!(ids, vec![want]);
    let ids = v
        .ids(&espeak, "When I was a girl, we walked to school! Did you?")
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[1],
        vec![1, 0, 17, 0, 120, 0, 74, 0, 17, 0, 3, 0, 22, 0, 33, 0, 122, 0, 13, 0, 2]
    );
    assert_eq!(ids[0].len(), 85);
    assert_eq!(&ids[0][..10], &[1, 0, 35, 0, 121, 0, 61, 0, 26, 0]);
}

#[test]
fn the_voice_speaks() {
    let Some((v, espeak)) = voice() else { return };
    let audio = v
        .speak(&espeak, "Always finish what you start. Tell the truth.")
        .unwrap();
    assert_eq!(audio.sample_rate, 22_050);
    let seconds = audio.samples.len() as f32 / 22_050.0;
    assert!((1.5..6.0).contains(&seconds), "{seconds} s");
    let rms =
        (audio.samples.iter().map(|x| x * x).sum::<f32>() / audio.samples.len() as f32).sqrt();
    assert!(rms > 0.02 && rms < 0.7, "rms {rms}");
    // Its pitch is a man's (joe): median F0 well inside 70–200 Hz.
    let f0 = avatar_voice::pitch::track(&audio.samples, audio.sample_rate).unwrap();
    let median = avatar_voice::pitch::median(&f0).unwrap();
    assert!((70.0..200.0).contains(&median), "{median} Hz");
    assert!(matches!(
        v.speak(&espeak, " ... "),
        Err(avatar_voice::piper::PiperError::EmptyText)
    ));
}

#[test]
fn a_missing_voice_says_how_to_install_it() {
    let e = PiperVoice::load_default(std::path::Path::new("/no/models")).unwrap_err();
    assert!(e.to_string().contains("infra/fetch-models.sh piper"), "{e}");
}
