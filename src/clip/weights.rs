//! Reading `model.safetensors` (f32, f16 or bf16) into f32 tensors for the CPU path, one tensor at a time.
//!
//! Every lookup states the shape it expects, so a checkpoint that does not fit the config fails with a
//! [`Error::Format`] naming the tensor, its shape and the expected one, instead of computing garbage.

use crate::error::{Error, Result};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::Dtype;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Largest header read from a file (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors checkpoint: its parsed header, and its tensor bytes either in memory or left in the file.
///
/// Why not read the file whole: the towers keep their weights as f32 copies, so holding the file's bytes
/// as well doubled the peak memory of a load (a ViT-B/32 checkpoint: 605 MB of f32 bytes plus 605 MB of
/// copies). From a file, each tensor is read and converted on its own, so a load peaks at the copies plus
/// one tensor, and the bytes of a tower that is not loaded are never read.
pub struct TensorFile {
    path: String,
    meta: Metadata,
    data: Data,
}

enum Data {
    Bytes { bytes: Vec<u8>, start: usize },
    File { file: File, start: u64 },
}

/// The header of a [`TensorFile`]: look tensors up by name.
pub struct Tensors<'a> {
    file: &'a TensorFile,
}

impl TensorFile {
    /// Opens `path` and reads its header; the tensors stay in the file until asked for. A truncated or
    /// corrupted file fails here.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let io = |e| Error::io(path, e);
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut first = [0u8; 8];
        let n = header_len(&name, file.read_exact(&mut first).ok().map(|_| &first[..]), len)?;
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(io)?;
        let meta = parse_header(&name, &header, len - 8 - n)?;
        Ok(TensorFile { path: name, meta, data: Data::File { file, start: 8 + n } })
    }

    /// Wraps a whole file's bytes already in memory; `name` is used in error messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self> {
        let n = header_len(name, bytes.get(..8), bytes.len() as u64)?;
        let start = 8 + n as usize;
        let meta = parse_header(name, &bytes[8..start], (bytes.len() - start) as u64)?;
        Ok(TensorFile { path: name.to_string(), meta, data: Data::Bytes { bytes, start } })
    }

    /// The header's tensors.
    pub fn tensors(&self) -> Result<Tensors<'_>> {
        Ok(Tensors { file: self })
    }

    /// The bytes of one tensor (read from the file, or borrowed from memory).
    fn bytes_of(&self, info: &TensorInfo) -> Result<std::borrow::Cow<'_, [u8]>> {
        let (s, e) = info.data_offsets;
        match &self.data {
            Data::Bytes { bytes, start } => Ok(std::borrow::Cow::Borrowed(&bytes[start + s..start + e])),
            Data::File { file, start } => {
                // The header was checked against the file's length, so this is bounded by the file.
                let mut buf = vec![0u8; e - s];
                file.read_exact_at(&mut buf, start + s as u64).map_err(|err| Error::io(&self.path, err))?;
                Ok(std::borrow::Cow::Owned(buf))
            }
        }
    }
}

/// The header length that a checkpoint's first 8 bytes (`None` if it has fewer) declare, checked to fit
/// its `total` bytes before anything is allocated from it.
fn header_len(name: &str, first: Option<&[u8]>, total: u64) -> Result<u64> {
    let n = first.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let n = n.ok_or_else(|| invalid(name, "shorter than its 8-byte header length"))?;
    if n > MAX_HEADER_BYTES || n > total.saturating_sub(8) {
        return Err(invalid(name, &format!("header length {n} does not fit the file ({total} bytes)")));
    }
    Ok(n)
}

fn invalid(name: &str, why: &str) -> Error {
    Error::Format(format!("{name}: not a valid safetensors file ({why})"))
}

/// The header's JSON, validated by the safetensors crate (offsets contiguous, sizes matching dtypes and
/// shapes), and checked to describe exactly `data_len` bytes of tensor data.
fn parse_header(name: &str, header: &[u8], data_len: u64) -> Result<Metadata> {
    let meta: Metadata = serde_json::from_slice(header).map_err(|e| invalid(name, &e.to_string()))?;
    if meta.data_len() as u64 != data_len {
        return Err(invalid(name, &format!("the header describes {} bytes of tensors, the file holds {data_len}", meta.data_len())));
    }
    Ok(meta)
}

impl Tensors<'_> {
    pub fn contains(&self, name: &str) -> bool {
        self.file.meta.info(name).is_some()
    }

    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.file.meta.info(name).map(|t| t.shape.clone())
    }

    /// The tensor `name` as f32, checked to have exactly `shape` (a scalar is `&[]`; HF sometimes stores
    /// `logit_scale` as shape `[1]`, so a single element is accepted for either).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let path = &self.file.path;
        let t = self
            .file
            .meta
            .info(name)
            .ok_or_else(|| Error::Format(format!("{path}: tensor `{name}` is missing (expected shape {shape:?})")))?;
        let numel: usize = shape.iter().product();
        let scalar_ok = numel == 1 && t.shape.iter().product::<usize>() == 1 && t.shape.len() <= 1 && shape.len() <= 1;
        if t.shape != shape && !scalar_ok {
            return Err(Error::Format(format!(
                "{path}: tensor `{name}` has shape {:?}, expected {shape:?} (does config.json match the weights?)",
                t.shape
            )));
        }
        let data = self.file.bytes_of(t)?;
        let out: Vec<f32> = match t.dtype {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
            other => {
                return Err(Error::Format(format!(
                    "{path}: tensor `{name}` has dtype {other:?}; supported: F32, F16, BF16, F64"
                )))
            }
        };
        if out.len() != numel {
            return Err(Error::Format(format!("{path}: tensor `{name}` holds {} values, expected {numel}", out.len())));
        }
        if let Some(i) = out.iter().position(|x| !x.is_finite()) {
            return Err(Error::Format(format!("{path}: tensor `{name}` has a non-finite value at flat index {i}")));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file shorter than its length field, and a header length past the end, fail with a format error
    /// before anything is allocated from them, whether the bytes are in memory or in a file.
    #[test]
    fn short_files_and_oversized_header_lengths_are_format_errors() {
        let dir = std::env::temp_dir().join(format!("rateclust_weights_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        for (case, bytes, needle) in [("short", vec![1u8, 2, 3], "shorter than"), ("huge", huge, "does not fit")] {
            let e = TensorFile::from_bytes(case, bytes.clone()).err().expect(case);
            assert!(matches!(e, Error::Format(_)) && e.to_string().contains(needle), "{case}: {e}");
            let path = dir.join(case);
            std::fs::write(&path, &bytes).unwrap();
            let e = TensorFile::read(&path).err().expect(case);
            assert!(matches!(e, Error::Format(_)) && e.to_string().contains(needle), "{case}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
