//! CLIP's byte-level BPE tokenizer.
//!
//! Mirrors transformers' `CLIPTokenizer` (transformers ≥ 5, the `tokenizers`-backed one):
//! 1. the literal special tokens `<|startoftext|>` / `<|endoftext|>` in the input map to their ids;
//! 2. the rest is normalised: Unicode NFC, runs of whitespace → one space, lowercase;
//! 3. pre-tokenised with CLIP's pattern
//!    `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` (whitespace between matches dropped);
//! 4. each piece's UTF-8 bytes mapped through GPT-2's `bytes_to_unicode`, `</w>` appended to the last
//!    symbol, and merged pair by pair, lowest merge rank first, every occurrence left to right
//!    (open_clip `SimpleTokenizer.bpe`);
//! 5. `<|startoftext|>` … `<|endoftext|>` around the ids; longer sequences are cut to the context
//!    length with the last position replaced by `<|endoftext|>` (open_clip and transformers agree).
//!
//! Known divergence from open_clip's / OpenAI's `SimpleTokenizer`: those run `ftfy.fix_text` and a double
//! `html.unescape` first (curly quotes → straight, `&amp;` → `&`, mojibake repair, fullwidth → ASCII, …).
//! transformers does not, and neither do we; the test corpus records on which strings the two
//! references differ.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};
use crate::invalid_arg;

/// The start-of-text token string.
pub const BOS_TOKEN: &str = "<|startoftext|>";
/// The end-of-text token string (also transformers' pad and unknown token).
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// Context length of every released CLIP model.
pub const DEFAULT_CONTEXT_LENGTH: usize = 77;
/// Bytes of a word BPE-encoded per token wanted (see `encode_ids_upto`): longer than any vocabulary entry.
const BYTES_PER_TOKEN: usize = 32;

const PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+";

/// A loaded CLIP BPE tokenizer. Immutable after loading; `Sync`, so one instance serves all threads.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    /// Token id of each single byte (GPT-2 `bytes_to_unicode` symbol), without and with `</w>`.
    byte_ids: [u32; 256],
    byte_ids_eow: [u32; 256],
    /// (left id, right id) → (merge rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    vocab_size: usize,
    bos: u32,
    eos: u32,
    pad: u32,
    context_length: usize,
    pattern: Regex,
    special: Regex,
}

/// GPT-2 / CLIP `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100 onwards in byte order.
fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut table = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    table
}

impl Tokenizer {
    /// Loads Hugging Face `vocab.json` + `merges.txt` (as found in a CLIP model directory).
    pub fn from_files(vocab_json: &Path, merges_txt: &Path) -> Result<Self> {
        let vocab_text = std::fs::read_to_string(vocab_json).map_err(|e| Error::io(vocab_json, e))?;
        let vocab: HashMap<String, u32> = serde_json::from_str(&vocab_text)
            .map_err(|e| Error::Format(format!("{}: not a JSON object of token → id: {e}", vocab_json.display())))?;
        let merges_text = std::fs::read_to_string(merges_txt).map_err(|e| Error::io(merges_txt, e))?;
        let merges: Vec<&str> = merges_text
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .collect();
        Self::from_parts(vocab, &merges).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{} / {}: {m}", vocab_json.display(), merges_txt.display())),
            other => other,
        })
    }

    /// Loads a Hugging Face model directory's `vocab.json` and `merges.txt`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_files(&dir.join("vocab.json"), &dir.join("merges.txt"))
    }

    /// Loads OpenAI's `bpe_simple_vocab_16e6.txt.gz` (shipped with open_clip / CLIP), building the
    /// 49408-token vocabulary the way `SimpleTokenizer` does: 256 byte symbols, the same with `</w>`,
    /// the first 48894 merges, then `<|startoftext|>`, `<|endoftext|>`.
    pub fn from_bpe_gz(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bpe_gz_bytes(&raw).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// [`Tokenizer::from_bpe_gz`] from the gzipped bytes.
    pub fn from_bpe_gz_bytes(gz: &[u8]) -> Result<Self> {
        const N_MERGES: usize = 49152 - 256 - 2;
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|e| Error::Format(format!("not a gzipped UTF-8 BPE merges file: {e}")))?;
        // Line 0 is a version header; the file holds more merges than CLIP uses.
        let merges: Vec<&str> = text.split('\n').skip(1).take(N_MERGES).collect();
        if merges.len() != N_MERGES || merges.iter().any(|m| m.split(' ').count() != 2) {
            return Err(Error::Format(format!("expected {N_MERGES} merges of two symbols after the header")));
        }
        // Vocabulary order = `bytes_to_unicode().values()` in Python's insertion order: the printable
        // bytes first (ascending), then the remapped ones.
        let table = bytes_to_unicode();
        let (printable, remapped): (Vec<usize>, Vec<usize>) = (0..256).partition(|&b| table[b] as u32 == b as u32);
        let units: Vec<char> = printable.into_iter().chain(remapped).map(|b| table[b]).collect();
        let mut vocab: HashMap<String, u32> = HashMap::with_capacity(49408);
        let push = |tok: String, vocab: &mut HashMap<String, u32>| {
            let id = vocab.len() as u32;
            vocab.insert(tok, id);
        };
        for c in &units {
            push(c.to_string(), &mut vocab);
        }
        for c in &units {
            push(format!("{c}</w>"), &mut vocab);
        }
        for m in &merges {
            push(m.replace(' ', ""), &mut vocab);
        }
        push(BOS_TOKEN.to_string(), &mut vocab);
        push(EOS_TOKEN.to_string(), &mut vocab);
        Self::from_parts(vocab, &merges)
    }

    /// Builds the tokenizer from a token → id map and merge lines `"left right"` in rank order.
    pub fn from_parts(vocab: HashMap<String, u32>, merges: &[&str]) -> Result<Self> {
        let id = |tok: &str, what: &str| {
            vocab.get(tok).copied().ok_or_else(|| Error::Format(format!("{what} `{tok}` is not in the vocabulary")))
        };
        let units = bytes_to_unicode();
        let mut byte_ids = [0u32; 256];
        let mut byte_ids_eow = [0u32; 256];
        for b in 0..256 {
            byte_ids[b] = id(&units[b].to_string(), "byte symbol")?;
            byte_ids_eow[b] = id(&format!("{}</w>", units[b]), "byte symbol")?;
        }
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, line) in merges.iter().enumerate() {
            let mut parts = line.split(' ');
            let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(Error::Format(format!("merge {rank} `{line}` is not two symbols separated by a space")));
            };
            let key = (id(a, "merge symbol")?, id(b, "merge symbol")?);
            let merged = id(&format!("{a}{b}"), "merge result")?;
            // A repeated pair keeps its first (lowest) rank, as a rank dictionary built in order would not;
            // CLIP's merges have no repeats, so either choice is faithful.
            table.entry(key).or_insert((rank as u32, merged));
        }
        let bos = id(BOS_TOKEN, "special token")?;
        let eos = id(EOS_TOKEN, "special token")?;
        let vocab_size = vocab.values().map(|&v| v as usize + 1).max().unwrap_or(0);
        Ok(Self {
            byte_ids,
            byte_ids_eow,
            merges: table,
            vocab_size,
            bos,
            eos,
            pad: eos,
            context_length: DEFAULT_CONTEXT_LENGTH,
            pattern: Regex::new(PATTERN).map_err(|e| Error::Internal(format!("CLIP regex: {e}")))?,
            special: Regex::new(r"<\|startoftext\|>|<\|endoftext\|>").map_err(|e| Error::Internal(format!("special regex: {e}")))?,
        })
    }

    /// Id of `<|startoftext|>` (49406 in CLIP).
    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    /// Id of `<|endoftext|>` (49407 in CLIP).
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Id written after the end-of-text token by [`Tokenizer::encode_batch`]; defaults to the
    /// end-of-text id, as transformers pads.
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// Changes the padding id (open_clip pads with 0).
    pub fn set_pad_id(&mut self, pad: u32) {
        self.pad = pad;
    }

    /// Number of token ids (one more than the largest id), 49408 for CLIP.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Context length used by [`Tokenizer::encode`] (77 unless changed).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Sets the context length (the text model's `max_position_embeddings`); must be at least 2.
    pub fn set_context_length(&mut self, n: usize) -> Result<()> {
        if n < 2 {
            return Err(invalid_arg!("context length {n} must be at least 2 (start and end tokens)"));
        }
        self.context_length = n;
        Ok(())
    }

    /// BPE ids of `text` without start/end tokens and without truncation.
    pub fn encode_ids(&self, text: &str) -> Vec<u32> {
        self.encode_ids_upto(text, usize::MAX)
    }

    /// The ids of [`Self::encode_ids`] until at least `limit` are known: later words are not encoded, and
    /// a word is BPE-encoded from its first `limit` × [`BYTES_PER_TOKEN`] bytes only. BPE of one word
    /// costs time quadratic in its length, so a 1 MB word took over ten minutes before the cut; the
    /// first `limit` tokens of a word are decided by its beginning (merges are local), so the cut does
    /// not change what is kept.
    fn encode_ids_upto(&self, text: &str, limit: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut last = 0;
        for m in self.special.find_iter(text) {
            if out.len() >= limit {
                return out;
            }
            self.encode_plain(&text[last..m.start()], limit, &mut out);
            out.push(if m.as_str() == BOS_TOKEN { self.bos } else { self.eos });
            last = m.end();
        }
        self.encode_plain(&text[last..], limit, &mut out);
        out
    }

    /// `<|startoftext|>` + ids + `<|endoftext|>`, cut to the context length keeping the end token last.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with_len(text, self.context_length)
    }

    fn encode_with_len(&self, text: &str, context_len: usize) -> Vec<u32> {
        let mut ids = Vec::with_capacity(context_len);
        ids.push(self.bos);
        ids.extend(self.encode_ids_upto(text, context_len));
        ids.push(self.eos);
        if ids.len() > context_len {
            ids.truncate(context_len);
            ids[context_len - 1] = self.eos;
        }
        ids
    }

    /// Encodes a batch into a `texts.len() × context_len` row-major id matrix, padded with
    /// [`Tokenizer::pad_id`], and returns it with each row's end-of-text position (its length − 1),
    /// the position CLIP's text tower pools at. `context_len` must be at least 2.
    pub fn encode_batch(&self, texts: &[&str], context_len: usize) -> Result<(Vec<u32>, Vec<usize>)> {
        if context_len < 2 {
            return Err(invalid_arg!("context length {context_len} must be at least 2 (start and end tokens)"));
        }
        let mut ids = vec![self.pad; texts.len() * context_len];
        let mut eot = Vec::with_capacity(texts.len());
        for (row, text) in ids.chunks_exact_mut(context_len).zip(texts) {
            let t = self.encode_with_len(text, context_len);
            row[..t.len()].copy_from_slice(&t);
            eot.push(t.len() - 1);
        }
        Ok((ids, eot))
    }

    /// Normalises, pre-tokenises and BPE-encodes text that holds no special tokens.
    fn encode_plain(&self, text: &str, limit: usize, out: &mut Vec<u32>) {
        if text.is_empty() || out.len() >= limit {
            return;
        }
        let nfc: String = text.nfc().collect();
        // Whitespace runs need no replacement: the pattern never matches whitespace, so it only separates.
        // Per-character lowercase, as `tokenizers`' Lowercase normaliser does: no Final_Sigma context
        // rule (`str::to_lowercase` and Python's `lower()` turn a word-final Σ into ς, transformers into σ).
        let lower: String = nfc.chars().flat_map(char::to_lowercase).collect();
        let mut word = Vec::new();
        let max_word = limit.saturating_mul(BYTES_PER_TOKEN);
        for piece in self.pattern.find_iter(&lower) {
            if out.len() >= limit {
                return;
            }
            let piece = piece.as_str();
            let bytes = if piece.len() > max_word { piece[..piece.floor_char_boundary(max_word)].as_bytes() } else { piece.as_bytes() };
            word.clear();
            word.extend(bytes[..bytes.len() - 1].iter().map(|&b| self.byte_ids[b as usize]));
            word.push(self.byte_ids_eow[bytes[bytes.len() - 1] as usize]);
            self.bpe(&mut word);
            out.extend_from_slice(&word);
        }
    }

    /// Mirrors open_clip `SimpleTokenizer.bpe`: repeatedly merge the lowest-ranked adjacent pair,
    /// all its occurrences, left to right.
    fn bpe(&self, word: &mut Vec<u32>) {
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| self.merges.get(&(p[0], p[1])).map(|&(rank, merged)| (rank, p[0], p[1], merged)))
                .min_by_key(|&(rank, ..)| rank);
            let Some((_, a, b, merged)) = best else { break };
            let mut i = 0;
            let mut j = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == a && word[i + 1] == b {
                    word[j] = merged;
                    i += 2;
                } else {
                    word[j] = word[i];
                    i += 1;
                }
                j += 1;
            }
            word.truncate(j);
        }
    }
}
