"""Full-size check (outside CI): random-weight CLIP models in the ViT-B/32 and ViT-L/14 configurations built
by transformers, saved as Hugging Face directories, embedded end to end by `rateclust embed` (images through
our decoding + preprocessing, texts through our tokenizer) and by transformers; every row must agree with
cosine ≥ 0.9999.

    cargo build --release --bin rateclust
    /work/venv/bin/python tools/golden/clip_fullsize_check.py [b32] [l14] [--bin target/release/rateclust]

Needs ~2 GB of temporary disk for l14 (f32 safetensors). Deterministic (seeded). Prints one line per
model and case with the minimum cosine and the maximum relative error, and exits non-zero on failure.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

CONFIGS = {
    # openai/clip-vit-base-patch32
    "b32": dict(text_config=dict(), vision_config=dict(), projection_dim=512),
    # openai/clip-vit-large-patch14
    "l14": dict(
        text_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                           patch_size=14),
        projection_dim=768,
    ),
}

TEXTS = ["a photo of a cat", "a photo of a golden retriever", "an aerial view of a city at night",
         "A DIAGRAM of the Krebs cycle, annotated!", "", "东京 🙂 café"]


def load_goldens_module():
    spec = importlib.util.spec_from_file_location("clip_model_goldens", os.path.join(HERE, "clip_model_goldens.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_images(d):
    rng = np.random.default_rng(3)
    paths = []
    for i, (w, h) in enumerate([(224, 224), (320, 240), (200, 400), (97, 61)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / (7 + i)) * 100 + 128, np.cos(yy / (5 + i)) * 100 + 128, (xx + yy) % 256], -1)
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        p = os.path.join(d, f"img{i}.png")
        Image.fromarray(img, "RGB").save(p)
        paths.append(p)
    return paths


def compare(name, ours, ref):
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cos = (ours * ref).sum(1)
    rel = np.linalg.norm(ours - ref, axis=1)
    print(f"{name}: min cosine {cos.min():.8f}, max relative error {rel.max():.2e} over {len(cos)} rows", flush=True)
    return cos.min() >= 0.9999


def check(key, binary, gold):
    torch.manual_seed(0)
    cfg = CLIPConfig(**CONFIGS[key])
    model = CLIPModel(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n or n.endswith(".bias"):
                p.add_(0.05 * torch.randn_like(p))
    ok = True
    with tempfile.TemporaryDirectory() as d:
        mdir = os.path.join(d, "model")
        model.save_pretrained(mdir, safe_serialization=True)
        gold.write_vocab(mdir)
        side = cfg.vision_config.image_size
        with open(os.path.join(mdir, "preprocessor_config.json"), "w") as f:
            json.dump({"crop_size": {"height": side, "width": side}, "size": {"shortest_edge": side},
                       "image_mean": [0.48145466, 0.4578275, 0.40821073],
                       "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3}, f)
        imgdir = os.path.join(d, "images")
        os.makedirs(imgdir)
        paths = make_images(imgdir)
        texts_file = os.path.join(d, "texts.txt")
        with open(texts_file, "w", encoding="utf-8") as f:
            f.write("\n".join(TEXTS) + "\n")

        t = time.time()
        for what, arg in (("images", imgdir), ("texts", texts_file)):
            subprocess.run([binary, "embed", "--model", mdir, f"--{what}", arg, "--out", os.path.join(d, f"{what}.npy"),
                            "--quiet"], check=True)
        ours_img = np.load(os.path.join(d, "images.npy"))
        ours_txt = np.load(os.path.join(d, "texts.npy"))
        print(f"{key}: rateclust embed took {time.time() - t:.1f} s (load + {len(paths)} images + {len(TEXTS)} texts)")

        proc = CLIPImageProcessorPil.from_pretrained(mdir)
        tok = CLIPTokenizer(os.path.join(mdir, "vocab.json"), os.path.join(mdir, "merges.txt"))
        with torch.no_grad():
            px = proc(images=[Image.open(p) for p in sorted(paths)], return_tensors="pt").pixel_values
            ref_img = model.get_image_features(pixel_values=px).pooler_output.numpy()
            ids = tok(TEXTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            ref_txt = model.get_text_features(input_ids=ids).pooler_output.numpy()
        ok &= compare(f"{key} images", ours_img, ref_img)
        ok &= compare(f"{key} texts", ours_txt, ref_txt)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["b32", "l14"], choices=sorted(CONFIGS))
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "rateclust"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    gold = load_goldens_module()
    ok = True
    for key in a.models:
        ok &= check(key, a.bin, gold)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
