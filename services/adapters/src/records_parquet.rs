//! The records dataset as a Parquet file, readable by pandas, pyarrow, DuckDB and Spark.
//!
//! The bytes are deterministic: the same records give a byte-identical file, which is what lets
//! a replay of the log be checked against a previous export with a hash. For that the writer's
//! `created_by` is fixed (the default names the parquet crate's version), nothing time- or
//! random-dependent is written, and pages are uncompressed (no pure-Rust codec is enabled in
//! this build, and the C codecs are not worth their compile time here).
//!
//! Timestamps are stored as microseconds since the epoch in UTC (the Parquet/pandas norm);
//! sub-microsecond precision is truncated.

use crate::{record_kind_from_str, sync_dir, temp_name, OrBackend};
use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use avatar_runtime::{Result, StoreError};
use avatar_schemas::Record;
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs;
use std::path::Path;
use std::sync::Arc;

/// The `created_by` written into every file, instead of the parquet crate's version string.
const CREATED_BY: &str = "avatar";

/// The Arrow schema of the records dataset: one column per [`Record`] field, in field order.
pub fn records_arrow_schema() -> Schema {
    let utf8 = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Schema::new(vec![
        utf8("id", false),
        utf8("avatar", false),
        utf8("source", false),
        utf8("format", false),
        utf8("kind", false),
        utf8("thread", false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        utf8("author", true),
        Field::new("author_is_person", DataType::Boolean, false),
        utf8("text", false),
        utf8("title", true),
        utf8("message_id", true),
        utf8("in_reply_to", true),
        utf8("artifact", false),
        Field::new("ordinal", DataType::UInt32, false),
    ])
}

fn batch(schema: SchemaRef, records: &[Record]) -> Result<RecordBatch> {
    fn text<'a>(records: &'a [Record], f: impl Fn(&'a Record) -> &'a str) -> ArrayRef {
        Arc::new(records.iter().map(|r| Some(f(r))).collect::<StringArray>())
    }
    fn opt<'a>(records: &'a [Record], f: impl Fn(&'a Record) -> Option<&'a str>) -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<StringArray>())
    }
    let columns: Vec<ArrayRef> = vec![
        text(records, |r| &r.id),
        text(records, |r| &r.avatar),
        text(records, |r| &r.source),
        text(records, |r| &r.format),
        text(records, |r| r.kind.as_str()),
        text(records, |r| &r.thread),
        Arc::new(
            records
                .iter()
                .map(|r| r.timestamp.map(|t| t.timestamp_micros()))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        opt(records, |r| r.author.as_deref()),
        Arc::new(
            records
                .iter()
                .map(|r| Some(r.author_is_person))
                .collect::<BooleanArray>(),
        ),
        text(records, |r| &r.text),
        opt(records, |r| r.title.as_deref()),
        opt(records, |r| r.message_id.as_deref()),
        opt(records, |r| r.in_reply_to.as_deref()),
        text(records, |r| &r.artifact),
        Arc::new(records.iter().map(|r| r.ordinal).collect::<UInt32Array>()),
    ];
    RecordBatch::try_new(schema, columns).backend()
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by(CREATED_BY.to_string())
        .set_compression(Compression::UNCOMPRESSED)
        .build()
}

/// Writes `records` (in the given order) to `path`, atomically: the file appears complete
/// under its name or not at all. The parent folder must exist.
pub fn write_records_parquet(path: &Path, records: &[Record]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| StoreError::Backend(format!("bad dataset path {}", path.display())))?;
    let tmp = dir.join(temp_name(name));
    let written = (|| -> Result<()> {
        let schema = Arc::new(records_arrow_schema());
        let file = fs::File::create(&tmp)?;
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(writer_properties())).backend()?;
        if !records.is_empty() {
            writer.write(&batch(schema, records)?).backend()?;
        }
        let file = writer.into_inner().backend()?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// Reads a records dataset written by [`write_records_parquet`] (or any file with the same
/// column names and types).
pub fn read_records_parquet(path: &Path) -> Result<Vec<Record>> {
    let file = fs::File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .backend()?
        .build()
        .backend()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.backend()?;
        read_batch(&batch, &mut out)?;
    }
    Ok(out)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "records dataset: missing or mistyped column {name}"
            ))
        })
}

fn read_batch(batch: &RecordBatch, out: &mut Vec<Record>) -> Result<()> {
    let s = |name| column::<StringArray>(batch, name);
    let (id, avatar, source, format, kind, thread) = (
        s("id")?,
        s("avatar")?,
        s("source")?,
        s("format")?,
        s("kind")?,
        s("thread")?,
    );
    let (author, text, title, message_id, in_reply_to, artifact) = (
        s("author")?,
        s("text")?,
        s("title")?,
        s("message_id")?,
        s("in_reply_to")?,
        s("artifact")?,
    );
    let timestamp = column::<TimestampMicrosecondArray>(batch, "timestamp")?;
    let author_is_person = column::<BooleanArray>(batch, "author_is_person")?;
    let ordinal = column::<UInt32Array>(batch, "ordinal")?;
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    let bad =
        |i: usize, what: &str| StoreError::Backend(format!("records dataset row {i}: bad {what}"));
    for i in 0..batch.num_rows() {
        let kind_text = kind.value(i);
        out.push(Record {
            id: id.value(i).to_string(),
            avatar: avatar.value(i).to_string(),
            source: source.value(i).to_string(),
            format: format.value(i).to_string(),
            kind: record_kind_from_str(kind_text).ok_or_else(|| bad(i, "kind"))?,
            thread: thread.value(i).to_string(),
            timestamp: if timestamp.is_null(i) {
                None
            } else {
                Some(
                    DateTime::<Utc>::from_timestamp_micros(timestamp.value(i))
                        .ok_or_else(|| bad(i, "timestamp"))?,
                )
            },
            author: opt(author, i),
            author_is_person: author_is_person.value(i),
            text: text.value(i).to_string(),
            title: opt(title, i),
            message_id: opt(message_id, i),
            in_reply_to: opt(in_reply_to, i),
            artifact: artifact.value(i).to_string(),
            ordinal: ordinal.value(i),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::record;
    use avatar_schemas::RecordKind;

    fn sample() -> Vec<Record> {
        vec![
            record("a", "ada", "Dear Babbage, the engine… 👋"),
            Record {
                timestamp: None,
                author: None,
                title: None,
                message_id: None,
                author_is_person: false,
                kind: RecordKind::Memory,
                ordinal: u32::MAX,
                artifact: String::new(),
                ..record("b", "ada", "")
            },
            Record {
                timestamp: Some("1815-12-10T00:00:00Z".parse().unwrap()),
                in_reply_to: Some("<a@example.org>".into()),
                kind: RecordKind::Message,
                ..record("c", "ada", "multi\nline \"text\"")
            },
        ]
    }

    #[test]
    fn round_trips_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.parquet");
        write_records_parquet(&path, &sample()).unwrap();
        assert_eq!(read_records_parquet(&path).unwrap(), sample());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
    }

    #[test]
    fn same_records_give_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (dir.path().join("1.parquet"), dir.path().join("2.parquet"));
        write_records_parquet(&p1, &sample()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_records_parquet(&p2, &sample()).unwrap();
        let (b1, b2) = (fs::read(&p1).unwrap(), fs::read(&p2).unwrap());
        assert_eq!(b1, b2);
        assert!(b1.starts_with(b"PAR1") && b1.ends_with(b"PAR1"));
        assert!(
            b1.windows(CREATED_BY.len())
                .any(|w| w == CREATED_BY.as_bytes()),
            "fixed created_by"
        );
        assert!(
            !b1.windows(b"parquet-rs".len()).any(|w| w == b"parquet-rs"),
            "no crate version string"
        );
        // And different records give different bytes (the check is not vacuous).
        let mut other = sample();
        other[0].text.push('!');
        write_records_parquet(&p2, &other).unwrap();
        assert_ne!(fs::read(&p2).unwrap(), b1);
    }

    #[test]
    fn writes_an_empty_dataset_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.parquet");
        write_records_parquet(&path, &[]).unwrap();
        assert!(read_records_parquet(&path).unwrap().is_empty());
        write_records_parquet(&path, &sample()).unwrap();
        assert_eq!(read_records_parquet(&path).unwrap().len(), 3);
    }

    #[test]
    fn schema_has_one_column_per_record_field() {
        let schema = records_arrow_schema();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        // The Record's serde field names, in declaration order.
        let json = serde_json::to_value(record("a", "b", "c")).unwrap();
        let keys: Vec<_> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        let mut sorted_keys = keys;
        sorted_keys.sort_unstable();
        assert_eq!(sorted_names, sorted_keys);
        assert_eq!(
            schema.field_with_name("timestamp").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(schema.field_with_name("title").unwrap().is_nullable());
        assert!(!schema.field_with_name("id").unwrap().is_nullable());
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_records_parquet(&dir.path().join("nope.parquet")).is_err());
    }
}
