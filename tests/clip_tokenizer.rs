//! CLIP BPE tokenizer against transformers' `CLIPTokenizer` and open_clip's `SimpleTokenizer` on a
//! committed corpus (tools/golden/clip_tokenizer_goldens.py), with the real 49408-token vocabulary.

mod common;

use std::io::Read;
use std::path::PathBuf;

use rateclust::clip::tokenizer::Tokenizer;
use rateclust::Status;

struct Entry {
    text: String,
    hf: Vec<u32>,
    open_clip: Vec<u32>,
    differ: bool,
}

fn corpus() -> Vec<Entry> {
    let text = std::fs::read_to_string(common::fixture("clip_io/tokenizer_corpus.jsonl")).unwrap();
    let ids = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Entry {
                text: v["text"].as_str().unwrap().to_string(),
                hf: ids(&v["hf"]),
                open_clip: ids(&v["open_clip"]),
                differ: v["differ"].as_bool().unwrap(),
            }
        })
        .collect()
}

fn gz_tokenizer() -> Tokenizer {
    Tokenizer::from_bpe_gz(&common::fixture("clip_io/bpe_simple_vocab_16e6_clip.txt.gz")).unwrap()
}

fn gunzip_to(src: &str, dst: &PathBuf) {
    let raw = std::fs::read(common::fixture(src)).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
    std::fs::write(dst, out).unwrap();
}

fn hf_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_tokenizer_hf");
    std::fs::create_dir_all(&dir).unwrap();
    gunzip_to("clip_io/hf_vocab.json.gz", &dir.join("vocab.json"));
    gunzip_to("clip_io/hf_merges.txt.gz", &dir.join("merges.txt"));
    dir
}

fn check_corpus(tok: &Tokenizer, source: &str) {
    let corpus = corpus();
    assert!(corpus.len() >= 40);
    let mut failures = Vec::new();
    for e in &corpus {
        let ours = tok.encode(&e.text);
        if ours != e.hf {
            failures.push(format!("{:?}\n  ours {:?}\n  hf   {:?}", e.text, ours, e.hf));
        }
    }
    println!("{source}: {}/{} corpus strings identical to transformers CLIPTokenizer", corpus.len() - failures.len(), corpus.len());
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn matches_transformers_clip_tokenizer_from_openai_bpe_gz() {
    let tok = gz_tokenizer();
    assert_eq!(tok.vocab_size(), 49408);
    assert_eq!((tok.bos_id(), tok.eos_id()), (49406, 49407));
    check_corpus(&tok, "bpe_simple_vocab_16e6 (gz)");
}

#[test]
fn matches_transformers_clip_tokenizer_from_hf_vocab_and_merges() {
    let dir = hf_dir();
    let tok = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.vocab_size(), 49408);
    check_corpus(&tok, "vocab.json + merges.txt");
}

#[test]
fn agrees_with_open_clip_except_where_ftfy_or_special_tokens_differ() {
    let tok = gz_tokenizer();
    let corpus = corpus();
    let mut differ = 0;
    for e in &corpus {
        let ours = tok.encode(&e.text);
        if e.differ {
            differ += 1;
            println!("open_clip differs (ftfy / html unescape / special-token names / Python lower()): {:?}", e.text);
            assert_ne!(ours, e.open_clip);
        } else {
            assert_eq!(ours, e.open_clip, "{:?}", e.text);
        }
    }
    println!("{}/{} corpus strings identical to open_clip SimpleTokenizer", corpus.len() - differ, corpus.len());
    assert!(differ * 3 < corpus.len());
}

#[test]
fn truncation_keeps_end_of_text_and_batches_pad() {
    let tok = gz_tokenizer();
    let long = "word ".repeat(200);
    let ids = tok.encode(&long);
    assert_eq!(ids.len(), 77);
    assert_eq!((ids[0], ids[76]), (49406, 49407));
    assert!(ids[1..76].iter().all(|&i| i != 49407));

    let texts = ["a photo of a cat", "", long.as_str()];
    let (batch, eot) = tok.encode_batch(&texts, 77).unwrap();
    assert_eq!(batch.len(), 3 * 77);
    assert_eq!(eot, vec![6, 1, 76]);
    assert_eq!(&batch[..7], &[49406, 320, 1125, 539, 320, 2368, 49407]);
    assert!(batch[7..77].iter().all(|&i| i == tok.pad_id()), "transformers pads with <|endoftext|>");
    assert_eq!(&batch[77..79], &[49406, 49407]);
    assert_eq!(&batch[154..231], &ids[..]);

    // Shorter contexts (e.g. a model with fewer positions) truncate the same way.
    let (short, eot) = tok.encode_batch(&texts, 4).unwrap();
    assert_eq!(short, vec![49406, 320, 1125, 49407, 49406, 49407, 49407, 49407, 49406, 2653, 2653, 49407]);
    assert_eq!(eot, vec![3, 1, 3]);

    let mut oc = tok.clone();
    oc.set_pad_id(0);
    let (b, _) = oc.encode_batch(&["a photo of a cat"], 10).unwrap();
    assert_eq!(b, vec![49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, 0], "open_clip layout");
    assert_eq!(tok.encode_batch(&texts, 1).unwrap_err().status(), Status::InvalidArgument);
    assert!(oc.set_context_length(1).is_err());
}

#[test]
fn bad_vocabulary_files_are_clear_errors() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_tokenizer_bad");
    std::fs::create_dir_all(&dir).unwrap();
    let err = Tokenizer::from_files(&dir.join("missing.json"), &dir.join("missing.txt")).unwrap_err();
    assert_eq!(err.status(), Status::Io);
    assert!(err.to_string().contains("missing.json"), "{err}");

    std::fs::write(dir.join("vocab.json"), "[1, 2]").unwrap();
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\n").unwrap();
    let err = Tokenizer::from_dir(&dir).unwrap_err();
    assert_eq!(err.status(), Status::Format);
    assert!(err.to_string().contains("vocab.json"), "{err}");

    // A vocabulary without the byte symbols cannot tokenize arbitrary text.
    std::fs::write(dir.join("vocab.json"), r#"{"a": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}"#).unwrap();
    let err = Tokenizer::from_dir(&dir).unwrap_err();
    assert_eq!(err.status(), Status::Format);
    assert!(err.to_string().contains("byte symbol"), "{err}");

    // A merge whose result is missing from the vocabulary.
    let full = hf_dir();
    let vocab = std::fs::read_to_string(full.join("vocab.json")).unwrap();
    std::fs::write(dir.join("vocab.json"), &vocab).unwrap();
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\nq z\n").unwrap();
    let err = Tokenizer::from_dir(&dir).unwrap_err();
    assert!(err.to_string().contains("merge result `qz`"), "{err}");
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\nthree parts here\n").unwrap();
    assert_eq!(Tokenizer::from_dir(&dir).unwrap_err().status(), Status::Format);

    // Truncated or non-gzip BPE files.
    let gz = std::fs::read(common::fixture("clip_io/bpe_simple_vocab_16e6_clip.txt.gz")).unwrap();
    assert_eq!(Tokenizer::from_bpe_gz_bytes(&gz[..gz.len() / 2]).unwrap_err().status(), Status::Format);
    assert_eq!(Tokenizer::from_bpe_gz_bytes(b"plain text").unwrap_err().status(), Status::Format);
    let mut short = Vec::new();
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(&mut short, flate2::Compression::fast());
        enc.write_all(b"#version\na b\n").unwrap();
        enc.finish().unwrap();
    }
    let err = Tokenizer::from_bpe_gz_bytes(&short).unwrap_err();
    assert!(err.to_string().contains("48894 merges"), "{err}");
}

/// A hostile text — one word of 1 MB, or a million short words — is cut to the context length without
/// encoding what would be thrown away (it took minutes before), and keeps the ids the full encoding
/// starts with (compared on a 20 KB word and on 5,000 words, which still encode in full quickly).
#[test]
fn huge_texts_encode_only_what_fits() {
    let tok = gz_tokenizer();
    let word = "abcdefghij".repeat(2_000);
    let full: Vec<u32> = tok.encode_ids(&word);
    let cut = tok.encode(&word);
    assert_eq!(cut.len(), 77);
    assert_eq!(&cut[1..76], &full[..75]);
    let words = "photo of a cat ".repeat(1_250);
    let full = tok.encode_ids(&words);
    assert_eq!(&tok.encode(&words)[1..76], &full[..75]);
    assert_eq!(tok.encode(&"x".repeat(1 << 20)).len(), 77);
    assert_eq!(tok.encode(&"dog ".repeat(1 << 18)).len(), 77);
}
