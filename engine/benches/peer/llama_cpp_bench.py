"""Prefill and decode speed of llama.cpp (through llama-cpp-python) on a GGUF file, driven
with token ids and greedy decoding, for `kakeya bench model --peer-gguf`.

usage: llama_cpp_bench.py MODEL.gguf PROMPT_LEN DECODE THREADS REPS

Prints one JSON object: the best prefill and decode tokens/s over REPS runs and each run's
figures. Timings exclude loading the model.
"""
import json
import sys
import time

import numpy as np
from llama_cpp import Llama


def next_token(llm, vocab):
    """Greedy pick from the logits of the last evaluated token (the binding keeps only that
    row unless every row is requested)."""
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))
    return int(logits.argmax())


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    path = sys.argv[1]
    prompt_len, decode, threads, reps = (int(a) for a in sys.argv[2:])
    llm = Llama(model_path=path, n_ctx=prompt_len + decode + 16, n_batch=512,
                n_threads=threads, n_threads_batch=threads, verbose=False)
    vocab = llm.n_vocab()
    # Deterministic ids away from the special ids at the bottom of the vocabulary.
    prompt = [2 + (i * 7919 + 3) % (vocab - 2) for i in range(prompt_len)]
    runs = []
    for _ in range(max(reps, 1)):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        token = next_token(llm, vocab)
        t2 = time.perf_counter()
        for _ in range(decode):
            llm.eval([token])
            token = next_token(llm, vocab)
        t3 = time.perf_counter()
        runs.append({"prefill_tok_s": prompt_len / (t1 - t0),
                     "decode_tok_s": decode / (t3 - t2) if decode else 0.0})
    print(json.dumps({
        "engine": "llama.cpp (llama-cpp-python)",
        "threads": threads,
        "prefill_tok_s": max(r["prefill_tok_s"] for r in runs),
        "decode_tok_s": max(r["decode_tok_s"] for r in runs),
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
