//! The server over raw HTTP/1.1 (`TcpStream`): SSE framing byte for byte, hostile bodies,
//! keep-alive comments, SIGTERM draining, start-up errors and the `kakeya serve` launcher.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{Server, kakeya, sse_data, tiny_models};
use serde_json::{Value, json};

fn server(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = tiny_models(dir.path());
    let (q, d) = (m.qwen.display().to_string(), m.draft.display().to_string());
    let mut args = vec![
        "--model",
        q.as_str(),
        "--model-id",
        "q",
        "--drafter",
        "model",
        "--draft",
        d.as_str(),
    ];
    args.extend_from_slice(extra);
    let s = Server::start(&args, &[]);
    (dir, s)
}

fn chat(stream: bool, max_tokens: u64) -> Value {
    json!({"model": "q", "messages": [{"role": "user", "content": "the model"}],
           "max_tokens": max_tokens, "temperature": 0, "stream": stream,
           "stream_options": {"include_usage": true}})
}

fn assert_envelope(r: &common::Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    let e = &v["error"];
    for k in ["message", "type", "param", "code"] {
        assert!(e.get(k).is_some(), "{k} missing in {v}");
    }
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    v
}

#[test]
fn sse_framing_is_exact() {
    let (_d, s) = server(&[]);
    let r = s.post_json("/v1/chat/completions", &chat(true, 12));
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    let body = r.text();
    // Every event is `data: <json>\n\n`; the stream ends with exactly one `[DONE]`.
    assert!(body.ends_with("data: [DONE]\n\n"), "{body:?}");
    for ev in body.split_terminator("\n\n") {
        assert!(ev.starts_with("data: ") || ev.starts_with(':'), "{ev:?}");
    }
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let n = chunks.len();
    let finish = &chunks[n - 2];
    assert!(matches!(
        finish["choices"][0]["finish_reason"].as_str(),
        Some("stop" | "length")
    ));
    assert!(finish["x_kakeya"]["kv"].is_string());
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert!(
        chunks[n - 1]["usage"]["completion_tokens"]
            .as_u64()
            .is_some()
    );
    let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one id per stream");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let whole = s.post_json("/v1/chat/completions", &chat(false, 12)).json();
    assert_eq!(
        whole["choices"][0]["message"]["content"].as_str(),
        Some(streamed.as_str())
    );
}

#[test]
fn hostile_bodies_get_400_or_413_and_the_server_survives() {
    let (_d, s) = server(&["--max-body-bytes", "65536"]);
    let post = |body: &[u8]| {
        s.request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            body,
        )
        .expect("request")
    };
    assert_envelope(&post(&vec![b'a'; 200_000]), 413);
    assert_envelope(
        &post(
            b"{\"model\": \"q\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}",
        ),
        400,
    );
    assert_envelope(&post(&[b'['; 100_000][..60_000]), 400);
    let deep = format!(
        "{{\"model\": \"q\", \"x\": {}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_envelope(&post(deep.as_bytes()), 400);
    for bad in [
        json!([1, 2]),
        json!({"model": 5, "messages": []}),
        json!({"model": "q", "messages": 5}),
        json!({"model": "q", "messages": []}),
        json!({"model": "q", "messages": [{"content": "no role"}]}),
        json!({"model": "q", "messages": [{"role": "user", "content": 7}]}),
        json!({"model": "q", "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "top_p": 0}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "stop": [1]}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "kakeya": []}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "kakeya": {"kv": "e9-q1"}}),
        json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "seed": 1.5}),
    ] {
        let r = s.post_json("/v1/chat/completions", &bad);
        assert_envelope(&r, 400);
    }
    assert_envelope(
        &s.post_json(
            "/v1/completions",
            &json!({"model": "q", "prompt": ["a", "b"]}),
        ),
        400,
    );
    let r = s.post_json("/v1/chat/completions", &json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0, "temperature": 0}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "");
    let nf = s.request("GET", "/v2/nothing", &[], b"").expect("request");
    assert_envelope(&nf, 404);
    // Still serving.
    assert_eq!(
        s.post_json("/v1/chat/completions", &chat(false, 4)).status,
        200
    );
}

#[test]
fn keep_alive_comments_and_sigterm_drains_then_exits_zero() {
    let (_d, mut s) = server(&["--keep-alive-secs", "1", "--shutdown-grace-secs", "30"]);
    // A long stream read slowly enough to see a keep-alive comment is timing-dependent, so
    // check comments on a request that waits in the queue behind a long one instead.
    let mut long = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    let body = json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "max_tokens": 400,
                      "temperature": 0, "stream": true, "kakeya": {"ignore_eos": true, "drafter": "none"}})
    .to_string();
    write!(long, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("write");
    let mut first = [0u8; 64];
    long.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let n = long.read(&mut first).expect("first bytes");
    assert!(n > 0);
    // SIGTERM while the stream runs: no new connections, the stream finishes, exit 0.
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let mut rest = Vec::new();
    long.read_to_end(&mut rest).expect("rest of stream");
    let all = [&first[..n], &rest[..]].concat();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(
        text.contains("\"finish_reason\":\"length\""),
        "the stream was finished, not cut: {text}"
    );
    let status = s.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(("127.0.0.1", s.port)).is_err(),
        "no longer accepting"
    );
}

#[test]
fn sse_stays_well_framed_while_waiting_in_the_queue() {
    let (_d, s) = server(&["--keep-alive-secs", "1", "--max-queue", "4"]);
    // Occupy the worker, then stream a request that waits in the queue: the wait is long
    // enough (a few thousand tokens) for one keep-alive comment at a 1 s interval on most
    // machines, but the assertion only needs the framing to stay valid either way.
    let blocker = json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3000,
                         "temperature": 0, "kakeya": {"ignore_eos": true, "drafter": "none"}});
    let port = s.port;
    let t = std::thread::spawn(move || {
        common::request(
            port,
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            blocker.to_string().as_bytes(),
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    let r = s.post_json("/v1/chat/completions", &chat(true, 4));
    let body = r.text();
    assert!(body.ends_with("data: [DONE]\n\n"));
    for ev in body.split_terminator("\n\n") {
        assert!(ev.starts_with("data: ") || ev == ": keep-alive", "{ev:?}");
    }
    assert_eq!(t.join().expect("join").expect("blocker").status, 200);
}

#[test]
fn launcher_help_and_startup_errors() {
    let k = kakeya();
    let help = Command::new(&k)
        .args(["serve", "--help"])
        .output()
        .expect("help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--model",
        "--model-id",
        "--kv",
        "--drafter",
        "--draft",
        "--block-size",
        "--host",
        "--port",
        "--api-key",
        "--max-queue",
        "--device",
        "--config",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let m = tiny_models(dir.path());
    let q = m.qwen.display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(&k)
            .arg("serve")
            .args(args)
            .args(["--port", "0"])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--model", &q, "--drafter", "dflash"]).contains("--draft"));
    assert!(run(&["--model", &q, "--drafter", "model"]).contains("--draft"));
    assert!(run(&["--model", &q, "--kv", "zz-q1"]).contains("zz-q1"));
    assert!(run(&["--config", "/nonexistent/serve.yaml"]).contains("serve.yaml"));
    // The launcher explains itself when the server binary is missing.
    let lonely = dir.path().join("bin");
    std::fs::create_dir_all(&lonely).expect("mkdir");
    let copy = lonely.join("kakeya");
    std::fs::copy(&k, &copy).expect("copy");
    let out = Command::new(&copy)
        .args(["serve", "--help"])
        .env("PATH", "")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kakeya-serve"));
}

#[test]
fn health_is_503_until_the_model_loads_and_bad_models_report_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join("config.json"), "{}").expect("write");
    let mut child = Command::new(kakeya())
        .args(["serve", "--model"])
        .arg(&broken)
        .args(["--port", "0"])
        .env("KAKEYA_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("line");
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut saw = 0;
    for _ in 0..100 {
        let r = common::request(port, "GET", "/health", &[], b"").expect("health");
        assert_eq!(r.status, 503);
        if r.json()["status"] == "error" {
            saw += 1;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(saw, 1, "the load error shows on /health");
    let r = common::request(
        port,
        "POST",
        "/v1/chat/completions",
        &[],
        json!({"model": "broken", "messages": [{"role": "user", "content": "x"}]})
            .to_string()
            .as_bytes(),
    )
    .expect("req");
    assert_envelope(&r, 503);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_after_the_grace_period_cancels_streams_with_an_error_event() {
    let (_d, mut s) = server(&["--shutdown-grace-secs", "0"]);
    let mut long = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    let body = json!({"model": "q", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4000,
                      "temperature": 0, "stream": true, "kakeya": {"ignore_eos": true, "drafter": "none"}})
    .to_string();
    write!(long, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("write");
    long.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut first = [0u8; 512];
    let n = long.read(&mut first).expect("first bytes");
    assert!(n > 0);
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let mut rest = Vec::new();
    long.read_to_end(&mut rest).expect("rest of stream");
    let text = String::from_utf8_lossy(&rest).into_owned();
    assert!(text.contains("data: [DONE]"), "{text}");
    let status = s.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    // Either the generation finished first (fast machine) or it was cut with an error event.
    assert!(
        text.contains("server_shutdown") || text.contains("\"finish_reason\":\"length\""),
        "{text}"
    );
}

#[test]
fn ngram_drafter_is_lossless_for_greedy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = tiny_models(dir.path());
    let q = m.qwen.display().to_string();
    let s = Server::start(
        &[
            "--model",
            &q,
            "--model-id",
            "q",
            "--drafter",
            "ngram",
            "--block-size",
            "5",
        ],
        &[],
    );
    // A repetitive prompt gives prompt lookup something to find.
    let prompt = "the cache stores the next word. the cache stores the next word. the cache";
    let plain = assert_drafter_lossless(&s, "ngram", prompt, 48);
    let stream = s.post_json(
        "/v1/completions",
        &json!({"model": "q", "prompt": prompt,
        "max_tokens": 48, "temperature": 0, "stream": true, "kakeya": {"ignore_eos": true}}),
    );
    let text: String = sse_data(&stream.text())
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(Some(text.as_str()), plain["choices"][0]["text"].as_str());
}

#[test]
fn dflash_drafter_is_lossless_for_greedy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = tiny_models(dir.path());
    let dflash = dir.path().join("dflash");
    common::run_ok(
        Command::new(common::kakeya())
            .args([
                "make-tiny-model",
                "--arch",
                "dflash",
                "--seed",
                "5",
                "--target",
            ])
            .arg(&m.qwen)
            .arg("--out")
            .arg(&dflash),
    );
    let q = m.qwen.display().to_string();
    let d = dflash.display().to_string();
    let s = Server::start(
        &[
            "--model",
            &q,
            "--model-id",
            "q",
            "--drafter",
            "dflash",
            "--draft",
            &d,
            "--block-size",
            "4",
        ],
        &[],
    );
    assert_drafter_lossless(&s, "dflash", "the cache stores the next word", 24);
}

/// Greedy completions with `drafter` and with none give the same text, and the drafter did
/// draft; returns the plain reply.
fn assert_drafter_lossless(s: &Server, drafter: &str, prompt: &str, max_tokens: u64) -> Value {
    let ask = |d: &str| {
        let body = json!({"model": "q", "prompt": prompt, "max_tokens": max_tokens,
                          "temperature": 0, "kakeya": {"drafter": d, "ignore_eos": true}});
        let r = s.post_json("/v1/completions", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let (spec, plain) = (ask(drafter), ask("none"));
    assert_eq!(spec["choices"][0]["text"], plain["choices"][0]["text"]);
    assert_eq!(spec["x_kakeya"]["drafter"], drafter);
    assert!(
        spec["x_kakeya"]["drafted_tokens"].as_u64().unwrap_or(0) > 0,
        "{spec}"
    );
    plain
}
