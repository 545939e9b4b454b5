//! `tokenizer_config.json` for tiny models, with a chat template of our own so servers and
//! tests exercise real templating: ChatML-like turns for the Qwen family, header-style turns
//! (BOS first, system folded into a header block, strict user/assistant alternation) for
//! Llama. The tiny vocabulary's only special tokens are `<s>`/`</s>`, so `</s>` ends a turn;
//! the other markers are plain text.

use serde_json::{Value, json};

use super::tokenizer::{BOS_ID, EOS_ID};
use crate::model::Arch;

const QWEN_LIKE: &str = r#"{%- for message in messages %}
{%- if message.role not in ['system', 'user', 'assistant'] %}
{{- raise_exception('Unsupported role: ' ~ message.role) }}
{%- endif %}
{{- '<|im_start|>' ~ message.role ~ '\n' ~ message.content | trim ~ '</s>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %}"#;

const LLAMA_LIKE: &str = r#"{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}
{%- set system = messages[0].content | trim %}
{%- set turns = messages[1:] %}
{%- else %}
{%- set system = '' %}
{%- set turns = messages %}
{%- endif %}
{%- if system %}
{{- '<|header|>system<|/header|>\n\n' ~ system ~ '</s>' }}
{%- endif %}
{%- for message in turns %}
{%- if (message.role == 'user') != (loop.index0 % 2 == 0) %}
{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
{%- endif %}
{{- '<|header|>' ~ message.role ~ '<|/header|>\n\n' ~ message.content | trim ~ '</s>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|header|>assistant<|/header|>\n\n' }}
{%- endif %}"#;

/// The chat template written for `arch`.
pub fn template(arch: Arch) -> &'static str {
    match arch {
        Arch::Llama => LLAMA_LIKE,
        Arch::Qwen2 | Arch::Qwen3 => QWEN_LIKE,
    }
}

/// The `tokenizer_config.json` of a tiny model.
pub fn tokenizer_config(arch: Arch, max_positions: usize) -> Value {
    let bos = (arch == Arch::Llama).then_some("<s>");
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": "</s>",
        "add_bos_token": false,
        "model_max_length": max_positions,
        "added_tokens_decoder": {
            BOS_ID.to_string(): {"content": "<s>", "special": true},
            EOS_ID.to_string(): {"content": "</s>", "special": true},
        },
        "chat_template": template(arch),
    })
}
