"""Golden outputs of a tiny random transformers CLIP model, for tests/clip_model_*.rs.

Rerun (deterministic, CPU, ~10 s):
    /work/venv/bin/python tools/golden/clip_model_goldens.py
It rewrites tests/fixtures/clip_model/:
  tiny/                    a CLIPModel as a Hugging Face directory: config.json + model.safetensors (f16 weights),
                           vocab.json + merges.txt (built from open_clip's bpe_simple_vocab_16e6.txt.gz the way
                           transformers converts it), preprocessor_config.json (32 px, OpenAI mean/std);
                           text tower: the real 49408-token vocabulary, hidden 24, 2 layers, 4 heads, quick_gelu,
                           eos_token_id 49407; vision tower: 32 px images, 8 px patches, hidden 48, 2 layers,
                           4 heads, *gelu* (so both activations are exercised); projection 24.
  tiny_vision/             the same vision weights as a CLIPVisionModelWithProjection, f32 safetensors
                           (tests the vision-only layout and f32 loading).
  goldens.safetensors      inputs and transformers' outputs, all f32 except token ids (i64):
      pixel_values [NI,3,32,32], input_ids [NT,77] (transformers CLIPTokenizer from tiny/'s vocab, padded to 77
      with <|endoftext|>), input_ids_open_clip [NT,77] (open_clip.tokenize, 0 padding),
      vision_hidden_{0..L} [NI,17,48] (hidden_states[0] = after pre_layrnorm, as transformers reports it),
      vision_pooled [NI,48] (post_layernorm of the class token), image_embeds [NI,24] (projected, not normalised),
      text_hidden_{0..L} [NT,77,24] (compare positions ≤ eot only: later ones see padding),
      text_last_hidden [NT,77,24] (after final_layer_norm), text_pooled [NT,24], text_embeds [NT,24],
      logits_per_image [NI,NT], logit_scale [1],
      file_pixel_values [1,3,32,32] and file_image_embeds [1,24]: image.png (a 45×30 RGB picture generated here)
      through CLIPImageProcessorPil (tiny/preprocessor_config.json) and the model.
The model's weights are rounded to f16 *before* the reference forward pass, so the goldens are exactly what
transformers computes in f32 from the committed weights.
"""
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
import transformers
from transformers import CLIPConfig, CLIPModel, CLIPVisionModelWithProjection, CLIPTokenizer
import open_clip
from open_clip.tokenizer import bytes_to_unicode, default_bpe
import gzip
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "clip_model")
OUT = os.path.normpath(OUT)

TEXTS = [
    "a photo of a cat",
    "a photo of a dog",
    "An ASTRONAUT riding a horse on the moon, digital art!",
    "",
    "x " * 100,  # truncated to 77 tokens: eot at the last position
    "Café déjà vu — naïve 東京 🙂",
]


def write_vocab(tiny):
    """vocab.json / merges.txt as transformers' CLIP conversion lays them out (open_clip SimpleTokenizer order)."""
    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(tiny, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(tiny, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.write("\n".join(" ".join(m) for m in merges) + "\n")
    assert len(vocab) == 49408


def main():
    torch.manual_seed(1234)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, num_channels=3, hidden_act="gelu", layer_norm_eps=1e-5),
        projection_dim=24,
        logit_scale_init_value=2.6592,
    )
    config._attn_implementation = "eager"
    model = CLIPModel(config).eval()
    # Random init gives LayerNorms weight 1 / bias 0; perturb them (and all biases) so that the test
    # would notice a missing or swapped affine term.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
            if name == "logit_scale":
                p.fill_(2.6592)
        # Round every weight to f16 so that the committed f16 file is the model the goldens come from.
        for p in model.parameters():
            p.copy_(p.half().float())

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tiny = os.path.join(OUT, "tiny")
    model.save_pretrained(tiny, safe_serialization=True)
    # Re-save the weights in f16 under the same names (save_pretrained writes f32).
    from safetensors.torch import load_file
    sd = load_file(os.path.join(tiny, "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in sd.items()}, os.path.join(tiny, "model.safetensors"),
              metadata={"format": "pt"})

    write_vocab(tiny)
    with open(os.path.join(tiny, "preprocessor_config.json"), "w") as f:
        json.dump({"crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_normalize": True,
                   "do_resize": True, "image_processor_type": "CLIPImageProcessor",
                   "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
                   "resample": 3, "size": {"shortest_edge": 32}}, f, indent=2)
    tok = CLIPTokenizer(os.path.join(tiny, "vocab.json"), os.path.join(tiny, "merges.txt"))

    vcfg = transformers.CLIPVisionConfig(**{**config.vision_config.to_dict(), "projection_dim": config.projection_dim})
    vcfg._attn_implementation = "eager"
    vis = CLIPVisionModelWithProjection(vcfg).eval()
    vsd = {k: v for k, v in model.state_dict().items() if k.startswith("vision_model.") or k.startswith("visual_projection.")}
    missing, unexpected = vis.load_state_dict(vsd, strict=False)
    assert not unexpected and all("position_ids" in m for m in missing), (missing, unexpected)
    vis.save_pretrained(os.path.join(OUT, "tiny_vision"), safe_serialization=True)

    g = torch.Generator().manual_seed(7)
    pixel_values = torch.randn(3, 3, 32, 32, generator=g) * 1.5
    input_ids_open_clip = open_clip.tokenize(TEXTS, context_length=77).long()
    input_ids = tok(TEXTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids.long()
    # The plain-ASCII prompts tokenize identically in both references.
    for i in range(3):
        n = int((input_ids[i] == 49407).int().argmax()) + 1
        assert torch.equal(input_ids[i, :n], input_ids_open_clip[i, :n]), (i, input_ids[i], input_ids_open_clip[i])

    # An image file through the real preprocessing.
    yy, xx = np.mgrid[0:30, 0:45]
    rgb = np.stack([(xx * 5.6) % 256, (yy * 8.5) % 256, ((xx + yy) * 3.3) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "image.png"))
    from transformers import CLIPImageProcessorPil
    proc = CLIPImageProcessorPil.from_pretrained(tiny)
    file_pixel_values = proc(images=Image.open(os.path.join(OUT, "image.png")), return_tensors="pt").pixel_values
    assert tuple(file_pixel_values.shape) == (1, 3, 32, 32)

    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, output_hidden_states=True, return_dict=True)
        vout = out.vision_model_output
        tout = out.text_model_output
        image_embeds = model.get_image_features(pixel_values=pixel_values).pooler_output
        text_embeds = model.get_text_features(input_ids=input_ids).pooler_output
        vis_embeds = vis(pixel_values=pixel_values).image_embeds
        file_image_embeds = model.get_image_features(pixel_values=file_pixel_values).pooler_output
        # CLIPModel.forward overwrites the towers' pooler_output with the projection (transformers 5), so take
        # the pooled outputs from the towers themselves.
        vision_pooled = model.vision_model(pixel_values=pixel_values).pooler_output
        text_pooled = model.text_model(input_ids=input_ids).pooler_output
    assert torch.allclose(model.visual_projection(vision_pooled), image_embeds, atol=1e-6)
    assert torch.allclose(model.text_projection(text_pooled), text_embeds, atol=1e-6)
    assert torch.allclose(vis_embeds, image_embeds, atol=1e-6)
    # The vision hidden_states[0] transformers reports must be the encoder input (after pre_layrnorm).
    with torch.no_grad():
        emb = model.vision_model.pre_layrnorm(model.vision_model.embeddings(pixel_values))
    assert torch.allclose(vout.hidden_states[0], emb, atol=1e-6)
    assert len(vout.hidden_states) == config.vision_config.num_hidden_layers + 1
    assert len(tout.hidden_states) == config.text_config.num_hidden_layers + 1

    gold = {
        "pixel_values": pixel_values,
        "input_ids": input_ids,
        "input_ids_open_clip": input_ids_open_clip,
        "file_pixel_values": file_pixel_values,
        "file_image_embeds": file_image_embeds,
        "vision_pooled": vision_pooled,
        "image_embeds": image_embeds,
        "text_last_hidden": tout.last_hidden_state,
        "text_pooled": text_pooled,
        "text_embeds": text_embeds,
        "logits_per_image": out.logits_per_image,
        "logit_scale": model.logit_scale.detach().reshape(1),
    }
    for i, h in enumerate(vout.hidden_states):
        gold[f"vision_hidden_{i}"] = h
    for i, h in enumerate(tout.hidden_states):
        gold[f"text_hidden_{i}"] = h
    gold = {k: v.detach().contiguous() for k, v in gold.items()}
    save_file(gold, os.path.join(OUT, "goldens.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__,
                        "texts": json.dumps(TEXTS)})
    for root, _, files in os.walk(OUT):
        for f in files:
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, OUT):40s} {os.path.getsize(p):>10d} bytes")


if __name__ == "__main__":
    main()
