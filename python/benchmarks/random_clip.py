"""Writes a CLIP directory with random weights in openai/clip-vit-base-patch32's shapes (f16, HF tensor names, as
examples/common/clip_random.rs builds them in memory), so that throughput can be measured offline through the
real loading path (the package, the CLI, the Ray pipeline). The tokenizer files are copied from the tiny test
fixture (same CLIP BPE). Random weights cost the same FLOPs as trained ones; the embeddings mean nothing.

    python python/benchmarks/random_clip.py OUT_DIR
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(REPO, "tests", "fixtures", "clip_model", "tiny")


def tensors(rng):
    out = {}

    def add(name, shape, kind="r"):
        if kind == "1":
            a = np.ones(shape, np.float16)
        elif kind == "0":
            a = np.zeros(shape, np.float16)
        else:
            a = (rng.standard_normal(shape, np.float32) * 0.02).astype(np.float16)
        out[name] = a

    def encoder(p, d, m, layers):
        for i in range(layers):
            layer = "%sencoder.layers.%d." % (p, i)
            for q in ("q_proj", "k_proj", "v_proj", "out_proj"):
                add(layer + "self_attn.%s.weight" % q, (d, d))
                add(layer + "self_attn.%s.bias" % q, (d,), "0")
            for ln in ("layer_norm1", "layer_norm2"):
                add(layer + ln + ".weight", (d,), "1")
                add(layer + ln + ".bias", (d,), "0")
            add(layer + "mlp.fc1.weight", (m, d))
            add(layer + "mlp.fc1.bias", (m,), "0")
            add(layer + "mlp.fc2.weight", (d, m))
            add(layer + "mlp.fc2.bias", (d,), "0")

    d, p, size = 768, 32, 224
    add("vision_model.embeddings.class_embedding", (d,))
    add("vision_model.embeddings.patch_embedding.weight", (d, 3, p, p))
    add("vision_model.embeddings.position_embedding.weight", ((size // p) ** 2 + 1, d))
    for ln in ("pre_layrnorm", "post_layernorm"):
        add("vision_model.%s.weight" % ln, (d,), "1")
        add("vision_model.%s.bias" % ln, (d,), "0")
    encoder("vision_model.", d, 3072, 12)
    add("visual_projection.weight", (512, d))
    d = 512
    add("text_model.embeddings.token_embedding.weight", (49408, d))
    add("text_model.embeddings.position_embedding.weight", (77, d))
    add("text_model.final_layer_norm.weight", (d,), "1")
    add("text_model.final_layer_norm.bias", (d,), "0")
    encoder("text_model.", d, 2048, 12)
    add("text_projection.weight", (512, d))
    return out


def write_safetensors(path, named):
    header, offset = {}, 0
    for name, a in named.items():
        header[name] = {"dtype": "F16", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for a in named.values():
            f.write(a.tobytes())


def main(out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"model_type": "clip", "projection_dim": 512}, f)  # every other field: ViT-B/32's defaults
    write_safetensors(os.path.join(out, "model.safetensors"), tensors(np.random.default_rng(1)))
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(TINY, name), os.path.join(out, name))
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
