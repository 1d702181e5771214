#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::google_chat::parse("Google Chat/Groups/DM abc/messages.json", data);
    let _ = avatar_formats::google_chat::looks_like(
        "Google Chat/Groups/DM abc/messages.json",
        &String::from_utf8_lossy(data),
    );
});
