//! The services' one config file, layered as defaults → file → environment → flags.
//!
//! The file is TOML: top-level `data`, `log`, `blobs` and `avatar`, and one table per service whose keys
//! are that service's flags (`[processor] group = "blue"` is `--group blue` of `serve
//! processor`). It works by turning each key into the environment variable the flag already
//! reads (`AVATAR_PROCESSOR_GROUP`), set only when the environment does not have it: so a real
//! environment variable wins over the file, and a flag over both.
//!
//! ```toml
//! data = "/srv/avatar"
//! log = "kafka://kafka:9092/avatar.events"
//! blobs = "s3://avatar-blobs/prod?region=eu-west-1"
//! [processor]
//! health = "0.0.0.0:9100"
//! [trainer]
//! min_new = 200
//! every = "24h"
//! [query]
//! addr = "0.0.0.0:8377"
//! [ingest]
//! connectors = "/etc/avatar/connectors.toml"
//! ```

use anyhow::{bail, Context, Result};
use std::path::Path;

/// The tables the file may have, and the top-level keys.
const SECTIONS: &[&str] = &["processor", "trainer", "query", "ingest"];
const TOP: &[(&str, &str)] = &[
    ("data", "AVATAR_DATA"),
    ("log", "AVATAR_LOG"),
    ("blobs", "AVATAR_BLOBS"),
    ("avatar", "AVATAR_ID"),
];

/// The (variable, value) pairs a config file stands for.
pub fn variables(text: &str) -> Result<Vec<(String, String)>> {
    let table: toml::Table = toml::from_str(text)?;
    let mut out = Vec::new();
    for (key, value) in &table {
        if let Some((_, var)) = TOP.iter().find(|(k, _)| k == key) {
            out.push((var.to_string(), scalar(key, value)?));
        } else if SECTIONS.contains(&key.as_str()) {
            let Some(section) = value.as_table() else {
                bail!("`{key}` must be a table: [{key}]");
            };
            for (k, v) in section {
                let var = format!(
                    "AVATAR_{}_{}",
                    key.to_uppercase(),
                    k.to_uppercase().replace('-', "_")
                );
                out.push((var, scalar(&format!("{key}.{k}"), v)?));
            }
        } else {
            bail!(
                "unknown key `{key}` (known: data, log, blobs, avatar, and the tables [{}])",
                SECTIONS.join("], [")
            );
        }
    }
    Ok(out)
}

fn scalar(key: &str, v: &toml::Value) -> Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!("`{key}` must be a string, number or boolean"),
    })
}

/// Applies the file named by `--config FILE` (or AVATAR_CONFIG) before the command line is
/// parsed. Runs first thing in `main`, before any thread exists.
pub fn apply(args: &[String]) -> Result<()> {
    let mut path = std::env::var("AVATAR_CONFIG").ok();
    for (i, a) in args.iter().enumerate() {
        if a == "--config" {
            path = args.get(i + 1).cloned();
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.to_string());
        }
    }
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(Path::new(&path))
        .with_context(|| format!("cannot read the config file {path}"))?;
    let vars = variables(&text).with_context(|| format!("config file {path}"))?;
    for (var, value) in vars {
        if std::env::var_os(&var).is_none() {
            std::env::set_var(var, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_the_variables_the_flags_read() {
        let vars = variables(
            "data = \"/srv\"\nlog = \"kafka://k:9092\"\n[trainer]\nmin_new = 200\n[processor]\nhealth = \"0.0.0.0:9100\"\n",
        )
        .unwrap();
        assert!(vars.contains(&("AVATAR_DATA".into(), "/srv".into())));
        assert!(vars.contains(&("AVATAR_LOG".into(), "kafka://k:9092".into())));
        assert!(vars.contains(&("AVATAR_TRAINER_MIN_NEW".into(), "200".into())));
        assert!(vars.contains(&("AVATAR_PROCESSOR_HEALTH".into(), "0.0.0.0:9100".into())));
        assert!(variables("colour = 1").is_err());
        assert!(variables("processor = 1").is_err());
        assert!(variables("[query]\naddr = [1]").is_err());
    }
}
