#![no_main]
use libfuzzer_sys::fuzz_target;

// pdf::parse turns a panic inside lopdf into a Malformed error with catch_unwind, as in
// production. libFuzzer's panic hook aborts before any unwinding, so it is replaced by a
// silent one here. A panic outside the guard (the header check) still aborts the run.
fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = avatar_formats::pdf::parse("fuzz.pdf", data);
});
