//! The CLIP C API from C (examples/c/embed.c) against the tiny fixture model, with both link modes: the
//! image embedding it prints must be transformers' (goldens), and its own checks (bytes = file, BGR = RGB,
//! errors as statuses, cancellation) must pass.

mod common;
use common::*;
use safetensors::SafeTensors;

#[test]
fn c_example_embed_matches_goldens_with_both_link_modes() {
    let bytes = std::fs::read(fixture("clip_model/goldens.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let want: Vec<f64> =
        st.tensor("file_image_embeds").unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect();
    let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
    for link in BOTH {
        let exe = build_example("c/embed.c", link);
        let model = fixture("clip_model/tiny");
        let image = fixture("clip_model/image.png");
        let out = run_example(&exe, &[model.to_str().unwrap(), image.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("embed dim: 24") && text.trim_end().ends_with("ok"), "{text}");
        assert!(text.contains("image size: 32, pooled image width: 48"), "{text}");
        let got: Vec<f64> = text
            .lines()
            .find_map(|l| l.strip_prefix("image:"))
            .expect("an image: line")
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w / norm).abs() < 1e-5, "{link:?}: {g} vs {}", w / norm);
        }
    }
}
