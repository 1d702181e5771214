//! The SFT dataset as a Parquet file, readable by pandas, pyarrow, DuckDB and `datasets`
//! (`messages` is a list of `{role, content}` structs, the shape chat templates take).
//!
//! The bytes are deterministic, like the records dataset's (services/adapters): the same
//! examples give a byte-identical file, so a rebuilt dataset can be checked with a hash. For
//! that the writer's `created_by` is fixed (the default names the parquet crate's version),
//! nothing time- or random-dependent is written, and pages are uncompressed.
//!
//! Timestamps are microseconds since the epoch in UTC; finer precision is truncated.

use crate::{DatasetError, SftExample, SftKind, SftMessage, SftRole, SftSplit};
use arrow::array::{
    Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;
use std::io::Write;
use std::sync::Arc;

/// The `created_by` written into every file, instead of the parquet crate's version string.
const CREATED_BY: &str = "avatar";

fn message_fields() -> Fields {
    Fields::from(vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ])
}

fn message_item() -> Arc<Field> {
    Arc::new(Field::new(
        "item",
        DataType::Struct(message_fields()),
        false,
    ))
}

fn record_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

/// The Arrow schema of the SFT dataset: one column per [`SftExample`] field, in field order.
pub fn dataset_arrow_schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, false),
        Field::new("messages", DataType::List(message_item()), false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("source_records", DataType::List(record_item()), false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ])
}

fn batch(schema: SchemaRef, examples: &[SftExample]) -> Result<RecordBatch, DatasetError> {
    let strings = |f: &dyn Fn(&SftExample) -> &str| -> ArrayRef {
        Arc::new(examples.iter().map(|e| Some(f(e))).collect::<StringArray>())
    };
    let all_messages = examples.iter().flat_map(|e| &e.messages);
    let roles: StringArray = all_messages
        .clone()
        .map(|m| Some(m.role.as_str()))
        .collect();
    let contents: StringArray = all_messages.map(|m| Some(m.content.as_str())).collect();
    let messages = StructArray::try_new(
        message_fields(),
        vec![Arc::new(roles) as ArrayRef, Arc::new(contents)],
        None,
    )?;
    let messages = ListArray::try_new(
        message_item(),
        OffsetBuffer::from_lengths(examples.iter().map(|e| e.messages.len())),
        Arc::new(messages),
        None,
    )?;
    let records: StringArray = examples
        .iter()
        .flat_map(|e| &e.source_records)
        .map(|r| Some(r.as_str()))
        .collect();
    let records = ListArray::try_new(
        record_item(),
        OffsetBuffer::from_lengths(examples.iter().map(|e| e.source_records.len())),
        Arc::new(records),
        None,
    )?;
    let timestamps = examples
        .iter()
        .map(|e| e.timestamp.map(|t| t.timestamp_micros()))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        strings(&|e| &e.id),
        strings(&|e| e.split.as_str()),
        Arc::new(messages),
        strings(&|e| e.kind.as_str()),
        Arc::new(records),
        Arc::new(timestamps),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by(CREATED_BY.to_string())
        .set_compression(Compression::UNCOMPRESSED)
        .build()
}

/// Writes `examples` (in the given order) as one Parquet file to `out`, and gives `out` back
/// (to sync a file, or to take the bytes of a `Vec<u8>`).
pub fn write_parquet<W: Write + Send>(examples: &[SftExample], out: W) -> Result<W, DatasetError> {
    let schema = Arc::new(dataset_arrow_schema());
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(writer_properties()))?;
    if !examples.is_empty() {
        writer.write(&batch(schema, examples)?)?;
    }
    Ok(writer.into_inner()?)
}

/// Reads a dataset written by [`write_parquet`] from a file (or any Parquet chunk reader).
pub fn read_parquet<R: ChunkReader + 'static>(input: R) -> Result<Vec<SftExample>, DatasetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(input)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        read_batch(&batch?, &mut out)?;
    }
    Ok(out)
}

/// Reads a dataset held in memory.
pub fn read_parquet_bytes(bytes: impl Into<bytes::Bytes>) -> Result<Vec<SftExample>, DatasetError> {
    read_parquet(bytes.into())
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, DatasetError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| DatasetError::Invalid(format!("missing or mistyped column {name}")))
}

fn child<'a, T: 'static>(parent: &'a dyn Array, what: &str) -> Result<&'a T, DatasetError> {
    parent
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| DatasetError::Invalid(format!("mistyped {what}")))
}

fn read_batch(batch: &RecordBatch, out: &mut Vec<SftExample>) -> Result<(), DatasetError> {
    let id = column::<StringArray>(batch, "id")?;
    let split = column::<StringArray>(batch, "split")?;
    let kind = column::<StringArray>(batch, "kind")?;
    let messages = column::<ListArray>(batch, "messages")?;
    let records = column::<ListArray>(batch, "source_records")?;
    let timestamp = column::<TimestampMicrosecondArray>(batch, "timestamp")?;
    let bad = |i: usize, what: &str| DatasetError::Invalid(format!("row {i}: bad {what}"));
    for i in 0..batch.num_rows() {
        let row_messages = messages.value(i);
        let row_messages = child::<StructArray>(row_messages.as_ref(), "messages")?;
        let roles = row_messages
            .column_by_name("role")
            .ok_or_else(|| bad(i, "messages.role"))?;
        let roles = child::<StringArray>(roles.as_ref(), "messages.role")?;
        let contents = row_messages
            .column_by_name("content")
            .ok_or_else(|| bad(i, "messages.content"))?;
        let contents = child::<StringArray>(contents.as_ref(), "messages.content")?;
        let row_records = records.value(i);
        let row_records = child::<StringArray>(row_records.as_ref(), "source_records")?;
        out.push(SftExample {
            id: id.value(i).to_string(),
            split: SftSplit::parse(split.value(i)).ok_or_else(|| bad(i, "split"))?,
            messages: (0..row_messages.len())
                .map(|j| {
                    Ok(SftMessage {
                        role: SftRole::parse(roles.value(j)).ok_or_else(|| bad(i, "role"))?,
                        content: contents.value(j).to_string(),
                    })
                })
                .collect::<Result<_, DatasetError>>()?,
            kind: SftKind::parse(kind.value(i)).ok_or_else(|| bad(i, "kind"))?,
            source_records: (0..row_records.len())
                .map(|j| row_records.value(j).to_string())
                .collect(),
            timestamp: if timestamp.is_null(i) {
                None
            } else {
                Some(
                    DateTime::<Utc>::from_timestamp_micros(timestamp.value(i))
                        .ok_or_else(|| bad(i, "timestamp"))?,
                )
            },
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Vec<SftExample> {
        let msg = |role, content: &str| SftMessage {
            role,
            content: content.into(),
        };
        vec![
            SftExample {
                id: "a".into(),
                split: SftSplit::Train,
                messages: vec![
                    msg(SftRole::System, "You are Ada."),
                    msg(SftRole::User, "Mary Somerville: tea? 🫖"),
                    msg(SftRole::Assistant, "multi\nline \"yes\""),
                ],
                kind: SftKind::Chat,
                source_records: vec!["r1".into(), "r2".into()],
                timestamp: Some("1843-07-02T09:00:00.123456Z".parse().unwrap()),
            },
            SftExample {
                id: "b".into(),
                split: SftSplit::Heldout,
                messages: vec![msg(SftRole::Assistant, "")],
                kind: SftKind::Text,
                source_records: vec![],
                timestamp: None,
            },
            SftExample {
                id: "c".into(),
                split: SftSplit::Train,
                messages: vec![],
                kind: SftKind::Memory,
                source_records: vec!["m".into()],
                timestamp: Some("2024-01-01T00:00:00Z".parse().unwrap()),
            },
        ]
    }

    #[test]
    fn round_trips_every_field() {
        let bytes = write_parquet(&sample(), Vec::new()).unwrap();
        assert_eq!(read_parquet_bytes(bytes).unwrap(), sample());
        let empty = write_parquet(&[], Vec::new()).unwrap();
        assert!(read_parquet_bytes(empty).unwrap().is_empty());
    }

    #[test]
    fn round_trips_through_a_file() {
        let path =
            std::env::temp_dir().join(format!("avatar-dataset-{}.parquet", std::process::id()));
        let file = write_parquet(&sample(), std::fs::File::create(&path).unwrap()).unwrap();
        file.sync_all().unwrap();
        let back = read_parquet(std::fs::File::open(&path).unwrap());
        let _ = std::fs::remove_file(&path);
        assert_eq!(back.unwrap(), sample());
    }

    #[test]
    fn same_examples_give_identical_bytes() {
        let b1 = write_parquet(&sample(), Vec::new()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b2 = write_parquet(&sample(), Vec::new()).unwrap();
        assert_eq!(b1, b2);
        assert!(b1.starts_with(b"PAR1") && b1.ends_with(b"PAR1"));
        assert!(b1
            .windows(CREATED_BY.len())
            .any(|w| w == CREATED_BY.as_bytes()));
        assert!(!b1.windows(b"parquet-rs".len()).any(|w| w == b"parquet-rs"));
        let mut other = sample();
        other[0].messages[2].content.push('!');
        assert_ne!(write_parquet(&other, Vec::new()).unwrap(), b1);
    }

    #[test]
    fn schema_has_one_column_per_example_field() {
        let names: Vec<String> = dataset_arrow_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let json = serde_json::to_value(&sample()[0]).unwrap();
        let keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        let (mut names_sorted, mut keys_sorted) = (names.clone(), keys);
        names_sorted.sort();
        keys_sorted.sort();
        assert_eq!(names_sorted, keys_sorted);
        assert_eq!(names[..3], ["id", "split", "messages"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_parquet_bytes(b"PAR1 not really".to_vec()).is_err());
        assert!(read_parquet_bytes(Vec::new()).is_err());
    }
}
