#![allow(clippy::unwrap_used)]
use super::*;
use chrono::TimeZone;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/irc");

/// Logs written by hand in the default line formats of irssi (`log_timestamp = "%H:%M "`,
/// `--- Log opened`/`--- Day changed` markers, autolog path `<network>/<#channel>.log`),
/// WeeChat's logger plugin (`%Y-%m-%d %H:%M:%S`, tab-separated prefix and message, file
/// `irc.<server>.<#channel>.weechatlog`) and ZNC's log module (`[%H:%M:%S]`, `*** Joins:`,
/// one file per day under `<#channel>/`), with CRLF endings and one Latin-1 line.
const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples/irc");

fn fixture(name: &str) -> Option<Vec<u8>> {
    let dir = Path::new(FIXTURES);
    if !dir.exists() {
        eprintln!("skipping: ../shared/fixtures not found");
        return None;
    }
    Some(std::fs::read(dir.join(name)).unwrap())
}

fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(SAMPLES).join(rel)).unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
    Some(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
}

fn by_author(p: &Parsed) -> Vec<(&str, &str)> {
    p.items
        .iter()
        .map(|i| (i.author.as_deref().unwrap(), i.text.as_str()))
        .collect()
}

#[test]
fn supybot_ceph_log() {
    let Some(bytes) = fixture("perceval__supybot_valid.log") else {
        return;
    };
    let p = crate::parse("perceval__supybot_valid.log", None, &bytes).unwrap();
    assert_eq!(p.format, "irc");
    // 99 lines: 49 `<nick> text` with text, 1 action, 46 `***` joins/quits/nick changes,
    // 1 bot notice (`-supy-bot- …`), 1 empty `<benpol>`, 1 blank line.
    assert_eq!(p.items.len(), 50);
    assert_eq!(p.skipped, 48);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(p.items.iter().all(|i| i.thread == "#ceph"));
    let second = &p.items[1];
    assert_eq!(second.author.as_deref(), Some("benpol"));
    assert_eq!(second.text, "they're related to fragmentation?");
    assert_eq!(second.timestamp, utc(2012, 10, 17, 9, 16, 29));
    assert_eq!(by_author(&p)[2], ("benpol", "benpol is wondering..."));
    // A line saved with HTML escapes still reads.
    assert!(by_author(&p).contains(&(
        "joao",
        "just by the volume of traffic that linux-kernel imposes on my mail account, > -> I'm assuming that's certainly a possibility"
    )));
    let last = p.items.last().unwrap();
    assert_eq!(last.author.as_deref(), Some("gregaf"));
    assert_eq!(
        last.text,
        "but I may be wrong or debugging at the wrong level..."
    );
    assert_eq!(last.timestamp, utc(2012, 10, 17, 23, 42, 26));
    assert!(p
        .items
        .iter()
        .all(|i| i.message_id.is_none() && !i.from_owner));
}

#[test]
fn supybot_day_logs_with_odd_lines() {
    let Some(bytes) = fixture("perceval__supybot_2012_10_17.log") else {
        return;
    };
    let p = crate::parse("perceval__supybot_2012_10_17.log", None, &bytes).unwrap();
    assert_eq!(p.format, "irc");
    assert_eq!(
        by_author(&p),
        [
            ("benpol", "So the performance degradations people are seeing over time with btrfs, people feel that theyr"),
            ("benpol", "they're related to fragmentation?"),
            ("benpol", "benpol is wondering..."),
            ("benpol", "if so, have there been any improvements in performance over time with the auto-defrag option enabled for the btrfs mount points?"),
            ("benpol", "benpol is still wondering..."),
            ("Tv_", "joao: vger is a *huge* mailing list host, and it's quite unlikely to have issues, apart from a bad attitude toward non-old school users"),
        ]
    );
    // An empty notice, a quit, a join, an empty message and two empty actions.
    assert_eq!(p.skipped, 6);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    let bytes = fixture("perceval__supybot_2012_10_18.log").unwrap();
    let p = crate::parse("perceval__supybot_2012_10_18.log", None, &bytes).unwrap();
    assert_eq!(p.format, "irc");
    assert_eq!(p.items.len(), 4);
    assert_eq!(p.skipped, 4);
    assert_eq!(by_author(&p)[2], ("guyfry", "林中鹏"));
    assert_eq!(p.items[3].timestamp, utc(2012, 10, 18, 19, 35, 30));
}

#[test]
fn irssi_log_dates_come_from_its_markers() {
    let name = "irssi/libera/#rust-beginners.log";
    let p = crate::parse(name, None, &sample(name)).unwrap();
    assert_eq!(p.format, "irc");
    assert_eq!(
        by_author(&p),
        [
            ("ann", "is there a way to borrow twice?"),
            ("mod", "ann: only immutably"),
            ("ann", "ann reads the book again"),
            ("ann", "thanks!"),
        ]
    );
    assert!(p.items.iter().all(|i| i.thread == "#rust-beginners"));
    assert_eq!(p.items[0].timestamp, utc(2016, 6, 14, 23, 59, 0));
    assert_eq!(
        p.items[2].timestamp,
        utc(2016, 6, 15, 0, 1, 0),
        "after `Day changed`"
    );
    // Log opened/closed, Day changed, join, topic, mode, nick change, quit.
    assert_eq!(p.skipped, 8);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("read as UTC"));
}

#[test]
fn weechat_log() {
    let name = "irc.libera.#weechat.weechatlog";
    let p = crate::parse(name, None, &sample(name)).unwrap();
    assert_eq!(p.format, "irc");
    assert_eq!(
        by_author(&p),
        [
            ("alice", "hello everyone"),
            ("bob", "hi alice, did the <b>build</b> pass?"),
            ("bob", "bob waves"),
        ]
    );
    assert!(p.items.iter().all(|i| i.thread == "#weechat"));
    assert_eq!(p.items[1].timestamp, utc(2016, 6, 14, 10, 1, 30));
    // join, mode, empty message, quit
    assert_eq!(p.skipped, 4);
}

#[test]
fn znc_log_takes_date_and_channel_from_its_path() {
    let name = "znc/#avatar/2016-06-14.log";
    let p = crate::parse(name, None, &sample(name)).unwrap();
    assert_eq!(p.format, "irc");
    assert_eq!(
        by_author(&p),
        [
            ("alice", "anyone tried the 1.2 release?"),
            ("bob", "bob nods"),
            ("bob", "yes, works for me"),
            ("bobby", "café break"),
        ]
    );
    assert!(p.items.iter().all(|i| i.thread == "#avatar"));
    assert_eq!(p.items[0].timestamp, utc(2016, 6, 14, 10, 0, 5));
    // join, NickServ notice, nick change, quit
    assert_eq!(p.skipped, 4);
    assert!(
        p.warnings.iter().any(|w| w.contains("Latin-1")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn names_give_channel_and_date() {
    assert_eq!(
        channel_in_name("#ceph.2016-06-14.log").as_deref(),
        Some("#ceph")
    );
    assert_eq!(
        channel_in_name("logs/#ceph_20160614.log").as_deref(),
        Some("#ceph")
    );
    assert_eq!(
        channel_in_name("irc.oftc.#ceph-devel.weechatlog").as_deref(),
        Some("#ceph-devel")
    );
    assert_eq!(
        channel_in_name("net/#chan/2016-01-01.log").as_deref(),
        Some("#chan")
    );
    assert_eq!(channel_in_name("notes.log"), None);
    assert_eq!(
        date_in_name("#ceph.2016-06-14.log"),
        NaiveDate::from_ymd_opt(2016, 6, 14)
    );
    assert_eq!(
        date_in_name("#ceph_20160614.log"),
        NaiveDate::from_ymd_opt(2016, 6, 14)
    );
    assert_eq!(date_in_name("#ceph_2016-13-40.log"), None);
    assert_eq!(date_in_name("x123456789.log"), None);
}

#[test]
fn time_only_lines_without_a_date_have_no_timestamp() {
    let log = "[10:00] <ann> hi\n[10:01] <bo> hello\nthis is not irc\n[10:02] * ann waves\n";
    let p = parse("chat.log", log.as_bytes()).unwrap();
    assert_eq!(p.items.len(), 3);
    assert!(p
        .items
        .iter()
        .all(|i| i.timestamp.is_none() && i.thread == "chat"));
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("1 line(s)") && p.warnings[0].contains("line 3"));
    assert!(p.warnings[1].contains("no date"));
    let p = parse("#x.2020-02-29.log", log.as_bytes()).unwrap();
    assert_eq!(p.items[2].timestamp, utc(2020, 2, 29, 10, 2, 0));
    assert_eq!(p.items[0].thread, "#x");
}

#[test]
fn zones_are_applied() {
    let log = "2016-06-28T14:18:55+0230  <mg> Hello!\n2016-06-28T14:18:55-02:00  <mg> again\n2016-06-28T14:18:55Z  <mg> z\n";
    let p = parse("x.log", log.as_bytes()).unwrap();
    let t: Vec<_> = p.items.iter().map(|i| i.timestamp).collect();
    assert_eq!(
        t,
        [
            utc(2016, 6, 28, 11, 48, 55),
            utc(2016, 6, 28, 16, 18, 55),
            utc(2016, 6, 28, 14, 18, 55)
        ]
    );
    assert!(p.warnings.is_empty());
}

#[test]
fn other_text_is_not_irc() {
    assert!(!looks_like(
        "notes.txt",
        "Dear diary,\ntoday I wrote code.\n10:00 meeting\n"
    ));
    assert!(!looks_like(
        "app.log",
        "2016-01-01T10:00:00Z INFO started\n2016-01-01T10:00:01Z WARN slow\n"
    ));
    assert!(looks_like("x.log", "[10:00] <a> hi\n[10:01] <b> yo\n"));
    let e = parse("notes.txt", b"Dear diary,\ntoday I wrote code.\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(parse("x.log", b"\n \n").unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(
        parse("x.log", b"[10:00] <a> \0").unwrap_err().kind,
        ErrorKind::Binary
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse("#x.2016-01-01.log", &bytes);
            let _ = looks_like("x", &String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_irc_like_lines(s in r"([\[\]0-9:T+\-Z <>@*!#\t&;a-zé]{0,40}\n){0,8}") {
            let _ = parse("#c_20160101.log", s.as_bytes());
            let _ = looks_like("x", &s);
        }

        #[test]
        fn every_said_line_is_one_item(texts in proptest::collection::vec("[a-zA-Z0-9 ,.?]{1,30}", 1..20)) {
            let log: String = texts
                .iter()
                .enumerate()
                .map(|(i, t)| format!("[10:{:02}] <nick{i}> x{t}\n", i % 60))
                .collect();
            let p = parse("#c.log", log.as_bytes()).unwrap();
            prop_assert_eq!(p.items.len(), texts.len());
            for (item, t) in p.items.iter().zip(&texts) {
                let want = format!("x{t}");
                prop_assert_eq!(item.text.as_str(), want.trim_end());
            }
        }
    }
}
