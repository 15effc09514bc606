//! The space partitions of the *input* are compared in, and labelled in when the chosen partition came from
//! k-means there (see [`super::candidates`]): the fitting sample's features, centred, projected onto their
//! top principal directions and row-normalised.
//!
//! Without the projection, a few thousand 1280-d features code mostly the dimension terms of the coding
//! length's log-dets, and partitions were ranked against their accuracy (src/cluster/restart_select.rs says
//! how that was measured).

use crate::error::Result;
use crate::linalg::eigh::eigh;
use crate::linalg::{gemm, Trans};
use crate::scratch::grow;

/// Dimension of the space (at most the input dimension and m − 1).
pub const SPACE_DIM: usize = 128;

/// Centring and principal directions of a sample: `project` maps any rows of the same dimension there.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpace {
    pub dim: usize,
    pub rank: usize,
    /// The sample's mean (dim).
    pub mean: Vec<f32>,
    /// dim×rank, column q the q-th principal direction (largest first).
    pub basis: Vec<f32>,
}

impl InputSpace {
    /// Principal directions of the m×dim sample `xs` (computed in f64).
    pub fn fit(xs: &[f32], m: usize, dim: usize) -> Result<Self> {
        if m < 2 || dim == 0 || xs.len() != m * dim {
            return Err(crate::invalid_arg!("input space: need an m×dim sample with m ≥ 2, got {} values for {m}×{dim}", xs.len()));
        }
        let rank = SPACE_DIM.min(dim).min(m - 1);
        let mut mean = vec![0.0f64; dim];
        for row in xs.chunks(dim) {
            mean.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
        }
        mean.iter_mut().for_each(|s| *s /= m as f64);
        let xc: Vec<f64> = xs.chunks(dim).flat_map(|row| row.iter().zip(&mean).map(|(&v, &mu)| v as f64 - mu)).collect();
        let mut cov = vec![0.0f64; dim * dim];
        gemm(dim, dim, m, 1.0, &xc, dim, Trans::Yes, &xc, dim, Trans::No, 0.0, &mut cov, dim);
        let (_vals, vecs) = eigh(&cov, dim)?;
        // Eigenvalues ascend, eigenvectors are columns: keep the last `rank` columns, largest first.
        let basis: Vec<f32> = (0..dim).flat_map(|t| (0..rank).map(move |q| (t, dim - 1 - q))).map(|(t, col)| vecs[t * dim + col] as f32).collect();
        Ok(InputSpace { dim, rank, mean: mean.iter().map(|&v| v as f32).collect(), basis })
    }

    /// The n×rank row-normalised projections of the n×dim rows `x`.
    pub fn project(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let (mut centred, mut p) = (Vec::new(), Vec::new());
        self.project_into(x, n, &mut centred, &mut p)?;
        Ok(p)
    }

    /// [`Self::project`] into `out[..n × rank]`, with `centred` for the centred rows; both grow as needed.
    pub fn project_into(&self, x: &[f32], n: usize, centred: &mut Vec<f32>, out: &mut Vec<f32>) -> Result<()> {
        if x.len() != n * self.dim {
            return Err(crate::invalid_arg!("input space: {} values for {n}×{} rows", x.len(), self.dim));
        }
        grow(centred, n * self.dim);
        let xc = &mut centred[..n * self.dim];
        for (c, row) in xc.chunks_mut(self.dim).zip(x.chunks(self.dim)) {
            c.iter_mut().zip(row.iter().zip(&self.mean)).for_each(|(c, (&v, &mu))| *c = v - mu);
        }
        grow(out, n * self.rank);
        let p = &mut out[..n * self.rank];
        gemm(n, self.rank, self.dim, 1.0, xc, self.dim, Trans::No, &self.basis, self.rank, Trans::No, 0.0, p, self.rank);
        crate::linalg::rows::l2_normalize_rows(p, self.rank);
        Ok(())
    }

    /// Checks the stored sizes (after loading a file).
    pub fn check(&self) -> Result<()> {
        if self.rank == 0 || self.mean.len() != self.dim || self.basis.len() != self.dim * self.rank {
            return Err(crate::Error::Format(format!("input space tensors do not match dim = {}, rank = {}", self.dim, self.rank)));
        }
        Ok(())
    }
}
