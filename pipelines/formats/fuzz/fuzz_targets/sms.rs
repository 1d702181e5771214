#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::sms::parse("sms-20240501.xml", data);
    let _ = avatar_formats::sms::looks_like("sms-20240501.xml", &String::from_utf8_lossy(data));
});
