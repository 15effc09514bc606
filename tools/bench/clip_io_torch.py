"""Reference timings for examples/bench_clip_io.rs: Pillow decoding, transformers' Pillow-backed
CLIPImageProcessor and CLIPTokenizer, on the same inputs. Prints `BENCH<TAB><case><TAB><ms per op>`.

    /work/venv/bin/python tools/bench/clip_io_torch.py      (or via scripts/bench.sh clip_io)
"""

import gzip
import io
import os
import tempfile
import time

import numpy as np
from PIL import Image
from transformers import CLIPTokenizer
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "clip_io")


def time_ms(reps, f):
    f()
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t.append((time.perf_counter() - s) * 1e3)
    return sorted(t)[reps // 2]


def main():
    proc = CLIPImageProcessorPil()
    kafka = open(os.path.join(FIX, "franz-kafka.jpg"), "rb").read()
    ms = time_ms(21, lambda: Image.open(io.BytesIO(kafka)).convert("RGB"))
    print(f"BENCH\tdecode_jpeg_450x655\t{ms:.3f}")

    img = Image.open(io.BytesIO(kafka)).convert("RGB")
    ms = time_ms(51, lambda: proc(images=img, return_tensors="np"))
    print(f"BENCH\tpreprocess_450x655_to_224\t{ms:.3f}")

    y, x, c = np.mgrid[0:1080, 0:1920, 0:3]
    frame = Image.fromarray(((x * 7 + y * 13 + c * 50) % 256).astype(np.uint8))
    ms = time_ms(21, lambda: proc(images=frame, return_tensors="np"))
    print(f"BENCH\tpreprocess_1920x1080_to_224\t{ms:.3f}")

    with tempfile.TemporaryDirectory() as d:
        for name in ("vocab.json", "merges.txt"):
            with open(os.path.join(d, name), "wb") as f:
                f.write(gzip.decompress(open(os.path.join(FIX, f"hf_{name}.gz"), "rb").read()))
        tok = CLIPTokenizer(vocab=os.path.join(d, "vocab.json"), merges=os.path.join(d, "merges.txt"))
    texts = [f"a photo of a thing number {i}, a kind of object" for i in range(1000)]
    ms = time_ms(11, lambda: tok(texts, padding="max_length", max_length=77, truncation=True))
    print(f"BENCH\ttokenize_1000_prompts_77\t{ms:.3f}")


if __name__ == "__main__":
    main()
