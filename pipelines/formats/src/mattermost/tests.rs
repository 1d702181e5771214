#![allow(clippy::unwrap_used)]
use super::*;
use chrono::TimeZone;
use std::path::Path;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/mattermost"
);

/// A bulk export written by hand from Mattermost's documented bulk format ("Bulk loading
/// data" / `mmctl export create`): a `version` line first, then teams, channels, users,
/// posts with their `replies` nested, direct channels and direct posts; times in ms.
const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/samples/mattermost/bulk_export.jsonl"
);

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
fn perceval_api_posts() {
    let dir = Path::new(FIXTURES);
    if !dir.exists() {
        eprintln!("skipping: ../shared/fixtures not found");
        return;
    }
    let bytes = std::fs::read(dir.join("perceval__mattermost_posts.json")).unwrap();
    let p = crate::parse("perceval__mattermost_posts.json", None, &bytes).unwrap();
    assert_eq!(p.format, "mattermost");
    let ch = "cf6axeehstft9eq4nq5uk5jqby";
    let a = Some("8tbwn7uikpdy3gpse6fgiie5co");
    // Oldest first (the API's `order` is newest first).
    assert_eq!(
        rows(&p),
        [
            (ch, a, "hola valerio!", None),
            (ch, a, "me alegra que estés por aquí", None),
            (ch, a, "vaya partido el otro día de la Roma, eh?", None),
            (
                ch,
                Some("haqnaxe4cpn4jfsx3w7x3y96ea"),
                "ya ves! en semis!",
                None
            ),
            (
                ch,
                a,
                "El Madrid también en semis",
                Some("pot46s7kjif7xx6x91ua7m4d7y")
            ),
        ]
    );
    assert_eq!(
        p.items[3].message_id.as_deref(),
        Some("pot46s7kjif7xx6x91ua7m4d7y")
    );
    assert_eq!(
        p.items[0].timestamp,
        Some(Utc.timestamp_millis_opt(1_523_526_199_108).unwrap())
    );
    assert_eq!(p.skipped, 0);
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].contains("2 author(s) only by id"),
        "{}",
        p.warnings[0]
    );
}

#[test]
fn bulk_export_sample() {
    let bytes = std::fs::read(SAMPLE).unwrap();
    let p = crate::parse("bulk_export.jsonl", None, &bytes).unwrap();
    assert_eq!(p.format, "mattermost");
    let root = "town-square/1709283660000/ann";
    let dm = "Ann Lindqvist, bo";
    assert_eq!(
        rows(&p),
        [
            (
                "Town Square",
                Some("Ann Lindqvist"),
                "Release 2.1 is out :tada: notes at https://example.org/notes",
                None
            ),
            (
                "Town Square",
                Some("bo"),
                "Congrats! Does it fix the login bug?",
                Some(root)
            ),
            (
                "Town Square",
                Some("Ann Lindqvist"),
                "Yes, and the export one",
                Some(root)
            ),
            (
                "Developers",
                Some("Ann Lindqvist"),
                "I will look at the arm64 build after lunch",
                None
            ),
            (dm, Some("bo"), "Lunch at 12?", None),
            (
                dm,
                Some("Ann Lindqvist"),
                "Sure",
                Some("ann+bo/1709294400000/bo")
            ),
        ]
    );
    assert_eq!(p.items[0].message_id.as_deref(), Some(root));
    // a join (system post), a webhook post, a post with only an attachment
    assert_eq!(p.skipped, 3);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        p.items[5].timestamp,
        Some(Utc.timestamp_millis_opt(1_709_294_460_000).unwrap())
    );
}

#[test]
fn a_broken_bulk_line_is_reported_and_the_rest_read() {
    let mut text = std::fs::read_to_string(SAMPLE).unwrap();
    text.push_str("{\"type\":\"post\",\"post\":{\"channel\":\"dev\"\n");
    let p = parse("x.jsonl", text.as_bytes()).unwrap();
    assert_eq!(p.items.len(), 6);
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("line 14"), "{}", p.warnings[0]);
}

#[test]
fn errors() {
    assert_eq!(parse("x", b"  ").unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(
        parse("x", b"{\"order\": [\"\xff\"]}").unwrap_err().kind,
        ErrorKind::Encoding
    );
    assert_eq!(
        parse("x", b"{\"order\": [], \"posts\": {\"a\": {\"id\": ")
            .unwrap_err()
            .kind,
        ErrorKind::Truncated
    );
    assert_eq!(
        parse("x", b"{\"foo\": 1}").unwrap_err().kind,
        ErrorKind::Unsupported
    );
    assert_eq!(
        parse("x", b"{\"a\":1}\n{\"b\":2}\n").unwrap_err().kind,
        ErrorKind::Unsupported
    );
    assert_eq!(parse("x", b"[1,2]").unwrap_err().kind, ErrorKind::Malformed);
}

#[test]
fn looks_like_both_shapes_only() {
    assert!(looks_like("x", "{\"type\":\"version\",\"version\":1}\n"));
    assert!(looks_like(
        "x",
        "{\"order\": [\"a\"], \"posts\": {\"a\": {\"create_at\": 1, \"channel_id\": \"c\"}}}"
    ));
    assert!(!looks_like("x", "{\"type\": \"message\", \"ts\": \"1.2\"}"));
    assert!(!looks_like("x", "{\"messages\": []}"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse("x", &bytes);
        }

        #[test]
        fn never_panics_on_json_like_lines(s in r#"[{}\[\]",:0-9a-z_ \n]{0,200}"#) {
            let _ = parse("x", format!("{{\"type\":\"post\",\"post\":{s}").as_bytes());
            let _ = parse("x", format!("{{\"order\":[],\"posts\":{s}").as_bytes());
            let _ = parse("x", s.as_bytes());
        }
    }
}
