"""End-to-end checks of `kakeya serve` through the official `openai` Python client.

Run by serve/tests/openai_client.rs against a live server:
    python client_suite.py GROUP
with KAKEYA_BASE_URL (http://127.0.0.1:PORT), KAKEYA_QWEN / KAKEYA_LLAMA (model ids) and,
for the auth group, KAKEYA_KEY. Every check is a plain assert; exit status 0 = all passed.
"""

import json
import os
import sys
import threading
import time

import urllib.error
import urllib.request

import openai

BASE = os.environ["KAKEYA_BASE_URL"]
QWEN = os.environ.get("KAKEYA_QWEN", "tiny-qwen")
LLAMA = os.environ.get("KAKEYA_LLAMA", "tiny-llama")
KEY = os.environ.get("KAKEYA_KEY", "unused")


def client(key=KEY):
    return openai.OpenAI(base_url=BASE + "/v1", api_key=key, max_retries=0, timeout=120)


USER = [{"role": "user", "content": "the cache stores"}]


def chat(c, **kw):
    args = dict(model=QWEN, messages=USER, max_tokens=24, temperature=0)
    args.update(kw)
    return c.chat.completions.create(**args)


def stream_text(c, **kw):
    chunks = list(chat(c, stream=True, **kw))
    return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices), chunks


class Raw:
    """A plain HTTP answer (stdlib only, so the suite needs nothing beyond `openai`)."""

    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.content = status, headers, body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def http(method, path, content=None, headers=None):
    req = urllib.request.Request(BASE + path, data=content, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return Raw(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Raw(e.code, e.headers, e.read())
    except (ConnectionError, urllib.error.URLError) as e:
        # The server may answer 413 and close before the whole body was sent.
        raise AssertionError(f"{method} {path}: {e}")


def auth():
    return {"Authorization": "Bearer " + KEY}


def stats():
    return http("GET", "/v1/kakeya/stats", headers=auth()).json()


def expect_status(fn, status):
    try:
        fn()
    except openai.APIStatusError as e:
        assert e.status_code == status, (e.status_code, status, e.response.text)
        body = e.response.json()
        err = body["error"]
        assert set(err) >= {"message", "type", "param", "code"}, body
        assert isinstance(err["message"], str) and err["message"], body
        return e
    raise AssertionError(f"expected HTTP {status}")


def raw_post(path, content, headers=None):
    h = {"Content-Type": "application/json", **auth()}
    h.update(headers or {})
    return http("POST", path, content, h)


def envelope(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}, r.text
    return err


# ---------------------------------------------------------------------------------------

def group_basic():
    c = client()
    models = [m.id for m in c.models.list().data]
    assert QWEN in models and LLAMA in models, models

    full = chat(c)
    assert full.object == "chat.completion"
    assert full.choices[0].message.role == "assistant"
    assert full.choices[0].finish_reason in ("stop", "length")
    text = full.choices[0].message.content
    u = full.usage
    assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= 24
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens

    # Streamed greedy text equals the non-streamed text; role first, finish_reason last,
    # then the usage chunk with no choices.
    streamed, chunks = stream_text(c, stream_options={"include_usage": True})
    assert streamed == text, (streamed, text)
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [ch for ch in chunks if ch.choices]
    assert all(ch.choices[0].finish_reason is None for ch in with_choices[:-1])
    assert with_choices[-1].choices[0].finish_reason == full.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == u.completion_tokens
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    no_usage = list(chat(c, stream=True))
    assert all(ch.choices for ch in no_usage), "no usage chunk unless asked"

    # max_completion_tokens and text parts behave like their plain forms.
    parts = chat(c, messages=[{"role": "user", "content": [
        {"type": "text", "text": "the cache"}, {"type": "text", "text": " stores"}]}],
        max_tokens=None, max_completion_tokens=24)
    assert parts.choices[0].message.content == text

    # /v1/completions: plain prompt, stream and non-stream agree.
    comp = c.completions.create(model=QWEN, prompt="fn step_3(x: u32)", max_tokens=16, temperature=0)
    assert comp.object == "text_completion"
    cs = "".join(ch.choices[0].text for ch in c.completions.create(
        model=QWEN, prompt="fn step_3(x: u32)", max_tokens=16, temperature=0, stream=True) if ch.choices)
    assert cs == comp.choices[0].text, (cs, comp.choices[0].text)

    # x_kakeya on chat completions.
    xk = full.model_extra["x_kakeya"]
    for k in ("kv", "drafter", "drafted_tokens", "accepted_tokens", "mean_accepted_len",
              "kv_bytes_held", "kv_bytes_raw"):
        assert k in xk, (k, xk)


def group_sampling():
    c = client()
    base = chat(c).choices[0].message.content
    # Same seed, same output; the seed matters.
    a = chat(c, temperature=1.0, top_p=0.95, seed=1234, max_tokens=32).choices[0].message.content
    b = chat(c, temperature=1.0, top_p=0.95, seed=1234, max_tokens=32).choices[0].message.content
    assert a == b, (a, b)
    others = {chat(c, temperature=1.0, seed=s, max_tokens=32).choices[0].message.content for s in range(5)}
    assert len(others) > 1, others
    # Streaming with a seed gives the same as non-streaming with that seed.
    sa, _ = stream_text(c, temperature=1.0, top_p=0.95, seed=1234, max_tokens=32)
    assert sa == a, (sa, a)

    # Stop strings: generation ends before the first occurrence, which is not returned.
    long = chat(c, max_tokens=40, extra_body={"kakeya": {"ignore_eos": True}}).choices[0].message.content
    assert len(long) >= 6, long
    stop = long[len(long) // 2: len(long) // 2 + 2]
    cut = long[: long.find(stop)]
    r = chat(c, max_tokens=40, stop=[stop, "\u2603never"], extra_body={"kakeya": {"ignore_eos": True}})
    assert r.choices[0].message.content == cut, (r.choices[0].message.content, cut, stop)
    assert r.choices[0].finish_reason == "stop"
    st, _ = stream_text(c, max_tokens=40, stop=stop, extra_body={"kakeya": {"ignore_eos": True}})
    assert st == cut, (st, cut)
    assert base  # greedy default works alongside


def group_kakeya():
    c = client()
    spec = chat(c, max_tokens=40)
    plain = chat(c, max_tokens=40, extra_body={"kakeya": {"drafter": "none"}})
    assert spec.choices[0].message.content == plain.choices[0].message.content
    xs, xp = spec.model_extra["x_kakeya"], plain.model_extra["x_kakeya"]
    assert xs["drafter"] == "model" and xs["drafted_tokens"] > 0, xs
    assert xp["drafter"] == "none" and xp["drafted_tokens"] == 0, xp
    for bs in (1, 2, 3, 7):
        r = chat(c, max_tokens=40, extra_body={"kakeya": {"block_size": bs}})
        assert r.choices[0].message.content == plain.choices[0].message.content, bs
    ss, chunks = stream_text(c, max_tokens=40)
    assert ss == plain.choices[0].message.content
    # Sampling never uses greedy acceptance: with a drafter it samples plainly.
    sampled = chat(c, temperature=0.8, seed=9, max_tokens=20)
    assert sampled.model_extra["x_kakeya"]["drafted_tokens"] == 0

    # Compressed KV chosen per request.
    e8 = chat(c, max_tokens=24, extra_body={"kakeya": {"kv": "e8-q10"}}).model_extra["x_kakeya"]
    assert e8["kv"] == "e8-q10" and e8["codec_fired"] > 0, e8
    raw = chat(c, max_tokens=24).model_extra["x_kakeya"]
    assert raw["kv"] == "raw" and raw["codec_fired"] == 0, raw

    s = stats()["models"][QWEN]
    assert s["drafted_tokens"] > 0 and s["mean_accepted_len"] >= 1.0, s
    assert s["kv_bytes_raw"] > 0 and s["codec_fired"] > 0, s
    m = http("GET", "/metrics", headers=auth())
    assert m.status_code == 200 and "kakeya_completion_tokens_total{model=" in m.text


def group_errors():
    c = client()
    e = expect_status(lambda: chat(c, n=2), 400)
    assert e.response.json()["error"]["param"] == "n"
    expect_status(lambda: chat(c, max_tokens=10_000_000), 400)
    expect_status(lambda: chat(c, messages=[{"role": "user", "content": "x " * 5000}], max_tokens=8), 400)
    e = expect_status(lambda: chat(c, model="no-such-model"), 404)
    assert e.response.json()["error"]["code"] == "model_not_found"
    for kw in ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
               {"logprobs": True},
               {"response_format": {"type": "json_object"}}):
        e = expect_status(lambda: chat(c, **kw), 501)
        assert e.response.headers.get("x-should-retry") == "false", kw
    expect_status(lambda: chat(c, temperature=5), 400)
    err = envelope(raw_post("/v1/chat/completions", b"{not json"), 400)
    assert err["type"] == "invalid_request_error"
    envelope(raw_post("/v1/chat/completions", b'{"model": "%s", "messages": "hi"}' % QWEN.encode()), 400)
    big = b'{"model": "' + QWEN.encode() + b'", "messages": [{"role": "user", "content": "' + b"a" * (5 << 20) + b'"}]}'
    envelope(raw_post("/v1/chat/completions", big), 413)
    e = expect_status(lambda: chat(c, extra_body={"kakeya": {"drafter": "dflash"}}), 400)
    assert "not enabled" in e.response.json()["error"]["message"]
    e = expect_status(lambda: chat(c, extra_body={"kakeya": {"drafter": "ngram"}}), 400)
    assert "not enabled" in e.response.json()["error"]["message"]
    expect_status(lambda: chat(c, extra_body={"kakeya": {"kv": "d4-q10-b2"}}), 400)
    expect_status(lambda: chat(c, extra_body={"kakeya": {"block_size": 0}}), 400)
    # Unknown fields are ignored.
    ok = raw_post("/v1/chat/completions", json.dumps({"model": QWEN, "messages": USER, "max_tokens": 4,
                  "temperature": 0, "frobnicate": {"x": [1, 2]}, "user": "u1"}).encode())
    assert ok.status_code == 200, ok.text


def group_auth():
    expect_status(lambda: chat(client("wrong-key")), 401)
    r = http("POST", "/v1/chat/completions", json.dumps({"model": QWEN, "messages": USER}).encode(),
             {"Content-Type": "application/json"})
    envelope(r, 401)
    assert http("GET", "/health").status_code == 200
    assert chat(client(KEY), max_tokens=4).choices[0].message.content is not None


def group_queue():
    c = client()
    # One long generation runs, one waits; the next is refused (max-queue 1).
    first = chat(c, stream=True, max_tokens=3000, extra_body={"kakeya": {"ignore_eos": True}})
    next(iter(first))
    results = {}

    def second():
        results["second"] = chat(c, max_tokens=4)

    t = threading.Thread(target=second)
    t.start()
    deadline = time.time() + 60
    while stats()["models"][QWEN]["queue_depth"] < 1:
        assert time.time() < deadline, "second request never queued"
        time.sleep(0.02)
    e = expect_status(lambda: chat(c, max_tokens=4), 503)
    assert e.response.json()["error"]["code"] == "queue_full"
    first.close()
    t.join(120)
    assert "second" in results
    assert stats()["models"][QWEN]["rejected_queue_full"] >= 1


def group_disconnect():
    c = client()
    before = stats()["models"][QWEN]
    s = chat(c, stream=True, max_tokens=3000, extra_body={"kakeya": {"ignore_eos": True, "drafter": "none"}})
    it = iter(s)
    for _ in range(4):
        next(it)
    s.close()
    deadline = time.time() + 60
    while True:
        now = stats()["models"][QWEN]
        if now["requests_cancelled"] > before["requests_cancelled"]:
            break
        assert time.time() < deadline, now
        time.sleep(0.05)
    generated = now["completion_tokens"] - before["completion_tokens"]
    assert generated < 3000, generated
    assert now["running"] == 0, now
    # The server is still fine.
    assert chat(c, max_tokens=4).choices[0].finish_reason in ("stop", "length")


def group_concurrent():
    c = client()
    prompts = [f"Note {i:04}: the quick brown fox" for i in range(8)]

    def one(p):
        text, _ = stream_text(c, messages=[{"role": "user", "content": p}], max_tokens=32)
        return text

    sequential = [one(p) for p in prompts]
    results = [None] * 8
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, one(prompts[i]))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert results == sequential, (results, sequential)


def render(model, messages):
    r = raw_post("/v1/kakeya/template", json.dumps({"model": model, "messages": messages}).encode())
    return r


def group_templates():
    c = client()
    conv = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "héllo ✓ 日本"}]
    q = render(QWEN, conv)
    assert q.status_code == 200, q.text
    assert q.json()["prompt"] == ("<|im_start|>system\nBe brief.</s>\n<|im_start|>user\nhi</s>\n"
                                  "<|im_start|>assistant\nhello</s>\n<|im_start|>user\nhéllo ✓ 日本</s>\n"
                                  "<|im_start|>assistant\n"), q.json()["prompt"]
    ll = render(LLAMA, conv)
    assert ll.status_code == 200, ll.text
    assert ll.json()["prompt"] == ("<s><|header|>system<|/header|>\n\nBe brief.</s>"
                                   "<|header|>user<|/header|>\n\nhi</s><|header|>assistant<|/header|>\n\nhello</s>"
                                   "<|header|>user<|/header|>\n\nhéllo ✓ 日本</s><|header|>assistant<|/header|>\n\n"), ll.json()["prompt"]
    # One BOS only, at the start.
    toks = ll.json()["tokens"]
    assert toks[0] == 0 and toks[1] != 0, toks[:3]
    # Without a system prompt.
    ns = render(LLAMA, [{"role": "user", "content": "hi"}]).json()["prompt"]
    assert ns == "<s><|header|>user<|/header|>\n\nhi</s><|header|>assistant<|/header|>\n\n", ns
    # raise_exception: roles must alternate (llama) / unknown role (qwen) → 400 with the message.
    e = expect_status(lambda: c.chat.completions.create(model=LLAMA, max_tokens=4, messages=[
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]), 400)
    assert "alternate" in e.response.json()["error"]["message"], e.response.text
    e = expect_status(lambda: c.chat.completions.create(model=QWEN, max_tokens=4, messages=[
        {"role": "critic", "content": "a"}]), 400)
    assert "Unsupported role: critic" in e.response.json()["error"]["message"]
    # Multi-turn and unicode chats generate, streamed == non-streamed, on both models.
    for model in (QWEN, LLAMA):
        full = c.chat.completions.create(model=model, messages=conv, max_tokens=16, temperature=0)
        s = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model=model, messages=conv, max_tokens=16, temperature=0, stream=True) if ch.choices)
        assert s == full.choices[0].message.content
        assert full.usage.prompt_tokens == len(render(model, conv).json()["tokens"])


GROUPS = {name[len("group_"):]: fn for name, fn in globals().items() if name.startswith("group_")}

if __name__ == "__main__":
    for g in sys.argv[1:]:
        GROUPS[g]()
        print(f"client_suite: {g}: ok")
