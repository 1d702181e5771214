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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("format", choices=["mbox", "whatsapp"])
    ap.add_argument("path")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    run = run_mbox if args.format == "mbox" else run_whatsapp
    best = None
    n = 0
    for _ in range(max(1, args.repeat)):
        n, s = run(args.path)
        best = s if best is None else min(best, s)
    json.dump({"messages": n, "seconds": best}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
