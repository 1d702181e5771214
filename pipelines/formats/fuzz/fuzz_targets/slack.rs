//! Slack: lone JSON pieces, and zip exports (bytes starting with the zip magic go through the
//! zip reader, so corrupt central directories and entries are exercised too).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::slack::parse("general/2024-03-01.json", data);
    let _ = avatar_formats::bundle::zip_bundle_kind(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = avatar_formats::slack::looks_like("users.json", s);
        let _ = avatar_formats::slack::render(s, &Default::default());
    }
});
