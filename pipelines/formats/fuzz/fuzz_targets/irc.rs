#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::irc::parse("#fuzz.2016-06-14.log", data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = avatar_formats::irc::looks_like("#fuzz.log", s);
    }
});
