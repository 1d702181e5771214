#![no_main]
//! RVC model files (`.pth`: a zip of pickles and raw storages) come from anywhere: the
//! pretrained base a user downloads, a voice someone shares. Hostile bytes: never a panic,
//! never a huge allocation; what loads writes back and loads again the same.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("rvc-pth-fuzz-{}.pth", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = avatar_rvc::Checkpoint::load(&path);
    if let Ok(state) = avatar_rvc::export::load_state(&path, Some("model")) {
        let small = state.iter().map(|(_, t)| t.elem_count()).sum::<usize>() < 1 << 16;
        if small {
            let top = avatar_rvc::export::PyValue::Dict(vec![(
                "model".into(),
                avatar_rvc::export::PyValue::Tensors(state.clone()),
            )]);
            let back = path.with_extension("back.pth");
            if avatar_rvc::export::write_pth(&back, &top, candle_core::DType::F32).is_ok() {
                let again = avatar_rvc::export::load_state(&back, Some("model")).unwrap();
                assert_eq!(again.len(), state.len());
                for ((a, ta), (b, tb)) in state.iter().zip(&again) {
                    assert_eq!(a, b);
                    assert_eq!(ta.dims(), tb.dims());
                }
            }
            let _ = std::fs::remove_file(&back);
        }
    }
    let _ = std::fs::remove_file(&path);
});
