//! Self-labeling vote against the NumPy restatement in tools/golden/label_vote_goldens.py.

mod common;
use rateclust::label::{label_clusters, LabelParams};
use safetensors::SafeTensors;

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    st.tensor(name).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}
fn i64s(st: &SafeTensors, name: &str) -> Vec<i64> {
    st.tensor(name).unwrap().data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
}

#[test]
fn vote_matches_numpy_golden() {
    let bytes = std::fs::read(common::fixture("label/vote.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (image, text) = (f32s(&st, "image"), f32s(&st, "text"));
    let labels: Vec<usize> = i64s(&st, "labels").iter().map(|&l| l as usize).collect();
    let (caption, score) = (i64s(&st, "caption"), f32s(&st, "score"));
    let (k, dim) = (caption.len(), 12);
    let names = label_clusters(&image, labels.len(), dim, &labels, k, &text, text.len() / dim, &LabelParams::default()).unwrap();
    for j in 0..k {
        assert_eq!(names[j].caption, Some(caption[j] as usize), "cluster {j}");
        assert!((names[j].score - score[j]).abs() < 1e-4, "cluster {j}: {} vs {}", names[j].score, score[j]);
    }
}

#[test]
fn c_example_label_runs_with_both_link_modes() {
    for link in common::BOTH {
        let exe = common::build_example("c/label.c", link);
        let out = common::run_example(&exe, &[]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("cluster 0 -> caption 1"));
    }
}
