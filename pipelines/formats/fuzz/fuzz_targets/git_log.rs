#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = avatar_formats::git_log::parse("repo/0123456789ab.patch", data);
});
