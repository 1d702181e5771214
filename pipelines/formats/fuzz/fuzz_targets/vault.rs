#![no_main]
//! The sealed data directory reader (services/vault) on hostile bytes. The first byte picks:
//! 0 = the bytes are a sealed file (header parsing, authentication), 1 = they are a decrypted
//! archive (entry parsing, path validation), else = seal them as an archive and read that back,
//! which must agree with reading the archive directly. Never a panic, never unbounded memory.
use avatar_vault::{check_archive_bytes, check_sealed_bytes, seal_archive_bytes, KeySource};
use libfuzzer_sys::fuzz_target;

const KEY: KeySource = KeySource::Raw([0x5a; 32]);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => {
            let _ = check_sealed_bytes(rest, &KEY);
        }
        1 => {
            let _ = check_archive_bytes(rest);
        }
        _ => {
            let sealed = seal_archive_bytes(rest, &KEY).expect("sealing in memory cannot fail");
            let direct = check_archive_bytes(rest);
            let through = check_sealed_bytes(&sealed, &KEY);
            match (direct, through) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("direct {a:?} but through the seal {b:?}"),
            }
        }
    }
});
