//! Helpers for the end-to-end tests: run the real `avatar` binary on a data directory.
#![allow(dead_code)]

pub mod kafka;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_avatar")
}

pub fn cmd(data: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("--data").arg(data).arg("--quiet");
    c.env_remove("AVATAR_DATA")
        .env_remove("AVATAR_ID")
        .env_remove("AVATAR_LOG")
        .env_remove("AVATAR_BLOBS");
    // Word search only, unless a test asks for the embedding model (tests/semantic.rs).
    c.env("AVATAR_EMBED_MODEL", "none");
    c
}

/// A file or folder under the models root (`$AVATAR_MODELS`, default ~/.cache/avatar/models)
/// that `infra/fetch-models.sh WHICH` installs, if it is there (else a skip message).
pub fn installed_model(rel: &str, which: &str) -> Option<PathBuf> {
    let base = std::env::var_os("AVATAR_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/avatar/models"))
        })?;
    let p = base.join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: no {rel}; run infra/fetch-models.sh {which}");
        None
    }
}

/// The installed embedding model folder, if any (`infra/fetch-models.sh` puts it there).
pub fn embed_model() -> Option<PathBuf> {
    installed_model("all-MiniLM-L6-v2/model.safetensors", "minilm")
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Runs `avatar --data DATA ARGS…` and returns its output, failing the test on a non-zero exit.
pub fn ok(data: &Path, args: &[&str]) -> Output {
    let out = cmd(data).args(args).output().expect("run avatar");
    assert!(
        out.status.success(),
        "avatar {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_no_panic(&out);
    out
}

pub fn assert_no_panic(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "avatar panicked: {err}");
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every line of stdout parsed as JSON.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The demo samples shipped in the repository.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/demo")
}

pub fn init_ada(data: &Path) {
    ok(
        data,
        &[
            "init",
            "--name",
            "Ada Lovelace",
            "--alias",
            "ada@example.org",
            "--alias",
            "+44 7700 900123",
        ],
    );
}

/// The real-world fixtures folder, when present.
pub fn fixtures() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/fixtures not found");
        None
    }
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read a test folder") {
            let p = e.expect("a folder entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` whose bytes contain `needle` (ASCII case-insensitive): how the
/// forget and vault tests check that text is gone from the disk. A file that disappears
/// between listing and reading (another process's temporary) is not there to hold it.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| match std::fs::read(p) {
            Ok(bytes) => bytes
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => panic!("cannot read {}: {e}", p.display()),
        })
        .collect()
}

/// Runs `git -C DIR ARGS…` as Ada (identity given, so commits work on any machine).
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Ada Lovelace",
            "-c",
            "user.email=ada@example.org",
        ])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the program `bin` (from Debian's `package`) runs here; prints a skip message if not.
pub fn installed_program(bin: &str, package: &str) -> bool {
    let ok = Command::new(bin).arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipping: {bin} not installed (apt-get install {package})");
    }
    ok
}
