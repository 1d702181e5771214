//! Artifacts on object storage (`--blobs s3://…`) end to end, against a real S3 server: moto's,
//! which `infra/s3.sh` starts and `infra/test.sh` exports as AVATAR_TEST_S3.
//!
//! * embedded: ingest keeps no raw file in the data directory, everything still works, and
//!   `forget --source` deletes the object from the bucket;
//! * distributed: an ingest service and a processor with **different data directories** (two
//!   machines) share only the Kafka log and the bucket, and the processor builds the records.

mod common;
use avatar_adapters::ObjectBlobStore;
use avatar_runtime::{sha256_hex, BlobStore};
use common::kafka::Broker;
use common::*;
use std::path::Path;

/// A fresh prefix in the test bucket, as a `--blobs` URL (moto takes any credentials).
fn s3_url() -> Option<(String, String)> {
    let Ok(endpoint) = std::env::var("AVATAR_TEST_S3") else {
        eprintln!("skipping: AVATAR_TEST_S3 not set (infra/s3.sh starts an S3 server; infra/test.sh sets it)");
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("e2e-{}-{nanos}", std::process::id());
    let url = format!(
        "s3://avatar-test/{prefix}?endpoint={endpoint}&allow_http=true&region=us-east-1\
         &access_key_id=test&secret_access_key=test"
    );
    Some((url, format!("s3://avatar-test/{prefix}")))
}

fn with_blobs(data: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--blobs", url];
    all.extend_from_slice(args);
    ok(data, &all)
}

/// Raw files kept in a data directory's own blob folder.
fn raw_files(data: &Path) -> usize {
    let blobs = data.join("blobs");
    if blobs.exists() {
        files_under(&blobs).len()
    } else {
        0
    }
}

#[test]
fn artifacts_live_in_the_bucket_and_forget_deletes_them_there() {
    let Some((url, shown)) = s3_url() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let notes = samples().join("notes");
    with_blobs(
        &data,
        &url,
        &[
            "init",
            "--name",
            "Ada Lovelace",
            "--alias",
            "ada@example.org",
        ],
    );
    with_blobs(&data, &url, &["ingest", notes.to_str().unwrap()]);

    // No raw file in the data directory: they are in the bucket.
    assert_eq!(raw_files(&data), 0);
    let bucket = ObjectBlobStore::open(&url).unwrap();
    let engine = notes.join("engine-notes.md");
    let sha = sha256_hex(&std::fs::read(&engine).unwrap());
    assert!(bucket.contains(&sha).unwrap());

    let status: serde_json::Value =
        serde_json::from_slice(&with_blobs(&data, &url, &["status", "--json"]).stdout).unwrap();
    assert_eq!(status["blobs"], shown.as_str(), "{status}");
    assert!(
        !status.to_string().contains("secret_access_key"),
        "status shows the credentials: {status}"
    );
    let records = json_lines(&with_blobs(&data, &url, &["records", "--json"]));
    assert_eq!(records.len(), 11, "one record per note");

    let out = with_blobs(
        &data,
        &url,
        &["forget", "--source", engine.to_str().unwrap(), "--json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blobs_removed"], 1, "{report}");
    assert!(!bucket.contains(&sha).unwrap(), "forget left the object");

    // An unknown bucket fails up front, saying which (and not the credentials).
    let bad = url.replace("avatar-test", "no-such-bucket");
    let out = cmd(&data)
        .arg("--blobs")
        .arg(&bad)
        .arg("status")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3://no-such-bucket"), "{err}");
    assert!(!err.contains("secret_access_key"), "{err}");
}

#[test]
fn ingest_and_processor_on_two_machines_share_only_the_log_and_the_bucket() {
    let Some((url, _)) = s3_url() else { return };
    let Some(tansu) = std::env::var_os("TANSU_BIN") else {
        eprintln!("skipping: TANSU_BIN not set (infra/kafka.sh install builds tansu; infra/test.sh sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(Path::new(&tansu), &tmp.path().join("broker"));
    let log = broker.url("blobs.e2e", 2);
    let ingest_machine = tmp.path().join("ingest");
    let processor_machine = tmp.path().join("processor");
    let notes = samples().join("notes");

    let on = |data: &Path, args: &[&str]| {
        let mut c = cmd(data);
        c.arg("--log").arg(&log).arg("--blobs").arg(&url).args(args);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "avatar {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    on(
        &ingest_machine,
        &[
            "init",
            "--name",
            "Ada Lovelace",
            "--alias",
            "ada@example.org",
            "--id",
            "ada",
        ],
    );
    on(&ingest_machine, &["ingest", notes.to_str().unwrap()]);
    on(&processor_machine, &["serve", "processor", "--once"]);

    assert_eq!(raw_files(&ingest_machine), 0);
    assert_eq!(raw_files(&processor_machine), 0);
    let records = json_lines(&on(
        &processor_machine,
        &["records", "--json", "--avatar", "ada"],
    ));
    assert_eq!(
        records.len(),
        11,
        "the processor read every note from the bucket"
    );
    let status: serde_json::Value = serde_json::from_slice(
        &on(&processor_machine, &["status", "--json", "--avatar", "ada"]).stdout,
    )
    .unwrap();
    assert_eq!(
        status["dead_letters"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
}
