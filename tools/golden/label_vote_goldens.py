"""Golden file for the self-labeling vote (src/label/vote.rs), restated in NumPy from CPP's label_clusters:
p = softmax(100 · cos(image, caption)); each image adds its top-5 probabilities to its cluster's votes;
name = argmax of votes; score = winner's votes / members.

Rerun: /path/to/python-with-numpy+safetensors tools/golden/label_vote_goldens.py
Writes tests/fixtures/label/vote.safetensors.
"""
import pathlib

import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(1234)
n, dim, n_text, k, top = 200, 12, 20, 5, 5
text = rng.standard_normal((n_text, dim)).astype(np.float32)
labels = rng.integers(0, k, n)
# Members of cluster j lean towards caption 3j, weakly, so votes are contested but not random.
image = (rng.standard_normal((n, dim)) + 0.8 * text[3 * labels]).astype(np.float32)

img = image.astype(np.float64)
img /= np.linalg.norm(img, axis=1, keepdims=True)
txt = text.astype(np.float64)
txt /= np.linalg.norm(txt, axis=1, keepdims=True)
logits = 100.0 * img @ txt.T
p = np.exp(logits - logits.max(axis=1, keepdims=True))
p /= p.sum(axis=1, keepdims=True)
votes = np.zeros((k, n_text))
for i in range(n):
    best = np.argsort(-p[i], kind="stable")[:top]
    votes[labels[i], best] += p[i, best]
members = np.bincount(labels, minlength=k)
caption = votes.argmax(axis=1)
score = votes[np.arange(k), caption] / members

out = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "label" / "vote.safetensors"
save_file(
    {
        "image": image,
        "text": text,
        "labels": labels.astype(np.int64),
        "caption": caption.astype(np.int64),
        "score": score.astype(np.float32),
    },
    str(out),
)
print("wrote", out, "captions", caption, "scores", score)
