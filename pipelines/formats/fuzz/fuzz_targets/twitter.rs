#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::twitter::parse("data/tweets.js", data);
    let _ = avatar_formats::twitter::looks_like("data/tweets.js", &String::from_utf8_lossy(data));
});
