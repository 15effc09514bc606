"""CPU peers of examples/bench_clip.rs (ViT-B/32 cases), on the same weights, 2 threads.

    target/peers-venv/bin/python tools/bench/clip_cpu_peers.py --model DIR [--work DIR] [--reps 3] [peer ...]

DIR is the checkpoint that `bench_clip --write-model DIR` writes: the very bytes (seed 1, f16) that the Rust
`vit_b32_*` cases build in memory, with a config.json for transformers' CLIPModel.from_pretrained (loaded as f32).

Peers (each one runs in its own subprocess, so its peak RSS, ru_maxrss, is its own):
  torch_f32   PyTorch eager, f32                         torch_bf16   PyTorch eager under torch.autocast("cpu", bf16)
  ort_f32     ONNX Runtime, the towers exported with torch.onnx.export from the same model
  ort_int8    ONNX Runtime, quantize_dynamic (QInt8 weights, per-tensor: the default)
  ort_int8pc  ONNX Runtime, quantize_dynamic(per_channel=True)

Workloads (same as our cases, inputs drawn here with fixed seeds: our Rust RNG is not reproduced, the shapes are):
  vit_b32_image       32 images of N(0,1) "preprocessed" pixels, 3x224x224, one batch of 32
  vit_b32_text_short  256 prompts "a photo of a {label}" = [49406, 320, 1125, 539, 320] + 1-3 random label ids
                      in [1000, 41000) + [49407], sorted by length and run in batches of 64, each padded (with
                      49407, after the EOT; the causal mask keeps it out of the pooled row) to its own longest, as
                      ClipModel::embed_token_ids batches them.
Every timed pass (after one warm-up) prints `PASS<TAB>case<TAB>ms per item`; then `BENCH<TAB>case<TAB>ms` (best,
as our bench prints), `ACC<TAB>case<TAB>min cosine<TAB>min centred cosine` against torch_f32 (centred: the batch's
mean embedding of each side subtracted from its rows first), `RSS<TAB>peer<TAB>MiB`, or `FAIL<TAB>peer<TAB>why`
when a peer cannot run (import error, export or quantization failure): no number is printed for it then.
"""
import argparse
import os
import subprocess
import sys
import time
import traceback

THREADS = 2
PEERS = ["torch_f32", "torch_bf16", "ort_f32", "ort_int8", "ort_int8pc"]
CASES = ["vit_b32_image", "vit_b32_text_short"]


def inputs():
    import numpy as np

    rng = np.random.default_rng(11)
    pixels = rng.standard_normal((32, 3, 224, 224), dtype=np.float32)
    rows = []
    for _ in range(256):
        k = 1 + int(rng.integers(0, 3))
        rows.append([49406, 320, 1125, 539, 320] + rng.integers(1000, 41000, k).tolist() + [49407])
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    batches = []
    for s in range(0, len(order), 64):
        chunk = [rows[i] for i in order[s:s + 64]]
        width = max(len(r) for r in chunk)
        batches.append(np.array([r + [49407] * (width - len(r)) for r in chunk], dtype=np.int64))
    return pixels, batches, order


def timed(case, items, reps, fn):
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ms = (time.perf_counter() - t) * 1e3 / items
        print(f"PASS\t{case}\t{ms:.3f}", flush=True)
        best = min(best, ms)
    print(f"BENCH\t{case}\t{best:.3f}", flush=True)
    return out


def export(model_dir, work):
    """Exports the two towers to ONNX (f32) and quantizes them; files are kept in `work` across runs."""
    import torch
    from transformers import CLIPModel

    vis, txt = os.path.join(work, "vision.onnx"), os.path.join(work, "text.onnx")
    if not (os.path.exists(vis) and os.path.exists(txt)):
        model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()

        class Vision(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, pixel_values):
                return self.m.visual_projection(self.m.vision_model(pixel_values=pixel_values).pooler_output)

        class Text(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids):
                return self.m.text_projection(self.m.text_model(input_ids=input_ids).pooler_output)

        px = torch.randn(2, 3, 224, 224)
        ids = torch.tensor([[49406, 320, 1125, 539, 320, 2000, 49407, 49407]] * 2)
        with torch.no_grad():
            for mod, arg, name, path, axes in [
                (Vision(model), px, "pixel_values", vis, {0: "batch"}),
                (Text(model), ids, "input_ids", txt, {0: "batch", 1: "seq"}),
            ]:
                torch.onnx.export(mod, (arg,), path, input_names=[name], output_names=["embeds"],
                                  dynamic_axes={name: axes, "embeds": {0: "batch"}}, opset_version=17, dynamo=False)
        print(f"exported {vis} {txt}", file=sys.stderr)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for suffix, per_channel in [("int8", False), ("int8pc", True)]:
        for tower in ["vision", "text"]:
            src, dst = os.path.join(work, f"{tower}.onnx"), os.path.join(work, f"{tower}.{suffix}.onnx")
            if os.path.exists(dst):
                continue
            try:
                quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=per_channel)
            except Exception as e:  # reported by the peer that needs it
                with open(dst + ".failed", "w") as f:
                    f.write(f"{type(e).__name__}: {e}\n")


def run_peer(peer, model_dir, work, reps):
    """One peer in this process: times both cases, saves the embeddings (.npy) for the accuracy check."""
    import numpy as np

    pixels, batches, order = inputs()
    n_text = sum(len(b) for b in batches)
    if peer.startswith("torch"):
        import torch
        from transformers import CLIPModel

        torch.set_num_threads(THREADS)
        model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
        px = torch.from_numpy(pixels)
        tb = [torch.from_numpy(b) for b in batches]
        if peer == "torch_bf16":
            ctx = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        else:
            import contextlib

            ctx = contextlib.nullcontext

        def image():
            with torch.inference_mode(), ctx():
                return model.visual_projection(model.vision_model(pixel_values=px).pooler_output).float().numpy()

        def text():
            with torch.inference_mode(), ctx():
                return np.concatenate([model.text_projection(model.text_model(input_ids=b).pooler_output).float().numpy()
                                       for b in tb])
    else:
        import onnxruntime as ort

        suffix = {"ort_f32": "", "ort_int8": ".int8", "ort_int8pc": ".int8pc"}[peer]
        so = ort.SessionOptions()
        so.intra_op_num_threads = THREADS
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sessions = {}
        for tower in ["vision", "text"]:
            path = os.path.join(work, f"{tower}{suffix}.onnx")
            if os.path.exists(path + ".failed"):
                raise RuntimeError(f"quantize_dynamic failed for {tower}: " + open(path + ".failed").read().strip())
            sessions[tower] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

        def image():
            return sessions["vision"].run(None, {"pixel_values": pixels})[0]

        def text():
            return np.concatenate([sessions["text"].run(None, {"input_ids": b})[0] for b in batches])

    img = timed(f"vit_b32_image_{peer}", len(pixels), reps, image)
    txt = timed(f"vit_b32_text_short_{peer}", n_text, reps, text)
    np.save(os.path.join(work, f"emb_{peer}_vit_b32_image.npy"), np.asarray(img, dtype=np.float32))
    np.save(os.path.join(work, f"emb_{peer}_vit_b32_text_short.npy"), np.asarray(txt, dtype=np.float32))


def accuracy(a, b):
    import numpy as np

    def mincos(x, y):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        y = y / np.linalg.norm(y, axis=1, keepdims=True)
        return float((x * y).sum(1).min())

    a, b = a.astype(np.float64), b.astype(np.float64)
    return mincos(a, b), mincos(a - a.mean(0), b - b.mean(0))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="directory written by `bench_clip --write-model DIR`")
    ap.add_argument("--work", default="target/bench_clip_peers", help="ONNX files and embeddings")
    ap.add_argument("--reps", type=int, default=3, help="timed passes per case (after one warm-up)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--export", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("peers", nargs="*", default=PEERS)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    for v in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"]:
        os.environ[v] = str(THREADS)

    if a.export:
        export(a.model, a.work)
        return
    if a.child:
        import resource

        try:
            run_peer(a.child, a.model, a.work, a.reps)
        except ImportError as e:
            print(f"FAIL\t{a.child}\timport error: {e}", flush=True)
            sys.exit(3)
        except Exception as e:
            traceback.print_exc()
            print(f"FAIL\t{a.child}\t{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
            sys.exit(3)
        print(f"RSS\t{a.child}\t{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", flush=True)
        return

    me = [sys.executable, os.path.abspath(__file__), "--model", a.model, "--work", a.work, "--reps", str(a.reps)]
    if any(p.startswith("ort") for p in a.peers):
        r = subprocess.run(me + ["--export"])
        if r.returncode != 0:
            print(f"FAIL\tort_export\texit {r.returncode} (see stderr); the ort peers will fail", flush=True)
    import numpy as np

    peers = a.peers if "torch_f32" in a.peers else ["torch_f32"] + a.peers  # the accuracy reference
    ok = set()
    for p in peers:
        r = subprocess.run(me + ["--child", p])
        if r.returncode == 0:
            ok.add(p)
        elif r.returncode != 3:
            print(f"FAIL\t{p}\texit {r.returncode}", flush=True)
    if "torch_f32" not in ok:
        print("FAIL\taccuracy\tno torch_f32 reference", flush=True)
        return
    for case in CASES:
        ref = np.load(os.path.join(a.work, f"emb_torch_f32_{case}.npy"))
        for p in peers:
            if p == "torch_f32" or p not in ok:
                continue
            cos, centred = accuracy(ref, np.load(os.path.join(a.work, f"emb_{p}_{case}.npy")))
            print(f"ACC\t{case}_{p}\t{cos:.6f}\t{centred:.6f}", flush=True)


if __name__ == "__main__":
    main()
