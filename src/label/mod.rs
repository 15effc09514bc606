//! Self-labeling: naming clusters with CLIP's text encoder (DESIGN §1 step 6).
