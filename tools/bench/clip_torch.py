"""PyTorch reference for examples/bench_clip.rs: transformers CLIP towers, random init, CPU, f32, 2 threads.

    /work/venv/bin/python tools/bench/clip_torch.py [case ...]      (or through scripts/bench.sh clip)

Cases (same names and sizes as the Rust side): vit_b32_image (ViT-B/32 vision tower + projection, 224 px,
batch 32), vit_l14_image (ViT-L/14, batch 8), vit_b32_text_short ("a photo of a {label}" prompts, batch 64,
padded to 77 tokens as CLIPProcessor(padding="max_length") does — the issue's 31 texts/s baseline).
Prints `BENCH<TAB>case<TAB>milliseconds per item` (best of the timed repetitions).
"""
import sys
import time

import torch
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

torch.set_num_threads(2)
torch.manual_seed(0)
cases = sys.argv[1:]


def want(c):
    return not cases or c in cases


def bench(case, items, reps, fn):
    with torch.inference_mode():
        fn()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            best = min(best, (time.perf_counter() - t) * 1e3 / items)
    print(f"BENCH\t{case}\t{best:.3f}", flush=True)


if want("vit_b32_image") or want("vit_b32_text_short"):
    model = CLIPModel(CLIPConfig(projection_dim=512)).eval()  # openai/clip-vit-base-patch32 shapes
    if want("vit_b32_image"):
        px = torch.randn(32, 3, 224, 224)
        bench("vit_b32_image", 32, 3, lambda: model.get_image_features(pixel_values=px))
    if want("vit_b32_text_short"):
        n = 64
        ids = torch.zeros(n, 77, dtype=torch.long)
        g = torch.Generator().manual_seed(1)
        for i in range(n):
            k = 1 + int(torch.randint(0, 3, (1,), generator=g))
            row = [49406, 320, 1125, 539, 320] + torch.randint(1000, 41000, (k,), generator=g).tolist() + [49407]
            ids[i, : len(row)] = torch.tensor(row)
            ids[i, len(row):] = 49407
        bench("vit_b32_text_short", n, 3, lambda: model.get_text_features(input_ids=ids))
    del model

if want("vit_l14_image"):
    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           patch_size=14, image_size=224, projection_dim=768)
    model = CLIPVisionModelWithProjection(cfg).eval()
    px = torch.randn(8, 3, 224, 224)
    bench("vit_l14_image", 8, 1, lambda: model(pixel_values=px))
