"""Baseline for `cargo bench -p avatar-llm --bench generate`: greedy generation with llama.cpp
(llama-cpp-python, installed by `infra/bench/setup.sh llm-gen`) on the same GGUF, run the way the
Rust side runs: the whole prompt in one eval, then one token per eval, argmax of the logits, EOS
ignored, for exactly N new tokens.

Prints one JSON line: {"ttft_s", "decode_tokens_per_sec", "new_tokens", "prompt_tokens",
"threads", "first_16", "impl"}. ttft_s is prompt eval + first argmax; decode is the remaining
N-1 tokens over the time after the first. The best of --runs runs is reported (a shared machine
only ever makes a run slower).
Usage: python llm_generate_baseline.py MODEL.gguf PROMPT_FILE [--new 128] [--threads N] [--runs 2]
"""
import argparse, json, os, sys, time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("gguf")
    p.add_argument("prompt_file")
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--runs", type=int, default=2)
    a = p.parse_args()
    import llama_cpp
    from llama_cpp import Llama

    prompt = open(a.prompt_file, encoding="utf-8").read()
    llm = Llama(model_path=a.gguf, n_ctx=512, n_threads=a.threads, n_threads_batch=a.threads,
                n_batch=512, verbose=False, seed=0)
    ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    n_vocab = llm.n_vocab()

    def argmax_last():
        # Without logits_all, llama-cpp-python 0.3 no longer copies logits into llm.scores;
        # read the last token's row from the context (the low-level API).
        row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(row, shape=(n_vocab,))))

    def run():
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        nxt = argmax_last()
        ttft = time.perf_counter() - t0
        out = [nxt]
        t1 = time.perf_counter()
        for _ in range(a.new - 1):
            llm.eval([nxt])
            nxt = argmax_last()
            out.append(nxt)
        dt = time.perf_counter() - t1
        return ttft, (a.new - 1) / dt if dt > 0 else 0.0, out

    run_short = a.new
    a.new = 4
    run()  # warm-up: page in the weights, start the thread pool
    a.new = run_short
    results = [run() for _ in range(max(1, a.runs))]
    ttft = min(r[0] for r in results)
    tps = max(r[1] for r in results)
    print(json.dumps({
        "impl": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})",
        "ttft_s": ttft,
        "decode_tokens_per_sec": tps,
        "new_tokens": a.new,
        "prompt_tokens": len(ids),
        "threads": a.threads,
        "first_16": results[0][2][:16],
    }))


if __name__ == "__main__":
    sys.exit(main())
