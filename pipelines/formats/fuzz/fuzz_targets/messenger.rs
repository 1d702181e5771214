#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::messenger::parse("message_1.json", data);
    let _ = avatar_formats::messenger::looks_like("message_1.json", &String::from_utf8_lossy(data));
});
