#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::signal::parse("Kim/chat.md", data);
    let _ = avatar_formats::signal::looks_like("Kim/chat.md", &String::from_utf8_lossy(data));
});
