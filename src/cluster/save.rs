//! Saving and loading a fitted [`Clusterer`]: one safetensors file whose tensors are the head's weights
//! (PyTorch names), BatchNorm running statistics, the assignment model and the training losses, and whose
//! `__metadata__` holds `format` = "rateclust-clusterer", `format_version`, and `config`: JSON with the fit
//! parameters and sizes. Written to a temporary file beside the target, then renamed, so a crash never
//! leaves a half-written model under the final name.

use super::assign::{AssignModel, InputSpaceModel};
use super::input_space::InputSpace;
use super::head::{Head, HeadDims, N_PARAMS, PARAM_NAMES};
use super::clusterer::Clusterer;
use super::params::FitParams;
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const FORMAT_NAME: &str = "rateclust-clusterer";
/// Incremented on any change a previous reader could misread. Version 2 added the input-space prototypes
/// (`assign.input_*`, config `input_rank`); version 3 the labelled reference sample of rule neighbors-x
/// (`assign.reference_x`, `assign.reference_labels`, config `references`). Versions 1 and 2 are still read.
pub const FORMAT_VERSION: u32 = 3;

#[derive(Serialize, Deserialize)]
struct Config {
    params: FitParams,
    input: usize,
    hidden: usize,
    zdim: usize,
    k: usize,
    rank: usize,
    /// Rank of the input space of `AssignRule::PrototypeInput` (0 = none stored).
    #[serde(default)]
    input_rank: usize,
    /// Reference points of `AssignRule::NeighborsInput` (0 = none stored).
    #[serde(default)]
    references: usize,
    library_version: String,
}

const RUNNING_MEAN: &str = "pre_feature.1.running_mean";
const RUNNING_VAR: &str = "pre_feature.1.running_var";
const BASES: &str = "assign.subspace_bases";
const PROTO_Z: &str = "assign.prototypes_z";
const PROTO_C: &str = "assign.prototypes_c";
const LOSSES: &str = "train.losses";
const INPUT_MEAN: &str = "assign.input_mean";
const INPUT_BASIS: &str = "assign.input_basis";
const PROTO_X: &str = "assign.prototypes_x";
const REFERENCE_X: &str = "assign.reference_x";
const REFERENCE_LABELS: &str = "assign.reference_labels";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Metadata key of the automatic-k curve ([`crate::cluster::select_k::SelectK`] as JSON).
const K_CURVE: &str = "k_curve";

impl Clusterer {
    /// The model as safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let dims = self.head.dims;
        let am = &self.assign_model;
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = Vec::new();
        for i in 0..N_PARAMS {
            let (r, c) = dims.shape(i);
            let shape = if c == 1 { vec![r] } else { vec![r, c] };
            owned.push((PARAM_NAMES[i].to_string(), shape, f32_bytes(&self.head.p[i]), Dtype::F32));
        }
        owned.push((RUNNING_MEAN.into(), vec![dims.hidden], f32_bytes(&self.head.running_mean), Dtype::F32));
        owned.push((RUNNING_VAR.into(), vec![dims.hidden], f32_bytes(&self.head.running_var), Dtype::F32));
        owned.push((BASES.into(), vec![am.k * am.rank, am.zdim], f32_bytes(&am.bases), Dtype::F32));
        owned.push((PROTO_Z.into(), vec![am.k, am.zdim], f32_bytes(&am.prototypes_z), Dtype::F32));
        owned.push((PROTO_C.into(), vec![am.k, am.zdim], f32_bytes(&am.prototypes_c), Dtype::F32));
        if let Some(ip) = &am.input {
            owned.push((INPUT_MEAN.into(), vec![ip.space.dim], f32_bytes(&ip.space.mean), Dtype::F32));
            owned.push((INPUT_BASIS.into(), vec![ip.space.dim, ip.space.rank], f32_bytes(&ip.space.basis), Dtype::F32));
            owned.push((PROTO_X.into(), vec![am.k, ip.space.rank], f32_bytes(&ip.prototypes), Dtype::F32));
            if ip.references() > 0 {
                owned.push((REFERENCE_X.into(), vec![ip.references(), ip.space.rank], f32_bytes(&ip.reference), Dtype::F32));
                let labels: Vec<u8> = ip.reference_labels.iter().flat_map(|l| l.to_le_bytes()).collect();
                owned.push((REFERENCE_LABELS.into(), vec![ip.references()], labels, Dtype::U32));
            }
        }
        owned.push((LOSSES.into(), vec![self.losses.len()], self.losses.iter().flat_map(|x| x.to_le_bytes()).collect(), Dtype::F64));
        let config = Config {
            params: self.params.clone(),
            input: dims.input,
            hidden: dims.hidden,
            zdim: dims.zdim,
            k: am.k,
            rank: am.rank,
            input_rank: am.input.as_ref().map_or(0, |ip| ip.space.rank),
            references: am.input.as_ref().map_or(0, |ip| ip.references()),
            library_version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut meta = HashMap::from([
            ("format".to_string(), FORMAT_NAME.to_string()),
            ("format_version".to_string(), FORMAT_VERSION.to_string()),
            ("config".to_string(), serde_json::to_string(&config).map_err(|e| Error::Internal(format!("model config to JSON: {e}")))?),
        ]);
        // The automatic-k curve, when there is one (optional: older readers ignore the key).
        if let Some(curve) = &self.k_curve {
            meta.insert(K_CURVE.to_string(), serde_json::to_string(curve).map_err(|e| Error::Internal(format!("k curve to JSON: {e}")))?);
        }
        let views = owned
            .iter()
            .map(|(name, shape, data, dt)| Ok((name.clone(), TensorView::new(*dt, shape.clone(), data).map_err(|e| Error::Internal(format!("tensor {name}: {e}")))?)))
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::Internal(format!("serialising the model: {e}")))
    }

    /// Writes the model to `path` (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        if path.file_name().is_none() {
            return Err(crate::invalid_arg!("model path '{}' has no file name", path.display()));
        }
        crate::io::write_atomically(path, &bytes)
    }

    /// Reads a model written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses safetensors bytes produced by [`Self::to_bytes`]; anything else is an `Error::Format`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Format(format!("not a valid safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| Error::Format(format!("not a valid safetensors file ({e})")))?;
        let meta = header.metadata().as_ref().ok_or_else(|| Error::Format("no rateclust metadata (not a rateclust model)".into()))?;
        let field = |k: &str| meta.get(k).ok_or_else(|| Error::Format(format!("metadata field '{k}' is missing (not a rateclust model?)")));
        if field("format")? != FORMAT_NAME {
            return Err(Error::Format(format!("metadata 'format' is '{}', expected '{FORMAT_NAME}'", field("format")?)));
        }
        let version = field("format_version")?;
        if !["1", "2", &FORMAT_VERSION.to_string()].contains(&version.as_str()) {
            return Err(Error::Format(format!(
                "model format version {version} is not supported by this rateclust (reads version {FORMAT_VERSION}); refit or use a matching library version"
            )));
        }
        let cfg: Config = serde_json::from_str(field("config")?).map_err(|e| Error::Format(format!("metadata 'config' is not valid: {e}")))?;
        cfg.params.validate(0, 0).map_err(|e| Error::Format(format!("stored fit parameters are invalid: {e}")))?;
        let dims = HeadDims { input: cfg.input, hidden: cfg.hidden, zdim: cfg.zdim };
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(|_| Error::Format(format!("tensor '{name}' is missing")))?;
            if t.dtype() != Dtype::F32 || t.shape() != shape {
                return Err(Error::Format(format!("tensor '{name}' is {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.shape())));
            }
            let v: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::Format(format!("tensor '{name}' contains NaN or infinity (corrupted file?)")));
            }
            Ok(v)
        };
        let mut p: [Vec<f32>; N_PARAMS] = Default::default();
        for (i, slot) in p.iter_mut().enumerate() {
            let (r, c) = dims.shape(i);
            let shape = if c == 1 { vec![r] } else { vec![r, c] };
            *slot = get(PARAM_NAMES[i], &shape)?;
        }
        let head = Head::from_parts(dims, p, get(RUNNING_MEAN, &[cfg.hidden])?, get(RUNNING_VAR, &[cfg.hidden])?)?;
        let assign_model = AssignModel {
            k: cfg.k,
            zdim: cfg.zdim,
            rank: cfg.rank,
            bases: get(BASES, &[cfg.k * cfg.rank, cfg.zdim])?,
            prototypes_z: get(PROTO_Z, &[cfg.k, cfg.zdim])?,
            prototypes_c: get(PROTO_C, &[cfg.k, cfg.zdim])?,
            input: match cfg.input_rank {
                0 => None,
                r if r > cfg.input => return Err(Error::Format(format!("stored input_rank = {r} exceeds the input dimension {}", cfg.input))),
                r => Some(InputSpaceModel {
                    space: InputSpace { dim: cfg.input, rank: r, mean: get(INPUT_MEAN, &[cfg.input])?, basis: get(INPUT_BASIS, &[cfg.input, r])? },
                    prototypes: get(PROTO_X, &[cfg.k, r])?,
                    reference: match cfg.references {
                        0 => Vec::new(),
                        m => get(REFERENCE_X, &[m, r])?,
                    },
                    reference_labels: match cfg.references {
                        0 => Vec::new(),
                        m => {
                            let t = st.tensor(REFERENCE_LABELS).map_err(|_| Error::Format(format!("tensor '{REFERENCE_LABELS}' is missing")))?;
                            if t.dtype() != Dtype::U32 || t.shape() != [m] {
                                return Err(Error::Format(format!("tensor '{REFERENCE_LABELS}' is {:?} {:?}, expected U32 [{m}]", t.dtype(), t.shape())));
                            }
                            t.data().chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect()
                        }
                    },
                }),
            },
        };
        let rule = cfg.params.assign_rule;
        if rule.uses_input_space() != assign_model.input.is_some() {
            return Err(Error::Format(format!("the stored rule {} and the input-space tensors disagree", rule.name())));
        }
        if rule == crate::cluster::params::AssignRule::NeighborsInput && assign_model.input.as_ref().is_some_and(|ip| ip.references() == 0) {
            return Err(Error::Format("the stored rule neighbors-x has no reference points".into()));
        }
        assign_model.check()?;
        if cfg.k < 2 || cfg.rank == 0 {
            return Err(Error::Format(format!("stored k = {} / rank = {} are invalid", cfg.k, cfg.rank)));
        }
        let losses = match st.tensor(LOSSES) {
            Ok(t) if t.dtype() == Dtype::F64 => t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
            _ => return Err(Error::Format(format!("tensor '{LOSSES}' is missing or not F64"))),
        };
        let k_curve = match meta.get(K_CURVE) {
            None => None,
            Some(text) => {
                let curve: crate::cluster::select_k::SelectK =
                    serde_json::from_str(text).map_err(|e| Error::Format(format!("metadata '{K_CURVE}' is not valid: {e}")))?;
                if curve.candidates.len() != curve.coding_length.len() || !curve.candidates.contains(&curve.best_k) {
                    return Err(Error::Format(format!("metadata '{K_CURVE}' is inconsistent")));
                }
                Some(curve)
            }
        };
        let mut params = cfg.params;
        params.k = cfg.k;
        Ok(Clusterer { losses, k_curve, ..Clusterer::from_parts(params, head, assign_model) })
    }
}
