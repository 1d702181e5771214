#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::teams::parse("messages.json", data);
});
