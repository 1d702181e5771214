#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::mattermost::parse("export.jsonl", data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = avatar_formats::mattermost::looks_like("export.jsonl", s);
    }
});
