#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::discord::parse("channel.json", data);
    let _ = avatar_formats::discord::looks_like("channel.json", &String::from_utf8_lossy(data));
});
