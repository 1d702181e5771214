#![no_main]
//! The redactor on arbitrary text: it must not panic, and its findings must be ordered,
//! non-overlapping and on character boundaries of the input.
use avatar_redact::{RedactConfig, Redactor};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static REDACTOR: LazyLock<Redactor> = LazyLock::new(|| {
    Redactor::new(RedactConfig {
        keep: vec![
            "Ada Lovelace".into(),
            "ada@example.org".into(),
            "+44 7700 900123".into(),
        ],
        third_party_names: Some(vec![
            ("Bob Stone <bob@stone.example>".into(), "p1".into()),
            ("@carol".into(), "p2".into()),
        ]),
    })
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let r = REDACTOR.redact(&text);
    let mut last = 0;
    for f in &r.findings {
        assert!(f.start >= last && f.start < f.end && f.end <= text.len());
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        last = f.end;
    }
});
