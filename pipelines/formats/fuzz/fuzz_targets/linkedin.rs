#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::linkedin::parse("messages.csv", data);
    let _ = avatar_formats::linkedin::looks_like("messages.csv", &String::from_utf8_lossy(data));
});
