#![allow(clippy::unwrap_used)]
use super::*;
use chrono::TimeZone;
use std::io::Write;
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/slack"
);

/// A small export written by hand in the layout Slack documents for workspace exports
/// ("How to read Slack data exports": users.json, channels.json, groups.json, dms.json,
/// mpims.json, one folder per conversation with YYYY-MM-DD.json day files; DM folders are
/// named by the DM id, group DMs by their `mpdm-…` name).
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples/slack/export");

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(FIXTURES);
    if !dir.exists() {
        eprintln!("skipping: ../shared/fixtures not found");
        return None;
    }
    Some(dir.to_path_buf())
}

fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Every file below `dir`, as (`prefix` + relative path, bytes).
fn folder_entries(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((format!("{prefix}{rel}"), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

type Row<'a> = (&'a str, Option<&'a str>, &'a str, Option<&'a str>);

fn rows(p: &Parsed) -> Vec<Row<'_>> {
    p.items
        .iter()
        .map(|i| {
            (
                i.thread.as_str(),
                i.author.as_deref(),
                i.text.as_str(),
                i.in_reply_to.as_deref(),
            )
        })
        .collect()
}

#[test]
fn sample_export_zip_resolves_names_threads_and_markup() {
    let bytes = zip_of(&folder_entries(Path::new(SAMPLE), ""));
    let p = parse("export.zip", &bytes).unwrap();
    assert_eq!(p.format, "slack");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let dm = "Ann Lindqvist, Bo N.";
    let root = Some("1709283660.000200");
    assert_eq!(
        rows(&p),
        [
            (dm, Some("Bo N."), "Can you review my PR before Friday? ann@example.org if it breaks", None),
            (dm, Some("Ann Lindqvist"), "Sure, tomorrow morning", None),
            (
                "#general",
                Some("Ann Lindqvist"),
                "Welcome @Cy Okafor! Notes are at the wiki (https://wiki.example.org/start) & https://example.org",
                None
            ),
            ("#general", Some("Cy Okafor"), "Thanks! <3", root),
            ("#general", Some("Bo N."), "I fixed the link in the wiki, see #general", root),
            ("#general", Some("Bo N."), "is out for lunch, back at 1 @here", None),
            (
                "Ann Lindqvist, Bo N., Cy Okafor",
                Some("Cy Okafor"),
                "Lunch at noon, @Bo N. and @dana?",
                None
            ),
        ]
    );
    // channel_join, bot_message, the bot user's message, a file-only message, channel_topic
    assert_eq!(p.skipped, 5);
    let last = &p.items[6];
    assert_eq!(last.message_id.as_deref(), Some("1709380800.123456"));
    assert_eq!(
        last.timestamp,
        Some(Utc.timestamp_opt(1_709_380_800, 123_456_000).unwrap())
    );
    assert!(p
        .items
        .iter()
        .all(|i| !i.from_owner && i.kind == RecordKind::Message));
}

#[test]
fn export_in_a_top_folder_of_the_zip_and_sniffed_without_hint() {
    let bytes = zip_of(&folder_entries(
        Path::new(SAMPLE),
        "Acme Slack export Mar 1 2024/",
    ));
    let p = crate::parse("Acme Slack export.zip", None, &bytes).unwrap();
    assert_eq!(p.format, "slack");
    assert_eq!(p.items.len(), 7);
}

#[test]
fn lone_sample_day_file_warns_and_is_sniffed() {
    let bytes = std::fs::read(Path::new(SAMPLE).join("general/2024-03-01.json")).unwrap();
    let p = crate::parse("general/2024-03-01.json", None, &bytes).unwrap();
    assert_eq!(p.format, "slack");
    // Ann has a user_profile in the message; Cy and Bo are left as ids.
    assert_eq!(
        rows(&p),
        [
            (
                "#general",
                Some("Ann Lindqvist"),
                "Welcome @U056EF7GH! Notes are at the wiki (https://wiki.example.org/start) & https://example.org",
                None
            ),
            ("#general", Some("U056EF7GH"), "Thanks! <3", Some("1709283660.000200")),
            ("#general", Some("U034CD5EF"), "I fixed the link in the wiki, see #general", Some("1709283660.000200")),
        ]
    );
    // join, bot_message and the bot's message (a bot_id and no users.json to say otherwise)
    assert_eq!(p.skipped, 3);
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].contains("users.json was missing"),
        "{}",
        p.warnings[0]
    );
}

#[test]
fn fixture_day_files_alone() {
    let Some(dir) = fixtures() else { return };
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let p = crate::parse(
        "slackdump__B75B4C7__2025-01-10.json",
        None,
        &read("slackdump__B75B4C7__2025-01-10.json"),
    )
    .unwrap();
    assert_eq!(p.format, "slack");
    let got: Vec<(&str, &str, Option<&str>)> = p
        .items
        .iter()
        .map(|i| {
            (
                i.author.as_deref().unwrap(),
                i.text.as_str(),
                i.message_id.as_deref(),
            )
        })
        .collect();
    // Named from each message's user_profile.real_name.
    assert_eq!(
        got,
        [
            ("WgO268Xc0KtFylJ", "CYmxt38hm", Some("1736478514.897649")),
            (
                "WgO268Xc0KtFylJ",
                "dtUeWsjQpQO8 TFoFBeQ",
                Some("1736478630.905399")
            ),
        ]
    );
    assert_eq!(
        p.items[1].in_reply_to, None,
        "a thread parent is not a reply"
    );
    assert_eq!(
        p.items[0].timestamp,
        Some(Utc.timestamp_opt(1_736_478_514, 897_649_000).unwrap())
    );
    assert_eq!(p.skipped, 0);

    let p = crate::parse(
        "slackdump__B75B4C7__2025-01-11.json",
        None,
        &read("slackdump__B75B4C7__2025-01-11.json"),
    )
    .unwrap();
    // 11 messages: channel_join, a tombstone (deleted thread parent) and a file-only message
    // are skipped; 8 have text.
    assert_eq!(p.items.len(), 8);
    assert_eq!(p.skipped, 3);
    assert_eq!(
        p.items[0].text,
        "V360Tq4QS6YZsODngkVaYehvZ7y9cBwcRZYRVTylAqxW8qRo5oQlBegR"
    );
    assert_eq!(p.items[0].author.as_deref(), Some("VFRmaaKq7LC7tyRP"));
    assert_eq!(p.items[0].in_reply_to.as_deref(), Some("1736478630.905399"));
    // The reply under the deleted parent keeps its chain.
    assert_eq!(p.items[4].in_reply_to.as_deref(), Some("1736554828.343759"));
    // Text with a file attached is kept.
    assert!(p.items[6].text.starts_with("cZKd73xRR8vIPEV5c60tVwk"));

    let p = crate::parse(
        "slackdump__B75B4C7__2025-01-18.json",
        None,
        &read("slackdump__B75B4C7__2025-01-18.json"),
    )
    .unwrap();
    assert_eq!(
        (p.items.len(), p.skipped),
        (0, 1),
        "a bot's (edited) message"
    );
    let p = crate::parse(
        "slackdump__bot_message.json",
        None,
        &read("slackdump__bot_message.json"),
    )
    .unwrap();
    assert_eq!((p.format, p.items.len(), p.skipped), ("slack", 0, 1));
}

#[test]
fn fixture_export_as_zip_resolves_users() {
    let Some(dir) = fixtures() else { return };
    // The slackdump export folder, laid out again as Slack zips it.
    let layout = [
        ("slackdump__users.json", "users.json"),
        ("slackdump__channels.json", "channels.json"),
        ("slackdump__groups.json", "groups.json"),
        ("slackdump__dms.json", "dms.json"),
        ("slackdump__mpims.json", "mpims.json"),
        (
            "slackdump__B75B4C7__2025-01-10.json",
            "B75B4C7/2025-01-10.json",
        ),
        (
            "slackdump__B75B4C7__2025-01-11.json",
            "B75B4C7/2025-01-11.json",
        ),
        (
            "slackdump__B75B4C7__2025-01-18.json",
            "B75B4C7/2025-01-18.json",
        ),
        (
            "slackdump__B75B4C7__2025-01-24.json",
            "B75B4C7/2025-01-24.json",
        ),
    ];
    let entries: Vec<(String, Vec<u8>)> = layout
        .iter()
        .map(|(f, to)| (to.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect();
    let p = crate::parse("slackdump.zip", None, &zip_of(&entries)).unwrap();
    assert_eq!(p.format, "slack");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.items.len(), 12);
    assert_eq!(p.skipped, 4);
    assert!(p.items.iter().all(|i| i.thread == "#B75B4C7"));
    let mut authors: Vec<&str> = p.items.iter().filter_map(|i| i.author.as_deref()).collect();
    authors.sort();
    authors.dedup();
    assert_eq!(authors, ["VFRmaaKq7LC7tyRP", "WgO268Xc0KtFylJ"]);
    let last = p.items.last().unwrap();
    assert_eq!(last.message_id.as_deref(), Some("1737716342.919259"));
    assert!(last.text.starts_with("9b0OqQlrnlthrXFilJeZPoCnD"));
}

#[test]
fn perceval_api_answers() {
    let Some(dir) = fixtures() else { return };
    let bytes = std::fs::read(dir.join("perceval__slack_history.json")).unwrap();
    let p = crate::parse("perceval__slack_history.json", None, &bytes).unwrap();
    assert_eq!(p.format, "slack");
    let got: Vec<(&str, &str)> = p
        .items
        .iter()
        .map(|i| (i.author.as_deref().unwrap(), i.text.as_str()))
        .collect();
    // conversations.history lists newest first; items come out oldest first. The bot message
    // and the join are skipped; the legacy file comment keeps only the comment.
    assert_eq!(
        got,
        [
            ("U0001", "jsmanrique: tenemos que dar métricas super chulas"),
            ("U0001", "¿vale?"),
            ("U0002", "hey acs"),
            ("U0002", "tengo el móvil"),
            ("U0003", "Thanks."),
        ]
    );
    assert_eq!(p.skipped, 2);
    assert_eq!(
        p.items[0].timestamp,
        Some(Utc.timestamp_opt(1_427_135_733, 68_000).unwrap())
    );
    for f in [
        "perceval__slack_user_U0001.json",
        "perceval__slack_members1.json",
    ] {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        assert_eq!(
            crate::sniff::sniff(f, &bytes).unwrap(),
            crate::sniff::Format::Slack,
            "{f}"
        );
        let e = crate::parse(f, None, &bytes).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("holds no messages"), "{}", e.message);
    }
}

#[test]
fn metadata_files_are_sniffed_and_refused() {
    let Some(dir) = fixtures() else { return };
    for f in [
        "slackdump__users.json",
        "slackdump__channels.json",
        "slackdump__export__channels.json",
        "slackdump__dms.json",
        "slackdump__groups.json",
        "slackdump__mpims.json",
    ] {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        assert_eq!(
            crate::sniff::sniff(f, &bytes).unwrap(),
            crate::sniff::Format::Slack,
            "{f}"
        );
        let e = crate::parse(f, None, &bytes).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{f}");
        assert!(e.message.contains("whole export"), "{}", e.message);
    }
}

#[test]
fn markup_rendering() {
    let mut names = HashMap::new();
    names.insert("U1".to_string(), "Ann".to_string());
    let r = |s: &str| render(s, &names);
    assert_eq!(
        r("hi <@U1> and <@U2|bo> and <@U3>"),
        "hi @Ann and @bo and @U3"
    );
    assert_eq!(
        r("<!channel> <!subteam^S1|@devs> <!date^1392734382^{date}|Feb 18>"),
        "@channel @devs Feb 18"
    );
    assert_eq!(
        r("<http://x.org/a?b=1&amp;c=2|docs> <http://x.org>"),
        "docs (http://x.org/a?b=1&c=2) http://x.org"
    );
    assert_eq!(
        r("<https://example.org|example.org> <mailto:a@b.c>"),
        "example.org a@b.c"
    );
    assert_eq!(
        r("a < b &gt; c &amp;amp; <unclosed"),
        "a < b > c &amp; <unclosed"
    );
    assert_eq!(r("1 <2 <@U1>"), "1 <2 @Ann");
}

#[test]
fn timestamps() {
    assert_eq!(
        parse_ts("1.5"),
        Some(Utc.timestamp_opt(1, 500_000_000).unwrap())
    );
    assert_eq!(
        parse_ts("1427135733"),
        Some(Utc.timestamp_opt(1_427_135_733, 0).unwrap())
    );
    assert_eq!(parse_ts("-1.0"), None);
    assert_eq!(parse_ts("1.x"), None);
    assert_eq!(parse_ts("99999999999999999"), None);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let e = parse("x.json", b"[{\"type\": \"message\", \"ts\": \"1.2\"").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Truncated);
    let e = parse("x.json", b"[{\"type\": \"message\",, }]").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert_eq!(parse("x.json", b" \n").unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(
        parse("x.json", b"[\"\xff\"]").unwrap_err().kind,
        ErrorKind::Encoding
    );
    assert_eq!(
        parse("x.json", b"{\"a\": 1}").unwrap_err().kind,
        ErrorKind::Unsupported
    );
    assert_eq!(
        parse("x.json", b"[1, 2]").unwrap_err().kind,
        ErrorKind::Malformed
    );
    // A zip that is not an export, and one cut in half.
    let other = zip_of(&[("notes.txt".to_string(), b"hi".to_vec())]);
    assert_eq!(
        parse("x.zip", &other).unwrap_err().kind,
        ErrorKind::Unsupported
    );
    let whole = zip_of(&folder_entries(Path::new(SAMPLE), ""));
    let e = parse("x.zip", &whole[..whole.len() / 2]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Truncated, "{}", e.message);
}

#[test]
fn a_broken_day_file_is_a_warning_and_the_rest_is_read() {
    let mut entries = folder_entries(Path::new(SAMPLE), "");
    entries.push(("general/2024-03-03.json".into(), b"[{\"type\": ".to_vec()));
    entries.push(("general/notes.json".into(), b"{}".to_vec()));
    let p = parse("x.zip", &zip_of(&entries)).unwrap();
    assert_eq!(p.items.len(), 7);
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("general/2024-03-03.json"));
    assert!(p.warnings[1].contains("1 JSON file(s)"));
}

#[test]
fn a_zip_bomb_entry_is_not_inflated() {
    let mut entries = folder_entries(Path::new(SAMPLE), "");
    // 64 MiB of spaces compress about 1000x: over the ratio limit.
    let mut big = vec![b' '; 64 << 20];
    big[0] = b'[';
    big[(64 << 20) - 1] = b']';
    entries.push(("general/2024-03-04.json".into(), big));
    let p = parse("x.zip", &zip_of(&entries)).unwrap();
    assert_eq!(p.items.len(), 7);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("2024-03-04") && w.contains("limit")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn looks_like_is_specific() {
    assert!(looks_like(
        "x",
        r#"[{"type": "message", "ts": "1709283660.000200"}]"#
    ));
    assert!(!looks_like(
        "x",
        r#"{"messages": [{"type": "message", "date_unixtime": "1"}]}"#
    ));
    assert!(!looks_like(
        "x",
        r#"{"guild": {}, "messages": [{"type": "Default", "timestamp": "2020-01-01"}]}"#
    ));
    assert!(!looks_like("x.json", "[]"));
    assert!(looks_like("export/dms.json", "[]"));
    assert!(!looks_like("x", "hello"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse("x.json", &bytes);
            let mut zipped = b"PK\x03\x04".to_vec();
            zipped.extend_from_slice(&bytes);
            let _ = parse("x.zip", &zipped);
        }

        #[test]
        fn never_panics_on_json_like_text(s in r#"[{}\[\]",:0-9a-z<>@|!#&; .\n\\]{0,200}"#) {
            let _ = parse("x.json", format!("[{{\"type\":\"message\",\"ts\":\"1.2\",\"text\":{s}").as_bytes());
            let _ = parse("x.json", s.as_bytes());
            let _ = render(&s, &HashMap::new());
        }

        #[test]
        fn corrupted_export_zips_never_panic(at in 0usize..4096, byte in any::<u8>()) {
            let mut bytes = zip_of(&folder_entries(Path::new(SAMPLE), ""));
            let i = at % bytes.len();
            bytes[i] = byte;
            let _ = parse("x.zip", &bytes);
        }
    }
}
