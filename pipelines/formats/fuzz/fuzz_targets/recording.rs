#![no_main]
//! The recordings path (pipelines/voice) on hostile bytes: container probing and decoding
//! (symphonia: wav, flac, mp3, ogg, mp4, mkv; opus-pure for Opus), then voice-activity slicing of whatever decoded.
//! The first byte picks the file name the bytes arrive under, which steers the container hint.
//! Never a panic, never unbounded memory; every clip lies inside the recording.
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "a.wav", "a.flac", "a.mp3", "a.ogg", "a.opus", "a.m4a", "a.mkv", "a.webm", "a",
];

// decode turns a panic inside symphonia into a Damaged error with catch_unwind, as in
// production. libFuzzer's panic hook aborts before any unwinding, so it is replaced by a silent
// one here; a panic outside the guard (slicing, the checks below) still aborts the run.
fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[pick as usize % NAMES.len()];
    let Ok(audio) = avatar_voice::decode(name, rest) else {
        return;
    };
    let Ok(slicing) = avatar_voice::slice_clips(
        &audio.samples,
        audio.sample_rate,
        &avatar_voice::ClipConfig::default(),
    ) else {
        return;
    };
    for c in &slicing.clips {
        assert!(c.start_ms <= c.end_ms && c.end_ms <= audio.duration_ms() + 10);
        assert!(c.samples.iter().all(|s| s.is_finite()));
    }
});
