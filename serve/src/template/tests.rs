use super::*;

fn msgs(list: &[(&str, &str)]) -> Vec<Message> {
    list.iter()
        .map(|(r, c)| Message {
            role: r.to_string(),
            content: c.to_string(),
        })
        .collect()
}

#[test]
fn trims_blocks_and_uses_python_methods() {
    let src = "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.role.upper() }}] {{ m.content.strip() }}\n  {% endif %}\n{% endfor %}";
    let t = ChatTemplate::new(src, None, None).unwrap();
    let out = t
        .render(&msgs(&[("user", "  hi  "), ("assistant", "x")]))
        .unwrap();
    assert_eq!(out, "[USER] hi\n");
}

#[test]
fn raise_exception_is_a_render_error_with_the_message() {
    let src = "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok";
    let t = ChatTemplate::new(src, None, None).unwrap();
    let err = t
        .render(&msgs(&[("assistant", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("first must be user"), "{err}");
    assert_eq!(t.render(&msgs(&[("user", "x")])).unwrap(), "ok");
}

#[test]
fn tojson_does_not_html_escape_and_bos_is_available() {
    let src = "{{ bos_token }}{{ messages[0].content | tojson }}|{{ {'a': 1} | tojson(indent=2) }}";
    let t = ChatTemplate::new(src, Some("<s>".into()), None).unwrap();
    let out = t.render(&msgs(&[("user", "<b>&'é")])).unwrap();
    assert_eq!(out, "<s>\"<b>&'é\"|{\n  \"a\": 1\n}");
}

#[test]
fn strftime_now_renders_a_year() {
    let t = ChatTemplate::new("{{ strftime_now('%Y') }}", None, None).unwrap();
    let y: i32 = t.render(&[]).unwrap().parse().unwrap();
    assert!(y >= 2024);
}

#[test]
fn a_broken_template_is_a_clear_error() {
    assert!(ChatTemplate::new("{% for %}", None, None).is_err());
}

#[test]
fn double_bos_is_removed_once() {
    assert_eq!(dedup_bos(vec![0, 0, 5], Some(0)), vec![0, 5]);
    assert_eq!(dedup_bos(vec![0, 5], Some(0)), vec![0, 5]);
    assert_eq!(dedup_bos(vec![0, 0], None), vec![0, 0]);
}

#[test]
fn tojson_accepts_hf_keyword_arguments() {
    let t = ChatTemplate::new(
        "{{ messages | tojson(indent=None, sort_keys=true) }}",
        None,
        None,
    )
    .unwrap();
    let out = t.render(&msgs(&[("user", "hi")])).unwrap();
    // Python's json.dumps separators: ", " and ": ", keys in insertion order.
    assert_eq!(out, r#"[{"role": "user", "content": "hi"}]"#);
}
