"""PyTorch reference for examples/bench_clip_cuda.rs: transformers CLIP vision towers (+ projection), random
init, fp16 on CUDA with SDPA attention, batch 256 of 224 px images already on the GPU.

    python3 tools/bench/clip_cuda_torch.py [case ...]      (scripts/gpu_check.sh runs it on the GPU machine)

Cases (same names as the Rust side): cuda_vit_b32_image_b256, cuda_vit_l14_image_b256.
Prints `BENCH<TAB>case<TAB>milliseconds per image` (best of the timed repetitions). Issue 4's reference
numbers on an H100: 24,800 img/s (0.0403 ms) for ViT-B/32 and 2,150 img/s (0.465 ms) for ViT-L/14.
Without CUDA it prints a SKIP line and exits 0.
"""
import sys
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

cases = sys.argv[1:]


def want(c):
    return not cases or c in cases


def bench(case, items, reps, fn):
    with torch.inference_mode():
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - t) * 1e3 / items)
    print(f"BENCH\t{case}\t{best:.4f}", flush=True)


def run(case, reps, **cfg):
    torch.manual_seed(0)
    config = CLIPVisionConfig(image_size=224, **cfg)
    model = CLIPVisionModelWithProjection._from_config(config, attn_implementation="sdpa", torch_dtype=torch.float16)
    model = model.to("cuda", torch.float16).eval()
    px = torch.randn(256, 3, 224, 224, device="cuda", dtype=torch.float16)
    bench(case, 256, reps, lambda: model(pixel_values=px).image_embeds)
    del model


if not torch.cuda.is_available():
    print("SKIP: no CUDA device (torch.cuda.is_available() is False)")
    sys.exit(0)
print(f"# torch {torch.__version__} on {torch.cuda.get_device_name(0)}", file=sys.stderr)
if want("cuda_vit_b32_image_b256"):
    run("cuda_vit_b32_image_b256", 10, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, patch_size=32, projection_dim=512)
if want("cuda_vit_l14_image_b256"):
    run("cuda_vit_l14_image_b256", 5, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
        num_attention_heads=16, patch_size=14, projection_dim=768)
