#!/usr/bin/env python3
"""Python baselines for the parse benchmark (pipelines/formats/benches/parse.rs).

Each baseline parses one corpus file with the usual Python tools and prints one JSON line,
{"messages": n, "seconds": s}, where s is the best of --repeat timed runs of its own parse
loop (imports are outside the timer, reading the file is inside it, as it is a part of what
these libraries do). The Rust side times its parser on the same file, so the ratio compares
like with like:

  mbox:     mailbox.mbox + email (policy=default): the headers Avatar reads (From, Subject,
            Date, Message-ID, In-Reply-To) and the text body via get_body().get_content().
  whatsapp: whatstk.df_from_whatsapp with automatic header detection; rows are messages.
  slack:    zipfile + json on a workspace export zip, with simple loops doing what Avatar
            does: user ids -> names, subtype/bot filtering, <@U..> and <url|label> markup via
            re, entity unescaping, ts -> datetime, thread replies. Counts message objects.
  discord:  json on a DiscordChatExporter file, the same simple loop: type/bot/empty
            filtering, RFC 3339 timestamps via datetime.fromisoformat, reply references.
            Counts message objects.
(There is no maintained PyPI parser for either export, so json + loops is the baseline.)
"""

import argparse
import json
import sys
import time
import warnings


def run_mbox(path):
    import email
    import email.policy
    import mailbox

    def factory(f):
        return email.message_from_binary_file(f, policy=email.policy.default)

    start = time.perf_counter()
    box = mailbox.mbox(path, factory=factory, create=False)
    n = 0
    for msg in box:
        for name in ("from", "subject", "date", "message-id", "in-reply-to"):
            msg[name]
        body = msg.get_body(preferencelist=("plain", "html"))
        if body is not None:
            body.get_content()
        n += 1
    box.close()
    return n, time.perf_counter() - start


def run_whatsapp(path):
    warnings.simplefilter("ignore")
    from whatstk import df_from_whatsapp

    start = time.perf_counter()
    df = df_from_whatsapp(path, auto_header=True, max_size=None)
    n = len(df)
    return n, time.perf_counter() - start


def run_slack(path):
    import re
    import zipfile
    from datetime import datetime, timezone

    mention = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
    link = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]+))?>")
    kept = {None, "thread_broadcast", "me_message", "file_share"}

    start = time.perf_counter()
    out = []
    n = 0
    with zipfile.ZipFile(path) as z:
        users = {}
        for u in json.loads(z.read("users.json")):
            p = u.get("profile") or {}
            users[u["id"]] = p.get("real_name") or u.get("real_name") or p.get("display_name") or u.get("name")
        channels = {c["name"]: "#" + c["name"] for c in json.loads(z.read("channels.json"))}
        for name in sorted(z.namelist()):
            folder, _, file = name.partition("/")
            if not file.endswith(".json"):
                continue
            thread = channels.get(folder, folder)
            for m in json.loads(z.read(name)):
                n += 1
                if m.get("subtype") not in kept or m.get("bot_id"):
                    continue
                text = m.get("text") or ""
                text = mention.sub(lambda g: "@" + users.get(g.group(1), g.group(1)), text)
                text = link.sub(lambda g: f"{g.group(2)} ({g.group(1)})" if g.group(2) else g.group(1), text)
                text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                if not text.strip():
                    continue
                ts = m.get("ts")
                when = datetime.fromtimestamp(float(ts), tz=timezone.utc)
                parent = m.get("thread_ts")
                out.append((thread, users.get(m.get("user"), m.get("user")), text, when, ts,
                            parent if parent != ts else None))
    return n, time.perf_counter() - start


def run_discord(path):
    from datetime import datetime

    start = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    g = d.get("guild") or {}
    c = d.get("channel") or {}
    thread = " / ".join(x for x in (g.get("name"), c.get("category"), c.get("name")) if x)
    out = []
    n = 0
    for m in d["messages"]:
        n += 1
        a = m.get("author") or {}
        text = m.get("content") or ""
        if m.get("type") not in ("Default", "Reply") or a.get("isBot") or not text.strip():
            continue
        when = datetime.fromisoformat(m["timestamp"])
        ref = (m.get("reference") or {}).get("messageId")
        out.append((thread, a.get("name") or a.get("nickname"), text, when, m.get("id"), ref))
    return n, time.perf_counter() - start


RUNS = {"mbox": run_mbox, "whatsapp": run_whatsapp, "slack": run_slack, "discord": run_discord}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("format", choices=sorted(RUNS))
    ap.add_argument("path")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    run = RUNS[args.format]
    best = None
    n = 0
    for _ in range(max(1, args.repeat)):
        n, s = run(args.path)
        best = s if best is None else min(best, s)
    json.dump({"messages": n, "seconds": best}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
