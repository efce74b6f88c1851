#!/usr/bin/env python3
"""Writes the small GGUF files of fuzz/corpus/gguf (GGUF v3, as ggml's gguf.cpp reads it).

Named without .gguf: the repository's .gitignore keeps *.gguf (models) out of git."""
import os
import struct
import sys

U32, I32, STRING = 4, 5, 8
F32 = 0  # ggml_type


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, kind, value):
    if kind == STRING:
        return s(key) + struct.pack("<I", kind) + s(value)
    return s(key) + struct.pack("<I" + ("I" if kind == U32 else "i"), kind, value)


def gguf(kvs, tensors, data=True):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    offset = 0
    for name, n in tensors:
        out += s(name) + struct.pack("<IQIQ", 1, n, F32, offset)
        offset += (n * 4 + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    return out + (b"\0" * offset if data else b"")


meta = [kv("general.architecture", STRING, "llama"), kv("general.name", STRING, "tiny"),
        kv("general.file_type", U32, 7), kv("llama.context_length", U32, 2048),
        kv("tokenizer.chat_template", STRING, "{% for m in messages %}{{ m.content }}{% endfor %}")]
tensors = [("token_embd.weight", 8), ("output.weight", 4)]
seeds = {
    "model": gguf(meta, tensors),
    "truncated": gguf(meta, tensors, data=False),
    "no_architecture": gguf(meta[1:], tensors),
    "vocab_only": gguf(meta, []),
    "int_context": gguf(meta[:3] + [kv("llama.context_length", I32, -1)], tensors[:1]),
    "zip": b"PK\x03\x04" + b"\0" * 26,
}
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gguf")
os.makedirs(out_dir, exist_ok=True)
for name, blob in seeds.items():
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(blob)
