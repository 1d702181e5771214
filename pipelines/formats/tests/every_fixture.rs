//! Every real sample under ../shared/fixtures goes through sniffing + parsing without a
//! format hint: nothing panics, and each file lands on the parser its folder is about.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn every_fixture_is_sniffed_to_its_parser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    if !root.is_dir() {
        eprintln!("skipping: ../shared/fixtures not found");
        return;
    }
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    let mut report = Vec::new();
    for path in &all {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "SOURCES.md" || name == "README.md" {
            continue;
        }
        let bytes = std::fs::read(path).unwrap();
        let result = avatar_formats::parse(&name, None, &bytes);
        let folder = rel.split('/').next().unwrap_or("");
        let got = match &result {
            Ok(p) => p.format.to_string(),
            Err(e) => format!("error:{}", e.kind.as_str()),
        };
        report.push(format!("{rel}\t{got}"));
        // Folders whose every file is one export format.
        let want: &[&str] = match folder {
            "whatsapp" if name.ends_with(".txt") => &["whatsapp"],
            "telegram" if name.ends_with(".json") => &["telegram"],
            "discord" => &["discord"],
            "mbox" if name.ends_with(".mbox") => &["mbox"],
            "maildir" => &["eml"],
            "eml" => &["eml", "msg"],
            "irc" => &["irc"],
            "mattermost" => &["mattermost"],
            "signal" if !name.ends_with(".json") => &["signal"],
            "instagram" => &["messenger"],
            _ => &[],
        };
        if !want.is_empty() {
            assert!(
                want.contains(&got.as_str()),
                "{rel}: sniffed as {got}, expected {want:?}"
            );
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        report.len() > 400,
        "expected ~500 fixtures, saw {}",
        report.len()
    );
}
