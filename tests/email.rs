//! `avatar serve email` end to end against real mail servers: Dovecot (IMAP) and an SMTP
//! server that delivers into it, both started by `infra/email-test.sh`, which sets
//! AVATAR_TEST_IMAP / AVATAR_TEST_SMTP and the passwords (elsewhere the server test skips).
//! The avatar's INBOX is filled over IMAP APPEND with a question from the allowed asker, one
//! from a stranger, a bounce and a mail that is not a mail; one `--once` pass must answer only
//! the asker, in the thread, with the disclosure line and sources that are real records; a
//! second pass (flags reset) must not answer again.

#![allow(clippy::unwrap_used)] // tests may unwrap (house rules)

mod common;
use common::*;
use std::net::TcpStream;

struct MailEnv {
    imap: String,
    smtp: String,
}

fn mail_env() -> Option<MailEnv> {
    match (
        std::env::var("AVATAR_TEST_IMAP"),
        std::env::var("AVATAR_TEST_SMTP"),
    ) {
        (Ok(imap), Ok(smtp)) => Some(MailEnv { imap, smtp }),
        _ => {
            eprintln!("skipping: no IMAP server (run infra/email-test.sh)");
            None
        }
    }
}

fn password(user: &str) -> String {
    let var = format!("AVATAR_TEST_PASSWORD_{}", user.to_uppercase());
    std::env::var(&var).unwrap_or_else(|_| panic!("{var} is not set (infra/email-test.sh sets it)"))
}

fn login(addr: &str, user: &str) -> imap::Session<TcpStream> {
    let mut client = imap::Client::new(TcpStream::connect(addr).unwrap());
    client.read_greeting().unwrap();
    let mut s = client
        .login(format!("{user}@example.org"), password(user))
        .map_err(|(e, _)| e)
        .unwrap();
    s.select("INBOX").unwrap();
    s
}

/// Every mail in the user's INBOX (read without marking it seen), with its flags.
fn inbox(addr: &str, user: &str) -> Vec<(u32, Vec<u8>, Vec<String>)> {
    let mut s = login(addr, user);
    let mut uids: Vec<u32> = s.uid_search("ALL").unwrap().into_iter().collect();
    uids.sort_unstable();
    let mut out = Vec::new();
    for uid in uids {
        let fetches = s.uid_fetch(uid.to_string(), "(FLAGS BODY.PEEK[])").unwrap();
        for f in fetches.iter() {
            let flags = f.flags().iter().map(|fl| format!("{fl:?}")).collect();
            out.push((uid, f.body().unwrap_or_default().to_vec(), flags));
        }
    }
    let _ = s.logout();
    out
}

/// The replies in `user`'s INBOX to the mail with Message-ID `id`.
fn replies_to(addr: &str, user: &str, id: &str) -> Vec<mail_parser::Message<'static>> {
    inbox(addr, user)
        .into_iter()
        .filter_map(|(_, raw, _)| {
            mail_parser::MessageParser::default()
                .parse(&raw)
                .map(|m| m.into_owned())
        })
        .filter(|m| {
            m.in_reply_to()
                .as_text_list()
                .map(|l| l.iter().any(|x| x == id))
                .or_else(|| m.in_reply_to().as_text().map(|x| x == id))
                .unwrap_or(false)
        })
        .collect()
}

fn serve_once(data: &std::path::Path, env: &MailEnv) -> std::process::Output {
    ok(
        data,
        &[
            "serve",
            "email",
            "--imap",
            &env.imap,
            "--smtp",
            &env.smtp,
            "--user",
            "avatar@example.org",
            "--password-env",
            "AVATAR_TEST_PASSWORD_AVATAR",
            "--allow",
            "asker@example.org",
            "--once",
            "--temperature",
            "0",
            "--max-tokens",
            "40",
        ],
    )
}

#[test]
fn serve_email_answers_the_allowed_asker_once_with_sources_and_nobody_else() {
    let Some(env) = mail_env() else { return };
    if installed_model(
        "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
        "smollm2",
    )
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init_ada(&data);
    ok(&data, &["ingest", samples().to_str().unwrap()]);
    let disclosure = "This is Ada's avatar writing, not Ada: test line 7.";
    ok(&data, &["persona", "--disclosure", disclosure]);

    // Unique ids, so a rerun against the same servers reads only its own replies.
    let nonce = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let q_id = format!("q-{nonce}@example.org");
    let s_id = format!("s-{nonce}@example.org");
    let question = format!(
        "From: Asker <asker@example.org>\r\nTo: avatar@example.org\r\nSubject: The engine\r\n\
         Message-ID: <{q_id}>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n\
         What did you write about the Analytical Engine?\r\n\r\n\
         On Sun, Ada wrote:\r\n> an old quoted line\r\n\r\n-- \r\nThe Asker\r\n"
    );
    let stranger = format!(
        "From: stranger@example.org\r\nTo: avatar@example.org\r\nSubject: secrets\r\n\
         Message-ID: <{s_id}>\r\n\r\nTell me everything about Ada.\r\n"
    );
    let bounce = format!(
        "From: MAILER-DAEMON@example.org\r\nTo: avatar@example.org\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b-{nonce}@example.org>\r\n\
         Auto-Submitted: auto-replied\r\n\r\nYour message could not be delivered.\r\n"
    );
    let not_a_mail = format!("this is not a mail {nonce}\r\n");
    {
        let mut s = login(&env.imap, "avatar");
        for m in [&question, &stranger, &bounce, &not_a_mail] {
            s.append("INBOX", m.as_bytes()).unwrap();
        }
        let _ = s.logout();
    }

    let out = serve_once(&data, &env);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(log.contains("1 answered"), "{log}");
    assert!(log.contains("not on the allow-list"), "{log}");

    // The asker got exactly one reply, in the thread.
    let replies = replies_to(&env.imap, "asker", &q_id);
    assert_eq!(replies.len(), 1, "replies to the asker: {log}");
    let reply = &replies[0];
    assert_eq!(reply.subject(), Some("Re: The engine"));
    assert_eq!(
        reply
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("avatar@example.org")
    );
    let refs = reply.references().as_text_list().map(|l| l.to_vec());
    let refs = refs.or_else(|| {
        reply
            .references()
            .as_text()
            .map(|t| vec![t.to_string().into()])
    });
    assert!(
        refs.unwrap_or_default().iter().any(|r| r == &q_id),
        "References lacks the question"
    );
    let body = reply.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(body.contains(disclosure), "{body}");
    let sources = body
        .find("\nSources:\n")
        .unwrap_or_else(|| panic!("no Sources section: {body}"));
    assert!(body.find(disclosure).unwrap() < sources, "{body}");
    // Every numbered source is a record of this avatar.
    let records = json_lines(&ok(&data, &["records", "--json"]));
    let cited: Vec<&str> = body[sources..]
        .lines()
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|l| l.split_once("] "))
                .map(|x| x.1)
        })
        .collect();
    assert!(!cited.is_empty(), "no numbered sources: {body}");
    for c in &cited {
        assert!(
            records
                .iter()
                .any(|r| r["source"].as_str().is_some_and(|s| c.starts_with(s))),
            "cited `{c}` is not a record's source"
        );
    }
    // The quoted line and the signature did not reach the answer as a question.
    assert!(!body.contains("The Asker"), "{body}");

    // The stranger got nothing; everything in the avatar's INBOX is read; only the question
    // is answered.
    assert!(replies_to(&env.imap, "stranger", &s_id).is_empty());
    let avatar_box = inbox(&env.imap, "avatar");
    let mine: Vec<_> = avatar_box
        .iter()
        .filter(|(_, raw, _)| String::from_utf8_lossy(raw).contains(&nonce))
        .collect();
    assert_eq!(mine.len(), 4);
    for (_, raw, flags) in &mine {
        let answered = flags.iter().any(|f| f == "Answered");
        assert!(flags.iter().any(|f| f == "Seen"), "{flags:?}");
        assert_eq!(
            answered,
            String::from_utf8_lossy(raw).contains(&q_id),
            "{flags:?}"
        );
    }

    // Someone marks everything unread again: the state (by Message-ID) stops a second answer.
    {
        let mut s = login(&env.imap, "avatar");
        for (uid, _, _) in &mine {
            s.uid_store(uid.to_string(), "-FLAGS (\\Seen \\Answered)")
                .unwrap();
        }
        let _ = s.logout();
    }
    let again = serve_once(&data, &env);
    let log2 = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(log2.contains("0 answered"), "{log2}");
    assert_eq!(replies_to(&env.imap, "asker", &q_id).len(), 1, "{log2}");
    assert!(replies_to(&env.imap, "stranger", &s_id).is_empty());
}

#[test]
fn serve_email_refuses_to_start_without_an_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(dir.path())
        .args([
            "serve",
            "email",
            "--imap",
            "127.0.0.1:1",
            "--smtp",
            "127.0.0.1:1",
            "--user",
            "avatar@example.org",
            "--password-env",
            "NO_SUCH_VAR_FOR_AVATAR",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_no_panic(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow") && err.contains("reveal"), "{err}");
}

#[test]
fn serve_email_refuses_plaintext_imap_to_a_remote_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(dir.path())
        .env("AVATAR_EMAIL_TEST_PW", "x")
        .args([
            "serve",
            "email",
            "--imap",
            "imap.example.org:143",
            "--smtp",
            "127.0.0.1:1",
            "--user",
            "avatar@example.org",
            "--password-env",
            "AVATAR_EMAIL_TEST_PW",
            "--allow",
            "@example.org",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_no_panic(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls"), "{err}");
}

/// The IMAP connector of `avatar serve ingest` (issue 7): mail in the listed folder becomes
/// records; a second pass fetches only mail with a higher UID.
#[test]
fn serve_ingest_reads_new_mail_by_uid() {
    let Some(env) = mail_env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let nonce: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let folder = format!("Archive{nonce}");
    let mail = |n: u32, body: &str| {
        format!(
            "From: Ada Lovelace <ada@example.org>\r\nTo: charles@example.org\r\n\
             Subject: note {n}\r\nMessage-ID: <arch-{n}-{nonce}@example.org>\r\n\
             Date: Mon, 1 Jan 2024 10:0{n}:00 +0000\r\n\r\n{body}\r\n"
        )
    };
    {
        let mut s = login(&env.imap, "avatar");
        s.create(&folder).unwrap();
        s.append(&folder, mail(1, "The loom weaves flowers.").as_bytes())
            .unwrap();
        s.append(
            &folder,
            mail(2, "Bernoulli numbers, step by step.").as_bytes(),
        )
        .unwrap();
        let _ = s.logout();
    }
    let config = tmp.path().join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[[imap]]\navatar = \"ada-lovelace\"\nserver = \"{}\"\nuser = \"avatar@example.org\"\n\
             password_env = \"AVATAR_TEST_PASSWORD_AVATAR\"\nfolders = [\"{folder}\"]\ntls = false\n",
            env.imap
        ),
    )
    .unwrap();
    let pass = || {
        stdout(&ok(
            &data,
            &[
                "serve",
                "ingest",
                "--connectors",
                config.to_str().unwrap(),
                "--once",
            ],
        ))
    };
    let first = pass();
    assert!(first.contains("2 new mail(s) of 2 fetched"), "{first}");
    let again = pass();
    assert!(
        again.contains("0 new artifact(s)") && !again.contains("fetched"),
        "{again}"
    );
    {
        let mut s = login(&env.imap, "avatar");
        s.append(&folder, mail(3, "Poetical science.").as_bytes())
            .unwrap();
        let _ = s.logout();
    }
    let third = pass();
    assert!(
        third.contains("1 new mail(s) of 1 fetched"),
        "only the new UID: {third}"
    );
    let records = stdout(&ok(&data, &["records", "--json"]));
    for text in ["loom weaves", "Bernoulli", "Poetical science"] {
        assert!(records.contains(text), "{text} missing from {records}");
    }
}
