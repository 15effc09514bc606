//! assignment, choice of k by coding length, metrics, save/load.

pub mod head;
pub mod sgd;
pub mod params;
pub mod hungarian;
pub mod metrics;
pub mod kmeans;
pub mod train;
pub mod assign;
pub mod synthetic;
