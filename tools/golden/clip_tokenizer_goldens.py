"""Golden files for the CLIP BPE tokenizer (tests/clip_tokenizer.rs).

Rerun (deterministic; rewrites the files below):
    /work/venv/bin/python tools/golden/clip_tokenizer_goldens.py

Needs open_clip (open-clip-torch, ships OpenAI's MIT-licensed bpe_simple_vocab_16e6.txt.gz), ftfy and
transformers (>= 5, `CLIPTokenizer` backed by `tokenizers`).

Writes, under tests/fixtures/clip_io/:
  bpe_simple_vocab_16e6_clip.txt.gz  OpenAI's merges file cut to the header + the 48894 merges CLIP uses
                                     (the original holds 262k lines, most unused; same format)
  hf_vocab.json.gz, hf_merges.txt.gz the same vocabulary in Hugging Face format (`vocab.json`,
                                     `merges.txt` of a CLIP model directory), built from open_clip's
                                     SimpleTokenizer encoder with HF's special-token names
  tokenizer_corpus.jsonl             one JSON object per line: text, ids from transformers' CLIPTokenizer
                                     (`hf`, truncation to 77), ids from open_clip's SimpleTokenizer
                                     (`open_clip`, same truncation), and whether they differ
"""

import gzip
import json
import os
import tempfile

import open_clip
from open_clip.tokenizer import SimpleTokenizer
from transformers import CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "clip_io")
CONTEXT = 77

CORPUS = [
    "a photo of a cat",
    "A Photo Of A CAT.",
    "a photo of a great white shark",
    "a photo of a jack-o'-lantern",
    "a bad photo of the tiger cat.",
    "I'm sure it's the dog's bone; we'll see, they've gone, you're right, he'd know, can't won't",
    "IT'S DON'T I'LL WE'VE YOU'D",
    "'s 't 're 've 'm 'll 'd 'x '",
    "1234567 3.14159 1,000,000 2nd 10x 0.5mm",
    "Hello, world!!! ... ?!? (parens) [brackets] {braces} #hashtag @mention $5.00 50% a&b",
    "café naïve résumé Über Straße façade jalapeño crème brûlée",
    "cafe\u0301 nai\u0308ve (decomposed accents, NFC)",
    "東京タワーの写真",
    "北京欢迎你",
    "한국어 텍스트",
    "Привет, мир! ΟΔΥΣΣΕΥΣ İstanbul STRASSE",
    "مرحبا بالعالم שלום עולם",
    "สวัสดี नमस्ते (combining marks)",
    "🐱 cat 😀😀 👍🏽 👨‍👩‍👧 🇫🇷",
    "“curly quotes” and ‘single ones’",
    "fish &amp; chips &lt;b&gt;",
    "  lots   of\tspaces\nand\nnewlines  ",
    "\u00a0nbsp\u2003em\u3000ideographic space",
    "",
    "   ",
    "<|startoftext|>hello<|endoftext|>",
    "before <|endoftext|> after",
    "<|ENDOFTEXT|> is not special",
    "zero\u200bwidth soft\u00adhyphen",
    "ViT-L/14@336px",
    "https://example.com/a_b?c=d&e=f#frag",
    "C++ & C# — em dash – en dash … ellipsis",
    "e-mail: first.last@example.org",
    "\x00\x07 control \x1b[31m chars",
    "ＡＢＣ１２３ fullwidth",
    "ﬁnance ﬂow ligatures",
    "x² + y² = z², ½ ⅓ Ⅻ ①",
    "ǅ titlecase, ß, ﬀ",
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 300,
    "1" * 100,
    " ".join(["word"] * 80),
    " ".join(f"token{i}" for i in range(60)),
    "The quick brown fox jumps over the lazy dog. " * 8,
    "mixedCASE camelCaseWords snake_case_words kebab-case-words",
    "¡¿Qué?! «guillemets» „German“ 「括弧」",
    "tab\tseparated\tvalues\r\nwindows line",
    "a photo of a {}",
]


def main():
    bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    with open(os.path.join(OUT, "bpe_simple_vocab_16e6_clip.txt.gz"), "wb") as f:
        f.write(gzip.compress(("\n".join([lines[0]] + merges) + "\n").encode("utf-8"), compresslevel=9, mtime=0))

    st = SimpleTokenizer(bpe_path=bpe)
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {rename.get(k, k): v for k, v in sorted(st.encoder.items(), key=lambda kv: kv[1])}
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    vocab_json = json.dumps(vocab, ensure_ascii=False)
    merges_txt = "#version: 0.2\n" + "\n".join(merges) + "\n"
    with open(os.path.join(OUT, "hf_vocab.json.gz"), "wb") as f:
        f.write(gzip.compress(vocab_json.encode("utf-8"), compresslevel=9, mtime=0))
    with open(os.path.join(OUT, "hf_merges.txt.gz"), "wb") as f:
        f.write(gzip.compress(merges_txt.encode("utf-8"), compresslevel=9, mtime=0))

    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "vocab.json"), "w", encoding="utf-8").write(vocab_json)
        open(os.path.join(d, "merges.txt"), "w", encoding="utf-8").write(merges_txt)
        hf = CLIPTokenizer(vocab=os.path.join(d, "vocab.json"), merges=os.path.join(d, "merges.txt"))
        assert hf("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]

    n_diff = 0
    with open(os.path.join(OUT, "tokenizer_corpus.jsonl"), "w", encoding="utf-8") as f:
        for text in CORPUS:
            ids_hf = hf(text, truncation=True, max_length=CONTEXT)["input_ids"]
            ids_oc = [st.sot_token_id] + st.encode(text) + [st.eot_token_id]
            if len(ids_oc) > CONTEXT:  # open_clip SimpleTokenizer.__call__'s truncation
                ids_oc = ids_oc[:CONTEXT]
                ids_oc[-1] = st.eot_token_id
            differ = ids_hf != ids_oc
            n_diff += differ
            f.write(json.dumps(dict(text=text, hf=ids_hf, open_clip=ids_oc, differ=differ), ensure_ascii=False) + "\n")
            if differ:
                print(f"transformers != open_clip on {text!r}")
    print(f"wrote {len(CORPUS)} corpus entries ({n_diff} where transformers and open_clip differ)")


if __name__ == "__main__":
    main()
