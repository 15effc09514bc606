//! `rateclust_clusterer_k_curve`: the coding-length curve of an automatic-k fit through the C API, equal to
//! the model's own; a model fitted with a given k has none; lengths first (cap 0, NULL buffers), then values.

use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::FitParams;
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::ffi::cluster::{rateclust_clusterer_free, rateclust_clusterer_k_curve, rateclust_clusterer_load};
use rateclust::progress::NoProgress;
use rateclust::{Device, Status};

fn load_through_c(model: &Clusterer, name: &str) -> *mut rateclust::ffi::cluster::rateclust_clusterer {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("k_curve_c_api");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    model.save(&path).unwrap();
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut c = std::ptr::null_mut();
    assert_eq!(rateclust_clusterer_load(c_path.as_ptr(), &mut c), Status::Ok);
    c
}

#[test]
fn the_automatic_k_curve_crosses_the_c_api() {
    let spec = SubspaceSpec { n: 400, dim: 24, k: 4, rank: 2, noise: 0.05, seed: 4 };
    let (x, _) = union_of_subspaces(&spec).unwrap();
    let auto = Clusterer::fit(&x, spec.n, spec.dim, &FitParams { k: 0, k_max: 7, seed: 2, ..FitParams::default() }, &Device::Cpu, &mut NoProgress).unwrap();
    let want = auto.k_curve.clone().expect("k = 0 keeps the curve");
    let c = load_through_c(&auto, "auto.safetensors");
    let mut len = usize::MAX;
    assert_eq!(rateclust_clusterer_k_curve(c, std::ptr::null_mut(), std::ptr::null_mut(), 0, &mut len), Status::Ok);
    assert_eq!(len, want.candidates.len());
    let (mut ks, mut ls) = (vec![0usize; len], vec![0.0f64; len]);
    assert_eq!(rateclust_clusterer_k_curve(c, ks.as_mut_ptr(), ls.as_mut_ptr(), len, &mut len), Status::Ok);
    assert_eq!(ks, want.candidates);
    assert_eq!(ls, want.coding_length);
    // A short buffer gets the first entries and the full length.
    let (mut k2, mut l2) = ([0usize; 2], [0.0f64; 2]);
    assert_eq!(rateclust_clusterer_k_curve(c, k2.as_mut_ptr(), l2.as_mut_ptr(), 2, &mut len), Status::Ok);
    assert_eq!((len, k2.to_vec()), (want.candidates.len(), want.candidates[..2].to_vec()));
    assert_eq!(rateclust_clusterer_k_curve(c, k2.as_mut_ptr(), l2.as_mut_ptr(), 2, std::ptr::null_mut()), Status::InvalidArgument);
    rateclust_clusterer_free(c);

    let fixed = Clusterer::fit(&x, spec.n, spec.dim, &FitParams { k: 4, seed: 2, ..FitParams::default() }, &Device::Cpu, &mut NoProgress).unwrap();
    let c = load_through_c(&fixed, "fixed.safetensors");
    assert_eq!(rateclust_clusterer_k_curve(c, std::ptr::null_mut(), std::ptr::null_mut(), 0, &mut len), Status::Ok);
    assert_eq!(len, 0);
    rateclust_clusterer_free(c);
}
