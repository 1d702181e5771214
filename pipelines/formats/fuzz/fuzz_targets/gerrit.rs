#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::gerrit::parse("reviews.jsonl", data);
});
