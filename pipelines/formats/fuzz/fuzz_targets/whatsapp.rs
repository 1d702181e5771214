#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::whatsapp::parse("WhatsApp Chat with Fuzz.txt", data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = avatar_formats::whatsapp::looks_like(s);
    }
});
