//! `avatar privacy report`: what redaction removed from the training set, by kind and by
//! source. It reads the counts that `avatar dataset build` wrote (privacy.json); the values
//! themselves are never stored there, so nothing here can print them.

use crate::commands::Ctx;
use anyhow::{Context, Result};
use avatar_dataset::{PiiKind, PrivacyReport};
use serde_json::json;

pub fn report(ctx: &Ctx, as_json: bool) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let path = crate::llm::privacy_path(&app.dir, &avatar.avatar_id);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no dataset has been built for {} yet: run `avatar dataset build` first",
            avatar.avatar_id
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let report: PrivacyReport = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a privacy report", path.display()))?;
    if as_json {
        println!(
            "{}",
            json!({
                "avatar": avatar.avatar_id,
                "redacted": report.redacted,
                "names": report.names,
                "examples": report.examples,
                "records": report.records,
                "total": report.stats.total,
                "by_kind": report.stats.by_kind,
                "by_source": report.stats.by_source,
            })
        );
        return Ok(());
    }
    if !report.redacted {
        println!(
            "redaction was OFF for the last dataset build (--keep-pii): the training set holds third parties' data as ingested"
        );
        return Ok(());
    }
    println!(
        "{} pieces of third parties' data redacted from {} training conversations ({} records){}",
        report.stats.total,
        report.examples,
        report.records,
        if report.names {
            ", names replaced by [PERSON_n]"
        } else {
            "; names kept (`avatar dataset build --redact-names` replaces them)"
        }
    );
    println!("by kind:");
    for kind in PiiKind::ALL {
        let n = report.stats.by_kind.get(&kind).copied().unwrap_or(0);
        println!("  {:<15} {n:>7}", kind.as_str());
    }
    if !report.stats.by_source.is_empty() {
        println!("by source:");
        for (source, kinds) in &report.stats.by_source {
            let total: u64 = kinds.values().sum();
            let detail: Vec<String> = kinds
                .iter()
                .map(|(k, n)| format!("{} {n}", k.as_str()))
                .collect();
            println!("  {total:>7}  {source}  ({})", detail.join(", "));
        }
    }
    Ok(())
}
