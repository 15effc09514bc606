//! Self-labeling: naming clusters with CLIP's text encoder (docs/design.md §1 step 6, as in CPP's
//! `label_clusters`): every member image votes for the captions it matches best, the caption with the most
//! votes names the cluster.
//!
//! Unlike the reference, the candidate vocabulary never comes from the dataset's own class names: the user
//! supplies it, or the default ImageNet-1k vocabulary ([`vocabulary::default_vocabulary`]) is used.

pub mod distinct;
pub mod vocabulary;
pub mod vote;

pub use distinct::distinct_names;
pub use vocabulary::{default_vocabulary, prompts};
pub use vote::{label_clusters, ClusterName, LabelParams, RUNNERS_UP};
