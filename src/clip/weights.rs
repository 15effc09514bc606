//! Reading `model.safetensors` (f32, f16 or bf16) into f32 tensors for the CPU path.
//!
//! Every lookup states the shape it expects, so a checkpoint that does not fit the config fails with a
//! [`Error::Format`] naming the tensor, its shape and the expected one, instead of computing garbage.

use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// A safetensors file's bytes (read once; tensors are converted on request).
pub struct TensorFile {
    path: String,
    bytes: Vec<u8>,
}

/// The parsed header of a [`TensorFile`]: look tensors up by name.
pub struct Tensors<'a> {
    path: &'a str,
    st: SafeTensors<'a>,
}

impl TensorFile {
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(TensorFile { path: path.display().to_string(), bytes })
    }

    /// Wraps bytes already in memory; `name` is used in error messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Self {
        TensorFile { path: name.to_string(), bytes }
    }

    /// Parses the header; a truncated or corrupted file fails here.
    pub fn tensors(&self) -> Result<Tensors<'_>> {
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| Error::Format(format!("{}: not a valid safetensors file ({e})", self.path)))?;
        Ok(Tensors { path: &self.path, st })
    }
}

impl Tensors<'_> {
    pub fn contains(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.st.tensor(name).ok().map(|t| t.shape().to_vec())
    }

    /// The tensor `name` as f32, checked to have exactly `shape` (a scalar is `&[]`; HF sometimes stores
    /// `logit_scale` as shape `[1]`, so a single element is accepted for either).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| Error::Format(format!("{}: tensor `{name}` is missing (expected shape {shape:?})", self.path)))?;
        let numel: usize = shape.iter().product();
        let scalar_ok = numel == 1 && t.shape().iter().product::<usize>() == 1 && t.shape().len() <= 1 && shape.len() <= 1;
        if t.shape() != shape && !scalar_ok {
            return Err(Error::Format(format!(
                "{}: tensor `{name}` has shape {:?}, expected {shape:?} (does config.json match the weights?)",
                self.path,
                t.shape()
            )));
        }
        let data = t.data();
        let out: Vec<f32> = match t.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
            other => {
                return Err(Error::Format(format!(
                    "{}: tensor `{name}` has dtype {other:?}; supported: F32, F16, BF16, F64",
                    self.path
                )))
            }
        };
        if out.len() != numel {
            return Err(Error::Format(format!("{}: tensor `{name}` holds {} values, expected {numel}", self.path, out.len())));
        }
        if let Some(i) = out.iter().position(|x| !x.is_finite()) {
            return Err(Error::Format(format!("{}: tensor `{name}` has a non-finite value at flat index {i}", self.path)));
        }
        Ok(out)
    }
}
