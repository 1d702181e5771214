//! LinkedIn `messages.csv` from "Get a copy of your data": a header
//! `CONVERSATION ID,CONVERSATION TITLE,FROM,SENDER PROFILE URL,TO,RECIPIENT PROFILE URLS,DATE,SUBJECT,CONTENT,FOLDER`
//! (older downloads lack `RECIPIENT PROFILE URLS`), RFC 4180 quoting with multi-line fields,
//! `DATE` as `2023-05-01 10:00:00 UTC`, newest message first.
//!
//! Choices that a reader of the records should know about:
//! - Columns are found by header name, so the older and newer layouts both read.
//! - The thread is the conversation title, else its id; `SUBJECT` (InMail) becomes the title.
//!   The CSV has no message ids or reply links.
//! - Rows without content (an attachment alone) and the `SPAM` folder are skipped and counted.
//! - Items come out oldest first.
//! - A row with the wrong number of fields is reported in a warning, not merged.
//!
//! The CSV reader is a small hand-written RFC 4180 one: the file is tiny next to a mailbox,
//! and it saves a dependency.

use avatar_schemas::RecordKind;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::{ErrorKind, FormatError, Item, Parsed};

/// The header line is unmistakable.
pub fn looks_like(_name: &str, head: &str) -> bool {
    let first = head.lines().next().unwrap_or("").to_ascii_uppercase();
    first.starts_with("CONVERSATION ID,") && first.contains(",FROM,") && first.contains("CONTENT")
}

/// Parse LinkedIn's `messages.csv`.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!("{name}: not valid UTF-8 at byte {}; LinkedIn writes UTF-8, so the file was re-saved in another encoding (open the original from the download)", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file has no content"),
        ));
    }
    let mut rows = Records::new(text);
    let header = match rows.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(e.into_error(name)),
        None => {
            return Err(FormatError::new(
                ErrorKind::Empty,
                format!("{name}: the file has no rows"),
            ))
        }
    };
    let col = |n: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(n));
    let (Some(c_from), Some(c_content), Some(c_date)) = (col("FROM"), col("CONTENT"), col("DATE"))
    else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: a CSV without FROM, DATE and CONTENT columns is not LinkedIn's messages.csv"),
        ));
    };
    let (c_id, c_title, c_subject, c_folder) = (
        col("CONVERSATION ID"),
        col("CONVERSATION TITLE"),
        col("SUBJECT"),
        col("FOLDER"),
    );

    let mut out = Parsed {
        format: "linkedin",
        ..Parsed::default()
    };
    let (mut bad_rows, mut no_dates) = (Vec::new(), 0usize);
    for (n, row) in rows.by_ref().enumerate() {
        let line = n + 2;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                out.warnings
                    .push(format!("{name}: record {line}: {}", e.message()));
                break;
            }
        };
        if row.len() == 1 && row[0].trim().is_empty() {
            continue;
        }
        if row.len() != header.len() {
            bad_rows.push(line);
            continue;
        }
        let get = |c: Option<usize>| {
            c.and_then(|c| row.get(c))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let content = get(Some(c_content));
        let spam = get(c_folder).is_some_and(|f| f.eq_ignore_ascii_case("SPAM"));
        let Some(content) = content.filter(|_| !spam) else {
            out.skipped += 1;
            continue;
        };
        let timestamp = get(Some(c_date)).and_then(date);
        if timestamp.is_none() {
            no_dates += 1;
        }
        out.items.push(Item {
            kind: RecordKind::Message,
            thread: get(c_title)
                .or(get(c_id))
                .map(|s| s.to_string())
                .unwrap_or_else(|| "LinkedIn conversation".to_string()),
            timestamp,
            author: get(Some(c_from)).map(str::to_string),
            text: content.replace("\r\n", "\n"),
            title: get(c_subject).map(str::to_string),
            message_id: None,
            in_reply_to: None,
            from_owner: false,
        });
    }
    if out.items.len() > 1 && out.items[0].timestamp > out.items[out.items.len() - 1].timestamp {
        out.items.reverse();
    }
    if !bad_rows.is_empty() {
        out.warnings.push(format!(
            "{name}: {} record(s) have a different number of fields than the header and were left out (records {:?})",
            bad_rows.len(),
            &bad_rows[..bad_rows.len().min(10)]
        ));
    }
    if no_dates > 0 {
        out.warnings.push(format!(
            "{name}: {no_dates} message(s) have no readable DATE"
        ));
    }
    Ok(out)
}

/// `2023-05-01 10:00:00 UTC` (and the same without the zone).
fn date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.strip_suffix(" UTC").unwrap_or(s);
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|d| d.and_utc())
        .or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        })
}

/// Why a CSV record could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum CsvError {
    /// A quoted field that never closes: the file was cut off.
    UnclosedQuote,
    /// Something other than a comma or line end right after a closing quote.
    TextAfterQuote,
}

impl CsvError {
    fn message(&self) -> &'static str {
        match self {
            CsvError::UnclosedQuote => {
                "a quoted field never closes (the file was cut off); the rest was not read"
            }
            CsvError::TextAfterQuote => "text after a closing quote; the rest was not read",
        }
    }

    fn into_error(self, name: &str) -> FormatError {
        let kind = match self {
            CsvError::UnclosedQuote => ErrorKind::Truncated,
            CsvError::TextAfterQuote => ErrorKind::Malformed,
        };
        FormatError::new(kind, format!("{name}: header: {}", self.message()))
    }
}

/// RFC 4180 records: fields split by commas, `"…"` quoting with `""` for a quote, CRLF or
/// LF line ends, line breaks allowed inside quotes. Stops after the first error.
pub struct Records<'a> {
    rest: &'a str,
    failed: bool,
}

impl<'a> Records<'a> {
    pub fn new(text: &'a str) -> Self {
        Records {
            rest: text,
            failed: false,
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Vec<String>, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = self.rest.char_indices().peekable();
        let mut in_quotes = false;
        let mut after_quote = false;
        let mut end = self.rest.len();
        while let Some((i, c)) = chars.next() {
            if in_quotes {
                if c == '"' {
                    if chars.peek().is_some_and(|&(_, n)| n == '"') {
                        chars.next();
                        field.push('"');
                    } else {
                        in_quotes = false;
                        after_quote = true;
                    }
                } else {
                    field.push(c);
                }
                continue;
            }
            match c {
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    after_quote = false;
                }
                '\n' => {
                    end = i + 1;
                    break;
                }
                '\r' if chars.peek().is_some_and(|&(_, n)| n == '\n') => {}
                '"' if field.is_empty() && !after_quote => in_quotes = true,
                _ if after_quote => {
                    self.failed = true;
                    return Some(Err(CsvError::TextAfterQuote));
                }
                _ => field.push(c),
            }
        }
        if in_quotes {
            self.failed = true;
            return Some(Err(CsvError::UnclosedQuote));
        }
        fields.push(field);
        self.rest = self.rest.get(end..).unwrap_or("");
        Some(Ok(fields))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// No real LinkedIn download is in ../shared/fixtures (its README says so). Written by
    /// hand with the header and quoting of LinkedIn's "Get a copy of your data" messages.csv
    /// (as documented in LinkedIn's help and seen in public parsers of it).
    const SAMPLE: &str = include_str!("../tests/samples/linkedin/messages.csv");

    #[test]
    fn sample_messages_csv() {
        let p = crate::parse(
            "Basic_LinkedInDataExport_05-01-2023/messages.csv",
            None,
            SAMPLE.as_bytes(),
        )
        .unwrap();
        assert_eq!(p.format, "linkedin");
        let got: Vec<(&str, &str, &str)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.thread.as_str(),
                    i.author.as_deref().unwrap(),
                    i.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("2-YjQ1ZWM3ZjktN2I1Mi00ZDU0LWE5NmEtMzk5NjEwYTk4MWNmXzAxMg==", "Maria Lopez", "Hi Alex, great talk at RustConf! Would you be open to a chat about a role on our team?"),
                ("2-YjQ1ZWM3ZjktN2I1Mi00ZDU0LWE5NmEtMzk5NjEwYTk4MWNmXzAxMg==", "Alex Kim", "Thanks Maria!\n\nSure, \"next week\" works. Tuesday, 3pm?"),
                ("Project Atlas", "Dev Patel", "Kickoff notes: scope, owners, dates."),
            ]
        );
        assert_eq!(p.skipped, 2, "an attachment-only row and a SPAM row");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2023, 4, 28, 9, 15, 2).unwrap()
        );
        assert_eq!(p.items[0].title.as_deref(), Some("Role at Ferrous Labs"));
        assert_eq!(p.items[1].title, None);
    }

    #[test]
    fn older_layout_and_bad_rows() {
        let csv = "CONVERSATION ID,CONVERSATION TITLE,FROM,SENDER PROFILE URL,TO,DATE,SUBJECT,CONTENT,FOLDER\r\n\
                   c1,,Ann,https://www.linkedin.com/in/ann,Bo,2020-01-02 03:04:05 UTC,,hello,INBOX\r\n\
                   c1,,Ann,too,few\r\n";
        let p = parse("messages.csv", csv.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].thread, "c1");
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("[3]"), "{:?}", p.warnings);
    }

    #[test]
    fn csv_reader_follows_rfc_4180() {
        let rows: Vec<_> = Records::new("a,\"b,\"\"c\"\"\nd\",\r\n,x\n").collect();
        assert_eq!(
            rows,
            [
                Ok(vec![
                    "a".to_string(),
                    "b,\"c\"\nd".to_string(),
                    String::new()
                ]),
                Ok(vec![String::new(), "x".to_string()])
            ]
        );
        let rows: Vec<_> = Records::new("a,\"open\nnever closed").collect();
        assert_eq!(rows, [Err(CsvError::UnclosedQuote)]);
        let rows: Vec<_> = Records::new("\"a\"b,c\nd").collect();
        assert_eq!(rows, [Err(CsvError::TextAfterQuote)]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse("x", b"").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse("x", b"a,b\n\xff").unwrap_err().kind,
            ErrorKind::Encoding
        );
        assert_eq!(
            parse("x", b"a,b,c\n1,2,3\n").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(
            parse("x", b"\"FROM,DATE").unwrap_err().kind,
            ErrorKind::Truncated
        );
        // Cut inside a quoted field: the rows before it are kept, with a warning.
        let cut = &SAMPLE[..SAMPLE.find("Sure,").unwrap()];
        let p = parse("x", cut.as_bytes()).unwrap();
        assert!(
            p.warnings.iter().any(|w| w.contains("cut off")),
            "{:?}",
            p.warnings
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("messages.csv", &bytes);
            }

            #[test]
            fn never_panics_on_csv_like_text(s in "[a-z,\"\r\n ]{0,200}") {
                let _ = parse("messages.csv", format!("CONVERSATION ID,FROM,DATE,CONTENT\n{s}").as_bytes());
            }

            #[test]
            fn quoted_fields_round_trip(fields in proptest::collection::vec("[a-z,\"\n ]{0,12}", 1..6)) {
                let line: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
                let text = line.join(",") + "\r\n";
                let rows: Vec<_> = Records::new(&text).collect();
                prop_assert_eq!(rows, vec![Ok(fields)]);
            }
        }
    }
}
