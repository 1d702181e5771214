//! The local weight folder and its SHA-256 checks.
//!
//! No package registry ships these weights, so users copy them into a folder
//! (`${AVATAR_MODELS:-$HOME/.cache/avatar/models}/hubert`). Every file read from it is hashed
//! first: against the folder's `SHA256SUMS` when there is one, else against the official hashes
//! in [`KNOWN_HASHES`]; a file neither vouches for is refused.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::checkpoint::FOLDER_CANDIDATES;
use crate::error::{ContentError, Result};

/// A published hash, with where it was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownHash {
    pub file: &'static str,
    pub sha256: &'static str,
    pub bytes: u64,
    pub source: &'static str,
}

/// Hashes confirmed from the publisher's own repository; extend only from such a source.
pub const KNOWN_HASHES: &[KnownHash] = &[KnownHash {
    file: "hubert_base.pt",
    sha256: "f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96",
    bytes: 189_507_909,
    source: "sha256.env of RVC-Project/Retrieval-based-Voice-Conversion-WebUI \
             (https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/hubert_base.pt)",
}];

/// Name of the optional checksum file, in `sha256sum` output format.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// `$AVATAR_MODELS`, else `$HOME/.cache/avatar/models` (as the rest of the project).
pub fn models_root() -> PathBuf {
    match std::env::var_os("AVATAR_MODELS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".cache")
            .join("avatar")
            .join("models"),
    }
}

/// Where the HuBERT / ContentVec weights are looked for by default.
pub fn default_dir() -> PathBuf {
    models_root().join("hubert")
}

/// How a file was vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    SumsFile,
    Known(&'static str),
}

/// The files of a checked folder: the checkpoint and, for Hugging Face layouts, its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedModel {
    pub checkpoint: PathBuf,
    pub config: Option<PathBuf>,
    pub sha256: String,
    pub verification: Verification,
}

fn where_to_put(dir: &Path) -> String {
    format!(
        "put RVC's hubert_base.pt into {dir} (from \
         https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/hubert_base.pt, \
         sha256 {sha}), or a HuBERT/ContentVec model in Hugging Face layout (config.json plus \
         model.safetensors or pytorch_model.bin) together with a {SUMS_FILE} file listing them \
         (`cd {dir} && sha256sum config.json model.safetensors > {SUMS_FILE}`); set AVATAR_MODELS \
         to use another models root",
        dir = dir.display(),
        sha = KNOWN_HASHES[0].sha256,
    )
}

/// Find the checkpoint in `dir` and check every file that will be read.
pub fn locate_verified(dir: &Path) -> Result<VerifiedModel> {
    if !dir.is_dir() {
        return Err(ContentError::MissingAsset(format!(
            "HuBERT weight folder {} does not exist: create it and {}",
            dir.display(),
            where_to_put(dir)
        )));
    }
    let checkpoint = FOLDER_CANDIDATES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ContentError::MissingAsset(format!(
                "no HuBERT weights in {} (looked for {}): {}",
                dir.display(),
                FOLDER_CANDIDATES.join(", "),
                where_to_put(dir)
            ))
        })?;
    let sums_path = dir.join(SUMS_FILE);
    let sums = if sums_path.is_file() {
        let text = std::fs::read_to_string(&sums_path).map_err(|source| ContentError::Io {
            path: sums_path.clone(),
            source,
        })?;
        Some(parse_sums(&text).map_err(|reason| ContentError::BadSums {
            path: sums_path.clone(),
            reason,
        })?)
    } else {
        None
    };
    let (sha256, verification) = verify_file(&checkpoint, sums.as_ref())?;
    let config = dir.join("config.json");
    let config = if config.is_file() && checkpoint.file_name() != Some("hubert_base.pt".as_ref()) {
        verify_file(&config, sums.as_ref())?;
        Some(config)
    } else {
        None
    };
    Ok(VerifiedModel {
        checkpoint,
        config,
        sha256,
        verification,
    })
}

/// Hash `path` and compare with its `SHA256SUMS` line, else its published hash.
fn verify_file(
    path: &Path,
    sums: Option<&HashMap<String, String>>,
) -> Result<(String, Verification)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let found = sha256_file(path)?;
    let (expected, source, how) = if let Some(h) = sums.and_then(|s| s.get(&name)) {
        (
            h.clone(),
            format!("listed in {SUMS_FILE}"),
            Verification::SumsFile,
        )
    } else if let Some(k) = KNOWN_HASHES.iter().find(|k| k.file == name) {
        (
            k.sha256.to_string(),
            format!("the official hash of {}, from {}", k.file, k.source),
            Verification::Known(k.source),
        )
    } else {
        let why = match sums {
            Some(_) => format!("{SUMS_FILE} has no line for it"),
            None => format!("the folder has no {SUMS_FILE} and no official hash is known for it"),
        };
        return Err(ContentError::MissingAsset(format!(
            "{} cannot be verified: {why}. If you trust this file, add the line \
             `{found}  {name}` to {SUMS_FILE} in that folder",
            path.display()
        )));
    };
    if found != expected {
        return Err(ContentError::ShaMismatch {
            path: path.to_path_buf(),
            expected,
            found,
            source_of_expected: source,
        });
    }
    Ok((found, how))
}

/// Lower-case hex SHA-256 of a file, read in chunks (the checkpoint is ~190 MB).
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// `sha256sum` output: `<64 hex> <space><space or *><file name>` per line; blank lines and `#`
/// comments ignored. Keys are the file names, values lower-case hex.
pub fn parse_sums(text: &str) -> std::result::Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let bad = || format!("line {} is not `<sha256>  <file>`: {line:?}", i + 1);
        let (hash, rest) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let name = rest.trim_start();
        let name = name.strip_prefix('*').unwrap_or(name);
        let name = name.strip_prefix("./").unwrap_or(name);
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) || name.is_empty() {
            return Err(bad());
        }
        out.insert(name.to_string(), hash.to_ascii_lowercase());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_file_parses_sha256sum_output() {
        let h = "A".repeat(64);
        let text = format!("# comment\n\n{h}  model.safetensors\n{h} *config.json\n");
        let sums = parse_sums(&text).unwrap_or_default();
        assert_eq!(sums.get("model.safetensors"), Some(&"a".repeat(64)));
        assert_eq!(sums.get("config.json"), Some(&"a".repeat(64)));
        assert!(parse_sums("abc  file").is_err());
        assert!(parse_sums(&h).is_err());
    }
}
