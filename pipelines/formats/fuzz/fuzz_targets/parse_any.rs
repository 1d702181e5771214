//! Sniffing + dispatch: whatever the bytes and name, `parse` returns items or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(0).min(64);
    let name = String::from_utf8_lossy(&data[..split]);
    let _ = avatar_formats::parse(&name, None, &data[split..]);
});
