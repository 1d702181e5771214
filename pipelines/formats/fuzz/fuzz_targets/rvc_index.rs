#![no_main]
//! RVC voice models are shared as downloads from anywhere; their feature index (`.index`, a
//! faiss IVF file) is read by avatar-rvc. Hostile bytes: never a panic, never a huge
//! allocation from a header's counts; a parsed index answers a search with at most k hits.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(index) = avatar_rvc::FeatureIndex::parse(data) else {
        return;
    };
    if index.is_empty() || index.dim() == 0 || index.dim() > 4096 {
        return;
    }
    let query = vec![0.5f32; index.dim()];
    if let Ok(hits) = index.search(&query, 8) {
        assert!(hits.len() <= 8);
    }
});
