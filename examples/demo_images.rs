//! Writes a small folder of images for `scripts/demo.sh`: three kinds of pattern (horizontal stripes,
//! vertical stripes, a checkerboard) in random colours and phases, 20 of each as PNG and JPEG, in
//! sub-folders, plus one file that does not decode (the job lists and skips it).
//!
//!     cargo run --release --example demo_images -- OUT_DIR

use rateclust::rng::Rng;

fn main() {
    let Some(out) = std::env::args().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: demo_images OUT_DIR");
        std::process::exit(2);
    };
    let mut rng = Rng::new(2026);
    for (kind, name) in ["horizontal", "vertical", "checker"].iter().enumerate().map(|(i, n)| (i, *n)) {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).expect("create the output folder");
        for i in 0..20 {
            let a = [rng.below(256) as u8, rng.below(256) as u8, rng.below(256) as u8];
            let b = a.map(|c| c.wrapping_add(128));
            let (period, phase) = (8 + rng.below(16) as u32, rng.below(16) as u32);
            let img = image::RgbImage::from_fn(96, 80, |x, y| {
                let on = match kind {
                    0 => (y + phase) / period % 2 == 0,
                    1 => (x + phase) / period % 2 == 0,
                    _ => ((x + phase) / period + (y + phase) / period) % 2 == 0,
                };
                image::Rgb(if on { a } else { b })
            });
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            img.save(dir.join(format!("{name}_{i:02}.{ext}"))).expect("write an image");
        }
    }
    std::fs::write(out.join("broken.jpg"), b"this is not a JPEG").expect("write the broken file");
    println!("wrote 60 images and 1 broken file under {}", out.display());
}
