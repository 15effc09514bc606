"""Writes src/label/imagenet1k_classes.txt: the 1000 clean ImageNet-1k class names, one per line.

Source: `open_clip/zero_shot_metadata.py` (IMAGENET_CLASSNAMES) in the PyPI package open-clip-torch (MIT
license, © the OpenCLIP authors). Rerun: `pip install open-clip-torch && python tools/data/extract_imagenet_classes.py`.
"""
import pathlib

from open_clip import zero_shot_metadata as meta

names = list(meta.IMAGENET_CLASSNAMES)
assert len(names) == 1000 and all("\n" not in n for n in names)
out = pathlib.Path(__file__).resolve().parents[2] / "src" / "label" / "imagenet1k_classes.txt"
out.write_text("\n".join(names) + "\n", encoding="utf-8")
print(f"wrote {len(names)} names to {out}")
