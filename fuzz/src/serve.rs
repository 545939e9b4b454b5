//! The server's request bodies: what an HTTP client sends to `/v1/chat/completions` and
//! `/v1/completions`, through the same parse and validation the handlers run, then the chat
//! template the accepted messages are rendered with.

use std::sync::OnceLock;

use kakeya_serve::request;
use kakeya_serve::template::ChatTemplate;

/// A ChatML template, the shape most chat models ship.
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn chatml() -> &'static ChatTemplate {
    static T: OnceLock<ChatTemplate> = OnceLock::new();
    T.get_or_init(|| {
        ChatTemplate::new(CHATML, Some("<s>".into()), Some("</s>".into()))
            .expect("the ChatML template compiles")
    })
}

/// A body either endpoint may receive: refused with a 4xx/5xx error that renders, or accepted
/// with every validated field inside its documented range.
pub fn serve_request(data: &[u8]) {
    let body = match request::parse_body(data) {
        Ok(body) => body,
        Err(e) => {
            assert!(e.status.is_client_error(), "{}: {}", e.status, e.message);
            let _ = e.body();
            return;
        }
    };
    match request::common(&body) {
        Ok(c) => {
            assert!((0.0..=2.0).contains(&c.temperature), "temperature {}", c.temperature);
            assert!(c.top_p > 0.0 && c.top_p <= 1.0, "top_p {}", c.top_p);
            assert!(c.stop.len() <= 16 && c.stop.iter().all(|s| !s.is_empty() && s.len() <= 512));
            if c.include_usage {
                assert!(body.contains_key("stream_options"));
            }
        }
        Err(e) => {
            assert!(
                e.status.is_client_error() || e.status.as_u16() == 501,
                "{}: {}",
                e.status,
                e.message
            );
            let _ = e.body();
        }
    }
    match request::messages(&body) {
        Ok(messages) => {
            assert!(!messages.is_empty());
            // Hostile content is data, never template code: each message reaches the prompt
            // verbatim.
            if let Ok(prompt) = chatml().render(&messages) {
                for m in &messages {
                    assert!(prompt.contains(&m.content), "content lost: {:?}", m.content);
                }
            }
        }
        Err(e) => {
            let _ = e.body();
        }
    }
    if let Err(e) = request::prompt_text(&body) {
        let _ = e.body();
    }
}
