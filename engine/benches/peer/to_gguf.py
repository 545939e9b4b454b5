"""Write a GGUF copy of a Llama model directory made by `kakeya make-tiny-model` (or any
single-file f32/f16/bf16 Llama safetensors checkpoint), so llama.cpp runs the very same
weights as our engine.

usage: to_gguf.py MODEL_DIR OUT.gguf [f32|f16]

Needs the `gguf` and `numpy` packages (see docs/BENCHMARKS.md, "The llama.cpp peer").
The vocabulary is written as placeholder strings: feed token ids, not text.
"""
import json
import struct
import sys

import numpy as np
import gguf


def read_safetensors(path):
    """name -> float32 numpy array, straight from the file's header and byte ranges."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    start = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw = blob[start + lo:start + hi]
        kind = info["dtype"]
        if kind == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        elif kind == "F16":
            arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif kind == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            raise SystemExit(f"{name}: dtype {kind} is not supported")
        tensors[name] = arr.reshape(info["shape"])
    return tensors


def to_interleaved_rope(w, heads):
    """Hugging Face rotates the two halves of each head; llama.cpp rotates adjacent pairs.
    Reorder each head's output rows from [first half, second half] to pairs."""
    rows, cols = w.shape
    head_dim = rows // heads
    return (w.reshape(heads, 2, head_dim // 2, cols)
             .transpose(0, 2, 1, 3)
             .reshape(rows, cols))


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    model_dir, out = sys.argv[1], sys.argv[2]
    ftype = sys.argv[3] if len(sys.argv) == 4 else "f32"
    if ftype not in ("f32", "f16"):
        raise SystemExit("the output type must be f32 or f16")
    with open(f"{model_dir}/config.json") as f:
        cfg = json.load(f)
    if cfg.get("model_type", "llama") != "llama":
        raise SystemExit("only Llama checkpoints are converted")
    t = read_safetensors(f"{model_dir}/model.safetensors")
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    layers, vocab = cfg["num_hidden_layers"], cfg["vocab_size"]
    store = np.float16 if ftype == "f16" else np.float32

    w = gguf.GGUFWriter(out, "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(hidden // heads)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<id{i}>".encode() for i in range(vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([gguf.TokenType.NORMAL] * vocab)
    eos = cfg.get("eos_token_id", 1)
    w.add_bos_token_id(cfg.get("bos_token_id", 0) or 0)
    w.add_eos_token_id(eos[0] if isinstance(eos, list) else eos)

    def matrix(name, a):
        w.add_tensor(name, np.ascontiguousarray(a.astype(store)))

    def vector(name, a):  # norms stay f32, as llama.cpp's own converter keeps them
        w.add_tensor(name, np.ascontiguousarray(a.astype(np.float32)))

    matrix("token_embd.weight", t["model.embed_tokens.weight"])
    for i in range(layers):
        p = f"model.layers.{i}."
        vector(f"blk.{i}.attn_norm.weight", t[p + "input_layernorm.weight"])
        matrix(f"blk.{i}.attn_q.weight", to_interleaved_rope(t[p + "self_attn.q_proj.weight"], heads))
        matrix(f"blk.{i}.attn_k.weight", to_interleaved_rope(t[p + "self_attn.k_proj.weight"], kv_heads))
        matrix(f"blk.{i}.attn_v.weight", t[p + "self_attn.v_proj.weight"])
        matrix(f"blk.{i}.attn_output.weight", t[p + "self_attn.o_proj.weight"])
        vector(f"blk.{i}.ffn_norm.weight", t[p + "post_attention_layernorm.weight"])
        matrix(f"blk.{i}.ffn_gate.weight", t[p + "mlp.gate_proj.weight"])
        matrix(f"blk.{i}.ffn_up.weight", t[p + "mlp.up_proj.weight"])
        matrix(f"blk.{i}.ffn_down.weight", t[p + "mlp.down_proj.weight"])
    vector("output_norm.weight", t["model.norm.weight"])
    matrix("output.weight", t.get("lm_head.weight", t["model.embed_tokens.weight"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
