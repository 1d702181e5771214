//! The asset folder: files are hashed before loading and refused when nothing vouches for them.

mod common;

use std::path::Path;

use avatar_content::assets::{self, Verification, KNOWN_HASHES, SUMS_FILE};
use avatar_content::{ContentEncoder, ContentError, RvcVersion};
use common::*;
use sha2::{Digest, Sha256};

fn sha(path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}

fn copy_hf(dir: &Path) -> TestResult {
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(testdata().join("hf").join(f), dir.join(f))?;
    }
    Ok(())
}

fn err_of<T: std::fmt::Debug>(r: avatar_content::Result<T>) -> ContentError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn sha256_of_a_known_vector() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("abc");
    std::fs::write(&p, "abc")?;
    assert_eq!(
        assets::sha256_file(&p)?,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    Ok(())
}

#[test]
fn matching_sums_file_loads_and_gives_the_reference() -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_hf(dir.path())?;
    let sums = format!(
        "{}  config.json\n{} *model.safetensors\n",
        sha(&dir.path().join("config.json"))?,
        sha(&dir.path().join("model.safetensors"))?
    );
    std::fs::write(dir.path().join(SUMS_FILE), sums)?;
    let (enc, checked) = ContentEncoder::load_verified(dir.path())?;
    assert_eq!(checked.verification, Verification::SumsFile);
    assert_eq!(checked.sha256, sha(&dir.path().join("model.safetensors"))?);
    assert_eq!(checked.config, Some(dir.path().join("config.json")));
    let r = reference()?;
    let e = max_abs_diff(
        &enc.encode(&input(&r)?, RvcVersion::V1)?,
        get(&r, "proj.9")?,
    )?;
    assert!(e < 1e-4, "{e}");
    Ok(())
}

#[test]
fn mismatches_say_what_was_expected_and_found() -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_hf(dir.path())?;
    let real = sha(&dir.path().join("model.safetensors"))?;
    let wrong = "0".repeat(64);
    std::fs::write(
        dir.path().join(SUMS_FILE),
        format!(
            "{wrong}  model.safetensors\n{}  config.json\n",
            sha(&dir.path().join("config.json"))?
        ),
    )?;
    let e = err_of(ContentEncoder::load_verified(dir.path()));
    let msg = e.to_string();
    assert!(
        matches!(&e, ContentError::ShaMismatch { expected, found, .. } if *expected == wrong && *found == real),
        "{msg}"
    );
    assert!(
        msg.contains(&wrong) && msg.contains(&real) && msg.contains(SUMS_FILE),
        "{msg}"
    );

    // the checkpoint is right but config.json was edited after the sums were written
    std::fs::write(
        dir.path().join(SUMS_FILE),
        format!(
            "{real}  model.safetensors\n{}  config.json\n",
            sha(&dir.path().join("config.json"))?
        ),
    )?;
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"num_attention_heads": 1}"#,
    )?;
    let e = err_of(ContentEncoder::load_verified(dir.path()));
    assert!(
        matches!(&e, ContentError::ShaMismatch { path, .. } if path.ends_with("config.json")),
        "{e}"
    );
    Ok(())
}

#[test]
fn hubert_base_pt_is_checked_against_the_official_hash() -> TestResult {
    let dir = tempfile::tempdir()?;
    // our small test model under RVC's file name: not the official file
    let pt = dir.path().join("hubert_base.pt");
    std::fs::copy(testdata().join("fairseq.pt"), &pt)?;
    let e = err_of(ContentEncoder::load_verified(dir.path()));
    let msg = e.to_string();
    assert!(matches!(e, ContentError::ShaMismatch { .. }), "{msg}");
    assert!(msg.contains(KNOWN_HASHES[0].sha256), "{msg}");
    assert!(msg.contains("RVC-Project"), "{msg}");

    // a SHA256SUMS line is the user's explicit choice and takes precedence
    std::fs::write(
        dir.path().join(SUMS_FILE),
        format!("{}  hubert_base.pt\n", sha(&pt)?),
    )?;
    let (enc, checked) = ContentEncoder::load_verified(dir.path())?;
    assert_eq!(checked.verification, Verification::SumsFile);
    assert_eq!(checked.config, None);
    assert_eq!(enc.layout(), avatar_content::Layout::Fairseq);
    Ok(())
}

#[test]
fn unvouched_and_missing_files_say_where_to_put_what() -> TestResult {
    // a folder that does not exist
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("models").join("hubert");
    let msg = err_of(ContentEncoder::load_verified(&missing)).to_string();
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(
        msg.contains("hubert_base.pt") && msg.contains("AVATAR_MODELS"),
        "{msg}"
    );

    // an empty folder
    let msg = err_of(ContentEncoder::load_verified(dir.path())).to_string();
    assert!(
        msg.contains("no HuBERT weights") && msg.contains("hubert_base.pt"),
        "{msg}"
    );
    assert!(
        msg.contains("model.safetensors") && msg.contains(SUMS_FILE),
        "{msg}"
    );

    // an HF folder without SHA256SUMS: no official hash exists for it
    copy_hf(dir.path())?;
    let found = sha(&dir.path().join("model.safetensors"))?;
    let msg = err_of(ContentEncoder::load_verified(dir.path())).to_string();
    assert!(msg.contains("cannot be verified"), "{msg}");
    assert!(
        msg.contains(&format!("{found}  model.safetensors")),
        "{msg}"
    );

    // SHA256SUMS that lists other files only
    std::fs::write(dir.path().join(SUMS_FILE), format!("{found}  other.bin\n"))?;
    let msg = err_of(ContentEncoder::load_verified(dir.path())).to_string();
    assert!(msg.contains("has no line for it"), "{msg}");

    // a malformed SHA256SUMS
    std::fs::write(dir.path().join(SUMS_FILE), "not a sums file\n")?;
    assert!(matches!(
        err_of(ContentEncoder::load_verified(dir.path())),
        ContentError::BadSums { .. }
    ));
    Ok(())
}

#[test]
fn default_dir_follows_avatar_models() {
    // The only test that touches the environment.
    std::env::set_var("AVATAR_MODELS", "/somewhere/models");
    assert_eq!(
        assets::default_dir(),
        Path::new("/somewhere/models").join("hubert")
    );
    std::env::remove_var("AVATAR_MODELS");
    assert!(assets::default_dir().ends_with(".cache/avatar/models/hubert"));
}
